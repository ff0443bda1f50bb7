//! Where the host's AWS credentials come from: the standard chain, in the AWS SDKs' order.
//!
//! 1. The environment: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`;
//! 2. **web identity**: `AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN` (+
//!    `AWS_ROLE_SESSION_NAME`), as EKS (IRSA) and other OIDC platforms set them: the token is
//!    exchanged by STS `AssumeRoleWithWebIdentity` (an unsigned call) for temporary
//!    credentials;
//! 3. the shared credentials file (`AWS_SHARED_CREDENTIALS_FILE`, else `~/.aws/credentials`),
//!    profile `AWS_PROFILE`, else `default`;
//! 4. **container credentials** (ECS tasks, EKS Pod Identity):
//!    `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` or `_FULL_URI`, with the authorization token
//!    of `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE` / `_TOKEN`;
//! 5. **instance metadata, IMDSv2 only**: a session token (`PUT /latest/api/token`), then the
//!    instance role's credentials. `AWS_EC2_METADATA_DISABLED=true` skips it;
//!    `AWS_EC2_METADATA_SERVICE_ENDPOINT` moves it (plain http to 169.254.169.254,
//!    `[fd00:ec2::254]` or a loopback address only). IMDSv1 (no session token) is never used.
//!
//! `[integration.aws] profile = "…"` names a shared-credentials profile and uses **only** it:
//! a connector told which key to use never silently takes another.
//!
//! Keys from the environment and the file are read at each call (a rotated key is used at
//! once). Temporary credentials (2, 4 and 5) are kept in memory ([`super::memo`]) until 5
//! minutes before they expire, one fetch at a time per source, never written anywhere.
//! Every value is held in a [`Secret`] and never printed: errors name the source, never a
//! token or key.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::sync::LazyLock;
use std::time::{Duration, Instant, SystemTime};

use crate::answer::{Failure, is_loopback_or, read, transport_error};
use crate::aws::AwsSettings;
use crate::memo::Memo;
use crate::sigv4::uri_encode;
use latch_secret::Secret;

pub use crate::aws::Credentials;

/// The host's credentials, by the chain above; `profile`: `[integration.aws] profile`.
pub async fn resolve(
    client: &reqwest::Client,
    profile: Option<&str>,
) -> Result<Credentials, String> {
    if let Some(profile) = profile {
        return from_file(profile)?.ok_or_else(|| {
            format!(
                "no AWS credentials: the shared credentials file has no profile {profile:?} \
                 ([integration.aws] profile names it)"
            )
        });
    }
    if let Some(creds) = from_env()? {
        return Ok(creds);
    }
    if let Some(file) = std::env::var_os("AWS_WEB_IDENTITY_TOKEN_FILE").filter(|f| !f.is_empty()) {
        let file = PathBuf::from(file);
        let role = std::env::var("AWS_ROLE_ARN").map_err(|_| {
            "web identity: AWS_WEB_IDENTITY_TOKEN_FILE is set but AWS_ROLE_ARN is not".to_string()
        })?;
        let role = check_role_arn(&role)?;
        let url = sts_url()?;
        let key = format!("web-identity {role} {} {url}", file.display());
        return cached(key, || web_identity(client, &url, &role, &file)).await;
    }
    let (name, named) = match std::env::var("AWS_PROFILE") {
        Ok(p) if !p.is_empty() => (p, true),
        _ => ("default".to_string(), false),
    };
    match from_file(&name)? {
        Some(creds) => return Ok(creds),
        None if named => {
            return Err(format!(
                "no AWS credentials: AWS_PROFILE names profile {name:?}, which the shared \
                 credentials file does not have"
            ));
        }
        None => {}
    }
    if let Some(url) = container_endpoint()? {
        return cached(format!("container {url}"), || container(client, &url)).await;
    }
    let nothing = "no AWS credentials: none in the environment (AWS_ACCESS_KEY_ID, \
                   AWS_WEB_IDENTITY_TOKEN_FILE, AWS_CONTAINER_CREDENTIALS_*), no profile \
                   \"default\" in the shared credentials file";
    if std::env::var("AWS_EC2_METADATA_DISABLED").is_ok_and(|v| v.eq_ignore_ascii_case("true")) {
        return Err(format!(
            "{nothing}, and instance metadata is off (AWS_EC2_METADATA_DISABLED)"
        ));
    }
    let endpoint = metadata_endpoint()?;
    cached(format!("imds {endpoint}"), || instance_metadata(&endpoint))
        .await
        .map_err(|e| format!("{nothing}, and {e}"))
}

/// The environment's keys, if `AWS_ACCESS_KEY_ID` is set.
fn from_env() -> Result<Option<Credentials>, String> {
    let Some(id) = std::env::var_os("AWS_ACCESS_KEY_ID").filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let id = id
        .into_string()
        .map_err(|_| "AWS_ACCESS_KEY_ID is not UTF-8".to_string())?;
    let secret = std::env::var_os("AWS_SECRET_ACCESS_KEY")
        .ok_or("AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not".to_string())?;
    Ok(Some(Credentials {
        access_key_id: check_key_id(id.trim(), "AWS_ACCESS_KEY_ID")?,
        secret: Secret::new(secret.into_encoded_bytes()),
        session_token: std::env::var_os("AWS_SESSION_TOKEN")
            .filter(|t| !t.is_empty())
            .map(|t| Secret::new(t.into_encoded_bytes())),
    }))
}

/// Profile `name` of the shared credentials file; `None` when there is no file or no such
/// profile.
fn from_file(name: &str) -> Result<Option<Credentials>, String> {
    let path = match std::env::var_os("AWS_SHARED_CREDENTIALS_FILE") {
        Some(p) => PathBuf::from(p),
        None => match std::env::var_os("HOME") {
            Some(home) => PathBuf::from(home).join(".aws/credentials"),
            None => return Ok(None),
        },
    };
    let text = match std::fs::read(&path) {
        Ok(bytes) => zeroize::Zeroizing::new(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let text =
        std::str::from_utf8(&text).map_err(|_| format!("{} is not UTF-8", path.display()))?;
    from_profile(text, name).map_err(|e| format!("{}: {e}", path.display()))
}

/// Temporary credentials by source (web identity, instance metadata).
static KEPT: LazyLock<Memo<Credentials>> = LazyLock::new(Default::default);

/// Credentials of `key` from memory or `fetch`, which gives them and their `Expiration`.
async fn cached<F, Fut>(key: String, fetch: F) -> Result<Credentials, String>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<(Credentials, SystemTime), String>>,
{
    KEPT.get(&key, || async {
        let (creds, expires) = fetch().await?;
        let life = expires
            .duration_since(SystemTime::now())
            .unwrap_or_default();
        Ok((creds, life))
    })
    .await
}

/// When temporary credentials expire: `2026-11-30T22:00:00Z` (fraction allowed); refused
/// when already past (a wrong clock would otherwise sign with dead keys).
fn expiration(text: &str, source: &str) -> Result<SystemTime, String> {
    let at = humantime::parse_rfc3339_weak(text.trim().trim_end_matches('Z'))
        .map_err(|_| format!("{source}: the credentials' Expiration is not a date"))?;
    if at <= SystemTime::now() {
        return Err(format!(
            "{source}: the credentials expired at {} (is this machine's clock right?)",
            text.trim()
        ));
    }
    Ok(at)
}

/// `AWS_ROLE_ARN`, checked: an IAM ARN has no space, quote or control character.
fn check_role_arn(arn: &str) -> Result<String, String> {
    let ok = (20..=2048).contains(&arn.len())
        && arn.starts_with("arn:")
        && arn
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-:/".contains(&b));
    if !ok {
        return Err("web identity: AWS_ROLE_ARN is not a role ARN".into());
    }
    Ok(arn.to_string())
}

/// STS's endpoint for web identity: `AWS_ENDPOINT_URL_STS` (tests, VPC endpoints), else the
/// regional endpoint of `AWS_REGION` / `AWS_DEFAULT_REGION`, else the global one.
fn sts_url() -> Result<reqwest::Url, String> {
    if let Ok(url) = std::env::var("AWS_ENDPOINT_URL_STS") {
        return AwsSettings::parse_endpoint(url.trim_end_matches('/'))
            .map_err(|e| format!("AWS_ENDPOINT_URL_STS {e}"));
    }
    let region = std::env::var("AWS_REGION")
        .or_else(|_| std::env::var("AWS_DEFAULT_REGION"))
        .ok()
        .filter(|r| !r.is_empty());
    let url = match region {
        Some(r)
            if r.len() <= 32
                && r.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') =>
        {
            format!("https://sts.{r}.amazonaws.com/")
        }
        Some(_) => return Err("AWS_REGION is not a region name".into()),
        None => "https://sts.amazonaws.com/".to_string(),
    };
    reqwest::Url::parse(&url).map_err(|e| e.to_string())
}

/// The web identity token of `file` exchanged for `role`'s credentials (STS
/// `AssumeRoleWithWebIdentity`; unsigned: the token is the proof). Throttling, server errors
/// and `IDPCommunicationError` are retried as every AWS call is.
async fn web_identity(
    client: &reqwest::Client,
    url: &reqwest::Url,
    role: &str,
    file: &std::path::Path,
) -> Result<(Credentials, SystemTime), String> {
    let session = match std::env::var("AWS_ROLE_SESSION_NAME") {
        Ok(s) => s,
        Err(_) => format!(
            "latch-{}",
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs()
        ),
    };
    if !(2..=64).contains(&session.len())
        || !session
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b))
    {
        return Err(
            "web identity: AWS_ROLE_SESSION_NAME: use 2 to 64 of [A-Za-z0-9+=,.@_-]".into(),
        );
    }
    let token = zeroize::Zeroizing::new(std::fs::read_to_string(file).map_err(|e| {
        format!(
            "web identity: cannot read the token file {}: {e}",
            file.display()
        )
    })?);
    let token = token.trim();
    if token.is_empty() || token.len() > 20_000 {
        return Err(format!(
            "web identity: the token file {} is empty or longer than STS accepts",
            file.display()
        ));
    }
    let body = zeroize::Zeroizing::new(
        [
            ("Action", "AssumeRoleWithWebIdentity"),
            ("Version", "2011-06-15"),
            ("RoleArn", role),
            ("RoleSessionName", session.as_str()),
            ("WebIdentityToken", token),
        ]
        .iter()
        .map(|(k, v)| format!("{k}={}", uri_encode(v)))
        .collect::<Vec<_>>()
        .join("&"),
    );
    let what = format!("web identity: STS AssumeRoleWithWebIdentity for {role} at {url}");
    let started = Instant::now();
    let mut attempt = 0;
    loop {
        attempt += 1;
        let sent = client
            .post(url.clone())
            .header(
                "content-type",
                "application/x-www-form-urlencoded; charset=utf-8",
            )
            .body(body.to_string())
            .send()
            .await;
        let outcome = match sent {
            Ok(response) => read(response).await,
            Err(e) => Err(Failure::Transport(transport_error(&e))),
        };
        let failure = match outcome {
            Ok(xml) => return sts_credentials(&zeroize::Zeroizing::new(xml), &what),
            Err(failure) => failure,
        };
        if let Some(wait) = failure.retry_after(attempt, started) {
            tokio::time::sleep(wait).await;
            continue;
        }
        // An identity provider's message could, in principle, quote what it was given.
        let redact = |s: String| s.replace(token, "[redacted]");
        return Err(match failure {
            Failure::Answer {
                status,
                code,
                message,
                ..
            } => redact(format!("{what}: HTTP {status} {code}: {message}")),
            Failure::Transport(e) => redact(format!("{what}: no answer: {e}")),
            Failure::TooBig => format!("{what}: the answer is too large"),
        });
    }
}

/// The credentials of an `AssumeRoleWithWebIdentityResponse`. Errors never quote the answer.
fn sts_credentials(xml: &str, what: &str) -> Result<(Credentials, SystemTime), String> {
    let doc =
        roxmltree::Document::parse(xml).map_err(|_| format!("{what}: the answer is not XML"))?;
    let node = doc
        .descendants()
        .find(|n| n.tag_name().name() == "AssumeRoleWithWebIdentityResult")
        .and_then(|r| r.children().find(|n| n.tag_name().name() == "Credentials"))
        .ok_or_else(|| format!("{what}: the answer has no Credentials"))?;
    let field = |name: &str| {
        node.children()
            .find(|n| n.tag_name().name() == name)
            .and_then(|n| n.text())
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| format!("{what}: the answer's Credentials lack {name}"))
    };
    temporary(field, "SessionToken", what)
}

/// Temporary credentials from an answer's `field`s (`token`: the session token's name).
fn temporary<'a>(
    field: impl Fn(&str) -> Result<&'a str, String>,
    token: &str,
    what: &str,
) -> Result<(Credentials, SystemTime), String> {
    let creds = Credentials {
        access_key_id: check_key_id(field("AccessKeyId")?, "AccessKeyId")?,
        secret: Secret::new(field("SecretAccessKey")?.as_bytes().to_vec()),
        session_token: Some(Secret::new(field(token)?.as_bytes().to_vec())),
    };
    Ok((creds, expiration(field("Expiration")?, what)?))
}

/// The container credentials endpoint, if the environment names one (ECS tasks, EKS Pod
/// Identity): `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` (under `http://169.254.170.2`), else
/// `AWS_CONTAINER_CREDENTIALS_FULL_URI` — https anywhere, plain http only to loopback or the
/// ECS / EKS link-local agents (169.254.170.2, 169.254.170.23, `[fd00:ec2::23]`), as the
/// SDKs allow.
fn container_endpoint() -> Result<Option<reqwest::Url>, String> {
    parse_container_endpoint(
        std::env::var("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI").ok(),
        std::env::var("AWS_CONTAINER_CREDENTIALS_FULL_URI").ok(),
    )
}

fn parse_container_endpoint(
    relative: Option<String>,
    full: Option<String>,
) -> Result<Option<reqwest::Url>, String> {
    let bad = |var: &str| {
        format!(
            "{var}: use https://…, or http:// to 169.254.170.2, 169.254.170.23, \
             [fd00:ec2::23] or a loopback address, with no user or password"
        )
    };
    let (var, text) = match (relative, full) {
        (Some(rel), _) if !rel.is_empty() => {
            if !rel.starts_with('/') || rel.starts_with("//") {
                return Err("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI must be a path".into());
            }
            (
                "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                format!("http://169.254.170.2{rel}"),
            )
        }
        (_, Some(full)) if !full.is_empty() => ("AWS_CONTAINER_CREDENTIALS_FULL_URI", full),
        _ => return Ok(None),
    };
    let url = reqwest::Url::parse(&text).map_err(|_| bad(var))?;
    let ok = match url.scheme() {
        "https" => url.host().is_some(),
        "http" => is_loopback_or(
            &url,
            &[
                Ipv4Addr::new(169, 254, 170, 2),
                Ipv4Addr::new(169, 254, 170, 23),
            ],
            &[Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x23)],
        ),
        _ => false,
    };
    if !ok || !url.username().is_empty() || url.password().is_some() {
        return Err(bad(var));
    }
    Ok(Some(url))
}

/// The container's credentials: a GET with the authorization token the agent gave the
/// container (`AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`, read at each fetch as EKS rotates
/// it, else `AWS_CONTAINER_AUTHORIZATION_TOKEN`). Retried as every AWS call is.
async fn container(
    client: &reqwest::Client,
    url: &reqwest::Url,
) -> Result<(Credentials, SystemTime), String> {
    let what = format!("container credentials at {url}");
    let token = match std::env::var_os("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE") {
        Some(file) => Some(zeroize::Zeroizing::new(
            std::fs::read_to_string(&file).map_err(|e| {
                format!(
                    "{what}: cannot read AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE {}: {e}",
                    std::path::Path::new(&file).display()
                )
            })?,
        )),
        None => std::env::var("AWS_CONTAINER_AUTHORIZATION_TOKEN")
            .ok()
            .map(zeroize::Zeroizing::new),
    };
    let token = token.as_ref().map(|t| t.trim().to_string());
    if token
        .as_ref()
        .is_some_and(|t| t.is_empty() || t.len() > 8192 || t.bytes().any(|b| b.is_ascii_control()))
    {
        return Err(format!(
            "{what}: the authorization token is empty, too long or has control characters"
        ));
    }
    let started = Instant::now();
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut request = client.get(url.clone());
        if let Some(t) = &token {
            request = request.header("authorization", t.as_str());
        }
        let outcome = match request.send().await {
            Ok(response) => read(response).await,
            Err(e) => Err(Failure::Transport(transport_error(&e))),
        };
        let failure = match outcome {
            Ok(body) => {
                let body = zeroize::Zeroizing::new(body);
                let json: serde_json::Value = serde_json::from_str(&body)
                    .map_err(|_| format!("{what}: the answer is not JSON"))?;
                let field = |name: &str| {
                    json[name]
                        .as_str()
                        .filter(|v| !v.is_empty())
                        .ok_or_else(|| format!("{what}: the answer lacks {name}"))
                };
                return temporary(field, "Token", &what);
            }
            Err(failure) => failure,
        };
        if let Some(wait) = failure.retry_after(attempt, started) {
            tokio::time::sleep(wait).await;
            continue;
        }
        let redact = |s: String| match &token {
            Some(t) => s.replace(t.as_str(), "[redacted]"),
            None => s,
        };
        return Err(redact(match failure {
            Failure::Answer {
                status,
                code,
                message,
                ..
            } => format!("{what}: HTTP {status} {code}: {message}"),
            Failure::Transport(e) => format!("{what}: no answer: {e}"),
            Failure::TooBig => format!("{what}: the answer is too large"),
        }));
    }
}

/// The instance metadata service's address: `AWS_EC2_METADATA_SERVICE_ENDPOINT`, else by
/// `AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE` (`IPv4`: 169.254.169.254, `IPv6`:
/// fd00:ec2::254). Plain http (as the service speaks) to those addresses or loopback only.
fn metadata_endpoint() -> Result<reqwest::Url, String> {
    let text = match std::env::var("AWS_EC2_METADATA_SERVICE_ENDPOINT") {
        Ok(t) => t,
        Err(_) => match std::env::var("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE") {
            Ok(m) if m.eq_ignore_ascii_case("ipv6") => "http://[fd00:ec2::254]".into(),
            _ => "http://169.254.169.254".into(),
        },
    };
    parse_metadata_endpoint(text.trim_end_matches('/'))
}

fn parse_metadata_endpoint(text: &str) -> Result<reqwest::Url, String> {
    let bad = || {
        format!(
            "AWS_EC2_METADATA_SERVICE_ENDPOINT {text:?}: use http://169.254.169.254, \
             http://[fd00:ec2::254] or a loopback address (no path, user or password)"
        )
    };
    let url = reqwest::Url::parse(text).map_err(|_| bad())?;
    let host_ok = is_loopback_or(
        &url,
        &[Ipv4Addr::new(169, 254, 169, 254)],
        &[Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)],
    );
    if url.scheme() != "http"
        || !host_ok
        || !url.username().is_empty()
        || url.password().is_some()
        || url.path() != "/"
        || url.query().is_some()
    {
        return Err(bad());
    }
    Ok(url)
}

/// The instance role's credentials from the metadata service, IMDSv2: a session token first,
/// sent with both reads. No retries, 1 s to connect (as the AWS SDKs): a machine that is not
/// an EC2 instance learns it at once.
async fn instance_metadata(endpoint: &reqwest::Url) -> Result<(Credentials, SystemTime), String> {
    let what = format!("instance metadata at {endpoint}");
    let client = crate::http::builder(Duration::from_secs(1), Duration::from_secs(3))
        .build()
        .map_err(|e| format!("{what}: no HTTP client: {e}"))?;
    let url = |path: &str| {
        endpoint
            .join(path)
            .map_err(|e| format!("{what}: {path}: {e}"))
    };
    let fail = |step: &str, f: Failure| match f {
        Failure::Answer { status, .. } => format!("{what}: {step}: HTTP {status}"),
        Failure::Transport(e) => format!("{what}: {step}: no answer: {e}"),
        Failure::TooBig => format!("{what}: {step}: the answer is too large"),
    };
    let get = |response: Result<reqwest::Response, reqwest::Error>| async move {
        match response {
            Ok(r) => read(r).await,
            Err(e) => Err(Failure::Transport(transport_error(&e))),
        }
    };
    let token = get(client
        .put(url("latest/api/token")?)
        .header("x-aws-ec2-metadata-token-ttl-seconds", "21600")
        .send()
        .await)
    .await
    .map(zeroize::Zeroizing::new)
    .map_err(|f| fail("a session token (IMDSv2)", f))?;
    let token = token.trim();
    if token.is_empty() || token.len() > 4096 || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!("{what}: the session token is not a token"));
    }
    let roles = get(client
        .get(url("latest/meta-data/iam/security-credentials/")?)
        .header("x-aws-ec2-metadata-token", token)
        .send()
        .await)
    .await
    .map_err(|f| match f {
        Failure::Answer { status: 404, .. } => {
            format!("{what}: this instance has no IAM role (instance profile)")
        }
        f => fail("the instance's role", f),
    })?;
    let role = roles
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .ok_or_else(|| format!("{what}: this instance has no IAM role (instance profile)"))?;
    if role.len() > 128
        || !role
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b))
    {
        return Err(format!(
            "{what}: the instance's role name is not a role name"
        ));
    }
    let answer = get(client
        .get(url(&format!(
            "latest/meta-data/iam/security-credentials/{role}"
        ))?)
        .header("x-aws-ec2-metadata-token", token)
        .send()
        .await)
    .await
    .map(zeroize::Zeroizing::new)
    .map_err(|f| fail(&format!("the credentials of role {role}"), f))?;
    let json: serde_json::Value = serde_json::from_str(&answer)
        .map_err(|_| format!("{what}: the credentials of role {role} are not JSON"))?;
    let code = json["Code"].as_str().unwrap_or("");
    if code != "Success" {
        return Err(format!(
            "{what}: the credentials of role {role} are not available (Code {:?})",
            code.chars()
                .filter(|c| !c.is_control())
                .take(64)
                .collect::<String>()
        ));
    }
    let field = |name: &str| {
        json[name]
            .as_str()
            .filter(|v| !v.is_empty())
            .ok_or_else(|| format!("{what}: the credentials of role {role} lack {name}"))
    };
    temporary(field, "Token", &what)
}

fn check_key_id(id: &str, what: &str) -> Result<String, String> {
    if id.is_empty() || id.len() > 128 || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(format!("{what} is not an access key id"));
    }
    Ok(id.to_string())
}

/// The keys of `[profile]` in a shared credentials file (INI: `key = value`, `#`/`;`
/// comments). Errors never quote a line (it could hold a secret).
fn from_profile(text: &str, profile: &str) -> Result<Option<Credentials>, String> {
    let mut in_section = false;
    let mut found = false;
    let (mut id, mut secret, mut token) = (None, None, None);
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(section) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            in_section = section.trim() == profile;
            found |= in_section;
            continue;
        }
        if !in_section {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = value.trim();
        match key.trim() {
            "aws_access_key_id" => id = Some(value.to_string()),
            "aws_secret_access_key" => secret = Some(Secret::new(value.as_bytes().to_vec())),
            "aws_session_token" => token = Some(Secret::new(value.as_bytes().to_vec())),
            _ => {}
        }
    }
    if !found {
        return Ok(None);
    }
    match (id, secret) {
        (Some(id), Some(secret)) => Ok(Some(Credentials {
            access_key_id: check_key_id(&id, "aws_access_key_id")?,
            secret,
            session_token: token,
        })),
        _ => Err(format!(
            "profile {profile:?} lacks aws_access_key_id or aws_secret_access_key"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_profile_and_never_quotes_it() {
        let text = "[default]\naws_access_key_id = AKIA1\naws_secret_access_key = s3cr3t\n\
                    # comment\n[ops]\naws_access_key_id=AKIA2\naws_secret_access_key = x/y+z\n\
                    aws_session_token = tok\n";
        let c = from_profile(text, "ops").unwrap().unwrap();
        assert_eq!(c.access_key_id, "AKIA2");
        assert_eq!(c.secret.expose(), b"x/y+z");
        assert_eq!(c.session_token.unwrap().expose(), b"tok");
        assert!(!format!("{:?}", from_profile(text, "default").unwrap()).contains("s3cr3t"));
        assert!(from_profile(text, "nope").unwrap().is_none());
        let e = from_profile("[p]\naws_secret_access_key = s3cr3t\n", "p").unwrap_err();
        assert!(!e.contains("s3cr3t"), "{e}");
        let e = from_profile(
            "[p]\naws_access_key_id = s3cr3t!\naws_secret_access_key=x\n",
            "p",
        )
        .unwrap_err();
        assert!(!e.contains("s3cr3t"), "{e}");
    }

    /// The example answer of STS's API reference (AssumeRoleWithWebIdentity), with an
    /// Expiration in the future.
    const STS_EXAMPLE: &str = r#"<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <SubjectFromWebIdentityToken>amzn1.account.AF6RHO7KZU5XRVQJGXK6HB56KR2A</SubjectFromWebIdentityToken>
    <Audience>client.5498841531868486423.1548@apps.example.com</Audience>
    <AssumedRoleUser>
      <Arn>arn:aws:sts::123456789012:assumed-role/FederatedWebIdentityRole/app1</Arn>
      <AssumedRoleId>AROACLKWSDQRAOEXAMPLE:app1</AssumedRoleId>
    </AssumedRoleUser>
    <Credentials>
      <SessionToken>AQoDYXdzEE0a8ANXXXXXXXXNO1ewxE5TijQyp+IEXAMPLE</SessionToken>
      <SecretAccessKey>wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY</SecretAccessKey>
      <Expiration>EXPIRES</Expiration>
      <AccessKeyId>ASgeIAIOSFODNN7EXAMPLE</AccessKeyId>
    </Credentials>
    <SourceIdentity>SourceIdentityValue</SourceIdentity>
    <Provider>www.amazon.com</Provider>
  </AssumeRoleWithWebIdentityResult>
  <ResponseMetadata>
    <RequestId>ad4156e9-bce1-11e2-82e6-6b6efEXAMPLE</RequestId>
  </ResponseMetadata>
</AssumeRoleWithWebIdentityResponse>"#;

    #[test]
    fn sts_answers_are_read_and_never_quoted() {
        let later =
            humantime::format_rfc3339_seconds(SystemTime::now() + Duration::from_secs(3600));
        let xml = STS_EXAMPLE.replace("EXPIRES", &later.to_string());
        let (c, expires) = sts_credentials(&xml, "sts").unwrap();
        assert_eq!(c.access_key_id, "ASgeIAIOSFODNN7EXAMPLE");
        assert_eq!(
            c.secret.expose(),
            b"wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY"
        );
        assert!(
            c.session_token
                .unwrap()
                .expose()
                .starts_with(b"AQoDYXdzEE0a8")
        );
        assert!(expires > SystemTime::now() + Duration::from_secs(3500));

        // The reference's own date (2014) is past: refused, not signed with.
        let past = STS_EXAMPLE.replace("EXPIRES", "2014-10-24T23:00:23Z");
        let e = sts_credentials(&past, "sts").unwrap_err();
        assert!(e.contains("expired"), "{e}");
        for broken in [
            STS_EXAMPLE
                .replace("<SessionToken>", "<Other>")
                .replace("</SessionToken>", "</Other>"),
            "<html>wJalrXUtnFEMI".to_string(),
            "<ErrorResponse><Error><Code>X</Code></Error></ErrorResponse>".to_string(),
        ] {
            let e =
                sts_credentials(&broken.replace("EXPIRES", &later.to_string()), "sts").unwrap_err();
            assert!(!e.contains("wJalr") && !e.contains("AQoD"), "{e}");
        }
    }

    #[test]
    fn the_metadata_endpoint_is_the_link_local_one_or_loopback() {
        for ok in [
            "http://169.254.169.254",
            "http://[fd00:ec2::254]",
            "http://127.0.0.1:45200",
            "http://localhost:8080",
        ] {
            assert!(parse_metadata_endpoint(ok).is_ok(), "{ok}");
        }
        for bad in [
            "https://169.254.169.254",
            "http://169.254.169.253",
            "http://metadata.example.com",
            "http://u:p@169.254.169.254",
            "http://169.254.169.254/latest",
            "file:///etc/passwd",
            "169.254.169.254",
        ] {
            assert!(parse_metadata_endpoint(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn role_arns_are_checked() {
        assert!(check_role_arn("arn:aws:iam::123456789012:role/latch-connector").is_ok());
        for bad in [
            "arn:aws:iam::1:role/x y",
            "role/latch",
            "arn:aws:iam::123456789012:role/$(id)",
            "arn:aws:iam::123456789012:role/x\nHost: evil",
        ] {
            assert!(check_role_arn(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn container_endpoints_are_the_agents_or_https() {
        let full = |u: &str| parse_container_endpoint(None, Some(u.to_string()));
        for ok in [
            "http://169.254.170.23/v1/credentials",
            "http://169.254.170.2/v2/credentials/abc",
            "http://[fd00:ec2::23]/v1/credentials",
            "http://127.0.0.1:45200/v1/credentials",
            "https://creds.internal.example.com/role",
        ] {
            assert!(full(ok).unwrap().is_some(), "{ok}");
        }
        for bad in [
            "http://creds.example.com/v1",
            "http://169.254.169.254/latest",
            "http://u:p@127.0.0.1/x",
            "file:///etc/passwd",
            "ftp://127.0.0.1/",
        ] {
            assert!(full(bad).is_err(), "{bad}");
        }
        let rel = |r: &str| parse_container_endpoint(Some(r.to_string()), None);
        assert_eq!(
            rel("/v2/credentials/1234").unwrap().unwrap().as_str(),
            "http://169.254.170.2/v2/credentials/1234"
        );
        for bad in [
            "v2/credentials",
            "//evil.example.com/x",
            "@evil.example.com/x",
        ] {
            assert!(rel(bad).is_err(), "{bad}");
        }
        assert!(parse_container_endpoint(None, None).unwrap().is_none());
    }
}
