//! The live part of `certs`: the user CA, its key read from the secret store at each call.

use std::sync::Arc;

use crate::{CaPublicKey, SignSshUser, ca};
use latch_cap::live::LivePart;
use latch_cap::{BoxFuture, CallContext, CapCall, CapError, CapReply, SecretStore};

/// Signs with the connector's user CA.
pub struct Part {
    secrets: Arc<SecretStore>,
}

impl Part {
    /// The part, reading from `secrets`.
    pub fn new(secrets: &Arc<SecretStore>) -> Self {
        Part {
            secrets: secrets.clone(),
        }
    }
}

impl LivePart for Part {
    fn carry_out<'a>(
        &'a self,
        _ctx: CallContext<'a>,
        call: &'a CapCall,
    ) -> Option<BoxFuture<'a, Result<CapReply, CapError>>> {
        if call.get::<CaPublicKey>().is_some() {
            return Some(Box::pin(async move {
                ca::public_key(&self.secrets).map(CapReply::new)
            }));
        }
        let sign = call.get::<SignSshUser>()?;
        Some(Box::pin(async move {
            ca::sign(
                &self.secrets,
                &sign.public_key,
                &sign.principals,
                sign.valid_before,
                &sign.key_id,
            )
            .map(CapReply::new)
        }))
    }
}
