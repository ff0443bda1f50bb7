//! The ledger: every grant's state and the audit chain, in SQLite (`data_dir/latch.db`).
//!
//! `grant` holds the record and its state machine, `audit` the hash chain, `sqlite` the store,
//! `forward` the copy of the audit log as JSON lines.
//! The store's interface is narrow so that a PostgreSQL store (several connectors, one ledger)
//! can implement it next.

pub mod audit;
pub mod error;
pub mod forward;
pub mod grant;
pub mod request;
pub mod sqlite;
pub mod token;

pub use audit::Event;
pub use error::LedgerError;
pub use grant::{GrantRecord, State, check_grant_id, new_grant_id};
pub use request::{Approval, RequestRecord, RequestState, new_request_id};
pub use sqlite::Ledger;
pub use token::{TokenRecord, TokenScope};
