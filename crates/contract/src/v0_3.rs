//! `latch:connector@0.3.0` (`wit/connector.wit`): the current contract, and the host's model.

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "integration-guest",
    imports: { default: async },
    exports: { default: async },
    additional_derives: [serde::Serialize, serde::Deserialize, PartialEq, Eq],
});

pub use self::latch::connector::types;
pub use exports::latch::connector::integration;
