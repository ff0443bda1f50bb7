//! Credential rotation against a fleet of its own (127.0.11.x): rotating the service key
//! changes what every server accepts, so it never runs on the shared test fleet.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::fleet::{Serve, eventually, latch, ssh_opts};

/// Two sshd hosts of a fleet of their own (`target/NAME`, PREFIX.2-3), stopped when dropped.
pub(crate) struct OwnFleet {
    pub(crate) dir: PathBuf,
    prefix: &'static str,
}

impl OwnFleet {
    fn up() -> OwnFleet {
        OwnFleet::up_at("fleet-rotation", "127.0.11")
    }

    pub(crate) fn up_at(name: &str, prefix: &'static str) -> OwnFleet {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let dir = repo.join("target").join(name);
        let out = Command::new("bash")
            .arg(repo.join("tests/fleet/fleet.sh"))
            .args(["up", dir.to_str().unwrap(), "2", prefix])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        OwnFleet { dir, prefix }
    }

    /// Log in as the service account with `key` (a private key file) and run `true`.
    pub(crate) fn service_login(&self, key: &Path, host: usize) -> Output {
        self.run_as_service(key, host, "true")
    }

    /// Run `command` on host `host` as the service account, with the fleet's own key
    /// (inspection only).
    pub(crate) fn admin(&self, host: usize, command: &str) -> Output {
        self.run_as_service(&self.dir.join("service_key"), host, command)
    }

    fn run_as_service(&self, key: &Path, host: usize, command: &str) -> Output {
        Command::new("ssh")
            .args(ssh_opts(&self.dir.join("known_hosts")))
            .arg("-i")
            .arg(key)
            .arg(format!("apono@{}.{}", self.prefix, host + 1))
            .arg(command)
            .output()
            .unwrap()
    }
}

impl Drop for OwnFleet {
    fn drop(&mut self) {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let _ = Command::new("bash")
            .arg(repo.join("tests/fleet/fleet.sh"))
            .args(["down", self.dir.to_str().unwrap()])
            .output();
    }
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// The service key in the secret store, as a private key file ssh can use.
pub(crate) fn key_file(data: &Path, name: &str) -> PathBuf {
    let pem = std::fs::read(data.join("secrets/fleet-key")).unwrap();
    let path = data.join(name);
    std::fs::write(&path, pem).unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    path
}

#[test]
fn the_service_key_rotates_everywhere_and_the_old_one_stops_working() {
    let fleet = OwnFleet::up();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    assert!(
        latch(&["init", "--dir", data.to_str().unwrap()])
            .status
            .success()
    );
    let original = fleet.dir.join("service_key");
    std::fs::copy(&original, data.join("secrets/fleet-key")).unwrap();
    let guest = crate::guest("ssh_servers");
    let sha = latch::runtime::sha256_hex(&std::fs::read(&guest).unwrap());
    let config = data.join("latch.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\n[[integration]]\nname = \"linux\"\nguest = \"{}\"\nsha256 = \"{sha}\"\nallow = [\"127.0.11.0/24:22\"]\n[integration.ssh]\nkey_secret = \"fleet-key\"\nknown_hosts = \"{}\"\n[integration.config]\nservers = [{{ name = \"r-1\", host = \"127.0.11.2\" }}, {{ name = \"r-2\", host = \"127.0.11.3\" }}]\ncredential_rotation_days = 1\n",
            guest.display(),
            fleet.dir.join("known_hosts").display()
        ),
    )
    .unwrap();
    let cfg = config.to_str().unwrap();
    for h in 1..=2 {
        assert!(fleet.service_login(&original, h).status.success());
    }

    let out = latch(&[
        "rotate",
        "--config",
        cfg,
        "--integration",
        "linux",
        "--json",
    ]);
    assert!(out.status.success(), "{out:?}");
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_ne!(r["old_fingerprint"], r["new_fingerprint"]);
    assert_eq!(r["servers_checked"], 2, "{r}");
    assert!(!data.join("secrets/fleet-key.next").exists());
    assert!(!data.join("secrets/fleet-key.retiring").exists());
    assert_eq!(mode(&data.join("secrets/fleet-key")), 0o600);
    let first = key_file(data, "first-rotated");
    for h in 1..=2 {
        assert!(
            fleet.service_login(&first, h).status.success(),
            "new key on {h}"
        );
        assert!(
            !fleet.service_login(&original, h).status.success(),
            "old key on {h}"
        );
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        !text.contains("PRIVATE KEY"),
        "no key material in the output"
    );

    // The connector works on with the new key: a grant, a login, a revoke.
    let outdir = data.join("out");
    let out = latch(&[
        "grant",
        "--config",
        cfg,
        "--integration",
        "linux",
        "--resource",
        "r-2",
        "--user",
        "rot-ann@corp.example",
        "--for",
        "5m",
        "--json",
        "--out",
        outdir.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{out:?}");
    let granted: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = granted["grant_id"].as_str().unwrap();
    assert!(latch(&["revoke", "--config", cfg, id]).status.success());

    // The scheduler rotates once the key is older than credential_rotation_days.
    let touched = Command::new("touch")
        .args(["-d", "2 days ago"])
        .arg(data.join("secrets/fleet-key"))
        .status()
        .unwrap();
    assert!(touched.success());
    let _serve = Serve::with_config(&config);
    let rotated_again = eventually(60, || {
        std::fs::read(data.join("secrets/fleet-key")).unwrap() != std::fs::read(&first).unwrap()
            && !data.join("secrets/fleet-key.retiring").exists()
    });
    assert!(rotated_again, "the scheduler did not rotate the aged key");
    let second = key_file(data, "second-rotated");
    for h in 1..=2 {
        assert!(fleet.service_login(&second, h).status.success());
        assert!(!fleet.service_login(&first, h).status.success());
    }
    let audit = latch(&["audit", "tail", "-n", "500", "--json", "--config", cfg]);
    let audit = String::from_utf8_lossy(&audit.stdout).into_owned();
    let rotations = audit
        .lines()
        .filter(|l| l.contains("\"credential.rotation\"") && l.contains("\"ok\""))
        .count();
    assert_eq!(rotations, 2, "{audit}");
    assert!(!audit.contains("PRIVATE KEY"));
    assert!(
        latch(&["audit", "verify", "--config", cfg])
            .status
            .success()
    );
}
