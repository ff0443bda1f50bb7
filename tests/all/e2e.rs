//! End to end: real sshd hosts, the real `latch` binary, the real `ssh` client.

use std::process::{Command, Stdio};
use std::sync::RwLock;
use std::time::{Duration, Instant};

use latch::config::Config;
use latch::connector::live_connector;
use latch::runtime::{Export, GrantRequest, Identity, Returned};

use crate::fleet::{Env, latch, ssh_opts};

/// Tests that prove "no command reached any server" count the fleet's logins, so they run
/// alone (write lock); every other fleet test holds the read lock.
static QUIET: RwLock<()> = RwLock::new(());

pub fn shared() -> std::sync::RwLockReadGuard<'static, ()> {
    QUIET.read().unwrap_or_else(|e| e.into_inner())
}

/// Run alone on the fleet (for tests counting the fleet's logins).
pub fn quiet() -> std::sync::RwLockWriteGuard<'static, ()> {
    QUIET.write().unwrap_or_else(|e| e.into_inner())
}

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn grant_login_and_revoke_with_the_real_ssh_client() {
    let _g = shared();
    let env = Env::new();
    let granted = env
        .grant("web-1", "e2e-alice@corp.example", &["--permission", "adm"])
        .unwrap();
    assert_eq!(granted["username"], "e2e-alice");
    assert!(
        granted["private_key"]
            .as_str()
            .unwrap()
            .contains("PRIVATE KEY")
    );

    let out = env.login(&granted, "id");
    assert!(out.status.success(), "{}", text(&out));
    let id = String::from_utf8_lossy(&out.stdout);
    assert!(
        id.contains("(adm)") && id.contains("(latch-managed)"),
        "{id}"
    );

    // An open session, which the revoke must end.
    let mut session = Command::new("ssh")
        .args(ssh_opts(&env.fleet.known_hosts()))
        .arg("-i")
        .arg(granted["private_key_file"].as_str().unwrap())
        .arg("-o")
        .arg(format!(
            "CertificateFile={}",
            granted["certificate_file"].as_str().unwrap()
        ))
        .arg("e2e-alice@127.0.10.2")
        .arg("echo ready; sleep 600")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = [0u8; 6];
    std::io::Read::read_exact(session.stdout.as_mut().unwrap(), &mut first).unwrap();
    assert_eq!(&first, b"ready\n");

    let out = env.revoke(granted["grant_id"].as_str().unwrap());
    assert!(out.status.success(), "{}", text(&out));

    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = session.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the open session survived the revoke"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(!status.success(), "the session was cut, not ended normally");

    let out = env.login(&granted, "id");
    assert!(
        !out.status.success(),
        "login after revoke must fail: {}",
        text(&out)
    );
    assert!(text(&out).contains("Permission denied"), "{}", text(&out));
    let groups = text(&env.fleet.admin(1, "id -nG e2e-alice"));
    assert!(!groups.contains("adm"), "{groups}");
    let shadow = text(&env.fleet.admin(1, "sudo chage -l e2e-alice"));
    assert!(
        shadow.contains("Account expires")
            && !shadow.contains("Account expires\t\t\t\t\t\t: never"),
        "{shadow}"
    );

    // Revoking again is a no-op that succeeds.
    assert!(
        env.revoke(granted["grant_id"].as_str().unwrap())
            .status
            .success()
    );
}

#[test]
fn an_expired_certificate_is_refused_without_any_revoke() {
    let _g = shared();
    let env = Env::new();
    let granted = env
        .grant("web-2", "e2e-carol@corp.example", &["--for", "4s"])
        .unwrap();
    let out = env.login(&granted, "true");
    assert!(out.status.success(), "{}", text(&out));
    let expires = granted["expires_at"].as_u64().unwrap();
    loop {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        if now > expires + 1 {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let out = env.login(&granted, "true");
    assert!(
        !out.status.success(),
        "an expired certificate must not log in: {}",
        text(&out)
    );
}

fn library_grant(
    env: &Env,
    grant_id: &str,
    user: &str,
    resource: &str,
) -> (latch::connector::Connector, GrantRequest) {
    let config = Config::load(&env.config).unwrap();
    let connector = live_connector(&config).unwrap();
    let request = GrantRequest {
        grant_id: grant_id.into(),
        resource_id: resource.into(),
        permission: "Default".into(),
        identity: Identity {
            email: format!("{user}@corp.example"),
            username: None,
        },
        public_key: Some(
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHv7fFq0n1o3p5r7t9v1x3z5B7D9F1H3J5L7N9P1R3T5 t"
                .into(),
        ),
        expires_at: latch::caps::certs::ca::unix_now() + 600,
        state: None,
    };
    (connector, request)
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn granting_the_same_grant_twice_changes_nothing_on_the_server() {
    let _g = shared();
    let env = Env::new();
    let (connector, request) = library_grant(&env, "g-twice", "e2e-dave", "web-3");
    let (integration, ic) = connector.integration("linux").unwrap();
    let grant = || Export::Grant {
        config: ic.config_json.clone(),
        request: request.clone(),
    };
    let snapshot = || {
        text(&env.fleet.admin(
            3,
            "sudo sha256sum /etc/passwd /etc/group /etc/shadow /etc/ssh/latch/user_ca.pub /etc/ssh/latch/revoked_keys /etc/ssh/sshd_config.d/latch.conf",
        ))
    };
    let rt = rt();
    let first = rt.block_on(integration.call(connector.runtime(), grant()));
    assert!(
        matches!(first.result, Ok(Returned::Granted(_))),
        "{:?}",
        first.result
    );
    let before = snapshot();
    let second = rt.block_on(integration.call(connector.runtime(), grant()));
    assert!(
        matches!(second.result, Ok(Returned::Granted(_))),
        "{:?}",
        second.result
    );
    assert_eq!(before, snapshot(), "the second grant changed the server");
    let writes: Vec<String> = second
        .records
        .iter()
        .filter(|r| r.call.effect() == latch::caps::Effect::Change)
        .filter(|r| r.call.capability() == "ssh.exec")
        .map(|r| r.call.to_string())
        .collect();
    assert!(writes.is_empty(), "{writes:?}");
}

#[test]
fn cleanup_deletes_the_user_and_its_home() {
    let _g = shared();
    let env = Env::new();
    let (connector, request) = library_grant(&env, "g-clean", "e2e-erin", "web-3");
    let (integration, ic) = connector.integration("linux").unwrap();
    let rt = rt();
    let config = ic.config_json.clone();
    let r = rt.block_on(integration.call(
        connector.runtime(),
        Export::Grant {
            config: config.clone(),
            request: request.clone(),
        },
    ));
    assert!(r.result.is_ok(), "{:?}", r.result);
    let r = rt.block_on(integration.call(
        connector.runtime(),
        Export::Revoke {
            config: config.clone(),
            request: request.clone(),
        },
    ));
    assert!(r.result.is_ok(), "{:?}", r.result);
    let cleanup_request = request;
    assert!(
        env.fleet
            .admin(3, "getent passwd e2e-erin")
            .status
            .success()
    );
    let r = rt.block_on(integration.call(
        connector.runtime(),
        Export::Cleanup {
            config,
            request: cleanup_request,
            username: "e2e-erin".into(),
        },
    ));
    assert!(r.result.is_ok(), "{:?}", r.result);
    assert_eq!(
        env.fleet.admin(3, "getent passwd e2e-erin").status.code(),
        Some(2)
    );
    assert!(
        !env.fleet
            .admin(3, "test -e /home/e2e-erin")
            .status
            .success(),
        "home removed"
    );
}

#[test]
fn an_existing_account_latch_did_not_create_is_refused_untouched() {
    let _g = shared();
    let env = Env::new();
    let out = env
        .fleet
        .admin(2, "sudo useradd -m e2e-frank && id -nG e2e-frank");
    assert!(out.status.success(), "{}", text(&out));
    let err = env
        .grant(
            "web-2",
            "someone@corp.example",
            &["--username", "e2e-frank", "--permission", "adm"],
        )
        .unwrap_err();
    assert!(err.contains("not created by Latch"), "{err}");
    let groups = text(&env.fleet.admin(2, "id -nG e2e-frank"));
    assert_eq!(groups.trim(), "e2e-frank");
    let status = text(&env.fleet.admin(2, "sudo chage -l e2e-frank"));
    assert!(
        status.contains("Account expires\t\t\t\t\t\t: never"),
        "{status}"
    );
}

#[test]
fn a_changed_host_key_is_refused_with_both_fingerprints() {
    let _q = QUIET.write().unwrap_or_else(|e| e.into_inner());
    let impostor = "127.0.10.2 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHv7fFq0n1o3p5r7t9v1x3z5B7D9F1H3J5L7N9P1R3T5\n";
    let env = Env::with_known_hosts(Some(impostor));
    let before = env.fleet.accepted_logins(1);
    let err = env
        .grant("web-1", "e2e-gina@corp.example", &[])
        .unwrap_err();
    assert!(err.contains("presented host key SHA256:"), "{err}");
    assert!(err.contains("pins SHA256:"), "{err}");
    assert!(err.contains("refusing"), "{err}");
    assert_eq!(
        env.fleet.accepted_logins(1),
        before,
        "no credential was sent"
    );
    assert_eq!(
        env.fleet.admin(1, "getent passwd e2e-gina").status.code(),
        Some(2)
    );
}

#[test]
fn hostile_input_is_refused_and_reaches_no_server() {
    let _q = QUIET.write().unwrap_or_else(|e| e.into_inner());
    let env = Env::new();
    let before = env.fleet.all_accepted_logins();
    let long = "a".repeat(300);
    let garbage_key = env.tmp.path().join("garbage.pub");
    std::fs::write(&garbage_key, "ssh-ed25519 not-base64 $(id)\n").unwrap();
    let hostile = [
        "alice;rm -rf /",
        "$(id)",
        "`id`",
        "-oProxyCommand=x",
        "../../etc/passwd",
        long.as_str(),
        "ünïcödé",
        "",
    ];
    for bad in hostile {
        for (flag, email) in [
            (format!("--username={bad}"), "ok@corp.example".to_string()),
            (
                "--permission=Default".to_string(),
                format!("{bad}@corp.example"),
            ),
            (format!("--permission={bad}"), "ok@corp.example".to_string()),
        ] {
            let err = env.grant("web-1", &email, &[&flag]).unwrap_err();
            assert!(
                err.contains("grant refused: invalid-request"),
                "{flag} {email}: {err}"
            );
        }
        let err = env.grant(bad, "ok@corp.example", &[]).unwrap_err();
        assert!(
            err.contains("grant refused: invalid-request"),
            "resource {bad:?}: {err}"
        );
    }
    for duration in ["0s", "-5m", "soon", "9h", ""] {
        let err = env
            .grant("web-1", "ok@corp.example", &[&format!("--for={duration}")])
            .unwrap_err();
        assert!(
            err.contains("duration") || err.contains("--for"),
            "{duration:?}: {err}"
        );
    }
    let err = env
        .grant(
            "web-1",
            "ok@corp.example",
            &["--public-key", garbage_key.to_str().unwrap()],
        )
        .unwrap_err();
    assert!(err.contains("public key"), "{err}");
    let out = latch(&[
        "grant",
        "--config",
        env.config.to_str().unwrap(),
        "--integration",
        "nope",
        "--resource",
        "web-1",
        "--user",
        "ok@corp.example",
        "--for",
        "1m",
    ]);
    assert!(
        text(&out).contains("no integration \"nope\""),
        "{}",
        text(&out)
    );
    assert_eq!(
        env.fleet.all_accepted_logins(),
        before,
        "no command reached any server"
    );
    let ledger = latch::ledger::Ledger::open(env.tmp.path()).unwrap();
    assert!(
        ledger.list(None).unwrap().is_empty(),
        "refused grants leave no grant"
    );
    let audited = ledger.audit_tail(1000).unwrap();
    assert!(
        audited
            .iter()
            .all(|r| r.event == "grant.requested" || r.event == "grant.refused"),
        "only requests and refusals: nothing was carried out"
    );
    assert!(
        audited.iter().any(|r| r.event == "grant.refused"),
        "refusals are audited"
    );
    assert_eq!(ledger.audit_verify().unwrap().map(|n| n > 0), Ok(true));
}

#[test]
fn secrets_never_reach_logs_or_output_even_at_trace_level() {
    let _g = shared();
    let env = Env::new();
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(env.tmp.path().join("hank"))
        .status()
        .unwrap();
    assert!(status.success());
    let out = Command::new(env!("CARGO_BIN_EXE_latch"))
        .args([
            "grant",
            "--config",
            env.config.to_str().unwrap(),
            "--integration",
            "linux",
        ])
        .args([
            "--resource",
            "web-3",
            "--user",
            "e2e-hank@corp.example",
            "--for",
            "1m",
            "--json",
        ])
        .arg("--public-key")
        .arg(env.tmp.path().join("hank.pub"))
        // Everything of Latch's own at trace (wasmtime's and cranelift's compile traces at
        // info: they hold no secrets and would only make the test slow).
        .env("LATCH_LOG", "latch=trace,info")
        .output()
        .unwrap();
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(all.contains("INFO"), "logging is on: {all}");
    let service_pem = std::fs::read_to_string(env.fleet.dir.join("service_key")).unwrap();
    let service_b64 = std::fs::read_to_string(env.tmp.path().join("secrets/fleet-key")).unwrap();
    let ca_pem = std::fs::read_to_string(env.tmp.path().join("secrets/latch-user-ca")).unwrap();
    for (name, secret) in [
        ("service key", &service_pem),
        ("service key (base64)", &service_b64),
        ("CA key", &ca_pem),
    ] {
        // Any 40-character run of the secret's body would be a leak.
        let body: String = secret.lines().filter(|l| !l.starts_with("-----")).collect();
        for chunk in body.as_bytes().chunks(40).filter(|c| c.len() == 40) {
            let chunk = std::str::from_utf8(chunk).unwrap();
            assert!(!all.contains(chunk), "{name} leaked into the output");
        }
    }
}

#[test]
fn an_unknown_host_is_refused_unless_trust_on_first_use_records_it() {
    let _g = shared();
    // No pins at all: refused, naming the presented key.
    let env = Env::with_known_hosts(Some(""));
    let err = env
        .grant("web-2", "e2e-ivan@corp.example", &[])
        .unwrap_err();
    assert!(
        err.contains("does not list") && err.contains("SHA256:"),
        "{err}"
    );
    assert_eq!(
        env.fleet.admin(2, "getent passwd e2e-ivan").status.code(),
        Some(2)
    );

    // With trust_on_first_use the key is recorded, and the grant goes through.
    let config = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(
        &env.config,
        config.replace(
            "key_secret = \"fleet-key\"",
            "key_secret = \"fleet-key\"\ntrust_on_first_use = true",
        ),
    )
    .unwrap();
    env.grant("web-2", "e2e-ivan@corp.example", &[]).unwrap();
    let recorded = std::fs::read_to_string(env.tmp.path().join("known_hosts")).unwrap();
    let pinned = std::fs::read_to_string(env.fleet.known_hosts()).unwrap();
    let host2 = pinned
        .lines()
        .find(|l| l.starts_with("127.0.10.3 "))
        .unwrap();
    assert_eq!(
        recorded.trim(),
        host2.trim(),
        "the recorded key is the host's real key"
    );
}

#[test]
fn init_keeps_the_ca_private_and_never_overwrites_it() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let out = latch(&["init", "--dir", dir.path().to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let ca = dir.path().join("secrets/latch-user-ca");
    assert_eq!(
        std::fs::metadata(&ca).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::metadata(dir.path().join("secrets"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o700
    );
    let before = std::fs::read(&ca).unwrap();
    let out = latch(&["init", "--dir", dir.path().to_str().unwrap()]);
    assert!(text(&out).contains("kept"), "{}", text(&out));
    assert_eq!(std::fs::read(&ca).unwrap(), before);
    assert!(
        !text(&out).contains("PRIVATE KEY"),
        "init prints only the public key"
    );
}

#[test]
fn one_command_grants_several_servers_each_on_its_own() {
    let _g = shared();
    let env = Env::new();
    let out_dir = env.tmp.path().join("out");
    let cfg = env.config.to_str().unwrap();
    let out = latch(&[
        "grant",
        "--config",
        cfg,
        "--integration",
        "linux",
        "--resource",
        "web-1",
        "--resource",
        "web-2",
        "--resource",
        "web-down",
        "--user",
        "e2e-multi@corp.example",
        "--for",
        "10m",
        "--json",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "one of three failed: {}",
        text(&out)
    );
    let all: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let all = all.as_array().unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!(all[2]["resource"], "web-down", "{:?}", all[2]);
    let error = all[2]["error"].as_str().unwrap_or_default();
    assert!(error.contains("unreachable"), "{error}");
    for granted in &all[..2] {
        let login = env.login(granted, "hostname");
        assert!(login.status.success(), "{}", text(&login));
    }
    // The failed one never ran a command (its server is down): it stays `failed`; the others
    // are ordinary grants.
    let ledger = latch::ledger::Ledger::open(env.tmp.path()).unwrap();
    let states: Vec<_> = ledger
        .list(None)
        .unwrap()
        .into_iter()
        .map(|g| (g.resource_id, g.state))
        .collect();
    assert!(
        states.contains(&("web-down".into(), latch::ledger::State::Failed)),
        "{states:?}"
    );
    for granted in &all[..2] {
        assert!(
            env.revoke(granted["grant_id"].as_str().unwrap())
                .status
                .success()
        );
        assert!(!env.login(granted, "true").status.success());
    }
    let dup = latch(&[
        "grant",
        "--config",
        cfg,
        "--integration",
        "linux",
        "--resource",
        "web-1",
        "--resource",
        "web-1",
        "--user",
        "e2e-multi@corp.example",
        "--for",
        "10m",
    ]);
    assert!(
        !dup.status.success() && text(&dup).contains("twice"),
        "{}",
        text(&dup)
    );
}

/// `latch grant --plan` on a real server: the reads run (the account is found missing), the
/// changes are listed (`useradd` of that account among them), and none is made.
#[test]
fn a_plan_lists_the_changes_on_a_real_server_and_makes_none() {
    let _g = shared();
    let env = Env::new();
    let out = latch(&[
        "grant",
        "--config",
        env.config.to_str().unwrap(),
        "--integration",
        "linux",
        "--resource=web-2",
        "--user=e2e-plan@corp.example",
        "--permission",
        "adm",
        "--for",
        "10m",
        "--plan",
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let plans: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let plan = &plans[0];
    assert_eq!(plan["outcome"], "would grant", "{plan}");
    assert_eq!(plan["username"], "e2e-plan");
    // One probe reads everything the grant decides on.
    assert!(plan["reads"].as_u64().unwrap() >= 1, "{plan}");
    let changes: Vec<&str> = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert!(
        changes
            .iter()
            .any(|c| c.contains("useradd") && c.ends_with("-- e2e-plan")),
        "{changes:#?}"
    );
    assert!(
        changes.iter().any(|c| c.contains("-G latch-managed,adm")),
        "{changes:#?}"
    );
    assert!(changes.last().unwrap().starts_with("certs.sign-ssh-user"));
    // Nothing happened: no account, no grant.
    assert_eq!(
        env.fleet.admin(2, "getent passwd e2e-plan").status.code(),
        Some(2)
    );
    let ledger = latch::ledger::Ledger::open(env.tmp.path()).unwrap();
    assert!(ledger.list(None).unwrap().is_empty());
    let audit = ledger.audit_all().unwrap();
    assert!(audit.iter().any(|r| r.event == "plan.requested"));
    assert!(audit.iter().all(|r| r.outcome != "ok" || r.event == "plan"));
}
