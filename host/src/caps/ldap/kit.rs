//! The test kit's half of `ldap`: an expected directory call.

use super::{LdapCall, Op};
use crate::caps::Target;
use crate::caps::kit::{Expectation, Implied, Names, Reply};

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
    fn matches(&self, actual: &crate::caps::CapCall, _: &mut Names) -> bool {
        actual
            .get::<LdapCall>()
            .is_some_and(|a| a.target == self.target && a.op == self.op)
    }
    fn default_reply(&self) -> Reply {
        match self.op {
            Op::Search { .. } => Reply::Entries(Vec::new()),
            _ => Reply::Done,
        }
    }
    fn implies(&self, policy: &mut Implied) {
        policy.target(&self.target);
        match &self.op {
            Op::Search { base, .. } => policy.ldap_read.push(base.clone()),
            Op::Modify { dn, changes }
                if changes
                    .iter()
                    .all(|c| c.attribute().name.eq_ignore_ascii_case("member")) =>
            {
                policy.ldap_groups.push(dn.clone());
                for c in changes {
                    for v in &c.attribute().values {
                        if let super::Value::Text(member) = v {
                            policy.ldap_change.push(parent(member));
                        }
                    }
                }
            }
            Op::Add { dn, .. } | Op::Modify { dn, .. } | Op::Delete { dn } => {
                policy.ldap_change.push(parent(dn))
            }
        }
    }
    fn clone_box(&self) -> Box<dyn Expectation> {
        Box::new(self.clone())
    }
    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }
}

/// The parent of `dn` (itself if it cannot be parsed or has one RDN).
fn parent(dn: &str) -> String {
    match super::dn::Dn::parse(dn) {
        Ok(mut d) if d.0.len() > 1 => {
            d.0.remove(0);
            d.to_string()
        }
        _ => dn.to_string(),
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
