//! The live part of `winrm`: no transport in this build (the WinRM issue brings it); a call
//! fails saying so. The script it would send, secrets substituted, is `powershell_script`.

use super::Invoke;
use crate::caps::live::LivePart;
use crate::caps::{BoxFuture, CallContext, CapCall, CapError, CapReply};

/// Answers every `winrm` call with "no live transport".
pub(crate) struct Part;

impl LivePart for Part {
    fn carry_out<'a>(
        &'a self,
        _ctx: CallContext<'a>,
        call: &'a CapCall,
    ) -> Option<BoxFuture<'a, Result<CapReply, CapError>>> {
        let invoke = call.get::<Invoke>()?;
        let capability = crate::caps::Call::capability(invoke);
        Some(Box::pin(async move {
            Err(CapError::Failed(format!(
                "{capability} has no live transport in this build of Latch"
            )))
        }))
    }
}
