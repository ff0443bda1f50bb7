//! `winrm.invoke`: run one PowerShell cmdlet on a Windows server over WinRM.
//!
//! Defends against script injection: a guest names a cmdlet and its parameters, never a
//! script. The cmdlet must look like `Verb-Noun` and parameter names like identifiers;
//! every value becomes a single-quoted PowerShell literal in [`powershell_command`], where
//! nothing is expanded. PowerShell also accepts the typographic quotes U+2018–U+201B as
//! single quotes, so those are doubled too. The target must be in the `allow` list.

use super::{CapCall, CapError, CapReply, check_text, dispatch};
use crate::runtime::CallState;
use crate::runtime::bindings::latch::connector::winrm;
use crate::runtime::bindings::types;

/// Most parameters one call may pass.
pub const MAX_PARAMETERS: usize = 64;
/// Most bytes of one parameter value.
pub const MAX_VALUE_BYTES: usize = 8 * 1024;

fn is_cmdlet(name: &str) -> bool {
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

/// Check a `winrm.invoke` call's cmdlet and parameters and its target against the policy.
pub(crate) fn authorize(state: &CallState, call: &mut CapCall) -> Result<(), CapError> {
    let CapCall::WinrmInvoke {
        target,
        cmdlet,
        parameters,
    } = call
    else {
        unreachable!("winrm::authorize called for {}", call.capability());
    };
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
        if let Some(value) = value {
            check_text(&format!("parameter {name}"), value, MAX_VALUE_BYTES)?;
        }
    }
    state.policy.check_target(target).map_err(CapError::Denied)
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

/// The PowerShell command line for an authorized cmdlet call.
pub fn powershell_command(cmdlet: &str, parameters: &[(String, Option<String>)]) -> String {
    let mut line = cmdlet.to_string();
    for (name, value) in parameters {
        line.push_str(" -");
        line.push_str(name);
        if let Some(value) = value {
            line.push(' ');
            line.push_str(&powershell_literal(value));
        }
    }
    line
}

impl winrm::Host for CallState {
    async fn invoke(
        &mut self,
        target: types::Target,
        cmdlet: String,
        parameters: Vec<winrm::Parameter>,
    ) -> Result<types::Output, types::Error> {
        let call = CapCall::WinrmInvoke {
            target: target.into(),
            cmdlet,
            parameters: parameters.into_iter().map(|p| (p.name, p.value)).collect(),
        };
        match dispatch(self, call).await? {
            CapReply::Output(out) => Ok(out.into()),
            other => {
                Err(CapError::Failed(format!("backend answered {other:?} to winrm.invoke")).into())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_become_inert_literals() {
        let cmd = powershell_command(
            "Add-ADGroupMember",
            &[
                ("Identity".into(), Some("Domain Admins".into())),
                (
                    "Members".into(),
                    Some("x'; Remove-Item C:\\ -Recurse; '".into()),
                ),
                ("Confirm".into(), None),
            ],
        );
        assert_eq!(
            cmd,
            "Add-ADGroupMember -Identity 'Domain Admins' -Members 'x''; Remove-Item C:\\ -Recurse; ''' -Confirm"
        );
        assert_eq!(powershell_literal("a\u{2019}b"), "'a\u{2019}\u{2019}b'");
        assert_eq!(powershell_literal("$(whoami)"), "'$(whoami)'");
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
