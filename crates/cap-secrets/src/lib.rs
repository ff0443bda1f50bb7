//! `secrets.get`: read a secret the integration's policy lists.
//!
//! Defends against secret leaks and against a guest reading secrets of other integrations:
//! a name must be in the integration's `secrets` list (checked before any store is asked),
//! and must be a plain name (letters, digits, `.`, `_`, `-`; not starting with `.`), so it
//! can never name a path outside a directory store. Values travel in [`Secret`], whose
//! `Debug` and `Display` print `[redacted]` and whose bytes are zeroed when dropped; a record
//! of the call holds the name only.

pub mod kit;
pub mod live;
pub mod wit;

use std::fmt;

pub use latch_secret::{REDACTED, Scrubber, Secret, SecretSource};
/// The stores secrets are read from: their own crate, below the capabilities.
pub use latch_secret_store::{
    MAX_NAME_BYTES, RemoteStore, SecretStore, check_name, environment_form, remote, same_secret,
};
use serde::Serialize;

use latch_cap::CallState;
use latch_cap::{Answered, Call, CapError, CapReply, Effect, record_of};

/// `secrets.get`: the value of secret `name`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Get {
    /// The secret's name (never its value).
    pub name: String,
}

impl Answered for Get {
    type Reply = Secret;
}

impl Call for Get {
    fn capability(&self) -> &'static str {
        "secrets.get"
    }
    fn effect(&self) -> Effect {
        Effect::Read
    }
    fn authorize(&mut self, state: &CallState) -> Result<(), CapError> {
        check_name(&self.name).map_err(CapError::InvalidRequest)?;
        state
            .policy()
            .check_secret(&self.name)
            .map_err(CapError::Denied)
    }
    fn record(&self) -> serde_json::Map<String, serde_json::Value> {
        record_of(self)
    }
    fn empty_reply(&self) -> CapReply {
        CapReply::new(Secret::new(Vec::new()))
    }
    fn clone_call(&self) -> Box<dyn Call> {
        Box::new(self.clone())
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

impl fmt::Display for Get {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "secrets.get {}", self.name)
    }
}
