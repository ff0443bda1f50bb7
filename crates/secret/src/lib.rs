//! Secret values, the lowest layer of the host: what a secret is ([`Secret`]: never
//! printed, zeroed on drop), where one comes from ([`SecretSource`], which the secret store
//! implements), the encodings Latch itself puts values in ([`encoding`]), and the
//! [`Scrubber`] that finds a value in each of them. It imports nothing of the host.

pub mod encoding;
mod scrub;

use std::fmt;

pub use scrub::{REDACTED, Scrubber};

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

/// Where secrets are read by name: the secret store, for a layer below it that needs one
/// (a cloud token's client secret) without depending on the store.
pub trait SecretSource: Send + Sync {
    /// The value of secret `name`; `None` if no store holds it.
    fn secret(&self, name: &str) -> Result<Option<Secret>, String>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let s = Secret::new(b"hunter2".to_vec());
        assert_eq!(format!("{s:?} {s}"), "Secret([redacted]) [redacted]");
    }
}
