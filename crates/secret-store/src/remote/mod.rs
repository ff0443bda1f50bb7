//! Secrets kept in a secret manager: AWS Secrets Manager, HashiCorp Vault's KV v2 (OpenBao is
//! its open-source fork, and the test peer), Azure Key Vault and GCP Secret Manager. A secret names its store:
//! `STORE:PATH`, where STORE is a `[secrets.stores.STORE]` table of `latch.toml`.
//!
//! Defends the values and the credentials that fetch them:
//! - fetched at each use, never cached, never written anywhere; the bytes go into a
//!   [`Secret`] (zeroized); errors name the store and the secret, never a value (nor an error
//!   body that could echo one: only the provider's code and message, clipped);
//! - TLS verified (rustls), `http://` only to a loopback address, no proxy from the
//!   environment, no redirects (`latch_cloud_auth::http`), short time limits;
//! - the Vault token is read from the environment variable or file the table names, at each
//!   fetch; AWS requests are SigV4-signed with the host's credentials (`latch_cloud_auth::creds`).
//!
//! The capability calls are synchronous (a secret is read where a connection is made); a
//! fetch runs on a thread of its own with its own small runtime, and the caller's runtime
//! thread, if any, is marked blocking meanwhile.

mod aws;
mod azure;
mod gcp;
mod vault;

use std::time::Duration;

use latch_cloud_auth::aws::AwsSettings;
use latch_secret::Secret;

pub use gcp::GcpCredential;
pub use vault::VaultAuth;

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
        secrets: &crate::SecretStore,
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
        secrets: &crate::SecretStore,
    ) -> Result<Option<Secret>, String> {
        let client = latch_cloud_auth::http::builder(Duration::from_secs(5), TIMEOUT)
            .build()
            .map_err(|e| format!("no HTTP client: {e}"))?;
        match self {
            RemoteStore::VaultKv2 {
                address,
                mount,
                auth,
            } => vault::get(&client, address, mount, auth, secrets, path).await,
            RemoteStore::AwsSecretsManager { region, settings } => {
                aws::get(&client, region, settings, path).await
            }
            RemoteStore::AzureKeyVault { vault, settings } => {
                azure::get(&client, vault, settings, secrets, path).await
            }
            RemoteStore::GcpSecretManager {
                project,
                endpoint,
                credential,
            } => gcp::get(&client, project, endpoint, credential, secrets, path).await,
        }
    }
}

/// Tokens of the remote stores (Key Vault, GCP), by credential, while valid: a token is
/// asked for once per hour or so, not at every secret fetch. The secrets themselves are
/// never kept.
pub(crate) static TOKENS: std::sync::LazyLock<latch_cloud_auth::memo::Memo<Secret>> =
    std::sync::LazyLock::new(Default::default);

/// GET `url` with `token` as the bearer; the status and the body (capped, zeroized).
pub(crate) async fn bearer_get(
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

pub(crate) async fn read_capped(mut response: reqwest::Response) -> Result<Vec<u8>, String> {
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
}
