//! The test kit's half of `winrm`: an expected cmdlet.

use crate::Invoke;
use latch_cap::Policy;
use latch_cap::kit::{Expectation, Implied, ImpliedPart, Names};
use latch_cap::{CapCall, CapReply, CmdletOutput, Effect, ParamValue, Target};

/// An expected `winrm.read` or `winrm.invoke`.
#[derive(Clone, Debug)]
pub struct ExpectInvoke {
    /// Where.
    pub target: Target,
    /// The cmdlet.
    pub cmdlet: String,
    /// Its parameters, exactly.
    pub parameters: Vec<(String, ParamValue)>,
    /// Read or change.
    pub effect: Effect,
}

impl Expectation for ExpectInvoke {
    fn matches(&self, actual: &CapCall, _: &mut Names) -> bool {
        actual.get::<Invoke>().is_some_and(|a| {
            a.target == self.target
                && a.cmdlet == self.cmdlet
                && a.parameters == self.parameters
                && a.effect == self.effect
        })
    }
    fn default_reply(&self) -> CapReply {
        CapReply::new(CmdletOutput {
            objects: "[]".into(),
            errors: Vec::new(),
        })
    }
    fn implies(&self, policy: &mut Implied) {
        policy.target(&self.target);
        // A read the host makes itself (an AD name resolved) is lent to no guest.
        if crate::catalog::catalog().get(&self.cmdlet).is_none() {
            return;
        }
        let lent = policy.part::<ImpliedCmdlets>();
        match self.effect {
            Effect::Read => lent.read.push(self.cmdlet.clone()),
            Effect::Change => lent.change.push(self.cmdlet.clone()),
        }
    }
    fn clone_box(&self) -> Box<dyn Expectation> {
        Box::new(self.clone())
    }
    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }
}

impl std::fmt::Display for ExpectInvoke {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let call = Invoke::new(
            self.target.clone(),
            self.cmdlet.clone(),
            self.parameters.clone(),
            self.effect,
        );
        write!(f, "{call}")
    }
}

/// The cmdlets a script's expectations run, lent as `[integration.winrm] read` / `change`.
#[derive(Debug, Default)]
pub struct ImpliedCmdlets {
    /// Run by `winrm.read`.
    pub read: Vec<String>,
    /// Run by `winrm.invoke`.
    pub change: Vec<String>,
}

impl ImpliedPart for ImpliedCmdlets {
    fn lend(self, policy: Policy) -> Result<Policy, String> {
        Ok(policy.with(crate::lent::Cmdlets::parse(&self.read, &self.change)?))
    }
}
