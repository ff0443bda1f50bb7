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

use crate::caps::winrm::shell::ExchangeError;
use crate::caps::winrm::transport::{Connection, Credentials};
use crate::caps::{CapError, SecretStore, Target};
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
    let secrets = crate::connector::secret_store(config)?;
    let mut statuses = Vec::new();
    for (_, ic) in connector.integrations() {
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
            let outcome = match transport {
                Transport::Ssh => check_ssh(ic, &secrets, &target).await,
                Transport::Ldap => check_ldap(ic, &secrets, &target).await,
                Transport::Winrm => check_winrm(ic, &secrets, &target).await,
            };
            let (status, reason) = match outcome {
                Ok(()) => ("authenticated", None),
                Err((status, reason)) => (status, Some(reason)),
            };
            statuses.push(Status {
                integration: ic.name.clone(),
                transport: transport.as_str(),
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

async fn check_ssh(
    ic: &IntegrationConfig,
    secrets: &SecretStore,
    target: &Target,
) -> Result<(), (&'static str, String)> {
    let settings = ic.ssh.as_ref().ok_or((
        "refused",
        "the integration has no [integration.ssh] settings".to_string(),
    ))?;
    let user = target
        .user
        .clone()
        .or_else(|| settings.default_user.clone())
        .ok_or(("refused", "no SSH account is configured".to_string()))?;
    crate::caps::ssh::client::check_login(settings, secrets, &settings.key_secret, target, &user)
        .await
        .map_err(|e| match e {
            CapError::Unreachable(m) => ("unreachable", m),
            other => ("refused", other.to_string()),
        })
}

async fn check_ldap(
    ic: &IntegrationConfig,
    secrets: &SecretStore,
    target: &Target,
) -> Result<(), (&'static str, String)> {
    let settings = ic.ldap.as_ref().ok_or((
        "refused",
        "the integration has no [integration.ldap] settings".to_string(),
    ))?;
    let user = settings.default_user.clone().ok_or((
        "refused",
        "no directory account: set [integration.ldap] user".to_string(),
    ))?;
    let secret = settings.password_secret.as_deref().ok_or((
        "refused",
        "no directory password: set [integration.ldap] password_secret".to_string(),
    ))?;
    let password = secrets
        .get(secret)
        .map_err(|e| ("refused", e))?
        .ok_or(("refused", format!("secret {secret:?} is not in the store")))?;
    crate::caps::ldap::live::connect(settings, target, &user, &password)
        .await
        .map(|_| ())
        .map_err(|e| match e {
            CapError::Unreachable(m) if !m.contains("TLS verification") => ("unreachable", m),
            other => ("refused", other.to_string()),
        })
}

async fn check_winrm(
    ic: &IntegrationConfig,
    secrets: &SecretStore,
    target: &Target,
) -> Result<(), (&'static str, String)> {
    let settings = &ic.winrm;
    let user = settings.default_user.clone().ok_or((
        "refused",
        "no WinRM account: set [integration.winrm] user".to_string(),
    ))?;
    let secret = settings.password_secret.as_deref().ok_or((
        "refused",
        "no WinRM password: set [integration.winrm] password_secret".to_string(),
    ))?;
    let password = secrets
        .get(secret)
        .map_err(|e| ("refused", e))?
        .ok_or(("refused", format!("secret {secret:?} is not in the store")))?;
    let endpoint = settings.endpoint(&target.host, target.port);
    let login = async {
        let mut conn = Connection::open(
            &endpoint,
            &settings.transport,
            &Credentials { user, password },
        )
        .await?;
        conn.prove_login().await
    };
    login.await.map_err(|e| match e {
        ExchangeError::Unreachable(m) => ("unreachable", m),
        other => ("refused", other.to_string()),
    })
}
