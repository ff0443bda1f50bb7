//! The `secrets` interface of every contract version (the same in 0.1, 0.2 and 0.3).

use wasmtime::component::{HasData, Linker};

use crate::Get;
use latch_cap::CallState;
use latch_cap::dispatch;
use latch_contract::{v0_1, v0_2, v0_3};

/// `secrets`'s view of a guest call's state: its `Host` impls are on this, not on
/// [`CallState`] itself, as wasmtime-wasi's are on `WasiCtxView` — a capability implements
/// the contract's traits on a type of its own, so it can live in a crate of its own.
pub struct Secrets<'a>(pub &'a mut CallState);

struct HasSecrets;

impl HasData for HasSecrets {
    type Data<'a> = Secrets<'a>;
}

/// Link `secrets` for every contract version served.
pub fn link(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    v0_1::latch::connector::secrets::add_to_linker::<_, HasSecrets>(linker, |s| Secrets(s))?;
    v0_2::latch::connector::secrets::add_to_linker::<_, HasSecrets>(linker, |s| Secrets(s))?;
    v0_3::latch::connector::secrets::add_to_linker::<_, HasSecrets>(linker, |s| Secrets(s))
}

async fn get(state: &mut CallState, name: String) -> Result<Vec<u8>, v0_3::types::Error> {
    let secret = dispatch(state, Get { name }).await?;
    let value = secret.expose().to_vec();
    state.reveal_to_guest(secret);
    Ok(value)
}

impl v0_3::latch::connector::secrets::Host for Secrets<'_> {
    async fn get(&mut self, name: String) -> Result<Vec<u8>, v0_3::types::Error> {
        get(self.0, name).await
    }
}

impl v0_2::latch::connector::secrets::Host for Secrets<'_> {
    async fn get(&mut self, name: String) -> Result<Vec<u8>, v0_2::types::Error> {
        get(self.0, name).await.map_err(Into::into)
    }
}

impl v0_1::latch::connector::secrets::Host for Secrets<'_> {
    async fn get(&mut self, name: String) -> Result<Vec<u8>, v0_1::types::Error> {
        get(self.0, name).await.map_err(Into::into)
    }
}
