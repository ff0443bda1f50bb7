//! AWS endpoints and credentials: where a request goes and what it is signed with. Signing
//! is [`crate::sigv4`]; where credentials come from, [`crate::creds`].

use latch_secret::Secret;

use crate::answer::is_loopback_or;

/// An access key, its secret, and a session token when temporary.
#[derive(Clone)]
pub struct Credentials {
    /// `AKIA…` / `ASIA…`: not secret; it appears in every signed request.
    pub access_key_id: String,
    /// The secret access key.
    pub secret: Secret,
    /// The session token of temporary credentials.
    pub session_token: Option<Secret>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, [redacted])", self.access_key_id)
    }
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

#[cfg(test)]
mod tests {
    use super::*;

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
