//! The `cloud` interface (contract 0.2; 0.1 has none): each request becomes an [`AwsCall`],
//! and all of one call's requests go through [`dispatch_all`] together, so they are carried
//! out concurrently (a guest lists every region at once).

use wasmtime::component::{HasSelf, Linker};

use super::{AwsCall, MAX_REQUESTS};
use crate::caps::{CapCall, CapError, CapReply, Effect, dispatch_all};
use crate::world::{CallState, v0_2};

use v0_2::latch::connector::cloud as now;

/// Link `cloud` (0.2 only).
pub(crate) fn link(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    now::add_to_linker::<_, HasSelf<_>>(linker, |s| s)
}

impl now::Host for CallState {
    async fn aws(
        &mut self,
        requests: Vec<now::AwsRequest>,
    ) -> Vec<Result<String, v0_2::types::Error>> {
        if requests.len() > MAX_REQUESTS {
            let error = CapError::InvalidRequest(format!(
                "{} requests in one cloud.aws call, more than the {MAX_REQUESTS} allowed",
                requests.len()
            ));
            return requests.iter().map(|_| Err(error.clone().into())).collect();
        }
        let calls = requests
            .into_iter()
            .map(|r| {
                CapCall::new(AwsCall {
                    service: r.service,
                    region: r.region,
                    action: r.action,
                    parameters: r.parameters,
                    effect: Effect::Change,
                })
            })
            .collect();
        dispatch_all(self, calls)
            .await
            .into_iter()
            .map(|result| match result {
                Ok(CapReply::Text(body)) => Ok(body),
                Ok(other) => {
                    Err(CapError::Failed(format!("backend answered {other:?} to cloud.aws")).into())
                }
                Err(e) => Err(e.into()),
            })
            .collect()
    }
}
