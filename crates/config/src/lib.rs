//! `latch.toml`: which guests run, pinned by hash, and what each may reach.
//!
//! Defends against running a guest nobody reviewed and against typos that silently widen or
//! disable a setting: every table denies unknown fields (only an integration's own `config`
//! is free-form, and its guest's `validate` checks it); every guest is pinned by sha256 and a
//! mismatch refuses to start with both hashes printed; allow rules, secret names, limits and
//! names are checked here, before any guest is loaded.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;

use latch_caps::Policy;
use latch_caps::registry;
use latch_caps::secrets;
use latch_caps::table::{Settings, TableCx};
use latch_runtime::{CredentialKind, Lifecycle, Limits, RuntimeConfig};

mod api;
mod password;
mod stores;

pub use api::ApiSettings;
pub use latch_caps::table::parse_duration;
pub use password::PasswordRules;

use api::{ApiSection, check_api};
use password::{PasswordSection, check_password};
use stores::{SecretsSection, check_store};

/// The parsed and checked configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// The file it came from (guest paths are relative to its directory).
    pub path: PathBuf,
    /// Where Latch keeps its state (grants, known_hosts); default: the config file's directory.
    pub data_dir: PathBuf,
    /// The secrets directory (default `data_dir/secrets`).
    pub secrets_dir: PathBuf,
    /// Environment variables `{prefix}{NAME}` are a secret source too (default `LATCH_SECRET_`).
    pub secrets_env_prefix: Option<String>,
    /// `[secrets.stores.NAME]`: secret managers, named by secrets `NAME:PATH`.
    pub secret_stores: std::collections::BTreeMap<String, secrets::RemoteStore>,
    /// Where `latch serve` listens for the HTTP API (default 127.0.0.1:8700).
    pub listen: std::net::SocketAddr,
    /// `[api]`: TLS for the API, or plain HTTP beyond loopback on purpose.
    pub api: ApiSettings,
    /// `[audit] forward_file`: `latch serve` appends every audit record there as JSON lines.
    pub audit_forward_file: Option<PathBuf>,
    /// `[access] policy`: the Cedar access policy file (relative to the config file's
    /// directory), checked by `latch check` and `latch policy`.
    pub access_policy: Option<PathBuf>,
    /// Sandbox sizing.
    pub runtime: RuntimeConfig,
    /// The integrations, in file order.
    pub integrations: Vec<IntegrationConfig>,
}

/// One `[[integration]]`, checked.
#[derive(Clone, Debug)]
pub struct IntegrationConfig {
    /// Unique name.
    pub name: String,
    /// Path of the guest `.wasm`, resolved against the config file's directory.
    pub guest: PathBuf,
    /// The pinned sha256, lower-case hex.
    pub sha256: String,
    /// What the guest may reach.
    pub policy: Policy,
    /// Deadline and memory cap of its calls.
    pub limits: Limits,
    /// Its own settings, as the JSON handed to the guest.
    pub config_json: String,
    /// Each capability's settings from its tables (`[integration.ssh]`, …), by type: how the
    /// host reaches the integration's servers and logs in to them.
    pub settings: Settings,
    /// The longest grant this integration gives.
    pub max_duration: Duration,
    /// What the host does for this configuration, as the guest's `validate` said (filled in
    /// when the connector starts; the host reads no integration setting by name).
    pub lifecycle: Lifecycle,
    /// What the requester gets, as the guest's `describe` said (filled in at start).
    pub credential: CredentialKind,
    /// How the host generates grant passwords (`[integration.password]`).
    pub password: PasswordRules,
}

impl IntegrationConfig {
    /// Its service logins (`latch check --connect`, rotation), by name.
    pub fn service_logins(
        &self,
        secrets: &std::sync::Arc<secrets::SecretStore>,
    ) -> latch_caps::login::Logins {
        registry::service_logins(secrets, &self.settings)
    }
}

impl IntegrationConfig {
    /// Apply what the guest said of this configuration: the lifecycle (`validate`) and the
    /// credential kind (`describe`). Checked like the rest of `latch.toml`.
    ///
    /// The service credential is the operator's alone: the secret each transport logs in
    /// with comes from `latch.toml` (`[integration.ssh] key_secret`, `[integration.winrm]`
    /// / `[integration.ldap]` `password_secret`) and nowhere else. What the guest says of it
    /// (`service-key-secret`) is checked, never followed: it must name one of those secrets,
    /// or the start fails naming both. The service account follows the same rule where
    /// `latch.toml` names one; where it names none, the guest's account is used (an account
    /// name is no secret: logging in as another account with the operator's credential only
    /// fails).
    pub fn apply(
        &mut self,
        lifecycle: Lifecycle,
        credential: CredentialKind,
    ) -> anyhow::Result<()> {
        if let Some(days) = lifecycle.cleanup_after_days
            && days > 3650
        {
            bail!("the guest asks for cleanup after {days} days; at most 3650");
        }
        if let Some(days) = lifecycle.rotate_after_days
            && !(1..=3650).contains(&days)
        {
            bail!("the guest asks for rotation every {days} days; 1 to 3650");
        }
        if let Some(name) = &lifecycle.service_key_secret {
            secrets::check_name(name)
                .map_err(anyhow::Error::msg)
                .context("the guest's service key secret")?;
            let lent = self.service_secrets();
            if lent.is_empty() {
                let fields: Vec<&str> = registry::tables()
                    .iter()
                    .flat_map(|t| t.service_secret_fields().iter().copied())
                    .collect();
                bail!(
                    "the guest names secret {name:?} as its service credential, but latch.toml \
                     lends this integration none: a guest never chooses a secret. Set one of \
                     {} to the secret you mean it to use",
                    fields.join(", ")
                );
            }
            if !lent.iter().any(|(_, s)| s == name) {
                let listed: Vec<String> = lent
                    .iter()
                    .map(|(field, s)| format!("{field} = {s:?}"))
                    .collect();
                bail!(
                    "the guest names secret {name:?} as its service credential, but latch.toml \
                     lends {}: a guest may narrow what it is lent, never choose it. Make the \
                     guest's setting the same, or remove it",
                    listed.join(" and ")
                );
            }
        }
        if let Some(user) = &lifecycle.service_user {
            let same = |configured: &str| configured.eq_ignore_ascii_case(user);
            let configured: Vec<(&str, &str)> = self
                .settings
                .iter()
                .filter_map(|s| s.service_user())
                .collect();
            if let Some((field, u)) = configured.iter().find(|(_, u)| !same(u)) {
                bail!(
                    "the guest names {user:?} as its service account, but latch.toml sets \
                     {field} = {u:?}: a guest may not choose another account. Make them the same, \
                     or remove the guest's setting"
                );
            }
            for s in self.settings.iter_mut() {
                s.adopt_service_user(user);
            }
        }
        if lifecycle.default_permission.is_empty() || lifecycle.default_permission.len() > 256 {
            bail!("the guest's default permission must be 1 to 256 bytes");
        }
        self.lifecycle = lifecycle;
        self.credential = credential;
        // What the capabilities lend once the service account is known.
        for s in self.settings.iter() {
            self.policy = s.lend(std::mem::take(&mut self.policy));
        }
        Ok(())
    }

    /// The secrets `latch.toml` lends this integration as its service credential, with the
    /// field naming each: the only secrets its transports log in with, and the only ones a
    /// rotation of it may rewrite.
    pub fn service_secrets(&self) -> Vec<(&'static str, String)> {
        self.settings
            .iter()
            .flat_map(|s| s.service_secrets())
            .collect()
    }
}

/// What an integration's lifecycle is before its guest said otherwise: nothing scheduled.
pub fn no_lifecycle() -> Lifecycle {
    Lifecycle {
        cleanup_after_days: None,
        rotate_after_days: None,
        service_key_secret: None,
        service_user: None,
        default_permission: "Default".into(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    data_dir: Option<PathBuf>,
    listen: Option<String>,
    #[serde(default)]
    api: ApiSection,
    #[serde(default)]
    secrets: SecretsSection,
    #[serde(default)]
    runtime: RuntimeSection,
    #[serde(default)]
    audit: AuditSection,
    #[serde(default)]
    access: AccessSection,
    #[serde(default, rename = "integration")]
    integrations: Vec<IntegrationSection>,
}

/// `[access]`: who may get what (issue 22).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct AccessSection {
    policy: Option<PathBuf>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct AuditSection {
    forward_file: Option<PathBuf>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RuntimeSection {
    max_concurrent_calls: Option<u32>,
    max_memory: Option<String>,
}

#[derive(Deserialize)]
struct IntegrationSection {
    name: String,
    guest: PathBuf,
    sha256: String,
    #[serde(default)]
    allow: Vec<String>,
    #[serde(default)]
    secrets: Vec<String>,
    deadline: Option<String>,
    memory: Option<String>,
    max_duration: Option<String>,
    password: Option<PasswordSection>,
    #[serde(default)]
    config: toml::Table,
    /// Every other key: a capability's table (`caps::registry::tables`), or a mistake
    /// refused by name (serde cannot deny unknown fields beside a flattened map).
    #[serde(flatten)]
    tables: std::collections::BTreeMap<String, toml::Value>,
}

/// The keys of `[[integration]]` that are the file schema's own.
const INTEGRATION_KEYS: &[&str] = &[
    "name",
    "guest",
    "sha256",
    "allow",
    "secrets",
    "deadline",
    "memory",
    "max_duration",
    "password",
    "config",
];

/// The longest grant when an integration sets no `max_duration`.
pub const DEFAULT_MAX_DURATION: Duration = Duration::from_secs(12 * 3600);

/// Longest deadline an integration may set.
pub const MAX_DEADLINE: Duration = Duration::from_secs(600);
/// Smallest memory cap an integration may set (a Rust guest needs a few pages to start).
pub const MIN_MEMORY: usize = 2 << 20;

impl Config {
    /// Read and check `path`.
    pub fn load(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config {}", path.display()))?;
        Config::parse(&text, path)
    }

    /// Parse and check `text`, as if read from `path`.
    pub fn parse(text: &str, path: &Path) -> anyhow::Result<Config> {
        let file: File =
            toml::from_str(text).with_context(|| format!("{} is not valid", path.display()))?;
        let mut runtime = RuntimeConfig::default();
        if let Some(n) = file.runtime.max_concurrent_calls {
            if !(1..=10_000).contains(&n) {
                bail!("runtime.max_concurrent_calls must be 1 to 10000, not {n}");
            }
            runtime.max_concurrent_calls = n;
        }
        if let Some(m) = &file.runtime.max_memory {
            runtime.max_memory = parse_bytes(m).context("runtime.max_memory")?;
        }
        let base = path.parent().unwrap_or(Path::new("."));
        let data_dir = match file.data_dir {
            Some(d) if d != Path::new(".") => base.join(d),
            _ => base.to_path_buf(),
        };
        let secrets_dir =
            data_dir.join(file.secrets.dir.unwrap_or_else(|| PathBuf::from("secrets")));
        let secrets_env_prefix = match file.secrets.env_prefix {
            Some(p) if p.is_empty() => None,
            Some(p) => Some(p),
            None => Some("LATCH_SECRET_".to_string()),
        };
        let mut secret_stores = std::collections::BTreeMap::new();
        for (name, section) in file.secrets.stores {
            let store = check_store(&name, section, base)
                .with_context(|| format!("secrets.stores.{name}"))?;
            secret_stores.insert(name, store);
        }
        let listen = match &file.listen {
            Some(l) => l
                .parse()
                .with_context(|| format!("listen {l:?} is not an address like 127.0.0.1:8700"))?,
            None => std::net::SocketAddr::from(([127, 0, 0, 1], 8700)),
        };
        let api = check_api(file.api, &listen, &data_dir).context("api")?;
        let audit_forward_file = file.audit.forward_file.map(|f| data_dir.join(f));
        let access_policy = file.access.policy.map(|p| base.join(p));
        if audit_forward_file
            .as_deref()
            .is_some_and(|f| f == data_dir.join("latch.db"))
        {
            bail!("audit.forward_file must not be the ledger itself");
        }
        let mut names = BTreeSet::new();
        let mut integrations = Vec::new();
        for section in file.integrations {
            let name = section.name.clone();
            let checked = check_integration(section, base, &data_dir, &runtime)
                .with_context(|| format!("integration {name:?}"))?;
            if !names.insert(name.clone()) {
                bail!("integration {name:?} is defined twice");
            }
            integrations.push(checked);
        }
        check_secret_roles(&integrations, &secret_stores)?;
        Ok(Config {
            path: path.to_path_buf(),
            data_dir,
            secrets_dir,
            secrets_env_prefix,
            secret_stores,
            listen,
            api,
            audit_forward_file,
            access_policy,
            runtime,
            integrations,
        })
    }

    /// The integration called `name`.
    pub fn integration(&self, name: &str) -> anyhow::Result<&IntegrationConfig> {
        self.integrations
            .iter()
            .find(|i| i.name == name)
            .with_context(|| {
                let known: Vec<&str> = self.integrations.iter().map(|i| i.name.as_str()).collect();
                format!(
                    "no integration {name:?} in {}; it has [{}]",
                    self.path.display(),
                    known.join(", ")
                )
            })
    }
}

/// Every secret the host holds for itself, with what it is: the user CA, each integration's
/// service credential (and the files a rotation keeps beside it), and each store's or
/// cloud table's own credential.
fn host_secrets(
    integrations: &[IntegrationConfig],
    stores: &std::collections::BTreeMap<String, secrets::RemoteStore>,
) -> Vec<(String, String)> {
    let mut held = vec![(
        latch_caps::certs::ca::CA_SECRET.to_string(),
        "the user CA's private key".to_string(),
    )];
    for ic in integrations {
        for (field, name) in ic.service_secrets() {
            held.push((
                name,
                format!("integration {:?}'s service credential ({field})", ic.name),
            ));
        }
        for (name, what) in ic.settings.iter().flat_map(|s| s.held_secrets()) {
            held.push((name, format!("integration {:?}'s {what}", ic.name)));
        }
    }
    for (store, remote) in stores {
        for name in remote.credential_secrets() {
            held.push((
                name.to_string(),
                format!("the credential of secret store {store:?}"),
            ));
        }
    }
    held
}

/// Which secret is what, checked across the whole file:
/// - a guest reads (or names as a `secret-ref`) only what its `secrets` list lends, and that
///   list may not hold a secret the host keeps for itself ([`host_secrets`]), nor a rotation's
///   `NAME.next` / `NAME.retiring` of one: a guest never holds a credential;
/// - a plain name is also read from the environment as `LATCH_SECRET_` + the name
///   upper-cased with `-` and `.` as `_`, so two names that map to one variable (`a-b`,
///   `a.b`, `A_B`) would be one secret under two names: refused as ambiguous.
fn check_secret_roles(
    integrations: &[IntegrationConfig],
    stores: &std::collections::BTreeMap<String, secrets::RemoteStore>,
) -> anyhow::Result<()> {
    let held = host_secrets(integrations, stores);
    for ic in integrations {
        for (field, name) in ic.service_secrets() {
            if secrets::same_secret(&name, latch_caps::certs::ca::CA_SECRET) {
                bail!(
                    "integration {:?}: {field} = {name:?} is the user CA's private key; a \
                     service credential is a secret of its own",
                    ic.name
                );
            }
        }
    }
    let mut every: Vec<(String, String)> = held.clone();
    for ic in integrations {
        for name in ic.policy.secret_names() {
            if let Some((_, what)) = held.iter().find(|(h, _)| {
                secrets::same_secret(h, name)
                    || name
                        .strip_prefix(h.as_str())
                        .is_some_and(|rest| rest.starts_with('.'))
            }) {
                bail!(
                    "integration {:?} lists secret {name:?} in `secrets` (what its guest may \
                     read or name), but that is {what}: a guest never holds a credential the \
                     host keeps for itself; remove it from `secrets`",
                    ic.name
                );
            }
            every.push((
                name.to_string(),
                format!("listed by integration {:?}", ic.name),
            ));
        }
    }
    let mut by_variable: std::collections::BTreeMap<String, &str> =
        std::collections::BTreeMap::new();
    for (name, _) in &every {
        let Some(variable) = secrets::environment_form(name) else {
            continue;
        };
        match by_variable.get(&variable) {
            Some(other) if *other != name => bail!(
                "secrets {other:?} and {name:?} are different names for one environment \
                 variable (LATCH_SECRET_{variable}): ambiguous; rename one"
            ),
            _ => {
                by_variable.insert(variable, name);
            }
        }
    }
    Ok(())
}

fn check_integration(
    s: IntegrationSection,
    base: &Path,
    data_dir: &Path,
    runtime: &RuntimeConfig,
) -> anyhow::Result<IntegrationConfig> {
    check_integration_name(&s.name)?;
    let sha256 = s.sha256.to_ascii_lowercase();
    if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!(
            "sha256 must be 64 hex digits (run `latch guest inspect {}` to read it)",
            s.guest.display()
        );
    }
    for name in &s.secrets {
        secrets::check_name(name)
            .map_err(anyhow::Error::msg)
            .context("secrets")?;
    }
    let policy = Policy::parse(&s.allow, &s.secrets).map_err(anyhow::Error::msg)?;
    let tables = registry::tables();
    if let Some(unknown) = s
        .tables
        .keys()
        .find(|k| !tables.iter().any(|t| t.names().contains(&k.as_str())))
    {
        let mut known: Vec<&str> = INTEGRATION_KEYS.to_vec();
        known.extend(tables.iter().flat_map(|t| t.names().iter().copied()));
        bail!(
            "unknown field `{unknown}`: an [[integration]] has {}",
            known.join(", ")
        );
    }
    let mut cx = TableCx::new(s.tables, data_dir, policy);
    for table in &tables {
        table.check(&mut cx)?;
    }
    let (policy, settings, left) = cx.finish();
    debug_assert!(left.is_empty(), "every table was known: {left:?}");
    let mut limits = Limits::default();
    if let Some(d) = &s.deadline {
        limits.deadline = parse_duration(d).context("deadline")?;
        if limits.deadline > MAX_DEADLINE {
            bail!("deadline {d:?} is longer than the {MAX_DEADLINE:?} allowed");
        }
    }
    if let Some(m) = &s.memory {
        limits.memory = parse_bytes(m).context("memory")?;
    }
    if limits.memory < MIN_MEMORY || limits.memory > runtime.max_memory {
        bail!(
            "memory must be from {} to runtime.max_memory ({}) bytes, not {}",
            MIN_MEMORY,
            runtime.max_memory,
            limits.memory
        );
    }
    let config_json = serde_json::to_string(&s.config).context("config")?;
    let max_duration = match &s.max_duration {
        Some(d) => parse_duration(d).context("max_duration")?,
        None => DEFAULT_MAX_DURATION,
    };
    let password = check_password(s.password.unwrap_or_default()).context("password")?;
    Ok(IntegrationConfig {
        name: s.name,
        guest: base.join(s.guest),
        sha256,
        policy,
        limits,
        config_json,
        settings,
        max_duration,
        lifecycle: no_lifecycle(),
        credential: CredentialKind::None,
        password,
    })
}

/// Integration names are short, lower-case, and safe in logs, URLs and file names.
pub fn check_integration_name(name: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.as_bytes()[0].is_ascii_lowercase()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !ok {
        bail!("name {name:?} must be 1 to 63 of [a-z0-9-], starting with a letter");
    }
    Ok(())
}

/// Parse a size such as `64MiB`, `512KiB`, `1GiB` or a plain number of bytes.
pub fn parse_bytes(text: &str) -> anyhow::Result<usize> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: usize = digits
        .parse()
        .map_err(|_| anyhow::anyhow!("{text:?} is not a size like 64MiB"))?;
    let scale: usize = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        other => bail!("{text:?}: unknown unit {other:?}; use B, KiB, MiB or GiB"),
    };
    n.checked_mul(scale)
        .filter(|&b| b > 0)
        .ok_or_else(|| anyhow::anyhow!("{text:?} is zero or too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PIN: &str = "ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01";

    fn parse(text: &str) -> anyhow::Result<Config> {
        Config::parse(text, Path::new("/etc/latch/latch.toml"))
    }

    /// The README's directory example becomes exactly these slices of the policy (the
    /// `ldap` capability's unit tests check their refusals against the same bounds).
    #[test]
    fn the_directory_table_is_the_policys_bases() {
        let c = parse(&format!(
            r#"
            [[integration]]
            name = "corp-dc"
            guest = "guests/windows_dc.wasm"
            sha256 = "{PIN}"
            allow = ["dc1.corp.example:636"]
            [integration.ldap]
            user = "svc_latch@corp.example"
            password_secret = "corp-dc-password"
            [integration.directory]
            read = ["DC=corp,DC=example"]
            change = ["OU=Latch,DC=corp,DC=example"]
            groups = ["OU=JIT Groups,DC=corp,DC=example"]
            "#
        ))
        .unwrap();
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let expected = latch_caps::directory::Bases::parse(
            &s(&["DC=corp,DC=example"]),
            &s(&["OU=Latch,DC=corp,DC=example"]),
            &s(&["OU=JIT Groups,DC=corp,DC=example"]),
        )
        .unwrap();
        let policy = &c.integrations[0].policy;
        let bases = policy.get::<latch_caps::directory::Bases>().unwrap();
        assert_eq!(format!("{bases:?}"), format!("{expected:?}"));
        assert_eq!(policy.allow().collect::<Vec<_>>(), ["dc1.corp.example:636"]);
        assert_eq!(policy.secret_names().count(), 0);
    }

    #[test]
    fn a_full_integration_parses() {
        let c = parse(&format!(
            r#"
            [runtime]
            max_memory = "256MiB"
            [[integration]]
            name = "prod-ssh"
            guest = "guests/ssh_servers.wasm"
            sha256 = "{PIN}"
            allow = ["10.0.0.0/24", "web-1.internal:22"]
            secrets = ["prod-ssh-key"]
            deadline = "45s"
            memory = "128MiB"
            [integration.config]
            servers = [{{ name = "web-1", host = "10.0.0.5" }}]
            "#
        ))
        .unwrap();
        let i = c.integration("prod-ssh").unwrap();
        assert_eq!(i.guest, Path::new("/etc/latch/guests/ssh_servers.wasm"));
        assert_eq!(i.limits.deadline, Duration::from_secs(45));
        assert_eq!(i.limits.memory, 128 << 20);
        assert_eq!(
            i.config_json,
            r#"{"servers":[{"host":"10.0.0.5","name":"web-1"}]}"#
        );
        assert!(
            c.integration("nope")
                .unwrap_err()
                .to_string()
                .contains("prod-ssh")
        );
    }

    #[test]
    fn mistakes_are_errors_that_name_the_field() {
        let cases = [
            (
                "[[integration]]\nname=\"a\"\nguest=\"g\"\nsha256=\"x\"\n",
                "sha256",
            ),
            (
                &format!("[[integration]]\nname=\"a\"\nguest=\"g\"\nsha256=\"{PIN}\"\nalow=[]\n"),
                "alow",
            ),
            (
                &format!("[[integration]]\nname=\"A b\"\nguest=\"g\"\nsha256=\"{PIN}\"\n"),
                "name",
            ),
            (
                &format!(
                    "[[integration]]\nname=\"a\"\nguest=\"g\"\nsha256=\"{PIN}\"\nallow=[\"a;b\"]\n"
                ),
                "allow entry",
            ),
            (
                &format!(
                    "[[integration]]\nname=\"a\"\nguest=\"g\"\nsha256=\"{PIN}\"\nsecrets=[\"../x\"]\n"
                ),
                "secret name",
            ),
            (
                &format!(
                    "[[integration]]\nname=\"a\"\nguest=\"g\"\nsha256=\"{PIN}\"\ndeadline=\"0s\"\n"
                ),
                "deadline",
            ),
            (
                &format!(
                    "[[integration]]\nname=\"a\"\nguest=\"g\"\nsha256=\"{PIN}\"\ndeadline=\"2h\"\n"
                ),
                "deadline",
            ),
            (
                &format!(
                    "[[integration]]\nname=\"a\"\nguest=\"g\"\nsha256=\"{PIN}\"\nmemory=\"2GiB\"\n"
                ),
                "memory",
            ),
            (
                &format!(
                    "[[integration]]\nname=\"a\"\nguest=\"g\"\nsha256=\"{PIN}\"\n[[integration]]\nname=\"a\"\nguest=\"g\"\nsha256=\"{PIN}\"\n"
                ),
                "twice",
            ),
            ("[runtim]\n", "runtim"),
            (
                &format!(
                    "[[integration]]\nname=\"a\"\nguest=\"g\"\nsha256=\"{PIN}\"\n[integration.winrn]\nuser=\"x\"\n"
                ),
                "unknown field `winrn`",
            ),
            (
                &format!("[[integration]]\nname=\"a\"\nguest=\"g\"\nsha256=\"{PIN}\"\nssh=5\n"),
                "ssh must be a table",
            ),
            (
                &format!(
                    "[[integration]]\nname=\"a\"\nguest=\"g\"\nsha256=\"{PIN}\"\n[integration.ssh]\nkey_secret=5\n"
                ),
                "ssh: invalid type: integer `5`, expected a string\nin `key_secret`",
            ),
        ];
        for (text, expect) in cases {
            let err = format!("{:#}", parse(text).unwrap_err());
            assert!(err.contains(expect), "{text}\n=> {err}");
        }
    }

    #[test]
    fn durations_and_sizes() {
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("8h").unwrap(), Duration::from_secs(8 * 3600));
        for bad in ["", "0s", "-5m", "soon", "5 parsecs"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_bytes("64MiB").unwrap(), 64 << 20);
        assert_eq!(parse_bytes("4096").unwrap(), 4096);
        for bad in ["", "0", "64MB", "-1", "99999999999999999999GiB"] {
            assert!(parse_bytes(bad).is_err(), "{bad}");
        }
    }

    fn store(text: &str) -> anyhow::Result<secrets::RemoteStore> {
        use super::stores::StoreSection;
        let section: StoreSection = toml::from_str(text)?;
        check_store("vault", section, Path::new("/etc/latch"))
    }

    fn store_err(text: &str) -> String {
        format!("{:#}", store(text).unwrap_err())
    }

    #[test]
    fn vault_stores_take_a_token_or_an_approle_not_both() {
        let base = "kind = \"vault-kv2\"\naddress = \"https://vault.example:8200\"\n";
        match store(&format!("{base}token_file = \"bao-token\"")).unwrap() {
            secrets::RemoteStore::VaultKv2 {
                auth: secrets::remote::VaultAuth::Token { file, .. },
                ..
            } => assert_eq!(file.unwrap(), Path::new("/etc/latch/bao-token")),
            other => panic!("{other:?}"),
        }
        let approle = format!(
            "{base}auth = \"approle\"\nrole_id = \"4468ac9e-7299\"\nsecret_id_secret = \"bao-sid\""
        );
        match store(&approle).unwrap() {
            secrets::RemoteStore::VaultKv2 {
                auth:
                    secrets::remote::VaultAuth::AppRole {
                        mount,
                        secret_id_secret,
                        ..
                    },
                ..
            } => assert_eq!(
                (mount.as_str(), secret_id_secret.as_str()),
                ("approle", "bao-sid")
            ),
            other => panic!("{other:?}"),
        }
        for (extra, says) in [
            (
                "auth = \"approle\"\nsecret_id_secret = \"s\"",
                "role_id is required",
            ),
            (
                "auth = \"approle\"\nrole_id = \"r\"",
                "secret_id_secret is required",
            ),
            (
                "auth = \"approle\"\nrole_id = \"r\"\nsecret_id_secret = \"s\"\ntoken_env = \"T\"",
                "no token_env",
            ),
            (
                "auth = \"approle\"\nrole_id = \"$(id)\"\nsecret_id_secret = \"s\"",
                "role_id",
            ),
            (
                "auth = \"approle\"\nrole_id = \"r\"\nsecret_id_secret = \"aws:x\"",
                "plain secret name",
            ),
            (
                "auth = \"approle\"\nrole_id = \"r\"\nsecret_id_secret = \"s\"\nauth_mount = \"../sys\"",
                "auth_mount",
            ),
            (
                "role_id = \"r\"",
                "role_id is a setting of auth = \"approle\"",
            ),
            ("auth = \"ldap\"", "use \"token\" or \"approle\""),
            ("token_env = \"A\"\ntoken_file = \"b\"", "not both"),
            (
                "region = \"us-east-1\"",
                "region is not a setting of a vault-kv2 store",
            ),
        ] {
            let e = store_err(&format!("{base}{extra}"));
            assert!(e.contains(says), "{extra}: {e}");
        }
    }
}
