//! The live `ssh.exec`: russh, key authentication, pinned host keys, reused connections.
//!
//! Defends against a man in the middle and against leaking the service key:
//! - host keys are checked against the integration's OpenSSH `known_hosts` file before any
//!   credential is sent; a changed key is refused with both fingerprints, an unknown one is
//!   refused unless `trust_on_first_use = true`, which records it;
//! - the service user's private key is read from the secret store when a connection is
//!   opened, held only by that connection, and never logged or returned;
//! - each command runs with a timeout and bounded output; argv is quoted by the host.
//!
//! Connections are kept per (integration, host, port, user) and reused until idle for the
//! configured time, so a grant's several commands pay one handshake.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::ChannelMsg;
use russh::client::{self, Handle};
use russh::keys::{HashAlg, PrivateKey, PrivateKeyWithHashAlg, PublicKeyOrCertificate};

use crate::quote_argv;
use latch_cap::SecretStore;
use latch_cap::{CapError, Output, Target};

/// Most bytes kept of a command's stdout, and of its stderr.
pub const MAX_OUTPUT: usize = 4 << 20;

/// How one integration reaches its servers over SSH (`[integration.ssh]` in `latch.toml`).
#[derive(Clone, Debug)]
pub struct SshSettings {
    /// Secret holding the service user's private key (base64 of the PEM, or the PEM).
    pub key_secret: String,
    /// The account to log in as when a target names none (`[integration.ssh] user`, or the
    /// guest's `lifecycle.service-user`).
    pub default_user: Option<String>,
    /// OpenSSH known_hosts file pinning the servers' host keys.
    pub known_hosts: PathBuf,
    /// Record unknown host keys instead of refusing them.
    pub trust_on_first_use: bool,
    /// Time to connect and authenticate.
    pub connect_timeout: Duration,
    /// Time one command may take.
    pub command_timeout: Duration,
    /// A connection unused this long is closed.
    pub idle_timeout: Duration,
}

type Key = (String, String, u16, String);

/// One pooled connection slot; its own lock, so connecting to one server never waits for
/// another server's handshake.
type Slot = Arc<tokio::sync::Mutex<Option<Arc<Handle<HostKeyCheck>>>>>;

/// Open SSH connections, reused across calls.
#[derive(Default)]
pub struct SshPool {
    slots: Mutex<HashMap<Key, Slot>>,
}

impl SshPool {
    /// Run `argv` on `target` for `integration`, connecting (or reconnecting) as needed.
    pub async fn exec(
        &self,
        integration: &str,
        settings: &SshSettings,
        secrets: &SecretStore,
        target: &Target,
        argv: &[String],
        stdin: &[u8],
    ) -> Result<Output, CapError> {
        let user = target
            .user
            .clone()
            .or_else(|| settings.default_user.clone())
            .ok_or_else(|| {
                CapError::InvalidRequest(format!(
                    "{target} names no account and integration {integration:?} has no service \
                     user (set [integration.ssh] user, or the guest's config)"
                ))
            })?;
        let key = (
            integration.to_string(),
            target.host.clone(),
            target.port,
            user.clone(),
        );
        let command = quote_argv(argv);
        // A pooled connection may have died since it was last used. Retry once on a fresh
        // connection, but only when the command cannot have started: the session channel
        // was never opened, so no exec request left this process. Once it has, a failure
        // is reported and never retried — a grant's `useradd` or KRL update must not run
        // twice because a connection broke half-way.
        for attempt in 0..2 {
            let handle = self
                .connection(&key, settings, secrets, target, &user)
                .await?;
            match run(&handle, &command, stdin, settings.command_timeout).await {
                Ok(out) => return Ok(out),
                Err(RunError::NotStarted(e)) if attempt == 0 => {
                    tracing::debug!(%target, "pooled SSH connection failed ({e}); reconnecting");
                    *self.slot(&key).lock().await = None;
                }
                Err(RunError::NotStarted(e)) => {
                    return Err(CapError::Unreachable(format!("{target}: {e}")));
                }
                Err(RunError::Lost(why)) => {
                    *self.slot(&key).lock().await = None;
                    return Err(CapError::Unreachable(format!(
                        "{target}: the connection was lost after `{command}` was sent ({why}); \
                         it may or may not have run, and is not run again"
                    )));
                }
                Err(RunError::Timeout) => {
                    *self.slot(&key).lock().await = None;
                    return Err(CapError::Failed(format!(
                        "`{command}` on {target} did not finish within {:?}",
                        settings.command_timeout
                    )));
                }
            }
        }
        unreachable!("the loop returns")
    }

    fn slot(&self, key: &Key) -> Slot {
        let mut slots = self.slots.lock().expect("pool lock");
        slots.entry(key.clone()).or_default().clone()
    }

    async fn connection(
        &self,
        key: &Key,
        settings: &SshSettings,
        secrets: &SecretStore,
        target: &Target,
        user: &str,
    ) -> Result<Arc<Handle<HostKeyCheck>>, CapError> {
        let slot = self.slot(key);
        let mut slot = slot.lock().await;
        if let Some(handle) = slot.as_ref()
            && !handle.is_closed()
        {
            return Ok(handle.clone());
        }
        let handle = tokio::time::timeout(
            settings.connect_timeout,
            connect(settings, secrets, target, user),
        )
        .await
        .map_err(|_| {
            CapError::Unreachable(format!(
                "{target}: no SSH session within {:?}",
                settings.connect_timeout
            ))
        })??;
        prove_posix_shell(&handle, target, user, settings.command_timeout).await?;
        let handle = Arc::new(handle);
        *slot = Some(handle.clone());
        Ok(handle)
    }
}

/// What the shell probe prints: every character that POSIX single quotes keep literally but
/// other shells do not — a quote (written `'\''`), backslashes (an escape inside single
/// quotes for fish), a newline (an error inside quotes for csh and tcsh), `!` (history in
/// csh), `$`, backticks, `"`, glob and comment characters.
pub const SHELL_PROBE: &str = "latch-probe '\\' \\\\ \n$HOME `id` \"x\" ! * # ~";

/// sshd runs an exec request through the account's login shell, and Latch quotes argv for a
/// POSIX shell ([`crate::quote_argv`]). Before a connection runs any command, prove the shell
/// there reads that quoting as written: `printf %s PROBE` must print PROBE, byte for byte.
/// Otherwise (fish, csh, tcsh, a restricted shell…) refuse, before anything else is sent —
/// a command quoted for one shell and parsed by another is how injection happens.
async fn prove_posix_shell(
    handle: &Handle<HostKeyCheck>,
    target: &Target,
    user: &str,
    timeout: Duration,
) -> Result<(), CapError> {
    let argv = [
        "printf".to_string(),
        "%s".to_string(),
        SHELL_PROBE.to_string(),
    ];
    let command = quote_argv(&argv);
    let out = match run(handle, &command, &[], timeout).await {
        Ok(out) => out,
        Err(RunError::Timeout) => {
            return Err(CapError::Unreachable(format!(
                "{target}: the login shell of {user:?} did not answer a probe within {timeout:?}"
            )));
        }
        Err(RunError::NotStarted(e)) => {
            return Err(CapError::Unreachable(format!("{target}: {e}")));
        }
        Err(RunError::Lost(why)) => return Err(CapError::Unreachable(format!("{target}: {why}"))),
    };
    if out.status == 0 && out.stdout == SHELL_PROBE.as_bytes() {
        return Ok(());
    }
    let shown = |b: &[u8]| {
        let text = String::from_utf8_lossy(b);
        latch_cap::text::sanitize(&text.chars().take(120).collect::<String>())
    };
    Err(CapError::Denied(format!(
        "{target}: the login shell of {user:?} does not read POSIX-quoted commands as \
         written (a probe printed {:?}, status {}, stderr {:?}); Latch quotes every argument \
         for a POSIX shell, so it refuses to run commands there. Give {user:?} a POSIX login \
         shell (/bin/sh, /bin/bash, /bin/dash, /bin/zsh)",
        shown(&out.stdout),
        out.status,
        shown(&out.stderr)
    )))
}

async fn connect(
    settings: &SshSettings,
    secrets: &SecretStore,
    target: &Target,
    user: &str,
) -> Result<Handle<HostKeyCheck>, CapError> {
    let config = Arc::new(client::Config {
        inactivity_timeout: Some(settings.idle_timeout),
        nodelay: true,
        ..client::Config::default()
    });
    let refusal = Arc::new(Mutex::new(None));
    let check = HostKeyCheck {
        host: target.host.clone(),
        port: target.port,
        known_hosts: settings.known_hosts.clone(),
        trust_on_first_use: settings.trust_on_first_use,
        refusal: refusal.clone(),
    };
    let addr = (target.host.as_str(), target.port);
    let mut handle = match client::connect(config, addr, check).await {
        Ok(h) => h,
        Err(e) => {
            if let Some(why) = refusal.lock().expect("refusal lock").take() {
                return Err(CapError::Denied(why));
            }
            return Err(CapError::Unreachable(format!("{target}: {e}")));
        }
    };
    let private_key = service_key(secrets, &settings.key_secret)?;
    let hash = match handle.best_supported_rsa_hash().await {
        Ok(h) => h.flatten(),
        Err(_) => None,
    };
    let auth = handle
        .authenticate_publickey(
            user,
            PrivateKeyWithHashAlg::new(Arc::new(private_key), hash),
        )
        .await
        .map_err(|e| CapError::Unreachable(format!("{target}: authentication failed: {e}")))?;
    if !auth.success() {
        return Err(CapError::Denied(format!(
            "{target}: the server refused the service key of secret {:?} for user {user:?}",
            settings.key_secret
        )));
    }
    Ok(handle)
}

/// Log in to `target` as `user` on a fresh connection (never the pool) with the key in
/// secret `key_secret` instead of the configured one; `Ok` if the server accepts it. Used by
/// credential rotation before it switches keys.
pub async fn check_login(
    settings: &SshSettings,
    secrets: &SecretStore,
    key_secret: &str,
    target: &Target,
    user: &str,
) -> Result<(), CapError> {
    let mut settings = settings.clone();
    settings.key_secret = key_secret.to_string();
    let handle = tokio::time::timeout(
        settings.connect_timeout,
        connect(&settings, secrets, target, user),
    )
    .await
    .map_err(|_| CapError::Unreachable(format!("{target}: no SSH session")))??;
    let _ = handle
        .disconnect(russh::Disconnect::ByApplication, "", "en")
        .await;
    Ok(())
}

/// The OpenSSH public key line of the service key in secret `name`.
pub fn service_public_key(secrets: &SecretStore, name: &str) -> Result<String, CapError> {
    let key = service_key(secrets, name)?;
    key.public_key()
        .to_openssh()
        .map_err(|e| CapError::Failed(format!("cannot encode the public key of {name:?}: {e}")))
}

/// Decode the service user's key: base64 of an OpenSSH PEM, or the PEM itself, or a JSON
/// object (as the product we mirror stores it in a secret manager) whose
/// `base64_private_key` holds the former or `private_key` the latter. Errors never include
/// the key.
fn service_key(secrets: &SecretStore, name: &str) -> Result<PrivateKey, CapError> {
    use base64::Engine;
    let secret = secrets
        .get(name)
        .map_err(CapError::Failed)?
        .ok_or_else(|| {
            CapError::Failed(format!(
                "SSH key secret {name:?} is not in the secret store"
            ))
        })?;
    let raw = secret.expose();
    let text = zeroize::Zeroizing::new(String::from_utf8_lossy(raw).into_owned());
    let field;
    let text: std::borrow::Cow<'_, str> = if text.trim_start().starts_with('{') {
        // serde_json's own copy is not zeroized; the extracted key is.
        let json: serde_json::Value = serde_json::from_str(&text)
            .map_err(|_| CapError::Failed(format!("SSH key secret {name:?} is not valid JSON")))?;
        field = zeroize::Zeroizing::new(
            json["base64_private_key"]
                .as_str()
                .or(json["private_key"].as_str())
                .ok_or_else(|| {
                    CapError::Failed(format!(
                        "SSH key secret {name:?} is JSON without base64_private_key or private_key"
                    ))
                })?
                .to_string(),
        );
        std::borrow::Cow::Borrowed(field.as_str())
    } else {
        std::borrow::Cow::Borrowed(text.as_str())
    };
    let pem = if text.trim_start().starts_with("-----BEGIN") {
        text.into_owned()
    } else {
        let compact: String = text.split_whitespace().collect();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(compact.as_bytes())
            .map_err(|_| {
                CapError::Failed(format!(
                    "SSH key secret {name:?} is neither an OpenSSH PEM nor base64 of one"
                ))
            })?;
        String::from_utf8(bytes).map_err(|_| {
            CapError::Failed(format!("SSH key secret {name:?} does not decode to a PEM"))
        })?
    };
    russh::keys::decode_secret_key(&pem, None).map_err(|_| {
        CapError::Failed(format!(
            "SSH key secret {name:?} is not a usable unencrypted OpenSSH private key"
        ))
    })
}

/// How a command failed to give its output.
enum RunError {
    /// No session channel could be opened: the command was never sent, and can be retried.
    NotStarted(russh::Error),
    /// The exec request was sent, then the connection failed or closed before the command
    /// reported its exit status: it may have run, in part or whole.
    Lost(String),
    /// The command did not finish in time.
    Timeout,
}

async fn run(
    handle: &Handle<HostKeyCheck>,
    command: &str,
    stdin: &[u8],
    timeout: Duration,
) -> Result<Output, RunError> {
    let work = async {
        let mut channel = handle
            .channel_open_session()
            .await
            .map_err(RunError::NotStarted)?;
        // From here on the command may run on the server.
        let lost = |e: russh::Error| RunError::Lost(e.to_string());
        channel.exec(true, command).await.map_err(lost)?;
        if !stdin.is_empty() {
            channel.data(stdin).await.map_err(lost)?;
        }
        channel.eof().await.map_err(lost)?;
        let mut out = Output::default();
        let mut ended = false;
        while let Some(msg) = channel.wait().await {
            match msg {
                ChannelMsg::Data { data } => append(&mut out.stdout, &data),
                ChannelMsg::ExtendedData { data, ext: 1 } => append(&mut out.stderr, &data),
                ChannelMsg::ExitStatus { exit_status } => {
                    out.status = exit_status as i32;
                    ended = true;
                }
                ChannelMsg::ExitSignal { signal_name, .. } => {
                    let _ = write!(out.stderr, "[killed by signal {signal_name:?}]");
                    out.status = -1;
                    ended = true;
                }
                _ => {}
            }
        }
        if !ended {
            return Err(RunError::Lost(
                "the channel closed without an exit status".into(),
            ));
        }
        Ok(out)
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(result) => result,
        Err(_) => Err(RunError::Timeout),
    }
}

fn append(buf: &mut Vec<u8>, data: &[u8]) {
    let room = MAX_OUTPUT.saturating_sub(buf.len());
    buf.extend_from_slice(&data[..data.len().min(room)]);
}

/// Checks a server's host key against known_hosts (see the module docs).
pub struct HostKeyCheck {
    host: String,
    port: u16,
    known_hosts: PathBuf,
    trust_on_first_use: bool,
    refusal: Arc<Mutex<Option<String>>>,
}

impl HostKeyCheck {
    fn decide(&self, presented: &russh::keys::PublicKey) -> Result<(), String> {
        let shown = presented.fingerprint(HashAlg::Sha256);
        let where_ = format!("{}:{}", self.host, self.port);
        let pinned = russh::keys::known_hosts::known_host_keys_path(
            &self.host,
            self.port,
            &self.known_hosts,
        )
        .map_err(|e| format!("cannot read {}: {e}", self.known_hosts.display()))?;
        if pinned
            .iter()
            .any(|(_, k)| k.key_data() == presented.key_data())
        {
            return Ok(());
        }
        if !pinned.is_empty() {
            let pins: Vec<String> = pinned
                .iter()
                .map(|(line, k)| format!("{} (line {line})", k.fingerprint(HashAlg::Sha256)))
                .collect();
            return Err(format!(
                "{where_} presented host key {shown} but {} pins {}; refusing",
                self.known_hosts.display(),
                pins.join(", ")
            ));
        }
        if !self.trust_on_first_use {
            return Err(format!(
                "{where_} presented host key {shown}, which {} does not list; refusing \
                 (add it there, or set trust_on_first_use = true to record new hosts)",
                self.known_hosts.display()
            ));
        }
        let name = if self.port == 22 {
            self.host.clone()
        } else {
            format!("[{}]:{}", self.host, self.port)
        };
        let line = presented
            .to_openssh()
            .map_err(|e| format!("cannot encode host key: {e}"))?;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.known_hosts)
            .map_err(|e| {
                format!(
                    "cannot record host key in {}: {e}",
                    self.known_hosts.display()
                )
            })?;
        writeln!(file, "{name} {line}").map_err(|e| {
            format!(
                "cannot record host key in {}: {e}",
                self.known_hosts.display()
            )
        })?;
        tracing::warn!(host = %where_, fingerprint = %shown, "trusted a new host key on first use");
        Ok(())
    }
}

impl client::Handler for HostKeyCheck {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let presented = match key {
            PublicKeyOrCertificate::PublicKey { key, .. } => key.clone(),
            PublicKeyOrCertificate::Certificate(cert) => {
                russh::keys::PublicKey::from(cert.public_key().clone())
            }
        };
        match self.decide(&presented) {
            Ok(()) => Ok(true),
            Err(why) => {
                tracing::error!("{why}");
                *self.refusal.lock().expect("refusal lock") = Some(why);
                Ok(false)
            }
        }
    }
}
