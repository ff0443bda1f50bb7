//! AWS Secrets Manager's GetSecretValue (JSON 1.1 protocol), SigV4-signed with the host's
//! credentials.

use std::time::SystemTime;

use latch_cloud_auth::answer::error_of;
use latch_cloud_auth::aws::AwsSettings;
use latch_cloud_auth::{creds, sigv4};
use latch_secret::Secret;

use super::read_capped;

/// Secrets Manager's GetSecretValue (JSON 1.1 protocol), SigV4-signed.
pub(super) async fn get(
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
