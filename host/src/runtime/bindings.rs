//! Host bindings for `latch:connector@0.1.0`, generated from `wit/`.
//!
//! Versioned like Spin's `spin_world::v2`: when the contract changes incompatibly, a new
//! module is added beside this one and guests built against 0.1.0 keep linking.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "integration-guest",
    imports: { default: async },
    exports: { default: async },
    additional_derives: [serde::Serialize, serde::Deserialize],
});

impl types::Host for crate::runtime::CallState {}

pub use self::latch::connector::types;
pub use exports::latch::connector::integration;

use crate::caps::{CapError, Output, Target};

impl From<types::Target> for Target {
    fn from(t: types::Target) -> Self {
        Target {
            host: t.host,
            port: t.port,
            user: t.user,
        }
    }
}

impl From<Output> for types::Output {
    fn from(o: Output) -> Self {
        types::Output {
            status: o.status,
            stdout: o.stdout,
            stderr: o.stderr,
        }
    }
}

impl From<CapError> for types::Error {
    fn from(e: CapError) -> Self {
        match e {
            CapError::InvalidRequest(m) => types::Error::InvalidRequest(m),
            CapError::Denied(m) => types::Error::Denied(m),
            CapError::Unreachable(m) => types::Error::Unreachable(m),
            CapError::Failed(m) => types::Error::Failed(m),
        }
    }
}

impl types::Error {
    /// The WIT case name, e.g. `invalid-config`.
    pub fn kind(&self) -> &'static str {
        match self {
            types::Error::InvalidConfig(_) => "invalid-config",
            types::Error::InvalidRequest(_) => "invalid-request",
            types::Error::Denied(_) => "denied",
            types::Error::Unreachable(_) => "unreachable",
            types::Error::Failed(_) => "failed",
        }
    }

    /// The message, without the case name.
    pub fn message(&self) -> &str {
        match self {
            types::Error::InvalidConfig(m)
            | types::Error::InvalidRequest(m)
            | types::Error::Denied(m)
            | types::Error::Unreachable(m)
            | types::Error::Failed(m) => m,
        }
    }
}
