//! Latch: a self-hosted just-in-time access connector.
//!
//! The host side: the sandboxed guest [`runtime`], the [`caps`] it lends to guests with their
//! policy, the [`config`] that pins guests and lists what each may reach, and the
//! [`connector`] that puts them together. The `latch` binary is a thin [`cli`] over these.

pub mod api;
pub mod caps;
pub mod cli;
pub mod config;
pub mod connector;
pub mod runtime;
pub mod service;

/// The ledger: its own crate, below everything that records.
pub use latch_ledger as ledger;

/// The host's one HTTP client builder (in the cloud-auth crate, its main user).
pub use latch_cloud_auth::http;

/// The contract's bindings, every version served: their own crate, below the rest.
pub use latch_contract as world;
