//! Capabilities the host lends to guests: one module (or crate) per WIT interface, one
//! shape each, on the capability core (crate `latch-cap`, re-exported here so that
//! `latch::caps::{dispatch, CallState, Policy, …}` name it).
//!
//! `registry.rs` is the one list of them; nothing else in the host names a capability.

pub use latch_cap::*;
/// `log`, a crate of its own (`crates/cap-log`): the worked example of docs/CAPABILITIES.md.
pub use latch_cap_log as log;
/// `certs` and `secrets`, crates of their own too (`crates/cap-certs`, `crates/cap-secrets`).
pub use {latch_cap_certs as certs, latch_cap_secrets as secrets};
/// `ssh`, `winrm`, `ldap`, `cloud`: crates of their own (`crates/cap-<name>`).
pub use {
    latch_cap_cloud as cloud, latch_cap_ldap as ldap, latch_cap_ssh as ssh,
    latch_cap_winrm as winrm,
};

pub mod registry;
