//! Azure Key Vault's GetSecret, with a token for the vault audience from the configured
//! credential.

use latch_secret::Secret;

use latch_cloud_auth::answer::error_of;

use super::{TOKENS, bearer_get};

/// Key Vault's GetSecret (`GET {vault}/secrets/{name}[/{version}]?api-version=7.5`) with a
/// fresh token for the vault audience. The authority is the configured one, never one a
/// `WWW-Authenticate` challenge names: a server must not choose where a client secret goes.
pub(super) async fn get(
    client: &reqwest::Client,
    vault: &reqwest::Url,
    settings: &latch_cloud_auth::azure::AzureSettings,
    secrets: &crate::SecretStore,
    path: &str,
) -> Result<Option<Secret>, String> {
    let (name, version) = path.split_once('/').unwrap_or((path, ""));
    let name_ok = !name.is_empty()
        && name.len() <= 127
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    let version_ok = version.is_empty()
        || (version.len() == 32 && version.bytes().all(|b| b.is_ascii_hexdigit()));
    if !name_ok || !version_ok || version.contains('/') {
        return Err(
            "a Key Vault secret is NAME ([A-Za-z0-9-], up to 127) or NAME/VERSION (32 hex)".into(),
        );
    }
    let token = TOKENS
        .get(&format!("key-vault {settings:?}"), || {
            latch_cloud_auth::azure::fetch_token(client, settings, secrets)
        })
        .await
        .map_err(|e| format!("no token for the vault: {e}"))?;
    let mut url = vault
        .join(&format!("secrets/{name}"))
        .map_err(|e| format!("bad URL: {e}"))?;
    if !version.is_empty() {
        url = vault
            .join(&format!("secrets/{name}/{version}"))
            .map_err(|e| format!("bad URL: {e}"))?;
    }
    url.set_query(Some("api-version=7.5"));
    let (status, body) = bearer_get(client, url, &token).await?;
    if status != 200 {
        let (code, message) = error_of(&body);
        if status == 404 || code == "SecretNotFound" {
            return Ok(None);
        }
        return Err(format!("HTTP {status} {code}: {message}"));
    }
    let json: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|_| "the answer is not Key Vault's JSON".to_string())?;
    json["value"]
        .as_str()
        .map(|v| Some(Secret::new(v.as_bytes().to_vec())))
        .ok_or_else(|| "the answer has no value".to_string())
}
