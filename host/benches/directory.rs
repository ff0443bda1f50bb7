//! A JIT grant + revoke on a real Active Directory (`make bench`; needs root for the Samba
//! AD DC, `tests/samba/dc.sh`): the `windows-dc` guest through Latch's live `ldap`
//! capability (LDAPS, connection kept), and through WinRM to the Windows stand-in (which
//! carries the AD cmdlets out on the same DC), beside the same LDAP operations done by
//! OpenLDAP's `ldapadd` / `ldapmodify` processes, as a script would, in the same run.
//!
//! Grant = add the user (disabled, marked, expiring), set its password, enable it, add it to
//! the group; revoke = remove it from the group, disable it, scramble its password. Latch's
//! column also has the guest's reads (it looks before it writes) and the sandbox.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use latch::caps::directory::Bases;
use latch::caps::ldap::live::LdapSettings;
use latch::caps::registry;
use latch::caps::table::Settings;
use latch::caps::table::tls_config;
use latch::caps::winrm::lent::Cmdlets;
use latch::caps::winrm::pool::WinrmSettings;
use latch::caps::{Policy, Secret, SecretStore};
use latch::runtime::{CallOptions, CallSecrets, Export};
use latch_testkit::{Kit, grant_request};

const N: usize = 20;
const ADDR: &str = "127.0.0.30";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn stats(mut v: Vec<Duration>) -> (f64, f64, f64) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    (ms(v[0]), ms(v[v.len() / 2]), ms(v[v.len() - 1]))
}

fn dc_env(dir: &Path) -> HashMap<String, String> {
    let out = Command::new("bash")
        .arg("-c")
        .arg("set -a; . \"$1\"; env -0")
        .arg("-")
        .arg(dir.join("env"))
        .env_clear()
        .output()
        .unwrap();
    out.stdout
        .split(|b| *b == 0)
        .filter_map(|kv| {
            let kv = String::from_utf8_lossy(kv);
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect()
}

fn config(env: &HashMap<String, String>, transport: &str, host: &str, port: u16) -> String {
    serde_json::json!({
        "host": host, "domain": "latch.test", "netbios": "LATCH",
        "base_dn": env["BASE_DN"], "users_ou": env["USERS_OU"],
        "connect_group": env["GROUP_ADMINS_DN"], "groups_ou": env["GROUPS_OU"],
        "transport": transport, "ldap_port": port, "winrm_port": port,
        "username_prefix": if transport == "ldap" { "bl_" } else { "bw_" },
    })
    .to_string()
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let dc_dir = root().join("target/samba-bench");
    let dc = |args: &[&str]| {
        Command::new("bash")
            .arg(root().join("tests/samba/dc.sh"))
            .args(args)
            .output()
            .unwrap()
    };
    let up = dc(&["up", dc_dir.to_str().unwrap(), ADDR]);
    assert!(
        up.status.success(),
        "the Samba AD DC did not start (root, `make setup`): {}",
        String::from_utf8_lossy(&up.stderr)
    );
    let env = dc_env(&dc_dir);
    let ca = PathBuf::from(&env["CA"]);
    std::fs::write(dir.path().join("dc-password"), &env["SVC_PW"]).unwrap();
    std::fs::write(dir.path().join("winrm-password"), &env["SVC_PW"]).unwrap();

    // The Windows stand-in, carrying the AD cmdlets out on the same DC.
    let sdir = dir.path().join("standin");
    std::fs::create_dir(&sdir).unwrap();
    std::fs::write(
        sdir.join("users"),
        format!("LATCH:svc_latch:{}\n", env["SVC_PW"]),
    )
    .unwrap();
    let mut standin = Command::new(root().join("target/py/bin/python"))
        .arg(root().join("tests/winrm/standin.py"))
        .arg("--dir")
        .arg(&sdir)
        .args(["--ad-url", &env["LDAP_URL"], "--ad-ca"])
        .arg(&ca)
        .args(["--ad-base-dn", &env["BASE_DN"]])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(standin.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let https: u16 = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("https="))
        .and_then(|p| p.parse().ok())
        .expect("READY line");

    let store = SecretStore::new(Some(dir.path()), None).unwrap();
    let mut ldap = LdapSettings::with_tls(Arc::new(tls_config(Some(&ca)).unwrap()));
    ldap.default_user = Some(env["SVC_USER"].clone());
    ldap.password_secret = Some("dc-password".into());
    let mut winrm = WinrmSettings::defaults().unwrap();
    winrm.https_ports = vec![https];
    winrm.transport.tls = Arc::new(tls_config(Some(&sdir.join("ca.pem"))).unwrap());
    winrm.default_user = Some("LATCH\\svc_latch".into());
    winrm.password_secret = Some("winrm-password".into());
    let (mut over_winrm, mut over_ldap) = (Settings::default(), Settings::default());
    over_winrm.insert(winrm);
    over_ldap.insert(ldap);
    let live = Arc::new(registry::live(
        store,
        [("dc-winrm", &over_winrm), ("dc-ldap", &over_ldap)],
    ));
    let bases = || {
        Bases::parse(
            &[env["BASE_DN"].clone()],
            &[env["USERS_OU"].clone()],
            &[env["GROUPS_OU"].clone()],
        )
        .unwrap()
    };
    let cmdlets = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let kit = Kit::built("windows_dc");
    let options = || CallOptions {
        secrets: CallSecrets {
            grant_password: Some(Secret::new(b"Bench-Pw-4567!xyzABC".to_vec())),
            new_service_password: None,
        },
        plan: false,
    };

    let mut rows = Vec::new();
    for (name, transport, host, port) in [
        ("dc-ldap", "ldap", ADDR, 636),
        ("dc-winrm", "winrm", "localhost", https),
    ] {
        let policy = Policy::parse(&[format!("{host}:{port}")], &[])
            .unwrap()
            .with(
                Cmdlets::parse(
                    &cmdlets(&["Get-ADUser", "Get-ADGroup"]),
                    &cmdlets(&[
                        "New-ADUser",
                        "Set-ADAccountPassword",
                        "Set-ADAccountExpiration",
                        "Enable-ADAccount",
                        "Disable-ADAccount",
                        "Add-ADGroupMember",
                        "Remove-ADGroupMember",
                    ]),
                )
                .unwrap(),
            )
            .with(bases());
        let cfg = config(&env, transport, host, port);
        let mut times = Vec::new();
        for i in 0..=N {
            let mut request = grant_request(
                "g-1",
                "latch.test",
                "Connect",
                "b@corp.example",
                4_000_000_000,
            );
            request.identity.username = Some(format!("u{i}"));
            let t = Instant::now();
            let granted = kit.run_on(
                name,
                policy.clone(),
                live.clone(),
                Export::Grant {
                    config: cfg.clone(),
                    request: request.clone(),
                },
                options(),
            );
            assert!(granted.result.is_ok(), "{:?}", granted.result);
            let revoked = kit.run_on(
                name,
                policy.clone(),
                live.clone(),
                Export::Revoke {
                    config: cfg.clone(),
                    request,
                },
                options(),
            );
            assert!(revoked.result.is_ok(), "{:?}", revoked.result);
            if i > 0 {
                times.push(t.elapsed()); // the first warms the connection
            }
            if i == N {
                // Where the time of the last grant and revoke went, call by call.
                for report in [&granted, &revoked] {
                    let calls: Vec<String> = report
                        .records
                        .iter()
                        .map(|r| format!("{} {:.1}", r.capability, r.micros as f64 / 1e3))
                        .collect();
                    println!("{name}: {}", calls.join(", "));
                }
            }
        }
        rows.push((format!("Latch, {transport}"), times));
    }

    // The same operations by OpenLDAP's tools, one process per step as a script runs them.
    let pwfile = dir.path().join("svc.pw");
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&pwfile)
            .unwrap();
        f.write_all(env["SVC_PW"].as_bytes()).unwrap();
    }
    let tool = |program: &str, ldif: &str| {
        let mut child = Command::new(program)
            .args(["-x", "-H", &env["LDAP_URL"], "-D", &env["SVC_USER"], "-y"])
            .arg(&pwfile)
            .env("LDAPTLS_CACERT", &ca)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(ldif.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{program}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    use base64::Engine as _;
    let b64 = |s: &str| {
        let utf16: Vec<u8> = format!("\"{s}\"")
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        base64::engine::general_purpose::STANDARD.encode(utf16)
    };
    let group = &env["GROUP_ADMINS_DN"];
    let mut times = Vec::new();
    for i in 0..N {
        let dn = format!("CN=bt_u{i},{}", env["USERS_OU"]);
        let t = Instant::now();
        tool(
            "ldapadd",
            &format!(
                "dn: {dn}\nobjectClass: user\nsAMAccountName: bt_u{i}\nuserPrincipalName: \
                 bt_u{i}@latch.test\ndescription: bench\nuserAccountControl: 514\n\
                 accountExpires: 134405280000000000\n"
            ),
        );
        tool(
            "ldapmodify",
            &format!(
                "dn: {dn}\nchangetype: modify\nreplace: unicodePwd\nunicodePwd:: {}\n-\n\n\
                 dn: {dn}\nchangetype: modify\nreplace: userAccountControl\n\
                 userAccountControl: 512\n-\n\n\
                 dn: {group}\nchangetype: modify\nadd: member\nmember: {dn}\n-\n",
                b64("Bench-Pw-4567!xyzABC")
            ),
        );
        tool(
            "ldapmodify",
            &format!(
                "dn: {group}\nchangetype: modify\ndelete: member\nmember: {dn}\n-\n\n\
                 dn: {dn}\nchangetype: modify\nreplace: userAccountControl\n\
                 userAccountControl: 514\n-\n\n\
                 dn: {dn}\nchangetype: modify\nreplace: unicodePwd\nunicodePwd:: {}\n-\n",
                b64(&format!("Scrambled-{i}-Qq9!zz"))
            ),
        );
        times.push(t.elapsed());
    }
    rows.push(("ldapadd + 2 ldapmodify".to_string(), times));

    let _ = standin.kill();
    let _ = standin.wait();
    let _ = dc(&["down", dc_dir.to_str().unwrap()]);

    println!("Active Directory: one grant + revoke, {N} runs each, ms (min / median / max)");
    let base = stats(rows.last().unwrap().1.clone()).1;
    for (name, times) in rows {
        let (a, b, c) = stats(times);
        println!(
            "{name:<26} {:>26} {:>7.2}x",
            format!("{a:.1} / {b:.1} / {c:.1}"),
            b / base
        );
    }
}
