//! WinRM, live, against the Windows stand-in (`tests/winrm/standin.py`): NTLM with message
//! encryption over HTTP, HTTPS with a test CA (NTLM with channel binding, and Basic), the
//! connection and shell reused, each failure one clear error, hostile values arriving as
//! the exact literal or refused before anything is sent — and pywinrm and pypsrp, clients
//! proven against real Windows, accepted by the same stand-in.
//!
//! The stand-in runs in the venv `make setup` makes (`target/py`); a test fails, rather
//! than skips, when it is missing.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use latch::caps::registry;
use latch::caps::table::Settings;
use latch::caps::table::tls_config;
use latch::caps::winrm::lent::Cmdlets;
use latch::caps::winrm::pool::{WinrmPool, WinrmSettings};
use latch::caps::winrm::shell::{ExchangeError, Run, ShellError};
use latch::caps::winrm::transport::{AuthMethod, Connection, Credentials, Endpoint};
use latch::caps::winrm::{wire_script, wsman};
use latch::caps::{Live, Outcome, ParamValue, Policy, Secret, SecretStore};
use latch::runtime::{CallOptions, CallSecrets, Export};
use latch_testkit::{Kit, grant_request};
use serde_json::Value;

/// The service account's password: every character class, shell and PowerShell metacharacters.
pub const PASSWORD: &str = "S3cret!#%&(x)y$z`q\"w'‘";
const USER: &str = "LAB\\latch-svc";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn python() -> PathBuf {
    let py = root().join("target/py/bin/python");
    assert!(
        py.exists(),
        "{} is missing: run `make setup` (tests/winrm/venv.sh makes it)",
        py.display()
    );
    py
}

/// A running stand-in with its own directory (users, TLS material, state, records).
pub struct StandIn {
    pub dir: tempfile::TempDir,
    child: Child,
    pub http: u16,
    pub https: u16,
}

impl StandIn {
    pub fn start(args: &[&str]) -> StandIn {
        StandIn::start_with_users(&format!("LAB:latch-svc:{PASSWORD}\n"), args)
    }

    /// A stand-in whose users file (`DOMAIN:USER:PASSWORD` lines) is `users`.
    pub fn start_with_users(users: &str, args: &[&str]) -> StandIn {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("users"), users).unwrap();
        let mut child = Command::new(python())
            .arg(root().join("tests/winrm/standin.py"))
            .arg("--dir")
            .arg(dir.path())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::from(
                std::fs::File::create(dir.path().join("standin.err")).unwrap(),
            ))
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = |key: &str| -> u16 {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(key))
                .and_then(|p| p.parse().ok())
                .unwrap_or_else(|| {
                    panic!(
                        "the stand-in did not start ({line:?}): {}",
                        std::fs::read_to_string(dir.path().join("standin.err")).unwrap_or_default()
                    )
                })
        };
        let (http, https) = (port("http="), port("https="));
        StandIn {
            dir,
            child,
            http,
            https,
        }
    }

    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    fn lines(&self, name: &str) -> Vec<Value> {
        std::fs::read_to_string(self.dir.path().join(name))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// The PowerShell calls the stand-in received, as it parsed them.
    pub fn calls(&self) -> Vec<Value> {
        self.lines("calls.jsonl")
    }

    /// Every HTTP request it received.
    pub fn wire(&self) -> Vec<Value> {
        self.lines("wire.jsonl")
    }

    /// Settings for this stand-in: HTTPS on its TLS port, verified against its CA.
    pub fn settings(&self) -> WinrmSettings {
        let mut s = WinrmSettings::defaults().unwrap();
        s.https_ports = vec![self.https];
        s.transport.tls = Arc::new(tls_config(Some(&self.ca())).unwrap());
        s.ca_file = Some(self.ca());
        s.default_user = Some(USER.into());
        s.password_secret = Some("winrm-password".into());
        s
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn credentials(password: &str) -> Credentials {
    Credentials {
        user: USER.into(),
        password: Secret::new(password.as_bytes().to_vec()),
    }
}

fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

fn script(cmdlet: &str, params: &[(&str, ParamValue)]) -> Vec<String> {
    let params: Vec<(String, ParamValue)> = params
        .iter()
        .map(|(n, v)| (n.to_string(), v.clone()))
        .collect();
    let s = wire_script(cmdlet, &params, |_| unreachable!()).unwrap();
    wsman::powershell_arguments(&s.script)
}

fn get_admin() -> Vec<String> {
    script(
        "Get-LocalUser",
        &[("Name", ParamValue::Text("Administrator".into()))],
    )
}

fn objects(r: &wsman::Received) -> Value {
    serde_json::from_slice(&r.stdout).unwrap()
}

#[test]
fn ntlm_sealed_over_http_and_over_https_reusing_connection_and_shell() {
    let s = StandIn::start(&[]);
    let settings = s.settings();
    let pool = WinrmPool::default();
    let creds = credentials(PASSWORD);
    block_on(async {
        let http = settings.endpoint("localhost", s.http);
        assert!(!http.tls);
        let r = pool
            .run(
                "w",
                &settings,
                &http,
                &creds,
                Run {
                    program: "powershell.exe",
                    arguments: &get_admin(),
                    stdin: None,
                },
            )
            .await
            .unwrap();
        assert_eq!(r.exit_code, Some(0));
        assert_eq!(objects(&r)[0]["Name"], "Administrator");
        let first = s.wire().len();
        // NTLM's two messages, then Create, Command, Receive, Signal: all sealed.
        assert_eq!(first, 6, "{:#?}", s.wire());
        assert!(
            s.wire()
                .iter()
                .skip(2)
                .all(|w| w["transport"] == "http-encrypted"),
            "{:#?}",
            s.wire()
        );
        // Warm: the same connection (no login) and the same shell (no Create).
        pool.run(
            "w",
            &settings,
            &http,
            &creds,
            Run {
                program: "powershell.exe",
                arguments: &get_admin(),
                stdin: None,
            },
        )
        .await
        .unwrap();
        assert_eq!(s.wire().len(), first + 3, "{:#?}", &s.wire()[first..]);

        let https = settings.endpoint("localhost", s.https);
        assert!(https.tls);
        let r = pool
            .run(
                "w",
                &settings,
                &https,
                &creds,
                Run {
                    program: "powershell.exe",
                    arguments: &get_admin(),
                    stdin: None,
                },
            )
            .await
            .unwrap();
        assert_eq!(objects(&r)[0]["Name"], "Administrator");
        let calls = s.calls();
        assert_eq!(calls.len(), 3);
        assert_eq!(calls[0]["transport"], "http-encrypted");
        assert_eq!(calls[2]["transport"], "https");
        assert!(calls.iter().all(|c| c["auth"] == "ntlm"));
        assert!(
            calls
                .iter()
                .all(|c| c["user"].as_str().unwrap().contains("latch-svc"))
        );
        assert_eq!(calls[0]["cmdlet"], "Get-LocalUser");
    });
}

#[test]
fn each_failure_is_one_clear_error_and_no_password_in_it() {
    let s = StandIn::start(&[]);
    let settings = s.settings();
    block_on(async {
        // The certificate names localhost; 127.0.0.1 is not it.
        let by_ip = Endpoint {
            host: "127.0.0.1".into(),
            port: s.https,
            tls: true,
        };
        let err = Connection::open(&by_ip, &settings.transport, &credentials(PASSWORD))
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, ExchangeError::Tls(_)), "{err:?}");
        assert!(
            text.contains("localhost") && text.contains("127.0.0.1"),
            "{text}"
        );

        // Not signed by the configured CA: the system's roots do not know the test CA.
        let mut system = settings.transport.clone();
        system.tls = Arc::new(tls_config(None).unwrap());
        let https = settings.endpoint("localhost", s.https);
        let err = Connection::open(&https, &system, &credentials(PASSWORD))
            .await
            .unwrap_err();
        assert!(matches!(err, ExchangeError::Tls(_)), "{err:?}");

        // A wrong password, over HTTP and HTTPS: authentication failed, naming the user.
        for endpoint in [settings.endpoint("localhost", s.http), https.clone()] {
            let wrong = "Wrong-Passw0rd!zz";
            let err = Connection::open(&endpoint, &settings.transport, &credentials(wrong))
                .await
                .unwrap_err();
            let text = err.to_string();
            assert!(matches!(err, ExchangeError::Authentication(_)), "{err:?}");
            assert!(
                text.contains("latch-svc") && !text.contains(wrong),
                "{text}"
            );
        }

        // Nobody listening.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let err = Connection::open(
            &settings.endpoint("127.0.0.1", port),
            &settings.transport,
            &credentials(PASSWORD),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, ExchangeError::Unreachable(_)), "{err:?}");

        // Basic on plain HTTP is refused before anything is sent.
        let before = s.wire().len();
        let mut basic = settings.transport.clone();
        basic.auth = AuthMethod::Basic;
        let err = Connection::open(
            &settings.endpoint("localhost", s.http),
            &basic,
            &credentials(PASSWORD),
        )
        .await
        .unwrap_err();
        assert!(err.to_string().contains("in clear"), "{err}");
        assert_eq!(s.wire().len(), before, "something was sent");

        // Basic inside TLS works.
        let mut conn = Connection::open(&https, &basic, &credentials(PASSWORD))
            .await
            .unwrap();
        let ctx = wsman::Context {
            to: https.url(),
            max_envelope: 153_600,
            operation_timeout: 20,
        };
        let r = latch::caps::winrm::shell::run(
            &mut conn,
            &ctx,
            Run {
                program: "powershell.exe",
                arguments: &get_admin(),
                stdin: None,
            },
            Duration::from_secs(30),
        )
        .await
        .unwrap();
        assert_eq!(objects(&r)[0]["Name"], "Administrator");
        let last = s.calls().pop().unwrap();
        assert_eq!(
            (last["auth"].as_str(), last["transport"].as_str()),
            (Some("basic"), Some("https"))
        );
    });
}

#[test]
fn large_unicode_output_comes_in_pieces_and_is_put_back_together() {
    let s = StandIn::start(&[]);
    let settings = s.settings();
    let pool = WinrmPool::default();
    let creds = credentials(PASSWORD);
    // Windows keeps descriptions to 48 characters: many accounts make the output large.
    let description = "Ünïcødé € 𝄞 日本語 — ‘quoted’ $(x)";
    block_on(async {
        let http = settings.endpoint("localhost", s.http);
        for i in 0..400 {
            let params = vec![
                ("Name".to_string(), ParamValue::Text(format!("bulk-{i}"))),
                (
                    "Password".to_string(),
                    ParamValue::Secret(latch::world::SecretRef::GrantPassword),
                ),
                (
                    "Description".to_string(),
                    ParamValue::Text(description.into()),
                ),
            ];
            let script = wire_script("New-LocalUser", &params, |_| {
                Ok(Secret::new(b"Bulk-Passw0rd!".to_vec()))
            })
            .unwrap();
            let args = wsman::powershell_arguments(&script.script);
            let run = Run {
                program: "powershell.exe",
                arguments: &args,
                stdin: script.stdin.as_ref().map(|s| s.expose()),
            };
            let r = pool.run("w", &settings, &http, &creds, run).await.unwrap();
            assert_eq!(
                r.exit_code,
                Some(0),
                "{}",
                String::from_utf8_lossy(&r.stderr)
            );
        }
        let receives = |s: &StandIn| {
            s.wire()
                .iter()
                .filter(|w| {
                    w["action"]
                        .as_str()
                        .is_some_and(|a| a.ends_with("/Receive"))
                })
                .count()
        };
        let before = receives(&s);
        let r = pool
            .run(
                "w",
                &settings,
                &http,
                &creds,
                Run {
                    program: "powershell.exe",
                    arguments: &script("Get-LocalUser", &[]),
                    stdin: None,
                },
            )
            .await
            .unwrap();
        assert!(r.stdout.len() > 64 * 1024, "{} bytes", r.stdout.len());
        assert!(receives(&s) - before >= 2, "the output came in one piece");
        let users: Value = serde_json::from_slice(&r.stdout).unwrap();
        let bulk: Vec<&Value> = users
            .as_array()
            .unwrap()
            .iter()
            .filter(|u| u["Name"].as_str().unwrap().starts_with("bulk-"))
            .collect();
        assert_eq!(bulk.len(), 400);
        assert!(bulk.iter().all(|u| u["Description"] == description));
    });
}

#[test]
fn channel_binding_follows_the_certificates_signature_hash() {
    // RFC 5929: a certificate signed with SHA-384 is bound with that hash; the stand-in
    // (like Windows) refuses a login whose binding does not match. (ECDSA with SHA-512 is
    // not a signature rustls accepts; RSA with SHA-512 would take the same path.)
    let s = StandIn::start(&["--cert-hash", "sha384"]);
    let settings = s.settings();
    let https = settings.endpoint("localhost", s.https);
    block_on(Connection::open(
        &https,
        &settings.transport,
        &credentials(PASSWORD),
    ))
    .unwrap();
}

#[test]
fn operation_timeouts_mean_receive_again_and_faults_are_errors() {
    let s = StandIn::start(&["--receive-timeouts", "3"]);
    let settings = s.settings();
    let pool = WinrmPool::default();
    block_on(async {
        let http = settings.endpoint("localhost", s.http);
        let r = pool
            .run(
                "w",
                &settings,
                &http,
                &credentials(PASSWORD),
                Run {
                    program: "powershell.exe",
                    arguments: &get_admin(),
                    stdin: None,
                },
            )
            .await
            .unwrap();
        assert_eq!(objects(&r)[0]["Name"], "Administrator");
        let receives = s
            .wire()
            .iter()
            .filter(|w| {
                w["action"]
                    .as_str()
                    .is_some_and(|a| a.ends_with("/Receive"))
            })
            .count();
        assert_eq!(
            receives, 4,
            "three OperationTimeout faults, then the output"
        );

        // A program the server will not run: its exit code and error come back.
        let r = pool
            .run(
                "w",
                &settings,
                &http,
                &credentials(PASSWORD),
                Run {
                    program: "cmd.exe",
                    arguments: &["/c".into(), "echo".into()],
                    stdin: None,
                },
            )
            .await
            .unwrap();
        assert_eq!(r.exit_code, Some(1));
        let err = match pool
            .run(
                "w",
                &settings,
                &http,
                &credentials(PASSWORD),
                Run {
                    program: "powershell.exe",
                    arguments: &["-EncodedCommand".into(), "bm90IGJhc2U2NA==!".into()],
                    stdin: None,
                },
            )
            .await
        {
            Ok(r) => r.exit_code,
            Err(e) => panic!("{e}"),
        };
        assert_ne!(err, Some(0));
    });
    let _ = ShellError::Deadline(Duration::ZERO);
}

/// The hostile values the issue lists, and more: each must reach the stand-in as the exact
/// literal, or be refused before anything is sent.
fn hostile() -> Vec<String> {
    let mut v: Vec<String> = [
        "'",
        "‘",
        "’",
        "‚",
        "‛",
        "'‘’‚‛'",
        "\"",
        "$(id)",
        "$(Remove-Item C:\\ -Recurse)",
        "`whoami`",
        "`",
        ";",
        "a; Remove-LocalUser x",
        "|",
        "a | Out-File x",
        "line1\nline2",
        "cr\r\nlf",
        "alice;rm -rf /",
        "-oProxyCommand=nc evil 22",
        "*()\\",
        "@(1)",
        "${env:PATH}",
        "#comment",
        "<#",
        "Ünïcødé 日本語 🎉",
        "",
        " ",
        "x' + (whoami) + '",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.push("'‘$(x)`\n".repeat(128)); // 1 KiB of the worst characters
    v
}

fn probe_config(s: &StandIn, calls: Value) -> String {
    serde_json::json!({"host": "localhost", "port": s.http, "calls": calls}).to_string()
}

fn live(s: &StandIn) -> Arc<Live> {
    let secrets = tempfile::tempdir().unwrap();
    std::fs::write(secrets.path().join("winrm-password"), PASSWORD).unwrap();
    let store = SecretStore::new(Some(secrets.path()), None).unwrap();
    std::mem::forget(secrets); // read at each call; removed with the process's temp files
    let mut settings = Settings::default();
    settings.insert(s.settings());
    Arc::new(registry::live(store, [("probe", &settings)]))
}

fn policy(s: &StandIn) -> Policy {
    Policy::parse(&[format!("localhost:{}", s.http)], &[])
        .unwrap()
        .with(
            Cmdlets::parse(
                &["Get-LocalUser".into(), "Get-LocalGroupMember".into()],
                &[
                    "New-LocalUser".into(),
                    "Add-LocalGroupMember".into(),
                    "Disconnect-LatchSession".into(),
                ],
            )
            .unwrap(),
        )
}

fn grant(config: String) -> Export {
    Export::Grant {
        config,
        request: grant_request(
            "g-1",
            "localhost",
            "Connect",
            "c@corp.example",
            4_000_000_000,
        ),
    }
}

#[test]
fn hostile_values_arrive_as_the_exact_literal_or_are_refused_before_sending() {
    let s = StandIn::start(&[]);
    let mut values = hostile();
    values.push("nul\0byte".into());
    let calls: Vec<Value> = values
        .iter()
        .map(|v| {
            serde_json::json!({"cmdlet": "Get-LocalUser", "read": true,
                "parameters": [["Name", {"text": v}]]})
        })
        .chain([serde_json::json!({"cmdlet": "Get-LocalUser", "read": true,
            "parameters": [["Name", {"list": hostile()}]]})])
        .collect();
    let kit = Kit::built("winrm-probe");
    let report = kit.run_on(
        "probe",
        policy(&s),
        live(&s),
        grant(probe_config(&s, Value::Array(calls))),
        CallOptions::default(),
    );
    assert!(report.result.is_ok(), "{:?}", report.result);
    // The NUL value was refused by the host; every other value was carried out.
    let refused: Vec<usize> = report
        .records
        .iter()
        .enumerate()
        .filter(|(_, r)| matches!(r.outcome, Outcome::Refused { .. }))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(refused, vec![values.len() - 1], "{:#?}", report.records);
    let received = s.calls();
    assert_eq!(received.len(), values.len(), "a refused value was sent");
    for (got, want) in received
        .iter()
        .zip(values.iter().filter(|v| !v.contains('\0')))
    {
        assert_eq!(got["refused"], Value::Null, "{got}");
        assert_eq!(got["parameters"][0][0], "Name");
        assert_eq!(got["parameters"][0][1]["type"], "text");
        assert_eq!(
            got["parameters"][0][1]["value"].as_str(),
            Some(want.as_str()),
            "{got}"
        );
    }
    let list = received.last().unwrap();
    assert_eq!(list["parameters"][0][1]["type"], "text-list");
    let want: Vec<Value> = hostile().into_iter().map(Value::String).collect();
    assert_eq!(list["parameters"][0][1]["value"], Value::Array(want));

    // A run whose only call is refused sends nothing at all: no connection, no login.
    let before = s.wire().len();
    // (And a call too long for a Windows command line: 8 values of 8 KiB.)
    let big: Vec<String> = (0..8).map(|_| "x".repeat(8000)).collect();
    let only_nul = serde_json::json!([{"cmdlet": "Get-LocalUser", "read": true,
        "parameters": [["Name", {"text": "a\u{0}b"}]]},
        {"cmdlet": "Get-LocalUser", "read": true, "parameters": [["Name", {"list": big}]]}]);
    let report = kit.run_on(
        "probe",
        policy(&s),
        live(&s),
        grant(probe_config(&s, only_nul)),
        CallOptions::default(),
    );
    assert!(matches!(report.records[0].outcome, Outcome::Refused { .. }));
    match &report.records[1].outcome {
        Outcome::Failed { error } => assert!(error.to_string().contains("command line"), "{error}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(s.wire().len(), before, "something reached the server");
}

#[test]
fn a_grant_password_reaches_windows_exactly_and_nowhere_else() {
    let s = StandIn::start(&[]);
    let password = "Grant-Pw1'‘$(x)`;|\"";
    let calls = serde_json::json!([
        {"cmdlet": "New-LocalUser", "parameters": [["Name", {"text": "jit-alice"}], ["Password", {"grant-password": true}], ["Disabled", {"boolean": false}]]},
        {"cmdlet": "Add-LocalGroupMember", "parameters": [["Group", {"text": "Remote Desktop Users"}], ["Member", {"list": ["jit-alice"]}]]},
        {"cmdlet": "Get-LocalGroupMember", "read": true, "parameters": [["Group", {"text": "Remote Desktop Users"}]]},
        // Again: Windows' non-terminating error comes back beside the (empty) objects.
        {"cmdlet": "Add-LocalGroupMember", "parameters": [["Group", {"text": "Remote Desktop Users"}], ["Member", {"list": ["jit-alice"]}]]},
        // PowerShell itself fails (exit code 1: the optional logoff module is not installed
        // there), one error.
        {"cmdlet": "Disconnect-LatchSession", "parameters": [["UserName", {"text": "jit-alice"}]]},
    ]);
    let options = CallOptions {
        secrets: CallSecrets {
            grant_password: Some(Secret::new(password.as_bytes().to_vec())),
            new_service_password: None,
        },
        plan: false,
    };
    let report = Kit::built("winrm-probe").run_on(
        "probe",
        policy(&s),
        live(&s),
        grant(probe_config(&s, calls)),
        options,
    );
    assert!(report.result.is_ok(), "{:?}", report.result);
    let state = match &report.result {
        Ok(latch::runtime::Returned::Granted(g)) => g.state.clone(),
        other => panic!("{other:?}"),
    };
    let results: Value = serde_json::from_str(&state).unwrap();
    let members: Value = serde_json::from_str(results[2]["objects"].as_str().unwrap()).unwrap();
    assert_eq!(members[0]["Name"], "WINSTANDIN\\jit-alice", "{results}");
    assert_eq!(results[3]["objects"], "[]", "{results}");
    let again = results[3]["errors"][0].as_str().unwrap();
    assert!(again.contains("already a member"), "{again}");
    let failed = results[4]["error"].as_str().unwrap();
    assert!(
        failed.contains("PowerShell") && failed.contains("exit code 1"),
        "{failed}"
    );
    // The stand-in got the password exactly, as a SecureString read from the command's stdin:
    // the script (what Windows logs as the command line and script block) holds a variable.
    let created = &s.calls()[0];
    assert_eq!(created["parameters"][1][1]["type"], "secure-string");
    assert_eq!(created["parameters"][1][1]["value"], password);
    assert_eq!(created["stdin_secrets"], 1);
    let script = created["script"].as_str().unwrap();
    assert!(
        script.contains("-Password $latch0") && !script.contains("Grant-Pw1"),
        "{script}"
    );
    assert!(
        s.wire().iter().any(|w| w["action"]
            .as_str()
            .is_some_and(|a| a.ends_with("/shell/Send"))),
        "no Send on the wire"
    );
    // A boolean is bound with a colon, so a [switch] takes it too (-Disabled:$false).
    assert_eq!(
        created["parameters"][2],
        serde_json::json!(["Disabled", {"type": "boolean", "value": false}])
    );
    assert!(
        created["script"]
            .as_str()
            .unwrap()
            .contains(" -Disabled:$false)")
    );
    // Latch's own records name it only.
    let records = serde_json::to_string(&report.records).unwrap();
    assert!(
        !records.contains("Grant-Pw1") && records.contains("<secret:grant-password>"),
        "{records}"
    );
    // And the new account can log in with it (the stand-in's NTLM acceptor checks it).
    block_on(async {
        let endpoint = s.settings().endpoint("localhost", s.http);
        let creds = Credentials {
            user: "jit-alice".into(),
            password: Secret::new(password.as_bytes().to_vec()),
        };
        Connection::open(&endpoint, &s.settings().transport, &creds)
            .await
            .unwrap();
    });
}

#[test]
fn pywinrm_and_pypsrp_accept_the_stand_in() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new("bash")
        .arg(root().join("tests/winrm/run_check.sh"))
        .arg(dir.path())
        .env("LATCH_PY_VENV", root().join("target/py"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for client in ["pywinrm", "pypsrp"] {
        assert!(text.contains(&format!("ok {client}")), "{text}");
    }
}

#[test]
fn check_connect_logs_in_to_every_server_of_every_integration() {
    let _fleet = crate::e2e::shared();
    let s = StandIn::start(&[]);
    let env = crate::fleet::Env::new();
    std::fs::write(env.tmp.path().join("secrets/winrm-password"), PASSWORD).unwrap();
    std::fs::copy(s.ca(), env.tmp.path().join("winrm-ca.pem")).unwrap();
    let guest = crate::guest("winrm_probe");
    let sha = latch::runtime::sha256_hex(&std::fs::read(&guest).unwrap());
    let probe = |name: &str, host: &str, port: u16| {
        format!(
            r#"
[[integration]]
name = "{name}"
guest = "{}"
sha256 = "{sha}"
allow = ["{host}:{port}"]
[integration.winrm]
read = ["Get-LocalUser"]
user = 'LAB\latch-svc'
password_secret = "winrm-password"
ca_file = "winrm-ca.pem"
https_ports = [{}]
[integration.config]
host = "{host}"
port = {port}
calls = [{{ cmdlet = "Get-LocalUser", read = true }}]
"#,
            guest.display(),
            s.https
        )
    };
    let mut config = std::fs::read_to_string(&env.config).unwrap();
    config.push_str(&probe("windows", "localhost", s.http));
    config.push_str(&probe("windows-tls", "localhost", s.https));
    config.push_str(&probe("windows-by-ip", "127.0.0.1", s.https));
    std::fs::write(&env.config, config).unwrap();
    let out = crate::fleet::latch(&[
        "check",
        "--config",
        env.config.to_str().unwrap(),
        "--connect",
        "--json",
    ]);
    let statuses: Vec<Value> = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    let of = |integration: &str, target: &str| -> (String, String) {
        let s = statuses
            .iter()
            .find(|s| {
                s["integration"] == integration && s["target"].as_str().unwrap().contains(target)
            })
            .unwrap_or_else(|| panic!("{integration} {target} missing: {statuses:#?}"));
        (
            s["status"].as_str().unwrap().to_string(),
            s["reason"].as_str().unwrap_or("").to_string(),
        )
    };
    assert_eq!(of("linux", &env.fleet.addr(1)).0, "authenticated");
    let (down, why) = of("linux", "127.0.10.99");
    assert_eq!(down, "unreachable", "{why}");
    assert_eq!(of("windows", "localhost").0, "authenticated");
    assert_eq!(of("windows-tls", "localhost").0, "authenticated");
    let (ip, why) = of("windows-by-ip", "127.0.0.1");
    assert_eq!(ip, "refused");
    assert!(why.contains("TLS") && why.contains("localhost"), "{why}");
    assert!(!out.status.success(), "one server was not authenticated");
    // It logged in and changed nothing: the plans ran the guests' reads only.
    assert!(
        s.calls().iter().all(|c| c["cmdlet"] == "Get-LocalUser"),
        "{:#?}",
        s.calls()
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains(PASSWORD));

    // With every log on (trace), a live grant through the CLI: the host-generated password
    // reaches Windows and the requester, and no log line.
    let grant_probe = probe("windows-grant", "localhost", s.http).replace(
        r#"calls = [{ cmdlet = "Get-LocalUser", read = true }]"#,
        r#"calls = [{ cmdlet = "New-LocalUser", parameters = [["Name", { text = "jit-bob" }], ["Password", { grant-password = true }]] }]"#,
    ).replace(r#"read = ["Get-LocalUser"]"#, r#"change = ["New-LocalUser"]"#);
    let mut config = std::fs::read_to_string(&env.config).unwrap();
    config.push_str(&grant_probe);
    std::fs::write(&env.config, config).unwrap();
    let calls_before_grant = s.calls().len();
    let out = crate::fleet::latch_env(
        &[
            "grant",
            "--config",
            env.config.to_str().unwrap(),
            "--integration",
            "windows-grant",
            "--resource=localhost",
            "--user=bob@corp.example",
            "--for",
            "10m",
            "--json",
        ],
        // Everything at trace but the compiler (cranelift's trace output of compiling the
        // guest is minutes of text and holds no secret).
        &[(
            "LATCH_LOG",
            "trace,cranelift_codegen=warn,cranelift_frontend=warn,regalloc2=warn,\
             wasmtime_cranelift=warn,wasmtime=warn,wasmparser=warn",
        )],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    let password = answer["password"].as_str().expect("a delivered password");
    let created = &s.calls()[calls_before_grant];
    assert_eq!(created["cmdlet"], "New-LocalUser");
    assert_eq!(created["parameters"][1][1]["value"], password);
    let logs = String::from_utf8_lossy(&out.stderr);
    assert!(logs.len() > 1000, "trace logging was on: {logs}");
    assert!(
        !logs.contains(password),
        "the grant password is in the trace log"
    );
    assert!(
        !logs.contains(PASSWORD),
        "the service password is in the trace log"
    );
}
