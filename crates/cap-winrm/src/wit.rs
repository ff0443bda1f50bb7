//! The `winrm` interface of every contract version: each call becomes an [`Invoke`] with
//! typed parameters and goes through [`dispatch`], which answers it with a [`CmdletOutput`].

use wasmtime::component::{HasData, Linker};

use crate::Invoke;
use latch_cap::CallState;
use latch_cap::{CmdletOutput, Effect, ParamValue, dispatch};
use latch_contract::v0_2::Same;
use latch_contract::{v0_1, v0_2, v0_3};

use v0_3::latch::connector::winrm as now;

/// `winrm`'s view of a guest call's state: its `Host` impls are on this, not on
/// [`CallState`] itself, as wasmtime-wasi's are on `WasiCtxView` — a capability implements
/// the contract's traits on a type of its own, so it can live in a crate of its own.
pub struct Winrm<'a>(pub &'a mut CallState);

struct HasWinrm;

impl HasData for HasWinrm {
    type Data<'a> = Winrm<'a>;
}

/// Link `winrm` for every contract version served.
pub fn link(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    v0_1::latch::connector::winrm::add_to_linker::<_, HasWinrm>(linker, |s| Winrm(s))?;
    v0_2::latch::connector::winrm::add_to_linker::<_, HasWinrm>(linker, |s| Winrm(s))?;
    now::add_to_linker::<_, HasWinrm>(linker, |s| Winrm(s))
}

async fn run(
    state: &mut CallState,
    target: v0_3::types::Target,
    cmdlet: String,
    parameters: Vec<(String, ParamValue)>,
    effect: Effect,
) -> Result<CmdletOutput, v0_3::types::Error> {
    let call = Invoke::new(target.into(), cmdlet, parameters, effect);
    Ok(dispatch(state, call).await?)
}

fn typed(parameters: Vec<now::Parameter>) -> Vec<(String, ParamValue)> {
    parameters
        .into_iter()
        .map(|p| {
            let value = match p.value {
                now::Value::Text(v) => ParamValue::Text(v),
                now::Value::Integer(n) => ParamValue::Integer(n),
                now::Value::Boolean(b) => ParamValue::Boolean(b),
                now::Value::TextList(v) => ParamValue::TextList(v),
                now::Value::Secret(r) => ParamValue::Secret(r),
                now::Value::Switch => ParamValue::Switch,
            };
            (p.name, value)
        })
        .collect()
}

fn answer(out: CmdletOutput) -> now::CmdletOutput {
    now::CmdletOutput {
        objects: out.objects,
        errors: out.errors,
    }
}

impl now::Host for Winrm<'_> {
    async fn read(
        &mut self,
        target: v0_3::types::Target,
        cmdlet: String,
        parameters: Vec<now::Parameter>,
    ) -> Result<now::CmdletOutput, v0_3::types::Error> {
        run(self.0, target, cmdlet, typed(parameters), Effect::Read)
            .await
            .map(answer)
    }

    async fn invoke(
        &mut self,
        target: v0_3::types::Target,
        cmdlet: String,
        parameters: Vec<now::Parameter>,
    ) -> Result<now::CmdletOutput, v0_3::types::Error> {
        run(self.0, target, cmdlet, typed(parameters), Effect::Change)
            .await
            .map(answer)
    }
}

/// 0.2: the same calls; `not-found` reaches it as `failed` (see [`latch_contract::v0_2`]).
impl v0_2::latch::connector::winrm::Host for Winrm<'_> {
    async fn read(
        &mut self,
        target: v0_2::types::Target,
        cmdlet: String,
        parameters: Vec<v0_2::latch::connector::winrm::Parameter>,
    ) -> Result<v0_2::latch::connector::winrm::CmdletOutput, v0_2::types::Error> {
        now::Host::read(self, target.same(), cmdlet, parameters.same())
            .await
            .map(Same::same)
            .map_err(Into::into)
    }

    async fn invoke(
        &mut self,
        target: v0_2::types::Target,
        cmdlet: String,
        parameters: Vec<v0_2::latch::connector::winrm::Parameter>,
    ) -> Result<v0_2::latch::connector::winrm::CmdletOutput, v0_2::types::Error> {
        now::Host::invoke(self, target.same(), cmdlet, parameters.same())
            .await
            .map(Same::same)
            .map_err(Into::into)
    }
}

/// 0.1: string values or switches; every cmdlet is a change; the result comes back as an
/// `output` (objects as JSON on stdout, error messages on stderr, status 1 if any).
impl v0_1::latch::connector::winrm::Host for Winrm<'_> {
    async fn invoke(
        &mut self,
        target: v0_1::types::Target,
        cmdlet: String,
        parameters: Vec<v0_1::latch::connector::winrm::Parameter>,
    ) -> Result<v0_1::types::Output, v0_1::types::Error> {
        let parameters = parameters
            .into_iter()
            .map(|p| (p.name, p.value.map_or(ParamValue::Switch, ParamValue::Text)))
            .collect();
        let out = run(self.0, target.into(), cmdlet, parameters, Effect::Change)
            .await
            .map_err(v0_1::types::Error::from)?;
        Ok(v0_1::types::Output {
            status: i32::from(!out.errors.is_empty()),
            stdout: out.objects.into_bytes(),
            stderr: out.errors.join("\n").into_bytes(),
        })
    }
}
