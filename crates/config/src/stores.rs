//! `[secrets]` and `[secrets.stores.NAME]`: the secret managers the host reads from, checked
//! into [`latch_caps::secrets::RemoteStore`]s.

use super::*;
use latch_caps::cloud::live::AwsSettings;
use latch_caps::cloud::table::{AzureCredentialFields, azure_settings};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct SecretsSection {
    pub(super) dir: Option<PathBuf>,
    pub(super) env_prefix: Option<String>,
    #[serde(default)]
    pub(super) stores: std::collections::BTreeMap<String, StoreSection>,
}

/// `[secrets.stores.NAME]`: one secret manager.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct StoreSection {
    /// `vault-kv2`, `aws-secrets-manager`, `azure-key-vault` or `gcp-secret-manager`.
    pub(super) kind: String,
    pub(super) address: Option<String>,
    pub(super) mount: Option<String>,
    pub(super) token_env: Option<String>,
    pub(super) token_file: Option<PathBuf>,
    pub(super) auth: Option<String>,
    pub(super) auth_mount: Option<String>,
    pub(super) role_id: Option<String>,
    pub(super) secret_id_secret: Option<String>,
    pub(super) region: Option<String>,
    pub(super) endpoint: Option<String>,
    pub(super) profile: Option<String>,
    pub(super) vault: Option<String>,
    pub(super) credential: Option<String>,
    pub(super) tenant_id: Option<String>,
    pub(super) client_id: Option<String>,
    pub(super) client_secret: Option<String>,
    pub(super) authority: Option<String>,
    pub(super) identity_endpoint: Option<String>,
    pub(super) resource: Option<String>,
    pub(super) project: Option<String>,
    pub(super) key_secret: Option<String>,
    pub(super) token_endpoint: Option<String>,
    pub(super) metadata_endpoint: Option<String>,
}

/// A token endpoint's URL: its origin as [`AwsSettings::parse_endpoint`] allows (https, or
/// http to loopback), a path, no query, no user info.
pub(super) fn token_url(text: &str) -> anyhow::Result<reqwest::Url> {
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

pub(super) fn check_store(
    name: &str,
    s: StoreSection,
    base: &Path,
) -> anyhow::Result<secrets::RemoteStore> {
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
            if !latch_caps::cloud::is_region(&region) {
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
