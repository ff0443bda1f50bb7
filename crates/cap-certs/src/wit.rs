//! The `certs` interface of every contract version (the same in 0.1, 0.2 and 0.3).

use wasmtime::component::{HasData, Linker};

use crate::{CaPublicKey, SignSshUser};
use latch_cap::CallState;
use latch_cap::{Answered, dispatch};
use latch_contract::{v0_1, v0_2, v0_3};

/// `certs`'s view of a guest call's state: its `Host` impls are on this, not on
/// [`CallState`] itself, as wasmtime-wasi's are on `WasiCtxView` — a capability implements
/// the contract's traits on a type of its own, so it can live in a crate of its own.
pub struct Certs<'a>(pub &'a mut CallState);

struct HasCerts;

impl HasData for HasCerts {
    type Data<'a> = Certs<'a>;
}

/// Link `certs` for every contract version served.
pub fn link(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    v0_1::latch::connector::certs::add_to_linker::<_, HasCerts>(linker, |s| Certs(s))?;
    v0_2::latch::connector::certs::add_to_linker::<_, HasCerts>(linker, |s| Certs(s))?;
    v0_3::latch::connector::certs::add_to_linker::<_, HasCerts>(linker, |s| Certs(s))
}

async fn text<C: Answered<Reply = String>>(
    state: &mut CallState,
    call: C,
) -> Result<String, v0_3::types::Error> {
    Ok(dispatch(state, call).await?)
}

fn sign(
    public_key: String,
    principals: Vec<String>,
    valid_before: u64,
    key_id: String,
) -> SignSshUser {
    SignSshUser {
        public_key,
        principals,
        valid_before,
        key_id,
    }
}

impl v0_3::latch::connector::certs::Host for Certs<'_> {
    async fn ca_public_key(&mut self) -> Result<String, v0_3::types::Error> {
        text(self.0, CaPublicKey).await
    }

    async fn sign_ssh_user(
        &mut self,
        public_key: String,
        principals: Vec<String>,
        valid_before: u64,
        key_id: String,
    ) -> Result<String, v0_3::types::Error> {
        text(self.0, sign(public_key, principals, valid_before, key_id)).await
    }
}

impl v0_2::latch::connector::certs::Host for Certs<'_> {
    async fn ca_public_key(&mut self) -> Result<String, v0_2::types::Error> {
        text(self.0, CaPublicKey).await.map_err(Into::into)
    }

    async fn sign_ssh_user(
        &mut self,
        public_key: String,
        principals: Vec<String>,
        valid_before: u64,
        key_id: String,
    ) -> Result<String, v0_2::types::Error> {
        text(self.0, sign(public_key, principals, valid_before, key_id))
            .await
            .map_err(Into::into)
    }
}

impl v0_1::latch::connector::certs::Host for Certs<'_> {
    async fn ca_public_key(&mut self) -> Result<String, v0_1::types::Error> {
        text(self.0, CaPublicKey).await.map_err(Into::into)
    }

    async fn sign_ssh_user(
        &mut self,
        public_key: String,
        principals: Vec<String>,
        valid_before: u64,
        key_id: String,
    ) -> Result<String, v0_1::types::Error> {
        text(self.0, sign(public_key, principals, valid_before, key_id))
            .await
            .map_err(Into::into)
    }
}
