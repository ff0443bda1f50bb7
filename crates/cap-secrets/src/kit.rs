//! The test kit's half of `secrets`: an expected read of a secret.

use crate::Get;
use latch_cap::kit::{Expectation, Implied, Names};
use latch_cap::{CapCall, CapReply};

/// An expected `secrets.get`.
#[derive(Clone, Debug)]
pub struct ExpectGet {
    /// The secret's name.
    pub name: String,
}

impl Expectation for ExpectGet {
    fn matches(&self, actual: &CapCall, _: &mut Names) -> bool {
        actual.get::<Get>().is_some_and(|a| a.name == self.name)
    }
    fn default_reply(&self) -> CapReply {
        CapReply::new(latch_cap::Secret::new(Vec::new()))
    }
    fn implies(&self, policy: &mut Implied) {
        policy.secrets.push(self.name.clone());
    }
    fn clone_box(&self) -> Box<dyn Expectation> {
        Box::new(self.clone())
    }
    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }
}

impl std::fmt::Display for ExpectGet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "secrets.get {}", self.name)
    }
}
