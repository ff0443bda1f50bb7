//! The `ssh` interface of every contract version: each call becomes an [`Exec`] and goes
//! through [`dispatch`], which answers it with an [`latch_cap::Output`].

use wasmtime::component::{HasData, Linker};

use crate::Exec;
use latch_cap::CallState;
use latch_cap::{Effect, dispatch};
use latch_contract::v0_2::Same;
use latch_contract::{v0_1, v0_2, v0_3};

/// `ssh`'s view of a guest call's state: its `Host` impls are on this, not on
/// [`CallState`] itself, as wasmtime-wasi's are on `WasiCtxView` — a capability implements
/// the contract's traits on a type of its own, so it can live in a crate of its own.
pub struct Ssh<'a>(pub &'a mut CallState);

struct HasSsh;

impl HasData for HasSsh {
    type Data<'a> = Ssh<'a>;
}

/// Link `ssh` for every contract version served.
pub fn link(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    v0_1::latch::connector::ssh::add_to_linker::<_, HasSsh>(linker, |s| Ssh(s))?;
    v0_2::latch::connector::ssh::add_to_linker::<_, HasSsh>(linker, |s| Ssh(s))?;
    v0_3::latch::connector::ssh::add_to_linker::<_, HasSsh>(linker, |s| Ssh(s))
}

async fn run(
    state: &mut CallState,
    target: v0_3::types::Target,
    argv: Vec<String>,
    stdin: Vec<u8>,
    effect: Effect,
) -> Result<v0_3::types::Output, v0_3::types::Error> {
    let call = Exec {
        target: target.into(),
        argv,
        stdin,
        effect,
    };
    Ok(dispatch(state, call).await?.into())
}

impl v0_3::latch::connector::ssh::Host for Ssh<'_> {
    async fn read(
        &mut self,
        target: v0_3::types::Target,
        argv: Vec<String>,
        stdin: Vec<u8>,
    ) -> Result<v0_3::types::Output, v0_3::types::Error> {
        run(self.0, target, argv, stdin, Effect::Read).await
    }

    async fn exec(
        &mut self,
        target: v0_3::types::Target,
        argv: Vec<String>,
        stdin: Vec<u8>,
    ) -> Result<v0_3::types::Output, v0_3::types::Error> {
        run(self.0, target, argv, stdin, Effect::Change).await
    }
}

/// 0.2: the same calls; `not-found` reaches it as `failed` (see [`latch_contract::v0_2`]).
impl v0_2::latch::connector::ssh::Host for Ssh<'_> {
    async fn read(
        &mut self,
        target: v0_2::types::Target,
        argv: Vec<String>,
        stdin: Vec<u8>,
    ) -> Result<v0_2::types::Output, v0_2::types::Error> {
        run(self.0, target.same(), argv, stdin, Effect::Read)
            .await
            .map(Same::same)
            .map_err(Into::into)
    }

    async fn exec(
        &mut self,
        target: v0_2::types::Target,
        argv: Vec<String>,
        stdin: Vec<u8>,
    ) -> Result<v0_2::types::Output, v0_2::types::Error> {
        run(self.0, target.same(), argv, stdin, Effect::Change)
            .await
            .map(Same::same)
            .map_err(Into::into)
    }
}

/// 0.1 cannot tell reads from changes: every command is a change.
impl v0_1::latch::connector::ssh::Host for Ssh<'_> {
    async fn exec(
        &mut self,
        target: v0_1::types::Target,
        argv: Vec<String>,
        stdin: Vec<u8>,
    ) -> Result<v0_1::types::Output, v0_1::types::Error> {
        run(self.0, target.into(), argv, stdin, Effect::Change)
            .await
            .map(Into::into)
            .map_err(Into::into)
    }
}
