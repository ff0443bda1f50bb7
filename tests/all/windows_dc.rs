//! The `windows-dc` guest against a real Active Directory: a Samba AD DC
//! (`tests/samba/dc.sh`, started once per test binary on 127.0.0.10 and stopped by
//! `make test`), reached through the live `ldap` capability over LDAPS with the DC's test CA.
//!
//! Whether a granted account works is asked of the DC itself, with independent clients:
//! OpenLDAP's `ldapsearch` (an LDAPS simple bind) and MIT `kinit` (a Kerberos ticket from
//! Samba's KDC).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use latch::runtime::sha256_hex;
use serde_json::Value;

const ADDR: &str = "127.0.0.10";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The shared DC.
pub struct Dc {
    dir: PathBuf,
    env: HashMap<String, String>,
}

impl Dc {
    /// The DC the tests share (they use distinct account names).
    pub fn shared() -> &'static Dc {
        static DC: OnceLock<Dc> = OnceLock::new();
        DC.get_or_init(|| Dc::start(&repo().join("target/samba-tests"), ADDR))
    }

    /// A DC of one's own on `addr` (for a test that changes the service account); stop it
    /// with [`Dc::stop`].
    pub fn start(dir: &Path, addr: &str) -> Dc {
        {
            let dir = dir.to_path_buf();
            let out = Command::new("bash")
                .arg(repo().join("tests/samba/dc.sh"))
                .args(["up", dir.to_str().unwrap(), addr])
                .output()
                .expect("run dc.sh");
            assert!(
                out.status.success(),
                "the Samba AD DC did not start (needs root and `make setup`): {}",
                String::from_utf8_lossy(&out.stderr)
            );
            // DIR/env, as a shell would read it.
            let out = Command::new("bash")
                .arg("-c")
                .arg("set -a; . \"$1\"; env -0")
                .arg("-")
                .arg(dir.join("env"))
                .env_clear()
                .output()
                .expect("read env");
            let env = out
                .stdout
                .split(|b| *b == 0)
                .filter_map(|kv| {
                    let kv = String::from_utf8_lossy(kv);
                    kv.split_once('=')
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                })
                .collect();
            Dc { dir, env }
        }
    }

    pub fn stop(&self) {
        let _ = self.script(&["down", self.dir.to_str().unwrap()]);
    }

    pub fn get(&self, key: &str) -> &str {
        self.env
            .get(key)
            .unwrap_or_else(|| panic!("{key} missing from dc env"))
    }

    fn script(&self, args: &[&str]) -> Output {
        Command::new("bash")
            .arg(repo().join("tests/samba/dc.sh"))
            .args(args)
            .output()
            .expect("run dc.sh")
    }

    /// `OK`, or the DC's refusal (`49 … data 533 …`).
    pub fn bind(&self, user: &str, password: &str) -> String {
        let out = self.script(&["bind", self.dir.to_str().unwrap(), user, password]);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// `OK`, or kinit's message.
    pub fn kinit(&self, user: &str, password: &str) -> String {
        let out = self.script(&["kinit", self.dir.to_str().unwrap(), user, password]);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// An `ldapsearch` as Administrator: the LDIF of what it finds (attributes unwrapped).
    pub fn search(&self, base: &str, filter: &str, attrs: &[&str]) -> String {
        let mut args = vec![
            "ldap",
            self.dir.to_str().unwrap(),
            "ldapsearch",
            "-LLL",
            "-o",
            "ldif-wrap=no",
            "-b",
            base,
            filter,
        ];
        args.extend_from_slice(attrs);
        let out = self.script(&args);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Everything under `OU=Latch` (DNs and the attributes Latch writes) but the `jit_`
    /// accounts of the tests running beside, to compare before and after.
    pub fn snapshot(&self) -> String {
        self.search(
            self.get("USERS_OU"),
            "(!(sAMAccountName=jit_*))",
            &[
                "description",
                "userAccountControl",
                "accountExpires",
                "memberOf",
                "pwdLastSet",
            ],
        )
    }
}

/// The AD cmdlets the guest runs over WinRM: reads, then changes.
const AD_READS: &[&str] = &["Get-ADUser", "Get-ADGroup"];
const AD_CHANGES: &[&str] = &[
    "New-ADUser",
    "Set-ADAccountPassword",
    "Set-ADAccountExpiration",
    "Enable-ADAccount",
    "Disable-ADAccount",
    "Add-ADGroupMember",
    "Remove-ADGroupMember",
    "Remove-ADUser",
];

/// A Latch data dir with one `windows-dc` integration on the shared DC: over LDAPS, or over
/// WinRM to the Windows stand-in, which carries the AD cmdlets out on the same DC over LDAPS
/// as the WinRM user (so the directory's own rights apply).
pub struct DcEnv {
    pub dc: &'static Dc,
    /// The data dir, removed with the value.
    pub _tmp: tempfile::TempDir,
    pub config: PathBuf,
    /// The stand-in, for `winrm`.
    pub standin: Option<crate::winrm::StandIn>,
}

impl DcEnv {
    /// `transport`: `ldap` or `winrm`; `prefix`: the integration's `username_prefix`.
    pub fn new(transport: &str, prefix: &str) -> DcEnv {
        DcEnv::on(Dc::shared(), transport, prefix)
    }

    /// The same on `dc`.
    pub fn on(dc: &'static Dc, transport: &str, prefix: &str) -> DcEnv {
        let tmp = tempfile::tempdir().unwrap();
        let out = crate::fleet::latch(&["init", "--dir", tmp.path().to_str().unwrap()]);
        assert!(out.status.success(), "{out:?}");
        std::fs::write(tmp.path().join("secrets/dc-password"), dc.get("SVC_PW")).unwrap();
        std::fs::copy(dc.get("CA"), tmp.path().join("dc-ca.pem")).unwrap();
        let guest = crate::guest("windows_dc");
        let sha = sha256_hex(&std::fs::read(&guest).unwrap());
        let q = |s: &str| serde_json::to_string(s).unwrap();
        let list = |v: &[&str]| v.iter().map(|c| q(c)).collect::<Vec<_>>().join(", ");
        // The directory bounds, the same whichever transport reaches the DC.
        let directory = format!(
            "[integration.directory]\nread = [{}]\nchange = [{}]\ngroups = [{}]\n",
            q(dc.get("BASE_DN")),
            q(dc.get("USERS_OU")),
            q(dc.get("GROUPS_OU"))
        );
        let (standin, host, port, user, table) = if transport == "winrm" {
            let s = crate::winrm::StandIn::start_with_users(
                &format!("LATCH:svc_latch:{}\n", dc.get("SVC_PW")),
                &[
                    "--ad-url",
                    dc.get("LDAP_URL"),
                    "--ad-ca",
                    dc.get("CA"),
                    "--ad-base-dn",
                    dc.get("BASE_DN"),
                ],
            );
            std::fs::copy(s.ca(), tmp.path().join("standin-ca.pem")).unwrap();
            let table = format!(
                "[integration.winrm]\nca_file = \"standin-ca.pem\"\nhttps_ports = [{}]\n\
                 user = 'LATCH\\svc_latch'\npassword_secret = \"dc-password\"\n\
                 read = [{}]\nchange = [{}]\n{}",
                s.https,
                list(AD_READS),
                list(AD_CHANGES),
                directory
            );
            let port = s.https;
            (
                Some(s),
                "localhost".to_string(),
                port,
                "LATCH\\svc_latch".to_string(),
                table,
            )
        } else {
            let table = format!(
                "[integration.ldap]\nca_file = \"dc-ca.pem\"\nuser = {}\n\
                 password_secret = \"dc-password\"\n{}",
                q(dc.get("SVC_USER")),
                directory
            );
            (
                None,
                dc.get("ADDR").to_string(),
                636,
                dc.get("SVC_USER").to_string(),
                table,
            )
        };
        let config = tmp.path().join("latch.toml");
        std::fs::write(
            &config,
            format!(
                r#"
listen = "127.0.0.1:0"
[[integration]]
name = "dc"
guest = {guest}
sha256 = "{sha}"
allow = ["{host}:{port}"]
{table}
[integration.config]
host = "{host}"
domain = "latch.test"
netbios = "LATCH"
base_dn = {base}
users_ou = {users}
connect_group = {connect}
groups_ou = {groups}
transport = "{transport}"
winrm_port = {port}
ldap_port = {port}
username_prefix = "{prefix}"
user = {svc}
password_secret = "dc-password"
"#,
                guest = q(guest.to_str().unwrap()),
                base = q(dc.get("BASE_DN")),
                users = q(dc.get("USERS_OU")),
                groups = q(dc.get("GROUPS_OU")),
                connect = q(dc.get("GROUP_ADMINS_DN")),
                svc = q(&user),
            ),
        )
        .unwrap();
        DcEnv {
            dc,
            _tmp: tmp,
            config,
            standin,
        }
    }

    /// `latch grant` on the domain; the parsed JSON, or stderr.
    pub fn grant(&self, username: &str, extra: &[&str]) -> Result<Value, String> {
        self.grant_logged(username, extra, "error").map(|(v, _)| v)
    }

    /// [`DcEnv::grant`] under the log filter `log`; also returns the logs.
    pub fn grant_logged(
        &self,
        username: &str,
        extra: &[&str],
        log: &str,
    ) -> Result<(Value, String), String> {
        let username = format!("--username={username}");
        let mut args = vec![
            "grant",
            "--config",
            self.config.to_str().unwrap(),
            "--integration",
            "dc",
            "--resource=latch.test",
            "--user=requester@corp.example",
            &username,
            "--json",
        ];
        if !extra.iter().any(|a| a.starts_with("--for")) {
            args.extend(["--for", "10m"]);
        }
        args.extend_from_slice(extra);
        let out = crate::fleet::latch_env(&args, &[("LATCH_LOG", log)]);
        if out.status.success() {
            Ok((
                serde_json::from_slice(&out.stdout).unwrap(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            ))
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    pub fn revoke(&self, grant_id: &str) -> Output {
        crate::fleet::latch(&[
            "revoke",
            "--config",
            self.config.to_str().unwrap(),
            grant_id,
        ])
    }
}

fn password(granted: &Value) -> &str {
    granted["password"].as_str().expect("a delivered password")
}

#[test]
fn ldaps_grant_gives_an_account_the_dc_accepts_and_revoke_takes_it_away() {
    grant_then_revoke("ldap", "lgrant");
}

#[test]
fn winrm_grant_gives_an_account_the_dc_accepts_and_revoke_takes_it_away() {
    grant_then_revoke("winrm", "wgrant");
}

fn grant_then_revoke(transport: &str, name: &str) {
    let env = DcEnv::new(transport, "jit_");
    let dc = env.dc;
    // Every log on (trace, but the compiler's): the issued password and the service
    // password reach the DC and the requester, and no log line, record or file.
    let (granted, logs) = env
        .grant_logged(
            name,
            &[],
            "trace,cranelift_codegen=warn,cranelift_frontend=warn,regalloc2=warn,\
             wasmtime_cranelift=warn,wasmtime=warn,wasmparser=warn",
        )
        .unwrap();
    let pw = password(&granted);
    assert!(logs.len() > 1000, "trace logging was on");
    for secret in [pw, dc.get("SVC_PW")] {
        assert!(!logs.contains(secret), "a password is in the trace log");
        for entry in std::fs::read_dir(env.config.parent().unwrap()).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() && !path.ends_with("latch.toml") {
                let bytes = std::fs::read(&path).unwrap();
                assert!(
                    !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                    "a password is in {}",
                    path.display()
                );
            }
        }
    }
    assert_eq!(granted["username"], format!("LATCH\\jit_{name}"));
    let upn = format!("jit_{name}@latch.test");
    let upn = upn.as_str();
    let filter = format!("(sAMAccountName=jit_{name})");
    assert_eq!(dc.bind(upn, pw), "OK");
    assert_eq!(dc.kinit(upn, pw), "OK");
    let entry = dc.search(
        dc.get("BASE_DN"),
        &filter,
        &["memberOf", "description", "accountExpires"],
    );
    assert!(
        entry.contains(&format!("memberOf: {}", dc.get("GROUP_ADMINS_DN"))),
        "{entry}"
    );
    assert!(entry.contains("latch-managed"), "{entry}");
    // The account expires when the grant does (AD's own clock enforces it).
    let expires: u64 = entry
        .lines()
        .find_map(|l| l.strip_prefix("accountExpires: "))
        .unwrap()
        .parse()
        .unwrap();
    let unix = expires / 10_000_000 - 11_644_473_600;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!((now + 540..=now + 600).contains(&unix), "{unix} vs {now}");

    let out = env.revoke(granted["grant_id"].as_str().unwrap());
    assert!(out.status.success(), "{out:?}");
    let bind = dc.bind(upn, pw);
    // Disabled (533: Samba still takes the old password for an LDAP bind for an hour after a
    // reset, so the bind shows the account's state); Kerberos has only the new random
    // password, so it says the password is wrong.
    assert!(bind.contains("data 533"), "disabled: {bind}");
    let kinit = dc.kinit(upn, pw);
    assert!(kinit.contains("Password incorrect"), "{kinit}");
    let entry = dc.search(dc.get("BASE_DN"), &filter, &["memberOf"]);
    assert!(entry.contains(&format!("jit_{name}")), "{entry}");
    assert!(!entry.contains("memberOf"), "still a member: {entry}");

    // Granting again re-opens the same account with a new password; the old one is refused
    // by Kerberos at once (Samba keeps an old password valid for LDAP binds for an hour).
    let again = env.grant(name, &[]).unwrap();
    let pw2 = password(&again);
    assert_ne!(pw, pw2);
    assert_eq!(dc.bind(upn, pw2), "OK");
    assert_eq!(dc.kinit(upn, pw2), "OK");
    assert!(!dc.kinit(upn, pw).contains("OK"));
    assert!(
        env.revoke(again["grant_id"].as_str().unwrap())
            .status
            .success()
    );
}

#[test]
fn ad_itself_ends_access_at_expiry_with_the_connector_down() {
    expiry("ldap", "lexpire");
}

#[test]
fn ad_itself_ends_access_at_expiry_with_the_connector_down_winrm() {
    expiry("winrm", "wexpire");
}

fn expiry(transport: &str, name: &str) {
    let env = DcEnv::new(transport, "jit_");
    let dc = env.dc;
    let granted = env.grant(name, &["--for", "6s"]).unwrap();
    let pw = password(&granted);
    let upn = format!("jit_{name}@latch.test");
    let upn = upn.as_str();
    assert_eq!(dc.bind(upn, pw), "OK");
    // No Latch process runs from here on: nothing can revoke.
    std::thread::sleep(std::time::Duration::from_secs(9));
    let bind = dc.bind(upn, pw);
    assert!(bind.contains("data 701"), "expired: {bind}");
    assert!(dc.kinit(upn, pw).contains("revoked"));
}

#[test]
fn a_group_with_a_hostile_name_is_granted_by_its_exact_name() {
    hostile_group("ldap", "lhostile");
}

#[test]
fn a_group_with_a_hostile_name_is_granted_by_its_exact_name_winrm() {
    hostile_group("winrm", "whostile");
}

fn hostile_group(transport: &str, name: &str) {
    let env = DcEnv::new(transport, "jit_");
    let dc = env.dc;
    let cn = dc.get("GROUP_HOSTILE_CN");
    let permission = format!("--permission={cn}");
    let granted = env.grant(name, &[&permission]).unwrap();
    let upn = format!("jit_{name}@latch.test");
    assert_eq!(dc.bind(&upn, password(&granted)), "OK");
    let members = || {
        dc.search(
            dc.get("GROUP_HOSTILE_DN"),
            "(objectClass=group)",
            &["member"],
        )
    };
    let m = members();
    assert!(
        m.contains(&format!("CN=jit_{name},OU=Latch")),
        "not a member: {m}"
    );
    let out = env.revoke(granted["grant_id"].as_str().unwrap());
    assert!(out.status.success(), "{out:?}");
    let m = members();
    assert!(!m.contains(&format!("jit_{name}")), "{m}");
}

#[test]
fn hostile_or_foreign_requests_change_nothing_in_the_directory() {
    hostile_requests("ldap");
}

#[test]
fn hostile_or_foreign_requests_change_nothing_in_the_directory_winrm() {
    hostile_requests("winrm");
}

fn hostile_requests(transport: &str) {
    let env = DcEnv::new(transport, "");
    let dc = env.dc;
    let before = dc.snapshot();
    assert!(before.contains("alice_existing"), "{before}");
    assert!(!before.contains("jit_"), "{before}");
    for name in [
        "alice;rm -rf /",
        "$(id)",
        "'",
        "\u{2018}",
        "-oProxyCommand=x",
        "*",
        "a*)(cn=*",
        "a\\b",
        "a,b",
        "a=b",
        "ünïcødé",
        "abcdefghijklmnopqrstu",
        &"x".repeat(300),
    ] {
        let err = env.grant(name, &[]).unwrap_err();
        assert!(
            err.contains("invalid") || err.contains("not a valid"),
            "{name}: {err}"
        );
    }
    for permission in ["*", "*)(|(cn=*", "Domain Admins", "JIT-Admins*"] {
        let p = format!("--permission={permission}");
        let err = env.grant("lhostile2", &[&p]).unwrap_err();
        // Found by an exact, escaped `cn` search under groups_ou — so never a wildcard, and
        // never a group elsewhere (Domain Admins lives under CN=Users).
        assert!(
            err.contains("is not a group under groups_ou"),
            "{permission}: {err}"
        );
    }
    // `check --connect` logs in over the integration's transport (a plan: reads only).
    let out = crate::fleet::latch(&[
        "check",
        "--config",
        env.config.to_str().unwrap(),
        "--connect",
        "--json",
    ]);
    assert!(out.status.success(), "{out:?}");
    let statuses: Value = serde_json::from_slice(&out.stdout).unwrap();
    let text = statuses.to_string();
    assert!(text.contains("authenticated"), "{text}");
    assert!(
        text.contains(if transport == "ldap" {
            "\"ldap\""
        } else {
            "\"winrm\""
        }),
        "{text}"
    );
    // An account Latch did not create, in Latch's own OU: refused, untouched.
    let err = env.grant("alice_existing", &[]).unwrap_err();
    assert!(err.contains("not created by Latch"), "{err}");
    assert_eq!(dc.snapshot(), before, "the directory changed");
    // Over WinRM, the stand-in's record shows that only reads arrived.
    if let Some(s) = &env.standin {
        let cmdlets: Vec<String> = s
            .calls()
            .iter()
            .map(|c| c["cmdlet"].as_str().unwrap_or("").to_string())
            .collect();
        assert!(cmdlets.iter().all(|c| c.starts_with("Get-")), "{cmdlets:?}");
    }
}

#[test]
fn the_service_password_rotates_on_the_dc_over_ldaps_and_only_on_its_own_entry() {
    // A DC of its own: the shared one's service account is used by the other tests.
    let dir = repo().join("target/samba-rotation");
    let dc: &'static Dc = Box::leak(Box::new(Dc::start(&dir, "127.0.0.11")));
    let env = DcEnv::on(dc, "ldap", "jit_");
    let mut text = std::fs::read_to_string(&env.config).unwrap();
    text.push_str("credential_rotation_days = 30\n");
    std::fs::write(&env.config, text).unwrap();
    let secret = env.config.parent().unwrap().join("secrets/dc-password");
    let out = crate::fleet::latch(&[
        "rotate",
        "--config",
        env.config.to_str().unwrap(),
        "--integration",
        "dc",
        "--json",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let new = std::fs::read_to_string(&secret).unwrap();
    let svc = dc.get("SVC_USER");
    let result = || {
        assert!(out.status.success(), "{stderr}");
        let r: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(r["credential"], "password", "{r}");
        assert_ne!(new, dc.get("SVC_PW"));
        // The DC itself takes the new password; Kerberos refuses the old one.
        assert_eq!(dc.bind(svc, &new), "OK");
        assert_eq!(dc.kinit(svc, &new), "OK");
        assert!(
            dc.kinit(svc, dc.get("SVC_PW"))
                .contains("Password incorrect")
        );
        // And Latch works with it.
        let granted = env.grant("rot", &[]).unwrap();
        assert_eq!(dc.bind("jit_rot@latch.test", password(&granted)), "OK");
        // A guest naming another account as "the service account" cannot reset that one's
        // password with the host's new password: the host checks the entry is its own.
        let admin_before = dc.search(dc.get("ADMIN_DN"), "(objectClass=*)", &["pwdLastSet"]);
        let report = rotate_as(dc, &new, "Administrator@latch.test");
        match &report.result {
            Err(e) => assert!(e.to_string().contains("own entry"), "{e}"),
            Ok(r) => panic!("the reset was carried out: {r:?}"),
        }
        let admin_after = dc.search(dc.get("ADMIN_DN"), "(objectClass=*)", &["pwdLastSet"]);
        assert_eq!(admin_before, admin_after);
    };
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(result));
    dc.stop();
    if let Err(e) = outcome {
        std::panic::resume_unwind(e);
    }
}

#[test]
fn the_service_password_rotates_on_the_dc_over_winrm() {
    let dir = repo().join("target/samba-rotation-winrm");
    let dc: &'static Dc = Box::leak(Box::new(Dc::start(&dir, "127.0.0.12")));
    let env = DcEnv::on(dc, "winrm", "jit_");
    let mut text = std::fs::read_to_string(&env.config).unwrap();
    text.push_str("credential_rotation_days = 30\n");
    std::fs::write(&env.config, text).unwrap();
    let secret = env.config.parent().unwrap().join("secrets/dc-password");
    let result = || {
        let out = crate::fleet::latch(&[
            "rotate",
            "--config",
            env.config.to_str().unwrap(),
            "--integration",
            "dc",
            "--json",
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let new = std::fs::read_to_string(&secret).unwrap();
        assert_ne!(new, dc.get("SVC_PW"));
        let svc = dc.get("SVC_USER");
        assert_eq!(dc.kinit(svc, &new), "OK");
        assert!(
            dc.kinit(svc, dc.get("SVC_PW"))
                .contains("Password incorrect")
        );
        // The stand-in, like a Windows server asking its DC, takes the new password for
        // WinRM logins; Latch goes on granting with it.
        let granted = env.grant("wrot", &[]).unwrap();
        assert_eq!(dc.bind("jit_wrot@latch.test", password(&granted)), "OK");
        let resets: Vec<Value> = env
            .standin
            .as_ref()
            .unwrap()
            .calls()
            .into_iter()
            .filter(|c| c["cmdlet"] == "Set-ADAccountPassword")
            .collect();
        // One reset: the rotation's, of the service account itself — named svc_latch by the
        // guest, resolved by the host to its DN and checked to be the service account's own
        // entry before it was sent — with the value now in the secret store (the stand-in
        // records its hash, never the value).
        assert_eq!(resets.len(), 1, "{resets:?}");
        assert_eq!(resets[0]["parameters"][0][1]["value"], dc.get("SVC_DN"));
        assert_eq!(
            resets[0]["parameters"][2][1]["sha256"],
            latch::runtime::sha256_hex(new.as_bytes())
        );
    };
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(result));
    dc.stop();
    if let Err(e) = outcome {
        std::panic::resume_unwind(e);
    }
}

/// `add-service-credential` of the windows-dc guest whose config names `user` as the service
/// account, carried out live, bound as the real service account with `password`.
fn rotate_as(dc: &Dc, password: &str, user: &str) -> latch::runtime::CallReport {
    use latch::caps::directory::Bases;
    use latch::caps::ldap::live::LdapSettings;
    use latch::caps::registry;
    use latch::caps::table::Settings;
    use latch::caps::table::tls_config;
    use latch::caps::{Policy, Secret, SecretStore};
    use latch::runtime::{CallOptions, CallSecrets, Export, ServiceCredential};
    let secrets = tempfile::tempdir().unwrap();
    std::fs::write(secrets.path().join("dc-password"), password).unwrap();
    let store = SecretStore::new(Some(secrets.path()), None).unwrap();
    let mut ldap = LdapSettings::with_tls(std::sync::Arc::new(
        tls_config(Some(Path::new(dc.get("CA")))).unwrap(),
    ));
    ldap.default_user = Some(dc.get("SVC_USER").into());
    ldap.password_secret = Some("dc-password".into());
    let mut of_dc = Settings::default();
    of_dc.insert(ldap);
    let live = std::sync::Arc::new(registry::live(store, [("dc", &of_dc)]));
    let bases = Bases::parse(
        &[dc.get("BASE_DN").into()],
        &[dc.get("USERS_OU").into()],
        &[dc.get("GROUPS_OU").into()],
    )
    .unwrap();
    let policy = Policy::parse(&[format!("{}:636", dc.get("ADDR"))], &[])
        .unwrap()
        .with(bases);
    let config = serde_json::json!({
        "host": dc.get("ADDR"), "domain": "latch.test", "netbios": "LATCH",
        "base_dn": dc.get("BASE_DN"), "users_ou": dc.get("USERS_OU"),
        "connect_group": dc.get("GROUP_ADMINS_DN"), "transport": "ldap", "user": user,
    })
    .to_string();
    let kit = latch_testkit::Kit::built("windows_dc");
    kit.run_on(
        "dc",
        policy,
        live,
        Export::AddServiceCredential {
            config,
            resource_id: "latch.test".into(),
            credential: ServiceCredential::Password,
        },
        CallOptions {
            secrets: CallSecrets {
                grant_password: None,
                new_service_password: Some(Secret::new(b"Taken-Over-Pw-99!".to_vec())),
            },
            plan: false,
        },
    )
}
