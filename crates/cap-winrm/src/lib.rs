//! `winrm.read` / `winrm.invoke`: run one PowerShell cmdlet on a Windows server over WinRM.
//!
//! Defends against script injection and against a guest running more than it was lent:
//! - a guest names a cmdlet and typed parameters, never a script. The cmdlet must be in the
//!   host's catalog ([`catalog`], `catalog.toml`: the only cmdlets Latch lends, each with its
//!   parameters and their kinds) and on the integration's allowlist (`[integration.winrm]
//!   read` for `winrm.read`, `read` or `change` for `winrm.invoke`); each parameter must be
//!   one the catalog lists, by its full name, with a value of its kind; parameters that name
//!   directory objects are held to `[integration.directory]` as `ldap.*` calls are
//!   ([`checks`]);
//! - parameter names must be identifiers; every value becomes an inert literal in
//!   [`render_command`]: strings single-quoted (doubling `'` *and* the typographic quotes
//!   U+2018–U+201B that PowerShell also accepts), integers as digits, booleans bound with a
//!   colon (`-Confirm:$false`, right for [bool] and [switch] parameters alike), lists as
//!   `@(…)` of quoted strings;
//! - secrets are **handles** (`secret-ref`): the record shows `<secret:NAME>`, and the script
//!   on the wire holds a variable in its place ([`wire_script`]): the value travels on the
//!   command's stdin, never in a command line or script text that Windows logs, and becomes
//!   a `SecureString` on the server. A `named` secret must be in the integration's `secrets`
//!   list; the grant's password exists only while a grant of a password integration is served.
//!
//! The target must be in the `allow` list. (The live transport is the WinRM issue's; until
//! then a live call fails saying so.)

pub mod catalog;
mod checks;
pub mod kit;
pub mod lent;
pub mod live;
pub mod login;
pub mod pool;
pub mod shell;
pub mod table;
pub mod transport;
pub mod wit;
pub mod wsman;

use serde::Serialize;

use latch_cap::CallState;
use latch_cap::{
    Answered, Call, CapError, CapReply, CmdletOutput, Effect, ParamValue, Secret, Target, record_of,
};
use latch_contract::SecretRef;

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
    /// AD identities the checks found as names, to resolve to DNs before the call goes
    /// (filled and emptied by the host; a guest never sets it).
    #[serde(skip)]
    pub resolving: Vec<checks::Resolve>,
}

impl Invoke {
    /// A call of `cmdlet` with `parameters` on `target`.
    pub fn new(
        target: Target,
        cmdlet: impl Into<String>,
        parameters: Vec<(String, ParamValue)>,
        effect: Effect,
    ) -> Invoke {
        Invoke {
            target,
            cmdlet: cmdlet.into(),
            parameters,
            effect,
            resolving: Vec::new(),
        }
    }
}

impl Answered for Invoke {
    type Reply = CmdletOutput;
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
    fn login(&self) -> Option<(&'static str, &Target)> {
        Some((login::NAME, &self.target))
    }
    fn authorize(&mut self, state: &CallState) -> Result<(), CapError> {
        authorize(state, self)
    }
    fn lookups(&self) -> Vec<latch_cap::CapCall> {
        self.resolving
            .iter()
            .map(|r| checks::lookup(self, r))
            .collect()
    }
    fn resolve(
        &mut self,
        state: &CallState,
        answers: Vec<Result<CapReply, CapError>>,
    ) -> Result<(), CapError> {
        checks::resolved(state, self, answers)
    }
    fn record(&self) -> serde_json::Map<String, serde_json::Value> {
        record_of(self)
    }
    fn empty_reply(&self) -> CapReply {
        CapReply::new(CmdletOutput {
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

/// Check a `winrm` call: its cmdlet and every parameter against the catalog and the
/// directory bounds ([`checks`]), then the allowlist and the target against the policy.
fn authorize(state: &CallState, call: &mut Invoke) -> Result<(), CapError> {
    if !is_cmdlet(&call.cmdlet) {
        return Err(CapError::InvalidRequest(format!(
            "cmdlet {:?} is not of the form Verb-Noun",
            call.cmdlet
        )));
    }
    if call.parameters.len() > MAX_PARAMETERS {
        return Err(CapError::InvalidRequest(format!(
            "{} parameters, more than the {MAX_PARAMETERS} allowed",
            call.parameters.len()
        )));
    }
    for (name, _) in &call.parameters {
        if !is_parameter_name(name) {
            return Err(CapError::InvalidRequest(format!(
                "parameter name {name:?} must be letters and digits, starting with a letter"
            )));
        }
    }
    state
        .policy()
        .get_or_default::<lent::Cmdlets>()
        .check(&call.cmdlet, call.effect)
        .map_err(CapError::Denied)?;
    state
        .policy()
        .check_target(&call.target)
        .map_err(CapError::Denied)?;
    checks::check(state, call)
}

/// A PowerShell single-quoted literal of `value`: nothing inside it is expanded. (Beside
/// the scrubber, which looks for a secret in this form too.)
pub use latch_secret::encoding::powershell_literal;

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

/// What goes on the wire for one call: the script, which holds **no secret** (each secret
/// parameter is a variable, `$latch0`, `$latch1`, …), and the standard input that carries
/// the secrets (one line each: base64 of the value's UTF-8), which the script reads into
/// `SecureString`s. Windows logs command lines (event 4688), script blocks (4104) and
/// cmdlets' parameters (4103); none of them sees a secret this way.
pub struct Wire {
    /// The whole script for `powershell.exe -EncodedCommand`.
    pub script: String,
    /// Its standard input, when it has secrets (never logged; zeroed when dropped).
    pub stdin: Option<Secret>,
}

/// The script's first line, in every form: progress records off.
const PROGRESS_OFF: &str = "$ProgressPreference = 'SilentlyContinue'";

/// The lines that read `count` secrets from stdin into `$latch0` … (PowerShell feeds a
/// script's stdin to `$input` only when `$input` appears at its top level, and then reads
/// all of it; Ansible reads its secrets over WinRM the same way).
pub fn stdin_prelude(count: usize) -> String {
    let mut lines = vec![
        "$latch = @($input)".to_string(),
        format!(
            "if ($latch.Count -ne {count}) {{ throw 'Latch: stdin did not carry the {count} secrets' }}"
        ),
    ];
    for i in 0..count {
        lines.push(format!(
            "$latch{i} = [Security.SecureString]::new(); foreach ($c in \
             [Text.Encoding]::UTF8.GetChars([Convert]::FromBase64String($latch[{i}]))) \
             {{ $latch{i}.AppendChar($c) }}; $latch{i}.MakeReadOnly()"
        ));
    }
    lines.push("$latch = $null".to_string());
    lines.join("\n")
}

/// The script sent to `powershell.exe` for one call: progress records off, the secrets read
/// from stdin (only if the call has any), and the cmdlet's objects as one compressed JSON
/// array (`[]` when there are none). Each secret handle's value comes from `resolve` and goes
/// to stdin only. The Windows stand-in (`tests/winrm/standin.py`) accepts exactly this form and
/// nothing else.
pub fn wire_script(
    cmdlet: &str,
    parameters: &[(String, ParamValue)],
    mut resolve: impl FnMut(&SecretRef) -> Result<Secret, CapError>,
) -> Result<Wire, CapError> {
    use base64::Engine;
    let mut stdin = zeroize::Zeroizing::new(Vec::new());
    let mut count = 0;
    let call = render(cmdlet, parameters, |r| {
        let value = resolve(r)?;
        let text = std::str::from_utf8(value.expose())
            .ok()
            .filter(|t| !t.contains('\0'))
            .ok_or_else(|| {
                CapError::Failed(format!(
                    "{r} is not text without NUL and cannot be a PowerShell string"
                ))
            })?;
        let line = zeroize::Zeroizing::new(
            base64::engine::general_purpose::STANDARD.encode(text.as_bytes()),
        );
        stdin.extend_from_slice(line.as_bytes());
        stdin.extend_from_slice(b"\r\n");
        let variable = format!("$latch{count}");
        count += 1;
        Ok(variable)
    })?;
    let mut script = String::from(PROGRESS_OFF);
    script.push('\n');
    if count > 0 {
        script.push_str(&stdin_prelude(count));
        script.push('\n');
    }
    script.push_str("ConvertTo-Json -Compress -Depth 3 -InputObject @(");
    script.push_str(&call);
    script.push(')');
    Ok(Wire {
        script,
        stdin: (count > 0).then(|| Secret::new(stdin.to_vec())),
    })
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
    fn secrets_show_by_name_and_reach_only_stdin() {
        let params = vec![
            ("Name".to_string(), text("alice")),
            (
                "Password".to_string(),
                ParamValue::Secret(SecretRef::GrantPassword),
            ),
            (
                "Token".to_string(),
                ParamValue::Secret(SecretRef::Named("t".into())),
            ),
        ];
        let shown = render_command("Set-LocalUser", &params);
        assert_eq!(
            shown,
            "Set-LocalUser -Name 'alice' -Password <secret:grant-password> -Token <secret:t>"
        );
        let canary = "Canary'1-\u{2019}x";
        let wire = wire_script("Set-LocalUser", &params, |r| {
            Ok(Secret::new(match r {
                SecretRef::GrantPassword => canary.as_bytes().to_vec(),
                _ => b"second".to_vec(),
            }))
        })
        .unwrap();
        assert!(!wire.script.contains("Canary") && !wire.script.contains("second"));
        assert!(wire.script.ends_with(
            "ConvertTo-Json -Compress -Depth 3 -InputObject @(Set-LocalUser -Name 'alice' \
             -Password $latch0 -Token $latch1)"
        ));
        assert!(wire.script.contains(&stdin_prelude(2)));
        use base64::Engine;
        let b64 = |v: &[u8]| base64::engine::general_purpose::STANDARD.encode(v);
        assert_eq!(
            wire.stdin.unwrap().expose(),
            format!("{}\r\n{}\r\n", b64(canary.as_bytes()), b64(b"second")).as_bytes()
        );
        // No secret, no stdin and no prelude: the two-line form.
        let plain = wire_script("Get-LocalUser", &[], |_| unreachable!()).unwrap();
        assert_eq!(
            plain.script,
            "$ProgressPreference = 'SilentlyContinue'\nConvertTo-Json -Compress -Depth 3 \
             -InputObject @(Get-LocalUser)"
        );
        assert!(plain.stdin.is_none());
        let call = Invoke::new(
            latch_cap::Target {
                host: "h".into(),
                port: 5985,
                user: None,
            },
            "Set-LocalUser",
            params,
            latch_cap::Effect::Change,
        );
        assert!(!format!("{call:?} {call}").contains("Canary"));
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
