//! The `certs` interface of every contract version (the same in 0.1, 0.2 and 0.3).

use wasmtime::component::{HasSelf, Linker};

use super::{CaPublicKey, SignSshUser};
use crate::caps::CallState;
use crate::caps::{Answered, dispatch};
use crate::world::{v0_1, v0_2, v0_3};

/// Link `certs` for every contract version served.
pub(crate) fn link(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    v0_1::latch::connector::certs::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
    v0_2::latch::connector::certs::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
    v0_3::latch::connector::certs::add_to_linker::<_, HasSelf<_>>(linker, |s| s)
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

impl v0_3::latch::connector::certs::Host for CallState {
    async fn ca_public_key(&mut self) -> Result<String, v0_3::types::Error> {
        text(self, CaPublicKey).await
    }

    async fn sign_ssh_user(
        &mut self,
        public_key: String,
        principals: Vec<String>,
        valid_before: u64,
        key_id: String,
    ) -> Result<String, v0_3::types::Error> {
        text(self, sign(public_key, principals, valid_before, key_id)).await
    }
}

impl v0_2::latch::connector::certs::Host for CallState {
    async fn ca_public_key(&mut self) -> Result<String, v0_2::types::Error> {
        text(self, CaPublicKey).await.map_err(Into::into)
    }

    async fn sign_ssh_user(
        &mut self,
        public_key: String,
        principals: Vec<String>,
        valid_before: u64,
        key_id: String,
    ) -> Result<String, v0_2::types::Error> {
        text(self, sign(public_key, principals, valid_before, key_id))
            .await
            .map_err(Into::into)
    }
}

impl v0_1::latch::connector::certs::Host for CallState {
    async fn ca_public_key(&mut self) -> Result<String, v0_1::types::Error> {
        text(self, CaPublicKey).await.map_err(Into::into)
    }

    async fn sign_ssh_user(
        &mut self,
        public_key: String,
        principals: Vec<String>,
        valid_before: u64,
        key_id: String,
    ) -> Result<String, v0_1::types::Error> {
        text(self, sign(public_key, principals, valid_before, key_id))
            .await
            .map_err(Into::into)
    }
}
