//! `ssh.exec`: run a program on a server over SSH.
//!
//! Defends against command injection: a guest passes an argv list, never a shell string, and
//! [`quote_argv`] turns it into one POSIX-shell word per element, so no element (a username
//! such as `alice;rm -rf /` or `$(id)`) can become shell syntax on the server. Arguments are
//! bounded in count and size and may not hold NUL bytes; the program may not start with `-`.
//! The target must be covered by the integration's `allow` list.

pub mod client;
pub mod kit;
pub mod live;
pub mod login;
pub mod table;
pub mod wit;

use serde::Serialize;

use latch_cap::CallState;
use latch_cap::{
    Answered, Call, CapError, CapReply, Effect, Output, Target, check_text, record_of,
};

/// `ssh.read` / `ssh.exec`: `argv` on `target`, with `stdin`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Exec {
    /// Where to run.
    pub target: Target,
    /// Program and arguments; quoted by the host.
    pub argv: Vec<String>,
    /// Bytes for the command's standard input (recorded by length only).
    #[serde(rename = "stdin_bytes", serialize_with = "len_only")]
    pub stdin: Vec<u8>,
    /// `ssh.read` or `ssh.exec`.
    pub effect: Effect,
}

fn len_only<S: serde::Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(bytes.len() as u64)
}

impl Answered for Exec {
    type Reply = Output;
}

impl Call for Exec {
    fn capability(&self) -> &'static str {
        match self.effect {
            Effect::Read => "ssh.read",
            Effect::Change => "ssh.exec",
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
    fn record(&self) -> serde_json::Map<String, serde_json::Value> {
        record_of(self)
    }
    fn empty_reply(&self) -> CapReply {
        CapReply::new(Output::default())
    }
    fn clone_call(&self) -> Box<dyn Call> {
        Box::new(self.clone())
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// The exact command as it would run: `ssh.exec apono@10.0.0.5:22: sudo -n useradd alice`.
impl std::fmt::Display for Exec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.capability(),
            self.target,
            quote_argv(&self.argv)
        )?;
        if !self.stdin.is_empty() {
            write!(f, " <stdin {} bytes>", self.stdin.len())?;
        }
        Ok(())
    }
}

/// Most argv elements one call may pass.
pub const MAX_ARGS: usize = 256;
/// Most bytes of one argv element.
pub const MAX_ARG_BYTES: usize = 8 * 1024;
/// Most bytes of stdin one call may send.
pub const MAX_STDIN_BYTES: usize = 1 << 20;

/// Check an `ssh` call's arguments and its target against the policy.
fn authorize(state: &CallState, call: &Exec) -> Result<(), CapError> {
    let Exec {
        target,
        argv,
        stdin,
        ..
    } = call;
    let Some(program) = argv.first() else {
        return Err(CapError::InvalidRequest("argv is empty".into()));
    };
    if program.is_empty() || program.starts_with('-') {
        return Err(CapError::InvalidRequest(format!(
            "program {program:?} must be a non-empty name not starting with '-'"
        )));
    }
    if argv.len() > MAX_ARGS {
        return Err(CapError::InvalidRequest(format!(
            "argv has {} elements, more than the {MAX_ARGS} allowed",
            argv.len()
        )));
    }
    for (i, arg) in argv.iter().enumerate() {
        check_text(&format!("argv[{i}]"), arg, MAX_ARG_BYTES)?;
    }
    if stdin.len() > MAX_STDIN_BYTES {
        return Err(CapError::InvalidRequest(format!(
            "stdin is {} bytes, more than the {MAX_STDIN_BYTES} allowed",
            stdin.len()
        )));
    }
    if let Some(user) = &target.user {
        latch_cap::check_account_name("target user", user)?;
    }
    state
        .policy()
        .check_target(target)
        .map_err(CapError::Denied)
}

/// Quote `argv` for a POSIX shell: every element becomes exactly one word.
///
/// Elements made only of characters no shell treats specially are left as they are, for
/// readable audit records; anything else is single-quoted, with `'` written as `'\''`.
pub fn quote_argv(argv: &[String]) -> String {
    argv.iter()
        .map(|a| quote_word(a))
        .collect::<Vec<_>>()
        .join(" ")
}

fn quote_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(argv: &[&str]) -> String {
        quote_argv(&argv.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn plain_words_stay_readable() {
        assert_eq!(words(&["useradd", "-m", "alice"]), "useradd -m alice");
        assert_eq!(words(&["usermod", "-e", "1", "bob"]), "usermod -e 1 bob");
    }

    #[test]
    fn hostile_words_are_single_quoted() {
        assert_eq!(words(&["id", "alice;rm -rf /"]), "id 'alice;rm -rf /'");
        assert_eq!(words(&["id", "$(id)"]), "id '$(id)'");
        assert_eq!(words(&["id", "`id`"]), "id '`id`'");
        assert_eq!(words(&["id", "it's"]), r"id 'it'\''s'");
        assert_eq!(words(&["echo", ""]), "echo ''");
        assert_eq!(words(&["echo", "a\nb"]), "echo 'a\nb'");
    }

    /// The probe a connection runs first reads back exactly under POSIX shells, and does not
    /// under csh-family shells (tcsh is installed by `make setup` for this and the fleet
    /// test; fish differs the same way, on backslashes inside single quotes).
    #[test]
    fn the_shell_probe_tells_posix_shells_from_others() {
        let argv = [
            "printf".to_string(),
            "%s".to_string(),
            client::SHELL_PROBE.to_string(),
        ];
        let line = quote_argv(&argv);
        let through = |shell: &str| {
            std::process::Command::new(shell)
                .arg("-c")
                .arg(&line)
                .env("HOME", "/nowhere")
                .output()
                .ok()
        };
        for shell in ["sh", "bash", "dash"] {
            let out = through(shell).unwrap_or_else(|| panic!("{shell} is installed"));
            assert_eq!(
                String::from_utf8_lossy(&out.stdout),
                client::SHELL_PROBE,
                "{shell}: {line}"
            );
        }
        let tcsh = through("tcsh").expect("tcsh is installed (make setup)");
        assert_ne!(String::from_utf8_lossy(&tcsh.stdout), client::SHELL_PROBE);
    }

    #[test]
    fn quoting_round_trips_through_a_real_shell() {
        let hostile = [
            "alice;rm -rf /",
            "$(id)",
            "`id`",
            "-oProxyCommand=x",
            "it's \"quoted\"",
            "tab\tnew\nline",
            "ünïcödé",
            "\\back\\slash",
            "*",
            "",
        ];
        for word in hostile {
            let line = format!("printf '%s' {}", quote_word(word));
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(&line)
                .output()
                .expect("run sh");
            assert_eq!(String::from_utf8_lossy(&out.stdout), word, "{line}");
        }
    }
}
