//! The live backend: capability calls carried out for real.
//!
//! SSH through the connection pool with each integration's `[integration.ssh]` settings;
//! secrets from the secret store; certificates from the user CA. WinRM has no live transport
//! in this build and says so (its script rendering with secrets is ready:
//! `winrm::powershell_script`).

use std::collections::HashMap;

use super::certs::ca;
use super::secrets::SecretStore;
use super::ssh::client::{SshPool, SshSettings};
use super::{Backend, BoxFuture, CallContext, CapCall, CapError, CapReply};

/// Carries out capability calls against real servers and stores.
pub struct Live {
    secrets: SecretStore,
    ssh: HashMap<String, SshSettings>,
    pool: SshPool,
}

impl Live {
    /// A live backend over `secrets`, with SSH settings per integration name.
    pub fn new(secrets: SecretStore, ssh: HashMap<String, SshSettings>) -> Self {
        Live {
            secrets,
            ssh,
            pool: SshPool::default(),
        }
    }

    /// The secret store.
    pub fn secrets(&self) -> &SecretStore {
        &self.secrets
    }
}

impl Backend for Live {
    fn call<'a>(
        &'a self,
        ctx: CallContext<'a>,
        call: &'a CapCall,
    ) -> BoxFuture<'a, Result<CapReply, CapError>> {
        let integration = ctx.integration;
        Box::pin(async move {
            match call {
                CapCall::SshExec {
                    target,
                    argv,
                    stdin,
                    ..
                } => {
                    let settings = self.ssh.get(integration).ok_or_else(|| {
                        CapError::Failed(format!(
                            "integration {integration:?} has no [integration.ssh] settings in latch.toml"
                        ))
                    })?;
                    self.pool
                        .exec(integration, settings, &self.secrets, target, argv, stdin)
                        .await
                        .map(CapReply::Output)
                }
                CapCall::WinrmInvoke { .. } => Err(CapError::Failed(format!(
                    "{} has no live transport in this build of Latch",
                    call.capability()
                ))),
                CapCall::SecretGet { name } => match self.secrets.get(name) {
                    Ok(Some(secret)) => Ok(CapReply::Secret(secret)),
                    Ok(None) => Err(CapError::Failed(format!(
                        "secret {name:?} is not in the store"
                    ))),
                    Err(e) => Err(CapError::Failed(e)),
                },
                CapCall::CaPublicKey => ca::public_key(&self.secrets).map(CapReply::Text),
                CapCall::SignSshUser {
                    public_key,
                    principals,
                    valid_before,
                    key_id,
                } => ca::sign(&self.secrets, public_key, principals, *valid_before, key_id)
                    .map(CapReply::Text),
            }
        })
    }
}
