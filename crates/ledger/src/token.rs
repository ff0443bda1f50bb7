//! API tokens: a name, a scope, an expiry; stored as their sha256, never as themselves.
//!
//! Defends against one bearer token granting anyone anything forever: a token may grant (and
//! plan, extend, list resources and grants) only on the integrations its scope names; it may
//! revoke or extend only the grants it asked for itself unless its scope says
//! `revoke_others`; it may read the audit log and the metrics only with `read_audit`; it
//! expires (at most a year after it was made) and can be revoked at once.

use serde::{Deserialize, Serialize};

/// Longest a token may live.
pub const MAX_LIFETIME_SECS: u64 = 366 * 86_400;

/// What a token may do.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenScope {
    /// The integrations it may grant on (and plan, extend, list); `["*"]`: every one.
    pub integrations: Vec<String>,
    /// May it revoke and extend grants another caller asked for?
    #[serde(default)]
    pub revoke_others: bool,
    /// May it read the audit log and the metrics?
    #[serde(default)]
    pub read_audit: bool,
    /// The groups its identity (`token:NAME`) is in, for the access policy
    /// (`Group::"NAME"`): a machine caller's groups, until people sign in with their own.
    #[serde(default)]
    pub groups: Vec<String>,
}

impl TokenScope {
    /// May it act on `integration`?
    pub fn covers(&self, integration: &str) -> bool {
        self.integrations
            .iter()
            .any(|i| i == "*" || i == integration)
    }

    /// Everything (what tokens made before scopes could do).
    pub fn everything() -> TokenScope {
        TokenScope {
            integrations: vec!["*".into()],
            revoke_others: true,
            read_audit: true,
            groups: Vec::new(),
        }
    }

    /// `integrations=a,b; revoke-others; read-audit`, for tables.
    pub fn describe(&self) -> String {
        let mut parts = vec![format!("integrations={}", self.integrations.join(","))];
        if self.revoke_others {
            parts.push("revoke-others".into());
        }
        if self.read_audit {
            parts.push("read-audit".into());
        }
        if !self.groups.is_empty() {
            parts.push(format!("groups={}", self.groups.join(",")));
        }
        parts.join("; ")
    }
}

/// A token as the ledger keeps it.
#[derive(Clone, Debug, Serialize)]
pub struct TokenRecord {
    /// Its name (the audit's actor is `token:NAME`).
    pub name: String,
    /// When it was made (Unix seconds).
    pub created_at: u64,
    /// When it stops working.
    pub expires_at: u64,
    /// When it was revoked, if it was.
    pub revoked_at: Option<u64>,
    /// What it may do.
    pub scope: TokenScope,
}

impl TokenRecord {
    /// Why it no longer works at `now`, if it does not.
    pub fn unusable(&self, now: u64) -> Option<String> {
        if let Some(at) = self.revoked_at {
            return Some(format!("token {:?} was revoked at {at}", self.name));
        }
        if now >= self.expires_at {
            return Some(format!(
                "token {:?} expired at {}",
                self.name, self.expires_at
            ));
        }
        None
    }
}
