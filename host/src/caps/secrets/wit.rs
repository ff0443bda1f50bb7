//! The `secrets` interface of every contract version (the same in 0.1, 0.2 and 0.3).

use wasmtime::component::{HasSelf, Linker};

use super::Get;
use crate::caps::CallState;
use crate::caps::dispatch;
use crate::world::{v0_1, v0_2, v0_3};

/// Link `secrets` for every contract version served.
pub(crate) fn link(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    v0_1::latch::connector::secrets::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
    v0_2::latch::connector::secrets::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
    v0_3::latch::connector::secrets::add_to_linker::<_, HasSelf<_>>(linker, |s| s)
}

async fn get(state: &mut CallState, name: String) -> Result<Vec<u8>, v0_3::types::Error> {
    let secret = dispatch(state, Get { name }).await?;
    let value = secret.expose().to_vec();
    state.revealed.push(secret);
    Ok(value)
}

impl v0_3::latch::connector::secrets::Host for CallState {
    async fn get(&mut self, name: String) -> Result<Vec<u8>, v0_3::types::Error> {
        get(self, name).await
    }
}

impl v0_2::latch::connector::secrets::Host for CallState {
    async fn get(&mut self, name: String) -> Result<Vec<u8>, v0_2::types::Error> {
        get(self, name).await.map_err(Into::into)
    }
}

impl v0_1::latch::connector::secrets::Host for CallState {
    async fn get(&mut self, name: String) -> Result<Vec<u8>, v0_1::types::Error> {
        get(self, name).await.map_err(Into::into)
    }
}
