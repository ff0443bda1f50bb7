//! The `ldap` interface (contract 0.2; 0.1 has none): each call becomes an [`LdapCall`] and
//! goes through [`dispatch`].

use wasmtime::component::{HasSelf, Linker};

use super::{Attribute, Change, Entry, LdapCall, Op, Scope, Value};
use crate::caps::CallState;
use crate::caps::{CapCall, CapError, CapReply, dispatch};
use crate::world::v0_2;

use v0_2::latch::connector::ldap as now;

/// Link `ldap` (0.2 only).
pub(crate) fn link(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    now::add_to_linker::<_, HasSelf<_>>(linker, |s| s)
}

async fn run(
    state: &mut CallState,
    target: v0_2::types::Target,
    op: Op,
) -> Result<CapReply, v0_2::types::Error> {
    let call = CapCall::new(LdapCall {
        target: target.into(),
        op,
        own_entry_only: false,
    });
    Ok(dispatch(state, call).await?)
}

fn attribute(a: now::Attribute) -> Attribute {
    Attribute {
        name: a.name,
        values: a
            .values
            .into_iter()
            .map(|v| match v {
                now::Value::Text(t) => Value::Text(t),
                now::Value::Password(r) => Value::Password(r),
            })
            .collect(),
    }
}

fn done(reply: CapReply) -> Result<(), v0_2::types::Error> {
    match reply {
        CapReply::Done => Ok(()),
        other => Err(CapError::Failed(format!("backend answered {other:?} to ldap")).into()),
    }
}

impl now::Host for CallState {
    async fn search(
        &mut self,
        target: v0_2::types::Target,
        base: String,
        scope: now::Scope,
        filter: Vec<(String, String)>,
        attributes: Vec<String>,
    ) -> Result<Vec<now::Entry>, v0_2::types::Error> {
        let scope = match scope {
            now::Scope::Base => Scope::Base,
            now::Scope::OneLevel => Scope::OneLevel,
            now::Scope::Subtree => Scope::Subtree,
        };
        let op = Op::Search {
            base,
            scope,
            filter,
            attributes,
        };
        match run(self, target, op).await? {
            CapReply::Entries(entries) => Ok(entries
                .into_iter()
                .map(|Entry { dn, attributes }| now::Entry { dn, attributes })
                .collect()),
            other => Err(CapError::Failed(format!("backend answered {other:?} to ldap")).into()),
        }
    }

    async fn add(
        &mut self,
        target: v0_2::types::Target,
        dn: String,
        attributes: Vec<now::Attribute>,
    ) -> Result<(), v0_2::types::Error> {
        let attributes = attributes.into_iter().map(attribute).collect();
        done(run(self, target, Op::Add { dn, attributes }).await?)
    }

    async fn modify(
        &mut self,
        target: v0_2::types::Target,
        dn: String,
        changes: Vec<now::Change>,
    ) -> Result<(), v0_2::types::Error> {
        let changes = changes
            .into_iter()
            .map(|c| match c {
                now::Change::Add(a) => Change::Add(attribute(a)),
                now::Change::Delete(a) => Change::Delete(attribute(a)),
                now::Change::Replace(a) => Change::Replace(attribute(a)),
            })
            .collect();
        done(run(self, target, Op::Modify { dn, changes }).await?)
    }

    async fn delete(
        &mut self,
        target: v0_2::types::Target,
        dn: String,
    ) -> Result<(), v0_2::types::Error> {
        done(run(self, target, Op::Delete { dn }).await?)
    }
}
