//! The test kit's half of `ssh`: an expected command.

use crate::Exec;
use latch_cap::kit::{Expectation, Implied, Names, argv_matches};
use latch_cap::{CapCall, CapReply, Effect, Output, Target};

/// An expected `ssh.read` or `ssh.exec`; argv elements may hold `{name}` placeholders.
#[derive(Clone, Debug)]
pub struct ExpectExec {
    /// Where.
    pub target: Target,
    /// The argv pattern.
    pub argv: Vec<String>,
    /// The stdin it must carry; `None` accepts any.
    pub stdin: Option<Vec<u8>>,
    /// Read or change.
    pub effect: Effect,
}

impl Expectation for ExpectExec {
    fn matches(&self, actual: &CapCall, names: &mut Names) -> bool {
        let Some(a) = actual.get::<Exec>() else {
            return false;
        };
        a.target == self.target
            && a.effect == self.effect
            && self.stdin.as_ref().is_none_or(|s| *s == a.stdin)
            && argv_matches(&self.argv, &a.argv, names)
    }
    fn default_reply(&self) -> CapReply {
        CapReply::new(Output::default())
    }
    fn implies(&self, policy: &mut Implied) {
        policy.target(&self.target);
    }
    fn clone_box(&self) -> Box<dyn Expectation> {
        Box::new(self.clone())
    }
    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }
}

impl std::fmt::Display for ExpectExec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let call = Exec {
            target: self.target.clone(),
            argv: self.argv.clone(),
            stdin: self.stdin.clone().unwrap_or_default(),
            effect: self.effect,
        };
        write!(f, "{call}")
    }
}
