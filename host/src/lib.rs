//! Latch: a self-hosted just-in-time access connector.
//!
//! The host side: the sandboxed guest [`runtime`], the [`caps`] it lends to guests with their
//! policy, the [`config`] that pins guests and lists what each may reach, and the
//! [`connector`] that puts them together. The `latch` binary is a thin [`cli`] over these.

pub mod cli;

/// The capabilities and their registry: crate `latch-caps`.
pub use latch_caps as caps;

/// The sandbox: crate `latch-runtime`.
pub use latch_runtime as runtime;

/// `latch.toml`: crate `latch-config`.
pub use latch_config as config;

/// Grant, revoke, the scheduler and rotation, and the connector they run on: crate
/// `latch-service`.
pub use latch_service as service;
pub use latch_service::connector;

/// Who may get what: the Cedar access policy, crate `latch-access`.
pub use latch_access as access;

/// The HTTP API of `latch serve`: crate `latch-api`.
pub use latch_api as api;

/// The ledger: its own crate, below everything that records.
pub use latch_ledger as ledger;

/// The host's one HTTP client builder (in the cloud-auth crate, its main user).
pub use latch_cloud_auth::http;

/// The contract's bindings, every version served: their own crate, below the rest.
pub use latch_contract as world;
