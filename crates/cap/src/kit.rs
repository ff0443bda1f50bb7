//! The test kit's half that lives with the capabilities: what an expected call is and how it
//! matches an actual one, what it answers by default, and what policy it implies. Each
//! capability's module has a `kit` with its expectations; `guests/testkit` strings them
//! into scripts.

use std::collections::{BTreeMap, HashMap};

use super::{CapCall, CapReply, Policy};

/// Names bound by `{name}` placeholders in expected argv elements.
pub type Names = HashMap<String, String>;

/// What a script's expectations imply for the policy: the targets and secrets they name are
/// allowed, each capability's part ([`ImpliedPart`]) lends what its expectations named, and
/// nothing else. Directory bounds are never implied: a script states them as the operator
/// would write them (`Script::directory`), so a test of a refusal is a test against the
/// policy as written, not one widened to what the script expects.
#[derive(Debug, Default)]
pub struct Implied {
    /// `allow` rules.
    pub allow: Vec<String>,
    /// Secret names.
    pub secrets: Vec<String>,
    parts: BTreeMap<&'static str, Box<dyn AnyPart>>,
}

/// A capability's part of what a script implies (winrm's cmdlets, cloud's actions and
/// scopes), gathered by its expectations and lent as the slice the operator would write.
pub trait ImpliedPart: std::fmt::Debug + Default + Send + 'static {
    /// Add what was gathered to `policy`, as `latch.toml` would lend it.
    fn lend(self, policy: Policy) -> Result<Policy, String>;
}

trait AnyPart: std::fmt::Debug + Send {
    fn lend(self: Box<Self>, policy: Policy) -> Result<Policy, String>;
    fn as_any_mut(&mut self) -> &mut dyn std::any::Any;
}

impl<P: ImpliedPart> AnyPart for P {
    fn lend(self: Box<Self>, policy: Policy) -> Result<Policy, String> {
        ImpliedPart::lend(*self, policy)
    }
    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }
}

impl Implied {
    /// What `allow` and `secrets` allow, and no capability's part yet.
    pub fn new(allow: Vec<String>, secrets: Vec<String>) -> Self {
        Implied {
            allow,
            secrets,
            parts: BTreeMap::new(),
        }
    }

    /// Allow `target`'s host and port.
    pub fn target(&mut self, target: &super::Target) {
        self.allow.push(if target.host.contains(':') {
            format!("[{}]:{}", target.host, target.port)
        } else {
            format!("{}:{}", target.host, target.port)
        });
    }

    /// The part of type `P` (made empty on first use).
    pub fn part<P: ImpliedPart>(&mut self) -> &mut P {
        self.parts
            .entry(std::any::type_name::<P>())
            .or_insert_with(|| Box::new(P::default()))
            .as_any_mut()
            .downcast_mut()
            .expect("a part is keyed by its own type")
    }

    /// The policy: the targets and secrets, then each part's slice.
    pub fn policy(self) -> Result<Policy, String> {
        let mut policy = Policy::parse(&self.allow, &self.secrets)?;
        for part in self.parts.into_values() {
            policy = part.lend(policy)?;
        }
        Ok(policy)
    }
}

/// An expected capability call.
pub trait Expectation: std::fmt::Debug + std::fmt::Display + Send + Sync + 'static {
    /// Does `actual` match? Binds `{name}` placeholders in `names` only on a match.
    fn matches(&self, actual: &CapCall, names: &mut Names) -> bool;
    /// What it answers unless the script says otherwise: its capability's empty success.
    fn default_reply(&self) -> CapReply;
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
