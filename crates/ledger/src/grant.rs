//! A grant and its states: `granting → active → revoking → revoked`, or `failed`.
//!
//! A record holds no secret: the public key and certificate are public, and a private key
//! Latch generates for a requester is never stored.

use anyhow::bail;
use serde::{Deserialize, Serialize};

/// Where a grant is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Recorded; the guest's grant is running.
    Granting,
    /// Access is in place until `expires_at`.
    Active,
    /// The guest's revoke is running.
    Revoking,
    /// Access was taken away.
    Revoked,
    /// The grant failed (and was rolled back as far as the guest's revoke could).
    Failed,
}

/// One grant.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantRecord {
    pub grant_id: String,
    pub integration: String,
    pub resource_id: String,
    pub permission: String,
    pub email: String,
    /// The account name asked for, if any (else derived by the guest).
    pub requested_username: Option<String>,
    pub public_key: String,
    pub created_at: u64,
    pub expires_at: u64,
    pub state: State,
    /// Filled once granted.
    pub username: Option<String>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub revoked_at: Option<u64>,
    pub last_error: Option<String>,
    /// sha256 of the guest that granted it.
    pub guest_sha256: String,
    /// When the current `granting` began (the first grant, or an extension); reconciliation
    /// counts its deadline from here.
    #[serde(default)]
    pub granting_since: Option<u64>,
    /// When the guest's `cleanup` (delete the account) is due, for integrations with
    /// `user_cleanup_days`; set when the grant is revoked.
    #[serde(default)]
    pub cleanup_due_at: Option<u64>,
    /// When the account was cleaned up.
    #[serde(default)]
    pub cleaned_up_at: Option<u64>,
    /// What the guest's `grant` left for its revoke, extensions and cleanup (no secrets: the
    /// host refuses a state holding the grant's password).
    #[serde(default)]
    pub guest_state: Option<String>,
}

impl State {
    /// The name stored in the ledger.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Granting => "granting",
            State::Active => "active",
            State::Revoking => "revoking",
            State::Revoked => "revoked",
            State::Failed => "failed",
        }
    }

    /// Parse a stored name.
    pub fn parse(s: &str) -> anyhow::Result<State> {
        Ok(match s {
            "granting" => State::Granting,
            "active" => State::Active,
            "revoking" => State::Revoking,
            "revoked" => State::Revoked,
            "failed" => State::Failed,
            other => bail!("unknown grant state {other:?}"),
        })
    }

    /// May a grant move from `self` to `to`? A revoke may be retried (`revoking → revoking`);
    /// a failed grant is rolled back through `revoking`.
    pub fn can_move_to(self, to: State) -> bool {
        use State::*;
        matches!(
            (self, to),
            (Granting, Active)
                | (Granting, Failed)
                | (Active, Granting)
                | (Active, Revoking)
                | (Failed, Revoking)
                | (Revoking, Revoking)
                | (Revoking, Revoked)
        )
    }
}

/// Grant ids are `g-` and 24 lower-case hex digits.
pub fn check_grant_id(id: &str) -> Result<(), super::LedgerError> {
    check_id(id, "g-", "grant")
}

/// A new random grant id.
pub fn new_grant_id() -> String {
    new_id("g-")
}

/// Ledger ids (grants `g-`, requests `r-`): the prefix and 24 lower-case hex digits.
pub(crate) fn check_id(id: &str, prefix: &str, what: &str) -> Result<(), super::LedgerError> {
    let ok = id.len() == prefix.len() + 24
        && id.starts_with(prefix)
        && id[prefix.len()..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !ok {
        return Err(super::LedgerError::Invalid(format!(
            "{:?} is not a {what} id ({prefix} and 24 hex digits)",
            id.chars().take(64).collect::<String>()
        )));
    }
    Ok(())
}

/// A new random id with `prefix` (96 random bits).
pub(crate) fn new_id(prefix: &str) -> String {
    let bytes: [u8; 12] = rand::random();
    format!("{prefix}{}", hex::encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transitions_follow_the_state_machine() {
        use State::*;
        assert!(Granting.can_move_to(Active));
        assert!(Revoking.can_move_to(Revoking), "a revoke may be retried");
        assert!(!Revoked.can_move_to(Active), "revoked is final");
        assert!(Active.can_move_to(Granting), "an extension re-grants");
        assert!(
            !Revoked.can_move_to(Granting),
            "a revoked grant is never extended"
        );
        assert!(!Revoking.can_move_to(Active));
        assert!(!Granting.can_move_to(Revoked));
        for s in [Granting, Active, Revoking, Revoked, Failed] {
            assert_eq!(State::parse(s.as_str()).unwrap(), s);
        }
    }

    #[test]
    fn grant_ids() {
        let id = new_grant_id();
        check_grant_id(&id).unwrap();
        for bad in [
            "",
            "g-",
            "g-XYZ",
            "../etc/passwd",
            "g-0123456789abcdef0123456G",
        ] {
            assert!(check_grant_id(bad).is_err(), "{bad}");
        }
    }
}
