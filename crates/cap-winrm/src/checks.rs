//! A `winrm` call's arguments, checked against the catalog and the directory bounds before
//! anything is sent (see [`crate::catalog`] for the why of each kind).
//!
//! Identities of AD objects given as DNs are checked as they are, and sent as the host's own
//! serialization; one given as a sAMAccountName, GUID or SID is first resolved by a read the
//! host makes itself ([`lookup`]: `Get-ADObject` with a filter the host builds and escapes),
//! then checked, and sent as the DN it resolved to — so the object changed is the object
//! checked, whatever the name meant.

use serde_json::Value as Json;

use crate::catalog::{self, Entry, Kind};
use crate::{Invoke, MAX_LIST, MAX_VALUE_BYTES};
use latch_cap::CallState;
use latch_cap::directory::dn::Dn;
use latch_cap::directory::{Bases, check_attribute_name, filter};
use latch_cap::{CapCall, CapError, CapReply, CmdletOutput, Effect, ParamValue, check_text};
use latch_contract::SecretRef;

/// An AD identity the host must resolve before the call may go: where it is in the call, and
/// what it must turn out to be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolve {
    /// Index of the parameter.
    pub param: usize,
    /// Index in a list value, if it is one.
    pub item: Option<usize>,
    /// Its kind (what the resolved DN is checked against).
    pub kind: Kind,
    /// The name as the guest gave it.
    pub identity: String,
    /// The call sets the new service password: the object must be the service account.
    pub own_entry: bool,
}

fn invalid(m: String) -> CapError {
    CapError::InvalidRequest(m)
}

fn denied(m: String) -> CapError {
    CapError::Denied(m)
}

/// Check `call` against the catalog entry of its cmdlet and the integration's bounds; DN
/// identities are replaced by the host's serialization, other identities queued in
/// `call.resolving`.
pub fn check(state: &CallState, call: &mut Invoke) -> Result<(), CapError> {
    let entry = catalog::catalog().get(&call.cmdlet).ok_or_else(|| {
        denied(format!(
            "cmdlet {} is not in Latch's cmdlet catalog: it is never lent",
            call.cmdlet
        ))
    })?;
    if call.effect == Effect::Read && entry.effect == Effect::Change {
        return Err(denied(format!(
            "{} changes the server; a guest runs it with winrm.invoke, not winrm.read",
            entry.name
        )));
    }
    let bases = &*state.policy().get_or_default::<Bases>();
    if entry.names_directory_objects() && bases.is_empty() {
        return Err(denied(format!(
            "{} names directory objects, and the integration lends no [integration.directory] \
             bounds",
            entry.name
        )));
    }
    let own_entry = call
        .parameters
        .iter()
        .any(|(_, v)| matches!(v, ParamValue::Secret(SecretRef::NewServicePassword)));
    let mut seen = std::collections::BTreeSet::new();
    call.resolving.clear();
    for i in 0..call.parameters.len() {
        let (name, _) = &call.parameters[i];
        let Some((spelled, kind)) = entry.parameter(name) else {
            return Err(denied(format!(
                "{} takes no parameter -{name} through Latch (the catalog lends {})",
                entry.name,
                entry.parameter_names().collect::<Vec<_>>().join(", ")
            )));
        };
        if !seen.insert(spelled.to_ascii_lowercase()) {
            return Err(invalid(format!("parameter -{spelled} is given twice")));
        }
        check_value(state, call, i, spelled, kind, bases, own_entry)?;
    }
    if own_entry
        && !call.parameters.iter().any(|(n, _)| {
            matches!(
                entry.parameter(n),
                Some((_, Kind::AdEntry | Kind::LocalUser))
            )
        })
    {
        return Err(denied(format!(
            "{} cannot take the new service password: it goes only to the service account, \
             named by the call",
            entry.name
        )));
    }
    if let Some(missing) = entry
        .requires
        .iter()
        .find(|r| !seen.contains(&r.to_ascii_lowercase()))
    {
        return Err(invalid(format!(
            "{} needs -{missing} (the catalog requires it)",
            entry.name
        )));
    }
    Ok(())
}

fn check_value(
    state: &CallState,
    call: &mut Invoke,
    i: usize,
    name: &str,
    kind: Kind,
    bases: &Bases,
    own_entry: bool,
) -> Result<(), CapError> {
    let value = &call.parameters[i].1;
    let what = format!("parameter -{name}");
    // A secret goes only where a SecureString belongs, and nothing else goes there.
    match (kind, value) {
        (Kind::Secret, ParamValue::Secret(r)) => return check_secret(state, &what, r),
        (Kind::Secret, _) => {
            return Err(denied(format!(
                "{what} takes a secret-ref only: a guest never holds a password"
            )));
        }
        (_, ParamValue::Secret(_)) => {
            return Err(denied(format!(
                "{what} is not a SecureString: a secret-ref goes nowhere it could be read back"
            )));
        }
        _ => {}
    }
    // The value's shape.
    let texts: Vec<&str> = match (kind, value) {
        (Kind::Integer, ParamValue::Integer(_))
        | (Kind::Boolean, ParamValue::Boolean(_))
        | (Kind::Switch, ParamValue::Switch | ParamValue::Boolean(_))
        | (Kind::Confirm, ParamValue::Boolean(false)) => return Ok(()),
        (Kind::Confirm, _) => {
            return Err(denied(format!("{what} is lent only as -{name}:$false")));
        }
        (_, ParamValue::Text(t)) if !matches!(kind, Kind::Integer | Kind::Boolean) => {
            vec![t.as_str()]
        }
        (k, ParamValue::TextList(items)) if k.takes_list() => {
            if items.len() > MAX_LIST {
                return Err(invalid(format!(
                    "{what} lists {} values, more than the {MAX_LIST} allowed",
                    items.len()
                )));
            }
            items.iter().map(String::as_str).collect()
        }
        _ => {
            return Err(invalid(format!(
                "{what} takes {}, not this value",
                match kind {
                    Kind::Integer => "a whole number",
                    Kind::Boolean => "$true or $false",
                    Kind::Switch => "a switch",
                    k if k.takes_list() => "a string or a list of strings",
                    _ => "a string",
                }
            )));
        }
    };
    for t in &texts {
        check_text(&what, t, MAX_VALUE_BYTES)?;
    }
    match kind {
        Kind::Expiry => {
            let at = catalog::parse_expiry(texts[0]).ok_or_else(|| {
                invalid(format!(
                    "{what} {:?} is not a time like 2026-01-31T18:00:00Z",
                    texts[0]
                ))
            })?;
            let Some(grant) = state.grant() else {
                return Err(denied(format!(
                    "{what}: an expiry is set only while a grant is served"
                )));
            };
            // The certificate's 60 s of clock skew, no more.
            if at > grant.expires_at + 60 {
                return Err(denied(format!(
                    "{what} {} is after the grant's expiry ({}): an account never outlives its \
                     grant",
                    texts[0], grant.expires_at
                )));
            }
        }
        Kind::AdFilter => {
            filter::attributes(texts[0]).map_err(|e| refusal(&what, e))?;
        }
        Kind::AdProperties => {
            for t in &texts {
                check_attribute_name(&what, t).map_err(|e| refusal(&what, e))?;
            }
        }
        Kind::AdSearchBase | Kind::AdContainer => {
            let dn = Dn::parse(texts[0]).map_err(|e| invalid(format!("{what}: {e}")))?;
            let ok = match kind {
                Kind::AdSearchBase => bases.read_covers(&dn),
                _ => bases.change.iter().any(|b| dn.is_at_or_under(b)),
            };
            if !ok {
                return Err(out_of_bounds(&what, &dn, kind, bases));
            }
            call.parameters[i].1 = ParamValue::Text(dn.to_string());
        }
        k if k.is_ad_identity() => {
            let mut canonical = Vec::with_capacity(texts.len());
            let list = matches!(call.parameters[i].1, ParamValue::TextList(_));
            for (n, t) in texts.iter().enumerate() {
                let as_dn = t.contains('=').then(|| Dn::parse(t));
                match as_dn {
                    Some(Err(e)) => return Err(invalid(format!("{what}: {e}"))),
                    // The service account is known by name, not by place: resolved always.
                    Some(Ok(dn)) if !(own_entry && k == Kind::AdEntry) => {
                        check_bound(&what, &dn, k, bases)?;
                        canonical.push(dn.to_string());
                    }
                    _ => {
                        identity_form(&what, t)?;
                        call.resolving.push(Resolve {
                            param: i,
                            item: list.then_some(n),
                            kind: k,
                            identity: t.to_string(),
                            own_entry: own_entry && k == Kind::AdEntry,
                        });
                        canonical.push(t.to_string());
                    }
                }
            }
            call.parameters[i].1 = if list {
                ParamValue::TextList(canonical)
            } else {
                ParamValue::Text(canonical.remove(0))
            };
        }
        Kind::LocalUser if own_entry => {
            // A new service password goes to the service account alone.
            let account = state
                .policy()
                .get::<crate::lent::ServiceAccount>()
                .map_or("", |a| a.0.as_str());
            if !same_account(texts[0], account) {
                return Err(denied(format!(
                    "{what}: the new service password may be set only on the service account \
                     ({account:?}), not on {:?}",
                    texts[0]
                )));
            }
        }
        _ => {}
    }
    Ok(())
}

/// A refusal of a filter or attribute: one naming a secret attribute is `denied`.
fn refusal(what: &str, e: String) -> CapError {
    if e.contains("holds secrets") {
        denied(format!("{what}: {e}"))
    } else {
        invalid(format!("{what}: {e}"))
    }
}

fn check_secret(state: &CallState, what: &str, r: &SecretRef) -> Result<(), CapError> {
    match r {
        SecretRef::Named(secret) => {
            latch_secret_store::check_name(secret).map_err(CapError::InvalidRequest)?;
            state
                .policy()
                .check_secret(secret)
                .map_err(CapError::Denied)
        }
        SecretRef::GrantPassword if state.secrets().grant_password.is_none() => {
            Err(denied(format!(
                "{what}: there is no grant password here (only a grant of an integration whose \
             credential is a password has one)"
            )))
        }
        SecretRef::NewServicePassword if state.secrets().new_service_password.is_none() => {
            Err(denied(format!(
                "{what}: there is no new service password outside a rotation"
            )))
        }
        _ => Ok(()),
    }
}

/// An identity that is not a DN: a GUID, a SID, or a sAMAccountName (no `=`, no control
/// characters, at most 256 bytes).
fn identity_form(what: &str, t: &str) -> Result<(), CapError> {
    if t.is_empty() || t.len() > 256 || t.chars().any(char::is_control) {
        return Err(invalid(format!(
            "{what} {t:?} is not a DN, GUID, SID or account name"
        )));
    }
    Ok(())
}

fn check_bound(what: &str, dn: &Dn, kind: Kind, bases: &Bases) -> Result<(), CapError> {
    let ok = match kind {
        Kind::AdReadEntry => bases.read_covers(dn),
        Kind::AdGroup => bases.groups_cover(dn),
        _ => bases.change_covers(dn),
    };
    if ok {
        Ok(())
    } else {
        Err(out_of_bounds(what, dn, kind, bases))
    }
}

fn out_of_bounds(what: &str, dn: &Dn, kind: Kind, bases: &Bases) -> CapError {
    let (rule, list) = match kind {
        Kind::AdSearchBase | Kind::AdReadEntry => ("at or under directory.read", &bases.read),
        Kind::AdContainer => ("at or under directory.change", &bases.change),
        Kind::AdGroup => ("at or under directory.groups", &bases.groups),
        Kind::AdMembers => (
            "strictly under directory.change (a guest puts only its own accounts into groups)",
            &bases.change,
        ),
        _ => ("strictly under directory.change", &bases.change),
    };
    denied(format!(
        "{what} {:?} is not {rule} {}: refused before anything was sent",
        dn.to_string(),
        Bases::listed(list)
    ))
}

/// Is `name` (as a guest names a local or domain account) the account `account` (as
/// `latch.toml` names the service account: `user`, `DOMAIN\user` or `user@domain`)?
fn same_account(name: &str, account: &str) -> bool {
    let bare = |a: &str| -> String {
        let a = a.rsplit('\\').next().unwrap_or(a);
        a.split('@').next().unwrap_or(a).to_ascii_lowercase()
    };
    !account.is_empty() && bare(name) == bare(account)
}

/// The read that resolves `r` on `call`'s server: `Get-ADObject` with an LDAP filter the host
/// builds (`objectGUID`, `objectSid` as escaped bytes; `distinguishedName` or
/// `sAMAccountName` escaped, RFC 4515), asking for the account names it compares.
pub fn lookup(call: &Invoke, r: &Resolve) -> CapCall {
    let escape = |bytes: &[u8]| {
        bytes
            .iter()
            .map(|b| format!("\\{b:02x}"))
            .collect::<String>()
    };
    let filter = if let Some(guid) = guid_bytes(&r.identity) {
        format!("(objectGUID={})", escape(&guid))
    } else if let Some(sid) = sid_bytes(&r.identity) {
        format!("(objectSid={})", escape(&sid))
    } else if r.identity.contains('=') {
        format!("(distinguishedName={})", ldap3::ldap_escape(&r.identity))
    } else {
        format!("(sAMAccountName={})", ldap3::ldap_escape(&r.identity))
    };
    CapCall::new(Invoke {
        target: call.target.clone(),
        cmdlet: "Get-ADObject".into(),
        parameters: vec![
            ("LDAPFilter".into(), ParamValue::Text(filter)),
            (
                "Properties".into(),
                ParamValue::TextList(vec!["sAMAccountName".into(), "userPrincipalName".into()]),
            ),
        ],
        effect: Effect::Read,
        resolving: Vec::new(),
    })
}

/// Check what the lookups found, and put each resolved DN in place of the name.
pub fn resolved(
    state: &CallState,
    call: &mut Invoke,
    answers: Vec<Result<CapReply, CapError>>,
) -> Result<(), CapError> {
    let bases = state.policy().get_or_default::<Bases>().into_owned();
    let entry: &Entry = catalog::catalog()
        .get(&call.cmdlet)
        .expect("checked before");
    for (r, answer) in call.resolving.clone().into_iter().zip(answers) {
        let what = format!(
            "parameter -{}",
            entry
                .parameter(&call.parameters[r.param].0)
                .map_or("?", |(n, _)| n)
        );
        let found = match answer {
            Ok(reply) => reply
                .get::<CmdletOutput>()
                .and_then(|out| serde_json::from_str::<Json>(&out.objects).ok())
                .and_then(|j| j.as_array().cloned())
                .unwrap_or_default(),
            Err(e) => {
                return Err(CapError::Failed(format!(
                    "{what}: resolving {:?} failed: {e}",
                    r.identity
                )));
            }
        };
        let [object] = found.as_slice() else {
            return Err(denied(format!(
                "{what}: {:?} names {} directory objects, not one: refused",
                r.identity,
                found.len()
            )));
        };
        // PowerShell names a property as asked (sAMAccountName) or as the cmdlet spells it.
        let text = |k: &str| {
            object
                .as_object()
                .and_then(|o| o.iter().find(|(key, _)| key.eq_ignore_ascii_case(k)))
                .and_then(|(_, v)| v.as_str())
                .unwrap_or_default()
                .to_string()
        };
        let dn = Dn::parse(&text("DistinguishedName")).map_err(|e| {
            CapError::Failed(format!(
                "{what}: the server resolved {:?} to no DN: {e}",
                r.identity
            ))
        })?;
        if r.own_entry {
            let account = state
                .policy()
                .get::<crate::lent::ServiceAccount>()
                .map_or("", |a| a.0.as_str());
            let upn = text("userPrincipalName");
            let own = same_account(&text("sAMAccountName"), account)
                || (!upn.is_empty() && upn.eq_ignore_ascii_case(account));
            if !own {
                return Err(denied(format!(
                    "{what}: the new service password may be set only on the service account's \
                     own entry ({account:?}), not on {:?}",
                    dn.to_string()
                )));
            }
        } else {
            check_bound(&what, &dn, r.kind, &bases)?;
        }
        let place = &mut call.parameters[r.param].1;
        match (place, r.item) {
            (ParamValue::TextList(items), Some(n)) => items[n] = dn.to_string(),
            (place, _) => *place = ParamValue::Text(dn.to_string()),
        }
    }
    call.resolving.clear();
    Ok(())
}

/// The bytes of a GUID as AD stores `objectGUID` (the first three fields little-endian), if
/// `t` is one (`xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, optionally in braces).
fn guid_bytes(t: &str) -> Option<Vec<u8>> {
    let t = t
        .strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .unwrap_or(t);
    let parts: Vec<&str> = t.split('-').collect();
    let sizes = [8, 4, 4, 4, 12];
    if parts.len() != 5
        || parts
            .iter()
            .zip(sizes)
            .any(|(p, n)| p.len() != n || !p.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return None;
    }
    let hex = parts.concat();
    let b: Vec<u8> = (0..16)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex"))
        .collect();
    let mut out = Vec::with_capacity(16);
    out.extend(b[0..4].iter().rev());
    out.extend(b[4..6].iter().rev());
    out.extend(b[6..8].iter().rev());
    out.extend(&b[8..16]);
    Some(out)
}

/// The binary form of a SID `S-1-5-21-…`, if `t` is one.
fn sid_bytes(t: &str) -> Option<Vec<u8>> {
    let rest = t.strip_prefix("S-").or_else(|| t.strip_prefix("s-"))?;
    let parts: Vec<&str> = rest.split('-').collect();
    if parts.len() < 3 || parts.len() > 17 {
        return None;
    }
    let revision: u8 = parts[0].parse().ok()?;
    let authority: u64 = parts[1].parse().ok().filter(|a| *a < (1 << 48))?;
    let subs: Vec<u32> = parts[2..]
        .iter()
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let mut out = vec![revision, subs.len() as u8];
    out.extend(&authority.to_be_bytes()[2..]);
    for s in subs {
        out.extend(s.to_le_bytes());
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guids_and_sids_become_the_bytes_ad_stores() {
        assert_eq!(
            guid_bytes("{01020304-0506-0708-090a-0b0c0d0e0f10}").unwrap(),
            [4, 3, 2, 1, 6, 5, 8, 7, 9, 10, 11, 12, 13, 14, 15, 16]
        );
        assert!(guid_bytes("not-a-guid").is_none());
        assert_eq!(
            sid_bytes("S-1-5-21-1-2-3-500").unwrap(),
            [
                1, 5, 0, 0, 0, 0, 0, 5, 21, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 244, 1, 0,
                0
            ]
        );
        assert!(sid_bytes("S-1-x").is_none() && sid_bytes("svc_latch").is_none());
        assert!(same_account("svc_latch", "LATCH\\svc_latch"));
        assert!(same_account("SVC_LATCH", "svc_latch@latch.test"));
        assert!(!same_account("Administrator", "LATCH\\svc_latch"));
        assert!(!same_account("x", ""));
    }
}
