//! HashiCorp Vault / OpenBao KV version 2: a token from the environment or a file, or an
//! AppRole login whose token is kept for its lease.

use std::time::Duration;

use latch_secret::Secret;

use super::{TOKENS, read_capped};

/// How the host gets a Vault token.
#[derive(Clone, Debug)]
pub enum VaultAuth {
    /// A token from an environment variable (`VAULT_TOKEN` if unnamed) or a file, read at
    /// each fetch.
    Token {
        /// The variable's name.
        env: Option<String>,
        /// The file.
        file: Option<std::path::PathBuf>,
    },
    /// AppRole: `role_id` and the secret id held in secret `secret_id_secret` (a plain
    /// name: directory or environment) logged in at `auth/{mount}/login`; the token is kept
    /// in memory for its lease (less 5 minutes), never written.
    AppRole {
        /// The auth mount, e.g. `approle`.
        mount: String,
        /// The role id (an identifier, not a secret).
        role_id: String,
        /// The secret holding the secret id.
        secret_id_secret: String,
    },
}
/// KV v2's read of `path` under `mount`.
pub(super) async fn get(
    client: &reqwest::Client,
    address: &reqwest::Url,
    mount: &str,
    auth: &VaultAuth,
    secrets: &crate::SecretStore,
    path: &str,
) -> Result<Option<Secret>, String> {
    let token = match auth {
        VaultAuth::Token { env, file } => vault_token(env.as_deref(), file.as_deref())?,
        VaultAuth::AppRole {
            mount: auth_mount,
            role_id,
            secret_id_secret,
        } => {
            TOKENS
                .get(
                    &format!("vault-approle {address} {auth_mount} {role_id}"),
                    || {
                        approle_login(
                            client,
                            address,
                            auth_mount,
                            role_id,
                            secret_id_secret,
                            secrets,
                        )
                    },
                )
                .await?
        }
    };
    let url = address
        .join(&format!("v1/{mount}/data/{path}"))
        .map_err(|e| format!("bad URL: {e}"))?;
    let token = std::str::from_utf8(token.expose())
        .map_err(|_| "the Vault token is not UTF-8".to_string())?
        .trim()
        .to_string();
    let response = client
        .get(url)
        .header("X-Vault-Token", token)
        .send()
        .await
        .map_err(|e| format!("no answer: {e}"))?;
    let status = response.status().as_u16();
    let body = read_capped(response).await?;
    if status == 404 {
        return Ok(None);
    }
    if status != 200 {
        return Err(format!("HTTP {status}: {}", vault_errors(&body)));
    }
    let json: serde_json::Value =
        serde_json::from_slice(&body).map_err(|_| "the answer is not Vault's JSON".to_string())?;
    let data = &json["data"]["data"];
    let value = match data {
        serde_json::Value::Object(map) if map.len() == 1 && map.contains_key("value") => {
            match &map["value"] {
                serde_json::Value::String(s) => s.as_bytes().to_vec(),
                other => other.to_string().into_bytes(),
            }
        }
        serde_json::Value::Object(_) => data.to_string().into_bytes(),
        _ => return Ok(None),
    };
    Ok(Some(Secret::new(value)))
}

fn vault_token(env: Option<&str>, file: Option<&std::path::Path>) -> Result<Secret, String> {
    if let Some(f) = file {
        return std::fs::read(f)
            .map(Secret::new)
            .map_err(|e| format!("cannot read the token file {}: {e}", f.display()));
    }
    let var = env.unwrap_or("VAULT_TOKEN");
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(|v| Secret::new(v.into_encoded_bytes()))
        .ok_or_else(|| format!("no Vault token: {var} is not set"))
}

/// An AppRole login: the token and its lease. Errors never quote the secret id or the
/// answer beyond Vault's own error strings.
async fn approle_login(
    client: &reqwest::Client,
    address: &reqwest::Url,
    mount: &str,
    role_id: &str,
    secret_id_secret: &str,
    secrets: &crate::SecretStore,
) -> Result<(Secret, Duration), String> {
    let secret_id = secrets.get(secret_id_secret)?.ok_or_else(|| {
        format!("AppRole: the secret id {secret_id_secret:?} is not in the secret store")
    })?;
    let secret_id = std::str::from_utf8(secret_id.expose())
        .map_err(|_| format!("AppRole: the secret id {secret_id_secret:?} is not UTF-8"))?
        .trim()
        .to_string();
    let body = zeroize::Zeroizing::new(
        serde_json::json!({"role_id": role_id, "secret_id": secret_id}).to_string(),
    );
    let secret_id = zeroize::Zeroizing::new(secret_id);
    let url = address
        .join(&format!("v1/auth/{mount}/login"))
        .map_err(|e| format!("bad URL: {e}"))?;
    let response = client
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .map_err(|e| format!("AppRole login: no answer: {e}"))?;
    let status = response.status().as_u16();
    let answer = zeroize::Zeroizing::new(read_capped(response).await?);
    if status != 200 {
        let errors = vault_errors(&answer).replace(secret_id.as_str(), "[redacted]");
        return Err(format!(
            "AppRole login as role {role_id}: HTTP {status}: {errors}"
        ));
    }
    let json: serde_json::Value = serde_json::from_slice(&answer)
        .map_err(|_| "AppRole login: the answer is not Vault's JSON".to_string())?;
    let token = json["auth"]["client_token"]
        .as_str()
        .filter(|t| !t.is_empty())
        .ok_or("AppRole login: the answer has no auth.client_token")?;
    // A lease of 0 is a token that does not expire: renew it hourly all the same.
    let lease = json["auth"]["lease_duration"]
        .as_u64()
        .filter(|l| *l > 0)
        .unwrap_or(3600)
        .clamp(10, 86_400);
    Ok((
        Secret::new(token.as_bytes().to_vec()),
        Duration::from_secs(lease),
    ))
}

fn vault_errors(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v["errors"].as_array().map(|a| {
                a.iter()
                    .filter_map(|e| e.as_str())
                    .map(|e| e.split_whitespace().collect::<Vec<_>>().join(" "))
                    .collect::<Vec<_>>()
                    .join("; ")
            })
        })
        .map(|s| s.chars().take(300).collect())
        .unwrap_or_else(|| "not a Vault error document".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vault_errors_are_summarized_without_bodies() {
        assert_eq!(
            vault_errors(br#"{"errors":["1 error occurred:\n\t* permission denied\n\n"]}"#),
            "1 error occurred: * permission denied"
        );
        assert_eq!(vault_errors(b"<html>"), "not a Vault error document");
    }
}
