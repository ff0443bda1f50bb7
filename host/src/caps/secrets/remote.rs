//! Secrets kept in a secret manager: AWS Secrets Manager, HashiCorp Vault's KV v2 (OpenBao is
//! its open-source fork, and the test peer), Azure Key Vault and GCP Secret Manager. A secret names its store:
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
use latch_cloud_auth::answer::error_of;
use latch_cloud_auth::aws::AwsSettings;
use latch_cloud_auth::memo::Memo;
use latch_cloud_auth::{creds, sigv4};

/// Longest a fetch may take.
const TIMEOUT: Duration = Duration::from_secs(15);
/// Largest secret answer accepted.
const MAX_ANSWER: usize = 1 << 20;

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

/// One configured remote store.
#[derive(Clone, Debug)]
pub enum RemoteStore {
    /// HashiCorp Vault / OpenBao KV version 2.
    VaultKv2 {
        /// `https://vault.example:8200` (http only to loopback).
        address: reqwest::Url,
        /// The KV mount, e.g. `secret`.
        mount: String,
        /// How the host gets a Vault token.
        auth: VaultAuth,
    },
    /// Azure Key Vault: `vault` (`https://NAME.vault.azure.net`), with a token for
    /// `settings.endpoint` (the audience, `https://vault.azure.net`) from `settings.credential`.
    AzureKeyVault {
        /// The vault's URL.
        vault: reqwest::Url,
        /// The audience, authority and credential.
        settings: latch_cloud_auth::azure::AzureSettings,
    },
    /// GCP Secret Manager of `project`.
    GcpSecretManager {
        /// The project id.
        project: String,
        /// `https://secretmanager.googleapis.com`.
        endpoint: reqwest::Url,
        /// How to get a token.
        credential: GcpCredential,
    },
    /// AWS Secrets Manager in `region`.
    AwsSecretsManager {
        /// The region.
        region: String,
        /// Endpoint override and credentials profile.
        settings: AwsSettings,
    },
}

impl RemoteStore {
    /// The secrets this store's own credential is read from (the AppRole secret id, a
    /// client secret, a service-account key): the host's, never a guest's.
    pub fn credential_secrets(&self) -> Vec<&str> {
        match self {
            RemoteStore::VaultKv2 {
                auth:
                    VaultAuth::AppRole {
                        secret_id_secret, ..
                    },
                ..
            } => vec![secret_id_secret.as_str()],
            RemoteStore::AzureKeyVault { settings, .. } => match &settings.credential {
                latch_cloud_auth::azure::AzureCredential::ClientSecret { secret, .. } => {
                    vec![secret.as_str()]
                }
                _ => Vec::new(),
            },
            RemoteStore::GcpSecretManager {
                credential: GcpCredential::ServiceAccountKey { secret, .. },
                ..
            } => vec![secret.as_str()],
            _ => Vec::new(),
        }
    }
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
            RemoteStore::AzureKeyVault { .. } => "azure-key-vault",
            RemoteStore::GcpSecretManager { .. } => "gcp-secret-manager",
        }
    }

    /// The value of `path`, or `None` if the store does not have it.
    /// `secrets` is the store this one belongs to: a Key Vault's client secret is read from
    /// it (by a plain name: never from a remote store, so fetches cannot chain).
    pub fn get(
        &self,
        store: &str,
        path: &str,
        secrets: &super::SecretStore,
    ) -> Result<Option<Secret>, String> {
        check_path(path)?;
        let fetch = || -> Result<Option<Secret>, String> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start a runtime: {e}"))?;
            rt.block_on(self.fetch(path, secrets))
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

    async fn fetch(
        &self,
        path: &str,
        secrets: &super::SecretStore,
    ) -> Result<Option<Secret>, String> {
        let client = crate::http::builder(Duration::from_secs(5), TIMEOUT)
            .build()
            .map_err(|e| format!("no HTTP client: {e}"))?;
        match self {
            RemoteStore::VaultKv2 {
                address,
                mount,
                auth,
            } => {
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
                                        &client,
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
            RemoteStore::AzureKeyVault { vault, settings } => {
                key_vault_get(&client, vault, settings, secrets, path).await
            }
            RemoteStore::GcpSecretManager {
                project,
                endpoint,
                credential,
            } => gcp_get(&client, project, endpoint, credential, secrets, path).await,
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

/// An AppRole login: the token and its lease. Errors never quote the secret id or the
/// answer beyond Vault's own error strings.
async fn approle_login(
    client: &reqwest::Client,
    address: &reqwest::Url,
    mount: &str,
    role_id: &str,
    secret_id_secret: &str,
    secrets: &super::SecretStore,
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

/// GET `url` with `token` as the bearer; the status and the body (capped, zeroized).
async fn bearer_get(
    client: &reqwest::Client,
    url: reqwest::Url,
    token: &Secret,
) -> Result<(u16, zeroize::Zeroizing<Vec<u8>>), String> {
    let bearer = zeroize::Zeroizing::new(format!(
        "Bearer {}",
        String::from_utf8_lossy(token.expose())
    ));
    let response = client
        .get(url)
        .header("authorization", bearer.as_str())
        .send()
        .await
        .map_err(|e| format!("no answer: {e}"))?;
    let status = response.status().as_u16();
    Ok((
        status,
        zeroize::Zeroizing::new(read_capped(response).await?),
    ))
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

/// Key Vault's GetSecret (`GET {vault}/secrets/{name}[/{version}]?api-version=7.5`) with a
/// fresh token for the vault audience. The authority is the configured one, never one a
/// `WWW-Authenticate` challenge names: a server must not choose where a client secret goes.
async fn key_vault_get(
    client: &reqwest::Client,
    vault: &reqwest::Url,
    settings: &latch_cloud_auth::azure::AzureSettings,
    secrets: &super::SecretStore,
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

/// How the host gets a GCP access token.
#[derive(Clone, Debug)]
pub enum GcpCredential {
    /// A service account's key (its JSON, in secret `secret`: a plain name), exchanged for a
    /// token with a signed JWT at `token_endpoint` (default `https://oauth2.googleapis.com/token`;
    /// a key naming another token server is refused unless the config names it too).
    ServiceAccountKey {
        /// The secret holding the key JSON.
        secret: String,
        /// The token endpoint override.
        token_endpoint: Option<reqwest::Url>,
    },
    /// The metadata server of the machine (GCE, GKE workload identity).
    Metadata {
        /// `http://metadata.google.internal`.
        endpoint: reqwest::Url,
    },
}

const GCP_TOKEN: &str = "https://oauth2.googleapis.com/token";

fn b64url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// CRC-32C (Castagnoli), as Secret Manager's `dataCrc32c`.
fn crc32c(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Tokens of the remote stores (Key Vault, GCP), by credential, while valid: a token is
/// asked for once per hour or so, not at every secret fetch. The secrets themselves are
/// never kept.
static TOKENS: std::sync::LazyLock<Memo<Secret>> = std::sync::LazyLock::new(Default::default);

/// A GCP access token and how long it lives (`expires_in`).
async fn gcp_token(
    client: &reqwest::Client,
    credential: &GcpCredential,
    secrets: &super::SecretStore,
) -> Result<(Secret, Duration), String> {
    let request = match credential {
        GcpCredential::Metadata { endpoint } => client
            .get(
                endpoint
                    .join("computeMetadata/v1/instance/service-accounts/default/token")
                    .map_err(|e| e.to_string())?,
            )
            .header("Metadata-Flavor", "Google"),
        GcpCredential::ServiceAccountKey {
            secret,
            token_endpoint,
        } => {
            let key = secrets.get(secret)?.ok_or_else(|| {
                format!("the service account key {secret:?} is not in the secret store")
            })?;
            let key: serde_json::Value = serde_json::from_slice(key.expose())
                .map_err(|_| format!("the service account key {secret:?} is not JSON"))?;
            let field = |name: &str| {
                key[name]
                    .as_str()
                    .map(str::to_string)
                    .ok_or_else(|| format!("the service account key {secret:?} has no {name}"))
            };
            let email = field("client_email")?;
            let pem = zeroize::Zeroizing::new(field("private_key")?);
            let kid = field("private_key_id").unwrap_or_default();
            let uri = match token_endpoint {
                Some(u) => u.clone(),
                None => {
                    let named = key["token_uri"].as_str().unwrap_or(GCP_TOKEN);
                    if named != GCP_TOKEN {
                        return Err(format!(
                            "the service account key names token_uri {named:?}; set token_endpoint \
                             in the store's table to use it"
                        ));
                    }
                    reqwest::Url::parse(GCP_TOKEN).expect("a URL")
                }
            };
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_err(|e| e.to_string())?
                .as_secs();
            let header = serde_json::json!({"alg": "RS256", "typ": "JWT", "kid": kid});
            let claims = serde_json::json!({
                "iss": email,
                "scope": "https://www.googleapis.com/auth/cloud-platform",
                "aud": uri.as_str(),
                "iat": now,
                "exp": now + 3600,
            });
            let unsigned = format!(
                "{}.{}",
                b64url(header.to_string().as_bytes()),
                b64url(claims.to_string().as_bytes())
            );
            let signature = {
                use rsa::pkcs8::DecodePrivateKey;
                use rsa::signature::{SignatureEncoding, Signer};
                let private = rsa::RsaPrivateKey::from_pkcs8_pem(&pem).map_err(|_| {
                    format!("the service account key {secret:?} has no PKCS#8 RSA private_key")
                })?;
                let signer = rsa::pkcs1v15::SigningKey::<rsa::sha2::Sha256>::new(private);
                signer.sign(unsigned.as_bytes()).to_vec()
            };
            let assertion = zeroize::Zeroizing::new(format!("{unsigned}.{}", b64url(&signature)));
            let body = format!(
                "grant_type={}&assertion={}",
                uri_encode_form("urn:ietf:params:oauth:grant-type:jwt-bearer"),
                uri_encode_form(&assertion)
            );
            client
                .post(uri)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body)
        }
    };
    let response = request.send().await.map_err(|e| format!("no token: {e}"))?;
    let status = response.status().as_u16();
    let body = zeroize::Zeroizing::new(read_capped(response).await?);
    if status != 200 {
        let (code, message) = error_of(&body);
        return Err(format!("no token: HTTP {status} {code}: {message}"));
    }
    let json: serde_json::Value =
        serde_json::from_slice(&body).map_err(|_| "the token answer is not JSON".to_string())?;
    let token = json["access_token"]
        .as_str()
        .map(|t| Secret::new(t.as_bytes().to_vec()))
        .ok_or_else(|| "the token answer has no access_token".to_string())?;
    let life = json["expires_in"]
        .as_u64()
        .unwrap_or(3600)
        .clamp(60, 86_400);
    Ok((token, Duration::from_secs(life)))
}

fn uri_encode_form(s: &str) -> String {
    latch_cloud_auth::sigv4::uri_encode(s)
}

/// Secret Manager's `versions/{v}:access`, checked against its CRC32C.
async fn gcp_get(
    client: &reqwest::Client,
    project: &str,
    endpoint: &reqwest::Url,
    credential: &GcpCredential,
    secrets: &super::SecretStore,
    path: &str,
) -> Result<Option<Secret>, String> {
    let (name, version) = path.split_once('/').unwrap_or((path, "latest"));
    let name_ok = !name.is_empty()
        && name.len() <= 255
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    let version_ok = version == "latest"
        || (!version.is_empty()
            && version.len() <= 20
            && version.bytes().all(|b| b.is_ascii_digit()));
    if !name_ok || !version_ok {
        return Err(
            "a Secret Manager secret is NAME ([A-Za-z0-9_-], up to 255) or NAME/VERSION (a              number or latest)"
                .into(),
        );
    }
    let token = TOKENS
        .get(&format!("gcp {credential:?}"), || {
            gcp_token(client, credential, secrets)
        })
        .await?;
    let url = endpoint
        .join(&format!(
            "v1/projects/{project}/secrets/{name}/versions/{version}:access"
        ))
        .map_err(|e| format!("bad URL: {e}"))?;
    let (status, body) = bearer_get(client, url, &token).await?;
    if status != 200 {
        let (code, message) = error_of(&body);
        if status == 404 || code == "NOT_FOUND" {
            return Ok(None);
        }
        return Err(format!("HTTP {status} {code}: {message}"));
    }
    let json: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|_| "the answer is not Secret Manager's JSON".to_string())?;
    let data = json["payload"]["data"]
        .as_str()
        .ok_or("the answer has no payload.data")?;
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data)
        .map_err(|_| "payload.data is not base64".to_string())?;
    // `dataCrc32c` is an int64 in JSON: a string (proto3's rule) or a number.
    let crc = json["payload"]["dataCrc32c"]
        .as_str()
        .and_then(|s| s.parse::<u64>().ok())
        .or(json["payload"]["dataCrc32c"].as_u64());
    if let Some(crc) = crc
        && crc != u64::from(crc32c(&bytes))
    {
        return Err("payload.dataCrc32c does not match the data: refused".into());
    }
    Ok(Some(Secret::new(bytes)))
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
    let creds = creds::resolve(client, settings.profile.as_deref()).await?;
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
        let (code, message) = error_of(&body);
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
    fn crc32c_is_castagnoli() {
        // RFC 3720's check value.
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    }

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
