//! The HTTP API of `latch serve`: the same operations as the CLI, behind bearer tokens.
//!
//! Defends the connector's front door: it listens on loopback unless configured otherwise,
//! and beyond loopback only over TLS (or with an explicit, warned `insecure_http`, see
//! [`tls`]); every route but the OpenAPI document needs `Authorization: Bearer <token>`,
//! where tokens are created with `latch token create`, stored only as sha256, expire, can
//! be revoked, and carry a **scope** ([`latch_ledger::TokenScope`]): the integrations they
//! may act on, whether they may revoke or extend grants another caller asked for, whether
//! they may read the audit log — every route asks it before it acts (403 otherwise); bodies
//! are capped at 64 KiB and parsed strictly (unknown fields are errors); bad input gets a
//! 4xx with a JSON message and nothing is recorded half-way (a grant is written to the
//! ledger only after the integration, duration and public key checked out).
//!
//! The OpenAPI document is generated from the handlers' annotations and types (`utoipa`),
//! and the router is built from the same annotated handlers.

mod doc;
mod requests;
pub mod tls;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, OpenApi, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use latch_caps::certs::ca::unix_now;
use latch_config::parse_duration;
use latch_ledger::{Ledger, LedgerError, State as GrantState, TokenScope, check_grant_id};
use latch_service as service;
use latch_service::connector::Connector;
use latch_service::{ErrorKind, GrantArgs, ServiceError, check_public_key};

/// Largest request body accepted.
pub const MAX_BODY: usize = 64 * 1024;

/// What every handler shares.
#[derive(Clone)]
pub struct Api {
    pub connector: Arc<Connector>,
    pub ledger: Arc<Ledger>,
    /// The access policy (`[access] policy`), if the connector has one: `/v1/requests`
    /// needs it.
    pub access: Option<Arc<latch_access::Access>>,
}

/// An error response: status and a message a person can act on.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, axum::Json(json!({ "error": self.1 }))).into_response()
    }
}

/// `Query`, but a query string that does not parse is answered like every other error: a
/// JSON 400, never axum's plain-text rejection.
struct JsonQuery<T>(T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> axum::extract::FromRequestParts<S>
    for JsonQuery<T>
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(q)) => Ok(JsonQuery(q)),
            Err(e) => Err(bad(e.body_text())),
        }
    }
}

/// `Path`, with the same JSON 400 when a path segment does not decode.
struct JsonPath<T>(T);

impl<T: serde::de::DeserializeOwned + Send, S: Send + Sync> axum::extract::FromRequestParts<S>
    for JsonPath<T>
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(p)) => Ok(JsonPath(p)),
            Err(e) => Err(bad(e.body_text())),
        }
    }
}

fn bad(msg: impl std::fmt::Display) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, msg.to_string())
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    tracing::error!("api: {e:#}");
    ApiError(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}"))
}

/// The status of each kind of service error: decided by the error's type, never its text.
pub fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
        ErrorKind::Denied => StatusCode::FORBIDDEN,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::Remote => StatusCode::BAD_GATEWAY,
        ErrorKind::Timeout => StatusCode::GATEWAY_TIMEOUT,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        let status = status_of(e.kind());
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!("api: {e}");
        }
        ApiError(status, e.to_string())
    }
}

impl From<LedgerError> for ApiError {
    fn from(e: LedgerError) -> Self {
        ServiceError::from(e).into()
    }
}

type Reply = Result<Response, ApiError>;

fn ok(status: StatusCode, v: impl serde::Serialize) -> Reply {
    Ok((status, axum::Json(v)).into_response())
}

/// sha256 of a token, as stored.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A new random API token.
pub fn new_token() -> String {
    let bytes: [u8; 32] = rand::random();
    format!("latch_{}", hex::encode(bytes))
}

/// Who is calling, put on the request for handlers: the token's name (the audit's actor,
/// `token:NAME`) and what it may do.
#[derive(Clone)]
struct Actor(String, TokenScope);

impl Actor {
    /// 403 unless the token may act on `integration`.
    fn may_use(&self, integration: &str) -> Result<(), ApiError> {
        if self.1.covers(integration) {
            Ok(())
        } else {
            Err(ApiError(
                StatusCode::FORBIDDEN,
                format!(
                    "{} may not act on integration {integration:?} (its scope: {})",
                    self.0,
                    self.1.describe()
                ),
            ))
        }
    }

    /// 403 unless the token may read the audit log.
    fn may_read_audit(&self) -> Result<(), ApiError> {
        if self.1.read_audit {
            Ok(())
        } else {
            Err(ApiError(
                StatusCode::FORBIDDEN,
                format!(
                    "{} may not read the audit log (no read-audit in its scope)",
                    self.0
                ),
            ))
        }
    }

    /// 403 unless the token may change `record`: on its integrations, and one it asked for
    /// itself unless it may revoke others'.
    fn may_change(&self, api: &Api, record: &latch_ledger::GrantRecord) -> Result<(), ApiError> {
        self.may_use(&record.integration)?;
        if self.1.revoke_others {
            return Ok(());
        }
        let asked_by = api.ledger.requested_by(&record.grant_id)?;
        if asked_by.as_deref() == Some(self.0.as_str()) {
            Ok(())
        } else {
            Err(ApiError(
                StatusCode::FORBIDDEN,
                format!(
                    "{} may revoke or extend only the grants it asked for; {} was asked for by \
                     another caller (no revoke-others in its scope)",
                    self.0, record.grant_id
                ),
            ))
        }
    }
}

async fn auth(State(api): State<Api>, mut request: Request, next: Next) -> Response {
    let presented = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let token = match presented {
        Some(token) if !token.is_empty() && token.len() <= 256 => {
            api.ledger.token(&token_hash(token)).ok().flatten()
        }
        _ => None,
    };
    let unauthorized = |why: String| ApiError(StatusCode::UNAUTHORIZED, why).into_response();
    match token {
        Some(t) => match t.unusable(unix_now()) {
            Some(why) => unauthorized(format!("{why}; create another with `latch token create`")),
            None => {
                request
                    .extensions_mut()
                    .insert(Actor(format!("token:{}", t.name), t.scope));
                next.run(request).await
            }
        },
        None => unauthorized(
            "missing or invalid bearer token (create one with `latch token create NAME`)".into(),
        ),
    }
}

/// The protected routes and their OpenAPI document, from the same annotated handlers: a
/// route is served only through `routes!`, so it cannot be served undocumented (a plain
/// `.route(` here would be; don't).
fn documented() -> (Router<Api>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(doc::ApiDoc::openapi())
        .routes(routes!(integrations))
        .routes(routes!(resources))
        .routes(routes!(create_grant, list_grants))
        .routes(routes!(plan_grant))
        .routes(routes!(get_grant))
        .routes(routes!(revoke_grant))
        .routes(routes!(extend_grant))
        .routes(routes!(audit))
        .routes(routes!(metrics))
        .routes(routes!(requests::create_request, requests::list_requests))
        .routes(routes!(requests::get_request))
        .routes(routes!(requests::approve_request))
        .routes(routes!(requests::deny_request))
        .routes(routes!(requests::cancel_request))
        .split_for_parts()
}

/// The OpenAPI document of the API, as `/v1/openapi.json` serves it.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    documented().1
}

/// The router: every `/v1` route (but the OpenAPI document) and `/metrics` need a token.
pub fn router(api: Api) -> Router {
    let (protected, document) = documented();
    let protected = protected.route_layer(middleware::from_fn_with_state(api.clone(), auth));
    let document = Arc::new(document);
    Router::new()
        .route(
            "/v1/openapi.json",
            get(move || {
                let document = document.clone();
                async move { axum::Json(document.as_ref().clone()).into_response() }
            }),
        )
        .merge(protected)
        .fallback(|| async {
            ApiError(
                StatusCode::NOT_FOUND,
                "no such route; see /v1/openapi.json".into(),
            )
        })
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(api)
}

/// The integrations this connector serves (those the token may act on).
#[utoipa::path(get, path = "/v1/integrations", tag = "integrations",
    responses((status = 200, body = Vec<doc::IntegrationInfo>), (status = 401, body = doc::ErrorBody)))]
async fn integrations(
    State(api): State<Api>,
    axum::Extension(actor): axum::Extension<Actor>,
) -> Reply {
    let list: Vec<doc::IntegrationInfo> = api
        .connector
        .integrations()
        .filter(|(_, c)| actor.1.covers(&c.name))
        .map(|(i, c)| doc::IntegrationInfo {
            name: c.name.clone(),
            guest_sha256: i.guest().sha256().to_string(),
            contract: i.guest().contract().to_string(),
            max_duration_secs: c.max_duration.as_secs(),
            default_permission: c.lifecycle.default_permission.clone(),
        })
        .collect();
    ok(StatusCode::OK, list)
}

/// Every resource of an integration (all pages of its guest's discovery).
#[utoipa::path(get, path = "/v1/integrations/{name}/resources", tag = "integrations",
    params(("name" = String, Path, description = "integration name")),
    responses((status = 200, body = Vec<doc::ResourceDoc>), (status = 401, body = doc::ErrorBody),
        (status = 403, body = doc::ErrorBody), (status = 404, body = doc::ErrorBody),
        (status = 500, body = doc::ErrorBody), (status = 502, body = doc::ErrorBody),
        (status = 504, body = doc::ErrorBody)))]
async fn resources(
    State(api): State<Api>,
    axum::Extension(actor): axum::Extension<Actor>,
    JsonPath(name): JsonPath<String>,
) -> Reply {
    actor.may_use(&name)?;
    ok(
        StatusCode::OK,
        service::resources(&api.connector, &name).await?,
    )
}

/// `duration`: seconds, or a string like `15m`.
#[derive(Deserialize)]
#[serde(untagged)]
enum DurationArg {
    /// A JSON number: whole seconds. `60.0` is a whole number too (JSON Schema's `integer`
    /// accepts it, and so do we); `1.5` is not.
    Secs(serde_json::Number),
    Text(String),
}

/// The longest duration a number may say before it is refused outright (about 31 years);
/// the integration's max_duration is far below it and refuses first.
const MAX_DURATION_SECS: u64 = 1_000_000_000;

/// Its schema: a whole number of seconds from 1, or a non-empty text like `15m`. The upper
/// bound is the integration's `max_duration` (GET /v1/integrations), answered 400 beyond.
impl utoipa::PartialSchema for DurationArg {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(1))
                    .maximum(Some(MAX_DURATION_SECS))
                    .description(Some("seconds")),
            )
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some(r"^\s*[0-9]+\s*[A-Za-z]+(\s*[0-9]+\s*[A-Za-z]+)*\s*$"))
                    .max_length(Some(64))
                    .description(Some("like 15m, 8h or 1h 30m")),
            )
            .description(Some(
                "How long: at most the integration's max_duration (GET /v1/integrations), else 400",
            ))
            .into()
    }
}

impl ToSchema for DurationArg {}

impl DurationArg {
    fn check(self) -> Result<Duration, ApiError> {
        match self {
            DurationArg::Secs(n) => match n.as_f64().filter(|f| f.fract() == 0.0) {
                Some(f) if f < 1.0 => Err(bad(format!("duration {n} must be more than zero"))),
                Some(f) if f > MAX_DURATION_SECS as f64 => {
                    Err(bad(format!("duration {n} is too long")))
                }
                Some(f) => Ok(Duration::from_secs(f as u64)),
                None => Err(bad(format!(
                    "duration {n} must be a whole number of seconds"
                ))),
            },
            DurationArg::Text(t) if t.len() > 64 => Err(bad("duration text is too long")),
            DurationArg::Text(t) => parse_duration(&t).map_err(|e| bad(format!("{e:#}"))),
        }
    }
}

/// A grant request. Unknown fields are errors.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct GrantBody {
    integration: String,
    resource: String,
    #[serde(default)]
    permission: Option<String>,
    user: String,
    #[serde(default)]
    username: Option<String>,
    duration: DurationArg,
    #[serde(default)]
    public_key: Option<String>,
}

/// Check a grant body as far as the host can before any guest runs: 404 for an unknown
/// integration, 400 for a bad duration or key.
fn grant_args(api: &Api, actor: &Actor, body: &Bytes) -> Result<GrantArgs, ApiError> {
    let body: GrantBody =
        serde_json::from_slice(body).map_err(|e| bad(format!("invalid grant request: {e}")))?;
    actor.may_use(&body.integration)?;
    let (_, ic) = service::integration(&api.connector, &body.integration)?;
    let duration = body.duration.check()?;
    service::check_duration(duration, ic)?;
    if let Some(key) = &body.public_key {
        check_public_key(key).map_err(|e| bad(format!("public_key: {e}")))?;
    }
    Ok(GrantArgs {
        grant_id: None,
        actor: actor.0.clone(),
        integration: body.integration,
        resource: body.resource,
        permission: body.permission,
        email: body.user,
        username: body.username,
        duration,
        public_key: body.public_key,
    })
}

/// Grant access: 201 with the access details (a generated private key or password shown
/// once). The status of an error comes from its type.
#[utoipa::path(post, path = "/v1/grants", tag = "grants", request_body = GrantBody,
    responses((status = 201, body = latch_service::Granted), (status = 400, body = doc::ErrorBody),
        (status = 401, body = doc::ErrorBody), (status = 403, body = doc::ErrorBody),
        (status = 404, body = doc::ErrorBody), (status = 409, body = doc::ErrorBody),
        (status = 413), (status = 500, body = doc::ErrorBody), (status = 502, body = doc::ErrorBody),
        (status = 504, body = doc::ErrorBody)))]
async fn create_grant(
    State(api): State<Api>,
    axum::Extension(actor): axum::Extension<Actor>,
    body: Bytes,
) -> Reply {
    let args = grant_args(&api, &actor, &body)?;
    tracing::info!(actor = %actor.0, "api grant");
    ok(
        StatusCode::CREATED,
        service::grant(&api.connector, &api.ledger, args).await?,
    )
}

/// What a grant would do on its server: reads carried out, changes listed, nothing granted.
#[utoipa::path(post, path = "/v1/grants/plan", tag = "grants", request_body = GrantBody,
    responses((status = 200, body = latch_service::Planned), (status = 400, body = doc::ErrorBody),
        (status = 401, body = doc::ErrorBody), (status = 403, body = doc::ErrorBody),
        (status = 404, body = doc::ErrorBody),
        (status = 413), (status = 500, body = doc::ErrorBody), (status = 502, body = doc::ErrorBody),
        (status = 504, body = doc::ErrorBody)))]
async fn plan_grant(
    State(api): State<Api>,
    axum::Extension(actor): axum::Extension<Actor>,
    body: Bytes,
) -> Reply {
    let args = grant_args(&api, &actor, &body)?;
    ok(
        StatusCode::OK,
        service::plan_grant(&api.connector, &api.ledger, args).await?,
    )
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    /// Only grants in this state (granting, active, revoking, revoked, failed).
    #[param(pattern = "^(granting|active|revoking|revoked|failed)$")]
    state: Option<String>,
}

/// Every grant on the integrations the token may act on, newest first.
#[utoipa::path(get, path = "/v1/grants", tag = "grants", params(ListQuery),
    responses((status = 200, body = Vec<latch_ledger::GrantRecord>),
        (status = 400, body = doc::ErrorBody), (status = 401, body = doc::ErrorBody),
        (status = 500, body = doc::ErrorBody)))]
async fn list_grants(
    State(api): State<Api>,
    axum::Extension(actor): axum::Extension<Actor>,
    JsonQuery(q): JsonQuery<ListQuery>,
) -> Reply {
    let state = q
        .state
        .as_deref()
        .map(GrantState::parse)
        .transpose()
        .map_err(|e| bad(format!("state: {e}")))?;
    let mut grants = api.ledger.list(state).map_err(internal)?;
    grants.retain(|g| actor.1.covers(&g.integration));
    ok(StatusCode::OK, grants)
}

/// One grant.
#[utoipa::path(get, path = "/v1/grants/{id}", tag = "grants",
    params(("id" = String, Path, description = "grant id, g- and 24 hex digits",
        pattern = "^g-[0-9a-f]{24}$")),
    responses((status = 200, body = latch_ledger::GrantRecord), (status = 400, body = doc::ErrorBody),
        (status = 401, body = doc::ErrorBody), (status = 403, body = doc::ErrorBody),
        (status = 404, body = doc::ErrorBody), (status = 500, body = doc::ErrorBody)))]
async fn get_grant(
    State(api): State<Api>,
    axum::Extension(actor): axum::Extension<Actor>,
    JsonPath(id): JsonPath<String>,
) -> Reply {
    check_grant_id(&id).map_err(bad)?;
    let record = api.ledger.get(&id)?;
    actor.may_use(&record.integration)?;
    ok(StatusCode::OK, record)
}

/// Take access away now (revoking a revoked grant succeeds and changes nothing).
#[utoipa::path(post, path = "/v1/grants/{id}/revoke", tag = "grants",
    params(("id" = String, Path, description = "grant id, g- and 24 hex digits",
        pattern = "^g-[0-9a-f]{24}$")),
    responses((status = 200, body = latch_ledger::GrantRecord), (status = 400, body = doc::ErrorBody),
        (status = 401, body = doc::ErrorBody), (status = 403, body = doc::ErrorBody),
        (status = 404, body = doc::ErrorBody), (status = 409, body = doc::ErrorBody),
        (status = 500, body = doc::ErrorBody), (status = 502, body = doc::ErrorBody),
        (status = 504, body = doc::ErrorBody)))]
async fn revoke_grant(
    State(api): State<Api>,
    axum::Extension(actor): axum::Extension<Actor>,
    JsonPath(id): JsonPath<String>,
) -> Reply {
    check_grant_id(&id).map_err(bad)?;
    actor.may_change(&api, &api.ledger.get(&id)?)?;
    ok(
        StatusCode::OK,
        service::revoke(&api.connector, &api.ledger, &id, &actor.0).await?,
    )
}

/// An extension: the new duration, from now.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ExtendBody {
    duration: DurationArg,
}

/// A later expiry, with new credentials (a certificate, or a password).
#[utoipa::path(post, path = "/v1/grants/{id}/extend", tag = "grants", request_body = ExtendBody,
    params(("id" = String, Path, description = "grant id, g- and 24 hex digits",
        pattern = "^g-[0-9a-f]{24}$")),
    responses((status = 200, body = latch_service::Granted), (status = 400, body = doc::ErrorBody),
        (status = 401, body = doc::ErrorBody), (status = 403, body = doc::ErrorBody),
        (status = 404, body = doc::ErrorBody), (status = 409, body = doc::ErrorBody),
        (status = 413), (status = 500, body = doc::ErrorBody), (status = 502, body = doc::ErrorBody),
        (status = 504, body = doc::ErrorBody)))]
async fn extend_grant(
    State(api): State<Api>,
    axum::Extension(actor): axum::Extension<Actor>,
    JsonPath(id): JsonPath<String>,
    body: Bytes,
) -> Reply {
    check_grant_id(&id).map_err(bad)?;
    let body: ExtendBody =
        serde_json::from_slice(&body).map_err(|e| bad(format!("invalid extend request: {e}")))?;
    let duration = body.duration.check()?;
    actor.may_change(&api, &api.ledger.get(&id)?)?;
    ok(
        StatusCode::OK,
        service::extend(&api.connector, &api.ledger, &id, duration, &actor.0).await?,
    )
}

/// Most audit records one request may ask for.
pub const MAX_AUDIT: usize = 10_000;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    /// How many of the newest records (default 100, 1 to 10,000).
    #[param(minimum = 1, maximum = 10000)]
    n: Option<usize>,
}

/// The newest audit records, oldest first (a token with read-audit in its scope).
#[utoipa::path(get, path = "/v1/audit", tag = "audit", params(AuditQuery),
    responses((status = 200, body = Vec<latch_ledger::audit::Record>),
        (status = 400, body = doc::ErrorBody), (status = 401, body = doc::ErrorBody),
        (status = 403, body = doc::ErrorBody), (status = 500, body = doc::ErrorBody)))]
async fn audit(
    State(api): State<Api>,
    axum::Extension(actor): axum::Extension<Actor>,
    JsonQuery(q): JsonQuery<AuditQuery>,
) -> Reply {
    actor.may_read_audit()?;
    let n = q.n.unwrap_or(100);
    if !(1..=MAX_AUDIT).contains(&n) {
        return Err(bad(format!("n must be 1 to {MAX_AUDIT}, not {n}")));
    }
    ok(StatusCode::OK, api.ledger.audit_tail(n).map_err(internal)?)
}

/// Prometheus metrics: grants by state, capability calls by outcome, revoke lag (a token
/// with read-audit in its scope).
#[utoipa::path(get, path = "/metrics", tag = "metrics",
    responses((status = 200, body = String, content_type = "text/plain"),
        (status = 401, body = doc::ErrorBody), (status = 403, body = doc::ErrorBody),
        (status = 500, body = doc::ErrorBody)))]
async fn metrics(
    State(api): State<Api>,
    axum::Extension(actor): axum::Extension<Actor>,
) -> Result<String, ApiError> {
    actor.may_read_audit()?;
    let (states, outcomes) = api.ledger.counts().map_err(internal)?;
    let lag = api.ledger.max_revoke_lag(unix_now()).map_err(internal)?;
    let mut out = String::from(
        "# HELP latch_grants Grants in the ledger, by state.\n# TYPE latch_grants gauge\n",
    );
    for s in ["granting", "active", "revoking", "revoked", "failed"] {
        let n = states.iter().find(|(k, _)| k == s).map_or(0, |(_, n)| *n);
        out.push_str(&format!("latch_grants{{state=\"{s}\"}} {n}\n"));
    }
    out.push_str("# HELP latch_capability_calls_total Capability calls, by outcome.\n# TYPE latch_capability_calls_total counter\n");
    for (outcome, n) in outcomes {
        out.push_str(&format!(
            "latch_capability_calls_total{{outcome=\"{outcome}\"}} {n}\n"
        ));
    }
    out.push_str("# HELP latch_revoke_lag_seconds_max Largest delay past expiry of a revoke in the last hour.\n# TYPE latch_revoke_lag_seconds_max gauge\n");
    out.push_str(&format!("latch_revoke_lag_seconds_max {lag}\n"));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn duration(json: &str) -> Result<Duration, String> {
        let arg: DurationArg = serde_json::from_str(json).map_err(|e| e.to_string())?;
        arg.check().map_err(|e| e.1)
    }

    #[test]
    fn durations_are_whole_seconds_or_text() {
        assert_eq!(duration("600"), Ok(Duration::from_secs(600)));
        // JSON Schema's `integer` includes 600.0; so do we.
        assert_eq!(duration("600.0"), Ok(Duration::from_secs(600)));
        assert_eq!(duration("\"1h 30m\""), Ok(Duration::from_secs(5400)));
        for bad in [
            "0", "0.0", "-5", "1.5", "1e300", "\"00\"", "\"0s\"", "\"5x\"",
        ] {
            assert!(duration(bad).is_err(), "{bad} was accepted");
        }
        let long = format!("\"{}\"", "1s ".repeat(30));
        assert!(duration(&long).unwrap_err().contains("too long"));
        assert!(
            duration("18446744073709551615")
                .unwrap_err()
                .contains("too long")
        );
    }
}
