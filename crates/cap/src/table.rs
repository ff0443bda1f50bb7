//! A capability's tables of `latch.toml`, after Spin's runtime config per factor: each
//! capability parses and checks its own `[integration.<name>]` tables ([`Table`]), lends its
//! slices of the [`Policy`], and keeps its connection settings ([`TableSettings`]) in the
//! integration's [`Settings`], looked up by type. The file schema (`latch.toml`'s own keys)
//! holds a list of tables and knows none of them.
//!
//! What the central code needs of a capability's settings it asks through
//! [`TableSettings`]: the service credential it logs in with (a guest may narrow it, never
//! choose it), the service account, the secrets the host holds for itself, the policy
//! slices known only once the guest said its lifecycle, and its service login.

use std::any::{Any, TypeId};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use serde::de::DeserializeOwned;

use crate::SecretStore;
use crate::login::ServiceLogin;
use crate::policy::Policy;

/// One capability's tables in `[[integration]]`.
pub trait Table: Send + Sync {
    /// The tables it reads, as named under `[integration.*]`.
    fn names(&self) -> &'static [&'static str];

    /// The fields that name a service credential (`[integration.ssh] key_secret`): said in
    /// the error when a guest names a credential and the operator lent none.
    fn service_secret_fields(&self) -> &'static [&'static str] {
        &[]
    }

    /// Check its tables of one integration: take each (`cx.take`), lend its slices
    /// (`cx.policy`) and keep its settings (`cx.settings`). Errors name the table and field.
    fn check(&self, cx: &mut TableCx<'_>) -> anyhow::Result<()>;
}

/// One integration's tables as a capability's [`Table::check`] sees them.
pub struct TableCx<'a> {
    tables: BTreeMap<String, toml::Value>,
    data_dir: &'a Path,
    /// The policy so far: `allow`, `secrets` and the slices of the tables checked before.
    pub policy: Policy,
    /// The settings of the tables checked so far.
    pub settings: Settings,
}

impl<'a> TableCx<'a> {
    /// The integration's `tables` (every key `latch.toml`'s schema did not take), paths
    /// relative to `data_dir`, with its `policy` so far.
    pub fn new(tables: BTreeMap<String, toml::Value>, data_dir: &'a Path, policy: Policy) -> Self {
        TableCx {
            tables,
            data_dir,
            policy,
            settings: Settings::default(),
        }
    }

    /// Take the table `name`, parsed as `T` (which should deny unknown fields); `None` if the
    /// integration has none.
    pub fn take<T: DeserializeOwned>(&mut self, name: &str) -> anyhow::Result<Option<T>> {
        match self.tables.remove(name) {
            None => Ok(None),
            Some(value @ toml::Value::Table(_)) => {
                value.try_into().map(Some).context(name.to_string())
            }
            Some(_) => anyhow::bail!("{name} must be a table ([integration.{name}])"),
        }
    }

    /// Whether the integration has a table `name` not taken yet.
    pub fn has(&self, name: &str) -> bool {
        self.tables.contains_key(name)
    }

    /// The directory relative paths in a table are resolved against.
    pub fn data_dir(&self) -> &Path {
        self.data_dir
    }

    /// What no capability took: the policy, the settings and the names left over (each an
    /// unknown field of `[[integration]]`).
    pub fn finish(self) -> (Policy, Settings, Vec<String>) {
        (
            self.policy,
            self.settings,
            self.tables.into_keys().collect(),
        )
    }
}

/// A capability's settings from its table, as the central code may ask of them.
pub trait TableSettings: Any + fmt::Debug + Send + Sync {
    /// The secrets it logs in with, with the field naming each (`[integration.ssh]
    /// key_secret`): the only secrets its transport uses, and the only ones a rotation of the
    /// integration may rewrite.
    fn service_secrets(&self) -> Vec<(&'static str, String)> {
        Vec::new()
    }

    /// Other secrets the host holds for this table and a guest may never read, with what
    /// each is (an Azure client secret).
    fn held_secrets(&self) -> Vec<(String, &'static str)> {
        Vec::new()
    }

    /// The service account `latch.toml` names, with its field.
    fn service_user(&self) -> Option<(&'static str, &str)> {
        None
    }

    /// Log in as `user` (the guest's account) where `latch.toml` names none.
    fn adopt_service_user(&mut self, _user: &str) {}

    /// The slices it lends once the service account is known (after the guest's lifecycle).
    fn lend(&self, policy: Policy) -> Policy {
        policy
    }

    /// Its service login (`latch check --connect`, rotation), by transport name.
    fn login(&self, _secrets: &Arc<SecretStore>) -> Option<(&'static str, Box<dyn ServiceLogin>)> {
        None
    }

    /// A copy, boxed.
    fn clone_box(&self) -> Box<dyn TableSettings>;
}

/// One integration's settings, each capability's by its type.
#[derive(Debug, Default)]
pub struct Settings(BTreeMap<Key, Box<dyn TableSettings>>);

#[derive(Clone, Copy)]
struct Key(TypeId, &'static str);

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}
impl Eq for Key {}
impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Key {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.cmp(&other.0)
    }
}
impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.1)
    }
}

impl Clone for Settings {
    fn clone(&self) -> Self {
        Settings(self.0.iter().map(|(k, v)| (*k, v.clone_box())).collect())
    }
}

impl Settings {
    /// Keep `settings` (in place of any of its type).
    pub fn insert<S: TableSettings>(&mut self, settings: S) {
        let key = Key(TypeId::of::<S>(), std::any::type_name::<S>());
        self.0.insert(key, Box::new(settings));
    }

    /// The settings of type `S`, if the integration has them.
    pub fn get<S: TableSettings>(&self) -> Option<&S> {
        let b = self.0.get(&Key(TypeId::of::<S>(), ""))?;
        (b.as_ref() as &dyn Any).downcast_ref()
    }

    /// Every capability's settings.
    pub fn iter(&self) -> impl Iterator<Item = &dyn TableSettings> {
        self.0.values().map(|b| b.as_ref())
    }

    /// Every capability's settings, to amend.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut (dyn TableSettings + 'static)> {
        self.0.values_mut().map(|b| b.as_mut())
    }

    /// The settings of type `S` of each integration that has them, by integration name: what
    /// a capability's live part is built from.
    pub fn collect<'a, S: TableSettings + Clone>(
        integrations: impl IntoIterator<Item = (&'a str, &'a Settings)>,
    ) -> HashMap<String, S> {
        integrations
            .into_iter()
            .filter_map(|(name, s)| s.get::<S>().map(|s| (name.to_string(), s.clone())))
            .collect()
    }
}

/// Parse a positive duration such as `90s`, `15m`, `8h` or `1h 30m`.
pub fn parse_duration(text: &str) -> anyhow::Result<Duration> {
    let d = humantime::parse_duration(text.trim())
        .map_err(|e| anyhow::anyhow!("{text:?} is not a duration like 90s, 15m or 8h: {e}"))?;
    if d.is_zero() {
        anyhow::bail!("duration {text:?} must be more than zero");
    }
    Ok(d)
}

/// A Windows account as `user`, `DOMAIN\user` or `user@domain`: printable, no characters
/// Windows forbids in account names, at most 256 bytes.
pub fn check_windows_account(name: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 256
        && name.chars().all(|c| !c.is_control())
        && !name.chars().any(|c| {
            matches!(
                c,
                '"' | '/' | '[' | ']' | ':' | ';' | '|' | '=' | ',' | '+' | '*' | '?' | '<' | '>'
            )
        })
        && name.matches('\\').count() <= 1;
    if !ok {
        anyhow::bail!("{name:?} is not a Windows account name (user, DOMAIN\\user or user@domain)");
    }
    Ok(())
}

/// The TLS client configuration of a transport: `ca_file`'s certificates as the only roots,
/// or the system's (the platform verifier).
pub fn tls_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?;
    let config = match ca_file {
        Some(path) => {
            use rustls::pki_types::pem::PemObject as _;
            let mut roots = rustls::RootCertStore::empty();
            let certs = rustls::pki_types::CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("ca_file {}: {e}", path.display()))?;
            for cert in certs {
                let cert = cert.map_err(|e| format!("ca_file {}: {e}", path.display()))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("ca_file {}: {e}", path.display()))?;
            }
            if roots.is_empty() {
                return Err(format!("ca_file {} holds no certificate", path.display()));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        None => {
            use rustls_platform_verifier::BuilderVerifierExt as _;
            builder
                .with_platform_verifier()
                .map_err(|e| format!("the system's TLS roots: {e}"))?
                .with_no_client_auth()
        }
    };
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Debug, PartialEq)]
    struct A(u32);
    impl TableSettings for A {
        fn clone_box(&self) -> Box<dyn TableSettings> {
            Box::new(self.clone())
        }
    }

    #[test]
    fn a_table_is_taken_once_and_its_errors_name_it_and_the_field() {
        #[derive(serde::Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct T {
            on: bool,
        }
        let tables: toml::Table =
            toml::from_str("w = 1\n[t]\non = \"yes\"\n[u]\non = true\n[v]\nx = 1").unwrap();
        let mut cx = TableCx::new(
            tables.into_iter().collect(),
            Path::new("/d"),
            Policy::default(),
        );
        let err = format!("{:#}", cx.take::<T>("t").unwrap_err());
        assert!(err.starts_with("t: ") && err.contains("on"), "{err}");
        assert!(cx.take::<T>("u").unwrap().unwrap().on);
        assert!(cx.take::<T>("u").unwrap().is_none());
        let err = format!("{:#}", cx.take::<T>("v").unwrap_err());
        assert!(err.contains("unknown field `x`"), "{err}");
        let err = format!("{:#}", cx.take::<T>("w").unwrap_err());
        assert!(err.contains("must be a table"), "{err}");
        let (_, _, left) = cx.finish();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn settings_are_found_by_type() {
        let mut s = Settings::default();
        assert!(s.get::<A>().is_none());
        s.insert(A(1));
        s.insert(A(2));
        assert_eq!(s.get::<A>(), Some(&A(2)));
        assert_eq!(s.clone().iter().count(), 1);
        let by_name = Settings::collect::<A>([("x", &s), ("y", &Settings::default())]);
        assert_eq!(by_name.len(), 1);
        assert_eq!(by_name["x"], A(2));
    }

    #[test]
    fn windows_accounts() {
        for ok in ["svc", "LAB\\svc", "svc@lab.test", "Jürgen"] {
            check_windows_account(ok).unwrap();
        }
        for bad in ["", "a;b", "a\\b\\c", "x\u{0}", "a*", &"x".repeat(257)] {
            assert!(check_windows_account(bad).is_err(), "{bad:?}");
        }
    }
}
