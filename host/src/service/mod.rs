//! Grant, revoke and list resources: the operations the CLI (and later the HTTP API) offer.
//!
//! Everything a request carries is checked here before a guest runs: the integration, the
//! duration against the integration's maximum, the public key's format. The grant is
//! recorded in the ledger before the guest's `grant` runs, and every capability call and
//! outcome is appended to the audit chain; a failed grant is rolled back with the guest's
//! (idempotent) `revoke`. When the requester brings no public key, the *host* generates the
//! key pair, so private key material never enters a guest, and returns it once.

mod error;

use std::time::Duration;

use serde::Serialize;

pub use error::{ErrorKind, Result, ServiceError};

use crate::caps::CapCall;
use crate::caps::certs::ca::{generate_key_pair, unix_now};
use crate::caps::{Outcome, Secret};
use crate::config::IntegrationConfig;
use crate::connector::Connector;
use crate::ledger::{Event, GrantRecord, Ledger, State, new_grant_id};
use crate::runtime::{
    AccessDetails, CallError, CallReport, Export, GrantRequest, Identity, Integration, Resource,
    Returned,
};

/// What someone asks for.
#[derive(Clone, Debug)]
pub struct GrantArgs {
    /// Who is asking, for the audit log: `token:NAME` through the API, `os-user:NAME` from
    /// the CLI. The requester (`email`) is the subject, not the actor: a stolen token's
    /// grants are blamed on the token, not on the people it named.
    pub actor: String,
    pub integration: String,
    pub resource: String,
    pub permission: String,
    pub email: String,
    pub username: Option<String>,
    pub duration: Duration,
    pub public_key: Option<String>,
}

/// What they get.
#[derive(Debug, Serialize)]
pub struct Granted {
    pub grant_id: String,
    pub integration: String,
    pub resource: String,
    pub username: String,
    pub host: String,
    pub port: u16,
    pub certificate: Option<String>,
    /// Only when Latch generated the key pair; shown once, never stored.
    #[serde(serialize_with = "expose_once")]
    pub private_key: Option<Secret>,
    pub expires_at: u64,
    pub instructions: String,
}

impl Granted {
    /// The answer for `record`, granted with `access`.
    fn new(record: GrantRecord, access: AccessDetails, private_key: Option<Secret>) -> Granted {
        Granted {
            grant_id: record.grant_id,
            integration: record.integration,
            resource: record.resource_id,
            username: access.username,
            host: access.host,
            port: access.port,
            certificate: access.certificate,
            private_key,
            expires_at: record.expires_at,
            instructions: access.instructions,
        }
    }
}

fn expose_once<S: serde::Serializer>(
    key: &Option<Secret>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    match key {
        Some(k) => s.serialize_str(&String::from_utf8_lossy(k.expose())),
        None => s.serialize_none(),
    }
}

fn request_of(record: &GrantRecord) -> GrantRequest {
    GrantRequest {
        grant_id: record.grant_id.clone(),
        resource_id: record.resource_id.clone(),
        permission: record.permission.clone(),
        identity: Identity {
            email: record.email.clone(),
            username: record.requested_username.clone(),
        },
        public_key: Some(record.public_key.clone()),
        expires_at: record.expires_at,
    }
}

/// Check a public key line before it goes anywhere.
pub fn check_public_key(line: &str) -> Result<String> {
    let line = line.trim();
    if line.lines().count() != 1 {
        return Err(ServiceError::BadRequest(
            "the public key must be one OpenSSH public key line".into(),
        ));
    }
    ssh_key::PublicKey::from_openssh(line).map_err(|_| {
        ServiceError::BadRequest("the public key is not an OpenSSH public key line".into())
    })?;
    Ok(line.to_string())
}

/// The integration `name` of `connector`, or [`ServiceError::UnknownIntegration`].
pub fn integration<'c>(
    connector: &'c Connector,
    name: &str,
) -> Result<(&'c Integration, &'c IntegrationConfig)> {
    connector
        .integration(name)
        .map_err(|e| ServiceError::UnknownIntegration(e.to_string()))
}

/// [`ServiceError::BadRequest`] unless `duration` is more than zero and at most the
/// integration's `max_duration`.
pub fn check_duration(duration: Duration, ic: &IntegrationConfig) -> Result<()> {
    if duration.is_zero() || duration > ic.max_duration {
        return Err(ServiceError::BadRequest(format!(
            "duration {} is not allowed: integration {:?} grants at most {} (its maximum) from now",
            humantime::format_duration(duration),
            ic.name,
            humantime::format_duration(ic.max_duration)
        )));
    }
    Ok(())
}

/// Give access.
pub async fn grant(connector: &Connector, ledger: &Ledger, args: GrantArgs) -> Result<Granted> {
    let (integration, ic) = integration(connector, &args.integration)?;
    check_duration(args.duration, ic)?;
    let (public_key, private_key) = match &args.public_key {
        Some(k) => (check_public_key(k)?, None),
        None => {
            let (private, public) =
                generate_key_pair(&args.email).map_err(|e| anyhow::anyhow!("{e}"))?;
            (public, Some(private))
        }
    };
    let now = unix_now();
    let mut record = GrantRecord {
        grant_id: new_grant_id(),
        integration: ic.name.clone(),
        resource_id: args.resource.clone(),
        permission: args.permission.clone(),
        email: args.email.clone(),
        requested_username: args.username.clone(),
        public_key,
        created_at: now,
        expires_at: now + args.duration.as_secs(),
        state: State::Granting,
        username: None,
        host: None,
        port: None,
        revoked_at: None,
        last_error: None,
        guest_sha256: integration.guest().sha256().to_string(),
        granting_since: None,
        cleanup_due_at: None,
        cleaned_up_at: None,
    };
    let actor = args.actor.clone();
    ledger.create(
        &record,
        event(
            &actor,
            "grant.requested",
            &record,
            "pending",
            serde_json::json!({
                "requester": record.email,
                "resource": record.resource_id,
                "permission": record.permission,
                "expires_at": record.expires_at,
                "public_key": record.public_key,
            }),
        ),
    )?;
    let _serial = connector
        .lock_resource(&record.integration, &record.resource_id)
        .await;
    let report = run_grant(connector, integration, ic, &record).await;
    audit_calls(ledger, &actor, &record, &report)?;
    // Did any command run on a server? (A connection refused, or a host key refused, runs
    // nothing.)
    let ran_a_command = report.records.iter().any(|r| {
        matches!(
            r.call,
            CapCall::SshExec { .. } | CapCall::WinrmInvoke { .. }
        ) && matches!(r.outcome, Outcome::Ok { .. })
    });
    let touched_a_server = report
        .records
        .iter()
        .any(|r| !matches!(r.outcome, Outcome::Refused { .. }));
    match report.result {
        Ok(Returned::Access(access)) => {
            record.state = State::Active;
            record.username = Some(access.username.clone());
            record.host = Some(access.host.clone());
            record.port = Some(access.port);
            let detail = serde_json::json!({
                "username": access.username, "host": access.host, "port": access.port,
            });
            ledger.update(
                &record,
                State::Granting,
                event(&actor, "grant.active", &record, "ok", detail),
            )?;
            Ok(Granted::new(record, access, private_key))
        }
        other => {
            let call_error = match other {
                Err(e) => e,
                Ok(r) => CallError::Trap(format!("grant returned {r:?} instead of access details")),
            };
            let error = call_error.to_string();
            let detail = serde_json::json!({ "error": error });
            if !touched_a_server {
                // Refused before any capability call was carried out (bad input, policy):
                // nothing happened anywhere, so no grant is kept and nothing is undone; the
                // refusal stays in the audit log.
                ledger.discard(
                    &record.grant_id,
                    event(&actor, "grant.refused", &record, "refused", detail),
                )?;
                return Err(ServiceError::guest("grant refused", call_error));
            }
            record.state = State::Failed;
            record.last_error = Some(error.clone());
            ledger.update(
                &record,
                State::Granting,
                event(&actor, "grant.failed", &record, "failed", detail),
            )?;
            // Undo whatever part of the grant happened; revoke is idempotent.
            let undo = run_revoke(connector, integration, ic, &record).await;
            audit_calls(ledger, &actor, &record, &undo)?;
            match &undo.result {
                Ok(_) => {
                    let rolled_back = event(
                        &actor,
                        "grant.rolled_back",
                        &record,
                        "ok",
                        serde_json::Value::Null,
                    );
                    ledger.audit(rolled_back)?;
                }
                Err(e) if ran_a_command => {
                    // Whatever part of the grant happened may still be on the server: hand
                    // the grant to the scheduler, which retries the revoke until it succeeds.
                    tracing::error!(grant = %record.grant_id, "rolling back the failed grant failed: {e}");
                    record.state = State::Revoking;
                    record.last_error = Some(format!("rollback failed: {e}"));
                    let detail =
                        serde_json::json!({ "error": e.to_string(), "retried_by": "latch serve" });
                    ledger.update(
                        &record,
                        State::Failed,
                        event(&actor, "grant.rolled_back", &record, "failed", detail),
                    )?;
                    ledger.retry_at(&record.grant_id, unix_now() + 2)?;
                }
                Err(e) => {
                    // No command ever ran on the server (it could not be reached, or its host
                    // key was refused): nothing to undo there; the grant stays `failed`.
                    tracing::warn!(grant = %record.grant_id, "rollback could not reach the server either: {e}");
                    let detail =
                        serde_json::json!({ "error": e.to_string(), "no_command_ran": true });
                    ledger.audit(event(
                        &actor,
                        "grant.rolled_back",
                        &record,
                        "skipped",
                        detail,
                    ))?;
                }
            }
            Err(ServiceError::guest(
                format!("grant {} failed", record.grant_id),
                call_error,
            ))
        }
    }
}

/// Take access away (revoking a revoked grant succeeds and changes nothing). `actor` is who
/// asked: `cli`, a user, the scheduler.
pub async fn revoke(
    connector: &Connector,
    ledger: &Ledger,
    grant_id: &str,
    actor: &str,
) -> Result<GrantRecord> {
    let mut record = ledger.get(grant_id)?;
    if record.state == State::Revoked {
        return Ok(record);
    }
    if record.state == State::Granting {
        return Err(ServiceError::Conflict(format!(
            "grant {grant_id} is still being granted; revoke it once it is active or failed"
        )));
    }
    // An unknown integration is an error before anything changes.
    integration_of(connector, &record)?;
    let from = record.state;
    record.state = State::Revoking;
    ledger.update(&record, from, revoke_requested(actor, &record))?;
    carry_out_revoke(connector, ledger, record, actor).await
}

/// The audit record of a revoke attempt starting.
pub fn revoke_requested(actor: &str, record: &GrantRecord) -> Event {
    event(
        actor,
        "revoke.requested",
        record,
        "pending",
        serde_json::Value::Null,
    )
}

/// Run the guest's revoke for a grant already in `revoking` (claimed by the caller), and
/// record the outcome: `revoked`, or still `revoking` with the error.
pub async fn carry_out_revoke(
    connector: &Connector,
    ledger: &Ledger,
    mut record: GrantRecord,
    actor: &str,
) -> Result<GrantRecord> {
    let grant_id = record.grant_id.clone();
    let (integration, ic) = integration_of(connector, &record)?;
    let report = {
        let _serial = connector
            .lock_resource(&record.integration, &record.resource_id)
            .await;
        run_revoke(connector, integration, ic, &record).await
    };
    audit_calls(ledger, actor, &record, &report)?;
    match report.result {
        Ok(_) => {
            let now = unix_now();
            record.state = State::Revoked;
            record.revoked_at = Some(now);
            record.last_error = None;
            if record.username.is_some() {
                record.cleanup_due_at = ic
                    .user_cleanup_days
                    .map(|days| now + u64::from(days) * 86_400);
            }
            ledger.update(
                &record,
                State::Revoking,
                event(
                    actor,
                    "grant.revoked",
                    &record,
                    "ok",
                    serde_json::Value::Null,
                ),
            )?;
            Ok(record)
        }
        Err(e) => {
            record.last_error = Some(e.to_string());
            let detail = serde_json::json!({ "error": e.to_string() });
            ledger.note_failure(
                &record,
                event(actor, "revoke.failed", &record, "failed", detail),
            )?;
            Err(ServiceError::guest(
                format!(
                    "revoke of {grant_id} failed (it stays `revoking`; `latch serve` retries \
                     it, or run revoke again)"
                ),
                e,
            ))
        }
    }
}

/// Extend an active grant to `duration` from now: the guest's (idempotent) `grant` runs
/// again with the new expiry, which issues a new certificate valid until then. The grant is
/// `granting` meanwhile, so neither the scheduler nor a revoke can interleave; if the guest
/// fails, the grant stays active with its old expiry (everything `grant` does only re-asserts
/// access the grant already had). An extension may not shorten a grant (revoke it instead)
/// and may not run past the integration's `max_duration` from now.
pub async fn extend(
    connector: &Connector,
    ledger: &Ledger,
    grant_id: &str,
    duration: Duration,
    actor: &str,
) -> Result<Granted> {
    let record = ledger.get(grant_id)?;
    let (integration, ic) = integration_of(connector, &record)?;
    check_duration(duration, ic)?;
    let now = unix_now();
    if record.state != State::Active || record.expires_at <= now {
        return Err(ServiceError::Conflict(format!(
            "grant {grant_id} is {} and {}; only an active grant can be extended",
            record.state.as_str(),
            if record.expires_at <= now {
                "expired"
            } else {
                "not expired"
            }
        )));
    }
    let new_expiry = now + duration.as_secs();
    if new_expiry <= record.expires_at {
        return Err(ServiceError::BadRequest(format!(
            "grant {grant_id} already lasts until {}; an extension must end later (to end it \
             sooner, revoke it)",
            record.expires_at
        )));
    }
    let old_expiry = record.expires_at;
    let requested = serde_json::json!({ "expires_at": new_expiry, "old_expires_at": old_expiry });
    let mut record = ledger.begin_extend(
        grant_id,
        now,
        event(actor, "extend.requested", &record, "pending", requested),
    )?;
    record.expires_at = new_expiry;
    let _serial = connector
        .lock_resource(&record.integration, &record.resource_id)
        .await;
    let report = run_grant(connector, integration, ic, &record).await;
    audit_calls(ledger, actor, &record, &report)?;
    record.state = State::Active;
    record.granting_since = None;
    match report.result {
        Ok(Returned::Access(access)) => {
            let detail =
                serde_json::json!({ "expires_at": new_expiry, "old_expires_at": old_expiry });
            ledger.update(
                &record,
                State::Granting,
                event(actor, "grant.extended", &record, "ok", detail),
            )?;
            Ok(Granted::new(record, access, None))
        }
        other => {
            let call_error = match other {
                Err(e) => e,
                Ok(r) => CallError::Trap(format!("grant returned {r:?} instead of access details")),
            };
            let error = call_error.to_string();
            record.expires_at = old_expiry;
            let detail = serde_json::json!({ "error": error });
            ledger.update(
                &record,
                State::Granting,
                event(actor, "extend.failed", &record, "failed", detail),
            )?;
            Err(ServiceError::guest(
                format!("extending {grant_id} failed (it still ends at its old expiry)"),
                call_error,
            ))
        }
    }
}

/// The resources of an integration.
pub async fn resources(connector: &Connector, name: &str) -> Result<Vec<Resource>> {
    let (integration, ic) = integration(connector, name)?;
    let report = integration
        .call(
            connector.runtime(),
            Export::Discover {
                config: ic.config_json.clone(),
            },
        )
        .await;
    match report.result {
        Ok(Returned::Resources(r)) => Ok(r),
        Ok(other) => Err(ServiceError::guest(
            "discover failed",
            CallError::Trap(format!("discover returned {other:?}")),
        )),
        Err(e) => Err(ServiceError::guest("discover failed", e)),
    }
}

/// The integration a grant belongs to (it may have been removed from latch.toml since).
fn integration_of<'c>(
    connector: &'c Connector,
    record: &GrantRecord,
) -> Result<(&'c Integration, &'c IntegrationConfig)> {
    integration(connector, &record.integration).map_err(|e| {
        ServiceError::UnknownIntegration(format!(
            "grant {} belongs to integration {:?}: {e}",
            record.grant_id, record.integration
        ))
    })
}

/// Run the guest's `grant` for `record`: a new grant, or an extension (the new expiry is in
/// `record`).
async fn run_grant(
    connector: &Connector,
    integration: &Integration,
    ic: &IntegrationConfig,
    record: &GrantRecord,
) -> CallReport {
    let export = Export::Grant {
        config: ic.config_json.clone(),
        request: request_of(record),
    };
    integration.call(connector.runtime(), export).await
}

/// Run the guest's `revoke` for `record`: a revoke, or the rollback of a failed grant.
async fn run_revoke(
    connector: &Connector,
    integration: &Integration,
    ic: &IntegrationConfig,
    record: &GrantRecord,
) -> CallReport {
    let export = Export::Revoke {
        config: ic.config_json.clone(),
        request: request_of(record),
    };
    integration.call(connector.runtime(), export).await
}

/// An audit event about `record`.
fn event(
    actor: &str,
    name: &str,
    record: &GrantRecord,
    outcome: &str,
    detail: serde_json::Value,
) -> Event {
    Event {
        actor: actor.to_string(),
        event: name.to_string(),
        grant_id: Some(record.grant_id.clone()),
        integration: Some(record.integration.clone()),
        guest_sha256: Some(record.guest_sha256.clone()),
        target: None,
        detail,
        outcome: outcome.to_string(),
    }
}

/// Log and audit every capability call a guest call made for `record`.
pub(crate) fn audit_calls(
    ledger: &Ledger,
    actor: &str,
    record: &GrantRecord,
    report: &CallReport,
) -> anyhow::Result<()> {
    let base = event(actor, "capability", record, "", serde_json::Value::Null);
    audit_report(ledger, &base, report)
}

/// Log and audit every capability call of `report`, as events like `base` (in one
/// transaction).
pub(crate) fn audit_report(
    ledger: &Ledger,
    base: &Event,
    report: &CallReport,
) -> anyhow::Result<()> {
    let mut events = Vec::with_capacity(report.records.len() + 1);
    for r in &report.records {
        tracing::info!(grant = ?base.grant_id, outcome = ?r.outcome, micros = r.micros, "{}", r.call);
        let target = match &r.call {
            CapCall::SshExec { target, .. } | CapCall::WinrmInvoke { target, .. } => {
                Some(target.to_string())
            }
            _ => None,
        };
        let outcome = match r.outcome {
            Outcome::Ok { .. } => "ok",
            Outcome::Refused { .. } => "refused",
            Outcome::Failed { .. } => "failed",
        };
        events.push(Event {
            target,
            outcome: outcome.into(),
            detail: serde_json::to_value(r)?,
            ..base.clone()
        });
    }
    if report.dropped_records > 0 {
        events.push(Event {
            outcome: "truncated".into(),
            detail: serde_json::json!({ "calls_not_kept": report.dropped_records }),
            ..base.clone()
        });
    }
    Ok(ledger.audit_many(events)?)
}
