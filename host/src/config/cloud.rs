//! `[integration.aws]` and `[integration.azure]`: what `cloud.aws` and `cloud.azure` may call,
//! and how the host reaches AWS and Azure (also for an `azure-key-vault` store's credential).

use super::*;

/// `[integration.aws]`: what `cloud.aws` may call, and how the host reaches AWS.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct AwsSection {
    #[serde(default)]
    pub(super) read: Vec<String>,
    #[serde(default)]
    pub(super) change: Vec<String>,
    #[serde(default)]
    pub(super) regions: Vec<String>,
    pub(super) endpoint: Option<String>,
    pub(super) profile: Option<String>,
}

/// `[integration.azure]`: what `cloud.azure` may read, and how the host gets a token.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct AzureSection {
    #[serde(default)]
    pub(super) subscriptions: Vec<String>,
    #[serde(default)]
    pub(super) resource_groups: Vec<String>,
    #[serde(default)]
    pub(super) providers: Vec<String>,
    /// What `$expand` may name (e.g. `instanceView`); none by default (`userData` holds
    /// bootstrap secrets).
    #[serde(default)]
    pub(super) expand: Vec<String>,
    /// `client-secret`, `workload-identity` or `managed-identity`.
    pub(super) credential: String,
    pub(super) tenant_id: Option<String>,
    pub(super) client_id: Option<String>,
    pub(super) client_secret: Option<String>,
    pub(super) endpoint: Option<String>,
    pub(super) authority: Option<String>,
    pub(super) identity_endpoint: Option<String>,
}

pub(super) fn check_azure(
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
pub(super) struct AzureCredentialFields<'a> {
    pub(super) audience: Option<&'a str>,
    pub(super) default_audience: &'a str,
    pub(super) authority: Option<&'a str>,
    pub(super) identity_endpoint: Option<&'a str>,
    pub(super) credential: &'a str,
    pub(super) tenant_id: Option<String>,
    pub(super) client_id: Option<String>,
    pub(super) client_secret: Option<String>,
}

pub(super) fn azure_settings(
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
