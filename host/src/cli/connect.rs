//! `latch check --connect`: log in to every server of every integration, like a status page.
//!
//! Which servers? The ones each integration's guest would act on: its resources
//! (`discover`), and for each, a **plan** of a grant (the guest's reads carried out, its
//! changes only recorded — nothing is changed anywhere) whose capability calls name their
//! targets. Each target is then logged in to with the integration's own transport and
//! credentials (SSH: the service key, host key checked; WinRM: NTLM or Basic, TLS
//! verified), on a fresh connection that runs nothing.

use std::collections::BTreeMap;
use std::process::ExitCode;

use serde::Serialize;

use crate::caps::Target;
use crate::caps::login::Proof;
use crate::config::{Config, IntegrationConfig};
use crate::connector::Connector;
use crate::service::Transport;

/// One server's answer.
#[derive(Debug, Serialize)]
struct Status {
    integration: String,
    transport: &'static str,
    target: String,
    /// `authenticated`, `refused` (reached, but the login or the TLS check failed) or
    /// `unreachable`.
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

/// Run the check; exit 1 unless every server authenticated.
pub async fn run(config: &Config, json: bool) -> anyhow::Result<ExitCode> {
    let connector = crate::connector::live_connector(config)?;
    let secrets = std::sync::Arc::new(crate::connector::secret_store(config)?);
    let mut statuses = Vec::new();
    for (_, ic) in connector.integrations() {
        let logins = ic.service_logins(&secrets);
        let targets = match targets(&connector, ic).await {
            Ok(t) => t,
            Err(e) => {
                statuses.push(Status {
                    integration: ic.name.clone(),
                    transport: "-",
                    target: "-".into(),
                    status: "refused",
                    reason: Some(format!("could not list its servers: {e:#}")),
                });
                continue;
            }
        };
        for ((transport, _), target) in targets {
            let outcome = match logins.get(transport) {
                Some(login) => login
                    .prove(&target, Proof::Configured)
                    .await
                    .map_err(|e| (e.kind(), e.to_string())),
                None => Err((
                    "refused",
                    format!("the integration has no [integration.{transport}] settings"),
                )),
            };
            let (status, reason) = match outcome {
                Ok(()) => ("authenticated", None),
                Err((status, reason)) => (status, Some(reason)),
            };
            statuses.push(Status {
                integration: ic.name.clone(),
                transport,
                target: target.to_string(),
                status,
                reason,
            });
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&statuses)?);
    } else {
        let rows: Vec<[String; 5]> = statuses
            .iter()
            .map(|s| {
                [
                    s.integration.clone(),
                    s.transport.to_string(),
                    s.target.clone(),
                    s.status.to_string(),
                    s.reason.clone().unwrap_or_default(),
                ]
            })
            .collect();
        super::access::print_table(["INTEGRATION", "VIA", "SERVER", "STATUS", "REASON"], &rows);
    }
    let bad = statuses
        .iter()
        .filter(|s| s.status != "authenticated")
        .count();
    Ok(if bad == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

type TargetKey = (Transport, String);

/// Every (transport, target) the integration's guest acts on: for each resource, the servers
/// a plan of a grant names.
async fn targets(
    connector: &Connector,
    ic: &IntegrationConfig,
) -> anyhow::Result<BTreeMap<TargetKey, Target>> {
    let resources = crate::service::resources(connector, &ic.name)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut found = BTreeMap::new();
    for r in resources {
        let servers = crate::service::servers_of(connector, ic, &r)
            .await
            .map_err(anyhow::Error::msg)?;
        for (transport, target) in servers {
            found.insert((transport, target.to_string()), target);
        }
    }
    Ok(found)
}
