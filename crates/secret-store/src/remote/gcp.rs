//! GCP Secret Manager: a service account's key exchanged for a token (an RS256 JWT), or the
//! metadata server's; each value checked against its CRC32C.

use std::time::Duration;

use latch_secret::Secret;

use latch_cloud_auth::answer::error_of;

use super::{TOKENS, bearer_get, read_capped};

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

/// A GCP access token and how long it lives (`expires_in`).
async fn gcp_token(
    client: &reqwest::Client,
    credential: &GcpCredential,
    secrets: &crate::SecretStore,
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
pub(super) async fn get(
    client: &reqwest::Client,
    project: &str,
    endpoint: &reqwest::Url,
    credential: &GcpCredential,
    secrets: &crate::SecretStore,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_is_castagnoli() {
        // RFC 3720's check value.
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    }
}
