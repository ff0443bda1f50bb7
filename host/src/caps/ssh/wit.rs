//! The `ssh` interface of every contract version: each call becomes an [`Exec`] and goes
//! through [`dispatch`], which answers it with an [`crate::caps::Output`].

use wasmtime::component::{HasSelf, Linker};

use super::Exec;
use crate::caps::CallState;
use crate::caps::{Effect, dispatch};
use crate::world::v0_2::Same;
use crate::world::{v0_1, v0_2, v0_3};

/// Link `ssh` for every contract version served.
pub(crate) fn link(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    v0_1::latch::connector::ssh::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
    v0_2::latch::connector::ssh::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
    v0_3::latch::connector::ssh::add_to_linker::<_, HasSelf<_>>(linker, |s| s)
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

impl v0_3::latch::connector::ssh::Host for CallState {
    async fn read(
        &mut self,
        target: v0_3::types::Target,
        argv: Vec<String>,
        stdin: Vec<u8>,
    ) -> Result<v0_3::types::Output, v0_3::types::Error> {
        run(self, target, argv, stdin, Effect::Read).await
    }

    async fn exec(
        &mut self,
        target: v0_3::types::Target,
        argv: Vec<String>,
        stdin: Vec<u8>,
    ) -> Result<v0_3::types::Output, v0_3::types::Error> {
        run(self, target, argv, stdin, Effect::Change).await
    }
}

/// 0.2: the same calls; `not-found` reaches it as `failed` (see [`crate::world::v0_2`]).
impl v0_2::latch::connector::ssh::Host for CallState {
    async fn read(
        &mut self,
        target: v0_2::types::Target,
        argv: Vec<String>,
        stdin: Vec<u8>,
    ) -> Result<v0_2::types::Output, v0_2::types::Error> {
        run(self, target.same(), argv, stdin, Effect::Read)
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
        run(self, target.same(), argv, stdin, Effect::Change)
            .await
            .map(Same::same)
            .map_err(Into::into)
    }
}

/// 0.1 cannot tell reads from changes: every command is a change.
impl v0_1::latch::connector::ssh::Host for CallState {
    async fn exec(
        &mut self,
        target: v0_1::types::Target,
        argv: Vec<String>,
        stdin: Vec<u8>,
    ) -> Result<v0_1::types::Output, v0_1::types::Error> {
        run(self, target.into(), argv, stdin, Effect::Change)
            .await
            .map(Into::into)
            .map_err(Into::into)
    }
}
