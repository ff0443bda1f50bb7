//! The test kit's half of `certs`: an expected CA key read or signing.

use crate::{CaPublicKey, SignSshUser};
use latch_cap::kit::{Expectation, Implied, Names};
use latch_cap::{CapCall, CapReply};

/// An expected `certs.ca-public-key`.
#[derive(Clone, Debug)]
pub struct ExpectCaPublicKey;

impl Expectation for ExpectCaPublicKey {
    fn matches(&self, actual: &CapCall, _: &mut Names) -> bool {
        actual.get::<CaPublicKey>().is_some()
    }
    fn default_reply(&self) -> CapReply {
        CapReply::new(String::new())
    }
    fn implies(&self, _: &mut Implied) {}
    fn clone_box(&self) -> Box<dyn Expectation> {
        Box::new(self.clone())
    }
    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }
}

impl std::fmt::Display for ExpectCaPublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("certs.ca-public-key")
    }
}

/// An expected `certs.sign-ssh-user` (any public key).
#[derive(Clone, Debug)]
pub struct ExpectSign {
    /// The principals.
    pub principals: Vec<String>,
    /// The key id.
    pub key_id: String,
    /// The (clamped) end of validity it must carry; `None` accepts any.
    pub valid_before: Option<u64>,
}

impl Expectation for ExpectSign {
    fn matches(&self, actual: &CapCall, _: &mut Names) -> bool {
        actual.get::<SignSshUser>().is_some_and(|a| {
            a.principals == self.principals
                && a.key_id == self.key_id
                && self.valid_before.is_none_or(|v| v == a.valid_before)
        })
    }
    fn default_reply(&self) -> CapReply {
        CapReply::new(String::new())
    }
    fn implies(&self, _: &mut Implied) {}
    fn clone_box(&self) -> Box<dyn Expectation> {
        Box::new(self.clone())
    }
    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }
}

impl std::fmt::Display for ExpectSign {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "certs.sign-ssh-user principals={} valid_before={} key_id={}",
            self.principals.join(","),
            self.valid_before.map_or("*".to_string(), |v| v.to_string()),
            self.key_id
        )
    }
}
