//! `[integration.aws]` and `[integration.azure]`: what `cloud.aws` and `cloud.azure` may
//! call, and how the host reaches AWS and Azure. [`azure_settings`] also reads an
//! `azure-key-vault` secret store's credential.

use anyhow::{Context as _, bail};
use serde::Deserialize;

use latch_cap::table::{Table, TableCx, TableSettings};

use crate::azure::{AzureCredential, AzureSettings};
use crate::{AwsPolicy, AzurePolicy};
use latch_cloud_auth::aws::AwsSettings;

/// The `cloud` capability's tables.
pub struct Cloud;

/// One integration's cloud settings: how the host reaches each cloud it has a table for.
#[derive(Clone, Debug, Default)]
pub struct CloudTables {
    /// `[integration.aws]`'s connection settings.
    pub aws: Option<AwsSettings>,
    /// `[integration.azure]`'s connection settings.
    pub azure: Option<AzureSettings>,
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

impl Table for Cloud {
    fn names(&self) -> &'static [&'static str] {
        &["aws", "azure"]
    }

    fn check(&self, cx: &mut TableCx<'_>) -> anyhow::Result<()> {
        let mut tables = CloudTables::default();
        if let Some(section) = cx.take::<AwsSection>("aws")? {
            let (bounds, settings) = check_aws(section)?;
            cx.policy = std::mem::take(&mut cx.policy).with(bounds);
            tables.aws = Some(settings);
        }
        if let Some(section) = cx.take::<AzureSection>("azure")? {
            let (bounds, settings) = check_azure(section).context("azure")?;
            cx.policy = std::mem::take(&mut cx.policy).with(bounds);
            tables.azure = Some(settings);
        }
        if tables.aws.is_some() || tables.azure.is_some() {
            cx.settings.insert(tables);
        }
        Ok(())
    }
}

fn check_aws(section: AwsSection) -> anyhow::Result<(AwsPolicy, AwsSettings)> {
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
    Ok((bounds, settings))
}

fn check_azure(s: AzureSection) -> anyhow::Result<(AzurePolicy, AzureSettings)> {
    let policy = AzurePolicy::parse(&s.subscriptions, &s.resource_groups, &s.providers)
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

impl TableSettings for CloudTables {
    /// The Azure client secret is the host's: no guest may read it.
    fn held_secrets(&self) -> Vec<(String, &'static str)> {
        match self.azure.as_ref().map(|a| &a.credential) {
            Some(AzureCredential::ClientSecret { secret, .. }) => {
                vec![(secret.clone(), "Azure client secret")]
            }
            _ => Vec::new(),
        }
    }

    fn clone_box(&self) -> Box<dyn TableSettings> {
        Box::new(self.clone())
    }
}

/// What an Azure credential is made of, as `[integration.azure]` and an `azure-key-vault`
/// store write it.
pub struct AzureCredentialFields<'a> {
    /// `endpoint` (the token's audience), if set.
    pub audience: Option<&'a str>,
    /// The audience when `endpoint` is not set.
    pub default_audience: &'a str,
    /// `authority`, if set.
    pub authority: Option<&'a str>,
    /// `identity_endpoint`, if set.
    pub identity_endpoint: Option<&'a str>,
    /// `credential`.
    pub credential: &'a str,
    /// `tenant_id`.
    pub tenant_id: Option<String>,
    /// `client_id`.
    pub client_id: Option<String>,
    /// `client_secret` (a secret's name).
    pub client_secret: Option<String>,
}

/// Check an Azure credential's fields of `table`.
pub fn azure_settings(table: &str, f: AzureCredentialFields<'_>) -> anyhow::Result<AzureSettings> {
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
            latch_secret_store::check_name(&secret)
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
