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

use crate::caps::Policy;
use crate::caps::cloud::AwsPolicy;
use crate::caps::cloud::live::AwsSettings;
use crate::caps::ldap::live::LdapSettings;
use crate::caps::secrets;
use crate::caps::ssh::client::SshSettings;
use crate::caps::winrm::pool::WinrmSettings;
use crate::caps::winrm::transport::AuthMethod;
use crate::runtime::{CredentialKind, Lifecycle, Limits, RuntimeConfig};

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
    /// How the host reaches its servers over SSH, if it does.
    pub ssh: Option<SshSettings>,
    /// `[integration.winrm]`'s transport settings (defaults when the table has none).
    pub winrm: WinrmSettings,
    /// `[integration.ldap]`'s connection settings, if it has the table.
    pub ldap: Option<LdapSettings>,
    /// `[integration.aws]`'s connection settings, if it has the table.
    pub aws: Option<AwsSettings>,
    /// `[integration.azure]`'s connection settings, if it has the table.
    pub azure: Option<crate::caps::cloud::azure::AzureSettings>,
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

/// `[integration.password]`: the passwords the host generates for integrations whose
/// credential is a password. Always upper- and lower-case letters, digits and symbols, at
/// least one of each (Active Directory's complexity rule asks for three of the four).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PasswordRules {
    /// Characters, 16 to 128 (default 24).
    pub length: usize,
    /// The symbols it may use (default `!#%+-.:=?@_~`: none that a shell, a PowerShell
    /// string or an `.rdp` file would treat specially).
    pub symbols: String,
}

impl Default for PasswordRules {
    fn default() -> Self {
        PasswordRules {
            length: 24,
            symbols: "!#%+-.:=?@_~".into(),
        }
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
                bail!(
                    "the guest names secret {name:?} as its service credential, but latch.toml \
                     lends this integration none: a guest never chooses a secret. Set \
                     [integration.ssh] key_secret, or [integration.winrm] / [integration.ldap] \
                     password_secret, to the secret you mean it to use"
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
            let mut configured = Vec::new();
            if let Some(ssh) = &self.ssh
                && let Some(u) = &ssh.default_user
            {
                configured.push(("[integration.ssh] user", u.clone()));
            }
            if let Some(u) = &self.winrm.default_user {
                configured.push(("[integration.winrm] user", u.clone()));
            }
            if let Some(ldap) = &self.ldap
                && let Some(u) = &ldap.default_user
            {
                configured.push(("[integration.ldap] user", u.clone()));
            }
            if let Some((field, u)) = configured.iter().find(|(_, u)| !same(u)) {
                bail!(
                    "the guest names {user:?} as its service account, but latch.toml sets \
                     {field} = {u:?}: a guest may not choose another account. Make them the same, \
                     or remove the guest's setting"
                );
            }
            if let Some(ssh) = self.ssh.as_mut() {
                ssh.default_user.get_or_insert_with(|| user.clone());
            }
            self.winrm.default_user.get_or_insert_with(|| user.clone());
            if let Some(ldap) = self.ldap.as_mut() {
                ldap.default_user.get_or_insert_with(|| user.clone());
            }
        }
        if lifecycle.default_permission.is_empty() || lifecycle.default_permission.len() > 256 {
            bail!("the guest's default permission must be 1 to 256 bytes");
        }
        self.lifecycle = lifecycle;
        self.credential = credential;
        Ok(())
    }

    /// The secrets `latch.toml` lends this integration as its service credential, with the
    /// field naming each: the only secrets its transports log in with, and the only ones a
    /// rotation of it may rewrite.
    pub fn service_secrets(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if let Some(ssh) = &self.ssh {
            out.push(("[integration.ssh] key_secret", ssh.key_secret.clone()));
        }
        if let Some(s) = &self.winrm.password_secret {
            out.push(("[integration.winrm] password_secret", s.clone()));
        }
        if let Some(s) = self.ldap.as_ref().and_then(|l| l.password_secret.clone()) {
            out.push(("[integration.ldap] password_secret", s));
        }
        out
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

/// `[api]`: how `latch serve` speaks to callers.
#[derive(Clone, Debug, Default)]
pub struct ApiSettings {
    /// The certificate chain and private key files (PEM) of the API's TLS; reloaded when
    /// they change.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Plain HTTP on a non-loopback address, on purpose (warned at every start).
    pub insecure_http: bool,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ApiSection {
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    #[serde(default)]
    insecure_http: bool,
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
    #[serde(default, rename = "integration")]
    integrations: Vec<IntegrationSection>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct AuditSection {
    forward_file: Option<PathBuf>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SecretsSection {
    dir: Option<PathBuf>,
    env_prefix: Option<String>,
    #[serde(default)]
    stores: std::collections::BTreeMap<String, StoreSection>,
}

/// `[secrets.stores.NAME]`: one secret manager.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StoreSection {
    /// `vault-kv2`, `aws-secrets-manager`, `azure-key-vault` or `gcp-secret-manager`.
    kind: String,
    address: Option<String>,
    mount: Option<String>,
    token_env: Option<String>,
    token_file: Option<PathBuf>,
    auth: Option<String>,
    auth_mount: Option<String>,
    role_id: Option<String>,
    secret_id_secret: Option<String>,
    region: Option<String>,
    endpoint: Option<String>,
    profile: Option<String>,
    vault: Option<String>,
    credential: Option<String>,
    tenant_id: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    authority: Option<String>,
    identity_endpoint: Option<String>,
    resource: Option<String>,
    project: Option<String>,
    key_secret: Option<String>,
    token_endpoint: Option<String>,
    metadata_endpoint: Option<String>,
}

/// A token endpoint's URL: its origin as [`AwsSettings::parse_endpoint`] allows (https, or
/// http to loopback), a path, no query, no user info.
fn token_url(text: &str) -> anyhow::Result<reqwest::Url> {
    let url = reqwest::Url::parse(text).with_context(|| format!("{text:?} is not a URL"))?;
    AwsSettings::parse_endpoint(&url.origin().ascii_serialization()).map_err(anyhow::Error::msg)?;
    if url.query().is_some()
        || url.fragment().is_some()
        || !url.username().is_empty()
        || url.password().is_some()
    {
        bail!("{text:?}: no query, fragment, user or password");
    }
    Ok(url)
}

fn check_store(name: &str, s: StoreSection, base: &Path) -> anyhow::Result<secrets::RemoteStore> {
    let ok_name = !name.is_empty()
        && name.len() <= 32
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !ok_name {
        bail!("store name {name:?}: use 1 to 32 of [A-Za-z0-9_-]");
    }
    let set = [
        ("address", s.address.is_some()),
        ("mount", s.mount.is_some()),
        ("token_env", s.token_env.is_some()),
        ("token_file", s.token_file.is_some()),
        ("auth", s.auth.is_some()),
        ("auth_mount", s.auth_mount.is_some()),
        ("role_id", s.role_id.is_some()),
        ("secret_id_secret", s.secret_id_secret.is_some()),
        ("region", s.region.is_some()),
        ("endpoint", s.endpoint.is_some()),
        ("profile", s.profile.is_some()),
        ("vault", s.vault.is_some()),
        ("credential", s.credential.is_some()),
        ("tenant_id", s.tenant_id.is_some()),
        ("client_id", s.client_id.is_some()),
        ("client_secret", s.client_secret.is_some()),
        ("authority", s.authority.is_some()),
        ("identity_endpoint", s.identity_endpoint.is_some()),
        ("resource", s.resource.is_some()),
        ("project", s.project.is_some()),
        ("key_secret", s.key_secret.is_some()),
        ("token_endpoint", s.token_endpoint.is_some()),
        ("metadata_endpoint", s.metadata_endpoint.is_some()),
    ];
    let allowed: &[&str] = match s.kind.as_str() {
        "vault-kv2" => &[
            "address",
            "mount",
            "auth",
            "token_env",
            "token_file",
            "auth_mount",
            "role_id",
            "secret_id_secret",
        ],
        "aws-secrets-manager" => &["region", "endpoint", "profile"],
        "azure-key-vault" => &[
            "vault",
            "credential",
            "tenant_id",
            "client_id",
            "client_secret",
            "authority",
            "identity_endpoint",
            "resource",
        ],
        "gcp-secret-manager" => &[
            "project",
            "credential",
            "key_secret",
            "endpoint",
            "token_endpoint",
            "metadata_endpoint",
        ],
        other => bail!(
            "kind {other:?}: use vault-kv2, aws-secrets-manager, azure-key-vault or \
             gcp-secret-manager"
        ),
    };
    for (field, is_set) in set {
        if is_set && !allowed.contains(&field) {
            bail!("{field} is not a setting of a {} store", s.kind);
        }
    }
    let url = |field: &str, v: &str| -> anyhow::Result<reqwest::Url> {
        AwsSettings::parse_endpoint(v.trim_end_matches('/'))
            .map_err(anyhow::Error::msg)
            .with_context(|| field.to_string())
    };
    let plain_secret = |field: &str, v: &str| -> anyhow::Result<()> {
        if v.contains(':') {
            bail!("{field} must be a plain secret name (directory or environment), not a store's");
        }
        secrets::check_name(v)
            .map_err(anyhow::Error::msg)
            .with_context(|| field.to_string())
    };
    match s.kind.as_str() {
        "vault-kv2" => {
            let address = url(
                "address",
                s.address.as_deref().context("address is required")?,
            )?;
            let mount = s.mount.unwrap_or_else(|| "secret".into());
            secrets::remote::check_path(&mount)
                .map_err(anyhow::Error::msg)
                .context("mount")?;
            let auth = match s.auth.as_deref().unwrap_or("token") {
                "token" => {
                    for (field, set) in [
                        ("auth_mount", s.auth_mount.is_some()),
                        ("role_id", s.role_id.is_some()),
                        ("secret_id_secret", s.secret_id_secret.is_some()),
                    ] {
                        if set {
                            bail!("{field} is a setting of auth = \"approle\"");
                        }
                    }
                    if s.token_env.is_some() && s.token_file.is_some() {
                        bail!("set token_env or token_file, not both");
                    }
                    secrets::remote::VaultAuth::Token {
                        env: s.token_env,
                        file: s.token_file.map(|f| base.join(f)),
                    }
                }
                "approle" => {
                    if s.token_env.is_some() || s.token_file.is_some() {
                        bail!(
                            "auth = \"approle\" logs in for its token: no token_env or token_file"
                        );
                    }
                    let role_id = s
                        .role_id
                        .context("role_id is required with auth = \"approle\"")?;
                    let id_ok = !role_id.is_empty()
                        && role_id.len() <= 128
                        && role_id
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
                    if !id_ok {
                        bail!("role_id {role_id:?}: use 1 to 128 of [A-Za-z0-9._-]");
                    }
                    let secret_id_secret = s
                        .secret_id_secret
                        .context("secret_id_secret is required with auth = \"approle\"")?;
                    plain_secret("secret_id_secret", &secret_id_secret)?;
                    let auth_mount = s.auth_mount.unwrap_or_else(|| "approle".into());
                    secrets::remote::check_path(&auth_mount)
                        .map_err(anyhow::Error::msg)
                        .context("auth_mount")?;
                    secrets::remote::VaultAuth::AppRole {
                        mount: auth_mount,
                        role_id,
                        secret_id_secret,
                    }
                }
                other => bail!("auth {other:?}: use \"token\" or \"approle\""),
            };
            Ok(secrets::RemoteStore::VaultKv2 {
                address,
                mount,
                auth,
            })
        }
        "aws-secrets-manager" => {
            let region = s.region.context("region is required")?;
            if !crate::caps::cloud::is_region(&region) {
                bail!("region {region:?} is not a region name");
            }
            let endpoint = s
                .endpoint
                .as_deref()
                .map(|e| url("endpoint", e))
                .transpose()?;
            Ok(secrets::RemoteStore::AwsSecretsManager {
                region,
                settings: AwsSettings {
                    endpoint,
                    profile: s.profile,
                },
            })
        }
        "azure-key-vault" => {
            let vault = url("vault", s.vault.as_deref().context("vault is required")?)?;
            if let Some(secret) = &s.client_secret {
                plain_secret("client_secret", secret)?;
            }
            let settings = azure_settings(
                "store",
                AzureCredentialFields {
                    audience: s.resource.as_deref(),
                    default_audience: "https://vault.azure.net",
                    authority: s.authority.as_deref(),
                    identity_endpoint: s.identity_endpoint.as_deref(),
                    credential: s.credential.as_deref().context("credential is required")?,
                    tenant_id: s.tenant_id,
                    client_id: s.client_id,
                    client_secret: s.client_secret,
                },
            )?;
            Ok(secrets::RemoteStore::AzureKeyVault { vault, settings })
        }
        _ => {
            let project = s.project.context("project is required")?;
            let project_ok = (6..=30).contains(&project.len())
                && project
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !project_ok {
                bail!("project {project:?} is not a GCP project id");
            }
            let endpoint = url(
                "endpoint",
                s.endpoint
                    .as_deref()
                    .unwrap_or("https://secretmanager.googleapis.com"),
            )?;
            let credential = match s.credential.as_deref() {
                Some("service-account-key") => {
                    if s.metadata_endpoint.is_some() {
                        bail!("metadata_endpoint is for credential = \"metadata\"");
                    }
                    let secret = s
                        .key_secret
                        .context("key_secret (the secret holding the key JSON) is required")?;
                    plain_secret("key_secret", &secret)?;
                    secrets::remote::GcpCredential::ServiceAccountKey {
                        secret,
                        token_endpoint: s
                            .token_endpoint
                            .as_deref()
                            .map(token_url)
                            .transpose()
                            .context("token_endpoint")?,
                    }
                }
                Some("metadata") => {
                    if s.key_secret.is_some() || s.token_endpoint.is_some() {
                        bail!("key_secret and token_endpoint are for service-account-key");
                    }
                    // The metadata server is plain HTTP on a link-local name, by GCP's design.
                    let endpoint = match s.metadata_endpoint.as_deref() {
                        None | Some("http://metadata.google.internal") => {
                            reqwest::Url::parse("http://metadata.google.internal/").expect("a URL")
                        }
                        Some(other) => url("metadata_endpoint", other)?,
                    };
                    secrets::remote::GcpCredential::Metadata { endpoint }
                }
                other => bail!("credential {other:?}: use service-account-key or metadata"),
            };
            Ok(secrets::RemoteStore::GcpSecretManager {
                project,
                endpoint,
                credential,
            })
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SshSection {
    key_secret: String,
    user: Option<String>,
    known_hosts: Option<PathBuf>,
    #[serde(default)]
    trust_on_first_use: bool,
    connect_timeout: Option<String>,
    command_timeout: Option<String>,
    idle_timeout: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PasswordSection {
    length: Option<usize>,
    symbols: Option<String>,
}

/// `[integration.aws]`: what `cloud.aws` may call, and how the host reaches AWS.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct AwsSection {
    #[serde(default)]
    read: Vec<String>,
    #[serde(default)]
    change: Vec<String>,
    #[serde(default)]
    regions: Vec<String>,
    endpoint: Option<String>,
    profile: Option<String>,
}

/// `[integration.azure]`: what `cloud.azure` may read, and how the host gets a token.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct AzureSection {
    #[serde(default)]
    subscriptions: Vec<String>,
    #[serde(default)]
    resource_groups: Vec<String>,
    #[serde(default)]
    providers: Vec<String>,
    /// What `$expand` may name (e.g. `instanceView`); none by default (`userData` holds
    /// bootstrap secrets).
    #[serde(default)]
    expand: Vec<String>,
    /// `client-secret`, `workload-identity` or `managed-identity`.
    credential: String,
    tenant_id: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    endpoint: Option<String>,
    authority: Option<String>,
    identity_endpoint: Option<String>,
}

fn check_azure(
    s: AzureSection,
) -> anyhow::Result<(
    crate::caps::cloud::AzurePolicy,
    crate::caps::cloud::azure::AzureSettings,
)> {
    let policy =
        crate::caps::cloud::AzurePolicy::parse(&s.subscriptions, &s.resource_groups, &s.providers)
            .and_then(|p| p.with_expand(&s.expand))
            .map_err(anyhow::Error::msg)?;
    let settings = azure_settings(
        "azure",
        AzureCredentialFields {
            audience: s.endpoint.as_deref(),
            default_audience: "https://management.azure.com",
            authority: s.authority.as_deref(),
            identity_endpoint: s.identity_endpoint.as_deref(),
            credential: &s.credential,
            tenant_id: s.tenant_id,
            client_id: s.client_id,
            client_secret: s.client_secret,
        },
    )?;
    Ok((policy, settings))
}

/// What an Azure credential is made of, as `[integration.azure]` and an `azure-key-vault`
/// store write it.
struct AzureCredentialFields<'a> {
    audience: Option<&'a str>,
    default_audience: &'a str,
    authority: Option<&'a str>,
    identity_endpoint: Option<&'a str>,
    credential: &'a str,
    tenant_id: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

fn azure_settings(
    table: &str,
    f: AzureCredentialFields<'_>,
) -> anyhow::Result<crate::caps::cloud::azure::AzureSettings> {
    use crate::caps::cloud::azure::{AzureCredential, AzureSettings};
    let url = |field: &str, v: Option<&str>, default: &str| -> anyhow::Result<reqwest::Url> {
        AwsSettings::parse_endpoint(v.unwrap_or(default).trim_end_matches('/'))
            .map_err(anyhow::Error::msg)
            .with_context(|| format!("{table}.{field}"))
    };
    let endpoint = url("endpoint", f.audience, f.default_audience)?;
    let authority = url(
        "authority",
        f.authority,
        "https://login.microsoftonline.com",
    )?;
    // The metadata endpoint is plain HTTP on a link-local address, by Azure's design.
    let identity_endpoint = match f.identity_endpoint {
        None | Some("http://169.254.169.254") => {
            reqwest::Url::parse("http://169.254.169.254/").expect("a URL")
        }
        Some(other) => url("identity_endpoint", Some(other), "")?,
    };
    let is_id = |v: &str| {
        v.len() == 36
            && v.bytes().enumerate().all(|(i, b)| {
                if [8, 13, 18, 23].contains(&i) {
                    b == b'-'
                } else {
                    b.is_ascii_hexdigit()
                }
            })
    };
    let credential = match f.credential {
        "client-secret" => {
            let tenant_id = f
                .tenant_id
                .with_context(|| format!("{table}.tenant_id is required for client-secret"))?;
            let client_id = f
                .client_id
                .with_context(|| format!("{table}.client_id is required for client-secret"))?;
            let secret = f.client_secret.with_context(|| {
                format!("{table}.client_secret (the secret's name) is required for client-secret")
            })?;
            if !is_id(&tenant_id) || !is_id(&client_id) {
                bail!("{table}.tenant_id and {table}.client_id must be GUIDs");
            }
            secrets::check_name(&secret)
                .map_err(anyhow::Error::msg)
                .with_context(|| format!("{table}.client_secret"))?;
            AzureCredential::ClientSecret {
                tenant_id,
                client_id,
                secret,
            }
        }
        "workload-identity" => {
            if f.tenant_id.is_some() || f.client_id.is_some() || f.client_secret.is_some() {
                bail!("workload-identity takes its ids from AZURE_TENANT_ID and AZURE_CLIENT_ID");
            }
            AzureCredential::WorkloadIdentity
        }
        "managed-identity" => {
            if f.tenant_id.is_some() || f.client_secret.is_some() {
                bail!("managed-identity takes no tenant_id or client_secret");
            }
            if let Some(id) = &f.client_id
                && !is_id(id)
            {
                bail!("{table}.client_id must be a GUID");
            }
            AzureCredential::ManagedIdentity {
                client_id: f.client_id,
            }
        }
        other => bail!(
            "{table}.credential {other:?}: use client-secret, workload-identity or managed-identity"
        ),
    };
    Ok(AzureSettings {
        endpoint,
        authority,
        identity_endpoint,
        credential,
    })
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct LdapSection {
    /// Moved to `[integration.directory]` (read as an error that says so).
    read: Option<toml::Value>,
    /// Moved to `[integration.directory]`.
    change: Option<toml::Value>,
    /// Moved to `[integration.directory]`.
    groups: Option<toml::Value>,
    user: Option<String>,
    password_secret: Option<String>,
    ca_file: Option<PathBuf>,
    #[serde(default)]
    starttls: bool,
    connect_timeout: Option<String>,
    operation_timeout: Option<String>,
    idle_timeout: Option<String>,
}

/// `[integration.directory]`: what the integration may touch in its directory, on every
/// transport (`ldap.*` and the AD cmdlets over WinRM).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct DirectorySection {
    #[serde(default)]
    read: Vec<String>,
    #[serde(default)]
    change: Vec<String>,
    #[serde(default)]
    groups: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct WinrmSection {
    #[serde(default)]
    read: Vec<String>,
    #[serde(default)]
    change: Vec<String>,
    user: Option<String>,
    password_secret: Option<String>,
    auth: Option<String>,
    ca_file: Option<PathBuf>,
    https_ports: Option<Vec<u16>>,
    #[serde(default)]
    allow_unencrypted: bool,
    connect_timeout: Option<String>,
    command_timeout: Option<String>,
    idle_timeout: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RuntimeSection {
    max_concurrent_calls: Option<u32>,
    max_memory: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
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
    ssh: Option<SshSection>,
    winrm: Option<WinrmSection>,
    ldap: Option<LdapSection>,
    directory: Option<DirectorySection>,
    aws: Option<AwsSection>,
    azure: Option<AzureSection>,
    password: Option<PasswordSection>,
    #[serde(default)]
    config: toml::Table,
}

/// `[api]`: beyond loopback the API speaks TLS, or plain HTTP only when the operator says so
/// (bearer tokens, and the private keys and passwords grants deliver, would cross a network
/// in clear).
fn check_api(
    s: ApiSection,
    listen: &std::net::SocketAddr,
    data_dir: &Path,
) -> anyhow::Result<ApiSettings> {
    let tls = match (s.tls_cert, s.tls_key) {
        (Some(c), Some(k)) => Some((data_dir.join(c), data_dir.join(k))),
        (None, None) => None,
        _ => bail!("set both tls_cert and tls_key (PEM files), or neither"),
    };
    if tls.is_some() && s.insecure_http {
        bail!("insecure_http = true and TLS at once: choose one");
    }
    if tls.is_none() && !s.insecure_http && !listen.ip().is_loopback() {
        bail!(
            "listen {listen} is not a loopback address: the API carries bearer tokens and the \
             private keys and passwords grants deliver, so beyond loopback it speaks TLS — set \
             [api] tls_cert and tls_key — or, knowingly, insecure_http = true (warned at \
             every start)"
        );
    }
    Ok(ApiSettings {
        tls,
        insecure_http: s.insecure_http,
    })
}

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
        crate::caps::certs::ca::CA_SECRET.to_string(),
        "the user CA's private key".to_string(),
    )];
    for ic in integrations {
        for (field, name) in ic.service_secrets() {
            held.push((
                name,
                format!("integration {:?}'s service credential ({field})", ic.name),
            ));
        }
        if let Some(azure) = &ic.azure
            && let crate::caps::cloud::azure::AzureCredential::ClientSecret { secret, .. } =
                &azure.credential
        {
            held.push((
                secret.clone(),
                format!("integration {:?}'s Azure client secret", ic.name),
            ));
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
            if secrets::same_secret(&name, crate::caps::certs::ca::CA_SECRET) {
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
    let winrm = s.winrm.unwrap_or_default();
    let policy = Policy::parse(&s.allow, &s.secrets)
        .and_then(|p| p.with_cmdlets(&winrm.read, &winrm.change))
        .map_err(anyhow::Error::msg)?;
    if s.directory.is_none()
        && let Some(c) = winrm.read.iter().chain(&winrm.change).find(|c| {
            crate::caps::winrm::catalog::catalog()
                .get(c)
                .is_some_and(|e| e.names_directory_objects())
        })
    {
        bail!(
            "winrm lends {c}, which names directory objects: set [integration.directory] read, \
             change and groups (the bounds hold on WinRM as on LDAP)"
        );
    }
    let winrm = check_winrm(winrm, data_dir).context("winrm")?;
    let policy = match &s.directory {
        Some(d) => policy.with_directory(
            crate::caps::directory::Bases::parse(&d.read, &d.change, &d.groups)
                .map_err(anyhow::Error::msg)?,
        ),
        None => policy,
    };
    let ldap = match s.ldap {
        Some(section) => {
            for (field, set) in [
                ("read", section.read.is_some()),
                ("change", section.change.is_some()),
                ("groups", section.groups.is_some()),
            ] {
                if set {
                    bail!(
                        "ldap.{field} moved to [integration.directory] {field}: the directory \
                         bounds hold on every transport (LDAP and the AD cmdlets over WinRM)"
                    );
                }
            }
            if s.directory.is_none() {
                bail!(
                    "[integration.ldap] lends nothing without [integration.directory]: set its \
                     read, change and groups (the subtrees the guest may touch)"
                );
            }
            Some(check_ldap(section, data_dir).context("ldap")?)
        }
        None => None,
    };
    let (policy, aws) = match s.aws {
        Some(section) => {
            let bounds = AwsPolicy::parse(&section.read, &section.change, &section.regions)
                .map_err(anyhow::Error::msg)?;
            let endpoint = section
                .endpoint
                .as_deref()
                .map(AwsSettings::parse_endpoint)
                .transpose()
                .map_err(anyhow::Error::msg)
                .context("aws.endpoint")?;
            if let Some(p) = &section.profile
                && (p.is_empty()
                    || p.len() > 64
                    || !p
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)))
            {
                bail!("aws.profile {p:?}: use 1 to 64 of [A-Za-z0-9._-]");
            }
            let settings = AwsSettings {
                endpoint,
                profile: section.profile,
            };
            (policy.with_aws(bounds), Some(settings))
        }
        None => (policy, None),
    };
    let (policy, azure) = match s.azure {
        Some(section) => {
            let (bounds, settings) = check_azure(section).context("azure")?;
            (policy.with_azure(bounds), Some(settings))
        }
        None => (policy, None),
    };
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
    let ssh = match s.ssh {
        Some(ssh) => Some(check_ssh(ssh, data_dir).context("ssh")?),
        None => None,
    };
    let password = check_password(s.password.unwrap_or_default()).context("password")?;
    Ok(IntegrationConfig {
        name: s.name,
        guest: base.join(s.guest),
        sha256,
        policy,
        limits,
        config_json,
        ssh,
        winrm,
        ldap,
        aws,
        azure,
        max_duration,
        lifecycle: no_lifecycle(),
        credential: CredentialKind::None,
        password,
    })
}

fn check_password(p: PasswordSection) -> anyhow::Result<PasswordRules> {
    let mut rules = PasswordRules::default();
    if let Some(length) = p.length {
        if !(16..=128).contains(&length) {
            bail!("length must be 16 to 128, not {length}");
        }
        rules.length = length;
    }
    if let Some(symbols) = p.symbols {
        let ok = !symbols.is_empty()
            && symbols.len() <= 32
            && symbols
                .bytes()
                .all(|b| b.is_ascii_punctuation() && !b"'\"`$\\".contains(&b));
        if !ok {
            bail!(
                "symbols must be 1 to 32 ASCII punctuation characters, none of ' \" ` $ \\, \
                 not {symbols:?}"
            );
        }
        rules.symbols = symbols;
    }
    Ok(rules)
}

/// The `[integration.ssh]` table. `key_secret` is the one secret its SSH logins use: a guest
/// config's `user_key_name` (as the product we mirror names it) must name the same secret.
fn check_ssh(s: SshSection, data_dir: &Path) -> anyhow::Result<SshSettings> {
    let key_secret = s.key_secret;
    if let Some(user) = &s.user {
        crate::caps::certs::check_account_name("user", user).map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    secrets::check_name(&key_secret)
        .map_err(anyhow::Error::msg)
        .context("key_secret")?;
    let timeout = |v: &Option<String>, default: u64, field: &str| -> anyhow::Result<Duration> {
        match v {
            Some(t) => parse_duration(t).with_context(|| field.to_string()),
            None => Ok(Duration::from_secs(default)),
        }
    };
    Ok(SshSettings {
        key_secret,
        default_user: s.user,
        known_hosts: data_dir.join(
            s.known_hosts
                .unwrap_or_else(|| PathBuf::from("known_hosts")),
        ),
        trust_on_first_use: s.trust_on_first_use,
        connect_timeout: timeout(&s.connect_timeout, 10, "connect_timeout")?,
        command_timeout: timeout(&s.command_timeout, 60, "command_timeout")?,
        idle_timeout: timeout(&s.idle_timeout, 60, "idle_timeout")?,
    })
}

/// The `[integration.ldap]` table's connection settings (its bases go to the policy).
fn check_ldap(s: LdapSection, data_dir: &Path) -> anyhow::Result<LdapSettings> {
    let tls = match &s.ca_file {
        Some(ca) => crate::caps::winrm::transport::tls_config(Some(&data_dir.join(ca))),
        None => crate::caps::winrm::transport::tls_config(None),
    }
    .map_err(anyhow::Error::msg)
    .context("ca_file")?;
    let mut l = LdapSettings::with_tls(std::sync::Arc::new(tls));
    l.ca_file = s.ca_file.map(|ca| data_dir.join(ca));
    if let Some(user) = s.user {
        if crate::caps::directory::dn::Dn::parse(&user).is_err() {
            check_windows_account(&user)
                .context("user (an account name, user@domain, DOMAIN\\user or a DN)")?;
        }
        l.default_user = Some(user);
    }
    if let Some(name) = s.password_secret {
        secrets::check_name(&name)
            .map_err(anyhow::Error::msg)
            .context("password_secret")?;
        l.password_secret = Some(name);
    }
    l.starttls = s.starttls;
    if let Some(t) = &s.connect_timeout {
        l.connect_timeout = parse_duration(t).context("connect_timeout")?;
    }
    if let Some(t) = &s.operation_timeout {
        l.operation_timeout = parse_duration(t).context("operation_timeout")?;
    }
    if let Some(t) = &s.idle_timeout {
        l.idle_timeout = parse_duration(t).context("idle_timeout")?;
    }
    Ok(l)
}

/// The `[integration.winrm]` table's transport settings.
fn check_winrm(s: WinrmSection, data_dir: &Path) -> anyhow::Result<WinrmSettings> {
    let mut w = WinrmSettings::defaults().map_err(anyhow::Error::msg)?;
    if let Some(user) = s.user {
        check_windows_account(&user).context("user")?;
        w.default_user = Some(user);
    }
    if let Some(name) = s.password_secret {
        secrets::check_name(&name)
            .map_err(anyhow::Error::msg)
            .context("password_secret")?;
        w.password_secret = Some(name);
    }
    w.transport.auth = match s.auth.as_deref() {
        None | Some("ntlm") => AuthMethod::Ntlm,
        Some("basic") => AuthMethod::Basic,
        Some(other) => bail!("auth must be \"ntlm\" or \"basic\", not {other:?}"),
    };
    if let Some(ports) = s.https_ports {
        if ports.contains(&0) {
            bail!("https_ports: 0 is not a port");
        }
        w.https_ports = ports;
    }
    if let Some(ca) = s.ca_file {
        let ca = data_dir.join(ca);
        let tls = crate::caps::winrm::transport::tls_config(Some(&ca))
            .map_err(anyhow::Error::msg)
            .context("ca_file")?;
        w.transport.tls = std::sync::Arc::new(tls);
        w.ca_file = Some(ca);
    }
    w.transport.allow_unencrypted = s.allow_unencrypted;
    if let Some(t) = &s.connect_timeout {
        w.transport.connect_timeout = parse_duration(t).context("connect_timeout")?;
    }
    if let Some(t) = &s.command_timeout {
        w.command_timeout = parse_duration(t).context("command_timeout")?;
        w.transport.request_timeout = w.command_timeout;
    }
    if let Some(t) = &s.idle_timeout {
        w.idle_timeout = parse_duration(t).context("idle_timeout")?;
    }
    Ok(w)
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
        bail!("{name:?} is not a Windows account name (user, DOMAIN\\user or user@domain)");
    }
    Ok(())
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

/// Parse a positive duration such as `90s`, `15m`, `8h` or `1h 30m`.
pub fn parse_duration(text: &str) -> anyhow::Result<Duration> {
    let d = humantime::parse_duration(text.trim())
        .map_err(|e| anyhow::anyhow!("{text:?} is not a duration like 90s, 15m or 8h: {e}"))?;
    if d.is_zero() {
        bail!("duration {text:?} must be more than zero");
    }
    Ok(d)
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
