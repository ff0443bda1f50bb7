//! The live part of `cloud`: signed HTTPS requests to AWS, with retries and bounded answers.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use super::{AwsCall, MAX_ANSWER, creds, sigv4};
use crate::caps::live::LivePart;
use crate::caps::{BoxFuture, CallContext, CapCall, CapError, CapReply};

/// The cloud settings of every integration that has them.
#[derive(Clone, Debug, Default)]
pub struct CloudSettings {
    /// `[integration.aws]` per integration name.
    pub aws: HashMap<String, AwsSettings>,
    /// `[integration.azure]` per integration name.
    pub azure: HashMap<String, super::azure::AzureSettings>,
}

/// `[integration.aws]`'s connection settings.
#[derive(Clone, Debug, Default)]
pub struct AwsSettings {
    /// One endpoint for every service and region (tests, VPC endpoints, sovereign clouds);
    /// `None`: `https://{service}.{region}.amazonaws.com`.
    pub endpoint: Option<reqwest::Url>,
    /// The shared-credentials profile; `None`: the environment, then `AWS_PROFILE`/default.
    pub profile: Option<String>,
}

impl AwsSettings {
    /// Check an `endpoint` setting: `https://`, or `http://` to a loopback address only.
    pub fn parse_endpoint(text: &str) -> Result<reqwest::Url, String> {
        let url = reqwest::Url::parse(text).map_err(|e| format!("{text:?} is not a URL: {e}"))?;
        let ok = match url.scheme() {
            "https" => url.host().is_some(),
            "http" => is_loopback_or(&url, &[], &[]),
            _ => false,
        };
        if !ok || !url.username().is_empty() || url.password().is_some() {
            return Err(format!(
                "{text:?}: use https://host[:port] (plain http only to a loopback address, \
                 no user or password in the URL)"
            ));
        }
        if url.path() != "/" || url.query().is_some() {
            return Err(format!(
                "{text:?}: give no path or query, only scheme://host[:port]"
            ));
        }
        Ok(url)
    }
}

/// Is `url`'s host a loopback address (or `localhost`), or one of `v4` / `v6`: the places
/// plain http may go (a test peer, a link-local credentials agent).
pub(crate) fn is_loopback_or(
    url: &reqwest::Url,
    v4: &[std::net::Ipv4Addr],
    v6: &[std::net::Ipv6Addr],
) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback() || v4.contains(&ip),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback() || v6.contains(&ip),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    }
}

/// The most attempts of one request (throttling and server errors are retried).
pub(crate) const ATTEMPTS: u32 = 4;
/// The whole budget of one request, retries and waits included.
const BUDGET: Duration = Duration::from_secs(180);
/// The longest wait a `Retry-After` may ask for.
const MAX_WAIT: Duration = Duration::from_secs(20);

type AzureOf = (
    super::azure::AzureSettings,
    std::sync::Arc<super::azure::TokenCache>,
);

pub(crate) struct Part {
    settings: HashMap<String, AwsSettings>,
    azure: HashMap<String, AzureOf>,
    secrets: std::sync::Arc<crate::caps::SecretStore>,
    client: Option<reqwest::Client>,
}

impl Part {
    /// The part, with `[integration.aws]` and `[integration.azure]` per integration name.
    pub fn new(cloud: CloudSettings, secrets: &std::sync::Arc<crate::caps::SecretStore>) -> Self {
        let client = crate::http::builder(Duration::from_secs(10), BUDGET)
            .build()
            .ok();
        Part {
            settings: cloud.aws,
            azure: cloud
                .azure
                .into_iter()
                .map(|(k, v)| (k, (v, Default::default())))
                .collect(),
            secrets: secrets.clone(),
            client,
        }
    }
}

impl LivePart for Part {
    fn carry_out<'a>(
        &'a self,
        ctx: CallContext<'a>,
        call: &'a CapCall,
    ) -> Option<BoxFuture<'a, Result<CapReply, CapError>>> {
        if let Some(azure) = call.get::<super::AzureCall>() {
            return Some(Box::pin(async move {
                let (settings, tokens) = self.azure.get(ctx.integration).ok_or_else(|| {
                    CapError::Denied(format!(
                        "integration {:?} has no [integration.azure] table",
                        ctx.integration
                    ))
                })?;
                let client = self
                    .client
                    .as_ref()
                    .ok_or_else(|| CapError::Failed("no HTTP client (TLS set-up failed)".into()))?;
                super::azure::send(client, settings, tokens, &self.secrets, azure)
                    .await
                    .map(CapReply::Text)
            }));
        }
        let aws = call.get::<AwsCall>()?;
        Some(Box::pin(async move {
            let settings = self.settings.get(ctx.integration).ok_or_else(|| {
                CapError::Denied(format!(
                    "integration {:?} has no [integration.aws] table",
                    ctx.integration
                ))
            })?;
            let client = self
                .client
                .as_ref()
                .ok_or_else(|| CapError::Failed("no HTTP client (TLS set-up failed)".into()))?;
            send(client, settings, aws).await.map(CapReply::Text)
        }))
    }
}

/// The URL a call goes to.
fn url_of(settings: &AwsSettings, call: &AwsCall) -> Result<reqwest::Url, CapError> {
    match &settings.endpoint {
        Some(url) => Ok(url.clone()),
        None => reqwest::Url::parse(&format!(
            "https://{}.{}.amazonaws.com/",
            call.service, call.region
        ))
        .map_err(|e| CapError::Failed(format!("endpoint of {}: {e}", call.service))),
    }
}

/// What a call is called in messages: `ec2:DescribeInstances in us-east-1`.
fn what(call: &AwsCall) -> String {
    format!("{} in {}", call.qualified(), call.region)
}

/// Sign and send `call`, retrying throttling and server errors; the answer's body.
pub(crate) async fn send(
    client: &reqwest::Client,
    settings: &AwsSettings,
    call: &AwsCall,
) -> Result<String, CapError> {
    let url = url_of(settings, call)?;
    let body = call.body();
    let started = Instant::now();
    let mut attempt = 0;
    loop {
        attempt += 1;
        // Read at each attempt: a rotated key is used at once.
        let creds = creds::resolve(client, settings.profile.as_deref())
            .await
            .map_err(|e| CapError::Denied(format!("{}: {e}", what(call))))?;
        let request = signed(client, &url, call, &body, &creds)?;
        let outcome = match request.send().await {
            Ok(response) => read(response).await,
            Err(e) => Err(Failure::Transport(transport_error(&e))),
        };
        let failure = match outcome {
            Ok(body) => return Ok(body),
            Err(failure) => failure,
        };
        let Some(wait) = failure.retry_after(attempt, started) else {
            return Err(failure.into_cap_error(call, attempt));
        };
        tracing::debug!(action = %what(call), attempt, ?wait, "retrying an AWS call");
        tokio::time::sleep(wait).await;
    }
}

fn signed(
    client: &reqwest::Client,
    url: &reqwest::Url,
    call: &AwsCall,
    body: &str,
    creds: &creds::Credentials,
) -> Result<reqwest::RequestBuilder, CapError> {
    let host = match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        (None, _) => return Err(CapError::Failed(format!("endpoint {url} has no host"))),
    };
    let date = sigv4::amz_date(SystemTime::now());
    let mut headers = vec![
        (
            "content-type".to_string(),
            "application/x-www-form-urlencoded; charset=utf-8".to_string(),
        ),
        ("host".to_string(), host),
        ("x-amz-date".to_string(), date.clone()),
    ];
    let token = match &creds.session_token {
        Some(t) => Some(
            std::str::from_utf8(t.expose())
                .map_err(|_| CapError::Denied("AWS_SESSION_TOKEN is not UTF-8".into()))?
                .to_string(),
        ),
        None => None,
    };
    if let Some(t) = &token {
        headers.push(("x-amz-security-token".to_string(), t.clone()));
    }
    let authorization = sigv4::authorization(
        &sigv4::Request {
            method: "POST",
            path: "/",
            query: "",
            headers: &headers,
            body: body.as_bytes(),
        },
        &call.service,
        &call.region,
        &date,
        creds,
    );
    let mut request = client
        .post(url.clone())
        .header("content-type", &headers[0].1)
        .header("x-amz-date", date)
        .header("authorization", authorization)
        .body(body.to_string());
    if let Some(t) = token {
        request = request.header("x-amz-security-token", t);
    }
    Ok(request)
}

/// Why one attempt failed.
pub(crate) enum Failure {
    /// The endpoint answered with an error.
    Answer {
        status: u16,
        code: String,
        message: String,
        retry_after: Option<Duration>,
    },
    /// No answer: connection refused, TLS, timeout.
    Transport(String),
    /// The answer was larger than [`MAX_ANSWER`].
    TooBig,
}

impl Failure {
    /// How long to wait before attempt `attempt + 1`, or `None` to give up: throttling
    /// (429, `RequestLimitExceeded`, `Throttling*`), server errors and lost connections are
    /// retried with backoff and jitter, or after the `Retry-After` asked (at most
    /// [`MAX_WAIT`]), while attempts and the [`BUDGET`] last.
    pub(crate) fn retry_after(&self, attempt: u32, started: Instant) -> Option<Duration> {
        let (retry, hint) = match self {
            Failure::Answer {
                status,
                code,
                retry_after,
                ..
            } => (
                *status == 429
                    || *status >= 500
                    || matches!(
                        code.as_str(),
                        "RequestLimitExceeded"
                            | "Throttling"
                            | "ThrottlingException"
                            | "TooManyRequestsException"
                            | "IDPCommunicationError"
                    ),
                *retry_after,
            ),
            Failure::Transport(_) => (true, None),
            Failure::TooBig => (false, None),
        };
        let backoff = Duration::from_millis(250 << (attempt - 1).min(5));
        let jitter = Duration::from_millis(rand::random::<u64>() % 250);
        let wait = hint.unwrap_or(backoff + jitter).min(MAX_WAIT);
        (retry && attempt < ATTEMPTS && started.elapsed() + wait < BUDGET).then_some(wait)
    }

    fn into_cap_error(self, call: &AwsCall, attempts: u32) -> CapError {
        let tries = if attempts > 1 {
            format!(" (after {attempts} attempts)")
        } else {
            String::new()
        };
        match self {
            Failure::Transport(e) => {
                CapError::Unreachable(format!("{}: no answer{tries}: {e}", what(call)))
            }
            Failure::TooBig => CapError::Failed(format!(
                "{}: the answer is larger than the {} MiB the host accepts",
                what(call),
                MAX_ANSWER >> 20
            )),
            Failure::Answer {
                status,
                code,
                message,
                ..
            } => {
                let text = format!("{}: HTTP {status} {code}: {message}{tries}", what(call));
                match code.as_str() {
                    "AuthFailure"
                    | "SignatureDoesNotMatch"
                    | "InvalidClientTokenId"
                    | "UnrecognizedClientException"
                    | "ExpiredToken"
                    | "IncompleteSignature" => CapError::Denied(format!(
                        "{text} — the AWS credentials the connector holds were refused"
                    )),
                    "AccessDenied" | "UnauthorizedOperation" | "AccessDeniedException" => {
                        CapError::Denied(text)
                    }
                    _ => CapError::Failed(text),
                }
            }
        }
    }
}

pub(crate) fn transport_error(e: &reqwest::Error) -> String {
    // reqwest's Display includes the URL (no secret in it); add the causes.
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The body of a successful answer, or the failure an error answer says.
pub(crate) async fn read(mut response: reqwest::Response) -> Result<String, Failure> {
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    if response
        .content_length()
        .is_some_and(|n| n > MAX_ANSWER as u64)
    {
        return Err(Failure::TooBig);
    }
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_ANSWER {
                    return Err(Failure::TooBig);
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(e) => return Err(Failure::Transport(transport_error(&e))),
        }
    }
    if (200..300).contains(&status) {
        return String::from_utf8(body).map_err(|_| Failure::Answer {
            status,
            code: "NotUtf8".into(),
            message: "the answer is not UTF-8".into(),
            retry_after: None,
        });
    }
    let (code, message) = error_of(&body);
    Err(Failure::Answer {
        status,
        code,
        message,
        retry_after,
    })
}

/// The code and message of an AWS error body: XML (`<Code>`, `<Message>` wherever they are:
/// EC2 has two envelopes) or JSON (`__type`, `message`). Unknown shapes give the status only.
pub(crate) fn error_of(body: &[u8]) -> (String, String) {
    let text = String::from_utf8_lossy(body);
    let text = text.trim_start();
    let clip = |s: &str| -> String {
        let s: String = s.chars().filter(|c| !c.is_control()).take(300).collect();
        s
    };
    if text.starts_with('<')
        && let Ok(doc) = roxmltree::Document::parse(text)
    {
        let find = |name: &str| {
            doc.descendants()
                .find(|n| n.tag_name().name() == name)
                .and_then(|n| n.text())
                .map(clip)
        };
        if let Some(code) = find("Code") {
            return (code, find("Message").unwrap_or_default());
        }
    }
    if text.starts_with('{')
        && let Ok(v) = serde_json::from_str::<serde_json::Value>(text)
    {
        // AWS JSON: `__type` (maybe `namespace#Code`), `message`; Azure: `error.code`,
        // `error.message`; Entra ID: `error`, `error_description`.
        let code = v["__type"]
            .as_str()
            .or(v["code"].as_str())
            .or(v["error"]["code"].as_str())
            .or(v["error"]["status"].as_str())
            .or(v["error"].as_str())
            .unwrap_or("");
        let code = code.rsplit('#').next().unwrap_or(code);
        let message = v["message"]
            .as_str()
            .or(v["Message"].as_str())
            .or(v["error"]["message"].as_str())
            .or(v["error_description"].as_str())
            .unwrap_or("");
        if !code.is_empty() {
            return (clip(code), clip(message));
        }
    }
    (
        "Unknown".into(),
        "the answer is not an error document Latch knows".into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_envelopes() {
        let auth = br#"<?xml version="1.0" encoding="utf-8"?>
<ErrorResponse><Errors><Error><Code>AuthFailure</Code><Message>AWS was not able to validate the provided access credentials</Message><Type>Sender</Type></Error></Errors></ErrorResponse>"#;
        assert_eq!(error_of(auth).0, "AuthFailure");
        let ec2 = br#"<?xml version="1.0" encoding="utf-8"?>
<Response xmlns="http://ec2.amazonaws.com/doc/2016-11-15"><Errors><Error><Code>InvalidInstanceID.NotFound</Code><Message>The instance ID 'i-0' does not exist</Message></Error></Errors><RequestID>r</RequestID></Response>"#;
        assert_eq!(
            error_of(ec2),
            (
                "InvalidInstanceID.NotFound".into(),
                "The instance ID 'i-0' does not exist".into()
            )
        );
        let json = br#"{"__type": "com.amazonaws#ResourceNotFoundException", "message": "Secrets Manager can't find the specified secret."}"#;
        assert_eq!(error_of(json).0, "ResourceNotFoundException");
        assert_eq!(error_of(b"<html>500</html>").0, "Unknown");
        let arm = br#"{"error":{"code":"ExpiredAuthenticationToken","message":"The access token expiry UTC time is earlier than current UTC time."}}"#;
        assert_eq!(error_of(arm).0, "ExpiredAuthenticationToken");
        let entra = br#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided.","error_codes":[7000215]}"#;
        assert_eq!(
            error_of(entra),
            (
                "invalid_client".into(),
                "AADSTS7000215: Invalid client secret provided.".into()
            )
        );
    }

    #[test]
    fn endpoints_are_tls_unless_loopback() {
        assert!(AwsSettings::parse_endpoint("http://127.0.0.1:5000").is_ok());
        assert!(AwsSettings::parse_endpoint("https://ec2.eu-west-1.amazonaws.com").is_ok());
        for bad in [
            "http://10.0.0.5:5000",
            "http://ec2.amazonaws.com",
            "ftp://127.0.0.1",
            "https://user:pw@example.com",
            "https://example.com/path",
            "not a url",
        ] {
            assert!(AwsSettings::parse_endpoint(bad).is_err(), "{bad}");
        }
    }
}
