//! The CLI's client for a running connector (`--url`, token from `LATCH_TOKEN`).
//!
//! Defends the API token: it is read only from the environment (never a flag, so it stays out
//! of shell history and `ps`), and sent over `https://` (the server's certificate verified
//! against the system's roots, or the CA file in `LATCH_CA_FILE`) or over plain `http://`
//! to a loopback address only — a token never crosses a network in the clear.

use std::net::IpAddr;

use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::Value;

/// The environment variable holding the API token.
pub const TOKEN_ENV: &str = "LATCH_TOKEN";
/// The environment variable naming a CA file (PEM) the API's certificate is verified
/// against, instead of the system's roots.
pub const CA_ENV: &str = "LATCH_CA_FILE";

/// A connector's API at `http(s)://host:port`.
pub struct Remote {
    tls: bool,
    host: String,
    port: u16,
    token: String,
}

impl Remote {
    /// Check `url` (`http://127.0.0.1:8700`, `http://localhost:8700/`); the token comes from
    /// [`TOKEN_ENV`].
    pub fn from_env(url: &str) -> anyhow::Result<Remote> {
        Remote::new(url, std::env::var(TOKEN_ENV).ok())
    }

    /// Check `url` and `token`.
    pub fn new(url: &str, token: Option<String>) -> anyhow::Result<Remote> {
        let (tls, rest) = match (url.strip_prefix("https://"), url.strip_prefix("http://")) {
            (Some(rest), _) => (true, rest),
            (None, Some(rest)) => (false, rest),
            _ => bail!("--url {url:?}: give https://HOST:PORT (or http:// to this machine)"),
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        let (host, port) = authority
            .rsplit_once(':')
            .with_context(|| format!("--url {url:?}: give the port, e.g. http://127.0.0.1:8700"))?;
        let port: u16 = port
            .parse()
            .ok()
            .filter(|p| *p != 0)
            .with_context(|| format!("--url {url:?}: {port:?} is not a port"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let loopback =
            host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
        if !loopback && !tls {
            bail!(
                "--url {url:?}: the token would cross the network in the clear; use https:// \
                 (the connector's [api] tls_cert), or an SSH tunnel to it"
            );
        }
        let token = token
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .with_context(|| {
                format!(
                    "--url needs an API token in {TOKEN_ENV} (create one with `latch token create`)"
                )
            })?;
        Ok(Remote {
            tls,
            host: host.to_string(),
            port,
            token,
        })
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.call("GET", path, None).await
    }

    /// `POST path` with a JSON body.
    pub async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.call("POST", path, Some(body)).await
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        // A grant may take as long as its integration's deadline (at most 10 minutes).
        let mut builder = crate::http::builder(Duration::from_secs(10), Duration::from_secs(660));
        if self.tls
            && let Some(ca) = std::env::var_os(CA_ENV)
        {
            // That CA only, not the system's roots beside it.
            let ca = std::path::PathBuf::from(ca);
            let tls = crate::caps::table::tls_config(Some(&ca))
                .map_err(anyhow::Error::msg)
                .context(CA_ENV)?;
            builder = builder.tls_backend_preconfigured(tls);
        }
        let client = builder.build().context("cannot build the HTTP client")?;
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let scheme = if self.tls { "https" } else { "http" };
        let url = format!("{scheme}://{host}:{}{path}", self.port);
        let method = reqwest::Method::from_bytes(method.as_bytes())?;
        let mut request = client
            .request(method, &url)
            .bearer_auth(&self.token)
            .header("content-type", "application/json");
        if let Some(body) = body {
            request = request.body(body.to_string());
        }
        let response = request.send().await.map_err(|e| {
            anyhow::anyhow!(
                "cannot reach the connector at {}:{} (is `latch serve` running?): {}",
                self.host,
                self.port,
                e.without_url()
            )
        })?;
        let status = response.status();
        let bytes = response.bytes().await?;
        let value: Value = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
            Value::String(String::from_utf8_lossy(&bytes).chars().take(500).collect())
        });
        if !status.is_success() {
            let msg = value["error"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| value.to_string());
            bail!("the connector answered {status}: {msg}");
        }
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_anywhere_plain_http_to_loopback_only() {
        let token = || Some("latch_x".to_string());
        for good in [
            "http://127.0.0.1:8700",
            "http://localhost:8700/",
            "http://[::1]:8700",
            "https://127.0.0.1:8700",
            "https://connector.corp:8700",
        ] {
            Remote::new(good, token()).unwrap_or_else(|e| panic!("{good}: {e}"));
        }
        for (bad, why) in [
            ("ftp://127.0.0.1:8700", "give https://"),
            ("http://10.0.0.5:8700", "in the clear"),
            ("http://connector.corp:8700", "in the clear"),
            ("http://127.0.0.1", "give the port"),
            ("http://127.0.0.1:0", "not a port"),
            ("http://127.0.0.1:99999", "not a port"),
        ] {
            let e = Remote::new(bad, token()).err().expect(bad).to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
        let e = Remote::new("http://127.0.0.1:8700", Some(" ".into()))
            .err()
            .unwrap();
        assert!(e.to_string().contains("LATCH_TOKEN"), "{e}");
    }
}
