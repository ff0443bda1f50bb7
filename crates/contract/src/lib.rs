//! The contract as the host sees it: the bindings of every version it serves and the
//! version-neutral model the rest of the host works with. It imports nothing of the host.
//!
//! This crate sits below both the runtime (which instantiates guests) and the capabilities
//! (which implement the imports), so neither imports the other's internals.
//!
//! Versioned like Spin's `spin_world::v1`/`v2` and Zed's `since_vX_Y_Z`: each contract
//! version has its own generated module, linked side by side, so a guest built for 0.1.0
//! keeps loading after 0.2.0 and 0.3.0. The model is the newest version's types ([`v0_3`]); an
//! older version converts to and from them in its own module ([`v0_1`], [`v0_2`]), and
//! nowhere else.

pub mod v0_1;
pub mod v0_2;
pub mod v0_3;

pub use v0_3::types::{
    AccessDetails, CredentialKind, Error as GuestError, GrantRequest, Granted, Identity, Lifecycle,
    Metadata, Page, Resource, SecretRef, ServiceCredential,
};

/// The contract versions this host serves, oldest first.
pub const VERSIONS: &[&str] = &["0.1.0", "0.2.0", "0.3.0"];

impl GuestError {
    /// The WIT case name, e.g. `invalid-config`.
    pub fn kind(&self) -> &'static str {
        match self {
            GuestError::InvalidConfig(_) => "invalid-config",
            GuestError::InvalidRequest(_) => "invalid-request",
            GuestError::NotFound(_) => "not-found",
            GuestError::Denied(_) => "denied",
            GuestError::Unreachable(_) => "unreachable",
            GuestError::Failed(_) => "failed",
        }
    }

    /// The same error with its message put through `f`.
    pub fn map_message(self, f: impl FnOnce(String) -> String) -> GuestError {
        match self {
            GuestError::InvalidConfig(m) => GuestError::InvalidConfig(f(m)),
            GuestError::InvalidRequest(m) => GuestError::InvalidRequest(f(m)),
            GuestError::NotFound(m) => GuestError::NotFound(f(m)),
            GuestError::Denied(m) => GuestError::Denied(f(m)),
            GuestError::Unreachable(m) => GuestError::Unreachable(f(m)),
            GuestError::Failed(m) => GuestError::Failed(f(m)),
        }
    }

    /// The message, without the case name.
    pub fn message(&self) -> &str {
        match self {
            GuestError::InvalidConfig(m)
            | GuestError::InvalidRequest(m)
            | GuestError::NotFound(m)
            | GuestError::Denied(m)
            | GuestError::Unreachable(m)
            | GuestError::Failed(m) => m,
        }
    }
}

impl std::fmt::Display for SecretRef {
    /// The name a record shows in place of the value: `<secret:grant-password>`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretRef::GrantPassword => f.write_str("<secret:grant-password>"),
            SecretRef::NewServicePassword => f.write_str("<secret:new-service-password>"),
            SecretRef::Named(name) => write!(f, "<secret:{name}>"),
        }
    }
}
