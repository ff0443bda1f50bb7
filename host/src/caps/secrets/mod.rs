//! `secrets.get`: read a secret the integration's policy lists.
//!
//! Defends against secret leaks and against a guest reading secrets of other integrations:
//! a name must be in the integration's `secrets` list (checked before any store is asked),
//! and must be a plain name (letters, digits, `.`, `_`, `-`; not starting with `.`), so it
//! can never name a path outside a directory store. Values travel in [`Secret`], whose
//! `Debug` and `Display` print `[redacted]` and whose bytes are zeroed when dropped; a record
//! of the call holds the name only.

pub mod kit;
pub(crate) mod live;
pub mod remote;
mod store;
pub(crate) mod wit;

use std::fmt;

pub use latch_secret::{REDACTED, Scrubber, Secret, SecretSource};
pub use remote::RemoteStore;
use serde::Serialize;
pub use store::SecretStore;

use super::{Call, CapError, CapReply, Effect, record_of};
use crate::caps::CallState;

/// `secrets.get`: the value of secret `name`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Get {
    /// The secret's name (never its value).
    pub name: String,
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
            .policy
            .check_secret(&self.name)
            .map_err(CapError::Denied)
    }
    fn record(&self) -> serde_json::Map<String, serde_json::Value> {
        record_of(self)
    }
    fn empty_reply(&self) -> CapReply {
        CapReply::Secret(Secret::new(Vec::new()))
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

/// Most bytes of a secret name.
pub const MAX_NAME_BYTES: usize = 128;

/// Check that `name` is a plain secret name, or `STORE:PATH` (a secret of a configured
/// remote store: a plain store name, then a path as [`remote::check_path`] allows).
pub fn check_name(name: &str) -> Result<(), String> {
    if let Some((store, path)) = name.split_once(':') {
        check_plain(store).map_err(|e| format!("store of {name:?}: {e}"))?;
        return remote::check_path(path);
    }
    check_plain(name)
}

/// The environment variable a plain secret name is also read from, less its prefix: the
/// name upper-cased with `-` and `.` as `_` (`prod-key.1` → `PROD_KEY_1`). `None` for a
/// store's secret (`STORE:PATH`), which the environment never holds.
pub fn environment_form(name: &str) -> Option<String> {
    (!name.contains(':')).then(|| name.to_ascii_uppercase().replace(['-', '.'], "_"))
}

/// Do `a` and `b` name the same secret: the same name, or two plain names the environment
/// reads from one variable?
pub fn same_secret(a: &str, b: &str) -> bool {
    a == b || matches!((environment_form(a), environment_form(b)), (Some(x), Some(y)) if x == y)
}

fn check_plain(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_NAME_BYTES {
        return Err(format!(
            "secret name must be 1 to {MAX_NAME_BYTES} bytes long"
        ));
    }
    if name.starts_with('.')
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(format!(
            "secret name {name:?} may hold only letters, digits, '.', '_' and '-', and not start with '.'"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cannot_be_paths() {
        for bad in ["", "../etc/shadow", "a/b", ".hidden", "a b", "x\0y"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_name("prod-ssh.key_1").is_ok());
        assert!(check_name(&"a".repeat(129)).is_err());
        assert!(check_name("vault:ssh/prod").is_ok());
        for bad in [
            "vault:",
            ":x",
            "a/b:c",
            "vault:../x",
            "vault:a b",
            "vault:/x",
        ] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }
}
