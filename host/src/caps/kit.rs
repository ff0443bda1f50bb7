//! The test kit's half that lives with the capabilities: what an expected call is and how it
//! matches an actual one, what it answers by default, and what policy it implies. Each
//! capability's module has a `kit` with its expectations; `guests/testkit` strings them
//! into scripts.

use std::collections::HashMap;

use super::{CapCall, CapError, CmdletOutput, Output};

/// Names bound by `{name}` placeholders in expected argv elements.
pub type Names = HashMap<String, String>;

/// A scripted reply.
#[derive(Clone, Debug)]
pub enum Reply {
    /// A command's output.
    Output(Output),
    /// A cmdlet's output.
    Cmdlet(CmdletOutput),
    /// A secret's value.
    Secret(Vec<u8>),
    /// A certificate or a public key.
    Text(String),
    /// Entries a directory search found.
    Entries(Vec<super::directory::Entry>),
    /// Nothing (an LDAP add, modify or delete).
    Done,
    /// An error instead.
    Error(CapError),
}

/// What a script's expectations imply for the policy: the targets, secrets and cmdlets they
/// name are allowed, and nothing else. Directory bounds are never implied: a script states
/// them as the operator would write them (`Script::directory`), so a test of a refusal is a
/// test against the policy as written, not one widened to what the script expects.
#[derive(Clone, Debug, Default)]
pub struct Implied {
    /// `allow` rules.
    pub allow: Vec<String>,
    /// Secret names.
    pub secrets: Vec<String>,
    /// Cmdlets for `winrm.read`.
    pub cmdlets_read: Vec<String>,
    /// Cmdlets for `winrm.invoke`.
    pub cmdlets_change: Vec<String>,
    /// `service:Action`s called, as reads.
    pub aws_read: Vec<String>,
    /// Regions called.
    pub aws_regions: Vec<String>,
    /// Azure subscriptions read.
    pub azure_subscriptions: Vec<String>,
    /// Azure resource providers read.
    pub azure_providers: Vec<String>,
    /// Azure `$expand` values asked for.
    pub azure_expand: Vec<String>,
}

impl Implied {
    /// Allow `target`'s host and port.
    pub fn target(&mut self, target: &super::Target) {
        self.allow.push(if target.host.contains(':') {
            format!("[{}]:{}", target.host, target.port)
        } else {
            format!("{}:{}", target.host, target.port)
        });
    }
}

/// An expected capability call.
pub trait Expectation: std::fmt::Debug + std::fmt::Display + Send + Sync + 'static {
    /// Does `actual` match? Binds `{name}` placeholders in `names` only on a match.
    fn matches(&self, actual: &CapCall, names: &mut Names) -> bool;
    /// What it answers unless the script says otherwise.
    fn default_reply(&self) -> Reply;
    /// Add what it implies to the policy.
    fn implies(&self, policy: &mut Implied);
    /// A boxed copy.
    fn clone_box(&self) -> Box<dyn Expectation>;
    /// For the script's builder methods (`stdin`, `valid_before`).
    fn as_any_mut(&mut self) -> &mut dyn std::any::Any;
}

impl Clone for Box<dyn Expectation> {
    fn clone(&self) -> Self {
        self.clone_box()
    }
}

/// Does `actual` match the argv element `pattern`? A `{name}` in the pattern stands for 16
/// lower-case hex digits (a guest's temporary name), bound on first use in `names`; braces
/// around anything but a short lower-case name (a shell script's) are compared as they are.
fn element_matches(pattern: &str, actual: &str, names: &mut Names) -> bool {
    let (Some(open), Some(close)) = (pattern.find('{'), pattern.find('}')) else {
        return pattern == actual;
    };
    let name_like = |n: &str| {
        !n.is_empty()
            && n.len() <= 16
            && n.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    };
    if close < open || !name_like(&pattern[open + 1..close]) {
        return pattern == actual;
    }
    let (prefix, name, suffix) = (
        &pattern[..open],
        &pattern[open + 1..close],
        &pattern[close + 1..],
    );
    let Some(middle) = actual
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_suffix(suffix))
    else {
        return false;
    };
    match names.get(name) {
        Some(bound) => bound == middle,
        None => {
            let random = middle.len() == 16
                && middle
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
            if random {
                names.insert(name.to_string(), middle.to_string());
            }
            random
        }
    }
}

/// Does `actual` match `expected` element by element (with placeholders)? Binds names only
/// if the whole list matches.
pub fn argv_matches(expected: &[String], actual: &[String], names: &mut Names) -> bool {
    if expected.len() != actual.len() {
        return false;
    }
    let mut trial = names.clone();
    let all = expected
        .iter()
        .zip(actual)
        .all(|(p, a)| element_matches(p, a, &mut trial));
    if all {
        *names = trial;
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_bind_once_and_must_repeat() {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let mut names = Names::new();
        assert!(argv_matches(
            &v(&["tee", "/d/.latch.{a}"]),
            &v(&["tee", "/d/.latch.0123456789abcdef"]),
            &mut names
        ));
        assert!(argv_matches(
            &v(&["mv", "/d/.latch.{a}"]),
            &v(&["mv", "/d/.latch.0123456789abcdef"]),
            &mut names
        ));
        assert!(!argv_matches(
            &v(&["mv", "/d/.latch.{a}"]),
            &v(&["mv", "/d/.latch.fedcba9876543210"]),
            &mut names
        ));
        assert!(!argv_matches(
            &v(&["tee", "/d/.latch.{b}"]),
            &v(&["tee", "/d/.latch.XYZ"]),
            &mut names
        ));
        assert!(!names.contains_key("b"));
    }
}
