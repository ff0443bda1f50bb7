//! The `log` interface of every contract version (the same in 0.1, 0.2 and 0.3). Not a
//! capability call: nothing is recorded, see the crate docs.

use wasmtime::component::{HasData, Linker};

use super::sanitize;
use latch_cap::CallState;
use latch_contract::{v0_1, v0_2, v0_3};

/// `log`'s view of a guest call's state: its `Host` impls are on this, not on
/// [`CallState`] itself, as wasmtime-wasi's are on `WasiCtxView` — a capability implements
/// the contract's traits on a type of its own, so it can live in a crate of its own.
pub struct Log<'a>(pub &'a mut CallState);

struct HasLog;

impl HasData for HasLog {
    type Data<'a> = Log<'a>;
}

/// Link `log` for every contract version served.
pub fn link(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    v0_1::latch::connector::log::add_to_linker::<_, HasLog>(linker, |s| Log(s))?;
    v0_2::latch::connector::log::add_to_linker::<_, HasLog>(linker, |s| Log(s))?;
    v0_3::latch::connector::log::add_to_linker::<_, HasLog>(linker, |s| Log(s))
}

/// A guest's message, tagged with the integration, at `level` (0 trace … 4 error).
fn write(state: &CallState, level: u8, message: &str) {
    let integration = state.integration();
    let message = state.scrub(&sanitize(message));
    match level {
        0 => tracing::trace!(integration, "guest: {message}"),
        1 => tracing::debug!(integration, "guest: {message}"),
        2 => tracing::info!(integration, "guest: {message}"),
        3 => tracing::warn!(integration, "guest: {message}"),
        _ => tracing::error!(integration, "guest: {message}"),
    }
}

impl v0_3::latch::connector::log::Host for Log<'_> {
    async fn write(&mut self, level: v0_3::latch::connector::log::Level, message: String) {
        write(self.0, level as u8, &message);
    }
}

impl v0_2::latch::connector::log::Host for Log<'_> {
    async fn write(&mut self, level: v0_2::latch::connector::log::Level, message: String) {
        write(self.0, level as u8, &message);
    }
}

impl v0_1::latch::connector::log::Host for Log<'_> {
    async fn write(&mut self, level: v0_1::latch::connector::log::Level, message: String) {
        write(self.0, level as u8, &message);
    }
}
