//! Run a *built* guest `.wasm` against scripted capabilities: no server needed.
//!
//! A script is the list of capability calls the guest is expected to make, in order, each
//! with the reply the guest should get. The guest runs in the real Latch runtime, so the
//! host's argument checks and policy apply exactly as in production; the policy is derived
//! from the script (the targets and secrets it names, plus any [`Script::allow`]).
//!
//! ```no_run
//! use latch_testkit::{Kit, Script};
//! let kit = Kit::built("ssh_servers");
//! let mut script = Script::new();
//! script.on_ssh("apono@127.0.0.2:22", &["getent", "passwd", "alice"]).exit(2, "");
//! let run = kit.run(&script, latch::runtime::Export::Describe);
//! run.assert_script_done();
//! ```
//!
//! A call the script did not expect is answered `failed` and reported by
//! [`Run::assert_script_done`] with the expected and actual call side by side.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use latch::caps::{
    Backend, BoxFuture, CapCall, CapError, CapReply, Outcome, Output, Policy, Secret, Target,
};
use latch::runtime::{
    AccessDetails, CallError, CallReport, Export, GrantRequest, Guest, Identity, Integration,
    Limits, Resource, Returned, Runtime, RuntimeConfig,
};

/// The runtime shared by every kit in the process (compiling is the slow part).
pub fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| Runtime::new(RuntimeConfig::default()).expect("start the runtime"))
}

/// Where `cargo build --profile guest --target wasm32-wasip2` puts guest `name`
/// (the crate name with `_` for `-`).
pub fn guest_path(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    target
        .join("wasm32-wasip2/guest")
        .join(format!("{}.wasm", name.replace('-', "_")))
}

/// A loaded guest, ready to be run against scripts.
#[derive(Clone)]
pub struct Kit {
    guest: Arc<Guest>,
    limits: Limits,
}

impl Kit {
    /// The built guest `name`; panics with the command to build it if it is missing.
    pub fn built(name: &str) -> Kit {
        let path = guest_path(name);
        if !path.exists() {
            panic!(
                "guest {} is not built; run `make guests` (or `cargo build --profile guest --target wasm32-wasip2 -p <crate>`)",
                path.display()
            );
        }
        Kit::load(&path).unwrap_or_else(|e| panic!("{e:#}"))
    }

    /// Load the guest at `path` (cached per path for the whole process).
    pub fn load(path: &Path) -> anyhow::Result<Kit> {
        static CACHE: OnceLock<Mutex<HashMap<PathBuf, Arc<Guest>>>> = OnceLock::new();
        let cache = CACHE.get_or_init(Default::default);
        if let Some(guest) = cache.lock().expect("cache lock").get(path) {
            return Ok(Kit::new(guest.clone()));
        }
        let bytes = std::fs::read(path)?;
        let guest = Arc::new(runtime().load(&bytes)?);
        cache
            .lock()
            .expect("cache lock")
            .insert(path.to_path_buf(), guest.clone());
        Ok(Kit::new(guest))
    }

    fn new(guest: Arc<Guest>) -> Kit {
        Kit {
            guest,
            limits: Limits::default(),
        }
    }

    /// Use `limits` for the calls of this kit.
    pub fn with_limits(mut self, limits: Limits) -> Kit {
        self.limits = limits;
        self
    }

    /// The guest's sha256.
    pub fn sha256(&self) -> &str {
        self.guest.sha256()
    }

    /// Run `export` against `script`, on a private single-threaded async runtime.
    pub fn run(&self, script: &Script, export: Export) -> Run {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("build a tokio runtime")
            .block_on(self.run_async(script, export))
    }

    /// Run `export` against `script` from async code.
    pub async fn run_async(&self, script: &Script, export: Export) -> Run {
        let backend = Arc::new(Scripted::new(script));
        let integration = Integration::new(
            "testkit",
            self.guest.clone(),
            script.policy(),
            backend.clone(),
            self.limits,
        );
        let report = integration.call(runtime(), export).await;
        let state = backend.state.lock().expect("script lock");
        Run {
            report,
            mismatches: state.mismatches.clone(),
            unmet: state.steps.iter().map(|s| s.expect.to_string()).collect(),
        }
    }
}

/// The expected capability calls of one run, in order, with their replies.
#[derive(Clone, Debug, Default)]
pub struct Script {
    steps: Vec<Step>,
    allow: Vec<String>,
}

/// One expected call and its reply; the reply defaults to an empty success.
#[derive(Clone, Debug)]
pub struct Step {
    expect: Expect,
    reply: Reply,
}

#[derive(Clone, Debug)]
enum Reply {
    Output(Output),
    Secret(Vec<u8>),
    Text(String),
    Error(CapError),
}

#[derive(Clone, Debug)]
enum Expect {
    Ssh {
        target: Target,
        argv: Vec<String>,
        stdin: Option<Vec<u8>>,
    },
    Winrm {
        target: Target,
        cmdlet: String,
        parameters: Vec<(String, Option<String>)>,
    },
    Secret(String),
    CaPublicKey,
    Sign {
        principals: Vec<String>,
        key_id: String,
        valid_before: Option<u64>,
    },
}

impl Expect {
    fn matches(&self, call: &CapCall) -> bool {
        match (self, call) {
            (
                Expect::Ssh {
                    target,
                    argv,
                    stdin,
                },
                CapCall::SshExec {
                    target: t,
                    argv: a,
                    stdin: s,
                },
            ) => target == t && argv == a && stdin.as_ref().is_none_or(|x| x == s),
            (
                Expect::Winrm {
                    target,
                    cmdlet,
                    parameters,
                },
                CapCall::WinrmInvoke {
                    target: t,
                    cmdlet: c,
                    parameters: p,
                },
            ) => target == t && cmdlet == c && parameters == p,
            (Expect::Secret(name), CapCall::SecretGet { name: n }) => name == n,
            (Expect::CaPublicKey, CapCall::CaPublicKey) => true,
            (
                Expect::Sign {
                    principals,
                    key_id,
                    valid_before,
                },
                CapCall::SignSshUser {
                    principals: p,
                    key_id: k,
                    valid_before: v,
                    ..
                },
            ) => principals == p && key_id == k && valid_before.is_none_or(|x| x == *v),
            _ => false,
        }
    }
}

impl std::fmt::Display for Expect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let call = match self {
            Expect::Ssh {
                target,
                argv,
                stdin,
            } => CapCall::SshExec {
                target: target.clone(),
                argv: argv.clone(),
                stdin: stdin.clone().unwrap_or_default(),
            },
            Expect::Winrm {
                target,
                cmdlet,
                parameters,
            } => CapCall::WinrmInvoke {
                target: target.clone(),
                cmdlet: cmdlet.clone(),
                parameters: parameters.clone(),
            },
            Expect::Secret(name) => CapCall::SecretGet { name: name.clone() },
            Expect::CaPublicKey => CapCall::CaPublicKey,
            Expect::Sign {
                principals,
                key_id,
                valid_before,
            } => CapCall::SignSshUser {
                public_key: String::new(),
                principals: principals.clone(),
                valid_before: valid_before.unwrap_or(0),
                key_id: key_id.clone(),
            },
        };
        write!(f, "{call}")
    }
}

/// Parse `[user@]host[:port]` (port 22 when absent) into a target.
pub fn target(text: &str) -> Target {
    let (user, rest) = match text.split_once('@') {
        Some((u, r)) => (Some(u.to_string()), r),
        None => (None, text),
    };
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => (h, p.parse().expect("port in target")),
        _ => (rest, 22),
    };
    Target {
        host: host.to_string(),
        port,
        user,
    }
}

impl Script {
    /// An empty script: the guest may make no capability call at all.
    pub fn new() -> Script {
        Script::default()
    }

    /// Also allow `rule` (an `allow` entry) without expecting a call to it.
    pub fn allow(&mut self, rule: &str) -> &mut Script {
        self.allow.push(rule.to_string());
        self
    }

    fn push(&mut self, expect: Expect, reply: Reply) -> &mut Step {
        self.steps.push(Step { expect, reply });
        self.steps.last_mut().expect("just pushed")
    }

    /// Expect `ssh.exec` of `argv` on `target` (`[user@]host[:port]`); replies exit 0.
    pub fn on_ssh(&mut self, target_text: &str, argv: &[&str]) -> &mut Step {
        let expect = Expect::Ssh {
            target: target(target_text),
            argv: argv.iter().map(|s| s.to_string()).collect(),
            stdin: None,
        };
        self.push(expect, Reply::Output(Output::default()))
    }

    /// Expect `winrm.invoke` of `cmdlet` with `parameters` on `target`; replies exit 0.
    pub fn on_winrm(
        &mut self,
        target_text: &str,
        cmdlet: &str,
        parameters: &[(&str, Option<&str>)],
    ) -> &mut Step {
        let expect = Expect::Winrm {
            target: target(target_text),
            cmdlet: cmdlet.to_string(),
            parameters: parameters
                .iter()
                .map(|(n, v)| (n.to_string(), v.map(str::to_string)))
                .collect(),
        };
        self.push(expect, Reply::Output(Output::default()))
    }

    /// Expect `secrets.get(name)`; replies with an empty value until [`Step::value`].
    pub fn on_secret(&mut self, name: &str) -> &mut Step {
        self.push(Expect::Secret(name.to_string()), Reply::Secret(Vec::new()))
    }

    /// Expect `certs.ca-public-key`; replies with [`Step::text`].
    pub fn on_ca_public_key(&mut self) -> &mut Step {
        self.push(Expect::CaPublicKey, Reply::Text(String::new()))
    }

    /// Expect `certs.sign-ssh-user` for `principals` and `key_id` (any validity).
    pub fn on_sign(&mut self, principals: &[&str], key_id: &str) -> &mut Step {
        let expect = Expect::Sign {
            principals: principals.iter().map(|s| s.to_string()).collect(),
            key_id: key_id.to_string(),
            valid_before: None,
        };
        self.push(expect, Reply::Text(String::new()))
    }

    /// The policy this script implies: its targets and secrets, plus [`Script::allow`].
    fn policy(&self) -> Policy {
        let mut allow = self.allow.clone();
        let mut secrets = Vec::new();
        for step in &self.steps {
            match &step.expect {
                Expect::Ssh { target, .. } | Expect::Winrm { target, .. } => {
                    allow.push(if target.host.contains(':') {
                        format!("[{}]:{}", target.host, target.port)
                    } else {
                        format!("{}:{}", target.host, target.port)
                    })
                }
                Expect::Secret(name) => secrets.push(name.clone()),
                _ => {}
            }
        }
        Policy::parse(&allow, &secrets).expect("script targets are valid allow rules")
    }
}

impl Step {
    /// Exit 0 with `stdout`.
    pub fn ok(&mut self, stdout: &str) -> &mut Step {
        self.exit(0, "");
        if let Reply::Output(out) = &mut self.reply {
            out.stdout = stdout.as_bytes().to_vec();
        }
        self
    }

    /// Exit `status` with `stderr`.
    pub fn exit(&mut self, status: i32, stderr: &str) -> &mut Step {
        self.reply = Reply::Output(Output {
            status,
            stdout: Vec::new(),
            stderr: stderr.as_bytes().to_vec(),
        });
        self
    }

    /// Also require the call's stdin to be `stdin`.
    pub fn stdin(&mut self, stdin: &[u8]) -> &mut Step {
        if let Expect::Ssh { stdin: s, .. } = &mut self.expect {
            *s = Some(stdin.to_vec());
        }
        self
    }

    /// Also require a certificate's (clamped) validity end to be `valid_before`.
    pub fn valid_before(&mut self, valid_before: u64) -> &mut Step {
        if let Expect::Sign {
            valid_before: v, ..
        } = &mut self.expect
        {
            *v = Some(valid_before);
        }
        self
    }

    /// Reply to a secret with `value`.
    pub fn value(&mut self, value: &[u8]) -> &mut Step {
        self.reply = Reply::Secret(value.to_vec());
        self
    }

    /// Reply to a certs call with `text`.
    pub fn text(&mut self, text: &str) -> &mut Step {
        self.reply = Reply::Text(text.to_string());
        self
    }

    /// Reply with `error` instead of a result.
    pub fn error(&mut self, error: CapError) -> &mut Step {
        self.reply = Reply::Error(error);
        self
    }
}

struct ScriptState {
    steps: VecDeque<Step>,
    seen: usize,
    mismatches: Vec<String>,
}

/// The backend that plays a script.
struct Scripted {
    state: Mutex<ScriptState>,
}

impl Scripted {
    fn new(script: &Script) -> Self {
        Scripted {
            state: Mutex::new(ScriptState {
                steps: script.steps.iter().cloned().collect(),
                seen: 0,
                mismatches: Vec::new(),
            }),
        }
    }
}

impl Backend for Scripted {
    fn call<'a>(
        &'a self,
        _integration: &'a str,
        call: &'a CapCall,
    ) -> BoxFuture<'a, Result<CapReply, CapError>> {
        let reply = {
            let mut state = self.state.lock().expect("script lock");
            state.seen += 1;
            let n = state.seen;
            match state.steps.front() {
                Some(step) if state.mismatches.is_empty() && step.expect.matches(call) => {
                    let step = state.steps.pop_front().expect("front exists");
                    match step.reply {
                        Reply::Output(o) => Ok(CapReply::Output(o)),
                        Reply::Secret(v) => Ok(CapReply::Secret(Secret::new(v))),
                        Reply::Text(t) => Ok(CapReply::Text(t)),
                        Reply::Error(e) => Err(e),
                    }
                }
                next => {
                    let expected =
                        next.map_or("no further call".to_string(), |s| s.expect.to_string());
                    state.mismatches.push(format!(
                        "capability call #{n} did not match the script:\n  expected: {expected}\n  got:      {call}"
                    ));
                    Err(CapError::Failed(format!(
                        "testkit: capability call #{n} was not in the script"
                    )))
                }
            }
        };
        Box::pin(async move { reply })
    }
}

/// The outcome of one scripted run.
#[derive(Debug)]
pub struct Run {
    /// What the runtime reported: result and capability-call records.
    pub report: CallReport,
    mismatches: Vec<String>,
    unmet: Vec<String>,
}

impl Run {
    /// Panic, with a readable diff, unless the guest made exactly the scripted calls.
    pub fn assert_script_done(&self) {
        let mut problems = self.mismatches.clone();
        if !self.unmet.is_empty() {
            problems.push(format!(
                "the guest never made these scripted calls:\n  {}",
                self.unmet.join("\n  ")
            ));
        }
        if !problems.is_empty() {
            panic!(
                "{}\n(guest result: {:?})",
                problems.join("\n"),
                self.report.result
            );
        }
    }

    /// Panic unless no capability call at all was carried out (refused ones are allowed).
    pub fn assert_nothing_carried_out(&self) {
        let carried: Vec<String> = self
            .report
            .records
            .iter()
            .filter(|r| !matches!(r.outcome, Outcome::Refused { .. }))
            .map(|r| r.call.to_string())
            .collect();
        assert!(carried.is_empty(), "calls were carried out: {carried:#?}");
    }

    /// The guest's error; panics if the call succeeded or failed otherwise.
    pub fn guest_error(&self) -> &latch::runtime::GuestError {
        match &self.report.result {
            Err(CallError::Guest(e)) => e,
            other => panic!("expected a guest error, got {other:?}"),
        }
    }

    /// The access details of a successful `grant`; panics otherwise.
    pub fn access(&self) -> &AccessDetails {
        match &self.report.result {
            Ok(Returned::Access(a)) => a,
            other => panic!("expected access details, got {other:?}"),
        }
    }

    /// The resources of a successful `discover`; panics otherwise.
    pub fn resources(&self) -> &[Resource] {
        match &self.report.result {
            Ok(Returned::Resources(r)) => r,
            other => panic!("expected resources, got {other:?}"),
        }
    }

    /// Panic unless the export returned `Ok(())`-like success.
    pub fn assert_ok(&self) {
        if let Err(e) = &self.report.result {
            panic!("expected success, got {e}");
        }
    }
}

/// A grant request for tests.
pub fn grant_request(
    grant_id: &str,
    resource_id: &str,
    permission: &str,
    email: &str,
    expires_at: u64,
) -> GrantRequest {
    GrantRequest {
        grant_id: grant_id.to_string(),
        resource_id: resource_id.to_string(),
        permission: permission.to_string(),
        identity: Identity {
            email: email.to_string(),
            username: None,
        },
        public_key: None,
        expires_at,
    }
}
