//! Why a ledger operation failed, by type, so callers (the HTTP API above all) answer by
//! the kind of failure and never by matching message text.

/// A ledger error.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// No grant has this id.
    #[error("no grant {0}")]
    NotFound(String),
    /// The grant is not in a state that allows the operation, or someone else changed it
    /// first, or another live grant holds the same account on the same resource.
    #[error("{0}")]
    Conflict(String),
    /// The argument itself is malformed (a grant id that cannot exist).
    #[error("{0}")]
    Invalid(String),
    /// The database failed (I/O, corruption, a lock held too long).
    #[error("the ledger failed: {0:#}")]
    Storage(#[from] anyhow::Error),
}

impl From<rusqlite::Error> for LedgerError {
    fn from(e: rusqlite::Error) -> Self {
        LedgerError::Storage(e.into())
    }
}

impl From<serde_json::Error> for LedgerError {
    fn from(e: serde_json::Error) -> Self {
        LedgerError::Storage(e.into())
    }
}

/// A ledger result.
pub type Result<T> = std::result::Result<T, LedgerError>;
