//! Capabilities the host lends to guests: one crate per WIT interface (`crates/cap-<name>`),
//! one shape each, on the capability core (crate `latch-cap`, re-exported here so that
//! `latch::caps::{dispatch, CallState, Policy, …}` name it).
//!
//! [`registry`] is the one list of them; nothing above this crate names a capability.

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
