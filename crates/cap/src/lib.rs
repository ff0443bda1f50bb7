//! The capability core: what every capability the host lends a guest has in common, and
//! nothing of any one of them. A capability (`latch::caps::<name>`, or a crate of its own
//! like `latch-cap-log`) builds on this crate and is listed in the host's registry; this
//! crate names none.
//!
//! Every capability call a guest makes goes through the same three steps, in [`dispatch`]:
//! 1. **check** — the capability's own argument checks and the integration's [`Policy`];
//!    a refusal is answered `denied`/`invalid-request` and nothing is sent anywhere;
//! 2. **carry out** — by a [`Backend`]: the live one, the dry-run [`Recorder`] that answers
//!    every call with an empty success, or a test kit's script. In a **plan**, a call whose
//!    [`Effect`] is a change is not handed to the backend at all: it is recorded as
//!    `planned` and answered with its plan reply, while reads are carried out for real;
//! 3. **record** — a [`CallRecord`] (what was asked, what came of it, how long it took) for
//!    the caller of the guest: printed by `latch guest call`, and written to the audit log.
//!
//! A backend therefore never sees a call the policy refused, and a call is recorded whatever
//! its outcome. Secret values are never part of a record: a record holds the secret's name
//! (or a `secret-ref`'s name, `<secret:grant-password>`), and `stdin` is recorded by length.
//!
//! Each capability has the same shape (`ssh`, `winrm`, `ldap`, `cloud`, `secrets`, `certs`,
//! `log`): its call type and checks (`authorize`), its reply type ([`Answered`]), its
//! rendering and record, its policy [`policy::Slice`], its `Host` impls for every contract
//! version on a view of the [`CallState`] of its own, its live part and its test-kit half;
//! see `docs/CAPABILITIES.md` for how to add one.

pub mod directory;
pub mod kit;
pub mod live;
pub mod login;
pub mod policy;
mod state;
pub mod table;
pub mod text;

use std::future::Future;
use std::pin::Pin;
use std::time::Instant;

use serde::Serialize;

pub use latch_secret::{Scrubber, Secret};
pub use latch_secret_store::SecretStore;
pub use live::Live;
pub use policy::{Policy, Target};

pub use state::{CallSecrets, CallState, GrantScope, MemoryCapExceeded};

use latch_contract::SecretRef;

/// A boxed future, so that [`Backend`] stays object-safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Whether a call only reads the world or changes it. A guest says which (0.2's
/// `ssh.read`/`ssh.exec`); a plan carries out reads and only records changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Effect {
    /// Reads only.
    Read,
    /// Changes something.
    Change,
}

/// A typed WinRM parameter value (mirrors `winrm.value`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "type", content = "value")]
pub enum ParamValue {
    /// A string.
    Text(String),
    /// A whole number.
    Integer(i64),
    /// A boolean.
    Boolean(bool),
    /// A list of strings.
    TextList(Vec<String>),
    /// A value the guest does not hold; recorded by name.
    Secret(#[serde(serialize_with = "display")] SecretRef),
    /// A switch.
    Switch,
}

/// Serialize a value by its `Display` form (a `secret-ref` as `<secret:name>`), for records.
pub fn display<T: std::fmt::Display, S: serde::Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

/// The shape of a capability's call: everything the host does with a call is asked of the
/// call's own type, which lives in its capability's module. Central code (dispatch, records,
/// audit, plans) knows only this trait.
pub trait Call:
    std::fmt::Debug
    + std::fmt::Display
    + Send
    + Sync
    + std::panic::UnwindSafe
    + std::panic::RefUnwindSafe
    + 'static
{
    /// The WIT function, e.g. `ssh.exec`.
    fn capability(&self) -> &'static str;
    /// Does it only read, or change something? A plan carries out reads only.
    fn effect(&self) -> Effect;
    /// The server it acts on, if it acts on one.
    fn target(&self) -> Option<&Target> {
        None
    }
    /// The server it logs in to as the integration's service account, and the name of the
    /// login that proves that account there (its capability's, in [`login::Logins`]).
    fn login(&self) -> Option<(&'static str, &Target)> {
        None
    }
    /// The capability's argument checks, then the integration's policy, before anything is
    /// sent. May narrow the call (a certificate's validity is clamped to the grant): what is
    /// carried out and recorded is the narrowed call.
    fn authorize(&mut self, state: &CallState) -> Result<(), CapError>;
    /// Reads the host must make before the call can be fully authorized (an AD account
    /// given by name, to resolve to its DN): carried out by the same backend, recorded before
    /// the call, their answers handed to [`Call::resolve`].
    fn lookups(&self) -> Vec<CapCall> {
        Vec::new()
    }
    /// Finish authorizing with the lookups' answers, in order (may narrow the call: a name
    /// replaced by the DN it resolved to).
    fn resolve(
        &mut self,
        state: &CallState,
        answers: Vec<Result<CapReply, CapError>>,
    ) -> Result<(), CapError> {
        let _ = (state, answers);
        Ok(())
    }
    /// The audit record of the call: a JSON object holding no secret (names, lengths).
    fn record(&self) -> serde_json::Map<String, serde_json::Value>;
    /// The empty success a dry run, or a plan's change, answers it with.
    fn empty_reply(&self) -> CapReply;
    /// A boxed copy.
    fn clone_call(&self) -> Box<dyn Call>;
    /// For a backend (or a test) to see the concrete call: [`CapCall::get`].
    fn as_any(&self) -> &dyn std::any::Any;
}

/// One capability call, of any capability, after the guest's arguments were turned into it.
/// The `Display` form is the exact command as it would run (`ssh.exec apono@10.0.0.5:22:
/// sudo -n useradd -m alice`); the serialized form is the call's audit record.
pub struct CapCall(Box<dyn Call>);

impl CapCall {
    /// Wrap a capability's call.
    pub fn new(call: impl Call) -> Self {
        CapCall(Box::new(call))
    }

    /// The concrete call, if it is a `T`.
    pub fn get<T: Call>(&self) -> Option<&T> {
        self.0.as_any().downcast_ref()
    }

    /// The WIT function, e.g. `ssh.exec`.
    pub fn capability(&self) -> &'static str {
        self.0.capability()
    }

    /// Read or change.
    pub fn effect(&self) -> Effect {
        self.0.effect()
    }

    /// The server it acts on, if any.
    pub fn target(&self) -> Option<&Target> {
        self.0.target()
    }

    /// The server it logs in to as the service account, and the login's name.
    pub fn login(&self) -> Option<(&'static str, &Target)> {
        self.0.login()
    }

    /// The empty success a dry run, or a plan's change, answers it with.
    pub fn empty_reply(&self) -> CapReply {
        self.0.empty_reply()
    }

    /// Its audit record.
    pub fn record(&self) -> serde_json::Map<String, serde_json::Value> {
        self.0.record()
    }
}

impl Clone for CapCall {
    fn clone(&self) -> Self {
        CapCall(self.0.clone_call())
    }
}

impl std::fmt::Debug for CapCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::fmt::Display for CapCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.0, f)
    }
}

impl PartialEq for CapCall {
    fn eq(&self, other: &Self) -> bool {
        self.capability() == other.capability() && self.record() == other.record()
    }
}

impl Serialize for CapCall {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.record().serialize(s)
    }
}

/// The serialized form of a value, as a JSON object (for [`Call::record`]).
pub fn record_of(value: impl Serialize) -> serde_json::Map<String, serde_json::Value> {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => serde_json::Map::new(),
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

/// What a cmdlet returned (mirrors `winrm.cmdlet-output`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CmdletOutput {
    /// The objects of the output stream, as one JSON array.
    pub objects: String,
    /// The messages of the errors it wrote.
    pub errors: Vec<String>,
}

/// What a capability's calls are answered with: each capability has its own type (ssh's
/// [`Output`], winrm's [`CmdletOutput`], secrets' [`Secret`], the certificate or body text of
/// certs and cloud, ldap's entries), named by its call's [`Answered::Reply`]. Central code
/// (dispatch, records, backends) holds one only as a [`CapReply`] and asks it only this.
pub trait Reply: Clone + std::fmt::Debug + Send + Sync + 'static {
    /// Scrub every secret of `secrets` from what the reply carries (a secret's own value,
    /// `secrets.get`'s answer, is the one thing left as it is).
    fn scrub(&mut self, secrets: &Scrubber);
    /// The exit status of the command the call ran, if it ran one (kept in its record).
    fn status(&self) -> Option<i32> {
        None
    }
}

/// A capability call whose answer is a `Reply`: [`dispatch`] hands the guest's side of the
/// capability that type, never a shared enum to match.
pub trait Answered: Call {
    /// What the call is answered with.
    type Reply: Reply;
}

impl Reply for Output {
    fn scrub(&mut self, secrets: &Scrubber) {
        self.stdout = secrets.scrub_bytes(&self.stdout);
        self.stderr = secrets.scrub_bytes(&self.stderr);
    }
    fn status(&self) -> Option<i32> {
        Some(self.status)
    }
}

impl Reply for CmdletOutput {
    fn scrub(&mut self, secrets: &Scrubber) {
        self.objects = secrets.scrub(&self.objects);
        for e in &mut self.errors {
            *e = secrets.scrub(e);
        }
    }
}

/// A certificate, a public key, a cloud answer's body.
impl Reply for String {
    fn scrub(&mut self, secrets: &Scrubber) {
        *self = secrets.scrub(self);
    }
}

/// `secrets.get`'s answer: the one reply that is a secret, so the one not scrubbed.
impl Reply for Secret {
    fn scrub(&mut self, _: &Scrubber) {}
}

/// What a directory operation found: a search's entries; none for a change.
impl Reply for Vec<directory::Entry> {
    fn scrub(&mut self, secrets: &Scrubber) {
        for e in self {
            e.dn = secrets.scrub(&e.dn);
            for (_, values) in &mut e.attributes {
                for v in values {
                    *v = secrets.scrub(v);
                }
            }
        }
    }
}

/// The object-safe side of [`Reply`], for [`CapReply`].
trait AnyReply: std::fmt::Debug + Send + Sync {
    fn scrub(&mut self, secrets: &Scrubber);
    fn status(&self) -> Option<i32>;
    fn clone_box(&self) -> Box<dyn AnyReply>;
    fn type_name(&self) -> &'static str;
    fn as_any(&self) -> &dyn std::any::Any;
    fn as_any_mut(&mut self) -> &mut dyn std::any::Any;
    fn into_any(self: Box<Self>) -> Box<dyn std::any::Any>;
}

impl<T: Reply> AnyReply for T {
    fn scrub(&mut self, secrets: &Scrubber) {
        Reply::scrub(self, secrets)
    }
    fn status(&self) -> Option<i32> {
        Reply::status(self)
    }
    fn clone_box(&self) -> Box<dyn AnyReply> {
        Box::new(self.clone())
    }
    fn type_name(&self) -> &'static str {
        std::any::type_name::<T>()
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }
    fn into_any(self: Box<Self>) -> Box<dyn std::any::Any> {
        self
    }
}

/// What a backend answers to a [`CapCall`]: the call's capability's own [`Reply`], boxed.
pub struct CapReply(Box<dyn AnyReply>);

impl CapReply {
    /// Box a capability's reply.
    pub fn new(reply: impl Reply) -> Self {
        CapReply(Box::new(reply))
    }

    /// The reply as the `R` its call is answered with. Another type is a bug of the backend
    /// (a live part or a test script answering a call with another capability's reply),
    /// reported as the call's failure, once, here.
    pub fn take<R: Reply>(self) -> Result<R, CapError> {
        let name = self.0.type_name();
        self.0.into_any().downcast::<R>().map(|r| *r).map_err(|_| {
            CapError::Failed(format!(
                "the backend answered with a {name}, not the {} this call is answered with",
                std::any::type_name::<R>()
            ))
        })
    }

    /// The reply, if it is an `R`.
    pub fn get<R: Reply>(&self) -> Option<&R> {
        self.0.as_any().downcast_ref()
    }

    /// The reply, if it is an `R`, to change (a test script's builder).
    pub fn get_mut<R: Reply>(&mut self) -> Option<&mut R> {
        self.0.as_any_mut().downcast_mut()
    }

    /// The exit status of the command the call ran, if it ran one.
    pub fn status(&self) -> Option<i32> {
        self.0.status()
    }
}

impl Clone for CapReply {
    fn clone(&self) -> Self {
        CapReply(self.0.clone_box())
    }
}

impl std::fmt::Debug for CapReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Why a capability call failed (mirrors `types.error`, less `invalid-config`, which only a
/// guest reports).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "error", content = "message", rename_all = "kebab-case")]
pub enum CapError {
    /// The guest's arguments were malformed.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// What the call names does not exist (an HTTP 404, an AWS `*NotFound` code, LDAP
    /// `noSuchObject`, a secret no store holds): the one error a revoke may read as "gone".
    #[error("not found: {0}")]
    NotFound(String),
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

/// Who a call is carried out for: the integration, and the values it may name but not hold.
#[derive(Clone, Copy, Debug)]
pub struct CallContext<'a> {
    /// The integration's name.
    pub integration: &'a str,
    /// Values the host made for this guest call (`secret-ref`s resolve to these).
    pub secrets: &'a CallSecrets,
    /// Secrets the backend read for this guest call (see [`CallContext::reveal`]).
    pub resolved: &'a std::sync::Mutex<Vec<Secret>>,
}

impl CallContext<'_> {
    /// Say that carrying out a call used `secret` (a password read from the store, a named
    /// `secret-ref`'s value): it is then scrubbed from everything that leaves the guest
    /// call — errors, replies, records — in every form Latch makes (see
    /// [`Scrubber`]).
    pub fn reveal(&self, secret: &Secret) {
        let mut resolved = self.resolved.lock().unwrap_or_else(|e| e.into_inner());
        if !resolved.contains(secret) {
            resolved.push(secret.clone());
        }
    }
}

/// Carries out capability calls that passed the checks.
pub trait Backend: Send + Sync + 'static {
    /// Carry out `call` for `ctx.integration`.
    fn call<'a>(
        &'a self,
        ctx: CallContext<'a>,
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
        _: CallContext<'a>,
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
        _: CallContext<'a>,
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
    /// A change in a plan: recorded, not carried out.
    Planned,
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

/// One capability call, as the caller of a guest sees it afterwards: what it was, as it
/// may be shown and kept — every secret of the guest call scrubbed from it (the guest may
/// have put one into an argument; a server may have echoed one into an error).
#[derive(Clone, Serialize)]
pub struct CallRecord {
    /// The WIT function, e.g. `ssh.exec`.
    pub capability: &'static str,
    /// The call, as carried out (or, if refused, as the guest asked it), for its type's
    /// sake (`call.get::<ssh::Exec>()`): print [`CallRecord::command`] and keep the
    /// serialized record, which are scrubbed; this may hold what the guest passed.
    #[serde(skip)]
    pub call: CapCall,
    /// The call's audit record (see [`Call::record`]), scrubbed.
    #[serde(flatten)]
    pub detail: serde_json::Map<String, serde_json::Value>,
    /// The command as it would run (the call's `Display`), scrubbed.
    #[serde(skip)]
    pub command: String,
    /// How it ended (its error scrubbed).
    #[serde(flatten)]
    pub outcome: Outcome,
    /// Microseconds spent, checks included.
    pub micros: u64,
}

impl CallRecord {
    /// The record of `call`, which ended with `outcome`, scrubbed of `secrets`.
    pub fn new(call: CapCall, outcome: Outcome, micros: u64, secrets: &Scrubber) -> Self {
        let detail = match scrub_json(serde_json::Value::Object(call.record()), secrets) {
            serde_json::Value::Object(map) => map,
            _ => serde_json::Map::new(),
        };
        let outcome = match outcome {
            Outcome::Refused { error } => Outcome::Refused {
                error: error.scrubbed(secrets),
            },
            Outcome::Failed { error } => Outcome::Failed {
                error: error.scrubbed(secrets),
            },
            other => other,
        };
        CallRecord {
            capability: call.capability(),
            command: secrets.scrub(&call.to_string()),
            detail,
            call,
            outcome,
            micros,
        }
    }
}

impl std::fmt::Debug for CallRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallRecord")
            .field("command", &self.command)
            .field("outcome", &self.outcome)
            .field("micros", &self.micros)
            .finish()
    }
}

/// `value` with every string in it scrubbed of `secrets`.
fn scrub_json(value: serde_json::Value, secrets: &Scrubber) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::String(s) => Value::String(secrets.scrub(&s)),
        Value::Array(items) => {
            Value::Array(items.into_iter().map(|v| scrub_json(v, secrets)).collect())
        }
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (secrets.scrub(&k), scrub_json(v, secrets)))
                .collect(),
        ),
        other => other,
    }
}

impl CapError {
    /// The same error with every secret of `secrets` scrubbed from its message.
    pub fn scrubbed(self, secrets: &Scrubber) -> CapError {
        match self {
            CapError::InvalidRequest(m) => CapError::InvalidRequest(secrets.scrub(&m)),
            CapError::NotFound(m) => CapError::NotFound(secrets.scrub(&m)),
            CapError::Denied(m) => CapError::Denied(secrets.scrub(&m)),
            CapError::Unreachable(m) => CapError::Unreachable(secrets.scrub(&m)),
            CapError::Failed(m) => CapError::Failed(secrets.scrub(&m)),
        }
    }
}

impl CapReply {
    /// The same reply with every secret of `secrets` scrubbed from what it carries (a
    /// secret's own value, `secrets.get`'s answer, is the one thing left as it is).
    pub fn scrubbed(mut self, secrets: &Scrubber) -> CapReply {
        if !secrets.is_empty() {
            self.0.scrub(secrets);
        }
        self
    }
}

/// At most this many records are kept per guest call; later calls are only counted.
pub const MAX_RECORDS: usize = 10_000;

/// Check, carry out and record one capability call for the guest whose state is `state`.
///
/// The capability module that built `call` from the guest's arguments also authorizes it
/// (argument checks, then the policy); authorization may narrow the call (a certificate's
/// validity is clamped to the grant), and what is carried out and recorded is the narrowed call.
pub async fn dispatch<C: Answered>(state: &mut CallState, call: C) -> Result<C::Reply, CapError> {
    dispatch_all(state, vec![CapCall::new(call)])
        .await
        .pop()
        .expect("one call, one result")?
        .take()
}

/// [`dispatch`] for several calls at once: each is checked, then those that passed are
/// carried out **concurrently**, then each is recorded, in order. The results are in the
/// order of `calls`.
pub async fn dispatch_all(
    state: &mut CallState,
    calls: Vec<CapCall>,
) -> Vec<Result<CapReply, CapError>> {
    let started = Instant::now();
    let mut checked = Vec::with_capacity(calls.len());
    for mut call in calls {
        let mut verdict = call.0.authorize(state);
        let lookups = match &verdict {
            Ok(()) => call.0.lookups(),
            Err(_) => Vec::new(),
        };
        if !lookups.is_empty() {
            let mut answers = Vec::with_capacity(lookups.len());
            for lookup in lookups {
                answers.push(look_up(state, lookup).await);
            }
            verdict = call.0.resolve(state, answers);
        }
        let planned = state.plan && call.effect() == Effect::Change;
        if let Err(error) = &verdict {
            tracing::warn!(target: "latch::outcome", integration = %state.integration, capability = call.capability(), %error, "capability call refused");
        }
        checked.push((call, verdict, planned));
    }
    let ctx = CallContext {
        integration: &state.integration,
        secrets: &state.secrets,
        resolved: &state.resolved,
    };
    let backend = &state.backend;
    let carried =
        futures_util::future::join_all(checked.iter().map(|(call, verdict, planned)| async move {
            match verdict {
                Ok(()) if !planned => Some(backend.call(ctx, call).await),
                _ => None,
            }
        }))
        .await;
    let micros = started.elapsed().as_micros() as u64;
    // Nothing that leaves the call carries a secret of it: the errors and replies the guest
    // gets (a server may echo a password it was sent), and the records.
    let secrets = state.scrubber();
    let carried: Vec<_> = carried
        .into_iter()
        .map(|c| {
            c.map(|r| {
                r.map(|reply| reply.scrubbed(&secrets))
                    .map_err(|e| e.scrubbed(&secrets))
            })
        })
        .collect();
    let mut results = Vec::with_capacity(checked.len());
    for ((call, verdict, planned), carried) in checked.into_iter().zip(carried) {
        let (result, outcome) = match (verdict, carried) {
            (Err(error), _) => (Err(error.clone()), Outcome::Refused { error }),
            (Ok(()), None) => {
                debug_assert!(planned);
                (Ok(call.empty_reply()), Outcome::Planned)
            }
            (Ok(()), Some(result)) => {
                let outcome = match &result {
                    Ok(reply) => Outcome::Ok {
                        status: reply.status(),
                    },
                    Err(error) => Outcome::Failed {
                        error: error.clone(),
                    },
                };
                (result, outcome)
            }
        };
        state.record(CallRecord::new(call, outcome, micros, &secrets));
        results.push(result);
    }
    results
}

/// Carry out one of the host's own reads for a call (see [`Call::lookups`]) and record it.
async fn look_up(state: &mut CallState, lookup: CapCall) -> Result<CapReply, CapError> {
    let started = Instant::now();
    let result = {
        let ctx = CallContext {
            integration: &state.integration,
            secrets: &state.secrets,
            resolved: &state.resolved,
        };
        state.backend.call(ctx, &lookup).await
    };
    let secrets = state.scrubber();
    let result = result
        .map(|r| r.scrubbed(&secrets))
        .map_err(|e| e.scrubbed(&secrets));
    let outcome = match &result {
        Ok(_) => Outcome::Ok { status: None },
        Err(error) => Outcome::Failed {
            error: error.clone(),
        },
    };
    let micros = started.elapsed().as_micros() as u64;
    state.record(CallRecord::new(lookup, outcome, micros, &secrets));
    result
}

impl From<latch_contract::v0_3::types::Target> for Target {
    fn from(t: latch_contract::v0_3::types::Target) -> Self {
        Target {
            host: t.host,
            port: t.port,
            user: t.user,
        }
    }
}

impl From<Output> for latch_contract::v0_3::types::Output {
    fn from(o: Output) -> Self {
        latch_contract::v0_3::types::Output {
            status: o.status,
            stdout: o.stdout,
            stderr: o.stderr,
        }
    }
}

impl From<CapError> for latch_contract::GuestError {
    fn from(e: CapError) -> Self {
        use latch_contract::GuestError;
        match e {
            CapError::InvalidRequest(m) => GuestError::InvalidRequest(m),
            CapError::NotFound(m) => GuestError::NotFound(m),
            CapError::Denied(m) => GuestError::Denied(m),
            CapError::Unreachable(m) => GuestError::Unreachable(m),
            CapError::Failed(m) => GuestError::Failed(m),
        }
    }
}

/// Reject a string argument holding a NUL byte or over `max` bytes.
pub fn check_text(what: &str, value: &str, max: usize) -> Result<(), CapError> {
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

/// Check an account name: a POSIX-portable user name, `[a-z_][a-z0-9_-]{0,31}` (a
/// certificate's principals, an SSH target's user).
pub fn check_account_name(what: &str, name: &str) -> Result<(), CapError> {
    let mut bytes = name.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b == b'_');
    if !first_ok
        || name.len() > 32
        || !bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    {
        return Err(CapError::InvalidRequest(format!(
            "{what} {name:?} is not a valid account name ([a-z_][a-z0-9_-]{{0,31}})"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_is_taken_as_its_own_type_only() {
        let out = Output {
            status: 3,
            stdout: b"hunter2 here".to_vec(),
            stderr: Vec::new(),
        };
        let reply = CapReply::new(out.clone());
        assert_eq!(reply.status(), Some(3));
        assert_eq!(reply.clone().take::<Output>(), Ok(out));
        // Another capability's type is the backend's bug, said once, as the call's failure.
        match reply.take::<CmdletOutput>() {
            Err(CapError::Failed(m)) => {
                assert!(m.contains("Output") && m.contains("CmdletOutput"), "{m}")
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(CapReply::new(String::from("cert")).status(), None);
    }

    #[test]
    fn every_reply_but_a_secret_is_scrubbed() {
        let secret = Secret::new(b"hunter2".to_vec());
        let mut scrubber = Scrubber::new();
        scrubber.add(&secret);
        let out = CapReply::new(Output {
            status: 0,
            stdout: b"pw=hunter2".to_vec(),
            stderr: b"hunter2".to_vec(),
        })
        .scrubbed(&scrubber)
        .take::<Output>()
        .unwrap();
        assert!(!String::from_utf8_lossy(&out.stdout).contains("hunter2"));
        assert!(!String::from_utf8_lossy(&out.stderr).contains("hunter2"));
        let entries = CapReply::new(vec![directory::Entry {
            dn: "cn=hunter2".into(),
            attributes: vec![("description".into(), vec!["hunter2".into()])],
        }])
        .scrubbed(&scrubber)
        .take::<Vec<directory::Entry>>()
        .unwrap();
        assert!(!format!("{entries:?}").contains("hunter2"));
        let got = CapReply::new(secret.clone())
            .scrubbed(&scrubber)
            .take::<Secret>()
            .unwrap();
        assert_eq!(got.expose(), b"hunter2");
    }
}
