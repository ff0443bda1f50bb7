//! One answer of a cloud endpoint: read within bounds, its error's code and message, and
//! whether (and when) to try again. Shared by the `cloud` capability and the secret stores.

use std::time::{Duration, Instant};

/// The largest answer body accepted (a DescribeInstances page of 1,000 instances is about
/// 3 MB).
pub const MAX_ANSWER: usize = 32 << 20;

/// The most attempts of one request (throttling and server errors are retried).
pub const ATTEMPTS: u32 = 4;
/// The whole budget of one request, retries and waits included.
pub const BUDGET: Duration = Duration::from_secs(180);
/// The longest wait a `Retry-After` may ask for.
const MAX_WAIT: Duration = Duration::from_secs(20);

/// Is `url`'s host a loopback address (or `localhost`), or one of `v4` / `v6`: the places
/// plain http may go (a test peer, a link-local credentials agent).
pub fn is_loopback_or(
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

/// Why one attempt failed.
pub enum Failure {
    /// The endpoint answered with an error.
    Answer {
        /// The HTTP status.
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
    pub fn retry_after(&self, attempt: u32, started: Instant) -> Option<Duration> {
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
}

/// A transport error's text with its causes (no secret in it: reqwest shows the URL).
pub fn transport_error(e: &reqwest::Error) -> String {
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
pub async fn read(mut response: reqwest::Response) -> Result<String, Failure> {
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
pub fn error_of(body: &[u8]) -> (String, String) {
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
}
