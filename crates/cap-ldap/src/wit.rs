//! The `ldap` interface (contracts 0.2 and 0.3; 0.1 has none): each call becomes an [`LdapCall`] and
//! goes through [`dispatch`].

use wasmtime::component::{HasData, Linker};

use crate::{Attribute, Change, Entry, LdapCall, Op, Scope, Value};
use latch_cap::CallState;
use latch_cap::dispatch;
use latch_contract::v0_2::Same;
use latch_contract::{v0_2, v0_3};

use v0_3::latch::connector::ldap as now;

/// `ldap`'s view of a guest call's state: its `Host` impls are on this, not on
/// [`CallState`] itself, as wasmtime-wasi's are on `WasiCtxView` — a capability implements
/// the contract's traits on a type of its own, so it can live in a crate of its own.
pub struct Ldap<'a>(pub &'a mut CallState);

struct HasLdap;

impl HasData for HasLdap {
    type Data<'a> = Ldap<'a>;
}

/// Link `ldap` (0.2 and 0.3).
pub fn link(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    v0_2::latch::connector::ldap::add_to_linker::<_, HasLdap>(linker, |s| Ldap(s))?;
    now::add_to_linker::<_, HasLdap>(linker, |s| Ldap(s))
}

/// The entries the operation found (none for a change).
async fn run(
    state: &mut CallState,
    target: v0_3::types::Target,
    op: Op,
) -> Result<Vec<Entry>, v0_3::types::Error> {
    let call = LdapCall {
        target: target.into(),
        op,
        own_entry_only: false,
    };
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

impl now::Host for Ldap<'_> {
    async fn search(
        &mut self,
        target: v0_3::types::Target,
        base: String,
        scope: now::Scope,
        filter: Vec<(String, String)>,
        attributes: Vec<String>,
    ) -> Result<Vec<now::Entry>, v0_3::types::Error> {
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
        let entries = run(self.0, target, op).await?;
        Ok(entries
            .into_iter()
            .map(|Entry { dn, attributes }| now::Entry { dn, attributes })
            .collect())
    }

    async fn add(
        &mut self,
        target: v0_3::types::Target,
        dn: String,
        attributes: Vec<now::Attribute>,
    ) -> Result<(), v0_3::types::Error> {
        let attributes = attributes.into_iter().map(attribute).collect();
        run(self.0, target, Op::Add { dn, attributes })
            .await
            .map(drop)
    }

    async fn modify(
        &mut self,
        target: v0_3::types::Target,
        dn: String,
        changes: Vec<now::Change>,
    ) -> Result<(), v0_3::types::Error> {
        let changes = changes
            .into_iter()
            .map(|c| match c {
                now::Change::Add(a) => Change::Add(attribute(a)),
                now::Change::Delete(a) => Change::Delete(attribute(a)),
                now::Change::Replace(a) => Change::Replace(attribute(a)),
            })
            .collect();
        run(self.0, target, Op::Modify { dn, changes })
            .await
            .map(drop)
    }

    async fn delete(
        &mut self,
        target: v0_3::types::Target,
        dn: String,
    ) -> Result<(), v0_3::types::Error> {
        run(self.0, target, Op::Delete { dn }).await.map(drop)
    }
}

/// 0.2: the same calls; `not-found` reaches it as `failed` (see [`latch_contract::v0_2`]).
impl v0_2::latch::connector::ldap::Host for Ldap<'_> {
    async fn search(
        &mut self,
        target: v0_2::types::Target,
        base: String,
        scope: v0_2::latch::connector::ldap::Scope,
        filter: Vec<(String, String)>,
        attributes: Vec<String>,
    ) -> Result<Vec<v0_2::latch::connector::ldap::Entry>, v0_2::types::Error> {
        now::Host::search(self, target.same(), base, scope.same(), filter, attributes)
            .await
            .map(Same::same)
            .map_err(Into::into)
    }

    async fn add(
        &mut self,
        target: v0_2::types::Target,
        dn: String,
        attributes: Vec<v0_2::latch::connector::ldap::Attribute>,
    ) -> Result<(), v0_2::types::Error> {
        now::Host::add(self, target.same(), dn, attributes.same())
            .await
            .map_err(Into::into)
    }

    async fn modify(
        &mut self,
        target: v0_2::types::Target,
        dn: String,
        changes: Vec<v0_2::latch::connector::ldap::Change>,
    ) -> Result<(), v0_2::types::Error> {
        now::Host::modify(self, target.same(), dn, changes.same())
            .await
            .map_err(Into::into)
    }

    async fn delete(
        &mut self,
        target: v0_2::types::Target,
        dn: String,
    ) -> Result<(), v0_2::types::Error> {
        now::Host::delete(self, target.same(), dn)
            .await
            .map_err(Into::into)
    }
}
