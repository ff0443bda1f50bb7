//! The live part of `ssh`: the connection pool, with each integration's settings.

use std::collections::HashMap;
use std::sync::Arc;

use crate::Exec;
use crate::client::{SshPool, SshSettings};
use latch_cap::live::LivePart;
use latch_cap::{BoxFuture, CallContext, CapCall, CapError, CapReply, SecretStore};

/// Runs `ssh` calls over pooled connections.
pub struct Part {
    settings: HashMap<String, SshSettings>,
    secrets: std::sync::Arc<SecretStore>,
    pool: SshPool,
}

impl Part {
    /// The part, with `[integration.ssh]` per integration name.
    pub fn new(settings: HashMap<String, SshSettings>, secrets: &Arc<SecretStore>) -> Self {
        Part {
            settings,
            secrets: secrets.clone(),
            pool: SshPool::default(),
        }
    }
}

impl LivePart for Part {
    fn carry_out<'a>(
        &'a self,
        ctx: CallContext<'a>,
        call: &'a CapCall,
    ) -> Option<BoxFuture<'a, Result<CapReply, CapError>>> {
        let exec = call.get::<Exec>()?;
        let integration = ctx.integration;
        Some(Box::pin(async move {
            let settings = self.settings.get(integration).ok_or_else(|| {
                CapError::Failed(format!(
                    "integration {integration:?} has no [integration.ssh] settings in latch.toml"
                ))
            })?;
            self.pool
                .exec(
                    integration,
                    settings,
                    &self.secrets,
                    &exec.target,
                    &exec.argv,
                    &exec.stdin,
                )
                .await
                .map(CapReply::new)
        }))
    }
}
