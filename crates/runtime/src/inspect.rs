//! What `latch guest inspect` shows of a component: its hash, world, imports and exports.

use serde::Serialize;
use wasmtime::Engine;
use wasmtime::component::Component;
use wasmtime::component::types::{ComponentExtern, ComponentItem};

/// The world a guest targets, by the contract version it was built against.
pub fn world(contract: &str) -> &'static str {
    match contract {
        "0.1.0" => "latch:connector/integration-guest@0.1.0",
        "0.2.0" => "latch:connector/integration-guest@0.2.0",
        _ => "latch:connector/integration-guest@0.3.0",
    }
}

/// The outside of a component, as an auditor first reads it.
#[derive(Clone, Debug, Serialize)]
pub struct Inspection {
    /// Hex sha256 of the file: the value to pin in `latch.toml`.
    pub sha256: String,
    /// The world the component was linked against.
    pub world: &'static str,
    /// Every import, with the functions of each imported interface.
    pub imports: Vec<Item>,
    /// Every export, with the functions of each exported interface.
    pub exports: Vec<Item>,
}

/// One import or export.
#[derive(Clone, Debug, Serialize)]
pub struct Item {
    /// Its name, e.g. `latch:connector/ssh@0.3.0`.
    pub name: String,
    /// The function names it holds (an interface), or itself (a function).
    pub functions: Vec<String>,
}

impl Inspection {
    pub(crate) fn of(sha256: &str, contract: &str, component: &Component, engine: &Engine) -> Self {
        let ty = component.component_type();
        let item = |name: &str, it: ComponentExtern<'_>| Item {
            name: name.to_string(),
            functions: functions(engine, &it.ty),
        };
        Inspection {
            sha256: sha256.to_string(),
            world: world(contract),
            imports: ty.imports(engine).map(|(n, it)| item(n, it)).collect(),
            exports: ty.exports(engine).map(|(n, it)| item(n, it)).collect(),
        }
    }
}

fn functions(engine: &Engine, item: &ComponentItem) -> Vec<String> {
    match item {
        ComponentItem::ComponentInstance(instance) => instance
            .exports(engine)
            .filter(|(_, it)| matches!(it.ty, ComponentItem::ComponentFunc(_)))
            .map(|(name, _)| name.to_string())
            .collect(),
        _ => Vec::new(),
    }
}
