//! The live part of `cloud`: signed HTTPS requests to AWS, with retries and bounded answers.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use latch_cloud_auth::answer::{BUDGET, Failure, MAX_ANSWER, read, transport_error};
pub use latch_cloud_auth::aws::AwsSettings;

use crate::{AwsCall, creds, sigv4};
use latch_cap::live::LivePart;
use latch_cap::{BoxFuture, CallContext, CapCall, CapError, CapReply};

/// The cloud settings of every integration that has them.
#[derive(Clone, Debug, Default)]
pub struct CloudSettings {
    /// `[integration.aws]` per integration name.
    pub aws: HashMap<String, AwsSettings>,
    /// `[integration.azure]` per integration name.
    pub azure: HashMap<String, crate::azure::AzureSettings>,
}

impl CloudSettings {
    /// Each integration's clouds (its [`crate::table::CloudTables`]), split per cloud.
    pub fn from_tables(tables: HashMap<String, crate::table::CloudTables>) -> Self {
        let mut out = CloudSettings::default();
        for (name, t) in tables {
            if let Some(aws) = t.aws {
                out.aws.insert(name.clone(), aws);
            }
            if let Some(azure) = t.azure {
                out.azure.insert(name, azure);
            }
        }
        out
    }
}

type AzureOf = (
    crate::azure::AzureSettings,
    std::sync::Arc<crate::azure::TokenCache>,
);

pub struct Part {
    settings: HashMap<String, AwsSettings>,
    azure: HashMap<String, AzureOf>,
    secrets: std::sync::Arc<latch_cap::SecretStore>,
    client: Option<reqwest::Client>,
}

impl Part {
    /// The part, with `[integration.aws]` and `[integration.azure]` per integration name.
    pub fn new(cloud: CloudSettings, secrets: &std::sync::Arc<latch_cap::SecretStore>) -> Self {
        let client = latch_cloud_auth::http::builder(Duration::from_secs(10), BUDGET)
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
        if let Some(azure) = call.get::<crate::AzureCall>() {
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
                crate::azure::send(client, settings, tokens, &self.secrets, azure)
                    .await
                    .map(CapReply::new)
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
            send(client, settings, aws).await.map(CapReply::new)
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
pub async fn send(
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
            return Err(cap_error(failure, call, attempt));
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

/// Does an AWS error code say that what the call names does not exist? Every service
/// spells it in one of these ways: EC2's `InvalidInstanceID.NotFound`, Secrets Manager's
/// `ResourceNotFoundException`, IAM's `NoSuchEntity`, S3's `NoSuchKey`.
fn is_not_found_code(code: &str) -> bool {
    code == "NotFound"
        || code.ends_with(".NotFound")
        || code.ends_with("NotFoundException")
        || code.starts_with("NoSuch")
}

/// The capability error of a call that failed for good after `attempts`.
fn cap_error(failure: Failure, call: &AwsCall, attempts: u32) -> CapError {
    let tries = if attempts > 1 {
        format!(" (after {attempts} attempts)")
    } else {
        String::new()
    };
    match failure {
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
                _ if status == 404 || is_not_found_code(&code) => CapError::NotFound(text),
                _ => CapError::Failed(text),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use latch_cap::Effect;

    fn call() -> AwsCall {
        AwsCall {
            service: "ec2".into(),
            region: "eu-west-1".into(),
            action: "DescribeInstances".into(),
            parameters: Vec::new(),
            effect: Effect::Read,
        }
    }

    fn answer(status: u16, code: &str) -> CapError {
        let failure = Failure::Answer {
            status,
            code: code.into(),
            message: "m".into(),
            retry_after: None,
        };
        cap_error(failure, &call(), 1)
    }

    #[test]
    fn only_a_real_absence_is_not_found() {
        for (status, code) in [
            (400, "InvalidInstanceID.NotFound"),
            (400, "ResourceNotFoundException"),
            (404, "NoSuchEntity"),
            (404, "Whatever"),
        ] {
            assert!(
                matches!(answer(status, code), CapError::NotFound(m) if m.contains(code)),
                "{code}"
            );
        }
        for (status, code) in [
            (400, "InvalidInstanceID.Malformed"),
            (400, "InvalidParameterValue"),
            (500, "InternalError"),
            (400, "NotFoundish"),
        ] {
            assert!(
                matches!(answer(status, code), CapError::Failed(_)),
                "{code}"
            );
        }
        assert!(matches!(answer(403, "AccessDenied"), CapError::Denied(_)));
    }
}
