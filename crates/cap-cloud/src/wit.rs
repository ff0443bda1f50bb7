//! The `cloud` interface (contracts 0.2 and 0.3; 0.1 has none): each request becomes an [`AwsCall`],
//! and all of one call's requests go through [`dispatch_all`] together, so they are carried
//! out concurrently (a guest lists every region at once).

use wasmtime::component::{HasData, Linker};

use crate::{AwsCall, AzureCall, MAX_REQUESTS};
use latch_cap::CallState;
use latch_cap::{CapCall, CapError, CapReply, Effect, dispatch_all};
use latch_contract::v0_2::Same;
use latch_contract::{v0_2, v0_3};

use v0_3::latch::connector::cloud as now;

/// `cloud`'s view of a guest call's state: its `Host` impls are on this, not on
/// [`CallState`] itself, as wasmtime-wasi's are on `WasiCtxView` — a capability implements
/// the contract's traits on a type of its own, so it can live in a crate of its own.
pub struct Cloud<'a>(pub &'a mut CallState);

struct HasCloud;

impl HasData for HasCloud {
    type Data<'a> = Cloud<'a>;
}

/// Link `cloud` (0.2 and 0.3).
pub fn link(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    v0_2::latch::connector::cloud::add_to_linker::<_, HasCloud>(linker, |s| Cloud(s))?;
    now::add_to_linker::<_, HasCloud>(linker, |s| Cloud(s))
}

/// Each result as the guest gets it: a body (the calls' [`latch_cap::Answered::Reply`]),
/// or the error.
fn bodies(results: Vec<Result<CapReply, CapError>>) -> Vec<Result<String, v0_3::types::Error>> {
    results
        .into_iter()
        .map(|result| Ok(result.and_then(CapReply::take::<String>)?))
        .collect()
}

fn too_many<T>(requests: &[T]) -> Option<Vec<Result<String, v0_3::types::Error>>> {
    (requests.len() > MAX_REQUESTS).then(|| {
        let error = CapError::InvalidRequest(format!(
            "{} requests in one cloud call, more than the {MAX_REQUESTS} allowed",
            requests.len()
        ));
        requests.iter().map(|_| Err(error.clone().into())).collect()
    })
}

impl now::Host for Cloud<'_> {
    async fn azure(
        &mut self,
        requests: Vec<now::AzureRequest>,
    ) -> Vec<Result<String, v0_3::types::Error>> {
        if let Some(refused) = too_many(&requests) {
            return refused;
        }
        let calls = requests
            .into_iter()
            .map(|r| {
                CapCall::new(AzureCall {
                    path: r.path,
                    query: r.query,
                })
            })
            .collect();
        bodies(dispatch_all(self.0, calls).await)
    }

    async fn aws(
        &mut self,
        requests: Vec<now::AwsRequest>,
    ) -> Vec<Result<String, v0_3::types::Error>> {
        if let Some(refused) = too_many(&requests) {
            return refused;
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
        bodies(dispatch_all(self.0, calls).await)
    }
}

/// 0.2: the same calls; `not-found` (an HTTP 404, an AWS `*NotFound` code) reaches it as
/// `failed`, worded as before 0.3 (see [`latch_contract::v0_2`]).
impl v0_2::latch::connector::cloud::Host for Cloud<'_> {
    async fn azure(
        &mut self,
        requests: Vec<v0_2::latch::connector::cloud::AzureRequest>,
    ) -> Vec<Result<String, v0_2::types::Error>> {
        let answers = now::Host::azure(self, requests.same()).await;
        answers.into_iter().map(|a| a.map_err(Into::into)).collect()
    }

    async fn aws(
        &mut self,
        requests: Vec<v0_2::latch::connector::cloud::AwsRequest>,
    ) -> Vec<Result<String, v0_2::types::Error>> {
        let answers = now::Host::aws(self, requests.same()).await;
        answers.into_iter().map(|a| a.map_err(Into::into)).collect()
    }
}
