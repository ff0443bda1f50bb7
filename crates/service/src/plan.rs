//! A plan: what a grant would do on a given server, before it does it (like `terraform
//! plan`). The guest's `grant` runs for real with every **read** carried out (so its
//! decisions are the ones it would make on that server now) and every **change** recorded
//! but not carried out, answered with an empty success. No certificate is signed, no grant
//! is recorded in the ledger; the reads are audited (they touched a server), as `plan`
//! events under a plan id.
//!
//! A 0.1 guest cannot tell reads from changes, so its plan stops at its first change whose
//! output it needs; a 0.2 guest's plan shows every change.

use serde::Serialize;

use super::{
    GrantArgs, Result, ServiceError, audit_report, check_duration, credentials, integration,
};
use crate::connector::Connector;
use latch_caps::certs::ca::unix_now;
use latch_caps::{CallRecord, Outcome};
use latch_ledger::{Event, Ledger, new_grant_id};
use latch_runtime::{CallOptions, CallSecrets, Export, GrantRequest, Identity, Returned};

/// What a grant would do.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Planned {
    /// The id the plan ran under (no grant has it).
    pub plan_id: String,
    pub integration: String,
    pub resource: String,
    pub permission: String,
    /// The changes the grant would make, in order, as each would run.
    pub changes: Vec<String>,
    /// How many reads were carried out to decide them.
    pub reads: usize,
    /// `would grant`, or why the grant would fail.
    pub outcome: String,
    /// The account the grant would give, when it would succeed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Every capability call, reads and changes.
    #[schema(value_type = Vec<Object>)]
    pub calls: Vec<CallRecord>,
}

/// Plan the grant `args` asks for.
pub async fn plan_grant(
    connector: &Connector,
    ledger: &Ledger,
    args: GrantArgs,
) -> Result<Planned> {
    let (integration, ic) = integration(connector, &args.integration)?;
    check_duration(args.duration, ic)?;
    // A throwaway credential of the right kind: nothing is signed or set in a plan.
    let issued = credentials::issue(ic, &args.email, args.public_key.as_deref())?;
    let plan_id = new_grant_id();
    let permission = args
        .permission
        .clone()
        .unwrap_or_else(|| ic.lifecycle.default_permission.clone());
    let request = GrantRequest {
        grant_id: plan_id.clone(),
        resource_id: args.resource.clone(),
        permission: permission.clone(),
        identity: Identity {
            email: args.email.clone(),
            username: args.username.clone(),
        },
        public_key: issued.public_key.clone(),
        expires_at: unix_now() + args.duration.as_secs(),
        state: None,
    };
    let base = Event {
        actor: args.actor.clone(),
        event: "plan".into(),
        grant_id: Some(plan_id.clone()),
        integration: Some(ic.name.clone()),
        guest_sha256: Some(integration.guest().sha256().to_string()),
        ..Event::default()
    };
    ledger.audit(Event {
        event: "plan.requested".into(),
        outcome: "pending".into(),
        detail: serde_json::json!({
            "requester": args.email, "resource": args.resource, "permission": permission,
        }),
        ..base.clone()
    })?;
    let options = CallOptions {
        secrets: CallSecrets {
            grant_password: issued.password.clone(),
            new_service_password: None,
        },
        plan: true,
    };
    let report = {
        let _serial = connector.lock_resource(&ic.name, &args.resource).await;
        integration
            .call_with(
                connector.runtime(),
                Export::Grant {
                    config: ic.config_json.clone(),
                    request,
                },
                options,
            )
            .await
    };
    audit_report(ledger, &base, &report)?;
    let changes = report
        .records
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Planned))
        .map(|r| r.command.clone())
        .collect();
    let reads = report
        .records
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Ok { .. }))
        .count();
    let (outcome, username) = match &report.result {
        Ok(Returned::Granted(g)) => ("would grant".to_string(), Some(g.access.username.clone())),
        Ok(other) => (format!("the guest returned {other:?}"), None),
        Err(e) => (format!("would fail: {e}"), None),
    };
    if let Err(e) = report.result
        && matches!(e.kind(), "trap" | "memory")
    {
        // The guest itself broke: that is not a plan's outcome but an error.
        return Err(ServiceError::guest("plan failed", e));
    }
    Ok(Planned {
        plan_id,
        integration: ic.name.clone(),
        resource: args.resource,
        permission,
        changes,
        reads,
        outcome,
        username,
        calls: report.records,
    })
}

/// How the host logs in to a server a guest acts on: the name of the capability's service
/// login (`ssh`, `winrm`, `ldap`; see `caps::login`).
pub type Transport = &'static str;

/// The server a capability call logged in to as the service account, and the login that
/// proves that account there (calls that reach no server of the integration's own, such as
/// `secrets.get`, have none).
pub fn login_of(record: &CallRecord) -> Option<(Transport, latch_caps::Target)> {
    record
        .call
        .login()
        .map(|(login, target)| (login, target.clone()))
}

/// Every server a grant of `resource` would act on: the targets of a **plan** of a grant
/// (reads carried out, changes only recorded, nothing changed anywhere) for a throwaway
/// requester. `latch check --connect` logs in to these, and a rotation proves its new
/// credential on each.
pub async fn servers_of(
    connector: &Connector,
    ic: &latch_config::IntegrationConfig,
    resource: &latch_runtime::Resource,
) -> std::result::Result<std::collections::BTreeSet<(Transport, latch_caps::Target)>, String> {
    let (integration, _) = connector.integration(&ic.name).map_err(|e| e.to_string())?;
    // A certificate integration's plan needs a requester's key: a throwaway one (nothing
    // is signed in a plan); a password integration's, a password (never sent).
    let (_, public_key) =
        latch_caps::certs::ca::generate_key_pair("latch-plan").map_err(|e| e.to_string())?;
    let request = GrantRequest {
        grant_id: "latch-servers-of".into(),
        resource_id: resource.id.clone(),
        permission: resource
            .permissions
            .first()
            .cloned()
            .unwrap_or_else(|| ic.lifecycle.default_permission.clone()),
        identity: Identity {
            email: "latch-check@localhost".into(),
            username: Some("latchcheck".into()),
        },
        public_key: Some(public_key),
        expires_at: unix_now() + 3600,
        state: None,
    };
    let options = CallOptions {
        secrets: CallSecrets {
            grant_password: Some(credentials::password(&ic.password)),
            new_service_password: None,
        },
        plan: true,
    };
    let report = integration
        .call_with(
            connector.runtime(),
            Export::Grant {
                config: ic.config_json.clone(),
                request,
            },
            options,
        )
        .await;
    let found: std::collections::BTreeSet<_> = report.records.iter().filter_map(login_of).collect();
    match (&report.result, found.is_empty()) {
        (Err(e), true) => Err(format!(
            "the plan of a grant on {} failed before naming a server: {e}",
            resource.id
        )),
        _ => Ok(found),
    }
}
