//! A guest never chooses a secret: the secret each transport logs in with, and the one a
//! rotation rewrites, is the one `latch.toml` lends. A hostile guest (`denial-borrow-secret`)
//! names another integration's SSH key or password as its own service credential; the
//! connector refuses to start, naming both, before anything reaches a server — and every
//! secret stays byte-identical. A rotation whose guest forgets a server is refused before
//! any change.

use std::net::TcpListener;
use std::path::{Path, PathBuf};

use crate::fleet::latch;

/// A listener nobody should connect to: where every integration of these tests points.
struct Tripwire(TcpListener);

impl Tripwire {
    fn new() -> Tripwire {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        Tripwire(l)
    }

    fn port(&self) -> u16 {
        self.0.local_addr().unwrap().port()
    }

    /// No connection was made (nothing was sent anywhere).
    fn untouched(&self) -> bool {
        matches!(self.0.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
    }
}

/// A data dir with secrets `a-key`, `b-key`, `a-pw`, `b-pw` and the CA.
fn data() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let out = latch(&["init", "--dir", tmp.path().to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    for (name, value) in [
        ("a-key", "A's service key"),
        ("b-key", "B's service key"),
        ("a-pw", "A's-Password-1"),
        ("b-pw", "B's-Password-1"),
    ] {
        std::fs::write(tmp.path().join("secrets").join(name), value).unwrap();
    }
    tmp
}

/// Every file of the secrets directory, with its bytes.
fn secrets(data: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut all: Vec<_> = std::fs::read_dir(data.join("secrets"))
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect();
    all.sort();
    all
}

/// An integration running the hostile guest, with `tables` (its `[integration.*]`
/// settings) and guest config `claim`/`user`, its one server on the tripwire.
fn hostile(name: &str, tables: &str, config: &str, port: u16) -> String {
    let guest = crate::guest("denial_borrow_secret");
    let sha = latch::runtime::sha256_hex(&std::fs::read(&guest).unwrap());
    format!(
        r#"
[[integration]]
name = "{name}"
guest = "{}"
sha256 = "{sha}"
allow = ["127.0.0.1:{port}"]
{tables}
[integration.config]
{config}
"#,
        guest.display()
    )
}

fn write_config(data: &Path, integrations: &[String]) -> PathBuf {
    let path = data.join("latch.toml");
    std::fs::write(
        &path,
        format!("listen = \"127.0.0.1:0\"\n{}", integrations.concat()),
    )
    .unwrap();
    path
}

/// `latch rotate` and `latch resources` of integration `b`: both must fail at the start.
fn refused(config: &Path) -> String {
    let cfg = config.to_str().unwrap();
    let mut errors = String::new();
    for args in [
        &["rotate", "--config", cfg, "--integration", "b"][..],
        &["resources", "--config", cfg, "--integration", "b"][..],
        &["check", "--config", cfg][..],
    ] {
        let out = latch(args);
        assert!(!out.status.success(), "{args:?} succeeded: {out:?}");
        errors.push_str(&String::from_utf8_lossy(&out.stderr));
    }
    errors
}

#[test]
fn a_guest_naming_another_integrations_secret_is_refused_at_start_on_every_transport() {
    let wire = Tripwire::new();
    let port = wire.port();
    // Integration `a` holds `a-key` (SSH) and `a-pw` (WinRM and LDAP).
    let a = hostile(
        "a",
        "[integration.ssh]\nkey_secret = \"a-key\"\nuser = \"svc\"\n\
         [integration.winrm]\nuser = 'LAB\\svc'\npassword_secret = \"a-pw\"\n\
         [integration.ldap]\nuser = \"svc@lab.test\"\npassword_secret = \"a-pw\"\n\
         [integration.directory]\nread = [\"DC=latch,DC=test\"]\n",
        &format!(
            "servers = [{{ id = \"a-1\", host = \"127.0.0.1\", port = {port}, via = \"ssh\" }}]"
        ),
        port,
    );
    let server = |via: &str| {
        format!(
            "servers = [{{ id = \"b-1\", host = \"127.0.0.1\", port = {port}, via = \"{via}\" }}]"
        )
    };
    let cases = [
        // (B's own tables, what B's guest claims, the transport, what latch.toml lends B)
        (
            "[integration.ssh]\nkey_secret = \"b-key\"\n",
            "a-key",
            "ssh",
            "[integration.ssh] key_secret = \"b-key\"",
        ),
        (
            "[integration.winrm]\nuser = 'LAB\\svc-b'\npassword_secret = \"b-pw\"\nread = [\"Get-LocalUser\"]\n",
            "a-pw",
            "winrm",
            "[integration.winrm] password_secret = \"b-pw\"",
        ),
        (
            "[integration.ldap]\nuser = \"svc-b@lab.test\"\npassword_secret = \"b-pw\"\n\
             [integration.directory]\nread = [\"DC=latch,DC=test\"]\n",
            "a-pw",
            "ldap",
            "[integration.ldap] password_secret = \"b-pw\"",
        ),
    ];
    for (tables, claim, via, lent) in cases {
        let tmp = data();
        let before = secrets(tmp.path());
        let b = hostile(
            "b",
            tables,
            &format!("claim = \"{claim}\"\n{}", server(via)),
            port,
        );
        let config = write_config(tmp.path(), &[a.clone(), b]);
        let errors = refused(&config);
        assert!(
            errors.contains(&format!("the guest names secret \"{claim}\""))
                && errors.contains(lent),
            "{via}: the error names both secrets: {errors}"
        );
        assert!(errors.contains("never choose it"), "{via}: {errors}");
        assert_eq!(secrets(tmp.path()), before, "{via}: every secret as it was");
        assert!(wire.untouched(), "{via}: nothing reached a server");
    }
}

#[test]
fn a_guest_naming_a_secret_where_latch_toml_lends_none_is_refused() {
    let wire = Tripwire::new();
    let tmp = data();
    let before = secrets(tmp.path());
    let b = hostile(
        "b",
        "",
        &format!(
            "claim = \"a-key\"\nservers = [{{ id = \"b-1\", host = \"127.0.0.1\", port = {}, via = \"ssh\" }}]",
            wire.port()
        ),
        wire.port(),
    );
    let config = write_config(tmp.path(), &[b]);
    let errors = refused(&config);
    assert!(errors.contains("lends this integration none"), "{errors}");
    assert_eq!(secrets(tmp.path()), before);
    assert!(wire.untouched());
}

#[test]
fn a_guest_naming_another_service_account_is_refused() {
    let wire = Tripwire::new();
    let tmp = data();
    let b = hostile(
        "b",
        "[integration.winrm]\nuser = 'LAB\\svc-b'\npassword_secret = \"b-pw\"\n",
        &format!(
            "claim = \"b-pw\"\nuser = 'LAB\\Administrator'\nservers = [{{ id = \"b-1\", host = \"127.0.0.1\", port = {}, via = \"winrm\" }}]",
            wire.port()
        ),
        wire.port(),
    );
    let config = write_config(tmp.path(), &[b]);
    let errors = refused(&config);
    assert!(
        errors.contains("LAB\\\\Administrator") && errors.contains("LAB\\\\svc-b"),
        "{errors}"
    );
    assert!(wire.untouched());
}

#[test]
fn credentials_the_host_holds_cannot_be_lent_to_a_guest_and_names_are_unambiguous() {
    let tmp = data();
    let port = Tripwire::new().port();
    let plain = |extra: &str| hostile("b", extra, "", port);
    let cases = [
        // Another integration's service key in `secrets`.
        (
            vec![
                hostile("a", "[integration.ssh]\nkey_secret = \"a-key\"\n", "", port),
                plain("secrets = [\"a-key\"]\n"),
            ],
            "integration \"a\"'s service credential",
        ),
        // Its own, or the rotation's next key beside it.
        (
            vec![plain(
                "secrets = [\"b-key.next\"]\n[integration.ssh]\nkey_secret = \"b-key\"\n",
            )],
            "integration \"b\"'s service credential",
        ),
        // The user CA.
        (
            vec![plain("secrets = [\"latch-user-ca\"]\n")],
            "the user CA",
        ),
        // Two names for one environment variable.
        (
            vec![plain("secrets = [\"a-b\", \"a.b\"]\n")],
            "LATCH_SECRET_A_B",
        ),
        // The same, across a service key and a listed secret.
        (
            vec![
                hostile("a", "[integration.ssh]\nkey_secret = \"a-key\"\n", "", port),
                plain("secrets = [\"A_KEY\"]\n"),
            ],
            "integration \"a\"'s service credential",
        ),
    ];
    for (integrations, says) in cases {
        let config = write_config(tmp.path(), &integrations);
        let out = latch(&["check", "--config", config.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(says), "{says}: {err}");
    }
}

#[test]
fn a_secret_two_integrations_log_in_with_is_never_rotated() {
    let wire = Tripwire::new();
    let tmp = data();
    let before = secrets(tmp.path());
    let server = |id: &str| {
        format!(
            "servers = [{{ id = \"{id}\", host = \"127.0.0.1\", port = {}, via = \"ssh\" }}]",
            wire.port()
        )
    };
    let a = hostile(
        "a",
        "[integration.ssh]\nkey_secret = \"a-key\"\n",
        &server("a-1"),
        wire.port(),
    );
    let b = hostile(
        "b",
        "[integration.ssh]\nkey_secret = \"a-key\"\n",
        &server("b-1"),
        wire.port(),
    );
    let config = write_config(tmp.path(), &[a, b]);
    let out = latch(&[
        "rotate",
        "--config",
        config.to_str().unwrap(),
        "--integration",
        "b",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{out:?}");
    assert!(
        err.contains("also integration \"a\"'s service credential"),
        "{err}"
    );
    assert_eq!(secrets(tmp.path()), before);
    assert!(wire.untouched());
}

/// An honest guest with a bug: its `add-service-credential` forgets one of two servers. The
/// rotation is refused before any change — no key added anywhere, every secret as it was —
/// where it used to switch keys and lock the connector out of the forgotten server.
#[test]
fn a_rotation_whose_guest_forgets_a_server_is_refused_before_any_change() {
    let fleet = crate::rotation::OwnFleet::up_at("fleet-rotation-forget", "127.0.18");
    let tmp = data();
    let data = tmp.path();
    std::fs::copy(
        fleet.dir.join("service_key"),
        data.join("secrets/fleet-key"),
    )
    .unwrap();
    std::fs::copy(
        fleet.dir.join("service_key"),
        data.join("secrets/other-key"),
    )
    .unwrap();
    let other = hostile(
        "other",
        "[integration.ssh]\nkey_secret = \"other-key\"\n",
        "",
        22,
    )
    .replace("127.0.0.1:22", "127.0.18.2:22");
    let b = hostile(
        "b",
        &format!(
            "[integration.ssh]\nkey_secret = \"fleet-key\"\nknown_hosts = \"{}\"\n",
            fleet.dir.join("known_hosts").display()
        ),
        "user = \"apono\"\nservers = [\
           { id = \"s1\", host = \"127.0.18.2\", port = 22, via = \"ssh\" },\
           { id = \"s2\", host = \"127.0.18.3\", port = 22, via = \"ssh\" }]\n\
         forget = [\"s2\"]",
        22,
    )
    .replace(
        "allow = [\"127.0.0.1:22\"]",
        "allow = [\"127.0.18.0/24:22\"]",
    );
    let config = write_config(data, &[other, b]);
    let keys = |h: usize| {
        fleet
            .admin(h, "cat /home/apono/.ssh/authorized_keys")
            .stdout
    };
    let before = (secrets(data), keys(1), keys(2));
    let out = latch(&[
        "rotate",
        "--config",
        config.to_str().unwrap(),
        "--integration",
        "b",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{out:?}");
    assert!(err.contains("would not reach apono@127.0.18.3:22"), "{err}");
    assert!(err.contains("before any change"), "{err}");
    assert_eq!(
        (secrets(data), keys(1), keys(2)),
        before,
        "no secret and no server changed"
    );
    // The original key still logs in everywhere.
    for h in 1..=2 {
        assert!(
            fleet
                .service_login(&fleet.dir.join("service_key"), h)
                .status
                .success()
        );
    }
}
