//! `certs`: the connector's SSH user CA, lent to guests for signing grant certificates.
//!
//! Defends against a guest minting access the grant does not allow: a certificate may only
//! be signed while a `grant` or `revoke` call serves a grant; its key id must be that grant's
//! id; its validity is clamped to the grant's expiry (a later `valid-before` is silently
//! narrowed, and the narrowed value is what is recorded); its principals must be valid
//! account names (at most 8). The CA's private key never enters the guest.

pub mod ca;
pub mod kit;
pub mod live;
pub mod wit;

use serde::Serialize;

use latch_cap::CallState;
use latch_cap::{
    Answered, Call, CapError, CapReply, Effect, check_account_name, check_text, record_of,
};

/// `certs.ca-public-key`: the CA's public key (public; always allowed).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CaPublicKey;

/// `certs.sign-ssh-user`, its validity clamped to the grant once authorized.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SignSshUser {
    /// The requester's public key, OpenSSH format.
    pub public_key: String,
    /// Principals (account names) the certificate is valid for.
    pub principals: Vec<String>,
    /// End of validity, Unix seconds.
    pub valid_before: u64,
    /// Key id written into the certificate (the grant id).
    pub key_id: String,
}

/// The CA's public key line.
impl Answered for CaPublicKey {
    type Reply = String;
}

impl Call for CaPublicKey {
    fn capability(&self) -> &'static str {
        "certs.ca-public-key"
    }
    fn effect(&self) -> Effect {
        Effect::Read
    }
    fn authorize(&mut self, _: &CallState) -> Result<(), CapError> {
        Ok(())
    }
    fn record(&self) -> serde_json::Map<String, serde_json::Value> {
        serde_json::Map::new()
    }
    fn empty_reply(&self) -> CapReply {
        CapReply::new(String::new())
    }
    fn clone_call(&self) -> Box<dyn Call> {
        Box::new(self.clone())
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

impl std::fmt::Display for CaPublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("certs.ca-public-key")
    }
}

/// Signing is a change: a plan mints no credential.
/// The certificate.
impl Answered for SignSshUser {
    type Reply = String;
}

impl Call for SignSshUser {
    fn capability(&self) -> &'static str {
        "certs.sign-ssh-user"
    }
    fn effect(&self) -> Effect {
        Effect::Change
    }
    fn authorize(&mut self, state: &CallState) -> Result<(), CapError> {
        authorize(state, self)
    }
    fn record(&self) -> serde_json::Map<String, serde_json::Value> {
        record_of(self)
    }
    fn empty_reply(&self) -> CapReply {
        CapReply::new(String::new())
    }
    fn clone_call(&self) -> Box<dyn Call> {
        Box::new(self.clone())
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

impl std::fmt::Display for SignSshUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "certs.sign-ssh-user principals={} valid_before={} key_id={}",
            self.principals.join(","),
            self.valid_before,
            self.key_id
        )
    }
}

/// Most principals one certificate may name.
pub const MAX_PRINCIPALS: usize = 8;
/// Most bytes of a public key.
pub const MAX_PUBLIC_KEY_BYTES: usize = 16 * 1024;

/// Check a signing call against the grant the guest call serves; clamp its validity.
fn authorize(state: &CallState, call: &mut SignSshUser) -> Result<(), CapError> {
    let SignSshUser {
        public_key,
        principals,
        valid_before,
        key_id,
    } = call;
    let Some(grant) = state.grant() else {
        return Err(CapError::Denied(
            "certificates can be signed only while serving a grant".into(),
        ));
    };
    if *key_id != grant.grant_id {
        return Err(CapError::Denied(format!(
            "key id {key_id:?} is not the grant id {:?}",
            grant.grant_id
        )));
    }
    check_text("public key", public_key, MAX_PUBLIC_KEY_BYTES)?;
    if principals.is_empty() || principals.len() > MAX_PRINCIPALS {
        return Err(CapError::InvalidRequest(format!(
            "a certificate names 1 to {MAX_PRINCIPALS} principals, not {}",
            principals.len()
        )));
    }
    for principal in principals.iter() {
        check_account_name("principal", principal)?;
    }
    *valid_before = (*valid_before).min(grant.expires_at);
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use latch_cap::GrantScope;
    use latch_cap::{Policy, Recorder};

    fn state(grant: Option<GrantScope>) -> CallState {
        CallState::new(
            "t".into(),
            Arc::new(Policy::default()),
            Arc::new(Recorder),
            grant,
            Default::default(),
            false,
            1 << 20,
        )
    }

    fn sign(principals: &[&str], valid_before: u64, key_id: &str) -> SignSshUser {
        SignSshUser {
            public_key: "ssh-ed25519 AAAA".into(),
            principals: principals.iter().map(|s| s.to_string()).collect(),
            valid_before,
            key_id: key_id.into(),
        }
    }

    #[test]
    fn signing_is_bound_to_the_grant_served() {
        let grant = GrantScope {
            grant_id: "g-1".into(),
            expires_at: 1_000,
        };
        // Outside a grant: denied.
        let err = authorize(&state(None), &mut sign(&["alice"], 500, "g-1")).unwrap_err();
        assert!(matches!(err, CapError::Denied(_)), "{err:?}");
        // Another grant's id: denied.
        let st = state(Some(grant.clone()));
        let err = authorize(&st, &mut sign(&["alice"], 500, "g-2")).unwrap_err();
        assert!(matches!(err, CapError::Denied(_)), "{err:?}");
        // Longer than the grant: narrowed to its expiry.
        let mut call = sign(&["alice"], 5_000, "g-1");
        authorize(&st, &mut call).unwrap();
        assert_eq!(call.valid_before, 1_000);
        // Shorter is kept.
        let mut call = sign(&["alice"], 900, "g-1");
        authorize(&st, &mut call).unwrap();
        assert_eq!(call.valid_before, 900);
        // Bad principals: invalid request.
        for bad in [
            &[][..],
            &["root;id"],
            &["a", "b", "c", "d", "e", "f", "g", "h", "i"],
        ] {
            let err = authorize(&st, &mut sign(bad, 900, "g-1")).unwrap_err();
            assert!(
                matches!(err, CapError::InvalidRequest(_)),
                "{bad:?}: {err:?}"
            );
        }
        // The CA's public key is always available.
        Call::authorize(&mut CaPublicKey, &state(None)).unwrap();
    }

    #[test]
    fn account_names() {
        for ok in ["alice", "_svc", "a-b_c9", &"a".repeat(32)] {
            assert!(check_account_name("user", ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Alice",
            "9lives",
            "-o",
            "a;b",
            "$(id)",
            "ünï",
            &"a".repeat(33),
        ] {
            assert!(check_account_name("user", bad).is_err(), "{bad}");
        }
    }
}
