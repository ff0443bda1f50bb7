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

use latch::caps::winrm::powershell_script;
use latch::caps::{
    Backend, BoxFuture, CallContext, CapCall, CapError, CapReply, SecretStore, secrets, ssh, winrm,
};
use latch::config::Config;
use latch::connector::Connector;
use latch::ledger::Ledger;
use latch::service::{self, GrantArgs};
use latch::world::SecretRef;

const CANARY: &str = "CANARY-7f3a9-NEVER-RECORD";

/// Secrets from the store; SSH and WinRM recorded as they would go on the wire.
struct Wire {
    secrets: SecretStore,
    sent: Mutex<Vec<String>>,
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
                    Ok(Some(s)) => Ok(CapReply::Secret(s)),
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
                    let script = powershell_script(cmdlet, parameters, |r| match r {
                        SecretRef::GrantPassword => ctx
                            .secrets
                            .grant_password
                            .clone()
                            .ok_or_else(|| CapError::Failed("no grant password".into())),
                        SecretRef::NewServicePassword => {
                            Err(CapError::Failed("not in a rotation".into()))
                        }
                        SecretRef::Named(name) => self
                            .secrets
                            .get(name)
                            .ok()
                            .flatten()
                            .ok_or_else(|| CapError::Failed(format!("no secret {name:?}"))),
                    })?;
                    self.sent
                        .lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(script.expose()).into_owned());
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
change = ["Set-LocalUser", "Set-Item"]
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
    let secrets = SecretStore::new(Some(&setup.config.secrets_dir), None).unwrap();
    let wire = Arc::new(Wire {
        secrets,
        sent: Mutex::new(Vec::new()),
    });
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
    // Both reached the wire: the secret as SSH stdin and in a script; the password in one.
    let sent = wire.sent.lock().unwrap().clone();
    assert!(sent.iter().any(|w| w == CANARY), "{sent:?}");
    assert!(
        sent.iter().any(|w| w.contains(&format!("'{CANARY}'"))),
        "{sent:?}"
    );
    assert!(
        sent.iter().any(|w| w.contains(&format!("'{password}'"))),
        "{sent:?}"
    );
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
        let secrets = SecretStore::new(Some(&setup.config.secrets_dir), None).unwrap();
        let wire = Arc::new(Wire {
            secrets,
            sent: Mutex::new(Vec::new()),
        });
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
