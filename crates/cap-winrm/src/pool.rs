//! WinRM connections and shells, reused per (integration, endpoint, user): within a guest
//! call and across calls, until unused for the idle timeout.
//!
//! Defends against running a command twice and against leaving shells behind:
//! - a reused shell that the server forgot (its idle timeout, a restart) is replaced only when
//!   the **Command** request itself was refused with "shell not found": the command never
//!   started, so it is sent once more in a new shell; no other failure is retried;
//! - a connection whose transport failed is dropped, never reused; one that idled out has its
//!   shell deleted (in the background) before it is dropped;
//! - every run has a deadline (the integration's `command_timeout`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::shell::{self, ExchangeError, ShellError};
use crate::transport::{AuthMethod, Connection, Credentials, Endpoint, TransportSettings};
use crate::wsman::{self, Context, Received};

/// `[integration.winrm]`'s transport settings.
#[derive(Clone)]
pub struct WinrmSettings {
    /// The account to log in as when a target names none (`user`, or the guest's
    /// `lifecycle.service-user`).
    pub default_user: Option<String>,
    /// The secret holding that account's password (`password_secret`, or the guest's
    /// `lifecycle.service-key-secret`).
    pub password_secret: Option<String>,
    /// Ports spoken to over HTTPS (default 5986); every other port is HTTP with NTLM sealing.
    pub https_ports: Vec<u16>,
    /// The CA file HTTPS certificates are verified against (else the system's roots).
    pub ca_file: Option<PathBuf>,
    /// Connection settings.
    pub transport: TransportSettings,
    /// Time one command may take.
    pub command_timeout: Duration,
    /// A connection unused this long is closed.
    pub idle_timeout: Duration,
}

impl std::fmt::Debug for WinrmSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WinrmSettings")
            .field("default_user", &self.default_user)
            .field("password_secret", &self.password_secret)
            .field("https_ports", &self.https_ports)
            .field("ca_file", &self.ca_file)
            .field("auth", &self.transport.auth)
            .field("allow_unencrypted", &self.transport.allow_unencrypted)
            .finish()
    }
}

impl WinrmSettings {
    /// The defaults: NTLM, HTTPS on 5986, system roots, 10 s to connect, 60 s per command,
    /// 60 s idle.
    pub fn defaults() -> Result<WinrmSettings, String> {
        Ok(WinrmSettings {
            default_user: None,
            password_secret: None,
            https_ports: vec![5986],
            ca_file: None,
            transport: TransportSettings {
                auth: AuthMethod::Ntlm,
                tls: Arc::new(latch_cap::table::tls_config(None)?),
                allow_unencrypted: false,
                connect_timeout: Duration::from_secs(10),
                request_timeout: Duration::from_secs(60),
            },
            command_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(60),
        })
    }

    /// The endpoint for `host:port` (HTTPS if the port is one of `https_ports`).
    pub fn endpoint(&self, host: &str, port: u16) -> Endpoint {
        Endpoint {
            host: host.to_string(),
            port,
            tls: self.https_ports.contains(&port),
        }
    }

    /// The WS-Management context of one run: OperationTimeout below the request timeout.
    fn context(&self, endpoint: &Endpoint) -> Context {
        let request = self.transport.request_timeout.as_secs().max(2);
        Context {
            to: endpoint.url(),
            max_envelope: 153_600,
            operation_timeout: (request - 1).min(20),
        }
    }
}

type Key = (String, Endpoint, String);

struct Idle {
    conn: Connection,
    shell: Option<String>,
    since: Instant,
}

/// Most idle connections kept per key.
const MAX_IDLE: usize = 4;

/// Open WinRM connections (each with its shell), reused across calls.
#[derive(Default)]
pub struct WinrmPool {
    idle: Mutex<HashMap<Key, Vec<Idle>>>,
}

impl WinrmPool {
    /// Run `run` on `endpoint` as `credentials.user`, on a reused connection and shell when
    /// one is idle.
    pub async fn run(
        &self,
        integration: &str,
        settings: &WinrmSettings,
        endpoint: &Endpoint,
        credentials: &Credentials,
        run: shell::Run<'_>,
    ) -> Result<Received, ShellError> {
        let key: Key = (
            integration.to_string(),
            endpoint.clone(),
            credentials.user.clone(),
        );
        let ctx = settings.context(endpoint);
        let started = Instant::now();
        let (mut conn, mut shell) = match self.take(&key, settings.idle_timeout) {
            Some(idle) => (idle.conn, idle.shell),
            None => (
                Connection::open(endpoint, &settings.transport, credentials).await?,
                None,
            ),
        };
        let mut fresh_shell = false;
        let result = loop {
            let id = match &shell {
                Some(id) => id.clone(),
                None => {
                    fresh_shell = true;
                    match conn.send_envelope(wsman::create_shell(&ctx)).await {
                        Ok(answer) => match wsman::shell_id(&answer) {
                            Ok(id) => {
                                shell = Some(id.clone());
                                id
                            }
                            Err(e) => break Err(e.into()),
                        },
                        Err(e) => break Err(e.into()),
                    }
                }
            };
            match shell::run_in_shell(&mut conn, &ctx, &id, run, started, settings.command_timeout)
                .await
            {
                Err(ShellError::ShellGone(_)) if !fresh_shell => {
                    tracing::debug!("WinRM shell {id} on {} is gone; a new one", endpoint.url());
                    shell = None;
                }
                other => break other,
            }
        };
        let keep = match &result {
            Ok(_) | Err(ShellError::Wsman(_)) | Err(ShellError::Deadline(_)) => true,
            Err(ShellError::ShellGone(_)) => {
                shell = None;
                true
            }
            Err(ShellError::Exchange(_)) => false,
        };
        if keep && !conn.is_closed() {
            self.give_back(key, conn, shell);
        }
        result
    }

    fn take(&self, key: &Key, idle_timeout: Duration) -> Option<Idle> {
        let mut idle = self.idle.lock().expect("pool lock");
        let list = idle.get_mut(key)?;
        let mut found = None;
        while let Some(entry) = list.pop() {
            if entry.since.elapsed() < idle_timeout && !entry.conn.is_closed() {
                found = Some(entry);
                break;
            }
            retire(entry);
        }
        found
    }

    fn give_back(&self, key: Key, conn: Connection, shell: Option<String>) {
        let mut idle = self.idle.lock().expect("pool lock");
        let list = idle.entry(key).or_default();
        list.push(Idle {
            conn,
            shell,
            since: Instant::now(),
        });
        while list.len() > MAX_IDLE {
            retire(list.remove(0));
        }
    }
}

/// Delete an idle connection's shell in the background, then drop the connection.
fn retire(entry: Idle) {
    let Idle {
        mut conn, shell, ..
    } = entry;
    let Some(shell) = shell else { return };
    if conn.is_closed() {
        return;
    }
    if let Ok(handle) = tokio::runtime::Handle::try_current() {
        handle.spawn(async move {
            let ctx = Context {
                to: conn.url(),
                max_envelope: 153_600,
                operation_timeout: 10,
            };
            if let Err(e) = conn.send_envelope(wsman::delete_shell(&ctx, &shell)).await {
                tracing::debug!("deleting idle WinRM shell {shell}: {e}");
            }
        });
    }
}

/// Turn a failure into the one error a guest sees: its class first (unreachable, TLS,
/// authentication, WS-Management fault, deadline), never a credential.
pub fn cap_error(target: &str, e: ShellError) -> latch_cap::CapError {
    use latch_cap::CapError;
    match e {
        ShellError::Exchange(ExchangeError::Unreachable(m)) => CapError::Unreachable(m),
        ShellError::Exchange(ExchangeError::Authentication(m)) => {
            CapError::Failed(format!("authentication failed: {m}"))
        }
        ShellError::Exchange(other) => CapError::Failed(other.to_string()),
        ShellError::Wsman(w) | ShellError::ShellGone(w) => {
            CapError::Failed(format!("{target}: {w}"))
        }
        ShellError::Deadline(d) => CapError::Failed(format!(
            "{target}: the command did not finish within {d:?} and was terminated"
        )),
    }
}
