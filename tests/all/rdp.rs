//! The `rdp-servers` guest end to end: Latch's live WinRM (HTTPS, NTLM) to the Windows
//! stand-in, which keeps a FreeRDP SAM file of the accounts Windows would let log on over RDP
//! (enabled, unexpired, in Remote Desktop Users); a real RDP server checking network-level
//! authentication against it (`freerdp-shadow-cli /sec:nla`, under Xvfb) and a real client
//! (`xfreerdp +auth-only`) logging in with the password Latch issued (`tests/rdp/rdp.sh`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use latch::runtime::sha256_hex;
use serde_json::Value;

use crate::winrm::StandIn;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A real RDP server (NLA) checking logins against `sam`.
struct Rdp {
    dir: tempfile::TempDir,
}

impl Rdp {
    fn up(sam: &Path) -> Rdp {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("bash")
            .arg(repo().join("tests/rdp/rdp.sh"))
            .args(["up", dir.path().join("rdp").to_str().unwrap()])
            .arg(sam)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "the RDP server did not start (needs `make setup`): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Rdp { dir }
    }

    fn rdp_dir(&self) -> PathBuf {
        self.dir.path().join("rdp")
    }

    fn port(&self) -> u16 {
        let env = std::fs::read_to_string(self.rdp_dir().join("env")).unwrap();
        env.lines()
            .find_map(|l| l.strip_prefix("PORT="))
            .unwrap()
            .trim_matches('"')
            .parse()
            .unwrap()
    }

    /// `OK`, `REFUSED` or `UNREACHABLE`: a real NLA login, the password on stdin.
    fn login(&self, args: &[&str], password: &str) -> String {
        let mut child = Command::new("bash")
            .arg(repo().join("tests/rdp/rdp.sh"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
        let out = child.wait_with_output().unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn login_user(&self, user: &str, password: &str) -> String {
        let dir = self.rdp_dir();
        self.login(&["login", dir.to_str().unwrap(), user, "-"], password)
    }

    fn login_file(&self, rdp_text: &str, password: &str) -> String {
        let file = self.dir.path().join("grant.rdp");
        std::fs::write(&file, rdp_text).unwrap();
        let dir = self.rdp_dir();
        self.login(
            &[
                "login-file",
                dir.to_str().unwrap(),
                file.to_str().unwrap(),
                "-",
            ],
            password,
        )
    }
}

impl Drop for Rdp {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(repo().join("tests/rdp/rdp.sh"))
            .args(["down", self.rdp_dir().to_str().unwrap()])
            .output();
    }
}

/// A data dir whose one integration is `rdp-servers` on the stand-in, RDP on `rdp_port`.
fn setup(s: &StandIn, rdp_port: u16) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let out = crate::fleet::latch(&["init", "--dir", tmp.path().to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    std::fs::write(
        tmp.path().join("secrets/winrm-password"),
        crate::winrm::PASSWORD,
    )
    .unwrap();
    std::fs::copy(s.ca(), tmp.path().join("standin-ca.pem")).unwrap();
    let guest = crate::guest("rdp_servers");
    let sha = sha256_hex(&std::fs::read(&guest).unwrap());
    let config = tmp.path().join("latch.toml");
    std::fs::write(
        &config,
        format!(
            r#"
listen = "127.0.0.1:0"
[[integration]]
name = "rdp"
guest = {guest:?}
sha256 = "{sha}"
allow = ["localhost:{https}"]
[integration.winrm]
ca_file = "standin-ca.pem"
https_ports = [{https}]
user = "LAB\\latch-svc"
password_secret = "winrm-password"
read = ["Get-LocalUser", "Get-LocalGroupMember", "Get-LocalGroup"]
change = ["New-LocalUser", "Set-LocalUser", "Enable-LocalUser", "Disable-LocalUser", "Add-LocalGroupMember", "Remove-LocalGroupMember", "Remove-LocalUser", "Disconnect-LatchSession"]
[integration.config]
servers = [{{ name = "ws-1", host = "localhost", computer_name = "WS1", winrm_port = {https}, rdp_port = {rdp_port} }}]
user = "LAB\\latch-svc"
password_secret = "winrm-password"
username_prefix = "jit_"
session_logoff_cmdlet = "Disconnect-LatchSession"
"#,
            guest = guest.to_str().unwrap(),
            https = s.https,
        ),
    )
    .unwrap();
    (tmp, config)
}

fn grant(config: &Path, username: &str, duration: &str) -> Result<Value, String> {
    let username = format!("--username={username}");
    let out = crate::fleet::latch(&[
        "grant",
        "--config",
        config.to_str().unwrap(),
        "--integration",
        "rdp",
        "--resource=ws-1",
        "--user=requester@corp.example",
        &username,
        "--for",
        duration,
        "--json",
    ]);
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn start() -> (StandIn, Rdp) {
    let sam_dir = tempfile::tempdir().unwrap().keep();
    let sam = sam_dir.join("users.sam");
    // As if the administrator installed docs/windows/LatchSessions.psm1.
    let s = StandIn::start(&["--rdp-sam", sam.to_str().unwrap(), "--logoff-module"]);
    let rdp = Rdp::up(&sam);
    (s, rdp)
}

#[test]
fn a_granted_account_logs_in_over_rdp_with_nla_and_revoke_ends_it() {
    let (s, rdp) = start();
    let (_tmp, config) = setup(&s, rdp.port());
    let granted = grant(&config, "alice", "10m").unwrap();
    let pw = granted["password"].as_str().expect("a delivered password");
    assert_eq!(granted["username"], "WS1\\jit_alice");
    assert_eq!(rdp.login_user("jit_alice", pw), "OK");
    // The .rdp file Latch hands out, as the client's only source of address and user.
    let rdp_text = granted["extras"]["rdp-file"]
        .as_str()
        .unwrap_or_else(|| panic!("no rdp-file in {granted}"));
    assert_eq!(rdp.login_file(rdp_text, pw), "OK");
    assert_eq!(rdp.login_user("jit_alice", "not-the-password"), "REFUSED");

    let out = crate::fleet::latch(&[
        "revoke",
        "--config",
        config.to_str().unwrap(),
        granted["grant_id"].as_str().unwrap(),
    ]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(rdp.login_user("jit_alice", pw), "REFUSED");
    // The installed logoff cmdlet was asked to end the account's sessions, by exact name.
    let logoffs: Vec<Value> = s
        .calls()
        .into_iter()
        .filter(|c| c["cmdlet"] == "Disconnect-LatchSession")
        .collect();
    assert_eq!(logoffs.len(), 1, "{logoffs:?}");
    assert_eq!(logoffs[0]["parameters"][0][1]["value"], "jit_alice");
    // Still listening: the refusal is the login's, not a dead server's.
    assert_ne!(rdp.login_user("jit_alice", pw), "UNREACHABLE");

    // A hostile name is refused before anything reaches the server.
    let before = s.calls().len();
    let err = grant(&config, "$(id)", "10m").unwrap_err();
    assert!(
        err.contains("invalid") || err.contains("not a valid"),
        "{err}"
    );
    assert_eq!(s.calls().len(), before, "{:?}", &s.calls()[before..]);
}

#[test]
fn windows_itself_ends_rdp_access_at_expiry_with_the_connector_down() {
    let (s, rdp) = start();
    let (_tmp, config) = setup(&s, rdp.port());
    let granted = grant(&config, "bob", "6s").unwrap();
    let pw = granted["password"].as_str().unwrap();
    assert_eq!(rdp.login_user("jit_bob", pw), "OK");
    std::thread::sleep(std::time::Duration::from_secs(9));
    assert_eq!(rdp.login_user("jit_bob", pw), "REFUSED");
}

#[test]
fn the_service_password_rotates_proven_before_the_switch_and_resumes_after_a_crash() {
    let s = StandIn::start(&[]);
    let (tmp, config) = setup(&s, 3389);
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("credential_rotation_days = 30\n");
    std::fs::write(&config, text).unwrap();
    let secret = tmp.path().join("secrets/winrm-password");
    let next = tmp.path().join("secrets/winrm-password.next");
    let rotate = || {
        crate::fleet::latch_env(
            &[
                "rotate",
                "--config",
                config.to_str().unwrap(),
                "--integration",
                "rdp",
                "--json",
            ],
            &[(
                "LATCH_LOG",
                "trace,cranelift_codegen=warn,cranelift_frontend=warn,regalloc2=warn,\
                 wasmtime_cranelift=warn,wasmtime=warn,wasmparser=warn",
            )],
        )
    };
    let out = rotate();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["credential"], "password");
    assert_eq!(r["servers_checked"], 1, "{r}");
    let new = std::fs::read_to_string(&secret).unwrap();
    assert_ne!(new, crate::winrm::PASSWORD);
    assert!(!next.exists());
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&secret).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let logs = String::from_utf8_lossy(&out.stderr);
    assert!(logs.len() > 1000, "trace logging was on");
    assert!(!logs.contains(&new) && !logs.contains(crate::winrm::PASSWORD));
    // The server took it (the stand-in sets it as Windows would); Latch now logs in with it.
    let set = s
        .calls()
        .into_iter()
        .filter(|c| c["cmdlet"] == "Set-LocalUser")
        .count();
    assert_eq!(set, 1);
    grant(&config, "carol", "10m").unwrap();

    // A crash after the server took a new password and before the switch: the store still
    // holds the old one, `.next` the one the server has. Resuming proves `.next` works,
    // does not set it again, and switches.
    std::fs::write(&next, &new).unwrap();
    std::fs::write(&secret, "Stale-Passw0rd!").unwrap();
    let before = s.calls().len();
    let out = rotate();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), new);
    assert!(!next.exists());
    assert!(
        s.calls()[before..]
            .iter()
            .all(|c| c["cmdlet"] != "Set-LocalUser"),
        "{:?}",
        &s.calls()[before..]
    );
}
