//! What an integration's guest may reach: the `allow` and `secrets` lists of `latch.toml`,
//! and each capability's own [`Slice`] of it (winrm's cmdlets, cloud's scopes, the
//! directory's bounds), which the capability makes from its table and looks up by type.
//!
//! Defends against a guest (buggy, or modified by someone who should not have) acting on a
//! server or reading a secret the operator never listed. Every capability call is checked here
//! **before** anything is sent anywhere; a refusal becomes `error::denied` for the guest, a
//! warning in the log and (with the ledger) an audit record.
//!
//! Matching is deliberately literal:
//! - a name rule (`web-1.internal`, `*.corp.example`) matches a target *named* that way,
//!   case-insensitively; it never matches an IP literal, and no DNS lookup happens here;
//! - an IP or CIDR rule (`10.0.0.5`, `10.0.0.0/24`, `::1`) matches only IP-literal targets;
//! - a rule without a port allows any port, `host:22` (or `[v6]:22`) only that port.
//!
//! A target host that is empty, overlong, starts with `-` (it could be read as an option by a
//! tool) or contains anything but letters, digits, `.`, `-`, `_` and `:` is refused outright.

use std::any::TypeId;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;
use serde::Serialize;

/// Where a capability acts, as the host sees it (mirrors `types.target` in the WIT).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Target {
    /// Host name or IP literal.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Account to act as; `None` means the integration's default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(user) = &self.user {
            write!(f, "{user}@")?;
        }
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// What may be reached by one host pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
enum HostRule {
    /// An exact host name, lower-cased.
    Name(String),
    /// `*.suffix`: any name ending in `.suffix` (not `suffix` itself), lower-cased.
    Suffix(String),
    /// An IP address or network.
    Net(IpNet),
}

/// One entry of an integration's `allow` list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllowRule {
    host: HostRule,
    port: Option<u16>,
    source: String,
}

impl AllowRule {
    /// Parse `host`, `host:port`, `*.domain`, `10.0.0.0/8`, `10.0.0.5:22`, `::1` or `[::1]:22`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("allow entry {text:?}: {why}");
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(bad("is empty"));
        }
        let (host, port) = split_host_port(trimmed).map_err(|e| bad(&e))?;
        let port = match port {
            None => None,
            Some(p) => match p.parse::<u16>() {
                Ok(0) | Err(_) => return Err(bad("port must be a number from 1 to 65535")),
                Ok(p) => Some(p),
            },
        };
        let rule = if let Ok(net) = host.parse::<IpNet>() {
            HostRule::Net(net.trunc())
        } else if let Ok(ip) = host.parse::<IpAddr>() {
            HostRule::Net(IpNet::from(ip))
        } else if let Some(suffix) = host.strip_prefix("*.") {
            check_name(suffix).map_err(|e| bad(&e))?;
            HostRule::Suffix(suffix.to_ascii_lowercase())
        } else {
            check_name(host).map_err(|e| bad(&e))?;
            HostRule::Name(host.to_ascii_lowercase())
        };
        Ok(AllowRule {
            host: rule,
            port,
            source: trimmed.to_string(),
        })
    }

    /// The rule as written in the configuration.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    fn matches(&self, host: &str, ip: Option<IpAddr>, port: u16) -> bool {
        if self.port.is_some_and(|p| p != port) {
            return false;
        }
        match (&self.host, ip) {
            (HostRule::Net(net), Some(ip)) => net.contains(&ip),
            (HostRule::Name(name), None) => host.eq_ignore_ascii_case(name),
            (HostRule::Suffix(suffix), None) => {
                let host = host.to_ascii_lowercase();
                host.len() > suffix.len() + 1
                    && host.ends_with(suffix.as_str())
                    && host.as_bytes()[host.len() - suffix.len() - 1] == b'.'
            }
            _ => false,
        }
    }
}

/// Split `host[:port]`, with IPv6 literals either bare (no port) or bracketed.
fn split_host_port(text: &str) -> Result<(&str, Option<&str>), String> {
    if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| "unclosed '['".to_string())?;
        return match after {
            "" => Ok((host, None)),
            _ => match after.strip_prefix(':') {
                Some(port) => Ok((host, Some(port))),
                None => Err("expected ':port' after ']'".into()),
            },
        };
    }
    match text.matches(':').count() {
        0 => Ok((text, None)),
        1 => {
            let (h, p) = text.split_once(':').expect("one colon");
            Ok((h, Some(p)))
        }
        // A bare IPv6 address or network, without a port.
        _ => Ok((text, None)),
    }
}

/// Check that `name` is a plausible DNS name or label list (no shell or option syntax).
fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 253 {
        return Err("host name must be 1 to 253 characters".into());
    }
    if name.starts_with('-') || name.starts_with('.') {
        return Err("host name must not start with '-' or '.'".into());
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
    {
        return Err("host name may hold only letters, digits, '.', '-' and '_'".into());
    }
    Ok(())
}

/// Check a target's host as a guest gave it, before any policy matching.
pub fn check_target_host(host: &str) -> Result<Option<IpAddr>, String> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(Some(ip));
    }
    check_name(host).map(|()| None)
}

/// A capability's own part of an integration's policy (winrm's cmdlets, cloud's scopes, the
/// directory's bounds): made by the capability from its own table of `latch.toml`, held by
/// [`Policy`] by its type and looked up by it, as Spin's factors keep their state. The policy
/// knows none of them.
pub trait Slice: Clone + fmt::Debug + Send + Sync + 'static {}

/// The object-safe side of [`Slice`].
trait AnySlice: fmt::Debug + Send + Sync {
    fn as_any(&self) -> &dyn std::any::Any;
}

impl<S: Slice> AnySlice for S {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// The policy of one integration: which targets and secrets its guest may use, and each
/// capability's [`Slice`] the operator lent.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    allow: Vec<AllowRule>,
    secrets: BTreeSet<String>,
    slices: BTreeMap<SliceKey, Arc<dyn AnySlice>>,
}

/// A slice's type, named for `Debug`.
#[derive(Clone, Copy)]
struct SliceKey(TypeId, &'static str);

impl PartialEq for SliceKey {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}
impl Eq for SliceKey {}
impl PartialOrd for SliceKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for SliceKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.cmp(&other.0)
    }
}
impl fmt::Debug for SliceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.1)
    }
}

impl Policy {
    /// A policy allowing exactly `allow` targets and `secrets` names, and no capability's
    /// slice.
    pub fn new(allow: Vec<AllowRule>, secrets: impl IntoIterator<Item = String>) -> Self {
        Policy {
            allow,
            secrets: secrets.into_iter().collect(),
            slices: BTreeMap::new(),
        }
    }

    /// Also lend a capability's `slice` (in place of one of its type lent before).
    pub fn with<S: Slice>(mut self, slice: S) -> Self {
        let key = SliceKey(TypeId::of::<S>(), std::any::type_name::<S>());
        self.slices.insert(key, Arc::new(slice));
        self
    }

    /// The slice of type `S`, if the operator lent one.
    pub fn get<S: Slice>(&self) -> Option<&S> {
        let key = SliceKey(TypeId::of::<S>(), "");
        self.slices.get(&key)?.as_any().downcast_ref()
    }

    /// The slice of type `S`, or the empty one (which lends nothing) if none was lent.
    pub fn get_or_default<S: Slice + Default>(&self) -> std::borrow::Cow<'_, S> {
        match self.get::<S>() {
            Some(s) => std::borrow::Cow::Borrowed(s),
            None => std::borrow::Cow::Owned(S::default()),
        }
    }

    /// Parse the `allow` strings and take the `secrets` names of a configuration.
    pub fn parse(allow: &[String], secrets: &[String]) -> Result<Self, String> {
        let allow = allow
            .iter()
            .map(|a| AllowRule::parse(a))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Policy::new(allow, secrets.iter().cloned()))
    }

    /// May the guest act on `target`? `Err` says why not, for the guest and the log.
    pub fn check_target(&self, target: &Target) -> Result<(), String> {
        let ip = check_target_host(&target.host)
            .map_err(|e| format!("target {:?} is not a valid host: {e}", target.host))?;
        if target.port == 0 {
            return Err(format!("target {target} has port 0"));
        }
        if self
            .allow
            .iter()
            .any(|r| r.matches(&target.host, ip, target.port))
        {
            return Ok(());
        }
        let listed: Vec<&str> = self.allow.iter().map(AllowRule::as_str).collect();
        Err(format!(
            "target {target} is not in the integration's allow list [{}]",
            listed.join(", ")
        ))
    }

    /// May the guest read secret `name`?
    pub fn check_secret(&self, name: &str) -> Result<(), String> {
        if self.secrets.contains(name) {
            Ok(())
        } else {
            Err(format!(
                "secret {name:?} is not in the integration's secrets list"
            ))
        }
    }

    /// The secrets the guest may read or name, as listed.
    pub fn secret_names(&self) -> impl Iterator<Item = &str> {
        self.secrets.iter().map(String::as_str)
    }

    /// The allow rules as written.
    pub fn allow(&self) -> impl Iterator<Item = &str> {
        self.allow.iter().map(AllowRule::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(host: &str, port: u16) -> Target {
        Target {
            host: host.into(),
            port,
            user: None,
        }
    }

    fn policy(rules: &[&str]) -> Policy {
        let rules: Vec<String> = rules.iter().map(|s| s.to_string()).collect();
        Policy::parse(&rules, &["db-password".into()]).unwrap()
    }

    #[test]
    fn cidr_and_ip_rules_match_only_ip_literals() {
        let p = policy(&["10.0.0.0/24", "127.0.0.2:22", "::1"]);
        assert!(p.check_target(&t("10.0.0.77", 22)).is_ok());
        assert!(p.check_target(&t("10.0.1.1", 22)).is_err());
        assert!(p.check_target(&t("127.0.0.2", 22)).is_ok());
        assert!(p.check_target(&t("127.0.0.2", 2222)).is_err());
        assert!(p.check_target(&t("::1", 5986)).is_ok());
        // A name never matches an IP rule, even if it would resolve into it.
        assert!(p.check_target(&t("localhost", 22)).is_err());
    }

    #[test]
    fn name_rules_are_exact_or_suffix_and_case_insensitive() {
        let p = policy(&["web-1.internal:22", "*.corp.example"]);
        assert!(p.check_target(&t("WEB-1.internal", 22)).is_ok());
        assert!(p.check_target(&t("web-1.internal", 23)).is_err());
        assert!(p.check_target(&t("web-10.internal", 22)).is_err());
        assert!(p.check_target(&t("db.corp.example", 5986)).is_ok());
        assert!(p.check_target(&t("corp.example", 22)).is_err());
        assert!(p.check_target(&t("evilcorp.example", 22)).is_err());
    }

    #[test]
    fn hostile_target_hosts_are_refused_before_matching() {
        let p = policy(&["*.corp.example"]);
        for host in [
            "-oProxyCommand=x.corp.example",
            "a;id.corp.example",
            "$(id).corp.example",
            "",
            "a b.corp.example",
        ] {
            let err = p.check_target(&t(host, 22)).unwrap_err();
            assert!(err.contains("not a valid host"), "{host}: {err}");
        }
    }

    #[test]
    fn bad_rules_are_errors_that_quote_the_rule() {
        for rule in ["", "host:0", "host:99999", "[::1", "a;b", "-x", "*.", "h:p"] {
            let err = AllowRule::parse(rule).unwrap_err();
            assert!(err.contains("allow entry"), "{rule}: {err}");
        }
        assert!(AllowRule::parse("[::1]:22").is_ok());
    }

    #[derive(Clone, Debug, Default, PartialEq)]
    struct Lent(u8);
    impl Slice for Lent {}
    #[derive(Clone, Debug, Default, PartialEq)]
    struct Other(u8);
    impl Slice for Other {}

    #[test]
    fn slices_are_found_by_their_type_only() {
        let p = policy(&[]);
        assert_eq!(p.get::<Lent>(), None);
        assert_eq!(*p.get_or_default::<Lent>(), Lent(0));
        let p = p.with(Lent(1)).with(Other(2)).with(Lent(3));
        assert_eq!(p.get::<Lent>(), Some(&Lent(3)));
        assert_eq!(p.get::<Other>(), Some(&Other(2)));
        assert!(format!("{p:?}").contains("Lent"));
    }

    #[test]
    fn secrets_must_be_listed() {
        let p = policy(&[]);
        assert!(p.check_secret("db-password").is_ok());
        assert!(p.check_secret("other").is_err());
        assert!(p.check_target(&t("10.0.0.1", 22)).is_err());
    }
}
