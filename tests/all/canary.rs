//! Nothing secret is ever recorded. A canary secret (a listed secret the guest reads and
//! sends as SSH stdin and as a WinRM `secret-ref`) and the password the host generates for
//! the grant go through every path, and are then looked for everywhere Latch writes: the
//! ledger file (and its WAL), the audit chain, the forwarded audit copy, the log at `trace`,
//! the API-shaped answer (only the one delivery of the password), errors — while the
//! backend proves both did reach the wire.
//!
//! The backend here is the live one for secrets, and a recorder for SSH and WinRM that keeps
//! what would go on the wire (the WinRM script with its secrets substituted): no server is
//! needed, and the host's own code paths — checks, records, audit, ledger — are the real ones.

use std::io::Write;
use std::sync::{Arc, Mutex};

use latch::caps::winrm::wire_script;
use latch::caps::{
    Backend, BoxFuture, CallContext, CapCall, CapError, CapReply, SecretStore, secrets, ssh, winrm,
};
use latch::config::Config;
use latch::connector::Connector;
use latch::ledger::Ledger;
use latch::service::{self, GrantArgs};
use latch::world::SecretRef;

const CANARY: &str = "CANARY-7f3a9-NEVER-RECORD";

/// Secrets from the store; SSH and WinRM recorded as they would go on the wire. With
/// `echo`, every WinRM call fails with an error quoting the script it was sent — plainly, as
/// a PowerShell error record quotes the line, and as the `-EncodedCommand` argument (base64
/// of UTF-16LE), as a WS-Management fault may.
struct Wire {
    secrets: SecretStore,
    sent: Mutex<Vec<String>>,
    echo: bool,
}

impl Wire {
    fn new(config: &Config, echo: bool) -> Arc<Wire> {
        Arc::new(Wire {
            secrets: SecretStore::new(Some(&config.secrets_dir), None).unwrap(),
            sent: Mutex::new(Vec::new()),
            echo,
        })
    }
}

impl Backend for Wire {
    fn call<'a>(
        &'a self,
        ctx: CallContext<'a>,
        call: &'a CapCall,
    ) -> BoxFuture<'a, Result<CapReply, CapError>> {
        Box::pin(async move {
            if let Some(get) = call.get::<secrets::Get>() {
                return match self.secrets.get(&get.name) {
                    Ok(Some(s)) => Ok(CapReply::new(s)),
                    _ => Err(CapError::Failed(format!("no secret {:?}", get.name))),
                };
            }
            if let Some(exec) = call.get::<ssh::Exec>() {
                self.sent
                    .lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&exec.stdin).into_owned());
                return Ok(call.empty_reply());
            }
            match call.get::<winrm::Invoke>() {
                Some(winrm::Invoke {
                    cmdlet, parameters, ..
                }) => {
                    let wire = wire_script(cmdlet, parameters, |r| match r {
                        SecretRef::GrantPassword => ctx
                            .secrets
                            .grant_password
                            .clone()
                            .ok_or_else(|| CapError::Failed("no grant password".into())),
                        SecretRef::NewServicePassword => {
                            Err(CapError::Failed("not in a rotation".into()))
                        }
                        SecretRef::Named(name) => {
                            let value =
                                self.secrets.get(name).ok().flatten().ok_or_else(|| {
                                    CapError::Failed(format!("no secret {name:?}"))
                                })?;
                            // As a live part does: the host read it for this call.
                            ctx.reveal(&value);
                            Ok(value)
                        }
                    })?;
                    // What goes on the wire: the script (no secret) and its stdin (the secrets).
                    let stdin = wire
                        .stdin
                        .as_ref()
                        .map(|s| String::from_utf8_lossy(s.expose()).into_owned())
                        .unwrap_or_default();
                    self.sent.lock().unwrap().push(wire.script.clone());
                    self.sent.lock().unwrap().push(stdin.clone());
                    if self.echo {
                        // As a PowerShell error record quoting the line, and a fault quoting
                        // the command line and the stdin it was sent.
                        let encoded = latch::caps::winrm::wsman::powershell_arguments(&wire.script);
                        return Err(CapError::Failed(format!(
                            "At line:1 char:1\n+ {}\n+ ~~~~ CategoryInfo: InvalidArgument; \
                             command line: powershell.exe {}; stdin: {stdin}",
                            wire.script,
                            encoded.join(" ")
                        )));
                    }
                    Ok(call.empty_reply())
                }
                None => Ok(call.empty_reply()),
            }
        })
    }
}

/// A log sink for the test's subscriber.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct Setup {
    dir: tempfile::TempDir,
    config: Config,
}

fn setup(guest_config: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("secrets")).unwrap();
    std::fs::write(dir.path().join("secrets/canary-secret"), CANARY).unwrap();
    let guest = crate::guest("canary_guest");
    let sha = latch::runtime::sha256_hex(&std::fs::read(&guest).unwrap());
    let text = format!(
        r#"
[[integration]]
name = "canary"
guest = "{}"
sha256 = "{sha}"
allow = ["127.0.0.2:22", "127.0.0.2:5985"]
secrets = ["canary-secret"]
[integration.winrm]
change = ["Set-LocalUser", "New-LocalUser"]
[integration.config]
{guest_config}
"#,
        guest.display()
    );
    let path = dir.path().join("latch.toml");
    std::fs::write(&path, text).unwrap();
    let config = Config::load(&path).unwrap();
    Setup { dir, config }
}

fn args() -> GrantArgs {
    GrantArgs {
        grant_id: None,
        actor: "os-user:test".into(),
        integration: "canary".into(),
        resource: "box".into(),
        permission: None,
        email: "canary@corp.example".into(),
        username: None,
        duration: std::time::Duration::from_secs(600),
        public_key: None,
    }
}

/// Everything Latch wrote that a canary must not be in.
fn written(setup: &Setup, ledger: &Ledger, logs: &Logs) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for file in ["latch.db", "latch.db-wal", "audit.jsonl"] {
        if let Ok(bytes) = std::fs::read(setup.dir.path().join(file)) {
            out.push((
                file.to_string(),
                String::from_utf8_lossy(&bytes).into_owned(),
            ));
        }
    }
    let audit = serde_json::to_string(&ledger.audit_all().unwrap()).unwrap();
    out.push(("audit chain".into(), audit));
    let grants = serde_json::to_string(&ledger.list(None).unwrap()).unwrap();
    out.push(("grants".into(), grants));
    out.push((
        "log".into(),
        String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned(),
    ));
    out
}

fn run<T>(logs: &Logs, work: impl std::future::Future<Output = T>) -> T {
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer({
            let logs = logs.clone();
            move || logs.clone()
        })
        .with_ansi(false)
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(work)
    })
}

#[test]
fn a_canary_secret_and_the_generated_password_are_recorded_nowhere() {
    let setup = setup("");
    let wire = Wire::new(&setup.config, false);
    let connector = Connector::start(&setup.config, wire.clone()).unwrap();
    let ledger = Ledger::open(&setup.config.data_dir).unwrap();
    let logs = Logs::default();
    let granted = run(&logs, async {
        let g = service::grant(&connector, &ledger, args()).await.unwrap();
        service::revoke(&connector, &ledger, &g.grant_id, "os-user:test")
            .await
            .unwrap();
        g
    });
    let mut forwarder =
        latch::ledger::forward::Forwarder::open(&setup.dir.path().join("audit.jsonl")).unwrap();
    forwarder.forward(&ledger).unwrap();

    // The password was generated by the host and delivered, once, in the answer.
    let password = String::from_utf8(granted.password.as_ref().unwrap().expose().to_vec()).unwrap();
    assert!(password.len() >= 16);
    let answer = serde_json::to_string(&granted).unwrap();
    assert_eq!(answer.matches(&password).count(), 1, "{answer}");
    assert!(!answer.contains(CANARY));
    assert_eq!(
        format!("{granted:?}").matches(&password).count(),
        0,
        "Debug redacts"
    );
    // Both reached the wire: the secret as SSH stdin and as a WinRM call's stdin; the
    // password as another's — and no script holds either (Windows logs scripts).
    use base64::Engine;
    let line = |v: &str| {
        format!(
            "{}\r\n",
            base64::engine::general_purpose::STANDARD.encode(v)
        )
    };
    let sent = wire.sent.lock().unwrap().clone();
    assert!(sent.iter().any(|w| w == CANARY), "{sent:?}");
    assert!(sent.iter().any(|w| *w == line(CANARY)), "{sent:?}");
    assert!(sent.iter().any(|w| *w == line(&password)), "{sent:?}");
    for script in sent.iter().filter(|w| w.contains("ConvertTo-Json")) {
        assert!(
            !script.contains(CANARY) && !script.contains(&password),
            "{script}"
        );
        assert!(script.contains("$latch0"), "{script}");
    }
    // And nowhere else.
    for (place, text) in written(&setup, &ledger, &logs) {
        assert!(!text.contains(CANARY), "the canary secret is in {place}");
        assert!(!text.contains(&password), "the password is in {place}");
    }
    // The records name them instead.
    let audit = serde_json::to_string(&ledger.audit_all().unwrap()).unwrap();
    assert!(audit.contains("<secret:grant-password>"), "{audit}");
    assert!(audit.contains("<secret:canary-secret>"), "{audit}");
    assert!(audit.contains("\"stdin_bytes\":25"), "{audit}");
}

#[test]
fn a_guest_cannot_leak_a_secret_into_state_logs_or_errors() {
    for mode in ["state", "log", "panic"] {
        let setup = setup(&format!("leak = \"{mode}\""));
        let wire = Wire::new(&setup.config, false);
        let connector = Connector::start(&setup.config, wire).unwrap();
        let ledger = Ledger::open(&setup.config.data_dir).unwrap();
        let logs = Logs::default();
        let result = run(&logs, service::grant(&connector, &ledger, args()));
        let error = match (&result, mode) {
            (Err(e), "state" | "panic") => e.to_string(),
            (Ok(_), "log") => String::new(),
            (other, _) => panic!("{mode}: {other:?}"),
        };
        if mode == "state" {
            assert!(error.contains("put a secret"), "{error}");
        }
        if mode == "panic" {
            assert!(error.contains("[redacted]"), "{error}");
        }
        if mode == "log" {
            let logs = String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned();
            assert!(logs.contains("the token is [redacted]"), "{logs}");
        }
        assert!(!error.contains(CANARY), "{mode}: {error}");
        for (place, text) in written(&setup, &ledger, &logs) {
            assert!(
                !text.contains(CANARY),
                "{mode}: the canary secret is in {place}"
            );
        }
    }
}

/// The service key's errors name the secret, never its value.
#[test]
fn a_broken_service_key_is_reported_without_its_value() {
    use latch::caps::ssh::client::{SshPool, SshSettings};
    let dir = tempfile::tempdir().unwrap();
    let secrets_dir = dir.path().join("secrets");
    std::fs::create_dir(&secrets_dir).unwrap();
    let fake = format!(
        "-----BEGIN OPENSSH PRIVATE KEY-----\n{CANARY}\n-----END OPENSSH PRIVATE KEY-----\n"
    );
    std::fs::write(secrets_dir.join("svc-key"), &fake).unwrap();
    let secrets = SecretStore::new(Some(&secrets_dir), None).unwrap();
    // An sshd is needed to get as far as reading the key: the fleet's.
    let _g = crate::e2e::shared();
    let fleet = crate::fleet::Fleet::shared();
    let settings = SshSettings {
        key_secret: "svc-key".into(),
        default_user: Some("apono".into()),
        known_hosts: fleet.known_hosts(),
        trust_on_first_use: false,
        connect_timeout: std::time::Duration::from_secs(10),
        command_timeout: std::time::Duration::from_secs(10),
        idle_timeout: std::time::Duration::from_secs(10),
    };
    let target = latch::caps::Target {
        host: fleet.addr(1),
        port: 22,
        user: None,
    };
    let logs = Logs::default();
    let pool = SshPool::default();
    let result = run(
        &logs,
        pool.exec("t", &settings, &secrets, &target, &["true".into()], &[]),
    );
    let error = result.unwrap_err().to_string();
    assert!(error.contains("svc-key"), "{error}");
    assert!(!error.contains(CANARY), "{error}");
    let logs = String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned();
    assert!(!logs.contains(CANARY), "{logs}");
}

/// The forms of `secret` that Latch itself could have put it in, computed here independently
/// of the scrubber: plain, PowerShell-quoted, JSON- and URL-escaped, UTF-16LE, and the inner
/// part of its base64 (and of its UTF-16LE's) at each alignment inside a longer text.
fn forms(secret: &str) -> Vec<String> {
    use base64::Engine;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let utf16: Vec<u8> = secret.encode_utf16().flat_map(u16::to_le_bytes).collect();
    let mut out = vec![
        secret.to_string(),
        secret.replace('\'', "''"),
        serde_json::to_string(secret)
            .unwrap()
            .trim_matches('"')
            .to_string(),
        String::from_utf8_lossy(&utf16).into_owned(),
    ];
    for bytes in [secret.as_bytes(), &utf16] {
        for skip in 0..3 {
            let rest = &bytes[skip..];
            out.push(b64(&rest[..rest.len() / 3 * 3]));
        }
    }
    out
}

/// Fail if any form of the canary, or of `password`, is in `text`.
fn assert_clean(place: &str, text: &str, password: Option<&str>) {
    let mut secrets = vec![CANARY.to_string()];
    secrets.extend(password.map(str::to_string));
    for secret in &secrets {
        for form in forms(secret) {
            assert!(
                !text.contains(&form),
                "{place} holds a secret (as {form:?}): {text}"
            );
        }
    }
}

/// Every path a secret could take out of a call, each tried: the guest's own error, a
/// capability error echoing the script it ran (plainly and base64 of UTF-16LE), the access
/// details' host, a command's arguments (in records and in a plan). Each is scrubbed or
/// refused, and nothing Latch wrote holds the canary or the password in any form Latch makes.
#[test]
fn no_path_out_of_a_call_carries_a_secret_in_any_form() {
    for (mode, echo) in [
        ("error", false),
        ("host", false),
        ("argv", false),
        ("", true),
    ] {
        let setup = setup(&format!("leak = \"{mode}\""));
        let wire = Wire::new(&setup.config, echo);
        let connector = Connector::start(&setup.config, wire.clone()).unwrap();
        let ledger = Ledger::open(&setup.config.data_dir).unwrap();
        let logs = Logs::default();
        let result = run(&logs, service::grant(&connector, &ledger, args()));
        let sent = wire.sent.lock().unwrap().clone();
        // The password of the grant reached the wire (unless the guest stopped before): the
        // stdin of the first WinRM call (Set-LocalUser -Password).
        let password = sent
            .iter()
            .position(|w| w.contains("Set-LocalUser"))
            .map(|at| {
                use base64::Engine;
                let b = base64::engine::general_purpose::STANDARD
                    .decode(sent[at + 1].trim_end())
                    .unwrap();
                String::from_utf8(b).unwrap()
            });
        let shown = match (&result, mode, echo) {
            (Err(e), "error", _) => {
                let e = e.to_string();
                assert!(e.contains("the server said no to [redacted]"), "{e}");
                e
            }
            (Err(e), "host", _) => {
                let e = e.to_string();
                assert!(e.contains("put a secret"), "{e}");
                e
            }
            (Err(e), "", true) => {
                let e = e.to_string();
                assert!(e.contains("At line:1") && e.contains("[redacted]"), "{e}");
                e
            }
            (Ok(g), "argv", _) => {
                let audit = serde_json::to_string(&ledger.audit_all().unwrap()).unwrap();
                assert!(
                    audit.contains(r#""argv":["printf","%s","[redacted]"]"#),
                    "{audit}"
                );
                let log = String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned();
                assert!(log.contains("printf %s [redacted]"), "{log}");
                serde_json::to_string(g).unwrap()
            }
            (other, _, _) => panic!("{mode} {echo}: {other:?}"),
        };
        let password = password.as_deref();
        if mode != "argv" {
            assert_clean(&format!("{mode} {echo}: the error"), &shown, password);
        }
        for (place, text) in written(&setup, &ledger, &logs) {
            assert_clean(&format!("{mode} {echo}: {place}"), &text, password);
        }
    }

    // A plan shows what would run: the argument the guest put its secret in is redacted.
    let setup = setup("leak = \"argv\"");
    let connector = Connector::start(&setup.config, Wire::new(&setup.config, false)).unwrap();
    let ledger = Ledger::open(&setup.config.data_dir).unwrap();
    let logs = Logs::default();
    let planned = run(&logs, service::plan_grant(&connector, &ledger, args())).unwrap();
    let shown = serde_json::to_string(&planned).unwrap();
    assert!(
        planned
            .changes
            .iter()
            .any(|c| c.contains("printf %s [redacted]")),
        "{shown}"
    );
    assert_clean("the plan", &shown, None);
    for (place, text) in written(&setup, &ledger, &logs) {
        assert_clean(&format!("plan: {place}"), &text, None);
    }
}
