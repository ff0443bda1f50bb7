//! Grant, revoke and list resources: the operations the CLI (and later the HTTP API) offer.
//!
//! Everything a request carries is checked here before a guest runs: the integration, the
//! duration against the integration's maximum, the public key's format. The grant is
//! recorded before the guest's `grant` runs; a failed grant is rolled back with the guest's
//! (idempotent) `revoke`. When the requester brings no public key, the *host* generates the
//! key pair, so private key material never enters a guest, and returns it once.

use std::time::Duration;

use anyhow::{Context, bail};
use serde::Serialize;

use crate::caps::certs::ca::{generate_key_pair, unix_now};
use crate::caps::{Outcome, Secret};
use crate::config::IntegrationConfig;
use crate::connector::Connector;
use crate::grants::{GrantRecord, GrantStore, State, new_grant_id};
use crate::runtime::{CallReport, Export, GrantRequest, Identity, Integration, Resource, Returned};

/// What someone asks for.
#[derive(Clone, Debug)]
pub struct GrantArgs {
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

fn expose_once<S: serde::Serializer>(key: &Option<Secret>, s: S) -> Result<S::Ok, S::Error> {
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
pub fn check_public_key(line: &str) -> anyhow::Result<String> {
    let line = line.trim();
    if line.lines().count() != 1 {
        bail!("the public key must be one OpenSSH public key line");
    }
    ssh_key::PublicKey::from_openssh(line)
        .map_err(|_| anyhow::anyhow!("the public key is not an OpenSSH public key line"))?;
    Ok(line.to_string())
}

/// Give access.
pub async fn grant(
    connector: &Connector,
    store: &GrantStore,
    args: GrantArgs,
) -> anyhow::Result<Granted> {
    let (integration, ic) = connector.integration(&args.integration)?;
    if args.duration.is_zero() || args.duration > ic.max_duration {
        bail!(
            "duration {} is not allowed: integration {:?} grants at most {}",
            humantime::format_duration(args.duration),
            ic.name,
            humantime::format_duration(ic.max_duration)
        );
    }
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
    };
    store.create(&record)?;
    let report = integration
        .call(
            connector.runtime(),
            Export::Grant {
                config: ic.config_json.clone(),
                request: request_of(&record),
            },
        )
        .await;
    log_calls(&record.grant_id, "grant", &report);
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
            store.update(&record)?;
            Ok(Granted {
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
            })
        }
        other => {
            let error = match other {
                Err(e) => e.to_string(),
                Ok(r) => format!("grant returned {r:?} instead of access details"),
            };
            if !touched_a_server {
                // Refused before any capability call was carried out (bad input, policy):
                // nothing happened anywhere, so nothing is kept and nothing is undone.
                store.remove(&record.grant_id)?;
                bail!("grant refused: {error}");
            }
            record.state = State::Failed;
            record.last_error = Some(error.clone());
            store.update(&record)?;
            // Undo whatever part of the grant happened; revoke is idempotent.
            let undo = run_revoke(connector, integration, ic, &record).await;
            if let Err(e) = undo.result {
                tracing::error!(grant = %record.grant_id, "rolling back the failed grant failed: {e}");
            }
            bail!("grant {} failed: {error}", record.grant_id)
        }
    }
}

/// Take access away (revoking a revoked grant succeeds and changes nothing).
pub async fn revoke(
    connector: &Connector,
    store: &GrantStore,
    grant_id: &str,
) -> anyhow::Result<GrantRecord> {
    let mut record = store.get(grant_id)?;
    if record.state == State::Revoked {
        return Ok(record);
    }
    let (integration, ic) = connector
        .integration(&record.integration)
        .with_context(|| {
            format!(
                "grant {grant_id} belongs to integration {:?}",
                record.integration
            )
        })?;
    record.state = State::Revoking;
    store.update(&record)?;
    let report = run_revoke(connector, integration, ic, &record).await;
    match report.result {
        Ok(_) => {
            record.state = State::Revoked;
            record.revoked_at = Some(unix_now());
            record.last_error = None;
            store.update(&record)?;
            Ok(record)
        }
        Err(e) => {
            record.last_error = Some(e.to_string());
            store.update(&record)?;
            bail!("revoke of {grant_id} failed (it stays `revoking`; run revoke again): {e}")
        }
    }
}

/// The resources of an integration.
pub async fn resources(connector: &Connector, integration: &str) -> anyhow::Result<Vec<Resource>> {
    let (integration, ic) = connector.integration(integration)?;
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
        Ok(other) => bail!("discover returned {other:?}"),
        Err(e) => bail!("discover failed: {e}"),
    }
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
    let report = integration.call(connector.runtime(), export).await;
    log_calls(&record.grant_id, "revoke", &report);
    report
}

fn log_calls(grant_id: &str, export: &str, report: &CallReport) {
    for r in &report.records {
        tracing::info!(grant = grant_id, export, outcome = ?r.outcome, micros = r.micros, "{}", r.call);
    }
}
