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
//!
//! Reads and changes are told apart: [`Script::on_read`] expects `ssh.read`,
//! [`Script::on_ssh`] expects `ssh.exec` (a change). A guest picks its temporary file names
//! itself; an argv element such as `/etc/ssh/latch/.latch.{t1}` matches `.latch.` and 16
//! hex digits there, and binds `t1`, so every later `{t1}` must be the very same name.
//!
//! [`Kit::plan`] runs an export as a plan: reads get their scripted replies, changes are not
//! handed to the script at all (they are recorded as `planned`).

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use latch::caps::kit::{Expectation, Implied, Names};
use latch::caps::{
    Backend, BoxFuture, CallContext, CapCall, CapError, CapReply, CmdletOutput, Effect, Outcome,
    Output, ParamValue, Policy, Secret, Target, certs, secrets, ssh, winrm,
};
use latch::runtime::{
    AccessDetails, CallError, CallOptions, CallReport, CallSecrets, Export, GrantRequest, Granted,
    Guest, Identity, Integration, Lifecycle, Limits, Metadata, Page, Resource, Returned, Runtime,
    RuntimeConfig,
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

    /// The contract version the guest was built against (`0.1.0`, `0.2.0`, `0.3.0`).
    pub fn contract(&self) -> &'static str {
        self.guest.contract()
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
        self.run_with(script, export, CallOptions::default()).await
    }

    /// Run `export` as a plan: reads are answered by `script`, changes only recorded.
    pub fn plan(&self, script: &Script, export: Export) -> Run {
        let options = CallOptions {
            secrets: CallSecrets::default(),
            plan: true,
        };
        self.block_on(self.run_with(script, export, options))
    }

    /// Run `export` with `secrets` for the call (e.g. a grant password).
    pub fn run_with_secrets(&self, script: &Script, export: Export, secrets: CallSecrets) -> Run {
        let options = CallOptions {
            secrets,
            plan: false,
        };
        self.block_on(self.run_with(script, export, options))
    }

    fn block_on<T>(&self, run: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("build a tokio runtime")
            .block_on(run)
    }

    /// Run `export` with `options` as integration `name` under `policy`, its capability
    /// calls carried out by `backend` (e.g. the live one, against real servers).
    pub fn run_on(
        &self,
        name: &str,
        policy: latch::caps::Policy,
        backend: Arc<dyn latch::caps::Backend>,
        export: Export,
        options: CallOptions,
    ) -> CallReport {
        let integration = Integration::new(name, self.guest.clone(), policy, backend, self.limits);
        self.block_on(async move { integration.call_with(runtime(), export, options).await })
    }

    /// Run `export` against `script` with `options`.
    pub async fn run_with(&self, script: &Script, export: Export, options: CallOptions) -> Run {
        let backend = Arc::new(Scripted::new(script));
        let integration = Integration::new(
            "testkit",
            self.guest.clone(),
            script.policy(),
            backend.clone(),
            self.limits,
        );
        let report = integration.call_with(runtime(), export, options).await;
        let state = backend.state.lock().expect("script lock");
        Run {
            report,
            mismatches: state.mismatches.clone(),
            unmet: state.steps.iter().map(|s| s.expect.to_string()).collect(),
        }
    }
}

/// The attributes of a scripted directory entry: `[(name, [values])]`.
pub type EntryAttributes<'a> = &'a [(&'a str, &'a [&'a str])];

/// The expected capability calls of one run, in order, with their replies.
#[derive(Clone, Debug, Default)]
pub struct Script {
    steps: Vec<Step>,
    allow: Vec<String>,
    secrets: Vec<String>,
    cmdlets_read: Vec<String>,
    cmdlets_change: Vec<String>,
    /// `[integration.directory]` as written: read, change, groups.
    directory: (Vec<String>, Vec<String>, Vec<String>),
    /// The account WinRM logs in as.
    winrm_account: Option<String>,
}

/// One expected call and its reply; the reply defaults to the expectation's empty success.
#[derive(Clone, Debug)]
pub struct Step {
    expect: Box<dyn Expectation>,
    reply: Result<CapReply, CapError>,
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

    /// Lend the directory bounds `[integration.directory]` would: `read`, `change`, `groups`
    /// as the operator writes them. A script implies none (every directory call is refused
    /// without them), so a refusal is tested against the bounds as written.
    pub fn directory(&mut self, read: &[&str], change: &[&str], groups: &[&str]) -> &mut Script {
        let own = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        self.directory = (own(read), own(change), own(groups));
        self
    }

    /// Name the account WinRM logs in as (`[integration.winrm] user`): the only one a new
    /// service password may be set on.
    pub fn winrm_account(&mut self, account: &str) -> &mut Script {
        self.winrm_account = Some(account.to_string());
        self
    }

    /// Also allow `rule` (an `allow` entry) without expecting a call to it.
    pub fn allow(&mut self, rule: &str) -> &mut Script {
        self.allow.push(rule.to_string());
        self
    }

    /// Expect `expect` (any capability's kit expectation), replying its default.
    pub fn on(&mut self, expect: impl Expectation) -> &mut Step {
        let reply = Ok(expect.default_reply());
        self.steps.push(Step {
            expect: Box::new(expect),
            reply,
        });
        self.steps.last_mut().expect("just pushed")
    }

    fn ssh(&mut self, target_text: &str, argv: &[&str], effect: Effect) -> &mut Step {
        self.on(ssh::kit::ExpectExec {
            target: target(target_text),
            argv: argv.iter().map(|s| s.to_string()).collect(),
            stdin: None,
            effect,
        })
    }

    /// Expect `ssh.exec` (a change) of `argv` on `target` (`[user@]host[:port]`); replies
    /// exit 0. An element may hold a `{name}` (see the module docs).
    pub fn on_ssh(&mut self, target_text: &str, argv: &[&str]) -> &mut Step {
        self.ssh(target_text, argv, Effect::Change)
    }

    /// Expect `ssh.read` of `argv` on `target`; replies exit 0.
    pub fn on_read(&mut self, target_text: &str, argv: &[&str]) -> &mut Step {
        self.ssh(target_text, argv, Effect::Read)
    }

    /// Expect the Linux guests' first command on a server (`linux::probe`: `sudo -n /bin/sh
    /// -c PROBE latch-probe ACCOUNT [GROUP …]`, a read); replies exit 0 — give it the probe's
    /// answer, or an exit status and stderr.
    pub fn on_linux_probe(
        &mut self,
        target_text: &str,
        account: &str,
        groups: &[&str],
    ) -> &mut Step {
        let script = latch_guest_sdk::linux::compact(latch_guest_sdk::linux::PROBE_SCRIPT);
        let mut argv = vec![
            "sudo",
            "-n",
            "/bin/sh",
            "-c",
            &script,
            "latch-probe",
            account,
        ];
        argv.extend_from_slice(groups);
        self.on_read(target_text, &argv)
    }

    /// Expect `winrm.invoke` (a change) of `cmdlet` with `parameters` on `target`; replies
    /// with no objects and no errors.
    pub fn on_winrm(
        &mut self,
        target_text: &str,
        cmdlet: &str,
        parameters: &[(&str, ParamValue)],
    ) -> &mut Step {
        self.winrm(target_text, cmdlet, parameters, Effect::Change)
    }

    /// Expect an `ldap` call `op` on `target` (`host:port`), DNs as the host serializes
    /// them; a search replies no entries, a change nothing.
    pub fn on_ldap(&mut self, target_text: &str, op: latch::caps::ldap::Op) -> &mut Step {
        self.on(latch::caps::ldap::kit::ExpectLdap {
            target: target(target_text),
            op,
        })
    }

    /// Expect `winrm.read` of `cmdlet` with `parameters` on `target`.
    pub fn on_winrm_read(
        &mut self,
        target_text: &str,
        cmdlet: &str,
        parameters: &[(&str, ParamValue)],
    ) -> &mut Step {
        self.winrm(target_text, cmdlet, parameters, Effect::Read)
    }

    fn winrm(
        &mut self,
        target_text: &str,
        cmdlet: &str,
        parameters: &[(&str, ParamValue)],
        effect: Effect,
    ) -> &mut Step {
        self.on(winrm::kit::ExpectInvoke {
            target: target(target_text),
            cmdlet: cmdlet.to_string(),
            parameters: parameters
                .iter()
                .map(|(n, v)| (n.to_string(), v.clone()))
                .collect(),
            effect,
        })
    }

    /// Also allow the cmdlets `read` (for `winrm.read`) and `change` (for `winrm.invoke`),
    /// beyond those the script expects.
    pub fn allow_cmdlets(&mut self, read: &[&str], change: &[&str]) -> &mut Script {
        self.cmdlets_read.extend(read.iter().map(|s| s.to_string()));
        self.cmdlets_change
            .extend(change.iter().map(|s| s.to_string()));
        self
    }

    /// Expect `secrets.get(name)`; replies with an empty value until [`Step::value`].
    pub fn on_secret(&mut self, name: &str) -> &mut Step {
        self.on(secrets::kit::ExpectGet {
            name: name.to_string(),
        })
    }

    /// Expect `certs.ca-public-key`; replies with [`Step::text`].
    pub fn on_ca_public_key(&mut self) -> &mut Step {
        self.on(certs::kit::ExpectCaPublicKey)
    }

    /// Expect `certs.sign-ssh-user` for `principals` and `key_id` (any validity).
    pub fn on_sign(&mut self, principals: &[&str], key_id: &str) -> &mut Step {
        self.on(certs::kit::ExpectSign {
            principals: principals.iter().map(|s| s.to_string()).collect(),
            key_id: key_id.to_string(),
            valid_before: None,
        })
    }

    /// Also let the guest read (or name as a `secret-ref`) secret `name` without expecting
    /// a `secrets.get` of it.
    pub fn allow_secret(&mut self, name: &str) -> &mut Script {
        self.secrets.push(name.to_string());
        self
    }

    /// The policy this script implies: its targets, secrets and cmdlets, plus what
    /// [`Script::allow`], [`Script::allow_secret`] and [`Script::allow_cmdlets`] added.
    fn policy(&self) -> Policy {
        let mut implied = Implied::new(self.allow.clone(), self.secrets.clone());
        let cmdlets = implied.part::<winrm::kit::ImpliedCmdlets>();
        cmdlets.read.extend(self.cmdlets_read.iter().cloned());
        cmdlets.change.extend(self.cmdlets_change.iter().cloned());
        for step in &self.steps {
            step.expect.implies(&mut implied);
        }
        let (read, change, groups) = &self.directory;
        let bases = latch::caps::directory::Bases::parse(read, change, groups)
            .expect("script DNs are valid");
        let policy = implied
            .policy()
            .expect("script targets, cmdlets and cloud scopes are valid")
            .with(bases);
        match &self.winrm_account {
            Some(account) => policy.with(winrm::lent::ServiceAccount(account.clone())),
            None => policy,
        }
    }
}

impl Step {
    /// Exit 0 with `stdout`.
    pub fn ok(&mut self, stdout: &str) -> &mut Step {
        self.exit(0, "");
        if let Ok(reply) = &mut self.reply
            && let Some(out) = reply.get_mut::<Output>()
        {
            out.stdout = stdout.as_bytes().to_vec();
        }
        self
    }

    /// Exit `status` with `stderr`.
    pub fn exit(&mut self, status: i32, stderr: &str) -> &mut Step {
        self.reply = Ok(CapReply::new(Output {
            status,
            stdout: Vec::new(),
            stderr: stderr.as_bytes().to_vec(),
        }));
        self
    }

    /// Also require the call's stdin to be `stdin`.
    pub fn stdin(&mut self, stdin: &[u8]) -> &mut Step {
        if let Some(e) = self
            .expect
            .as_any_mut()
            .downcast_mut::<ssh::kit::ExpectExec>()
        {
            e.stdin = Some(stdin.to_vec());
        }
        self
    }

    /// Also require a certificate's (clamped) validity end to be `valid_before`.
    pub fn valid_before(&mut self, valid_before: u64) -> &mut Step {
        if let Some(e) = self
            .expect
            .as_any_mut()
            .downcast_mut::<certs::kit::ExpectSign>()
        {
            e.valid_before = Some(valid_before);
        }
        self
    }

    /// Reply to a cmdlet with `objects` (a JSON array) and error messages `errors`.
    pub fn objects(&mut self, objects: &str, errors: &[&str]) -> &mut Step {
        self.reply = Ok(CapReply::new(CmdletOutput {
            objects: objects.to_string(),
            errors: errors.iter().map(|e| e.to_string()).collect(),
        }));
        self
    }

    /// Reply to an `ldap.search` with `entries`: `(dn, [(attribute, [values])])`.
    pub fn entries(&mut self, entries: &[(&str, EntryAttributes<'_>)]) -> &mut Step {
        let entries: Vec<latch::caps::ldap::Entry> = entries
            .iter()
            .map(|(dn, attrs)| latch::caps::ldap::Entry {
                dn: dn.to_string(),
                attributes: attrs
                    .iter()
                    .map(|(n, v)| (n.to_string(), v.iter().map(|x| x.to_string()).collect()))
                    .collect(),
            })
            .collect();
        self.reply = Ok(CapReply::new(entries));
        self
    }

    /// Reply to a secret with `value`.
    pub fn value(&mut self, value: &[u8]) -> &mut Step {
        self.reply = Ok(CapReply::new(Secret::new(value.to_vec())));
        self
    }

    /// Reply to a certs call with `text`.
    pub fn text(&mut self, text: &str) -> &mut Step {
        self.reply = Ok(CapReply::new(text.to_string()));
        self
    }

    /// Reply with `error` instead of a result.
    pub fn error(&mut self, error: CapError) -> &mut Step {
        self.reply = Err(error);
        self
    }
}

struct ScriptState {
    steps: VecDeque<Step>,
    seen: usize,
    mismatches: Vec<String>,
    names: Names,
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
                names: Names::new(),
            }),
        }
    }
}

impl Backend for Scripted {
    fn call<'a>(
        &'a self,
        _ctx: CallContext<'a>,
        call: &'a CapCall,
    ) -> BoxFuture<'a, Result<CapReply, CapError>> {
        let reply = {
            let mut guard = self.state.lock().expect("script lock");
            let state = &mut *guard;
            state.seen += 1;
            let n = state.seen;
            let matched = state.mismatches.is_empty()
                && state
                    .steps
                    .front()
                    .is_some_and(|step| step.expect.matches(call, &mut state.names));
            match state.steps.front() {
                Some(_) if matched => {
                    let step = state.steps.pop_front().expect("front exists");
                    step.reply
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
            .map(|r| r.command.clone())
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

    /// The answer of a successful `grant`; panics otherwise.
    pub fn granted(&self) -> &Granted {
        match &self.report.result {
            Ok(Returned::Granted(g)) => g,
            other => panic!("expected a grant's answer, got {other:?}"),
        }
    }

    /// The access details of a successful `grant`; panics otherwise.
    pub fn access(&self) -> &AccessDetails {
        &self.granted().access
    }

    /// The page of a successful `discover`; panics otherwise.
    pub fn page(&self) -> &Page {
        match &self.report.result {
            Ok(Returned::Page(p)) => p,
            other => panic!("expected a page of resources, got {other:?}"),
        }
    }

    /// The resources of a successful `discover`'s page; panics otherwise.
    pub fn resources(&self) -> &[Resource] {
        &self.page().resources
    }

    /// The lifecycle of a successful `validate`; panics otherwise.
    pub fn lifecycle(&self) -> &Lifecycle {
        match &self.report.result {
            Ok(Returned::Lifecycle(l)) => l,
            other => panic!("expected a lifecycle, got {other:?}"),
        }
    }

    /// The metadata of `describe`; panics otherwise.
    pub fn metadata(&self) -> &Metadata {
        match &self.report.result {
            Ok(Returned::Metadata(m)) => m,
            other => panic!("expected metadata, got {other:?}"),
        }
    }

    /// The changes carried out (not refused, not only planned), as they ran.
    pub fn changes(&self) -> Vec<String> {
        self.report
            .records
            .iter()
            .filter(|r| r.call.effect() == latch::caps::Effect::Change)
            .filter(|r| !matches!(r.outcome, Outcome::Refused { .. } | Outcome::Planned))
            .map(|r| r.command.clone())
            .collect()
    }

    /// The changes a plan recorded without carrying them out, as they would run.
    pub fn planned(&self) -> Vec<String> {
        self.report
            .records
            .iter()
            .filter(|r| matches!(r.outcome, Outcome::Planned))
            .map(|r| r.command.clone())
            .collect()
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
        state: None,
    }
}
