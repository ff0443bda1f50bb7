//! `ldap.search` / `ldap.add` / `ldap.modify` / `ldap.delete`: a directory (Active
//! Directory) over LDAPS, as the integration's service account.
//!
//! Defends against filter and DN injection, and against a guest changing more of the
//! directory than it was lent:
//! - a guest writes no filter syntax: a search's filter is a list of equality pairs that the
//!   host assembles, each value escaped per RFC 4515 (`ldap3::ldap_escape`);
//! - every DN is **parsed** ([`Dn`], RFC 4514) and compared RDN by RDN with the bounds of
//!   `[integration.directory]` ([`Bases`], which the AD cmdlets over WinRM are held to as
//!   well): searches under `read`; entries added, changed and deleted only
//!   strictly under `change`; groups at or under `groups` may only have `member` values added
//!   or removed, and only DNs under `change` (a guest can put only its own accounts into
//!   groups). What is sent is the host's re-serialization of the parsed DN;
//! - what a guest may write is bounded: an added entry is a user (`objectClass` among `top`,
//!   `person`, `organizationalPerson`, `user`), attributes from [`WRITABLE`] only,
//!   `userAccountControl` only 512 (enabled) or 514 (disabled), `accountExpires` only digits;
//! - passwords are **handles**: `unicodePwd` takes only a `secret-ref` (the host encodes it as
//!   AD wants, UTF-16LE in quotes, on the way to the wire) and a `secret-ref` goes nowhere
//!   else (it could otherwise be written into a readable attribute);
//! - the connection is always TLS with the certificate verified (see [`live`]); plain LDAP
//!   is never used, so `unicodePwd` never travels in clear;
//! - attributes that hold secrets (LAPS, BitLocker, gMSA, password data:
//!   [`latch_cap::directory::is_secret_attribute`]) are never asked for, filtered on or returned,
//!   and a search's answer is bounded ([`live::MAX_ENTRIES`], [`live::MAX_RESULT_BYTES`]).

pub mod kit;
pub mod live;
pub mod login;
pub mod table;
pub mod wit;

use serde::Serialize;

use latch_cap::CallState;
use latch_cap::directory::dn::Dn;
use latch_cap::directory::{Bases, check_attribute_name};
use latch_cap::{Answered, Call, CapError, CapReply, Effect, Target, check_text, record_of};
use latch_contract::SecretRef;

/// How far below the base a search looks (mirrors `ldap.scope`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scope {
    /// The base entry.
    Base,
    /// Its children.
    OneLevel,
    /// The whole subtree.
    Subtree,
}

/// One attribute value (mirrors `ldap.value`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Value {
    /// A string.
    Text(String),
    /// A password by handle; recorded by name.
    Password(#[serde(serialize_with = "latch_cap::display")] SecretRef),
}

/// An attribute with its values.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Attribute {
    /// Its name.
    pub name: String,
    /// Its values.
    pub values: Vec<Value>,
}

/// One change of a modify (mirrors `ldap.change`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "op")]
pub enum Change {
    /// Add values.
    Add(Attribute),
    /// Remove values (none: the attribute).
    Delete(Attribute),
    /// Replace the values.
    Replace(Attribute),
}

impl Change {
    /// The attribute changed.
    pub fn attribute(&self) -> &Attribute {
        match self {
            Change::Add(a) | Change::Delete(a) | Change::Replace(a) => a,
        }
    }
}

/// An entry a search found (mirrors `ldap.entry`): the directory's, shared with the AD
/// lookups over WinRM.
pub use latch_cap::directory::Entry;

/// The operation of an `ldap` call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "operation")]
pub enum Op {
    /// `ldap.search`.
    Search {
        /// Where to start.
        base: String,
        /// How deep.
        scope: Scope,
        /// Equality pairs, all of which must hold.
        filter: Vec<(String, String)>,
        /// Attributes to return.
        attributes: Vec<String>,
    },
    /// `ldap.add`.
    Add {
        /// The new entry.
        dn: String,
        /// Its attributes.
        attributes: Vec<Attribute>,
    },
    /// `ldap.modify`.
    Modify {
        /// The entry.
        dn: String,
        /// The changes, applied together.
        changes: Vec<Change>,
    },
    /// `ldap.delete`.
    Delete {
        /// The entry.
        dn: String,
    },
}

/// One `ldap` call on `target`. After [`Call::authorize`], every DN in it is the host's own
/// serialization of the parsed name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LdapCall {
    /// The directory server.
    pub target: Target,
    /// What to do.
    #[serde(flatten)]
    pub op: Op,
    /// Set by the checks for a rotation's own-password change outside the `change` bases:
    /// the live part carries it out only on the bound account's own entry.
    #[serde(skip)]
    pub own_entry_only: bool,
}

/// Attributes an `ldap.add` or `ldap.modify` may write on an entry under `change`.
pub const WRITABLE: &[&str] = &[
    "objectClass",
    "cn",
    "sAMAccountName",
    "userPrincipalName",
    "displayName",
    "givenName",
    "sn",
    "mail",
    "description",
    "userAccountControl",
    "accountExpires",
    "unicodePwd",
];

/// The object classes an added entry may have.
pub const OBJECT_CLASSES: &[&str] = &["top", "person", "organizationalPerson", "user"];

/// Most filter pairs, attributes, changes or values in one call.
pub const MAX_ITEMS: usize = 64;
/// Most bytes of one value.
pub const MAX_VALUE: usize = 4096;

/// Every directory operation answers the entries it found: a search's; none for a change.
impl Answered for LdapCall {
    type Reply = Vec<Entry>;
}

impl Call for LdapCall {
    fn capability(&self) -> &'static str {
        match self.op {
            Op::Search { .. } => "ldap.search",
            Op::Add { .. } => "ldap.add",
            Op::Modify { .. } => "ldap.modify",
            Op::Delete { .. } => "ldap.delete",
        }
    }
    fn effect(&self) -> Effect {
        match self.op {
            Op::Search { .. } => Effect::Read,
            _ => Effect::Change,
        }
    }
    fn target(&self) -> Option<&Target> {
        Some(&self.target)
    }
    fn login(&self) -> Option<(&'static str, &Target)> {
        Some((login::NAME, &self.target))
    }
    fn authorize(&mut self, state: &CallState) -> Result<(), CapError> {
        authorize(state, self)
    }
    fn record(&self) -> serde_json::Map<String, serde_json::Value> {
        record_of(self)
    }
    fn empty_reply(&self) -> CapReply {
        CapReply::new(Vec::<Entry>::new())
    }
    fn clone_call(&self) -> Box<dyn Call> {
        Box::new(self.clone())
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// The call as records and plans show it (passwords by name).
impl std::fmt::Display for LdapCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: ", self.capability(), self.target)?;
        let values = |a: &Attribute| {
            a.values
                .iter()
                .map(|v| match v {
                    Value::Text(t) => format!("{t:?}"),
                    Value::Password(r) => r.to_string(),
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        match &self.op {
            Op::Search {
                base,
                scope,
                filter,
                attributes,
            } => write!(
                f,
                "base {base:?} scope {scope:?} filter {} attributes [{}]",
                filter_text(filter),
                attributes.join(", ")
            ),
            Op::Add { dn, attributes } => {
                write!(f, "{dn:?}")?;
                for a in attributes {
                    write!(f, "; {}: {}", a.name, values(a))?;
                }
                Ok(())
            }
            Op::Modify { dn, changes } => {
                write!(f, "{dn:?}")?;
                for c in changes {
                    let (op, a) = match c {
                        Change::Add(a) => ("add", a),
                        Change::Delete(a) => ("delete", a),
                        Change::Replace(a) => ("replace", a),
                    };
                    write!(f, "; {op} {}: {}", a.name, values(a))?;
                }
                Ok(())
            }
            Op::Delete { dn } => write!(f, "{dn:?}"),
        }
    }
}

/// The RFC 4515 filter for equality `pairs`, every value escaped; `(objectClass=*)` for none.
pub fn filter_text(pairs: &[(String, String)]) -> String {
    let one = |(name, value): &(String, String)| format!("({name}={})", ldap3::ldap_escape(value));
    match pairs {
        [] => "(objectClass=*)".to_string(),
        [single] => one(single),
        many => format!("(&{})", many.iter().map(one).collect::<String>()),
    }
}

/// A malformed attribute name is the guest's mistake; one that holds secrets, a refusal.
fn attribute_refused(message: String) -> CapError {
    if message.contains("holds secrets") {
        CapError::Denied(message)
    } else {
        CapError::InvalidRequest(message)
    }
}

fn invalid(message: String) -> CapError {
    CapError::InvalidRequest(message)
}

fn parsed(what: &str, text: &str) -> Result<Dn, CapError> {
    Dn::parse(text).map_err(|e| invalid(format!("{what}: {e}")))
}

fn count(what: &str, n: usize) -> Result<(), CapError> {
    if n > MAX_ITEMS {
        return Err(invalid(format!(
            "{n} {what}, more than the {MAX_ITEMS} allowed"
        )));
    }
    Ok(())
}

/// Argument checks, then the bases, the secrets and the target against the policy. Every
/// DN is replaced by the host's serialization of it.
fn authorize(state: &CallState, call: &mut LdapCall) -> Result<(), CapError> {
    let bases = &*state.policy().get_or_default::<Bases>();
    match &mut call.op {
        Op::Search {
            base,
            filter,
            attributes,
            ..
        } => {
            let dn = parsed("search base", base)?;
            count("filter pairs", filter.len())?;
            count("attributes", attributes.len())?;
            for (name, value) in filter.iter() {
                check_attribute_name("filter attribute", name).map_err(attribute_refused)?;
                check_text(&format!("filter value of {name}"), value, MAX_VALUE)?;
            }
            for name in attributes.iter() {
                check_attribute_name("attribute", name).map_err(attribute_refused)?;
            }
            if !bases.read_covers(&dn) {
                return Err(CapError::Denied(format!(
                    "search base {:?} is not at or under the integration's directory.read bases {}",
                    dn.to_string(),
                    Bases::listed(&bases.read)
                )));
            }
            *base = dn.to_string();
        }
        Op::Add { dn, attributes } => {
            let parsed_dn = parsed("entry", dn)?;
            if !bases.change_covers(&parsed_dn) {
                return Err(denied_change("add", &parsed_dn, bases));
            }
            count("attributes", attributes.len())?;
            let mut classes = Vec::new();
            for a in attributes.iter() {
                check_attribute(state, a, true)?;
                if a.name.eq_ignore_ascii_case("objectClass") {
                    classes.extend(a.values.iter().filter_map(|v| match v {
                        Value::Text(t) => Some(t.to_ascii_lowercase()),
                        Value::Password(_) => None,
                    }));
                }
            }
            if !classes.iter().any(|c| c == "user") {
                return Err(invalid(
                    "an added entry must be a user (objectClass user)".to_string(),
                ));
            }
            *dn = parsed_dn.to_string();
        }
        Op::Modify { dn, changes } => {
            let parsed_dn = parsed("entry", dn)?;
            count("changes", changes.len())?;
            if changes.is_empty() {
                return Err(invalid("a modify with no changes".to_string()));
            }
            if bases.change_covers(&parsed_dn) {
                for c in changes.iter() {
                    let a = c.attribute();
                    if a.name.eq_ignore_ascii_case("objectClass") {
                        return Err(CapError::Denied(
                            "an entry's objectClass is not changed through Latch".to_string(),
                        ));
                    }
                    check_attribute(state, a, false)?;
                }
            } else if bases.groups_cover(&parsed_dn) {
                for c in changes.iter_mut() {
                    let a = match c {
                        Change::Add(a) | Change::Delete(a) => a,
                        Change::Replace(_) => {
                            return Err(CapError::Denied(
                                "a group's members are added or removed one by one, never \
                                 replaced"
                                    .to_string(),
                            ));
                        }
                    };
                    if !a.name.eq_ignore_ascii_case("member") {
                        return Err(CapError::Denied(format!(
                            "only `member` of a group under directory.groups may change, not {:?}",
                            a.name
                        )));
                    }
                    if a.values.is_empty() {
                        return Err(invalid(
                            "name the members to add or remove (removing all is not lent)"
                                .to_string(),
                        ));
                    }
                    count("values", a.values.len())?;
                    for v in a.values.iter_mut() {
                        let Value::Text(member) = v else {
                            return Err(invalid("a member is a DN, not a secret".to_string()));
                        };
                        let m = parsed("member", member)?;
                        if !bases.change_covers(&m) {
                            return Err(CapError::Denied(format!(
                                "member {:?} is not under the integration's directory.change bases \
                                 {}: a guest puts only its own accounts into groups",
                                m.to_string(),
                                Bases::listed(&bases.change)
                            )));
                        }
                        *member = m.to_string();
                    }
                }
            } else if is_own_password_change(state, changes) {
                call.own_entry_only = true;
            } else {
                return Err(denied_change("modify", &parsed_dn, bases));
            }
            *dn = parsed_dn.to_string();
        }
        Op::Delete { dn } => {
            let parsed_dn = parsed("entry", dn)?;
            if !bases.change_covers(&parsed_dn) {
                return Err(denied_change("delete", &parsed_dn, bases));
            }
            *dn = parsed_dn.to_string();
        }
    }
    state
        .policy()
        .check_target(&call.target)
        .map_err(CapError::Denied)
}

/// A rotation setting the service account's password: one replace of `unicodePwd` with the
/// new service password, and nothing else. Allowed on the bound account's own entry only,
/// which the live part checks against the directory before sending it.
fn is_own_password_change(state: &CallState, changes: &[Change]) -> bool {
    state.secrets().new_service_password.is_some()
        && matches!(changes, [Change::Replace(a)]
            if a.name.eq_ignore_ascii_case("unicodePwd")
                && a.values == [Value::Password(SecretRef::NewServicePassword)])
}

fn denied_change(what: &str, dn: &Dn, bases: &Bases) -> CapError {
    CapError::Denied(format!(
        "cannot {what} {:?}: entries change only strictly under the integration's \
         directory.change bases {} (and groups' members under directory.groups {})",
        dn.to_string(),
        Bases::listed(&bases.change),
        Bases::listed(&bases.groups)
    ))
}

/// An attribute written on an entry under `change`.
fn check_attribute(state: &CallState, a: &Attribute, adding: bool) -> Result<(), CapError> {
    let Some(name) = WRITABLE.iter().find(|w| w.eq_ignore_ascii_case(&a.name)) else {
        return Err(CapError::Denied(format!(
            "attribute {:?} is not one Latch writes ({})",
            a.name,
            WRITABLE.join(", ")
        )));
    };
    count("values", a.values.len())?;
    if adding && a.values.is_empty() {
        return Err(invalid(format!("attribute {name} has no values")));
    }
    for v in &a.values {
        match (v, *name) {
            (Value::Password(r), "unicodePwd") => check_secret(state, r)?,
            (Value::Password(_), _) => {
                return Err(CapError::Denied(format!(
                    "a password goes only into unicodePwd, not {name} (which can be read back)"
                )));
            }
            (Value::Text(_), "unicodePwd") => {
                return Err(CapError::Denied(
                    "unicodePwd takes a secret-ref only: a guest never holds a password"
                        .to_string(),
                ));
            }
            (Value::Text(t), _) => {
                check_text(&format!("value of {name}"), t, MAX_VALUE)?;
                match *name {
                    "userAccountControl" if t != "512" && t != "514" => {
                        return Err(CapError::Denied(format!(
                            "userAccountControl {t:?}: Latch sets only 512 (enabled) or 514 \
                             (disabled)"
                        )));
                    }
                    "accountExpires" if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) => {
                        return Err(invalid(format!(
                            "accountExpires {t:?} must be a number (100 ns since 1601)"
                        )));
                    }
                    "objectClass" if !OBJECT_CLASSES.iter().any(|c| c.eq_ignore_ascii_case(t)) => {
                        return Err(CapError::Denied(format!(
                            "objectClass {t:?}: Latch adds users only ({})",
                            OBJECT_CLASSES.join(", ")
                        )));
                    }
                    _ => {}
                }
            }
        }
    }
    Ok(())
}

fn check_secret(state: &CallState, r: &SecretRef) -> Result<(), CapError> {
    match r {
        SecretRef::Named(name) => {
            latch_secret_store::check_name(name).map_err(CapError::InvalidRequest)?;
            state.policy().check_secret(name).map_err(CapError::Denied)
        }
        SecretRef::GrantPassword if state.secrets().grant_password.is_none() => {
            Err(CapError::Denied(
                "there is no grant password here (only a grant of an integration whose \
                 credential is a password has one)"
                    .to_string(),
            ))
        }
        SecretRef::NewServicePassword if state.secrets().new_service_password.is_none() => {
            Err(CapError::Denied(
                "there is no new service password here (only a rotation has one)".to_string(),
            ))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The policy as an operator writes it (the README's example): the refusals below are
    /// tested against it, not against bounds widened to what a call expects. `latch.toml`:
    /// `allow = ["dc1.corp.example:636"]`; `[integration.directory] read =
    /// ["DC=corp,DC=example"]`, `change = ["OU=Latch,DC=corp,DC=example"]`, `groups = ["OU=JIT
    /// Groups,DC=corp,DC=example"]` (the config's own tests read that table into these).
    fn operator_state(secrets: latch_cap::CallSecrets) -> CallState {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let policy = latch_cap::Policy::parse(&s(&["dc1.corp.example:636"]), &[])
            .unwrap()
            .with(
                Bases::parse(
                    &s(&["DC=corp,DC=example"]),
                    &s(&["OU=Latch,DC=corp,DC=example"]),
                    &s(&["OU=JIT Groups,DC=corp,DC=example"]),
                )
                .unwrap(),
            );
        CallState::new(
            "corp-dc".into(),
            std::sync::Arc::new(policy),
            std::sync::Arc::new(latch_cap::Recorder),
            None,
            secrets,
            false,
            1 << 20,
        )
    }

    fn call(op: Op) -> LdapCall {
        LdapCall {
            target: Target {
                host: "dc1.corp.example".into(),
                port: 636,
                user: None,
            },
            op,
            own_entry_only: false,
        }
    }

    fn text(name: &str, values: &[&str]) -> Attribute {
        Attribute {
            name: name.into(),
            values: values.iter().map(|v| Value::Text(v.to_string())).collect(),
        }
    }

    const USER: &str = "CN=jit_alice,OU=Latch,DC=corp,DC=example";
    const GROUP: &str = "CN=JIT-Admins,OU=JIT Groups,DC=corp,DC=example";

    fn add(attributes: Vec<Attribute>) -> Op {
        Op::Add {
            dn: USER.into(),
            attributes,
        }
    }

    fn user_classes() -> Attribute {
        text(
            "objectClass",
            &["top", "person", "organizationalPerson", "user"],
        )
    }

    #[test]
    fn every_refusal_holds_against_the_policy_as_the_operator_wrote_it() {
        let password = latch_cap::CallSecrets {
            grant_password: Some(latch_cap::Secret::new(b"Pw-123456789!abc".to_vec())),
            new_service_password: None,
        };
        let state = operator_state(password);
        let pwd = |r: SecretRef| Attribute {
            name: "unicodePwd".into(),
            values: vec![Value::Password(r)],
        };
        let member = |op: fn(Attribute) -> Change, dn: &str| Op::Modify {
            dn: GROUP.into(),
            changes: vec![op(text("member", &[dn]))],
        };
        // What the operator lends goes through: each refusal below is of its own cause.
        let allowed = [
            add(vec![
                user_classes(),
                text("sAMAccountName", &["jit_alice"]),
                text("userAccountControl", &["514"]),
                pwd(SecretRef::GrantPassword),
            ]),
            member(Change::Add, USER),
            member(Change::Delete, USER),
            Op::Modify {
                dn: USER.into(),
                changes: vec![Change::Replace(text("userAccountControl", &["512"]))],
            },
            Op::Search {
                base: "OU=Latch,DC=corp,DC=example".into(),
                scope: Scope::Subtree,
                filter: vec![("sAMAccountName".into(), "jit_alice".into())],
                attributes: vec!["description".into()],
            },
            Op::Delete { dn: USER.into() },
        ];
        for op in allowed {
            let mut c = call(op.clone());
            assert_eq!(authorize(&state, &mut c), Ok(()), "{op:?}");
        }
        let refused: Vec<(Op, &str)> = vec![
            (
                add(vec![
                    user_classes(),
                    text("servicePrincipalName", &["HTTP/x"]),
                ]),
                "is not one Latch writes",
            ),
            (
                add(vec![user_classes(), text("userAccountControl", &["66048"])]),
                "Latch sets only 512 (enabled) or 514",
            ),
            (
                add(vec![text("objectClass", &["top", "computer", "user"])]),
                "Latch adds users only",
            ),
            (
                add(vec![text("objectClass", &["top", "person"])]),
                "must be a user",
            ),
            (
                add(vec![user_classes(), text("unicodePwd", &["clear"])]),
                "unicodePwd takes a secret-ref only",
            ),
            (
                add(vec![
                    user_classes(),
                    Attribute {
                        name: "description".into(),
                        values: vec![Value::Password(SecretRef::GrantPassword)],
                    },
                ]),
                "a password goes only into unicodePwd",
            ),
            (
                add(vec![user_classes(), pwd(SecretRef::NewServicePassword)]),
                "no new service password here",
            ),
            (
                Op::Modify {
                    dn: GROUP.into(),
                    changes: vec![Change::Replace(text("member", &[USER]))],
                },
                "never replaced",
            ),
            (
                member(Change::Add, "CN=Administrator,CN=Users,DC=corp,DC=example"),
                "a guest puts only its own accounts into groups",
            ),
            (
                Op::Modify {
                    dn: GROUP.into(),
                    changes: vec![Change::Add(text("description", &["x"]))],
                },
                "only `member` of a group",
            ),
            (
                Op::Modify {
                    dn: "CN=Domain Admins,CN=Users,DC=corp,DC=example".into(),
                    changes: vec![Change::Add(text("member", &[USER]))],
                },
                "cannot modify",
            ),
            (
                Op::Modify {
                    dn: USER.into(),
                    changes: vec![Change::Replace(text("objectClass", &["computer"]))],
                },
                "objectClass is not changed",
            ),
            (
                Op::Add {
                    dn: "CN=x,CN=Users,DC=corp,DC=example".into(),
                    attributes: vec![user_classes()],
                },
                "cannot add",
            ),
            (
                Op::Add {
                    dn: "OU=Latch,DC=corp,DC=example".into(),
                    attributes: vec![user_classes()],
                },
                "cannot add",
            ),
            (
                Op::Delete {
                    dn: "CN=Administrator,CN=Users,DC=corp,DC=example".into(),
                },
                "cannot delete",
            ),
            (
                Op::Search {
                    base: "DC=other,DC=example".into(),
                    scope: Scope::Subtree,
                    filter: Vec::new(),
                    attributes: Vec::new(),
                },
                "not at or under the integration's directory.read",
            ),
            (
                Op::Search {
                    base: "DC=corp,DC=example".into(),
                    scope: Scope::Subtree,
                    filter: Vec::new(),
                    attributes: vec!["ms-Mcs-AdmPwd".into()],
                },
                "holds secrets",
            ),
            (
                Op::Search {
                    base: "DC=corp,DC=example".into(),
                    scope: Scope::Subtree,
                    filter: vec![("msLAPS-Password".into(), "guess".into())],
                    attributes: Vec::new(),
                },
                "holds secrets",
            ),
        ];
        for (op, says) in refused {
            let mut c = call(op.clone());
            let e = authorize(&state, &mut c).unwrap_err().to_string();
            assert!(e.contains(says), "{op:?}\n=> {e}");
        }
    }

    #[test]
    fn filters_escape_every_value() {
        let f = filter_text(&[
            ("objectClass".into(), "user".into()),
            ("sAMAccountName".into(), "*)(|(cn=*".into()),
            ("cn".into(), "a\\b\0".into()),
        ]);
        assert_eq!(
            f,
            "(&(objectClass=user)(sAMAccountName=\\2a\\29\\28|\\28cn=\\2a)(cn=a\\5cb\\00))"
        );
        assert_eq!(filter_text(&[]), "(objectClass=*)");
    }
}
