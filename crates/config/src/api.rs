//! `[api]`: how `latch serve` speaks to callers (TLS, or plain HTTP only on loopback or when
//! the operator says so).

use super::*;

/// `[api]`: how `latch serve` speaks to callers.
#[derive(Clone, Debug, Default)]
pub struct ApiSettings {
    /// The certificate chain and private key files (PEM) of the API's TLS; reloaded when
    /// they change.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Plain HTTP on a non-loopback address, on purpose (warned at every start).
    pub insecure_http: bool,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct ApiSection {
    pub(super) tls_cert: Option<PathBuf>,
    pub(super) tls_key: Option<PathBuf>,
    #[serde(default)]
    pub(super) insecure_http: bool,
}

/// `[api]`: beyond loopback the API speaks TLS, or plain HTTP only when the operator says so
/// (bearer tokens, and the private keys and passwords grants deliver, would cross a network
/// in clear).
pub(super) fn check_api(
    s: ApiSection,
    listen: &std::net::SocketAddr,
    data_dir: &Path,
) -> anyhow::Result<ApiSettings> {
    let tls = match (s.tls_cert, s.tls_key) {
        (Some(c), Some(k)) => Some((data_dir.join(c), data_dir.join(k))),
        (None, None) => None,
        _ => bail!("set both tls_cert and tls_key (PEM files), or neither"),
    };
    if tls.is_some() && s.insecure_http {
        bail!("insecure_http = true and TLS at once: choose one");
    }
    if tls.is_none() && !s.insecure_http && !listen.ip().is_loopback() {
        bail!(
            "listen {listen} is not a loopback address: the API carries bearer tokens and the \
             private keys and passwords grants deliver, so beyond loopback it speaks TLS — set \
             [api] tls_cert and tls_key — or, knowingly, insecure_http = true (warned at \
             every start)"
        );
    }
    Ok(ApiSettings {
        tls,
        insecure_http: s.insecure_http,
    })
}
