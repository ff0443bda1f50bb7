//! The live part of `secrets`: the configured store, read at each call.

use std::sync::Arc;

use crate::{Get, SecretStore};
use latch_cap::live::LivePart;
use latch_cap::{BoxFuture, CallContext, CapCall, CapError, CapReply};

/// Reads secrets from the store.
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
        let get = call.get::<Get>()?;
        Some(Box::pin(async move {
            match self.secrets.get(&get.name) {
                Ok(Some(secret)) => Ok(CapReply::new(secret)),
                Ok(None) => Err(CapError::NotFound(format!(
                    "secret {:?} is not in the store",
                    get.name
                ))),
                Err(e) => Err(CapError::Failed(e)),
            }
        }))
    }
}
