//! Secrets kept in a secret manager: AWS Secrets Manager and HashiCorp Vault's KV v2
//! (OpenBao is its open-source fork, and the test peer). A secret names its store:
//! `STORE:PATH`, where STORE is a `[secrets.stores.STORE]` table of `latch.toml`.
//!
//! Defends the values and the credentials that fetch them:
//! - fetched at each use, never cached, never written anywhere; the bytes go into a
//!   [`Secret`] (zeroized); errors name the store and the secret, never a value (nor an error
//!   body that could echo one: only the provider's code and message, clipped);
//! - TLS verified (rustls), `http://` only to a loopback address, no proxy from the
//!   environment, no redirects (`crate::http`), short time limits;
//! - the Vault token is read from the environment variable or file the table names, at each
//!   fetch; AWS requests are SigV4-signed with the host's credentials (`caps::cloud::creds`).
//!
//! The capability calls are synchronous (a secret is read where a connection is made); a
//! fetch runs on a thread of its own with its own small runtime, and the caller's runtime
//! thread, if any, is marked blocking meanwhile.

use std::time::{Duration, SystemTime};

use super::Secret;
use crate::caps::cloud::live::AwsSettings;
use crate::caps::cloud::{creds, sigv4};

/// Longest a fetch may take.
const TIMEOUT: Duration = Duration::from_secs(15);
/// Largest secret answer accepted.
const MAX_ANSWER: usize = 1 << 20;

/// One configured remote store.
#[derive(Clone, Debug)]
pub enum RemoteStore {
    /// HashiCorp Vault / OpenBao KV version 2.
    VaultKv2 {
        /// `https://vault.example:8200` (http only to loopback).
        address: reqwest::Url,
        /// The KV mount, e.g. `secret`.
        mount: String,
        /// Where the token is: an environment variable's name…
        token_env: Option<String>,
        /// …or a file.
        token_file: Option<std::path::PathBuf>,
    },
    /// AWS Secrets Manager in `region`.
    AwsSecretsManager {
        /// The region.
        region: String,
        /// Endpoint override and credentials profile.
        settings: AwsSettings,
    },
}

/// The path part of `STORE:PATH`: what Vault paths and Secrets Manager names allow,
/// `[A-Za-z0-9/_+=.@-]`, no `..`, not starting or ending with `/`, at most 512 bytes.
pub fn check_path(path: &str) -> Result<(), String> {
    let ok = !path.is_empty()
        && path.len() <= 512
        && !path.starts_with('/')
        && !path.ends_with('/')
        && !path
            .split('/')
            .any(|seg| seg.is_empty() || seg == "." || seg == "..")
        && path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/_+=.@-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "secret path {path:?} may hold only letters, digits and /_+=.@- (no empty, . or \
             .. segment), up to 512 bytes"
        ))
    }
}

impl RemoteStore {
    /// What it is called in messages.
    pub fn kind(&self) -> &'static str {
        match self {
            RemoteStore::VaultKv2 { .. } => "vault-kv2",
            RemoteStore::AwsSecretsManager { .. } => "aws-secrets-manager",
        }
    }

    /// The value of `path`, or `None` if the store does not have it.
    pub fn get(&self, store: &str, path: &str) -> Result<Option<Secret>, String> {
        check_path(path)?;
        let this = self.clone();
        let path_owned = path.to_string();
        let fetch = move || -> Result<Option<Secret>, String> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start a runtime: {e}"))?;
            rt.block_on(this.fetch(&path_owned))
        };
        let run = || {
            std::thread::scope(|s| {
                s.spawn(fetch)
                    .join()
                    .unwrap_or_else(|_| Err("the fetch panicked".into()))
            })
        };
        let result = match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(run)
            }
            _ => run(),
        };
        result.map_err(|e| {
            format!(
                "secret {store}:{path} from store {store:?} ({}): {e}",
                self.kind()
            )
        })
    }

    async fn fetch(&self, path: &str) -> Result<Option<Secret>, String> {
        let client = crate::http::builder(Duration::from_secs(5), TIMEOUT)
            .build()
            .map_err(|e| format!("no HTTP client: {e}"))?;
        match self {
            RemoteStore::VaultKv2 {
                address,
                mount,
                token_env,
                token_file,
            } => {
                let token = vault_token(token_env.as_deref(), token_file.as_deref())?;
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
                let json: serde_json::Value = serde_json::from_slice(&body)
                    .map_err(|_| "the answer is not Vault's JSON".to_string())?;
                let data = &json["data"]["data"];
                let value = match data {
                    serde_json::Value::Object(map)
                        if map.len() == 1 && map.contains_key("value") =>
                    {
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
            RemoteStore::AwsSecretsManager { region, settings } => {
                aws_get(&client, region, settings, path).await
            }
        }
    }
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

async fn read_capped(mut response: reqwest::Response) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| format!("reading the answer: {e}"))?
    {
        if body.len() + chunk.len() > MAX_ANSWER {
            return Err("the answer is larger than 1 MiB".into());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Secrets Manager's GetSecretValue (JSON 1.1 protocol), SigV4-signed.
async fn aws_get(
    client: &reqwest::Client,
    region: &str,
    settings: &AwsSettings,
    name: &str,
) -> Result<Option<Secret>, String> {
    let url = match &settings.endpoint {
        Some(u) => u.clone(),
        None => reqwest::Url::parse(&format!("https://secretsmanager.{region}.amazonaws.com/"))
            .map_err(|e| format!("bad endpoint: {e}"))?,
    };
    let host = match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        _ => return Err("the endpoint has no host".into()),
    };
    let creds = creds::resolve(settings.profile.as_deref())?;
    let body = serde_json::json!({ "SecretId": name }).to_string();
    let date = sigv4::amz_date(SystemTime::now());
    let mut headers = vec![
        (
            "content-type".to_string(),
            "application/x-amz-json-1.1".to_string(),
        ),
        ("host".to_string(), host),
        ("x-amz-date".to_string(), date.clone()),
        (
            "x-amz-target".to_string(),
            "secretsmanager.GetSecretValue".to_string(),
        ),
    ];
    let token = creds
        .session_token
        .as_ref()
        .map(|t| String::from_utf8_lossy(t.expose()).into_owned());
    if let Some(t) = &token {
        headers.push(("x-amz-security-token".into(), t.clone()));
    }
    let authorization = sigv4::authorization(
        &sigv4::Request {
            method: "POST",
            path: "/",
            query: "",
            headers: &headers,
            body: body.as_bytes(),
        },
        "secretsmanager",
        region,
        &date,
        &creds,
    );
    let mut request = client
        .post(url)
        .header("content-type", "application/x-amz-json-1.1")
        .header("x-amz-date", date)
        .header("x-amz-target", "secretsmanager.GetSecretValue")
        .header("authorization", authorization)
        .body(body);
    if let Some(t) = token {
        request = request.header("x-amz-security-token", t);
    }
    let response = request
        .send()
        .await
        .map_err(|e| format!("no answer: {e}"))?;
    let status = response.status().as_u16();
    let body = zeroize::Zeroizing::new(read_capped(response).await?);
    if status != 200 {
        let (code, message) = crate::caps::cloud::live::error_of(&body);
        if code == "ResourceNotFoundException" {
            return Ok(None);
        }
        let hint = if matches!(
            code.as_str(),
            "SignatureDoesNotMatch" | "InvalidClientTokenId" | "UnrecognizedClientException"
        ) {
            " — the AWS credentials the connector holds were refused"
        } else {
            ""
        };
        return Err(format!("HTTP {status} {code}: {message}{hint}"));
    }
    let json: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|_| "the answer is not Secrets Manager's JSON".to_string())?;
    if let Some(s) = json["SecretString"].as_str() {
        return Ok(Some(Secret::new(s.as_bytes().to_vec())));
    }
    if let Some(b) = json["SecretBinary"].as_str() {
        use base64::Engine;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b)
            .map_err(|_| "SecretBinary is not base64".to_string())?;
        return Ok(Some(Secret::new(bytes)));
    }
    Err("the answer holds neither SecretString nor SecretBinary".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_plain() {
        for ok in ["ssh/prod", "latch/ssh/web-1", "a+b=c@d.e_f-g"] {
            assert!(check_path(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "/abs", "a//b", "a/../b", "a/", "a b", "$(id)", "a;b", "x?y", "é",
        ] {
            assert!(check_path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn vault_errors_are_summarized_without_bodies() {
        assert_eq!(
            vault_errors(br#"{"errors":["1 error occurred:\n\t* permission denied\n\n"]}"#),
            "1 error occurred: * permission denied"
        );
        assert_eq!(vault_errors(b"<html>"), "not a Vault error document");
    }
}
