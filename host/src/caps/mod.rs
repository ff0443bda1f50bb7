//! Capabilities the host lends to guests: one module per WIT interface, one shape each.
//!
//! Every capability call a guest makes goes through the same three steps, in [`dispatch`]:
//! 1. **check** — the capability's own argument checks and the integration's [`Policy`];
//!    a refusal is answered `denied`/`invalid-request` and nothing is sent anywhere;
//! 2. **carry out** — by a [`Backend`]: the live one, the dry-run [`Recorder`] that answers
//!    every call with an empty success, or a test kit's script;
//! 3. **record** — a [`CallRecord`] (what was asked, what came of it, how long it took) for
//!    the caller of the guest: printed by `latch guest call`, and later written to the audit log.
//!
//! A backend therefore never sees a call the policy refused, and a call is recorded whatever
//! its outcome. Secret values are never part of a record: a record holds the secret's name,
//! and `stdin` is recorded by length only.

pub mod certs;
pub mod live;
pub mod log;
pub mod policy;
pub mod secrets;
pub mod ssh;
pub mod winrm;

use std::future::Future;
use std::pin::Pin;
use std::time::Instant;

use serde::Serialize;

pub use live::Live;
pub use policy::{Policy, Target};
pub use secrets::{Secret, SecretStore};

use crate::runtime::CallState;

/// A boxed future, so that [`Backend`] stays object-safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One capability call, after the guest's arguments were checked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "capability")]
pub enum CapCall {
    /// `ssh.exec`
    #[serde(rename = "ssh.exec")]
    SshExec {
        /// Where to run.
        target: Target,
        /// Program and arguments; quoted by the host.
        argv: Vec<String>,
        /// Bytes for the command's standard input (recorded by length only).
        #[serde(rename = "stdin_bytes", serialize_with = "len_only")]
        stdin: Vec<u8>,
    },
    /// `winrm.invoke`
    #[serde(rename = "winrm.invoke")]
    WinrmInvoke {
        /// Where to run.
        target: Target,
        /// The cmdlet, e.g. `Add-ADGroupMember`.
        cmdlet: String,
        /// Named parameters; `None` is a switch.
        parameters: Vec<(String, Option<String>)>,
    },
    /// `secrets.get`
    #[serde(rename = "secrets.get")]
    SecretGet {
        /// The secret's name (never its value).
        name: String,
    },
    /// `certs.ca-public-key`
    #[serde(rename = "certs.ca-public-key")]
    CaPublicKey,
    /// `certs.sign-ssh-user`, with validity already clamped to the grant.
    #[serde(rename = "certs.sign-ssh-user")]
    SignSshUser {
        /// The requester's public key, OpenSSH format.
        public_key: String,
        /// Principals (account names) the certificate is valid for.
        principals: Vec<String>,
        /// End of validity, Unix seconds.
        valid_before: u64,
        /// Key id written into the certificate (the grant id).
        key_id: String,
    },
}

fn len_only<S: serde::Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(bytes.len() as u64)
}

impl CapCall {
    /// The WIT name of the capability function, e.g. `ssh.exec`.
    pub fn capability(&self) -> &'static str {
        match self {
            CapCall::SshExec { .. } => "ssh.exec",
            CapCall::WinrmInvoke { .. } => "winrm.invoke",
            CapCall::SecretGet { .. } => "secrets.get",
            CapCall::CaPublicKey => "certs.ca-public-key",
            CapCall::SignSshUser { .. } => "certs.sign-ssh-user",
        }
    }

    /// The empty success a dry run answers this call with.
    pub fn empty_reply(&self) -> CapReply {
        match self {
            CapCall::SshExec { .. } | CapCall::WinrmInvoke { .. } => {
                CapReply::Output(Output::default())
            }
            CapCall::SecretGet { .. } => CapReply::Secret(Secret::new(Vec::new())),
            CapCall::CaPublicKey | CapCall::SignSshUser { .. } => CapReply::Text(String::new()),
        }
    }
}

/// One line with the exact command as it would run, e.g.
/// `ssh.exec apono@10.0.0.5:22: sudo -n useradd -m alice`.
impl std::fmt::Display for CapCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CapCall::SshExec {
                target,
                argv,
                stdin,
            } => {
                write!(f, "ssh.exec {target}: {}", ssh::quote_argv(argv))?;
                if !stdin.is_empty() {
                    write!(f, " <stdin {} bytes>", stdin.len())?;
                }
                Ok(())
            }
            CapCall::WinrmInvoke {
                target,
                cmdlet,
                parameters,
            } => write!(
                f,
                "winrm.invoke {target}: {}",
                winrm::powershell_command(cmdlet, parameters)
            ),
            CapCall::SecretGet { name } => write!(f, "secrets.get {name}"),
            CapCall::CaPublicKey => f.write_str("certs.ca-public-key"),
            CapCall::SignSshUser {
                principals,
                valid_before,
                key_id,
                ..
            } => write!(
                f,
                "certs.sign-ssh-user principals={} valid_before={valid_before} key_id={key_id}",
                principals.join(",")
            ),
        }
    }
}

/// The result of a command on a server (mirrors `types.output`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Output {
    /// Exit status.
    pub status: i32,
    /// Standard output.
    pub stdout: Vec<u8>,
    /// Standard error.
    pub stderr: Vec<u8>,
}

/// What a backend answers to a [`CapCall`].
#[derive(Debug)]
pub enum CapReply {
    /// For `ssh.exec` and `winrm.invoke`.
    Output(Output),
    /// For `secrets.get`.
    Secret(Secret),
    /// For the `certs` functions.
    Text(String),
}

/// Why a capability call failed (mirrors `types.error`, less `invalid-config`, which only a
/// guest reports).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "error", content = "message", rename_all = "kebab-case")]
pub enum CapError {
    /// The guest's arguments were malformed.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The policy (or the server) refused.
    #[error("denied: {0}")]
    Denied(String),
    /// The target could not be reached.
    #[error("unreachable: {0}")]
    Unreachable(String),
    /// Anything else.
    #[error("failed: {0}")]
    Failed(String),
}

/// Carries out capability calls that passed the checks.
pub trait Backend: Send + Sync + 'static {
    /// Carry out `call` for integration `integration`.
    fn call<'a>(
        &'a self,
        integration: &'a str,
        call: &'a CapCall,
    ) -> BoxFuture<'a, Result<CapReply, CapError>>;
}

/// The dry-run backend: answers every call with its empty success and runs nothing.
///
/// The calls themselves are in the call's [`CallRecord`]s, as for any backend.
#[derive(Clone, Copy, Debug, Default)]
pub struct Recorder;

impl Backend for Recorder {
    fn call<'a>(
        &'a self,
        _: &'a str,
        call: &'a CapCall,
    ) -> BoxFuture<'a, Result<CapReply, CapError>> {
        Box::pin(async move { Ok(call.empty_reply()) })
    }
}

/// A backend that carries out nothing and says so: for `latch guest call` without
/// `--dry-run` and `latch check`, which have no credentials to act with.
#[derive(Clone, Copy, Debug, Default)]
pub struct Unavailable;

impl Backend for Unavailable {
    fn call<'a>(
        &'a self,
        _: &'a str,
        call: &'a CapCall,
    ) -> BoxFuture<'a, Result<CapReply, CapError>> {
        Box::pin(async move {
            Err(CapError::Failed(format!(
                "{} is not carried out here: `latch guest call` runs a guest live only through \
                 a latch.toml (`latch grant`, `latch revoke`); use --dry-run to preview",
                call.capability()
            )))
        })
    }
}

/// How one capability call ended, as recorded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum Outcome {
    /// Carried out; for commands, the exit status.
    Ok {
        /// Exit status of a command, if the call ran one.
        #[serde(skip_serializing_if = "Option::is_none")]
        status: Option<i32>,
    },
    /// Refused by a check or the policy before anything was sent.
    Refused {
        /// Why.
        error: CapError,
    },
    /// Passed the checks but failed when carried out.
    Failed {
        /// Why.
        error: CapError,
    },
}

/// One capability call, as the caller of a guest sees it afterwards.
#[derive(Clone, Debug, Serialize)]
pub struct CallRecord {
    /// The call, as carried out (or, if refused, as the guest asked it).
    #[serde(flatten)]
    pub call: CapCall,
    /// How it ended.
    #[serde(flatten)]
    pub outcome: Outcome,
    /// Microseconds spent, checks included.
    pub micros: u64,
}

/// At most this many records are kept per guest call; later calls are only counted.
pub const MAX_RECORDS: usize = 10_000;

/// Check, carry out and record one capability call for the guest whose state is `state`.
///
/// The capability module that built `call` from the guest's arguments also authorizes it
/// (argument checks, then the policy); authorization may narrow the call (a certificate's
/// validity is clamped to the grant), and what is carried out and recorded is the narrowed call.
pub(crate) async fn dispatch(
    state: &mut CallState,
    mut call: CapCall,
) -> Result<CapReply, CapError> {
    let started = Instant::now();
    let capability = call.capability();
    let checked = match &call {
        CapCall::SshExec { .. } => ssh::authorize(state, &mut call),
        CapCall::WinrmInvoke { .. } => winrm::authorize(state, &mut call),
        CapCall::SecretGet { .. } => secrets::authorize(state, &mut call),
        CapCall::CaPublicKey | CapCall::SignSshUser { .. } => certs::authorize(state, &mut call),
    };
    let (result, outcome) = match checked {
        Err(error) => {
            tracing::warn!(integration = %state.integration, capability, %error, "capability call refused");
            let outcome = Outcome::Refused {
                error: error.clone(),
            };
            (Err(error), outcome)
        }
        Ok(()) => {
            let result = state.backend.call(&state.integration, &call).await;
            let outcome = match &result {
                Ok(CapReply::Output(out)) => Outcome::Ok {
                    status: Some(out.status),
                },
                Ok(_) => Outcome::Ok { status: None },
                Err(error) => Outcome::Failed {
                    error: error.clone(),
                },
            };
            (result, outcome)
        }
    };
    state.record(CallRecord {
        call,
        outcome,
        micros: started.elapsed().as_micros() as u64,
    });
    result
}

/// Reject a string argument holding a NUL byte or over `max` bytes.
pub(crate) fn check_text(what: &str, value: &str, max: usize) -> Result<(), CapError> {
    if value.len() > max {
        return Err(CapError::InvalidRequest(format!(
            "{what} is {} bytes, more than the {max} allowed",
            value.len()
        )));
    }
    if value.contains('\0') {
        return Err(CapError::InvalidRequest(format!(
            "{what} contains a NUL byte"
        )));
    }
    Ok(())
}
