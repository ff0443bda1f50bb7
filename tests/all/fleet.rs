//! The shared test fleet (real sshd hosts on 127.0.10.2 …) and a Latch data dir per test.
//!
//! One fleet serves the whole test binary (tests use distinct account names); `make test`
//! stops it afterwards (`tests/fleet/fleet.sh down target/fleet-tests`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use latch::runtime::sha256_hex;

/// Hosts in the test fleet.
pub const HOSTS: usize = 3;

pub struct Fleet {
    pub dir: PathBuf,
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

impl Fleet {
    /// The fleet, started on first use.
    pub fn shared() -> &'static Fleet {
        static FLEET: OnceLock<Fleet> = OnceLock::new();
        FLEET.get_or_init(|| {
            let dir = repo().join("target/fleet-tests");
            let out = Command::new("bash")
                .arg(repo().join("tests/fleet/fleet.sh"))
                .args(["up", dir.to_str().unwrap(), &HOSTS.to_string(), "127.0.10"])
                .output()
                .expect("run fleet.sh");
            assert!(
                out.status.success(),
                "the test fleet did not start (needs root, sshd, sudo: `make setup`): {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let ca = latch::caps::certs::ca::new_ca().unwrap();
            std::fs::write(dir.join("latch-user-ca"), ca.expose()).unwrap();
            Fleet { dir }
        })
    }

    /// Address of host `i` (1-based).
    pub fn addr(&self, i: usize) -> String {
        format!("127.0.10.{}", i + 1)
    }

    pub fn known_hosts(&self) -> PathBuf {
        self.dir.join("known_hosts")
    }

    /// Run a shell command on host `i` as the service user (test set-up and inspection only).
    pub fn admin(&self, i: usize, command: &str) -> Output {
        Command::new("ssh")
            .args(ssh_opts(&self.known_hosts()))
            .arg("-i")
            .arg(self.dir.join("service_key"))
            .arg(format!("apono@{}", self.addr(i)))
            .arg(command)
            .output()
            .expect("run ssh")
    }

    /// How many logins host `i`'s sshd has accepted so far (from its own log).
    pub fn accepted_logins(&self, i: usize) -> usize {
        let log =
            std::fs::read_to_string(self.dir.join(format!("host{i}/sshd.log"))).unwrap_or_default();
        log.matches("Accepted publickey").count()
    }

    /// Logins accepted by every host, summed.
    pub fn all_accepted_logins(&self) -> usize {
        (1..=HOSTS).map(|i| self.accepted_logins(i)).sum()
    }
}

pub fn ssh_opts(known_hosts: &Path) -> Vec<String> {
    [
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "IdentityAgent=none",
        "-o",
        "ConnectTimeout=5",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([
        "-o".to_string(),
        format!("UserKnownHostsFile={}", known_hosts.display()),
    ])
    .collect()
}

/// A Latch data dir (CA, secrets, grants) and latch.toml pointing at the shared fleet.
pub struct Env {
    pub fleet: &'static Fleet,
    pub tmp: tempfile::TempDir,
    pub config: PathBuf,
}

impl Env {
    /// A fresh data dir; `known_hosts` defaults to the fleet's pins.
    pub fn new() -> Env {
        Env::with_known_hosts(None)
    }

    pub fn with_known_hosts(known_hosts: Option<&str>) -> Env {
        let fleet = Fleet::shared();
        let tmp = data_dir_for(&fleet.dir);
        let known = match known_hosts {
            Some(text) => {
                let p = tmp.path().join("known_hosts");
                std::fs::write(&p, text).unwrap();
                p
            }
            None => fleet.known_hosts(),
        };
        let guest = crate::guest("ssh_servers");
        let sha = sha256_hex(&std::fs::read(&guest).unwrap());
        let mut servers: Vec<String> = (1..=HOSTS)
            .map(|i| format!("{{ name = \"web-{i}\", host = \"{}\" }}", fleet.addr(i)))
            .collect();
        // A server nothing listens on, for revokes that must be retried.
        servers.push("{ name = \"web-down\", host = \"127.0.10.99\" }".to_string());
        let config = tmp.path().join("latch.toml");
        std::fs::write(
            &config,
            format!(
                r#"
listen = "127.0.0.1:0"
[[integration]]
name = "linux"
guest = "{}"
sha256 = "{sha}"
allow = ["127.0.10.0/24:22"]
max_duration = "8h"
[integration.ssh]
key_secret = "fleet-key"
known_hosts = "{}"
[integration.config]
servers = [{}]
user_groups = ["Default", "adm"]
"#,
                guest.display(),
                known.display(),
                servers.join(", ")
            ),
        )
        .unwrap();
        Env { fleet, tmp, config }
    }

    /// `latch grant` with the CLI; returns the parsed JSON.
    pub fn grant(
        &self,
        resource: &str,
        email: &str,
        extra: &[&str],
    ) -> Result<serde_json::Value, String> {
        cli_grant(&self.config, "linux", resource, email, extra)
    }

    pub fn revoke(&self, grant_id: &str) -> Output {
        latch(&[
            "revoke",
            "--config",
            self.config.to_str().unwrap(),
            grant_id,
        ])
    }

    /// Log in with the real ssh client, the generated key and its certificate.
    pub fn login(&self, granted: &serde_json::Value, command: &str) -> Output {
        cert_login(&self.fleet.known_hosts(), granted, command)
    }
}

/// A fresh Latch data dir (`latch init`) holding the user CA and the service key (as secret
/// `fleet-key`) of the fleet in `fleet_dir`: one CA for a whole fleet, as one connector (or
/// one HA group) would have — a grant installs its CA on the server, so per-test CAs would
/// displace each other.
pub fn data_dir_for(fleet_dir: &Path) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let out = latch(&["init", "--dir", tmp.path().to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    std::fs::copy(
        fleet_dir.join("latch-user-ca"),
        tmp.path().join("secrets/latch-user-ca"),
    )
    .unwrap();
    let key = std::fs::read(fleet_dir.join("service_key")).unwrap();
    use base64::Engine;
    std::fs::write(
        tmp.path().join("secrets/fleet-key"),
        base64::engine::general_purpose::STANDARD.encode(key),
    )
    .unwrap();
    tmp
}

/// `latch grant` of one resource with the CLI (output files beside `config`, in `out/`);
/// the parsed JSON, or stderr. `--flag=value`, so a hostile value such as
/// `-oProxyCommand=x` stays a value.
pub fn cli_grant(
    config: &Path,
    integration: &str,
    resource: &str,
    email: &str,
    extra: &[&str],
) -> Result<serde_json::Value, String> {
    cli_grant_with(&latch, config, integration, resource, email, extra)
}

/// How a test runs the `latch` CLI (e.g. with a cloud's credentials in its environment).
pub type Run<'a> = &'a dyn Fn(&[&str]) -> Output;

/// [`cli_grant`], the CLI run by `run`.
pub fn cli_grant_with(
    run: Run,
    config: &Path,
    integration: &str,
    resource: &str,
    email: &str,
    extra: &[&str],
) -> Result<serde_json::Value, String> {
    let out_dir = config.parent().unwrap().join("out");
    let resource = format!("--resource={resource}");
    let email = format!("--user={email}");
    let integration = format!("--integration={integration}");
    let mut args = vec![
        "grant",
        "--config",
        config.to_str().unwrap(),
        &integration,
        &resource,
        &email,
        "--out",
        out_dir.to_str().unwrap(),
        "--json",
    ];
    if !extra.iter().any(|a| a.starts_with("--for")) {
        args.extend(["--for", "10m"]);
    }
    args.extend_from_slice(extra);
    let out = run(&args);
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// `latch resources --json` of one integration, run by `run`: stdout, or stderr.
pub fn cli_resources_with(run: Run, config: &Path, integration: &str) -> Result<String, String> {
    let config = config.to_str().unwrap();
    let out = run(&[
        "resources",
        "--config",
        config,
        "--integration",
        integration,
        "--json",
    ]);
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// `latch revoke` of a grant `cli_grant` printed, run by `run`; it must succeed.
pub fn cli_revoke_with(run: Run, config: &Path, granted: &serde_json::Value) {
    let config = config.to_str().unwrap();
    let out = run(&[
        "revoke",
        "--config",
        config,
        granted["grant_id"].as_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "revoke: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Log in with the real ssh client, a grant's generated key and its certificate.
pub fn cert_login(known_hosts: &Path, granted: &serde_json::Value, command: &str) -> Output {
    Command::new("ssh")
        .args(ssh_opts(known_hosts))
        .arg("-i")
        .arg(
            granted["private_key_file"]
                .as_str()
                .expect("a generated key"),
        )
        .arg("-o")
        .arg(format!(
            "CertificateFile={}",
            granted["certificate_file"].as_str().unwrap()
        ))
        .arg(format!(
            "{}@{}",
            granted["username"].as_str().unwrap(),
            granted["host"].as_str().unwrap()
        ))
        .arg(command)
        .output()
        .expect("run ssh")
}

/// A running `latch serve`, stopped when dropped.
pub struct Serve {
    child: std::process::Child,
    port: u16,
}

impl Serve {
    pub fn start(env: &Env) -> Serve {
        Serve::with_config(&env.config)
    }

    /// Start `latch serve` (its config listens on port 0, so the kernel picks a free port
    /// and nothing can take it between choosing and binding) and wait for the line that
    /// names the address it bound.
    pub fn with_config(config: &Path) -> Serve {
        Serve::with_config_env(config, &[])
    }

    /// [`Serve::with_config`] with extra environment variables.
    pub fn with_config_env(config: &Path, env: &[(&str, &str)]) -> Serve {
        use std::io::BufRead;
        let mut child = Command::new(env!("CARGO_BIN_EXE_latch"))
            .args(["serve", "--config", config.to_str().unwrap()])
            .env("LATCH_LOG", "error")
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start latch serve");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut said = Vec::new();
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let addr = line
                    .split_once("API on http://")
                    .or_else(|| line.split_once("API on https://"))
                    .and_then(|(_, rest)| rest.split_whitespace().next())
                    .and_then(|a| a.parse::<std::net::SocketAddr>().ok());
                match addr {
                    Some(addr) => {
                        let _ = tx.send(Ok(addr.port()));
                    }
                    None if said.len() < 20 => said.push(line),
                    None => {}
                }
            }
            let _ = tx.send(Err(said.join("\n")));
        });
        let port = match rx.recv_timeout(std::time::Duration::from_secs(60)) {
            Ok(Ok(port)) => port,
            Ok(Err(said)) => panic!("latch serve exited without listening: {said}"),
            Err(e) => panic!("latch serve did not say where it listens: {e}"),
        };
        Serve { child, port }
    }

    /// The port its API listens on.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Poll `check` every 200 ms until it is true or `secs` have passed.
pub fn eventually(secs: u64, mut check: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    check()
}

/// Unix seconds now.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// `latch` with extra environment variables (e.g. `LATCH_TOKEN`).
pub fn latch_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_latch"))
        .args(args)
        .env("LATCH_LOG", "error")
        .envs(env.iter().copied())
        .output()
        .expect("run latch")
}

pub fn latch(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_latch"))
        .args(args)
        .env("LATCH_LOG", "error")
        .output()
        .expect("run latch")
}
