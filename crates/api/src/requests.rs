//! `/v1/requests`: ask for access, approve, deny, cancel — each decided by the access policy
//! (`[access] policy`) for the caller's identity (`token:NAME` in its scope's groups), each
//! audited. Without an access policy the routes answer 404: there is nothing to decide by.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use latch_access::{Access, Act, Principal};
use latch_ledger::{RequestRecord, RequestState};
use latch_service::requests::{self, RequestArgs};

use super::{Actor, Api, ApiError, DurationArg, JsonPath, JsonQuery, Reply, bad, doc, ok};

impl Actor {
    /// The caller as the access policy sees it.
    fn principal(&self) -> Principal {
        Principal {
            id: self.0.clone(),
            email: None,
            groups: self.1.groups.clone(),
            kind: "token",
        }
    }
}

fn access(api: &Api) -> Result<&Arc<Access>, ApiError> {
    api.access.as_ref().ok_or_else(|| {
        ApiError(
            StatusCode::NOT_FOUND,
            "this connector has no access policy ([access] policy in latch.toml): requests \
             are decided by it"
                .into(),
        )
    })
}

/// May the caller see request `r`: its own, or one the policy lets it approve.
fn may_see(access: &Access, actor: &Actor, r: &RequestRecord) -> bool {
    if r.requester == actor.0 {
        return true;
    }
    let ask = requests::ask_of(r);
    actor.1.covers(&r.integration)
        && access
            .decide(&actor.principal(), Act::Approve, &ask)
            .allowed
}

/// A request for access. Unknown fields are errors.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RequestBody {
    integration: String,
    resource: String,
    #[serde(default)]
    permission: Option<String>,
    duration: DurationArg,
    /// Why (at most 1024 bytes, no control characters).
    justification: String,
    /// The requester's OpenSSH public key: needed when the request waits for approval.
    #[serde(default)]
    public_key: Option<String>,
    /// Whom the access is for (their e-mail): a token asks on a person's behalf.
    user: String,
}

/// Ask for access: 201 with the request (`pending`, or `granted` with the access details when
/// the policy asks for no approval). 403 when the policy refuses (audited).
#[utoipa::path(post, path = "/v1/requests", tag = "requests", request_body = RequestBody,
    responses((status = 201, body = Object), (status = 400, body = doc::ErrorBody),
        (status = 401, body = doc::ErrorBody), (status = 403, body = doc::ErrorBody),
        (status = 404, body = doc::ErrorBody), (status = 409, body = doc::ErrorBody),
        (status = 413), (status = 500, body = doc::ErrorBody), (status = 502, body = doc::ErrorBody),
        (status = 504, body = doc::ErrorBody)))]
pub(super) async fn create_request(
    State(api): State<Api>,
    axum::Extension(actor): axum::Extension<Actor>,
    body: Bytes,
) -> Reply {
    let access = access(&api)?.clone();
    let body: RequestBody =
        serde_json::from_slice(&body).map_err(|e| bad(format!("invalid request: {e}")))?;
    actor.may_use(&body.integration)?;
    let duration = body.duration.check()?;
    let out = requests::request(
        &api.connector,
        &api.ledger,
        &access,
        &actor.principal(),
        RequestArgs {
            integration: body.integration,
            resource: body.resource,
            permission: body.permission,
            duration,
            justification: body.justification,
            public_key: body.public_key,
            user: Some(body.user),
        },
    )
    .await?;
    ok(StatusCode::CREATED, out)
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct ListQuery {
    /// Only requests in this state.
    #[param(pattern = "^(pending|approved|granted|denied|canceled|timed_out|failed)$")]
    state: Option<String>,
}

/// The requests the caller may see (its own, and those the policy lets it approve), newest
/// first.
#[utoipa::path(get, path = "/v1/requests", tag = "requests", params(ListQuery),
    responses((status = 200, body = Vec<Object>), (status = 400, body = doc::ErrorBody),
        (status = 401, body = doc::ErrorBody), (status = 404, body = doc::ErrorBody),
        (status = 500, body = doc::ErrorBody)))]
pub(super) async fn list_requests(
    State(api): State<Api>,
    axum::Extension(actor): axum::Extension<Actor>,
    JsonQuery(q): JsonQuery<ListQuery>,
) -> Reply {
    let access = access(&api)?;
    let state = q
        .state
        .as_deref()
        .map(RequestState::parse)
        .transpose()
        .map_err(|e| bad(format!("state: {e}")))?;
    let seen: Vec<RequestRecord> = api
        .ledger
        .requests(state)?
        .into_iter()
        .filter(|r| may_see(access, &actor, r))
        .collect();
    ok(StatusCode::OK, seen)
}

fn visible(api: &Api, actor: &Actor, id: &str) -> Result<(Arc<Access>, RequestRecord), ApiError> {
    let access = access(api)?.clone();
    let r = api.ledger.request(id)?;
    if !may_see(&access, actor, &r) {
        // As if it did not exist: ids are 96 random bits, and whose they are is no one
        // else's business.
        return Err(ApiError(StatusCode::NOT_FOUND, format!("no request {id}")));
    }
    Ok((access, r))
}

/// One request (the caller's own, or one it may approve).
#[utoipa::path(get, path = "/v1/requests/{id}", tag = "requests",
    params(("id" = String, Path, description = "request id, r- and 24 hex digits",
        pattern = "^r-[0-9a-f]{24}$")),
    responses((status = 200, body = Object), (status = 400, body = doc::ErrorBody),
        (status = 401, body = doc::ErrorBody), (status = 404, body = doc::ErrorBody),
        (status = 500, body = doc::ErrorBody)))]
pub(super) async fn get_request(
    State(api): State<Api>,
    axum::Extension(actor): axum::Extension<Actor>,
    JsonPath(id): JsonPath<String>,
) -> Reply {
    let (_, r) = visible(&api, &actor, &id)?;
    let approvals = api.ledger.approvals(&id)?;
    ok(
        StatusCode::OK,
        serde_json::json!({ "request": r, "approvals": approvals }),
    )
}

/// Approve a pending request (never one's own); the last approval needed grants it.
#[utoipa::path(post, path = "/v1/requests/{id}/approve", tag = "requests",
    params(("id" = String, Path, description = "request id, r- and 24 hex digits",
        pattern = "^r-[0-9a-f]{24}$")),
    responses((status = 200, body = Object), (status = 400, body = doc::ErrorBody),
        (status = 401, body = doc::ErrorBody), (status = 403, body = doc::ErrorBody),
        (status = 404, body = doc::ErrorBody), (status = 409, body = doc::ErrorBody),
        (status = 500, body = doc::ErrorBody), (status = 502, body = doc::ErrorBody),
        (status = 504, body = doc::ErrorBody)))]
pub(super) async fn approve_request(
    State(api): State<Api>,
    axum::Extension(actor): axum::Extension<Actor>,
    JsonPath(id): JsonPath<String>,
) -> Reply {
    let access = access(&api)?.clone();
    let r = api.ledger.request(&id)?;
    actor.may_use(&r.integration)?;
    let out = requests::approve(
        &api.connector,
        &api.ledger,
        &access,
        &actor.principal(),
        &id,
    )
    .await?;
    ok(StatusCode::OK, out)
}

/// Why a request is denied.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct DenyBody {
    /// At most 1024 bytes, no control characters.
    reason: String,
}

/// Deny a pending request (whoever may approve it may deny it).
#[utoipa::path(post, path = "/v1/requests/{id}/deny", tag = "requests", request_body = DenyBody,
    params(("id" = String, Path, description = "request id, r- and 24 hex digits",
        pattern = "^r-[0-9a-f]{24}$")),
    responses((status = 200, body = Object), (status = 400, body = doc::ErrorBody),
        (status = 401, body = doc::ErrorBody), (status = 403, body = doc::ErrorBody),
        (status = 404, body = doc::ErrorBody), (status = 409, body = doc::ErrorBody),
        (status = 413), (status = 500, body = doc::ErrorBody)))]
pub(super) async fn deny_request(
    State(api): State<Api>,
    axum::Extension(actor): axum::Extension<Actor>,
    JsonPath(id): JsonPath<String>,
    body: Bytes,
) -> Reply {
    let access = access(&api)?.clone();
    let body: DenyBody =
        serde_json::from_slice(&body).map_err(|e| bad(format!("invalid denial: {e}")))?;
    let r = api.ledger.request(&id)?;
    actor.may_use(&r.integration)?;
    let out = requests::deny(&api.ledger, &access, &actor.principal(), &id, &body.reason)?;
    ok(StatusCode::OK, out)
}

/// Withdraw one's own pending request.
#[utoipa::path(post, path = "/v1/requests/{id}/cancel", tag = "requests",
    params(("id" = String, Path, description = "request id, r- and 24 hex digits",
        pattern = "^r-[0-9a-f]{24}$")),
    responses((status = 200, body = Object), (status = 400, body = doc::ErrorBody),
        (status = 401, body = doc::ErrorBody), (status = 403, body = doc::ErrorBody),
        (status = 404, body = doc::ErrorBody), (status = 409, body = doc::ErrorBody),
        (status = 500, body = doc::ErrorBody)))]
pub(super) async fn cancel_request(
    State(api): State<Api>,
    axum::Extension(actor): axum::Extension<Actor>,
    JsonPath(id): JsonPath<String>,
) -> Reply {
    let (_, r) = visible(&api, &actor, &id)?;
    let _ = r;
    let out = requests::cancel(&api.ledger, &actor.principal(), &id)?;
    ok(StatusCode::OK, out)
}
