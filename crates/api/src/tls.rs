//! The API over TLS: rustls with the certificate and key from files, reloaded when they
//! change, and the accept loop that serves the router on it.
//!
//! Defends the bearer tokens, and the private keys and passwords grants deliver, on the way:
//! beyond loopback the API speaks TLS (or plain HTTP only when `[api] insecure_http` says so,
//! warned at every start: see `config::check_api`). Certificates rotate without a restart:
//! the files are checked every [`RELOAD_EVERY`]; a new pair that loads is used for the next
//! handshake, one that does not is logged and the last good pair kept. Each connection's
//! handshake runs on a task of its own with a deadline, so a client that never finishes its
//! handshake holds up nobody else. The key file must not be readable by group or others.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// How often the certificate and key files are checked for a change.
pub const RELOAD_EVERY: Duration = Duration::from_secs(2);
/// Longest a client may take to finish its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The certificate and key in use, and where they come from.
#[derive(Debug)]
pub struct Reloading {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<(Arc<CertifiedKey>, Stamp)>,
}

/// What the files looked like when last loaded.
type Stamp = Option<(SystemTime, u64, SystemTime, u64)>;

fn stamp(cert: &Path, key: &Path) -> Stamp {
    let one = |p: &Path| {
        std::fs::metadata(p)
            .and_then(|m| Ok((m.modified()?, m.len())))
            .ok()
    };
    let (c, k) = (one(cert)?, one(key)?);
    Some((c.0, c.1, k.0, k.1))
}

/// Load a certificate chain and its private key (PEM), checked to belong together.
pub fn load(cert: &Path, key: &Path) -> anyhow::Result<CertifiedKey> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(key)
            .with_context(|| format!("cannot read the TLS key {}", key.display()))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            bail!(
                "the TLS key {} is readable by others (mode {:o}): chmod 600 it",
                key.display(),
                mode & 0o777
            );
        }
    }
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("cannot read the TLS certificate {}", cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("{} is not PEM certificates", cert.display()))?;
    if chain.is_empty() {
        bail!("{} holds no certificate", cert.display());
    }
    let key_der = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("{} is not a PEM private key", key.display()))?;
    let provider = rustls::crypto::ring::default_provider();
    let certified = CertifiedKey::from_der(chain, key_der, &provider).with_context(|| {
        format!(
            "the TLS key {} does not belong to the certificate {}",
            key.display(),
            cert.display()
        )
    })?;
    Ok(certified)
}

impl Reloading {
    /// Load `cert` and `key` now (an error stops the start).
    pub fn new(cert: &Path, key: &Path) -> anyhow::Result<Arc<Reloading>> {
        let loaded = load(cert, key)?;
        Ok(Arc::new(Reloading {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            current: RwLock::new((Arc::new(loaded), stamp(cert, key))),
        }))
    }

    /// Load the files again if they changed since the last load; keep the last good pair if
    /// the new one does not load. `true` if a new pair is in use.
    pub fn reload_if_changed(&self) -> bool {
        let now = stamp(&self.cert, &self.key);
        if now.is_none() || now == self.current.read().unwrap_or_else(|e| e.into_inner()).1 {
            return false;
        }
        match load(&self.cert, &self.key) {
            Ok(loaded) => {
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = (Arc::new(loaded), now);
                tracing::info!(cert = %self.cert.display(), "api: TLS certificate reloaded");
                eprintln!(
                    "latch serve: TLS certificate {} reloaded",
                    self.cert.display()
                );
                true
            }
            Err(e) => {
                tracing::error!(
                    "api: the changed TLS certificate or key does not load ({e:#}); keeping the last good one"
                );
                // Try again only when the files change again.
                self.current.write().unwrap_or_else(|e| e.into_inner()).1 = now;
                false
            }
        }
    }

    /// The rustls server configuration that asks this for its certificate at each handshake.
    pub fn server_config(self: &Arc<Self>) -> anyhow::Result<Arc<rustls::ServerConfig>> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("TLS")?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

impl ResolvesServerCert for Reloading {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .0
                .clone(),
        )
    }
}

/// Serve `app` over TLS on `listener` until `stop` resolves; then let open connections
/// finish (at most 10 s). The certificate files are checked for changes meanwhile.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    certs: Arc<Reloading>,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let acceptor = tokio_rustls::TlsAcceptor::from(certs.server_config()?);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut reload = tokio::time::interval(RELOAD_EVERY);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = reload.tick() => {
                certs.reload_if_changed();
            }
            accepted = listener.accept() => {
                let (tcp, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!("api: accept failed: {e}");
                        continue;
                    }
                };
                let acceptor = acceptor.clone();
                let app = app.clone();
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => tls,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, "api: TLS handshake failed: {e}");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "api: TLS handshake timed out");
                            return;
                        }
                    };
                    let service = hyper_util::service::TowerToHyperService::new(app);
                    let conn = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), service);
                    if let Err(e) = watcher.watch(conn).await {
                        tracing::debug!(%peer, "api: connection ended: {e}");
                    }
                });
            }
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(10), graceful.shutdown()).await;
    Ok(())
}
