//! Why a grant, revoke or extension failed, by type.
//!
//! The HTTP API answers with the status of the error's type (never by matching its text),
//! and the CLI prints the same message. A guest's own error keeps its WIT case, so a guest
//! that says `denied` is a 403 whether or not it had run commands before deciding.

use latch_ledger::LedgerError;
use latch_runtime::{CallError, GuestError};

/// A service error.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// No integration of that name in this connector.
    #[error("{0}")]
    UnknownIntegration(String),
    /// No grant of that id.
    #[error("no grant {0}")]
    NotFound(String),
    /// The request is malformed or outside what the integration allows (duration, key, …);
    /// nothing was recorded or run.
    #[error("{0}")]
    BadRequest(String),
    /// The access policy refused it (audited); nothing was recorded or run.
    #[error("{0}")]
    Forbidden(String),
    /// The grant is not in a state that allows this (still granting, already revoked,
    /// another live grant on the same account and server, …).
    #[error("{0}")]
    Conflict(String),
    /// The guest call failed; `context` says which operation on which grant.
    #[error("{context}: {error}")]
    Guest {
        /// E.g. `grant refused`, `grant g-… failed`.
        context: String,
        /// What the guest (or the runtime) reported.
        error: CallError,
    },
    /// The connector itself failed (the ledger, a file); not the requester's doing.
    #[error("{0:#}")]
    Internal(anyhow::Error),
}

/// Who must act on an error; the HTTP API maps each to one status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// 404
    NotFound,
    /// 400
    BadRequest,
    /// 403: the policy or the integration refused.
    Denied,
    /// 409
    Conflict,
    /// 502: a server failed or could not be reached.
    Remote,
    /// 504: the guest call ran out of time.
    Timeout,
    /// 500: the connector, the integration's configuration or the guest itself is broken.
    Internal,
}

impl ServiceError {
    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ServiceError::UnknownIntegration(_) | ServiceError::NotFound(_) => ErrorKind::NotFound,
            ServiceError::BadRequest(_) => ErrorKind::BadRequest,
            ServiceError::Forbidden(_) => ErrorKind::Denied,
            ServiceError::Conflict(_) => ErrorKind::Conflict,
            ServiceError::Internal(_) => ErrorKind::Internal,
            ServiceError::Guest { error, .. } => match error {
                CallError::Guest(e) => match e {
                    GuestError::InvalidRequest(_) => ErrorKind::BadRequest,
                    // The resource the request names does not exist (any more).
                    GuestError::NotFound(_) => ErrorKind::NotFound,
                    GuestError::Denied(_) => ErrorKind::Denied,
                    GuestError::Unreachable(_) | GuestError::Failed(_) => ErrorKind::Remote,
                    // latch.toml is wrong, which the requester cannot fix.
                    GuestError::InvalidConfig(_) => ErrorKind::Internal,
                },
                CallError::Deadline(_) => ErrorKind::Timeout,
                CallError::Memory(_) | CallError::Trap(_) | CallError::Instantiate(_) => {
                    ErrorKind::Internal
                }
            },
        }
    }

    /// A guest error with `context`.
    pub(crate) fn guest(context: impl Into<String>, error: CallError) -> Self {
        ServiceError::Guest {
            context: context.into(),
            error,
        }
    }
}

impl From<LedgerError> for ServiceError {
    fn from(e: LedgerError) -> Self {
        match e {
            LedgerError::NotFound(id) => ServiceError::NotFound(id),
            LedgerError::Conflict(m) => ServiceError::Conflict(m),
            LedgerError::Invalid(m) => ServiceError::BadRequest(m),
            LedgerError::Storage(e) => ServiceError::Internal(e),
        }
    }
}

impl From<anyhow::Error> for ServiceError {
    fn from(e: anyhow::Error) -> Self {
        ServiceError::Internal(e)
    }
}

impl From<serde_json::Error> for ServiceError {
    fn from(e: serde_json::Error) -> Self {
        ServiceError::Internal(e.into())
    }
}

/// A service result.
pub type Result<T> = std::result::Result<T, ServiceError>;

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn guest(error: CallError) -> ErrorKind {
        ServiceError::guest("grant g-1 failed", error).kind()
    }

    /// The end-to-end API test covers 400, 403, 404, 409 and 502 on real servers; these are
    /// the kinds no fleet test can provoke cheaply.
    #[test]
    fn guest_and_runtime_failures_have_their_own_kind() {
        let g = |e| guest(CallError::Guest(e));
        assert_eq!(
            g(GuestError::InvalidRequest("x".into())),
            ErrorKind::BadRequest
        );
        assert_eq!(g(GuestError::Denied("x".into())), ErrorKind::Denied);
        assert_eq!(g(GuestError::NotFound("x".into())), ErrorKind::NotFound);
        assert_eq!(g(GuestError::Unreachable("x".into())), ErrorKind::Remote);
        assert_eq!(g(GuestError::Failed("x".into())), ErrorKind::Remote);
        assert_eq!(
            g(GuestError::InvalidConfig("x".into())),
            ErrorKind::Internal
        );
        assert_eq!(
            guest(CallError::Deadline(Duration::from_secs(30))),
            ErrorKind::Timeout
        );
        assert_eq!(
            guest(CallError::Trap("unreachable".into())),
            ErrorKind::Internal
        );
        let conflict = ServiceError::from(LedgerError::Conflict("busy".into()));
        assert_eq!(conflict.kind(), ErrorKind::Conflict);
        let storage = ServiceError::from(LedgerError::Storage(anyhow::anyhow!("disk I/O")));
        assert_eq!(storage.kind(), ErrorKind::Internal);
        assert_eq!(
            ServiceError::from(LedgerError::NotFound("g-1".into())).to_string(),
            "no grant g-1"
        );
    }
}
