//! The HTTP API of `latch serve`: the same operations as the CLI, behind bearer tokens.
//!
//! Defends the connector's front door: it listens on loopback unless configured otherwise;
//! every route but the OpenAPI document needs `Authorization: Bearer <token>`, where tokens
//! are created with `latch token create` and stored only as sha256; bodies are capped at
//! 64 KiB and parsed strictly (unknown fields are errors); bad input gets a 4xx with a JSON
//! message and nothing is recorded half-way (a grant is written to the ledger only after the
//! integration, duration and public key checked out).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::caps::certs::ca::unix_now;
use crate::config::parse_duration;
use crate::connector::Connector;
use crate::ledger::{Ledger, LedgerError, State as GrantState, check_grant_id};
use crate::service::{self, ErrorKind, GrantArgs, ServiceError, check_public_key};

/// Largest request body accepted.
pub const MAX_BODY: usize = 64 * 1024;

/// What every handler shares.
#[derive(Clone)]
pub struct Api {
    pub connector: Arc<Connector>,
    pub ledger: Arc<Ledger>,
}

/// An error response: status and a message a person can act on.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, axum::Json(json!({ "error": self.1 }))).into_response()
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

/// The token's name, put on the request for handlers (the audit's actor).
#[derive(Clone)]
struct Actor(String);

async fn auth(State(api): State<Api>, mut request: Request, next: Next) -> Response {
    let presented = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let name = match presented {
        Some(token) if !token.is_empty() && token.len() <= 256 => {
            api.ledger.token_name(&token_hash(token)).ok().flatten()
        }
        _ => None,
    };
    match name {
        Some(name) => {
            request
                .extensions_mut()
                .insert(Actor(format!("token:{name}")));
            next.run(request).await
        }
        None => ApiError(
            StatusCode::UNAUTHORIZED,
            "missing or invalid bearer token (create one with `latch token create NAME`)".into(),
        )
        .into_response(),
    }
}

/// The router: every `/v1` route (but the OpenAPI document) and `/metrics` need a token.
pub fn router(api: Api) -> Router {
    let protected = Router::new()
        .route("/v1/integrations", get(integrations))
        .route("/v1/integrations/{name}/resources", get(resources))
        .route("/v1/grants", post(create_grant).get(list_grants))
        .route("/v1/grants/plan", post(plan_grant))
        .route("/v1/grants/{id}", get(get_grant))
        .route("/v1/grants/{id}/revoke", post(revoke_grant))
        .route("/v1/grants/{id}/extend", post(extend_grant))
        .route("/v1/audit", get(audit))
        .route("/metrics", get(metrics))
        .route_layer(middleware::from_fn_with_state(api.clone(), auth));
    Router::new()
        .route("/v1/openapi.json", get(openapi))
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

async fn openapi() -> Response {
    let doc: Value =
        serde_json::from_str(include_str!("openapi.json")).expect("openapi.json is JSON");
    axum::Json(doc).into_response()
}

async fn integrations(State(api): State<Api>) -> Reply {
    let list: Vec<Value> = api
        .connector
        .integrations()
        .map(|(i, c)| {
            json!({
                "name": c.name, "guest_sha256": i.guest().sha256(),
                "max_duration_secs": c.max_duration.as_secs(),
            })
        })
        .collect();
    ok(StatusCode::OK, list)
}

async fn resources(State(api): State<Api>, Path(name): Path<String>) -> Reply {
    ok(
        StatusCode::OK,
        service::resources(&api.connector, &name).await?,
    )
}

/// `duration`: seconds, or a string like `15m`.
#[derive(Deserialize)]
#[serde(untagged)]
enum DurationArg {
    Secs(i64),
    Text(String),
}

impl DurationArg {
    fn check(self) -> Result<Duration, ApiError> {
        match self {
            DurationArg::Secs(s) if s > 0 => Ok(Duration::from_secs(s as u64)),
            DurationArg::Secs(s) => {
                Err(bad(format!("duration {s} must be more than zero seconds")))
            }
            DurationArg::Text(t) => parse_duration(&t).map_err(|e| bad(format!("{e:#}"))),
        }
    }
}

#[derive(Deserialize)]
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
    let (_, ic) = service::integration(&api.connector, &body.integration)?;
    let duration = body.duration.check()?;
    service::check_duration(duration, ic)?;
    if let Some(key) = &body.public_key {
        check_public_key(key).map_err(|e| bad(format!("public_key: {e}")))?;
    }
    Ok(GrantArgs {
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    state: Option<String>,
}

async fn list_grants(State(api): State<Api>, Query(q): Query<ListQuery>) -> Reply {
    let state = q
        .state
        .as_deref()
        .map(GrantState::parse)
        .transpose()
        .map_err(|e| bad(format!("state: {e}")))?;
    ok(StatusCode::OK, api.ledger.list(state).map_err(internal)?)
}

async fn get_grant(State(api): State<Api>, Path(id): Path<String>) -> Reply {
    check_grant_id(&id).map_err(bad)?;
    ok(StatusCode::OK, api.ledger.get(&id)?)
}

async fn revoke_grant(
    State(api): State<Api>,
    axum::Extension(actor): axum::Extension<Actor>,
    Path(id): Path<String>,
) -> Reply {
    check_grant_id(&id).map_err(bad)?;
    ok(
        StatusCode::OK,
        service::revoke(&api.connector, &api.ledger, &id, &actor.0).await?,
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExtendBody {
    duration: DurationArg,
}

async fn extend_grant(
    State(api): State<Api>,
    axum::Extension(actor): axum::Extension<Actor>,
    Path(id): Path<String>,
    body: Bytes,
) -> Reply {
    check_grant_id(&id).map_err(bad)?;
    let body: ExtendBody =
        serde_json::from_slice(&body).map_err(|e| bad(format!("invalid extend request: {e}")))?;
    let duration = body.duration.check()?;
    ok(
        StatusCode::OK,
        service::extend(&api.connector, &api.ledger, &id, duration, &actor.0).await?,
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    n: Option<usize>,
}

async fn audit(State(api): State<Api>, Query(q): Query<AuditQuery>) -> Reply {
    let n = q.n.unwrap_or(100).min(10_000);
    ok(StatusCode::OK, api.ledger.audit_tail(n).map_err(internal)?)
}

async fn metrics(State(api): State<Api>) -> Result<String, ApiError> {
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
