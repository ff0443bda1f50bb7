//! Access requests (issue 22): ask, approve, deny, cancel — each decided by the operator's
//! access policy ([`latch_access::Access`]) before the ledger is touched, each audited with the
//! identity and the policies that decided it; an approved request is granted by the same
//! durable path as a direct grant, under the grant id the approval chose, so it is granted at
//! most once (see `latch_ledger::request`).
//!
//! Who asks is an [`Principal`] the caller established (the CLI's OS user, an API token, a
//! signed-in person); this module never takes an identity from the request body.

use std::time::Duration;

use serde::Serialize;

use latch_access::{Access, Act, Ask, Principal};
use latch_caps::certs::ca::unix_now;
use latch_ledger::{Approval, Event, Ledger, RequestRecord, RequestState, new_request_id};

use crate::connector::Connector;
use crate::{GrantArgs, Granted, Result, ServiceError, check_duration, integration};

/// Longest justification kept (bytes).
pub const MAX_JUSTIFICATION: usize = 1024;

/// What a requester asks for.
#[derive(Debug, Clone)]
pub struct RequestArgs {
    pub integration: String,
    pub resource: String,
    /// `None` asks for the integration's default permission.
    pub permission: Option<String>,
    pub duration: Duration,
    pub justification: String,
    /// Where the integration issues certificates: the requester's public key.
    pub public_key: Option<String>,
    /// Whom the access is for, when the caller is a machine (a token) asking on a person's
    /// behalf; a person signed in asks for themselves (their e-mail) and names no one else.
    pub user: Option<String>,
}

/// The e-mail the access is for: the person's own, or the one a token names.
fn subject_of(who: &Principal, user: Option<&str>) -> Result<String> {
    let email = match (&who.email, user) {
        (Some(mine), None) => mine.clone(),
        (Some(mine), Some(other)) if other.eq_ignore_ascii_case(mine) => mine.clone(),
        (Some(_), Some(_)) => {
            return Err(ServiceError::BadRequest(
                "a person asks for access for themselves; leave out `user`".into(),
            ));
        }
        (None, Some(user)) => user.to_string(),
        (None, None) => {
            return Err(ServiceError::BadRequest(
                "say whom the access is for (`user`: their e-mail)".into(),
            ));
        }
    };
    let ok = (3..=254).contains(&email.len())
        && email.matches('@').count() == 1
        && !email.starts_with('@')
        && !email.ends_with('@')
        && email.chars().all(|c| !c.is_control() && !c.is_whitespace());
    if !ok {
        return Err(ServiceError::BadRequest(format!(
            "{:?} is not an e-mail address",
            email.chars().take(64).collect::<String>()
        )));
    }
    Ok(email)
}

/// What came of a request or an approval.
#[derive(Debug, Serialize)]
pub struct RequestOutcome {
    /// The request as it now stands.
    pub request: RequestRecord,
    /// Approvals still needed (0 once approved).
    pub approvals_needed: u32,
    /// The grant, when this step granted it (shown once: a generated key or password is in
    /// it, for the requester only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub granted: Option<Granted>,
}

fn audit(
    actor: &Principal,
    name: &str,
    r: &RequestRecord,
    outcome: &str,
    detail: serde_json::Value,
) -> Event {
    Event {
        actor: identity_of(actor),
        event: name.to_string(),
        grant_id: r.grant_id.clone(),
        integration: Some(r.integration.clone()),
        guest_sha256: None,
        target: None,
        detail: serde_json::json!({
            "request_id": r.request_id,
            "resource": r.resource_id,
            "permission": r.permission,
            "requester": r.requester,
            "detail": detail,
        }),
        outcome: outcome.to_string(),
    }
}

/// How an identity is named in the audit log: its id, and its e-mail when it has one.
pub fn identity_of(p: &Principal) -> String {
    match &p.email {
        Some(e) => format!("{} <{e}>", p.id),
        None => p.id.clone(),
    }
}

/// Refuse, audited: nothing was recorded but this.
fn refused(
    ledger: &Ledger,
    who: &Principal,
    what: &str,
    integration: &str,
    why: String,
    policies: &[String],
) -> ServiceError {
    let _ = ledger.audit(Event {
        actor: identity_of(who),
        event: what.to_string(),
        integration: Some(integration.to_string()),
        detail: serde_json::json!({ "why": why, "policies": policies }),
        outcome: "refused".into(),
        ..Default::default()
    });
    ServiceError::Forbidden(why)
}

/// Check a justification: at most [`MAX_JUSTIFICATION`] bytes, no control characters.
fn check_justification(text: &str) -> Result<()> {
    if text.len() > MAX_JUSTIFICATION {
        return Err(ServiceError::BadRequest(format!(
            "the justification is {} bytes; at most {MAX_JUSTIFICATION}",
            text.len()
        )));
    }
    if text.chars().any(|c| c.is_control()) {
        return Err(ServiceError::BadRequest(
            "the justification holds a control character".into(),
        ));
    }
    Ok(())
}

/// Ask for access: decided by the policy; recorded `pending` (or granted at once when the
/// policy asks for no approval).
pub async fn request(
    connector: &Connector,
    ledger: &Ledger,
    access: &Access,
    who: &Principal,
    args: RequestArgs,
) -> Result<RequestOutcome> {
    let (_, ic) = integration(connector, &args.integration)?;
    check_duration(args.duration, ic)?;
    check_justification(&args.justification)?;
    let subject = subject_of(who, args.user.as_deref())?;
    let resources = crate::resources(connector, &args.integration).await?;
    let Some(resource) = resources.iter().find(|r| r.id == args.resource) else {
        return Err(ServiceError::NotFound(format!(
            "integration {:?} has no resource {:?}",
            args.integration, args.resource
        )));
    };
    let permission = args
        .permission
        .clone()
        .unwrap_or_else(|| ic.lifecycle.default_permission.clone());
    if !resource.permissions.is_empty() && !resource.permissions.contains(&permission) {
        return Err(ServiceError::BadRequest(format!(
            "resource {:?} offers permissions [{}], not {permission:?}",
            resource.id,
            resource.permissions.join(", ")
        )));
    }
    let ask = Ask {
        integration: args.integration.clone(),
        resource: args.resource.clone(),
        tags: resource.tags.iter().cloned().collect(),
        permission: permission.clone(),
        duration: args.duration,
        justification: args.justification.clone(),
        other: None,
    };
    let decision = access.decide(who, Act::Request, &ask);
    if !decision.allowed {
        return Err(refused(
            ledger,
            who,
            "request.refused",
            &args.integration,
            format!(
                "the access policy does not let {} request {permission:?} on {} for {}{}",
                identity_of(who),
                args.resource,
                humantime::format_duration(args.duration),
                if decision.why.is_empty() {
                    String::new()
                } else {
                    format!(" (decided by {})", decision.why.join(", "))
                }
            ),
            &decision.why,
        ));
    }
    // What Latch generates for the requester (a key pair, a password) is shown once, to the
    // requester, in the answer to the call that grants. A request that waits for approval is
    // granted in an approver's call, so it must carry the requester's own public key; a
    // password granted on approval would need a pickup by the requester, which is not built.
    if decision.approvals > 0 {
        match ic.credential {
            latch_runtime::CredentialKind::SshCertificate if args.public_key.is_none() => {
                return Err(ServiceError::BadRequest(
                    "this request waits for approval: give your public key (the certificate is \
                     issued for it when approved; a generated key could not reach you)"
                        .into(),
                ));
            }
            latch_runtime::CredentialKind::Password => {
                return Err(ServiceError::BadRequest(format!(
                    "integration {:?} issues a password, and this request waits for approval: \
                     handing the password to the requester after an approval is not built yet",
                    ic.name
                )));
            }
            _ => {}
        }
    }
    if let Some(key) = &args.public_key {
        crate::check_public_key(key)?;
    }
    let now = unix_now();
    let record = RequestRecord {
        request_id: new_request_id(),
        integration: args.integration.clone(),
        resource_id: args.resource.clone(),
        permission,
        requester: who.id.clone(),
        requester_email: Some(subject),
        requester_groups: who.groups.clone(),
        public_key: args.public_key.clone().unwrap_or_default(),
        duration_secs: args.duration.as_secs(),
        justification: args.justification.clone(),
        approvals_needed: decision.approvals,
        policies: decision.why.clone(),
        created_at: now,
        decide_by: now + decision.window.as_secs().max(60),
        state: RequestState::Pending,
        grant_id: None,
        closed_at: None,
        closed_by: None,
        reason: None,
    };
    let created = ledger.create_request(
        &record,
        audit(
            who,
            "request.created",
            &record,
            "ok",
            serde_json::json!({
                "duration_secs": record.duration_secs,
                "justification": record.justification,
                "approvals_needed": record.approvals_needed,
                "policies": record.policies,
            }),
        ),
    )?;
    if created.state == RequestState::Approved {
        let granted = grant_approved(connector, ledger, &created).await?;
        return Ok(RequestOutcome {
            request: ledger.request(&created.request_id)?,
            approvals_needed: 0,
            granted: Some(granted),
        });
    }
    Ok(RequestOutcome {
        approvals_needed: created.approvals_needed,
        request: created,
        granted: None,
    })
}

/// The requester of `r`, as the policy sees them: a token's identity is `token:NAME` (the
/// API names it so), anyone else's a person's.
fn requester_of(r: &RequestRecord) -> Principal {
    Principal {
        id: r.requester.clone(),
        email: r.requester_email.clone(),
        groups: r.requester_groups.clone(),
        kind: if r.requester.starts_with("token:") {
            "token"
        } else {
            "person"
        },
    }
}

/// Latch itself (`latch`, `scheduler`) as the actor of a step no caller took.
fn system(id: &str) -> Principal {
    Principal {
        id: id.into(),
        email: None,
        groups: Vec::new(),
        kind: "token",
    }
}

/// What deciding request `r` (approve, deny, see) asks of the policy.
pub fn ask_of(r: &RequestRecord) -> Ask {
    Ask {
        integration: r.integration.clone(),
        resource: r.resource_id.clone(),
        tags: Default::default(),
        permission: r.permission.clone(),
        duration: Duration::from_secs(r.duration_secs),
        justification: r.justification.clone(),
        other: Some(requester_of(r)),
    }
}

/// Approve request `request_id` as `who`: decided by the policy (and never one's own); the
/// last approval needed grants it.
pub async fn approve(
    connector: &Connector,
    ledger: &Ledger,
    access: &Access,
    who: &Principal,
    request_id: &str,
) -> Result<RequestOutcome> {
    let r = ledger.request(request_id)?;
    let decision = access.decide(who, Act::Approve, &ask_of(&r));
    if !decision.allowed {
        return Err(refused(
            ledger,
            who,
            "request.approval_refused",
            &r.integration,
            format!(
                "the access policy does not let {} approve request {request_id}{}",
                identity_of(who),
                if decision.why.is_empty() {
                    String::new()
                } else {
                    format!(" (decided by {})", decision.why.join(", "))
                }
            ),
            &decision.why,
        ));
    }
    let now = unix_now();
    let approval = Approval {
        approver: who.id.clone(),
        email: who.email.clone(),
        policies: decision.why.clone(),
        at: now,
    };
    let outcome = ledger.approve_request(
        request_id,
        &approval,
        now,
        audit(
            who,
            "request.approved_by",
            &r,
            "ok",
            serde_json::json!({ "policies": decision.why }),
        ),
    )?;
    match outcome {
        latch_ledger::request::Approved::Counted { more } => Ok(RequestOutcome {
            request: ledger.request(request_id)?,
            approvals_needed: more,
            granted: None,
        }),
        latch_ledger::request::Approved::Approved { .. } => {
            let approved = ledger.request(request_id)?;
            // Only a certificate for the requester's own key (or no credential) is issued
            // here (see `request`): nothing in it is secret, and the approver is not shown it.
            grant_approved(connector, ledger, &approved).await?;
            Ok(RequestOutcome {
                request: ledger.request(request_id)?,
                approvals_needed: 0,
                granted: None,
            })
        }
    }
}

/// Deny request `request_id` as `who` (anyone the policy lets approve it may deny it).
pub fn deny(
    ledger: &Ledger,
    access: &Access,
    who: &Principal,
    request_id: &str,
    reason: &str,
) -> Result<RequestRecord> {
    check_justification(reason)?;
    let r = ledger.request(request_id)?;
    let decision = access.decide(who, Act::Approve, &ask_of(&r));
    if !decision.allowed {
        return Err(refused(
            ledger,
            who,
            "request.denial_refused",
            &r.integration,
            format!(
                "the access policy does not let {} decide request {request_id}",
                identity_of(who)
            ),
            &decision.why,
        ));
    }
    ledger.close_request(
        request_id,
        RequestState::Denied,
        &who.id,
        Some(reason),
        unix_now(),
        audit(
            who,
            "request.denied",
            &r,
            "ok",
            serde_json::json!({ "reason": reason, "policies": decision.why }),
        ),
    )?;
    Ok(ledger.request(request_id)?)
}

/// Withdraw request `request_id`: its requester only.
pub fn cancel(ledger: &Ledger, who: &Principal, request_id: &str) -> Result<RequestRecord> {
    let r = ledger.request(request_id)?;
    if r.requester != who.id {
        return Err(refused(
            ledger,
            who,
            "request.cancel_refused",
            &r.integration,
            format!("only its requester cancels request {request_id}"),
            &[],
        ));
    }
    ledger.close_request(
        request_id,
        RequestState::Canceled,
        &who.id,
        None,
        unix_now(),
        audit(who, "request.canceled", &r, "ok", serde_json::Value::Null),
    )?;
    Ok(ledger.request(request_id)?)
}

/// Make the grant of approved request `r`, under the grant id its approval chose, and note
/// the outcome. A second call for the same request (after a crash) finds the grant recorded
/// and grants nothing: the ledger refuses a second grant of that id.
pub async fn grant_approved(
    connector: &Connector,
    ledger: &Ledger,
    r: &RequestRecord,
) -> Result<Granted> {
    let grant_id = r.grant_id.clone().ok_or_else(|| {
        ServiceError::Conflict(format!("request {} has no grant id", r.request_id))
    })?;
    let args = GrantArgs {
        actor: format!("request:{}", r.request_id),
        integration: r.integration.clone(),
        resource: r.resource_id.clone(),
        permission: Some(r.permission.clone()),
        email: r
            .requester_email
            .clone()
            .unwrap_or_else(|| r.requester.clone()),
        username: None,
        duration: Duration::from_secs(r.duration_secs),
        public_key: (!r.public_key.is_empty()).then(|| r.public_key.clone()),
        grant_id: Some(grant_id.clone()),
    };
    let system = system("latch");
    if ledger.get(&grant_id).is_ok() {
        return Err(ServiceError::Conflict(format!(
            "request {} was granted already (grant {grant_id})",
            r.request_id
        )));
    }
    match crate::grant(connector, ledger, args).await {
        Ok(granted) => {
            ledger.finish_request(
                &r.request_id,
                RequestState::Granted,
                None,
                unix_now(),
                audit(
                    &system,
                    "request.granted",
                    r,
                    "ok",
                    serde_json::json!({ "grant_id": grant_id }),
                ),
            )?;
            Ok(granted)
        }
        // Another process recorded this grant id first: it is that process's to finish.
        Err(e) if ledger.get(&grant_id).is_ok() && !matches!(e, ServiceError::Guest { .. }) => {
            Err(ServiceError::Conflict(format!(
                "request {} is being granted elsewhere (grant {grant_id}): {e}",
                r.request_id
            )))
        }
        Err(e) => {
            let reason = e.to_string();
            ledger.finish_request(
                &r.request_id,
                RequestState::Failed,
                Some(&reason),
                unix_now(),
                audit(
                    &system,
                    "request.failed",
                    r,
                    "failed",
                    serde_json::json!({ "error": reason }),
                ),
            )?;
            Err(e)
        }
    }
}

/// Time out pending requests whose window has passed (the scheduler's tick).
pub fn time_out(ledger: &Ledger) -> Result<Vec<RequestRecord>> {
    let system = system("scheduler");
    Ok(ledger.time_out_requests(unix_now(), |r| {
        audit(
            &system,
            "request.timed_out",
            r,
            "ok",
            serde_json::Value::Null,
        )
    })?)
}

/// After a crash: note the outcome of approved requests whose grant was made (its state says
/// granted or failed), and fail those whose grant was never recorded within `grace` seconds
/// of their last approval (asked again, never granted late by surprise). Pending requests past
/// their window time out.
pub fn reconcile(ledger: &Ledger, grace: u64) -> Result<()> {
    time_out(ledger)?;
    let system = system("scheduler");
    let now = unix_now();
    for r in ledger.approved_requests()? {
        let Some(grant_id) = &r.grant_id else {
            continue;
        };
        match ledger.get(grant_id) {
            Ok(g) => {
                use latch_ledger::State;
                let (to, reason) = match g.state {
                    State::Granting => continue, // still being granted
                    State::Failed => (RequestState::Failed, g.last_error.clone()),
                    _ => (RequestState::Granted, None),
                };
                let event = audit(
                    &system,
                    "request.reconciled",
                    &r,
                    "ok",
                    serde_json::json!({ "grant": g.state.as_str() }),
                );
                ledger.finish_request(&r.request_id, to, reason.as_deref(), now, event)?;
            }
            Err(latch_ledger::LedgerError::NotFound(_)) => {
                let approved_at = ledger
                    .approvals(&r.request_id)?
                    .iter()
                    .map(|a| a.at)
                    .max()
                    .unwrap_or(r.created_at);
                if approved_at + grace > now {
                    continue;
                }
                let reason =
                    "interrupted before its grant was made (connector restarted); ask again";
                let event = audit(
                    &system,
                    "request.failed",
                    &r,
                    "failed",
                    serde_json::json!({ "error": reason }),
                );
                ledger.finish_request(
                    &r.request_id,
                    RequestState::Failed,
                    Some(reason),
                    now,
                    event,
                )?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
