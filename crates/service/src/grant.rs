//! `grant`, in the phases a grant goes through. Each is a function named for what it does,
//! and each leaves the ledger saying where the grant is, so a crash between two of them is
//! found and finished by the scheduler:
//!
//! 1. **check** the request (integration, duration) and **issue** what the host makes (a key
//!    pair or a password);
//! 2. **record** the grant as `granting`, with a `grant.requested` audit record, before
//!    anything runs anywhere;
//! 3. **run** the guest's `grant`, one grant per resource at a time, every capability call
//!    audited;
//! 4. then one of: **activate** it (the guest answered access details); **refuse** it
//!    (nothing was carried out anywhere: no grant is kept); or **fail** it and **roll back**
//!    whatever part happened, handing it to the scheduler if the rollback fails after a
//!    command ran.

use super::credentials::{self, Issued};
use super::{
    GrantArgs, Granted, Result, ServiceError, audit_calls, check_duration, checked, event,
    integration, not_granted, request_of, run_revoke,
};
use crate::connector::Connector;
use latch_caps::Outcome;
use latch_caps::certs::ca::unix_now;
use latch_config::IntegrationConfig;
use latch_ledger::{GrantRecord, Ledger, State, new_grant_id};
use latch_runtime::{
    CallError, CallOptions, CallReport, CallSecrets, Export, Granted as Granted0, Integration,
    Returned,
};

/// Give access.
pub async fn grant(connector: &Connector, ledger: &Ledger, args: GrantArgs) -> Result<Granted> {
    let (integration, ic) = integration(connector, &args.integration)?;
    check_duration(args.duration, ic)?;
    let issued = credentials::issue(ic, &args.email, args.public_key.as_deref())?;
    let mut record = record_request(ledger, integration, ic, &args, &issued)?;
    let _serial = connector
        .lock_resource(&record.integration, &record.resource_id)
        .await;
    let report = run_grant(connector, integration, ic, &record, &issued).await;
    audit_calls(ledger, &args.actor, &record, &report)?;
    let reached = Reached::of(&report);
    match report.result {
        Ok(Returned::Granted(granted)) => activate(ledger, &args.actor, record, granted, issued),
        other => {
            let call_error = not_granted(other);
            if !reached.a_server {
                return refuse(ledger, &args.actor, &record, call_error);
            }
            fail(ledger, &args.actor, &mut record, &call_error)?;
            roll_back(
                connector,
                ledger,
                integration,
                ic,
                &args.actor,
                &mut record,
                reached,
            )
            .await?;
            Err(ServiceError::guest(
                format!("grant {} failed", record.grant_id),
                call_error,
            ))
        }
    }
}

/// Phase 2: the grant as `granting`, in the ledger and the audit log, before anything runs.
fn record_request(
    ledger: &Ledger,
    integration: &Integration,
    ic: &IntegrationConfig,
    args: &GrantArgs,
    issued: &Issued,
) -> Result<GrantRecord> {
    let now = unix_now();
    let record = GrantRecord {
        grant_id: args.grant_id.clone().unwrap_or_else(new_grant_id),
        integration: ic.name.clone(),
        resource_id: args.resource.clone(),
        permission: args
            .permission
            .clone()
            .unwrap_or_else(|| ic.lifecycle.default_permission.clone()),
        email: args.email.clone(),
        requested_username: args.username.clone(),
        public_key: issued.public_key.clone().unwrap_or_default(),
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
        guest_state: None,
    };
    ledger.create(
        &record,
        event(
            &args.actor,
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
    Ok(record)
}

/// Phase 3: the guest's `grant`, its answer checked: its state is small, since it goes to
/// the ledger and the audit log. (That no answer holds a secret of the call, in any form the
/// host makes, the runtime has checked already: see `Integration::call_with`.)
pub(super) async fn run_grant(
    connector: &Connector,
    integration: &Integration,
    ic: &IntegrationConfig,
    record: &GrantRecord,
    issued: &Issued,
) -> CallReport {
    let export = Export::Grant {
        config: ic.config_json.clone(),
        request: request_of(record),
    };
    let options = CallOptions {
        secrets: CallSecrets {
            grant_password: issued.password.clone(),
            new_service_password: None,
        },
        plan: false,
    };
    let mut report = integration
        .call_with(connector.runtime(), export, options)
        .await;
    report.result = match report.result {
        Ok(Returned::Granted(g)) => checked(g).map(Returned::Granted),
        other => other,
    };
    report
}

/// How far a grant's calls got.
#[derive(Clone, Copy)]
struct Reached {
    /// Some call was carried out (not refused before it was sent).
    a_server: bool,
    /// A command ran on a server (a connection refused, or a host key refused, runs none).
    a_command: bool,
}

impl Reached {
    fn of(report: &CallReport) -> Reached {
        Reached {
            a_command: report
                .records
                .iter()
                .any(|r| r.call.target().is_some() && matches!(r.outcome, Outcome::Ok { .. })),
            a_server: report
                .records
                .iter()
                .any(|r| !matches!(r.outcome, Outcome::Refused { .. })),
        }
    }
}

/// Phase 4, granted: the access details kept, the grant `active`.
fn activate(
    ledger: &Ledger,
    actor: &str,
    mut record: GrantRecord,
    granted: Granted0,
    issued: Issued,
) -> Result<Granted> {
    let Granted0 {
        access,
        state: guest_state,
    } = granted;
    record.state = State::Active;
    record.username = Some(access.username.clone());
    record.host = Some(access.host.clone());
    record.port = Some(access.port);
    record.guest_state = Some(guest_state);
    let detail = serde_json::json!({
        "username": access.username, "host": access.host, "port": access.port,
    });
    ledger.update(
        &record,
        State::Granting,
        event(actor, "grant.active", &record, "ok", detail),
    )?;
    Ok(Granted::new(record, access, issued))
}

/// Phase 4, refused before any capability call was carried out (bad input, policy):
/// nothing happened anywhere, so no grant is kept and nothing is undone; the refusal stays
/// in the audit log.
fn refuse(
    ledger: &Ledger,
    actor: &str,
    record: &GrantRecord,
    call_error: CallError,
) -> Result<Granted> {
    let detail = serde_json::json!({ "error": call_error.to_string() });
    ledger.discard(
        &record.grant_id,
        event(actor, "grant.refused", record, "refused", detail),
    )?;
    Err(ServiceError::guest("grant refused", call_error))
}

/// Phase 4, failed after reaching a server: the grant `failed`, its error kept.
fn fail(
    ledger: &Ledger,
    actor: &str,
    record: &mut GrantRecord,
    call_error: &CallError,
) -> Result<()> {
    let error = call_error.to_string();
    let detail = serde_json::json!({ "error": error });
    record.state = State::Failed;
    record.last_error = Some(error);
    ledger.update(
        record,
        State::Granting,
        event(actor, "grant.failed", record, "failed", detail),
    )?;
    Ok(())
}

/// Phase 5 of a failed grant: undo whatever part of it happened (revoke is idempotent). If
/// that fails after a command ran, the scheduler retries the revoke until it succeeds; if
/// no command ever ran (the server could not be reached, or its host key was refused),
/// there is nothing to undo and the grant stays `failed`.
async fn roll_back(
    connector: &Connector,
    ledger: &Ledger,
    integration: &Integration,
    ic: &IntegrationConfig,
    actor: &str,
    record: &mut GrantRecord,
    reached: Reached,
) -> Result<()> {
    let undo = run_revoke(connector, integration, ic, record).await;
    audit_calls(ledger, actor, record, &undo)?;
    match &undo.result {
        Ok(_) => {
            let rolled_back = event(
                actor,
                "grant.rolled_back",
                record,
                "ok",
                serde_json::Value::Null,
            );
            ledger.audit(rolled_back)?;
        }
        Err(e) if reached.a_command => {
            tracing::error!(grant = %record.grant_id, "rolling back the failed grant failed: {e}");
            record.state = State::Revoking;
            record.last_error = Some(format!("rollback failed: {e}"));
            let detail = serde_json::json!({ "error": e.to_string(), "retried_by": "latch serve" });
            ledger.update(
                record,
                State::Failed,
                event(actor, "grant.rolled_back", record, "failed", detail),
            )?;
            ledger.retry_at(&record.grant_id, unix_now() + 2)?;
        }
        Err(e) => {
            tracing::warn!(grant = %record.grant_id, "rollback could not reach the server either: {e}");
            let detail = serde_json::json!({ "error": e.to_string(), "no_command_ran": true });
            ledger.audit(event(actor, "grant.rolled_back", record, "skipped", detail))?;
        }
    }
    Ok(())
}
