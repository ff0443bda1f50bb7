//! The `ec2-ssh` integration against moto (PyPI; it stands in for AWS, with real SigV4
//! checking) and real sshd hosts whose addresses are the instances' private IPs: an instance
//! is discovered, granted, logged in to with the real `ssh` client and the certificate, and
//! revoked. moto checks every request's signature against the IAM key `moto.sh` created.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::fleet::{cert_login, cli_grant_with, cli_resources_with, cli_revoke_with, data_dir_for};
use latch::runtime::sha256_hex;

/// moto's port. The peers' fixed ports (moto 25130, OpenBao 25140, the Azure stand-in 25160,
/// GCP 25180, the hostile endpoint 25190, the AWS identity peer 25200) lie below Linux's
/// ephemeral range (32768-60999): a fixed port inside it can be taken by any test's outgoing
/// connection, which once made a peer fail to start ("Address already in use").
const PORT: u16 = 25130;
/// Fleet hosts 1..=3 on 127.0.14.2..4.
const HOSTS: usize = 3;

pub(crate) struct Cloud {
    pub(crate) fleet: PathBuf,
    pub(crate) moto: PathBuf,
    /// Instance ids by name.
    ids: Vec<(String, String)>,
}

pub(crate) fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub(crate) fn endpoint() -> String {
    format!("http://127.0.0.1:{PORT}")
}

pub(crate) fn run(cmd: &mut Command, what: &str) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub(crate) fn peer(args: &[&str]) -> String {
    run(
        Command::new(repo().join("target/py/bin/python"))
            .arg(repo().join("tests/cloud/moto_peer.py"))
            .args(args)
            .env("AWS_EC2_METADATA_DISABLED", "true"),
        "moto_peer.py",
    )
}

/// A hostile Name tag: shell, quote, JSON, URL and XML syntax.
const HOSTILE_NAME: &str = "$(id);'‘\"{}<x>&a=b%20/..";

/// The tests of this module one at a time: two of them prove that no host changed, which
/// a concurrent grant on the same fleet would confuse.
pub(crate) fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn cloud() -> &'static Cloud {
    static CLOUD: OnceLock<Cloud> = OnceLock::new();
    CLOUD.get_or_init(|| {
        let fleet = repo().join("target/fleet-ec2");
        run(
            Command::new("bash")
                .arg(repo().join("tests/fleet/fleet.sh"))
                .args([
                    "up",
                    fleet.to_str().unwrap(),
                    &HOSTS.to_string(),
                    "127.0.14",
                ]),
            "fleet.sh up (needs root: `make setup`)",
        );
        let ca = latch::caps::certs::ca::new_ca().unwrap();
        std::fs::write(fleet.join("latch-user-ca"), ca.expose()).unwrap();
        let moto = repo().join("target/moto-tests");
        run(
            Command::new("bash")
                .arg(repo().join("tests/cloud/moto.sh"))
                .args(["up", moto.to_str().unwrap(), &PORT.to_string()]),
            "moto.sh up",
        );
        let creds = moto.join("credentials");
        let (ep, creds) = (endpoint(), creds.to_str().unwrap().to_string());
        let hostile = format!("127.0.14.4|running|Name={HOSTILE_NAME},env=prod");
        let east = peer(&[
            "instances",
            &ep,
            &creds,
            "us-east-1",
            "127.0.14.0/24",
            "127.0.14.2|running|Name=web-1,env=prod",
            "127.0.14.3|running|Name=dev-1,env=dev",
            &hostile,
            "127.0.14.9|stopped|Name=old-1,env=prod",
        ]);
        let west = peer(&[
            "instances",
            &ep,
            &creds,
            "eu-west-1",
            "127.0.14.0/24",
            "127.0.14.3|running|Name=web-2,env=prod",
        ]);
        let names = ["web-1", "dev-1", "hostile", "old-1", "web-2"];
        let ids = east
            .lines()
            .chain(west.lines())
            .zip(names)
            .map(|(id, n)| (n.to_string(), id.to_string()))
            .collect();
        Cloud { fleet, moto, ids }
    })
}

impl Cloud {
    pub(crate) fn id(&self, name: &str) -> &str {
        &self.ids.iter().find(|(n, _)| n == name).unwrap().1
    }

    /// A data dir and latch.toml with an `ec2-ssh` integration `ec2`; `aws` is the
    /// `[integration.aws]` table's body.
    fn env(&self, aws: &str) -> (tempfile::TempDir, PathBuf) {
        self.env_with(aws, "fleet-key", "")
    }

    /// [`Cloud::env`] with the service key from secret `key_secret`, and `top` (e.g.
    /// `[secrets.stores.…]` tables) at the top of latch.toml.
    pub(crate) fn env_with(
        &self,
        aws: &str,
        key_secret: &str,
        top: &str,
    ) -> (tempfile::TempDir, PathBuf) {
        let tmp = data_dir_for(&self.fleet);
        let config = tmp.path().join("latch.toml");
        let body = "regions = [\"us-east-1\", \"eu-west-1\"]\ntags = { env = \"prod\" }\n\
                    user_groups = [\"Default\", \"adm\"]";
        let text = ec2_toml(&self.fleet, "127.0.14.0/24:22", top, key_secret, aws, body);
        std::fs::write(&config, text).unwrap();
        (tmp, config)
    }

    fn good_env(&self) -> (tempfile::TempDir, PathBuf) {
        self.env(
            "read = [\"ec2:DescribeInstances\"]\nregions = [\"us-east-1\", \"eu-west-1\"]\n\
             profile = \"moto\"",
        )
    }

    /// /etc/passwd, group, shadow and every file under /etc/ssh of host `i`, hashed.
    fn snapshot(&self, i: usize) -> Vec<(String, String)> {
        let etc = self.fleet.join(format!("host{i}/etc"));
        let mut files: Vec<PathBuf> = ["passwd", "group", "shadow", "gshadow"]
            .iter()
            .map(|f| etc.join(f))
            .collect();
        for e in std::fs::read_dir(etc.join("ssh")).unwrap() {
            files.push(e.unwrap().path());
        }
        files.sort();
        files
            .into_iter()
            .filter(|p| p.is_file())
            .map(|p| {
                let h = std::fs::read(&p)
                    .map(|b| sha256_hex(&b))
                    .unwrap_or_default();
                (p.display().to_string(), h)
            })
            .collect()
    }

    pub(crate) fn snapshots(&self) -> Vec<Vec<(String, String)>> {
        (1..=HOSTS).map(|i| self.snapshot(i)).collect()
    }
}

/// A latch.toml with one `ec2-ssh` integration `ec2` on `fleet`'s hosts (`allow`), the
/// moto endpoint, `aws` in `[integration.aws]`, `config` in `[integration.config]` and `top`
/// above all.
fn ec2_toml(
    fleet: &Path,
    allow: &str,
    top: &str,
    key_secret: &str,
    aws: &str,
    config: &str,
) -> String {
    let guest = crate::guest("ec2_ssh");
    let sha = sha256_hex(&std::fs::read(&guest).unwrap());
    format!(
        r#"
listen = "127.0.0.1:0"
{top}
[[integration]]
name = "ec2"
guest = "{}"
sha256 = "{sha}"
allow = ["{allow}"]
[integration.ssh]
key_secret = "{key_secret}"
known_hosts = "{}"
[integration.aws]
endpoint = "{}"
{aws}
[integration.config]
{config}
"#,
        guest.display(),
        fleet.join("known_hosts").display(),
        endpoint(),
    )
}

/// `latch` with the shared credentials file of the moto peer and no other AWS settings,
/// then `env` set over those.
pub(crate) fn latch_aws_env(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_latch"));
    cmd.args(args)
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            cloud().moto.join("credentials"),
        )
        .env("AWS_EC2_METADATA_DISABLED", "true");
    for var in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN",
        "AWS_ENDPOINT_URL_STS",
        "AWS_EC2_METADATA_SERVICE_ENDPOINT",
    ] {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied()).output().unwrap()
}

fn grant(config: &Path, resource: &str, email: &str) -> Result<serde_json::Value, String> {
    grant_env(config, resource, email, &[])
}

pub(crate) fn grant_env(
    config: &Path,
    resource: &str,
    email: &str,
    env: &[(&str, &str)],
) -> Result<serde_json::Value, String> {
    cli_grant_with(
        &|a| latch_aws_env(a, env),
        config,
        "ec2",
        resource,
        email,
        &[],
    )
}

/// `latch resources` of the `ec2` integration, with `env` as [`latch_aws_env`].
pub(crate) fn resources(config: &Path, env: &[(&str, &str)]) -> Result<String, String> {
    cli_resources_with(&|a| latch_aws_env(a, env), config, "ec2")
}

#[test]
fn an_instance_found_in_moto_is_granted_logged_in_to_and_revoked() {
    let _one = serial();
    let c = cloud();
    let (_tmp, config) = c.good_env();

    let listed = resources(&config, &[]).unwrap();
    let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
    let text = listed.to_string();
    for name in ["web-1", "web-2", "hostile"] {
        assert!(text.contains(c.id(name)), "{name} not discovered: {text}");
    }
    for name in ["dev-1", "old-1"] {
        assert!(
            !text.contains(c.id(name)),
            "{name} (other tag / stopped) listed: {text}"
        );
    }
    assert!(
        text.contains("\"web-1\""),
        "the Name tag is the name: {text}"
    );

    let granted = grant(&config, c.id("web-1"), "alice.ec2@example.com").unwrap();
    assert_eq!(granted["host"], "127.0.14.2");
    let login = cert_login(&c.fleet.join("known_hosts"), &granted, "id -un");
    assert!(
        login.status.success(),
        "login with the certificate: {}",
        String::from_utf8_lossy(&login.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&login.stdout).trim(), "alice_ec2");

    revoke(&config, &granted, &[]);
    let login = cert_login(&c.fleet.join("known_hosts"), &granted, "id -un");
    assert!(!login.status.success(), "still logs in after the revoke");
}

#[test]
fn a_key_moto_refuses_is_reported_and_nothing_changes() {
    let _one = serial();
    let c = cloud();
    let before = c.snapshots();
    let (_tmp, config) = c.env(
        "read = [\"ec2:DescribeInstances\"]\nregions = [\"us-east-1\", \"eu-west-1\"]\n\
         profile = \"wrong\"",
    );
    let err = grant(&config, c.id("web-1"), "bob.ec2@example.com").unwrap_err();
    assert!(
        err.contains("AuthFailure") && err.contains("credentials the connector holds"),
        "{err}"
    );
    assert!(!err.contains("not-the-secret"), "the secret leaked: {err}");
    assert_eq!(c.snapshots(), before, "a host changed");
}

/// `regions = "all"`: DescribeRegions, then every enabled region of the partition at once
/// (moto lists 30-odd; its China and GovCloud ones refuse this key and are left out).
#[test]
fn all_regions_are_searched_when_the_config_says_all() {
    let _one = serial();
    let c = cloud();
    let (_tmp, config) = c.env(
        "read = [\"ec2:DescribeInstances\", \"ec2:DescribeRegions\"]\nregions = [\"*\"]\n\
         profile = \"moto\"",
    );
    let text = std::fs::read_to_string(&config).unwrap();
    let listed_regions = "regions = [\"us-east-1\", \"eu-west-1\"]\ntags";
    assert!(text.contains(listed_regions));
    std::fs::write(
        &config,
        text.replace(listed_regions, "regions = \"all\"\ntags"),
    )
    .unwrap();
    let listed = resources(&config, &[]).unwrap();
    for name in ["web-1", "web-2"] {
        assert!(listed.contains(c.id(name)), "{name}: {listed}");
    }
    assert!(listed.contains("eu-west-1") && listed.contains("us-east-1"));
    let granted = grant(&config, c.id("web-2"), "gina.ec2@example.com").unwrap();
    assert_eq!(granted["host"], "127.0.14.3");
    revoke(&config, &granted, &[]);
}

/// Rotation of the service key on every instance the integration finds (two sshd hosts of
/// their own, as instances in ap-south-1 tagged env=rot): the new key works on each, the old
/// one nowhere, and the connector grants with the new one.
#[test]
fn the_service_key_rotates_on_every_instance_found() {
    let _one = serial();
    let c = cloud();
    let fleet = crate::rotation::OwnFleet::up_at("fleet-rotation-ec2", "127.0.16");
    let creds = c.moto.join("credentials");
    let ids = peer(&[
        "instances",
        &endpoint(),
        creds.to_str().unwrap(),
        "ap-south-1",
        "127.0.16.0/24",
        "127.0.16.2|running|Name=rot-1,env=rot",
        "127.0.16.3|running|Name=rot-2,env=rot",
    ]);
    let ca = latch::caps::certs::ca::new_ca().unwrap();
    std::fs::write(fleet.dir.join("latch-user-ca"), ca.expose()).unwrap();
    let tmp = data_dir_for(&fleet.dir);
    let config = tmp.path().join("latch.toml");
    let aws = "read = [\"ec2:DescribeInstances\"]\nregions = [\"ap-south-1\"]\nprofile = \"moto\"";
    let body =
        "regions = [\"ap-south-1\"]\ntags = { env = \"rot\" }\ncredential_rotation_days = 30";
    let text = ec2_toml(&fleet.dir, "127.0.16.0/24:22", "", "fleet-key", aws, body);
    std::fs::write(&config, text).unwrap();
    let original = fleet.dir.join("service_key");
    let cfg = config.to_str().unwrap();
    let out = latch_aws_env(
        &["rotate", "--config", cfg, "--integration", "ec2", "--json"],
        &[],
    );
    assert!(out.status.success(), "{out:?}");
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_ne!(r["old_fingerprint"], r["new_fingerprint"]);
    assert_eq!(r["servers_checked"], 2, "{r}");
    let rotated = crate::rotation::key_file(tmp.path(), "rotated");
    for h in 1..=2 {
        assert!(
            fleet.service_login(&rotated, h).status.success(),
            "new key on {h}"
        );
        assert!(
            !fleet.service_login(&original, h).status.success(),
            "old key on {h}"
        );
    }
    let id = ids.lines().nth(1).unwrap();
    let granted = grant(&config, id, "rosa.ec2@example.com").unwrap();
    assert_eq!(granted["host"], "127.0.16.3");
    revoke(&config, &granted, &[]);
    // The instances leave discovery: the other ec2 tests' regions never list ap-south-1.
    for id in ids.lines() {
        peer(&[
            "stop",
            &endpoint(),
            creds.to_str().unwrap(),
            "ap-south-1",
            id,
        ]);
    }
}

#[test]
fn instances_outside_the_filters_and_hostile_ids_reach_no_server() {
    let _one = serial();
    let c = cloud();
    let before = c.snapshots();
    let (_tmp, config) = c.good_env();
    for name in ["dev-1", "old-1"] {
        let err = grant(&config, c.id(name), "carol.ec2@example.com").unwrap_err();
        assert!(err.contains("no running instance"), "{name}: {err}");
    }
    for hostile in [
        "i-$(id)",
        "alice;rm -rf /",
        "-oProxyCommand=x",
        "i-0123456789abcdef0' or '1",
        "i-０１２３４５６７",
        &"i-".repeat(500),
    ] {
        let err = grant(&config, hostile, "carol.ec2@example.com").unwrap_err();
        assert!(err.contains("not an EC2 instance id"), "{hostile}: {err}");
    }
    // A region the policy does not lend: refused by the host before anything is signed.
    let (_tmp2, narrow) =
        c.env("read = [\"ec2:DescribeInstances\"]\nregions = [\"us-east-1\"]\nprofile = \"moto\"");
    let err = grant(&narrow, c.id("web-1"), "carol.ec2@example.com").unwrap_err();
    assert!(err.contains("region eu-west-1 is not in"), "{err}");
    assert_eq!(c.snapshots(), before, "a host changed");
}

#[test]
fn revoke_reaches_the_address_kept_at_grant_after_the_instance_left_discovery() {
    let _one = serial();
    let c = cloud();
    let (_tmp, config) = c.good_env();
    let granted = grant(&config, c.id("hostile"), "dave.ec2@example.com").unwrap();
    assert_eq!(granted["host"], "127.0.14.4");
    let known = c.fleet.join("known_hosts");
    assert!(cert_login(&known, &granted, "true").status.success());
    peer(&[
        "stop",
        &endpoint(),
        cloud().moto.join("credentials").to_str().unwrap(),
        "us-east-1",
        c.id("hostile"),
    ]);
    revoke(&config, &granted, &[]);
    assert!(!cert_login(&known, &granted, "true").status.success());
}

const BAO_PORT: u16 = 25140;

/// The fleet's service key as the product we mirror keeps it in a secret manager: JSON with
/// `base64_private_key`.
fn key_json(c: &Cloud) -> String {
    use base64::Engine;
    let key = std::fs::read(c.fleet.join("service_key")).unwrap();
    serde_json::json!({
        "username": "apono",
        "base64_private_key": base64::engine::general_purpose::STANDARD.encode(key),
    })
    .to_string()
}

/// The fleet's service key as Secrets Manager secret `name` in moto (as the product we mirror
/// stores it: JSON with `base64_private_key`); the `[secrets.stores.aws]` table reading it,
/// with no profile (the chain decides).
pub(crate) fn key_in_secrets_manager(c: &Cloud, name: &str) -> String {
    let value = c.moto.join(format!("{}.json", name.replace('/', "-")));
    std::fs::write(&value, key_json(c)).unwrap();
    peer(&[
        "secret",
        &endpoint(),
        c.moto.join("credentials").to_str().unwrap(),
        "us-east-1",
        name,
        value.to_str().unwrap(),
    ]);
    std::fs::remove_file(&value).unwrap();
    format!(
        "[secrets.stores.aws]\nkind = \"aws-secrets-manager\"\nregion = \"us-east-1\"\n\
         endpoint = \"{}\"\n",
        endpoint()
    )
}

pub(crate) fn revoke(config: &Path, granted: &serde_json::Value, env: &[(&str, &str)]) {
    cli_revoke_with(&|a| latch_aws_env(a, env), config, granted)
}

#[test]
fn the_service_key_comes_from_secrets_manager_in_moto() {
    let _one = serial();
    let c = cloud();
    let name = format!("latch/ssh/fleet-{}", std::process::id());
    let stores = key_in_secrets_manager(c, &name) + "profile = \"moto\"\n";
    let aws = "read = [\"ec2:DescribeInstances\"]\nregions = [\"us-east-1\", \"eu-west-1\"]\n\
               profile = \"moto\"";
    let (tmp, config) = c.env_with(aws, &format!("aws:{name}"), &stores);
    // Not from the directory: the data dir's copy of the key is gone.
    std::fs::remove_file(tmp.path().join("secrets/fleet-key")).unwrap();
    let granted = grant(&config, c.id("web-1"), "erin.ec2@example.com").unwrap();
    let known = c.fleet.join("known_hosts");
    assert!(cert_login(&known, &granted, "true").status.success());
    revoke(&config, &granted, &[]);

    let (_tmp, missing) = c.env_with(aws, "aws:latch/ssh/nope", &stores);
    let err = grant(&missing, c.id("web-1"), "erin.ec2@example.com").unwrap_err();
    assert!(
        err.contains("aws:latch/ssh/nope") && err.contains("not in the secret store"),
        "{err}"
    );
}

#[test]
fn the_service_key_comes_from_openbao_kv2() {
    let _one = serial();
    let c = cloud();
    let dir = repo().join("target/openbao-tests");
    run(
        Command::new("bash")
            .arg(repo().join("tests/cloud/openbao.sh"))
            .args(["up", dir.to_str().unwrap(), &BAO_PORT.to_string()]),
        "openbao.sh up",
    );
    let addr = format!("http://127.0.0.1:{BAO_PORT}");
    let body = format!("{{\"data\": {}}}", key_json(c));
    // With the venv's Python (no curl needed on the machine).
    let write = "import sys, urllib.request\n\
        r = urllib.request.Request(sys.argv[1], data=sys.stdin.buffer.read(), method='POST',\n\
            headers={'X-Vault-Token': 'latch-root'})\n\
        urllib.request.urlopen(r, timeout=10)\n";
    let out = Command::new(repo().join("target/py/bin/python"))
        .args(["-c", write])
        .arg(format!("{addr}/v1/secret/data/latch/fleet"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(body.as_bytes())?;
            child.wait_with_output()
        })
        .unwrap();
    assert!(out.status.success(), "writing to OpenBao failed");
    let stores = format!(
        "[secrets.stores.vault]\nkind = \"vault-kv2\"\naddress = \"{addr}\"\n\
         token_env = \"LATCH_TEST_BAO_TOKEN\"\n"
    );
    let aws = "read = [\"ec2:DescribeInstances\"]\nregions = [\"us-east-1\", \"eu-west-1\"]\n\
               profile = \"moto\"";
    let (tmp, config) = c.env_with(aws, "vault:latch/fleet", &stores);
    std::fs::remove_file(tmp.path().join("secrets/fleet-key")).unwrap();
    let token = [("LATCH_TEST_BAO_TOKEN", "latch-root")];
    let granted = grant_env(&config, c.id("web-1"), "frank.ec2@example.com", &token).unwrap();
    let known = c.fleet.join("known_hosts");
    assert!(cert_login(&known, &granted, "true").status.success());
    revoke(&config, &granted, &token);

    let wrong = [("LATCH_TEST_BAO_TOKEN", "s.wrong-token-value")];
    let err = grant_env(&config, c.id("web-1"), "frank.ec2@example.com", &wrong).unwrap_err();
    assert!(
        err.contains("vault:latch/fleet") && err.contains("permission denied"),
        "{err}"
    );
    assert!(
        !err.contains("wrong-token-value"),
        "the token leaked: {err}"
    );
    let err = grant(&config, c.id("web-1"), "frank.ec2@example.com").unwrap_err();
    assert!(err.contains("LATCH_TEST_BAO_TOKEN is not set"), "{err}");

    // AppRole (openbao.sh made role "latch" with the real bao CLI): the role id in the
    // config, the secret id a plain secret of the data dir, no token anywhere; the token it
    // logs in for may read secret/data/latch/* only.
    let role_id = std::fs::read_to_string(dir.join("role-id")).unwrap();
    let approle = |path: &str| {
        let stores = format!(
            "[secrets.stores.vault]\nkind = \"vault-kv2\"\naddress = \"{addr}\"\n\
             auth = \"approle\"\nrole_id = \"{}\"\nsecret_id_secret = \"bao-secret-id\"\n",
            role_id.trim()
        );
        let (tmp, config) = c.env_with(aws, path, &stores);
        std::fs::remove_file(tmp.path().join("secrets/fleet-key")).unwrap();
        let id = tmp.path().join("secrets/bao-secret-id");
        std::fs::copy(dir.join("secret-id"), &id).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&id, std::fs::Permissions::from_mode(0o600)).unwrap();
        (tmp, config)
    };
    let (tmp, config) = approle("vault:latch/fleet");
    let granted = grant(&config, c.id("web-1"), "frank.ec2@example.com").unwrap();
    assert!(cert_login(&known, &granted, "true").status.success());
    revoke(&config, &granted, &[]);
    let before = c.snapshots();
    let wrong_id = "0badc0de-dead-beef-0000-000000000000";
    std::fs::write(tmp.path().join("secrets/bao-secret-id"), wrong_id).unwrap();
    let err = grant(&config, c.id("web-1"), "frank.ec2@example.com").unwrap_err();
    assert!(
        err.contains("AppRole login") && err.contains("invalid role or secret ID"),
        "{err}"
    );
    assert!(!err.contains(wrong_id), "the secret id leaked: {err}");
    let (_tmp, outside) = approle("vault:other/fleet");
    let err = grant(&outside, c.id("web-1"), "frank.ec2@example.com").unwrap_err();
    assert!(err.contains("permission denied"), "{err}");
    assert_eq!(c.snapshots(), before, "a host changed");
}

const GCP_PORT: u16 = 25180;

#[test]
fn the_service_key_comes_from_gcp_secret_manager() {
    let _one = serial();
    let c = cloud();
    let dir = repo().join("target/gcp-tests");
    std::fs::create_dir_all(&dir).unwrap();
    let py = repo().join("target/py/bin/python");
    let script = repo().join("tests/cloud/gcp_peer.py");
    let key_file = dir.join("sa-key.json");
    run(
        Command::new(&py).arg(&script).args([
            "keygen",
            key_file.to_str().unwrap(),
            "latch@latch-test.iam.gserviceaccount.com",
        ]),
        "gcp_peer.py keygen",
    );
    let fixture = serde_json::json!({
        "project": "latch-test",
        "key_file": key_file,
        "secrets": {"fleet-key": key_json(c), "tampered": "value"},
        "bad_crc": ["tampered"],
    });
    let fixture_path = dir.join("fixture.json");
    std::fs::write(&fixture_path, fixture.to_string()).unwrap();
    run(
        Command::new("bash")
            .arg(repo().join("tests/cloud/peer.sh"))
            .args([
                "up",
                dir.to_str().unwrap(),
                &GCP_PORT.to_string(),
                script.to_str().unwrap(),
                fixture_path.to_str().unwrap(),
            ]),
        "peer.sh up (the GCP stand-in)",
    );
    let ep = format!("http://127.0.0.1:{GCP_PORT}");
    let aws = "read = [\"ec2:DescribeInstances\"]\nregions = [\"us-east-1\", \"eu-west-1\"]\n\
               profile = \"moto\"";
    let with_key = format!(
        "[secrets.stores.gcp]\nkind = \"gcp-secret-manager\"\nproject = \"latch-test\"\n\
         endpoint = \"{ep}\"\ncredential = \"service-account-key\"\nkey_secret = \"gcp-sa\"\n\
         token_endpoint = \"{ep}/token\"\n"
    );
    let known = c.fleet.join("known_hosts");
    let (tmp, config) = c.env_with(aws, "gcp:fleet-key", &with_key);
    std::fs::remove_file(tmp.path().join("secrets/fleet-key")).unwrap();
    std::fs::copy(&key_file, tmp.path().join("secrets/gcp-sa")).unwrap();
    let granted = grant(&config, c.id("web-1"), "kate.ec2@example.com").unwrap();
    assert!(cert_login(&known, &granted, "true").status.success());
    revoke(&config, &granted, &[]);

    // The metadata server's token works the same way.
    let metadata = format!(
        "[secrets.stores.gcp]\nkind = \"gcp-secret-manager\"\nproject = \"latch-test\"\n\
         endpoint = \"{ep}\"\ncredential = \"metadata\"\nmetadata_endpoint = \"{ep}\"\n"
    );
    let (tmp2, config2) = c.env_with(aws, "gcp:fleet-key", &metadata);
    std::fs::remove_file(tmp2.path().join("secrets/fleet-key")).unwrap();
    let granted = grant(&config2, c.id("web-1"), "kate.ec2@example.com").unwrap();
    revoke(&config2, &granted, &[]);
    let log = std::fs::read_to_string(dir.join("requests.log")).unwrap();
    assert!(
        log.contains("TOKEN service-account-key issued") && log.contains("TOKEN metadata issued"),
        "{log}"
    );

    // A secret whose CRC32C does not match, a missing one, and another service account's key.
    for (secret, want) in [
        ("gcp:tampered", "dataCrc32c does not match"),
        ("gcp:nope", "not in the secret store"),
    ] {
        let (_t, cfg) = c.env_with(aws, secret, &with_key);
        std::fs::copy(&key_file, _t.path().join("secrets/gcp-sa")).unwrap();
        let from = std::fs::read_to_string(dir.join("requests.log"))
            .unwrap()
            .len();
        let err = grant(&cfg, c.id("web-1"), "kate.ec2@example.com").unwrap_err();
        assert!(
            err.contains(secret) && err.contains(want),
            "{secret}: {err}"
        );
        // The grant and its rollback each fetch the secret (fetched at each use, never
        // kept); the token is asked for once and kept in memory.
        let log = std::fs::read_to_string(dir.join("requests.log")).unwrap();
        let name = secret.trim_start_matches("gcp:");
        let fetches = log[from..].matches(&format!("secrets/{name}/")).count();
        let tokens = log[from..].matches("TOKEN ").count();
        assert!(fetches >= 2 && tokens == 1, "{}", &log[from..]);
    }
    let other = dir.join("other-key.json");
    run(
        Command::new(&py).arg(&script).args([
            "keygen",
            other.to_str().unwrap(),
            "latch@latch-test.iam.gserviceaccount.com",
        ]),
        "gcp_peer.py keygen",
    );
    let (t3, cfg3) = c.env_with(aws, "gcp:fleet-key", &with_key);
    std::fs::copy(&other, t3.path().join("secrets/gcp-sa")).unwrap();
    let err = grant(&cfg3, c.id("web-1"), "kate.ec2@example.com").unwrap_err();
    assert!(err.contains("invalid_grant"), "{err}");
    assert!(!err.contains("PRIVATE KEY"), "the key leaked: {err}");
}

const HOSTILE_PORT: u16 = 25190;

/// An endpoint that answers garbage, too much, or 10,000 instances on a page: each is a
/// clear error, nothing is granted, no host changes, and `latch serve` keeps serving.
#[test]
fn hostile_cloud_answers_are_clear_errors_and_the_connector_keeps_serving() {
    let _one = serial();
    let c = cloud();
    let before = c.snapshots();
    let dir = repo().join("target/hostile-ec2");
    std::fs::create_dir_all(&dir).unwrap();
    let fixture = dir.join("fixture.json");
    std::fs::write(&fixture, "{}").unwrap();
    run(
        Command::new("bash")
            .arg(repo().join("tests/cloud/peer.sh"))
            .args([
                "up",
                dir.to_str().unwrap(),
                &HOSTILE_PORT.to_string(),
                repo().join("tests/cloud/hostile_ec2.py").to_str().unwrap(),
                fixture.to_str().unwrap(),
            ]),
        "peer.sh up (the hostile EC2)",
    );
    let tmp = data_dir_for(&c.fleet);
    let guest = crate::guest("ec2_ssh");
    let sha = sha256_hex(&std::fs::read(&guest).unwrap());
    let mut toml = String::from("listen = \"127.0.0.1:0\"\n");
    for region in ["us-east-1", "eu-west-1", "ap-south-1", "ca-central-1"] {
        toml.push_str(&format!(
            r#"
[[integration]]
name = "{region}"
guest = "{}"
sha256 = "{sha}"
allow = ["127.0.14.0/24:22"]
[integration.ssh]
key_secret = "fleet-key"
known_hosts = "{}"
[integration.aws]
endpoint = "http://127.0.0.1:{HOSTILE_PORT}"
read = ["ec2:DescribeInstances"]
regions = ["{region}"]
[integration.config]
regions = ["{region}"]
"#,
            guest.display(),
            c.fleet.join("known_hosts").display(),
        ));
    }
    let config = tmp.path().join("latch.toml");
    std::fs::write(&config, toml).unwrap();
    let out = crate::fleet::latch(&[
        "token",
        "create",
        "--config",
        config.to_str().unwrap(),
        "t",
        "--all-integrations",
    ]);
    assert!(out.status.success(), "{out:?}");
    let token = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let creds = [
        ("AWS_ACCESS_KEY_ID", "AKIAHOSTILETEST00001"),
        ("AWS_SECRET_ACCESS_KEY", "hostile-test-secret"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ];
    let serve = crate::fleet::Serve::with_config_env(&config, &creds);
    let get = |path: &str| crate::api::http(serve.port(), "GET", path, Some(&token), None);
    for (region, want) in [
        ("us-east-1", "not EC2's XML"),
        ("eu-west-1", "larger than the 32 MiB"),
        ("ap-south-1", "more than 5000 instances on one page"),
    ] {
        let (status, body) = get(&format!("/v1/integrations/{region}/resources"));
        assert_ne!(status, 200, "{region}: {body}");
        assert!(body.contains(want), "{region}: {status} {body}");
        let grant = format!(
            r#"{{"integration":"{region}","resource":"i-0a1b2c3d4e5f60718","user":"lee@example.com","duration":"10m"}}"#
        );
        let (status, body) = crate::api::http(
            serve.port(),
            "POST",
            "/v1/grants",
            Some(&token),
            Some(&grant),
        );
        assert!(status >= 400, "{region}: a grant went through: {body}");
    }
    // Still serving, and a sane answer with a hostile Name tag is read as data.
    let (status, body) = get("/v1/integrations/ca-central-1/resources");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("i-0a1b2c3d4e5f60718"), "{body}");
    assert!(body.contains("$(id);<x>&a=b%20'"), "{body}");
    // Each attempt is in the ledger as failed, with its reason; none granted anything.
    let (status, body) = get("/v1/grants");
    assert_eq!(status, 200);
    let grants: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(grants.len(), 3, "{body}");
    for g in &grants {
        assert_eq!(g["state"], "failed", "{g}");
        assert!(g["host"].is_null() && g["username"].is_null(), "{g}");
        assert!(
            g["last_error"]
                .as_str()
                .unwrap()
                .contains("DescribeInstances"),
            "{g}"
        );
    }
    drop(serve);
    assert_eq!(c.snapshots(), before, "a host changed");
}
