//! The SSH integration on hosts set up like other Linux distributions *in the respect that
//! matters* (see `tests/fleet/fleet.sh`'s variants; the userland is this machine's Debian):
//! sshd's pid file elsewhere or none, systemd-managed or per-connection sshd, sshd_config
//! without the `Include`, sudo with `requiretty`, a restrictive `secure_path` or a password,
//! service-account shells dash, zsh and tcsh, BusyBox's user tools, `wheel` instead of
//! `sudo`, SELinux's `restorecon`. Each either grants, logs in with the real `ssh` client
//! and revokes — or is refused before anything on the host changed, saying what to do.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::fleet::{cert_login, cli_grant, data_dir_for, latch};
use latch::runtime::sha256_hex;

/// Host i (1-based) of the variants fleet, on 127.0.12.(i+1).
const VARIANTS: &[&str] = &[
    "pidfile-elsewhere",
    "no-pidfile",
    "systemd",
    "inetd",
    "no-include",
    "requiretty",
    "secure-path",
    "sudo-password",
    "shell-dash",
    "shell-zsh",
    "shell-tcsh",
    "busybox+no-pam",
    "wheel",
    "selinux",
];

struct Distros {
    dir: PathBuf,
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn distros() -> &'static Distros {
    static FLEET: OnceLock<Distros> = OnceLock::new();
    FLEET.get_or_init(|| {
        let dir = repo().join("target/fleet-distros");
        let out = Command::new("bash")
            .arg(repo().join("tests/fleet/fleet.sh"))
            .args([
                "up",
                dir.to_str().unwrap(),
                &VARIANTS.len().to_string(),
                "127.0.12",
            ])
            .env("FLEET_VARIANTS", VARIANTS.join(" "))
            .output()
            .expect("run fleet.sh");
        assert!(
            out.status.success(),
            "the variants fleet did not start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let ca = latch::caps::certs::ca::new_ca().unwrap();
        std::fs::write(dir.join("latch-user-ca"), ca.expose()).unwrap();
        Distros { dir }
    })
}

impl Distros {
    fn index(&self, variant: &str) -> usize {
        VARIANTS.iter().position(|v| *v == variant).unwrap() + 1
    }
    fn addr(&self, variant: &str) -> String {
        format!("127.0.12.{}", self.index(variant) + 1)
    }
    fn host_dir(&self, variant: &str) -> PathBuf {
        self.dir.join(format!("host{}", self.index(variant)))
    }
    /// Everything on the host a grant could change, read from outside: accounts, groups,
    /// shadow, sudoers, and every file under /etc/ssh.
    fn snapshot(&self, variant: &str) -> Vec<(String, String)> {
        let etc = self.host_dir(variant).join("etc");
        let mut files = vec![];
        for f in ["passwd", "group", "shadow", "gshadow"] {
            files.push(etc.join(f));
        }
        let mut stack = vec![etc.join("ssh")];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    files.push(p);
                }
            }
        }
        files.sort();
        files
            .into_iter()
            .map(|p| {
                let content = std::fs::read(&p)
                    .map(|b| sha256_hex(&b))
                    .unwrap_or_default();
                (p.display().to_string(), content)
            })
            .collect()
    }
    fn calls(&self, variant: &str, tool: &str) -> String {
        std::fs::read_to_string(self.host_dir(variant).join(format!("var-log/{tool}.calls")))
            .unwrap_or_default()
    }
}

/// A data dir and latch.toml naming the one host of `variant`.
struct Env {
    _tmp: tempfile::TempDir,
    config: PathBuf,
    variant: &'static str,
}

impl Env {
    fn new(variant: &'static str) -> Env {
        let d = distros();
        let tmp = data_dir_for(&d.dir);
        let guest = crate::guest("ssh_servers");
        let sha = sha256_hex(&std::fs::read(&guest).unwrap());
        let config = tmp.path().join("latch.toml");
        std::fs::write(
            &config,
            format!(
                r#"
[[integration]]
name = "linux"
guest = "{}"
sha256 = "{sha}"
allow = ["127.0.12.0/24:22"]
max_duration = "8h"
[integration.ssh]
key_secret = "fleet-key"
known_hosts = "{}"
[integration.config]
servers = [{{ name = "{}", host = "{}" }}]
user_groups = ["Default", "sudo", "wheel"]
"#,
                guest.display(),
                d.dir.join("known_hosts").display(),
                variant.replace('+', "-"),
                d.addr(variant)
            ),
        )
        .unwrap();
        Env {
            _tmp: tmp,
            config,
            variant,
        }
    }

    fn grant(&self, user: &str, extra: &[&str]) -> Result<serde_json::Value, String> {
        let resource = self.variant.replace('+', "-");
        cli_grant(&self.config, "linux", &resource, user, extra)
    }

    fn login(&self, granted: &serde_json::Value, command: &str) -> std::process::Output {
        cert_login(&distros().dir.join("known_hosts"), granted, command)
    }

    fn revoke(&self, granted: &serde_json::Value) {
        let out = latch(&[
            "revoke",
            "--config",
            self.config.to_str().unwrap(),
            granted["grant_id"].as_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Grant, log in with the certificate (which works only once sshd re-read its
/// configuration), revoke, and be refused.
fn grant_login_revoke(variant: &'static str, user: &str, permission: Option<&str>) -> Env {
    let env = Env::new(variant);
    let mut extra = vec![];
    if let Some(p) = permission {
        extra.extend(["--permission", p]);
    }
    let granted = env
        .grant(&format!("{user}@corp.example"), &extra)
        .unwrap_or_else(|e| panic!("{variant}: grant failed: {e}"));
    let out = env.login(&granted, "id -nG");
    assert!(
        out.status.success(),
        "{variant}: login failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let groups = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        groups.split_whitespace().any(|g| g == "latch-managed"),
        "{variant}: {groups}"
    );
    if let Some(p) = permission {
        assert!(
            groups.split_whitespace().any(|g| g == p),
            "{variant}: {groups}"
        );
    }
    env.revoke(&granted);
    let out = env.login(&granted, "true");
    assert!(
        !out.status.success(),
        "{variant}: login still works after revoke"
    );
    env
}

/// Refused before anything changed on the host, with a message naming `says`.
fn refused_unchanged(variant: &'static str, user: &str, says: &str) {
    let d = distros();
    let env = Env::new(variant);
    let before = d.snapshot(variant);
    let err = env
        .grant(&format!("{user}@corp.example"), &[])
        .expect_err("the grant must be refused");
    assert!(err.contains(says), "{variant}: {err}");
    assert_eq!(
        before,
        d.snapshot(variant),
        "{variant}: the refused grant changed the host"
    );
}

#[test]
fn sshd_with_its_pid_file_elsewhere_is_reloaded() {
    grant_login_revoke("pidfile-elsewhere", "dpid", None);
}

#[test]
fn sshd_without_a_pid_file_is_reloaded() {
    grant_login_revoke("no-pidfile", "dnopid", None);
}

#[test]
fn sshd_under_systemd_is_reloaded_through_systemctl() {
    grant_login_revoke("systemd", "dsystemd", None);
    let calls = distros().calls("systemd", "systemctl");
    assert!(calls.lines().any(|l| l == "reload ssh.service"), "{calls}");
}

#[test]
fn per_connection_sshd_needs_no_reload() {
    grant_login_revoke("inetd", "dinetd", None);
}

#[test]
fn sshd_config_without_the_include_is_refused_before_any_change() {
    refused_unchanged(
        "no-include",
        "dinclude",
        "Include /etc/ssh/sshd_config.d/*.conf",
    );
}

#[test]
fn sudo_requiring_a_tty_is_refused_before_any_change() {
    refused_unchanged("requiretty", "dtty", "!requiretty");
}

#[test]
fn sudo_needing_a_password_is_refused_before_any_change() {
    refused_unchanged("sudo-password", "dsudopw", "NOPASSWD");
}

#[test]
fn a_restrictive_sudo_secure_path_does_not_matter() {
    grant_login_revoke("secure-path", "dsecure", None);
}

#[test]
fn service_accounts_with_dash_and_zsh_work() {
    grant_login_revoke("shell-dash", "ddash", None);
    grant_login_revoke("shell-zsh", "dzsh", None);
}

#[test]
fn a_non_posix_service_shell_is_refused_before_any_change() {
    refused_unchanged("shell-tcsh", "dtcsh", "POSIX");
}

#[test]
fn busybox_user_tools_are_used_where_shadow_is_missing() {
    let env = grant_login_revoke("busybox+no-pam", "dbusy", None);
    // Revoked: locked (BusyBox has no expiry), out of nothing else; cleanup deletes it.
    let shadow =
        std::fs::read_to_string(distros().host_dir("busybox+no-pam").join("etc/shadow")).unwrap();
    let line = shadow.lines().find(|l| l.starts_with("dbusy:")).unwrap();
    assert!(line.starts_with("dbusy:!"), "{line}");
    drop(env);
}

#[test]
fn wheel_is_offered_and_granted_where_sudo_does_not_exist() {
    let env = Env::new("wheel");
    let out = latch(&[
        "resources",
        "--config",
        env.config.to_str().unwrap(),
        "--integration",
        "linux",
        "--json",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("\"wheel\"") && !text.contains("\"sudo\""),
        "{text}"
    );
    grant_login_revoke("wheel", "dwheel", Some("wheel"));
    let group = std::fs::read_to_string(distros().host_dir("wheel").join("etc/group")).unwrap();
    let wheel = group.lines().find(|l| l.starts_with("wheel:")).unwrap();
    assert!(
        !wheel.contains("dwheel"),
        "revoke left the account in wheel: {wheel}"
    );
}

#[test]
fn selinux_labels_are_restored_on_what_latch_writes() {
    grant_login_revoke("selinux", "dselinux", None);
    let calls = distros().calls("selinux", "restorecon");
    assert!(
        calls.lines().any(|l| l.contains("/etc/ssh/latch")),
        "{calls}"
    );
    assert!(
        calls
            .lines()
            .any(|l| l.contains("/etc/ssh/sshd_config.d/latch.conf")),
        "{calls}"
    );
    // The revoke's KRL update is labelled too.
    assert!(
        calls
            .lines()
            .any(|l| l.ends_with("/etc/ssh/latch/revoked_keys")),
        "{calls}"
    );
}
