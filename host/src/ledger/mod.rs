//! The ledger: every grant's state and the audit chain, in SQLite (`data_dir/latch.db`).
//!
//! `grant` holds the record and its state machine, `audit` the hash chain, `sqlite` the store.
//! The store's interface is narrow so that a PostgreSQL store (several connectors, one ledger)
//! can implement it next.

pub mod audit;
pub mod grant;
pub mod sqlite;

pub use audit::Event;
pub use grant::{GrantRecord, State, check_grant_id, new_grant_id};
pub use sqlite::Ledger;
