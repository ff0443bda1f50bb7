//! `secrets.get`: read a secret the integration's policy lists.
//!
//! Defends against secret leaks and against a guest reading secrets of other integrations:
//! a name must be in the integration's `secrets` list (checked before any store is asked),
//! and must be a plain name (letters, digits, `.`, `_`, `-`; not starting with `.`), so it
//! can never name a path outside a directory store. Values travel in [`Secret`], whose
//! `Debug` and `Display` print `[redacted]` and whose bytes are zeroed when dropped; a record
//! of the call holds the name only.

mod store;
pub(crate) mod wit;

use std::fmt;

pub use store::SecretStore;

use super::{CapCall, CapError};
use crate::world::CallState;

/// Most bytes of a secret name.
pub const MAX_NAME_BYTES: usize = 128;

/// A secret value. Never printed; zeroed on drop (`zeroize`, spare capacity included).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(zeroize::Zeroizing<Vec<u8>>);

impl Secret {
    /// Wrap `bytes`.
    pub fn new(bytes: Vec<u8>) -> Self {
        Secret(zeroize::Zeroizing::new(bytes))
    }

    /// The value; the caller takes care not to print it.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Check that `name` is a plain secret name.
pub fn check_name(name: &str) -> Result<(), String> {
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

/// Check a `secrets.get` call against the integration's `secrets` list.
pub(crate) fn authorize(state: &CallState, call: &mut CapCall) -> Result<(), CapError> {
    let CapCall::SecretGet { name } = call else {
        unreachable!("secrets::authorize called for {}", call.capability());
    };
    check_name(name).map_err(CapError::InvalidRequest)?;
    state.policy.check_secret(name).map_err(CapError::Denied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let s = Secret::new(b"hunter2".to_vec());
        assert_eq!(format!("{s:?} {s}"), "Secret([redacted]) [redacted]");
    }

    #[test]
    fn names_cannot_be_paths() {
        for bad in ["", "../etc/shadow", "a/b", ".hidden", "a b", "x\0y"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_name("prod-ssh.key_1").is_ok());
        assert!(check_name(&"a".repeat(129)).is_err());
    }
}
