//! The test kit's half of `ldap`: an expected directory call.

use crate::Entry;
use crate::{LdapCall, Op};
use latch_cap::kit::{Expectation, Implied, Names};
use latch_cap::{CapReply, Target};

/// An expected `ldap` call: matched on the target and the operation after the host's checks
/// (so DNs as the host serializes them).
#[derive(Clone, Debug)]
pub struct ExpectLdap {
    /// Where.
    pub target: Target,
    /// What.
    pub op: Op,
}

impl Expectation for ExpectLdap {
    fn matches(&self, actual: &latch_cap::CapCall, _: &mut Names) -> bool {
        actual
            .get::<LdapCall>()
            .is_some_and(|a| a.target == self.target && a.op == self.op)
    }
    fn default_reply(&self) -> CapReply {
        CapReply::new(Vec::<Entry>::new())
    }
    fn implies(&self, policy: &mut Implied) {
        // The target only: the directory bounds are the script's to state, as written.
        policy.target(&self.target);
    }
    fn clone_box(&self) -> Box<dyn Expectation> {
        Box::new(self.clone())
    }
    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }
}

impl std::fmt::Display for ExpectLdap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let call = LdapCall {
            target: self.target.clone(),
            op: self.op.clone(),
            own_entry_only: false,
        };
        write!(f, "{call}")
    }
}
