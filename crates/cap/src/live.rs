//! The live backend: capability calls carried out for real, each by its capability's live
//! part (`crates/cap-<name>/src/live.rs`). This module knows no capability: the parts are built and
//! listed in the host's registry (`latch::caps::registry`).

use super::{Backend, BoxFuture, CallContext, CapCall, CapError, CapReply};

/// One capability's live part: carries out the calls of its own capability.
pub trait LivePart: Send + Sync + 'static {
    /// Carry out `call` if it is this capability's; `None` if it is another's.
    fn carry_out<'a>(
        &'a self,
        ctx: CallContext<'a>,
        call: &'a CapCall,
    ) -> Option<BoxFuture<'a, Result<CapReply, CapError>>>;
}

/// Carries out capability calls against real servers and stores, by the parts it holds.
pub struct Live {
    parts: Vec<Box<dyn LivePart>>,
}

impl Live {
    /// A live backend of `parts` (every capability's: the host's `registry::live`; a test may
    /// hold only the one it exercises).
    pub fn new(parts: Vec<Box<dyn LivePart>>) -> Self {
        Live { parts }
    }
}

impl Backend for Live {
    fn call<'a>(
        &'a self,
        ctx: CallContext<'a>,
        call: &'a CapCall,
    ) -> BoxFuture<'a, Result<CapReply, CapError>> {
        for part in &self.parts {
            if let Some(work) = part.carry_out(ctx, call) {
                return work;
            }
        }
        Box::pin(async move {
            Err(CapError::Failed(format!(
                "{} has no live part in this build",
                call.capability()
            )))
        })
    }
}
