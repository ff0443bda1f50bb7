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
use crate::runtime::{CallOptions, CallSecrets, Export, GrantRequest, Identity};

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
                "ssh" => check_ssh(ic, &secrets, &target).await,
                "ldap" => check_ldap(ic, &secrets, &target).await,
                _ => check_winrm(ic, &secrets, &target).await,
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

type TargetKey = (&'static str, String);

/// Every (transport, target) the integration's guest acts on, from recorded grants.
async fn targets(
    connector: &Connector,
    ic: &IntegrationConfig,
) -> anyhow::Result<BTreeMap<TargetKey, Target>> {
    let (integration, _) = connector
        .integrations()
        .find(|(_, c)| c.name == ic.name)
        .expect("listed");
    let resources = crate::service::resources(connector, &ic.name)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut found = BTreeMap::new();
    // A certificate integration's plan needs a requester's key: a throwaway one (nothing
    // is signed in a plan).
    let (_, public_key) = crate::caps::certs::ca::generate_key_pair("latch-check-connect")
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    for r in resources {
        let request = GrantRequest {
            grant_id: "latch-check-connect".into(),
            resource_id: r.id.clone(),
            permission: r
                .permissions
                .first()
                .cloned()
                .unwrap_or_else(|| ic.lifecycle.default_permission.clone()),
            identity: Identity {
                email: "latch-check@localhost".into(),
                username: Some("latchcheck".into()),
            },
            public_key: Some(public_key.clone()),
            expires_at: crate::caps::certs::ca::unix_now() + 3600,
            state: None,
        };
        // A plan: reads real, changes recorded only. A password integration's plan names
        // the grant's password in its changes; one is made for it and never sent.
        let options = CallOptions {
            secrets: CallSecrets {
                grant_password: Some(crate::service::credentials::password(&ic.password)),
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
        let before = found.len();
        for record in &report.records {
            let Some(target) = record.call.target() else {
                continue;
            };
            let transport = if record.capability.starts_with("ssh.") {
                "ssh"
            } else if record.capability.starts_with("winrm.") {
                "winrm"
            } else if record.capability.starts_with("ldap.") {
                "ldap"
            } else {
                continue;
            };
            found.insert((transport, target.to_string()), target.clone());
        }
        if found.len() == before
            && let Err(e) = &report.result
        {
            anyhow::bail!(
                "the plan of a grant on {} failed before naming a server: {e}",
                r.id
            );
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
