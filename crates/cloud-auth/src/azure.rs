//! Azure tokens: Microsoft Entra ID for a service principal's **client secret** (read from
//! the secret store at each fetch), **workload identity** (a federated token file, as AKS
//! projects it) or a **managed identity** (the instance metadata endpoint). Used by the
//! `cloud.azure` capability (Resource Manager) and the Key Vault secret store.

use std::time::Duration;

use latch_secret::{Secret, SecretSource};

use crate::answer::{Failure, read, transport_error};
use crate::sigv4::uri_encode;

/// How the host authenticates to Azure.
#[derive(Clone, Debug)]
pub enum AzureCredential {
    /// A service principal's client secret, from the secret store.
    ClientSecret {
        /// Directory (tenant) id.
        tenant_id: String,
        /// Application (client) id.
        client_id: String,
        /// The secret's name in the store.
        secret: String,
    },
    /// Workload identity: `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, `AZURE_FEDERATED_TOKEN_FILE`
    /// (and `AZURE_AUTHORITY_HOST`) from the environment, as AKS sets them.
    WorkloadIdentity,
    /// The managed identity of the machine (its instance metadata endpoint).
    ManagedIdentity {
        /// A user-assigned identity's client id; `None`: the system-assigned one.
        client_id: Option<String>,
    },
}

/// `[integration.azure]`'s connection settings.
#[derive(Clone, Debug)]
pub struct AzureSettings {
    /// Resource Manager (`https://management.azure.com`).
    pub endpoint: reqwest::Url,
    /// Entra ID (`https://login.microsoftonline.com`).
    pub authority: reqwest::Url,
    /// The instance metadata endpoint (`http://169.254.169.254`).
    pub identity_endpoint: reqwest::Url,
    /// How to get a token.
    pub credential: AzureCredential,
}

/// The Resource Manager token of one integration, while it is valid (one key, [`ARM`]).
pub type TokenCache = crate::memo::Memo<Secret>;

/// The key of an integration's Resource Manager token in its [`TokenCache`].
pub const ARM: &str = "arm";

fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", uri_encode(k), uri_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The scope of Resource Manager's tokens: its origin + `/.default`.
fn scope(endpoint: &reqwest::Url) -> String {
    format!("{}/.default", endpoint.origin().ascii_serialization())
}

/// A Resource Manager token for `settings`' credential, and how long it lives.
pub async fn fetch_token(
    client: &reqwest::Client,
    settings: &AzureSettings,
    secrets: &dyn SecretSource,
) -> Result<(Secret, Duration), String> {
    let scope = scope(&settings.endpoint);
    let request = match &settings.credential {
        AzureCredential::ClientSecret {
            tenant_id,
            client_id,
            secret,
        } => {
            let value = secrets.secret(secret)?.ok_or_else(|| {
                format!("the client secret {secret:?} is not in the secret store")
            })?;
            let value = std::str::from_utf8(value.expose())
                .map_err(|_| format!("the client secret {secret:?} is not UTF-8"))?
                .trim()
                .to_string();
            let body = zeroize::Zeroizing::new(form(&[
                ("client_id", client_id),
                ("client_secret", &value),
                ("scope", &scope),
                ("grant_type", "client_credentials"),
            ]));
            let url = settings
                .authority
                .join(&format!("{tenant_id}/oauth2/v2.0/token"))
                .map_err(|e| e.to_string())?;
            client
                .post(url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body.to_string())
        }
        AzureCredential::WorkloadIdentity => {
            let var = |name: &str| {
                std::env::var(name).map_err(|_| format!("workload identity: {name} is not set"))
            };
            let tenant = var("AZURE_TENANT_ID")?;
            let client_id = var("AZURE_CLIENT_ID")?;
            let file = var("AZURE_FEDERATED_TOKEN_FILE")?;
            let assertion = zeroize::Zeroizing::new(
                std::fs::read_to_string(&file)
                    .map_err(|e| format!("workload identity: cannot read {file}: {e}"))?,
            );
            let authority = match std::env::var("AZURE_AUTHORITY_HOST") {
                Ok(a) => crate::aws::AwsSettings::parse_endpoint(a.trim_end_matches('/'))?,
                Err(_) => settings.authority.clone(),
            };
            let body = zeroize::Zeroizing::new(form(&[
                ("client_id", &client_id),
                (
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                ),
                ("client_assertion", assertion.trim()),
                ("scope", &scope),
                ("grant_type", "client_credentials"),
            ]));
            let url = authority
                .join(&format!("{tenant}/oauth2/v2.0/token"))
                .map_err(|e| e.to_string())?;
            client
                .post(url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body.to_string())
        }
        AzureCredential::ManagedIdentity { client_id } => {
            let resource = settings.endpoint.origin().ascii_serialization() + "/";
            let mut query = vec![
                ("api-version", "2018-02-01"),
                ("resource", resource.as_str()),
            ];
            if let Some(id) = client_id {
                query.push(("client_id", id));
            }
            let url = settings
                .identity_endpoint
                .join(&format!("metadata/identity/oauth2/token?{}", form(&query)))
                .map_err(|e| e.to_string())?;
            client.get(url).header("Metadata", "true")
        }
    };
    let response = request
        .send()
        .await
        .map_err(|e| format!("no answer: {}", transport_error(&e)))?;
    let status = response.status().as_u16();
    let body = match read(response).await {
        Ok(body) => zeroize::Zeroizing::new(body),
        Err(Failure::Answer { code, message, .. }) => {
            return Err(format!("HTTP {status} {code}: {message}"));
        }
        Err(Failure::TooBig) => return Err("the token answer is too large".into()),
        Err(Failure::Transport(e)) => return Err(e),
    };
    let json: serde_json::Value =
        serde_json::from_str(&body).map_err(|_| "the token answer is not JSON".to_string())?;
    let token = json["access_token"]
        .as_str()
        .ok_or("the token answer has no access_token")?;
    // `expires_in`: a number from Entra ID, a string from the metadata endpoint.
    let lifetime = json["expires_in"]
        .as_u64()
        .or_else(|| json["expires_in"].as_str().and_then(|s| s.parse().ok()))
        .unwrap_or(300);
    Ok((
        Secret::new(token.as_bytes().to_vec()),
        Duration::from_secs(lifetime.clamp(60, 86_400)),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_scope_is_resource_managers_origin() {
        assert_eq!(
            scope(&reqwest::Url::parse("https://management.azure.com/").unwrap()),
            "https://management.azure.com/.default"
        );
    }
}
