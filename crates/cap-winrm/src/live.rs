//! The live part of `winrm`: each call's script sent over a pooled, authenticated WinRM
//! connection ([`crate::pool`]), its JSON output and error records handed back.

use std::collections::HashMap;
use std::sync::Arc;

use crate::pool::{WinrmPool, WinrmSettings, cap_error};
use crate::shell::Run;
use crate::transport::Credentials;
use crate::{Invoke, wire_script, wsman};
use latch_cap::live::LivePart;
use latch_cap::{
    BoxFuture, CallContext, CapCall, CapError, CapReply, CmdletOutput, Secret, SecretStore,
};
use latch_contract::SecretRef;

/// Longest command line Windows starts (CreateProcess allows 32,767 characters; the
/// program's name and a margin take the rest).
const MAX_COMMAND_LINE: usize = 32_000;

/// Runs `winrm` calls over pooled connections.
pub struct Part {
    settings: HashMap<String, WinrmSettings>,
    secrets: Arc<SecretStore>,
    pool: WinrmPool,
}

impl Part {
    /// The part, with `[integration.winrm]` per integration name.
    pub fn new(settings: HashMap<String, WinrmSettings>, secrets: &Arc<SecretStore>) -> Self {
        Part {
            settings,
            secrets: secrets.clone(),
            pool: WinrmPool::default(),
        }
    }

    fn credentials(
        &self,
        ctx: &CallContext<'_>,
        settings: &WinrmSettings,
        invoke: &Invoke,
    ) -> Result<Credentials, CapError> {
        let integration = ctx.integration;
        let user = match (&invoke.target.user, &settings.default_user) {
            (Some(asked), Some(configured)) if !asked.eq_ignore_ascii_case(configured) => {
                return Err(CapError::Denied(format!(
                    "integration {integration:?} holds a WinRM password for {configured:?} \
                     only, not for {asked:?}"
                )));
            }
            (_, Some(configured)) => configured.clone(),
            (Some(_), None) | (None, None) => {
                return Err(CapError::Failed(format!(
                    "integration {integration:?} names no WinRM account: set \
                     [integration.winrm] user"
                )));
            }
        };
        let name = settings.password_secret.as_deref().ok_or_else(|| {
            CapError::Failed(format!(
                "integration {integration:?} names no secret with the WinRM password: set \
                 [integration.winrm] password_secret"
            ))
        })?;
        let password = self
            .secrets
            .get(name)
            .map_err(CapError::Failed)?
            .ok_or_else(|| {
                CapError::Failed(format!(
                    "the WinRM password secret {name:?} is not in the secret store"
                ))
            })?;
        ctx.reveal(&password);
        Ok(Credentials { user, password })
    }

    fn resolve(&self, ctx: &CallContext<'_>, r: &SecretRef) -> Result<Secret, CapError> {
        let missing = || CapError::Failed(format!("{r} has no value here"));
        match r {
            SecretRef::GrantPassword => ctx.secrets.grant_password.clone().ok_or_else(missing),
            SecretRef::NewServicePassword => {
                ctx.secrets.new_service_password.clone().ok_or_else(missing)
            }
            SecretRef::Named(name) => {
                let value = self
                    .secrets
                    .get(name)
                    .map_err(CapError::Failed)?
                    .ok_or_else(missing)?;
                ctx.reveal(&value);
                Ok(value)
            }
        }
    }
}

impl LivePart for Part {
    fn carry_out<'a>(
        &'a self,
        ctx: CallContext<'a>,
        call: &'a CapCall,
    ) -> Option<BoxFuture<'a, Result<CapReply, CapError>>> {
        let invoke = call.get::<Invoke>()?;
        let integration = ctx.integration;
        Some(Box::pin(async move {
            let settings = self.settings.get(integration).ok_or_else(|| {
                CapError::Failed(format!(
                    "integration {integration:?} has no [integration.winrm] settings"
                ))
            })?;
            let credentials = self.credentials(&ctx, settings, invoke)?;
            let wire = wire_script(&invoke.cmdlet, &invoke.parameters, |r| {
                self.resolve(&ctx, r)
            })?;
            let arguments = wsman::powershell_arguments(&wire.script);
            let length: usize = arguments.iter().map(|a| a.len() + 1).sum();
            if length > MAX_COMMAND_LINE {
                return Err(CapError::InvalidRequest(format!(
                    "the call is {length} characters as a Windows command line, more than the \
                     {MAX_COMMAND_LINE} Windows allows (CreateProcess): pass fewer or shorter values"
                )));
            }
            let endpoint = settings.endpoint(&invoke.target.host, invoke.target.port);
            let run = Run {
                program: "powershell.exe",
                arguments: &arguments,
                stdin: wire.stdin.as_ref().map(|s| s.expose()),
            };
            let received = self
                .pool
                .run(integration, settings, &endpoint, &credentials, run)
                .await;
            let received = received.map_err(|e| cap_error(&endpoint.url(), e))?;
            output(&endpoint.url(), received).map(CapReply::new)
        }))
    }
}

/// The cmdlet's answer: its JSON objects and its error records, or — when PowerShell itself
/// failed (a non-zero exit code) — one error with its messages.
fn output(url: &str, received: wsman::Received) -> Result<CmdletOutput, CapError> {
    let errors = wsman::error_messages(&received.stderr);
    let code = received.exit_code.unwrap_or(-1);
    if code != 0 {
        return Err(CapError::Failed(format!(
            "PowerShell on {url} failed (exit code {code}): {}",
            if errors.is_empty() {
                "no error record".to_string()
            } else {
                errors.join("; ")
            }
        )));
    }
    let text = String::from_utf8_lossy(&received.stdout);
    let text = text.trim();
    let objects = if text.is_empty() { "[]" } else { text };
    match serde_json::from_str::<serde_json::Value>(objects) {
        Ok(serde_json::Value::Array(_)) => Ok(CmdletOutput {
            objects: objects.to_string(),
            errors,
        }),
        _ => Err(CapError::Failed(format!(
            "PowerShell on {url} did not answer with a JSON array"
        ))),
    }
}
