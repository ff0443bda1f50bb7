//! `winrm.read` / `winrm.invoke`: run one PowerShell cmdlet on a Windows server over WinRM.
//!
//! Defends against script injection and against a guest running more than it was lent:
//! - a guest names a cmdlet and typed parameters, never a script. The cmdlet must look like
//!   `Verb-Noun` and be on the integration's allowlist (`[integration.winrm] read` for
//!   `winrm.read`, `read` or `change` for `winrm.invoke`); cmdlets that run arbitrary code
//!   (`Invoke-Expression`, `Start-Process`, …) cannot be listed at all;
//! - parameter names must be identifiers; every value becomes an inert literal in
//!   [`render_command`]: strings single-quoted (doubling `'` *and* the typographic quotes
//!   U+2018–U+201B that PowerShell also accepts), integers as digits, booleans bound with a
//!   colon (`-Confirm:$false`, right for [bool] and [switch] parameters alike), lists as
//!   `@(…)` of quoted strings;
//! - secrets are **handles** (`secret-ref`): the record shows `<secret:NAME>`, and only
//!   [`powershell_script`], on the way to the wire, puts the value in (as a `SecureString`
//!   built on the server). A `named` secret must be in the integration's `secrets` list; the
//!   grant's password exists only while a grant of a password integration is served.
//!
//! The target must be in the `allow` list. (The live transport is the WinRM issue's; until
//! then a live call fails saying so.)

pub mod kit;
pub(crate) mod live;
pub mod pool;
pub mod shell;
pub mod transport;
pub(crate) mod wit;
pub mod wsman;

use serde::Serialize;

use super::{
    Call, CapError, CapReply, CmdletOutput, Effect, ParamValue, Secret, Target, check_text,
    record_of,
};
use crate::world::{CallState, SecretRef};

/// `winrm.read` / `winrm.invoke`: one cmdlet with typed parameters on `target`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Invoke {
    /// Where to run.
    pub target: Target,
    /// The cmdlet, e.g. `Add-ADGroupMember`.
    pub cmdlet: String,
    /// Named, typed parameters (secrets as handles).
    pub parameters: Vec<(String, ParamValue)>,
    /// `winrm.read` or `winrm.invoke`.
    pub effect: Effect,
}

impl Call for Invoke {
    fn capability(&self) -> &'static str {
        match self.effect {
            Effect::Read => "winrm.read",
            Effect::Change => "winrm.invoke",
        }
    }
    fn effect(&self) -> Effect {
        self.effect
    }
    fn target(&self) -> Option<&Target> {
        Some(&self.target)
    }
    fn authorize(&mut self, state: &CallState) -> Result<(), CapError> {
        authorize(state, self)
    }
    fn record(&self) -> serde_json::Map<String, serde_json::Value> {
        record_of(self)
    }
    fn empty_reply(&self) -> CapReply {
        CapReply::Cmdlet(CmdletOutput {
            objects: "[]".into(),
            errors: Vec::new(),
        })
    }
    fn clone_call(&self) -> Box<dyn Call> {
        Box::new(self.clone())
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// The command as records and plans show it (secrets by name).
impl std::fmt::Display for Invoke {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.capability(),
            self.target,
            render_command(&self.cmdlet, &self.parameters)
        )
    }
}

/// Most parameters one call may pass.
pub const MAX_PARAMETERS: usize = 64;
/// Most bytes of one parameter value (each element, for lists).
pub const MAX_VALUE_BYTES: usize = 8 * 1024;
/// Most elements of a list value.
pub const MAX_LIST: usize = 256;

/// Cmdlets that run code given as data, start processes or load code: never lendable,
/// whatever the allowlist says (checked when `latch.toml` is read).
pub const NEVER: &[&str] = &[
    "Invoke-Expression",
    "Invoke-Command",
    "Invoke-Item",
    "Start-Process",
    "Start-Job",
    "Start-ThreadJob",
    "Add-Type",
    "New-Object",
    "Import-Module",
    "Set-ExecutionPolicy",
    "New-PSSession",
    "Enter-PSSession",
    "Register-ScheduledTask",
    "New-Service",
];

/// Is `name` of the form `Verb-Noun` (letters; digits in the noun)?
pub fn is_cmdlet(name: &str) -> bool {
    let Some((verb, noun)) = name.split_once('-') else {
        return false;
    };
    name.len() <= 64
        && !verb.is_empty()
        && !noun.is_empty()
        && verb.bytes().all(|b| b.is_ascii_alphabetic())
        && noun.bytes().all(|b| b.is_ascii_alphanumeric())
}

fn is_parameter_name(name: &str) -> bool {
    name.len() <= 64
        && name.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
        && name.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Check a `winrm` call's cmdlet, parameters and secret handles, then the allowlist and
/// the target against the policy.
fn authorize(state: &CallState, call: &Invoke) -> Result<(), CapError> {
    let Invoke {
        target,
        cmdlet,
        parameters,
        effect,
    } = call;
    if !is_cmdlet(cmdlet) {
        return Err(CapError::InvalidRequest(format!(
            "cmdlet {cmdlet:?} is not of the form Verb-Noun"
        )));
    }
    if parameters.len() > MAX_PARAMETERS {
        return Err(CapError::InvalidRequest(format!(
            "{} parameters, more than the {MAX_PARAMETERS} allowed",
            parameters.len()
        )));
    }
    for (name, value) in parameters.iter() {
        if !is_parameter_name(name) {
            return Err(CapError::InvalidRequest(format!(
                "parameter name {name:?} must be letters and digits, starting with a letter"
            )));
        }
        check_value(state, name, value)?;
    }
    state
        .policy
        .check_cmdlet(cmdlet, *effect)
        .map_err(CapError::Denied)?;
    state.policy.check_target(target).map_err(CapError::Denied)
}

fn check_value(state: &CallState, name: &str, value: &ParamValue) -> Result<(), CapError> {
    match value {
        ParamValue::Text(v) => check_text(&format!("parameter {name}"), v, MAX_VALUE_BYTES),
        ParamValue::TextList(items) => {
            if items.len() > MAX_LIST {
                return Err(CapError::InvalidRequest(format!(
                    "parameter {name} lists {} values, more than the {MAX_LIST} allowed",
                    items.len()
                )));
            }
            items
                .iter()
                .try_for_each(|v| check_text(&format!("parameter {name}"), v, MAX_VALUE_BYTES))
        }
        ParamValue::Secret(SecretRef::Named(secret)) => {
            super::secrets::check_name(secret).map_err(CapError::InvalidRequest)?;
            state.policy.check_secret(secret).map_err(CapError::Denied)
        }
        ParamValue::Secret(SecretRef::GrantPassword) if state.secrets.grant_password.is_none() => {
            Err(CapError::Denied(format!(
                "parameter {name}: there is no grant password here (only a grant of an \
                 integration whose credential is a password has one)"
            )))
        }
        ParamValue::Secret(SecretRef::NewServicePassword)
            if state.secrets.new_service_password.is_none() =>
        {
            Err(CapError::Denied(format!(
                "parameter {name}: there is no new service password outside a rotation"
            )))
        }
        ParamValue::Integer(_)
        | ParamValue::Boolean(_)
        | ParamValue::Switch
        | ParamValue::Secret(_) => Ok(()),
    }
}

/// A PowerShell single-quoted literal of `value`: nothing inside it is expanded.
pub fn powershell_literal(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        if matches!(c, '\'' | '\u{2018}' | '\u{2019}' | '\u{201A}' | '\u{201B}') {
            out.push(c);
        }
        out.push(c);
    }
    out.push('\'');
    out
}

/// Render `cmdlet` and its parameters, with `secret` deciding what a secret handle becomes.
fn render(
    cmdlet: &str,
    parameters: &[(String, ParamValue)],
    mut secret: impl FnMut(&SecretRef) -> Result<String, CapError>,
) -> Result<String, CapError> {
    let mut line = cmdlet.to_string();
    for (name, value) in parameters {
        line.push_str(" -");
        line.push_str(name);
        let rendered = match value {
            ParamValue::Switch => continue,
            // `-Name:$false`, bound to the parameter: right for a [bool] parameter and for a
            // [switch] (`-Confirm:$false`), where `-Confirm $false` would make `$false` a
            // positional argument.
            ParamValue::Boolean(b) => {
                line.push_str(if *b { ":$true" } else { ":$false" });
                continue;
            }
            ParamValue::Text(v) => powershell_literal(v),
            ParamValue::Integer(n) => n.to_string(),
            ParamValue::TextList(items) => {
                let quoted: Vec<String> = items.iter().map(|v| powershell_literal(v)).collect();
                format!("@({})", quoted.join(", "))
            }
            ParamValue::Secret(r) => secret(r)?,
        };
        line.push(' ');
        line.push_str(&rendered);
    }
    Ok(line)
}

/// The command as records and plans show it: secrets by name (`<secret:grant-password>`).
pub fn render_command(cmdlet: &str, parameters: &[(String, ParamValue)]) -> String {
    render(cmdlet, parameters, |r| Ok(r.to_string())).expect("rendering names cannot fail")
}

/// The command as it goes on the wire, each secret handle replaced by a `SecureString` of
/// its value (from `resolve`). The result is itself a [`Secret`]: it must never be logged.
pub fn powershell_script(
    cmdlet: &str,
    parameters: &[(String, ParamValue)],
    mut resolve: impl FnMut(&SecretRef) -> Result<Secret, CapError>,
) -> Result<Secret, CapError> {
    let script = render(cmdlet, parameters, |r| {
        let value = resolve(r)?;
        let text = std::str::from_utf8(value.expose())
            .ok()
            .filter(|t| !t.contains('\0'))
            .ok_or_else(|| {
                CapError::Failed(format!(
                    "{r} is not text without NUL and cannot be a PowerShell string"
                ))
            })?;
        Ok(format!(
            "(ConvertTo-SecureString {} -AsPlainText -Force)",
            powershell_literal(text)
        ))
    })?;
    Ok(Secret::new(script.into_bytes()))
}

/// The whole script sent to `powershell.exe` for one call: progress records off, the
/// cmdlet's objects as one compressed JSON array (`[]` when there are none). The Windows
/// stand-in (`tests/winrm/standin.py`) accepts exactly this form and nothing else.
pub fn wire_script(
    cmdlet: &str,
    parameters: &[(String, ParamValue)],
    resolve: impl FnMut(&SecretRef) -> Result<Secret, CapError>,
) -> Result<Secret, CapError> {
    let call = powershell_script(cmdlet, parameters, resolve)?;
    let mut script = Vec::with_capacity(call.expose().len() + 96);
    script.extend_from_slice(
        b"$ProgressPreference = 'SilentlyContinue'\nConvertTo-Json -Compress -Depth 3 -InputObject @(",
    );
    script.extend_from_slice(call.expose());
    script.push(b')');
    Ok(Secret::new(script))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(v: &str) -> ParamValue {
        ParamValue::Text(v.into())
    }

    #[test]
    fn values_become_inert_literals() {
        let cmd = render_command(
            "Add-ADGroupMember",
            &[
                ("Identity".into(), text("Domain Admins")),
                ("Members".into(), text("x'; Remove-Item C:\\ -Recurse; '")),
                ("Confirm".into(), ParamValue::Switch),
            ],
        );
        assert_eq!(
            cmd,
            "Add-ADGroupMember -Identity 'Domain Admins' -Members 'x''; Remove-Item C:\\ -Recurse; ''' -Confirm"
        );
        assert_eq!(powershell_literal("a\u{2019}b"), "'a\u{2019}\u{2019}b'");
        assert_eq!(powershell_literal("$(whoami)"), "'$(whoami)'");
        let typed = render_command(
            "Set-LocalUser",
            &[
                ("Name".into(), text("alice")),
                ("Index".into(), ParamValue::Integer(-3)),
                ("Enabled".into(), ParamValue::Boolean(false)),
                (
                    "Member".into(),
                    ParamValue::TextList(vec!["a".into(), "b'c".into()]),
                ),
            ],
        );
        assert_eq!(
            typed,
            "Set-LocalUser -Name 'alice' -Index -3 -Enabled:$false -Member @('a', 'b''c')"
        );
    }

    #[test]
    fn secrets_show_by_name_and_reach_only_the_wire_script() {
        let params = vec![
            ("Name".to_string(), text("alice")),
            (
                "Password".to_string(),
                ParamValue::Secret(SecretRef::GrantPassword),
            ),
        ];
        let shown = render_command("Set-LocalUser", &params);
        assert_eq!(
            shown,
            "Set-LocalUser -Name 'alice' -Password <secret:grant-password>"
        );
        let canary = "Canary'1-\u{2019}x";
        let script = powershell_script("Set-LocalUser", &params, |_| {
            Ok(Secret::new(canary.as_bytes().to_vec()))
        })
        .unwrap();
        let script = String::from_utf8(script.expose().to_vec()).unwrap();
        assert_eq!(
            script,
            "Set-LocalUser -Name 'alice' -Password (ConvertTo-SecureString 'Canary''1-\u{2019}\u{2019}x' -AsPlainText -Force)"
        );
        let call = Invoke {
            target: crate::caps::Target {
                host: "h".into(),
                port: 5985,
                user: None,
            },
            cmdlet: "Set-LocalUser".into(),
            parameters: params,
            effect: crate::caps::Effect::Change,
        };
        assert!(!format!("{call:?} {call}").contains("Canary"));
        assert!(
            !serde_json::to_string(&call.record())
                .unwrap()
                .contains("Canary")
        );
    }

    #[test]
    fn names_are_checked() {
        assert!(is_cmdlet("Enable-ADAccount"));
        assert!(!is_cmdlet("Invoke-Expression;x"));
        assert!(!is_cmdlet("iex"));
        assert!(!is_cmdlet("-Foo"));
        assert!(is_parameter_name("Identity"));
        assert!(!is_parameter_name("Id entity"));
        assert!(!is_parameter_name("1x"));
    }
}
