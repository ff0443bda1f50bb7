//! The live backend: capability calls carried out for real, by each capability's live part
//! (`caps/<name>/live.rs`), as registered in [`super::live_parts`].

use std::collections::HashMap;
use std::sync::Arc;

use super::cloud::live::CloudSettings;
use super::ldap::live::LdapSettings;
use super::secrets::SecretStore;
use super::ssh::client::SshSettings;
use super::winrm::pool::WinrmSettings;
use super::{Backend, BoxFuture, CallContext, CapCall, CapError, CapReply};

/// What the live parts are built from.
pub struct LiveContext {
    /// The secret store (secrets, the CA key, the SSH service keys).
    pub secrets: Arc<SecretStore>,
    /// SSH settings per integration name.
    pub ssh: HashMap<String, SshSettings>,
    /// WinRM settings per integration name.
    pub winrm: HashMap<String, WinrmSettings>,
    /// LDAP settings per integration name (those with an `[integration.ldap]` table).
    pub ldap: HashMap<String, LdapSettings>,
    /// AWS and Azure settings per integration name.
    pub cloud: CloudSettings,
}

/// One capability's live part: carries out the calls of its own capability.
pub trait LivePart: Send + Sync + 'static {
    /// Carry out `call` if it is this capability's; `None` if it is another's.
    fn carry_out<'a>(
        &'a self,
        ctx: CallContext<'a>,
        call: &'a CapCall,
    ) -> Option<BoxFuture<'a, Result<CapReply, CapError>>>;
}

/// Carries out capability calls against real servers and stores.
pub struct Live {
    secrets: Arc<SecretStore>,
    parts: Vec<Box<dyn LivePart>>,
}

impl Live {
    /// A live backend over `secrets`, with SSH, WinRM, LDAP and cloud settings per integration.
    pub fn new(
        secrets: SecretStore,
        ssh: HashMap<String, SshSettings>,
        winrm: HashMap<String, WinrmSettings>,
        ldap: HashMap<String, LdapSettings>,
        cloud: CloudSettings,
    ) -> Self {
        let ctx = LiveContext {
            secrets: Arc::new(secrets),
            ssh,
            winrm,
            ldap,
            cloud,
        };
        Live {
            parts: super::live_parts(&ctx),
            secrets: ctx.secrets,
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
        for part in &self.parts {
            if let Some(work) = part.carry_out(ctx, call) {
                return work;
            }
        }
        Box::pin(async move {
            Err(CapError::Failed(format!(
                "{} has no live part in this build",
                call.capability()
            )))
        })
    }
}
