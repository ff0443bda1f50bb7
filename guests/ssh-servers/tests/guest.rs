//! The ssh-servers guest against scripted capabilities: every command it would run on a
//! server, in order, and every refusal before anything runs.

use latch::caps::CapError;
use latch::runtime::{Export, GuestError, ServiceCredential};
use latch_testkit::{Kit, Script, grant_request};

const T: &str = "apono@127.0.0.2:22";
const CA: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ3J7pZ0xYVJt5kq0x2zq5wF5yJ9i1Yb6mFq0kQm8l3P latch-user-ca";
const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHv7fFq0n1o3p5r7t9v1x3z5B7D9F1H3J5L7N9P1R3T5 alice";
const EXPIRES: u64 = 4_000_000_000;

fn kit() -> Kit {
    Kit::built("ssh_servers")
}

fn config() -> String {
    serde_json::json!({
        "servers": [
            {"name": "web-1", "host": "127.0.0.2", "tags": {"env": "prod"}},
            {"name": "web-2", "host": "127.0.0.3", "port": 2222, "user": "svc"}
        ],
        "user_groups": ["Default", "dev"],
        "custom_access_details": "Ask #ops if in doubt."
    })
    .to_string()
}

fn grant(permission: &str, email: &str) -> Export {
    let mut request = grant_request("g-1", "web-1", permission, email, EXPIRES);
    request.public_key = Some(KEY.into());
    Export::Grant {
        config: config(),
        request,
    }
}

fn dropin() -> String {
    "# Managed by Latch: trust the connector's user CA, honour its revocations.\n\
     TrustedUserCAKeys /etc/ssh/latch/user_ca.pub\nRevokedKeys /etc/ssh/latch/revoked_keys\n"
        .to_string()
}

/// The commands that make a fresh server trust the CA.
#[rustfmt::skip]
fn expect_fresh_trust(s: &mut Script) {
    s.on_ca_public_key().text(CA);
    s.on_read(T, &["sudo", "-n", "cat", "--", "/etc/ssh/latch/user_ca.pub"]).exit(1, "No such file");
    s.on_ssh(T, &["sudo", "-n", "install", "-d", "-m", "0755", "--", "/etc/ssh/latch"]);
    expect_atomic_write(s, "/etc/ssh/latch", "a", "0644", "/etc/ssh/latch/user_ca.pub", format!("{CA}\n").as_bytes());
    s.on_read(T, &["sudo", "-n", "test", "-f", "/etc/ssh/latch/revoked_keys"]).exit(1, "");
    s.on_ssh(T, &["sudo", "-n", "ssh-keygen", "-q", "-k", "-f", "/etc/ssh/latch/.latch.{b}"]);
    s.on_ssh(T, &["sudo", "-n", "chmod", "0644", "--", "/etc/ssh/latch/.latch.{b}"]);
    s.on_ssh(T, &["sudo", "-n", "mv", "-f", "--", "/etc/ssh/latch/.latch.{b}", "/etc/ssh/latch/revoked_keys"]);
    expect_dropin_written(s);
    s.on_ssh(T, &["sudo", "-n", "sshd", "-T"])
        .ok("port 22\ntrustedusercakeys /etc/ssh/latch/user_ca.pub\nrevokedkeys /etc/ssh/latch/revoked_keys\n");
    s.on_ssh(T, &["sudo", "-n", "pkill", "-HUP", "-F", "/run/sshd.pid"]);
}

/// The commands that find the sshd drop-in missing and write it.
#[rustfmt::skip]
fn expect_dropin_written(s: &mut Script) {
    s.on_read(T, &["sudo", "-n", "cat", "--", "/etc/ssh/sshd_config.d/latch.conf"]).exit(1, "");
    s.on_ssh(T, &["sudo", "-n", "install", "-d", "-m", "0755", "--", "/etc/ssh/sshd_config.d"]);
    expect_atomic_write(s, "/etc/ssh/sshd_config.d", "c", "0644", "/etc/ssh/sshd_config.d/latch.conf", dropin().as_bytes());
}

/// A file written atomically: a temporary file beside it (`.latch.` and 16 random hex
/// digits, chosen by the guest and bound to the name `suffix`), filled, given its mode,
/// moved over the file.
#[rustfmt::skip]
fn expect_atomic_write(s: &mut Script, dir: &str, suffix: &str, mode: &str, path: &str, content: &[u8]) {
    let tmp = format!("{dir}/.latch.{{{suffix}}}");
    s.on_ssh(T, &["sudo", "-n", "tee", "--", &tmp]).stdin(content);
    s.on_ssh(T, &["sudo", "-n", "chmod", mode, "--", &tmp]);
    s.on_ssh(T, &["sudo", "-n", "mv", "-f", "--", &tmp, path]);
}

/// The commands that find a server already trusting the CA.
#[rustfmt::skip]
fn expect_warm_trust(s: &mut Script) {
    s.on_ca_public_key().text(CA);
    s.on_read(T, &["sudo", "-n", "cat", "--", "/etc/ssh/latch/user_ca.pub"]).ok(&format!("{CA}\n"));
    s.on_read(T, &["sudo", "-n", "test", "-f", "/etc/ssh/latch/revoked_keys"]);
    s.on_read(T, &["sudo", "-n", "cat", "--", "/etc/ssh/sshd_config.d/latch.conf"]).ok(&dropin());
}

#[test]
#[rustfmt::skip]
fn first_grant_on_a_fresh_server_runs_exactly_this() {
    let mut s = Script::new();
    expect_fresh_trust(&mut s);
    s.on_read(T, &["getent", "passwd", "--", "alice_smith"]).exit(2, "");
    s.on_ssh(T, &["sudo", "-n", "groupadd", "-f", "latch-managed"]);
    s.on_ssh(T, &["sudo", "-n", "useradd", "-m", "-s", "/bin/bash", "-G", "latch-managed", "-c", "Latch just-in-time user", "--", "alice_smith"]);
    s.on_ssh(T, &["sudo", "-n", "usermod", "-s", "/bin/bash", "-a", "-G", "dev", "-p", "*", "-e", "", "--", "alice_smith"]);
    s.on_sign(&["alice_smith"], "g-1").valid_before(EXPIRES).text("ssh-ed25519-cert-v01@openssh.com AAAA");
    let run = kit().run(&s, grant("dev", "Alice.Smith@corp.example"));
    run.assert_script_done();
    let access = run.access();
    assert_eq!(access.username, "alice_smith");
    assert_eq!((access.host.as_str(), access.port), ("127.0.0.2", 22));
    assert_eq!(access.certificate.as_deref(), Some("ssh-ed25519-cert-v01@openssh.com AAAA"));
    assert!(access.instructions.contains("alice_smith@127.0.0.2"), "{}", access.instructions);
    assert!(access.instructions.ends_with("Ask #ops if in doubt."));
}

#[test]
#[rustfmt::skip]
fn granting_again_changes_nothing_on_the_server() {
    let mut s = Script::new();
    expect_warm_trust(&mut s);
    s.on_read(T, &["getent", "passwd", "--", "alice"]).ok("alice:x:1002:1002::/home/alice:/bin/bash\n");
    s.on_read(T, &["id", "-nG", "--", "alice"]).ok("alice latch-managed\n");
    s.on_ssh(T, &["sudo", "-n", "usermod", "-s", "/bin/bash", "-p", "*", "-e", "", "--", "alice"]);
    s.on_sign(&["alice"], "g-1").text("cert");
    let run = kit().run(&s, grant("Default", "alice@corp.example"));
    run.assert_script_done();
    run.access();
}

#[test]
fn an_existing_account_latch_did_not_create_is_refused_untouched() {
    let mut s = Script::new();
    expect_warm_trust(&mut s);
    s.on_read(T, &["getent", "passwd", "--", "alice"])
        .ok("alice:x:1000:1000::/home/alice:/bin/bash\n");
    s.on_read(T, &["id", "-nG", "--", "alice"])
        .ok("alice sudo\n");
    let run = kit().run(&s, grant("Default", "alice@corp.example"));
    run.assert_script_done();
    match run.guest_error() {
        GuestError::Denied(m) => assert!(m.contains("not created by Latch"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[test]
#[rustfmt::skip]
fn a_server_that_ignores_the_dropin_is_an_error_and_the_dropin_is_removed() {
    let mut s = Script::new();
    s.on_ca_public_key().text(CA);
    s.on_read(T, &["sudo", "-n", "cat", "--", "/etc/ssh/latch/user_ca.pub"]).ok(&format!("{CA}\n"));
    s.on_read(T, &["sudo", "-n", "test", "-f", "/etc/ssh/latch/revoked_keys"]);
    expect_dropin_written(&mut s);
    s.on_ssh(T, &["sudo", "-n", "sshd", "-T"]).ok("port 22\n");
    s.on_ssh(T, &["sudo", "-n", "rm", "-f", "--", "/etc/ssh/sshd_config.d/latch.conf"]);
    let run = kit().run(&s, grant("Default", "alice@corp.example"));
    run.assert_script_done();
    match run.guest_error() {
        GuestError::Failed(m) => assert!(m.contains("Include /etc/ssh/sshd_config.d/*.conf"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[test]
#[rustfmt::skip]
fn revoke_runs_exactly_this() {
    let mut s = Script::new();
    s.on_read(T, &["sudo", "-n", "test", "-f", "/etc/ssh/latch/revoked_keys"]);
    s.on_ssh(T, &["sudo", "-n", "cp", "--", "/etc/ssh/latch/revoked_keys", "/etc/ssh/latch/.latch.{d}"]);
    s.on_ssh(T, &["sudo", "-n", "ssh-keygen", "-q", "-k", "-u", "-f", "/etc/ssh/latch/.latch.{d}", "-s", "/etc/ssh/latch/user_ca.pub", "/dev/stdin"])
        .stdin(b"id: g-1\n");
    s.on_ssh(T, &["sudo", "-n", "chmod", "0644", "--", "/etc/ssh/latch/.latch.{d}"]);
    s.on_ssh(T, &["sudo", "-n", "mv", "-f", "--", "/etc/ssh/latch/.latch.{d}", "/etc/ssh/latch/revoked_keys"]);
    s.on_read(T, &["getent", "passwd", "--", "alice"]).ok("alice:x:1002:1002::/home/alice:/bin/bash\n");
    s.on_read(T, &["id", "-nG", "--", "alice"]).ok("alice latch-managed dev\n");
    s.on_ssh(T, &["sudo", "-n", "gpasswd", "-d", "alice", "dev"]);
    s.on_ssh(T, &["sudo", "-n", "usermod", "-L", "-e", "1", "--", "alice"]);
    s.on_ssh(T, &["sudo", "-n", "pkill", "-KILL", "-u", "alice"]).exit(1, "");
    let mut request = grant_request("g-1", "web-1", "dev", "alice@corp.example", EXPIRES);
    request.public_key = Some(KEY.into());
    let run = kit().run(&s, Export::Revoke { config: config(), request });
    run.assert_script_done();
    run.assert_ok();
}

#[test]
fn revoking_what_is_gone_succeeds() {
    let mut s = Script::new();
    s.on_read(
        T,
        &["sudo", "-n", "test", "-f", "/etc/ssh/latch/revoked_keys"],
    )
    .exit(1, "");
    s.on_read(T, &["getent", "passwd", "--", "alice"])
        .exit(2, "");
    let request = grant_request("g-1", "web-1", "Default", "alice@corp.example", EXPIRES);
    let run = kit().run(
        &s,
        Export::Revoke {
            config: config(),
            request,
        },
    );
    run.assert_script_done();
    run.assert_ok();
}

#[test]
fn cleanup_deletes_only_latch_accounts() {
    let cleanup = |user: &str| Export::Cleanup {
        config: config(),
        request: grant_request("g-1", "web-1", "Default", "x@corp.example", EXPIRES),
        username: user.into(),
    };
    let mut s = Script::new();
    s.on_read(T, &["getent", "passwd", "--", "alice"])
        .ok("alice:x:1002:1002::/home/alice:/bin/bash\n");
    s.on_read(T, &["id", "-nG", "--", "alice"])
        .ok("alice latch-managed\n");
    s.on_ssh(T, &["sudo", "-n", "pkill", "-KILL", "-u", "alice"])
        .exit(1, "");
    s.on_ssh(T, &["sudo", "-n", "userdel", "-r", "--", "alice"]);
    let run = kit().run(&s, cleanup("alice"));
    run.assert_script_done();
    run.assert_ok();

    let mut s = Script::new();
    s.on_read(T, &["getent", "passwd", "--", "bob"])
        .ok("bob:x:1000:1000::/home/bob:/bin/bash\n");
    s.on_read(T, &["id", "-nG", "--", "bob"]).ok("bob sudo\n");
    let run = kit().run(&s, cleanup("bob"));
    run.assert_script_done();
    assert!(matches!(run.guest_error(), GuestError::Denied(_)));
}

#[test]
fn discover_lists_servers_with_the_groups_they_have() {
    let mut s = Script::new();
    s.on_read(T, &["getent", "group", "--", "dev"])
        .ok("dev:x:1005:\n");
    s.on_read("svc@127.0.0.3:2222", &["getent", "group", "--", "dev"])
        .error(CapError::Unreachable("connection refused".into()));
    let run = kit().run(
        &s,
        Export::Discover {
            config: config(),
            cursor: None,
        },
    );
    run.assert_script_done();
    let r = run.resources();
    assert_eq!(r.len(), 2);
    assert_eq!(
        (r[0].id.as_str(), r[0].permissions.clone()),
        ("web-1", vec!["Default".to_string(), "dev".to_string()])
    );
    assert_eq!(r[0].tags, vec![("env".to_string(), "prod".to_string())]);
    assert_eq!(
        r[1].permissions,
        vec!["Default".to_string()],
        "unreachable: Default only"
    );
}

/// `bad` in each place a request carries a name: username, e-mail, group, server, grant id.
fn hostile_requests(bad: &str) -> Vec<latch::runtime::GrantRequest> {
    let request = |grant_id: &str, resource: &str, permission: &str, email: &str| {
        let mut r = grant_request(grant_id, resource, permission, email, EXPIRES);
        r.public_key = Some(KEY.into());
        r
    };
    let mut as_username = request("g-1", "web-1", "Default", "alice@corp.example");
    as_username.identity.username = Some(bad.into());
    vec![
        as_username,
        request("g-1", "web-1", "Default", &format!("{bad}@corp.example")),
        request("g-1", "web-1", bad, "alice@corp.example"),
        request("g-1", bad, "Default", "alice@corp.example"),
        request(bad, "web-1", "Default", "alice@corp.example"),
    ]
}

#[test]
fn hostile_requests_are_refused_before_any_command() {
    let long = "a".repeat(300);
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
        let cases = hostile_requests(bad);
        for (i, request) in cases.into_iter().enumerate() {
            for export in [
                Export::Grant {
                    config: config(),
                    request: request.clone(),
                },
                Export::Revoke {
                    config: config(),
                    request,
                },
            ] {
                let run = kit().run(&Script::new(), export);
                run.assert_script_done();
                run.assert_nothing_carried_out();
                assert!(
                    run.report.records.is_empty(),
                    "{bad:?} case {i}: nothing was even attempted"
                );
                match run.guest_error() {
                    GuestError::InvalidRequest(m) => assert!(m.len() < 400, "{m}"),
                    other => panic!("{bad:?} case {i}: {other:?}"),
                }
            }
        }
        let run = kit().run(
            &Script::new(),
            Export::Cleanup {
                config: config(),
                request: grant_request("g-1", "web-1", "Default", "x@corp.example", EXPIRES),
                username: bad.into(),
            },
        );
        run.assert_nothing_carried_out();
        assert!(
            matches!(run.guest_error(), GuestError::InvalidRequest(_)),
            "{bad:?}"
        );
    }
}

#[test]
fn bad_configs_name_the_field() {
    let cases = [
        (serde_json::json!({}), "servers"),
        (serde_json::json!({"servers": []}), "servers"),
        (serde_json::json!({"servers": "web-1"}), "servers"),
        (
            serde_json::json!({"servers": [{"name": "a", "host": "h"}, {"name": "a", "host": "h"}]}),
            "duplicate",
        ),
        (
            serde_json::json!({"servers": [{"name": "a", "host": "h", "port": 0}]}),
            "servers[0].port",
        ),
        (
            serde_json::json!({"servers": [{"name": "a", "host": "h", "port": 70000}]}),
            "servers[0].port",
        ),
        (
            serde_json::json!({"servers": [{"name": "a", "host": "-oProxyCommand=x"}]}),
            "servers[0].host",
        ),
        (
            serde_json::json!({"servers": [{"name": "a;b", "host": "h"}]}),
            "servers[0].name",
        ),
        (
            serde_json::json!({"servers": [{"name": "a", "host": "h", "user": "$(id)"}]}),
            "servers[0].user",
        ),
        (
            serde_json::json!({"servers": [{"name": "a", "host": "h", "prot": 22}]}),
            "prot",
        ),
        (
            serde_json::json!({"servers": [{"name": "a", "host": "h"}], "user_groups": ["wheel;id"]}),
            "user_groups[0]",
        ),
        (
            serde_json::json!({"servers": [{"name": "a", "host": "h"}], "login_shell": "bash"}),
            "login_shell",
        ),
        (
            serde_json::json!({"servers": [{"name": "a", "host": "h"}], "custom_access_details": "x".repeat(401)}),
            "custom_access_details",
        ),
    ];
    for (config, field) in cases {
        let run = kit().run(
            &Script::new(),
            Export::Validate {
                config: config.to_string(),
            },
        );
        match run.guest_error() {
            GuestError::InvalidConfig(m) => assert!(m.contains(field), "{config}: {m}"),
            other => panic!("{config}: {other:?}"),
        }
        run.assert_nothing_carried_out();
    }
    let ok = serde_json::json!({"servers": [{"name": "a", "host": "h"}], "custom_access_details": "x".repeat(400)});
    kit()
        .run(
            &Script::new(),
            Export::Validate {
                config: ok.to_string(),
            },
        )
        .assert_ok();
}

#[test]
fn temporary_names_are_random_and_never_reused() {
    let names = || {
        let mut s = Script::new();
        expect_fresh_trust(&mut s);
        s.on_read(T, &["getent", "passwd", "--", "alice"])
            .exit(2, "");
        let run = kit().run(&s, grant("Default", "alice@corp.example"));
        run.report
            .records
            .iter()
            .flat_map(|r| match r.call.get::<latch::caps::ssh::Exec>() {
                Some(exec) => exec.argv.clone(),
                None => Vec::new(),
            })
            .filter(|a| a.contains("/.latch."))
            .collect::<std::collections::BTreeSet<_>>()
    };
    // Each run: the CA file's, the KRL's and the drop-in's temporary names.
    let (first, second) = (names(), names());
    assert_eq!(first.len(), 3, "{first:?}");
    assert_eq!(second.len(), 3, "{second:?}");
    assert!(first.is_disjoint(&second), "{first:?} {second:?}");
}

const NEW: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINewNewNewNewNewNewNewNewNewNewNewNewNewNewNe latch-service-linux";
const OLD: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOldOldOldOldOldOldOldOldOldOldOldOldOldOldOl apono";

fn service_key(add: bool, key: &str) -> Export {
    let (config, resource_id) = (config(), "web-1".to_string());
    let credential = ServiceCredential::SshKey(key.to_string());
    if add {
        Export::AddServiceCredential {
            config,
            resource_id,
            credential,
        }
    } else {
        Export::RemoveServiceCredential {
            config,
            resource_id,
            credential,
        }
    }
}

/// Reading the service account's own authorized_keys, as that account (no sudo).
fn expect_keys(s: &mut Script, content: &str) {
    s.on_read(T, &["printenv", "HOME"]).ok("/home/apono\n");
    s.on_read(T, &["cat", "--", "/home/apono/.ssh/authorized_keys"])
        .ok(content);
}

#[rustfmt::skip]
fn expect_keys_written(s: &mut Script, content: &str) {
    s.on_ssh(T, &["install", "-d", "-m", "0700", "--", "/home/apono/.ssh"]);
    s.on_ssh(T, &["tee", "--", "/home/apono/.ssh/.latch.{k}"]).stdin(content.as_bytes());
    s.on_ssh(T, &["chmod", "0600", "--", "/home/apono/.ssh/.latch.{k}"]);
    s.on_ssh(T, &["mv", "-f", "--", "/home/apono/.ssh/.latch.{k}", "/home/apono/.ssh/authorized_keys"]);
}

#[test]
fn service_keys_are_added_and_removed_as_the_service_account_atomically() {
    // Add: appended beside the current key; adding again changes nothing.
    let mut s = Script::new();
    expect_keys(&mut s, &format!("{OLD}\n"));
    expect_keys_written(&mut s, &format!("{OLD}\n{NEW}\n"));
    let run = kit().run(&s, service_key(true, NEW));
    run.assert_script_done();
    run.assert_ok();
    let mut s = Script::new();
    expect_keys(&mut s, &format!("{OLD}\n{NEW}\n"));
    let run = kit().run(&s, service_key(true, NEW));
    run.assert_script_done();
    run.assert_ok();

    // Remove: only the old key's line goes (with options or not), comments stay.
    let mut s = Script::new();
    expect_keys(
        &mut s,
        &format!("# ops\nfrom=\"10.0.0.0/8\" {OLD}\n{NEW}\n"),
    );
    expect_keys_written(&mut s, &format!("# ops\n{NEW}\n"));
    let run = kit().run(&s, service_key(false, OLD));
    run.assert_script_done();
    run.assert_ok();

    // Never the last key: that would lock the connector out.
    let mut s = Script::new();
    expect_keys(&mut s, &format!("{OLD}\n"));
    let run = kit().run(&s, service_key(false, OLD));
    run.assert_script_done();
    assert!(matches!(run.guest_error(), GuestError::Denied(_)));
}

#[test]
fn hostile_service_keys_are_refused_before_any_command() {
    for bad in [
        format!("{NEW}\nssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEvil evil"),
        format!("command=\"sh\" {NEW}"),
        "ssh-ed25519 $(id)".to_string(),
        "not a key".to_string(),
        String::new(),
        format!("{NEW} {}", "x".repeat(9000)),
    ] {
        for add in [true, false] {
            let run = kit().run(&Script::new(), service_key(add, &bad));
            run.assert_script_done();
            assert!(
                matches!(run.guest_error(), GuestError::InvalidRequest(_)),
                "{bad:?}"
            );
        }
    }
}

#[test]
fn validate_tells_the_host_what_the_config_means() {
    let config = serde_json::json!({
        "servers": [{"name": "a", "host": "h"}],
        "user_cleanup_days": 7,
        "credential_rotation_days": 30,
        "user_key_name": "prod-key"
    });
    let run = kit().run(
        &Script::new(),
        Export::Validate {
            config: config.to_string(),
        },
    );
    let l = run.lifecycle();
    assert_eq!(l.cleanup_after_days, Some(7));
    assert_eq!(l.rotate_after_days, Some(30));
    assert_eq!(l.service_key_secret.as_deref(), Some("prod-key"));
    assert_eq!(l.default_permission, "Default");
    for (bad, field) in [
        (
            serde_json::json!({"credential_rotation_days": 0}),
            "credential_rotation_days",
        ),
        (
            serde_json::json!({"user_cleanup_days": 9999}),
            "user_cleanup_days",
        ),
        (
            serde_json::json!({"user_key_name": "../key"}),
            "user_key_name",
        ),
    ] {
        let mut config = serde_json::json!({"servers": [{"name": "a", "host": "h"}]});
        for (k, v) in bad.as_object().unwrap() {
            config[k] = v.clone();
        }
        let run = kit().run(
            &Script::new(),
            Export::Validate {
                config: config.to_string(),
            },
        );
        match run.guest_error() {
            GuestError::InvalidConfig(m) => assert!(m.contains(field), "{m}"),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn discovery_comes_in_pages() {
    let servers: Vec<serde_json::Value> = (0..120)
        .map(|i| serde_json::json!({"name": format!("s{i}"), "host": format!("10.0.0.{i}")}))
        .collect();
    let config = serde_json::json!({"servers": servers}).to_string();
    let mut cursor = None;
    let mut sizes = Vec::new();
    let mut ids = Vec::new();
    loop {
        let run = kit().run(
            &Script::new(),
            Export::Discover {
                config: config.clone(),
                cursor: cursor.clone(),
            },
        );
        let page = run.page();
        sizes.push(page.resources.len());
        ids.extend(page.resources.iter().map(|r| r.id.clone()));
        match &page.next {
            Some(next) => cursor = Some(next.clone()),
            None => break,
        }
    }
    assert_eq!(sizes, [50, 50, 20]);
    assert_eq!(ids.len(), 120);
    assert_eq!(
        ids.iter().collect::<std::collections::BTreeSet<_>>().len(),
        120
    );
    let run = kit().run(
        &Script::new(),
        Export::Discover {
            config,
            cursor: Some("999".into()),
        },
    );
    assert!(matches!(run.guest_error(), GuestError::InvalidRequest(_)));
}

/// A grant leaves where it acted; its revoke goes there even after the server was renamed
/// and moved in the config (a revoke used to need the resource to still be listed).
#[test]
#[rustfmt::skip]
fn revoke_reaches_where_the_grant_acted_even_when_the_config_forgot_it() {
    let mut s = Script::new();
    expect_warm_trust(&mut s);
    s.on_read(T, &["getent", "passwd", "--", "alice"]).ok("alice:x:1002:1002::/home/alice:/bin/bash\n");
    s.on_read(T, &["id", "-nG", "--", "alice"]).ok("alice latch-managed\n");
    s.on_ssh(T, &["sudo", "-n", "usermod", "-s", "/bin/bash", "-p", "*", "-e", "", "--", "alice"]);
    s.on_sign(&["alice"], "g-1").text("cert");
    let run = kit().run(&s, grant("Default", "alice@corp.example"));
    run.assert_script_done();
    let state = run.granted().state.clone();
    assert!(state.contains("127.0.0.2") && state.contains("alice"), "{state}");

    // web-1 is gone from the config; another server is there now.
    let config = serde_json::json!({"servers": [{"name": "db-1", "host": "10.9.9.9"}]}).to_string();
    let mut request = grant_request("g-1", "web-1", "Default", "alice@corp.example", EXPIRES);
    request.state = Some(state);
    let mut s = Script::new();
    s.on_read(T, &["sudo", "-n", "test", "-f", "/etc/ssh/latch/revoked_keys"]).exit(1, "");
    s.on_read(T, &["getent", "passwd", "--", "alice"]).exit(2, "");
    let run = kit().run(&s, Export::Revoke { config: config.clone(), request: request.clone() });
    run.assert_script_done();
    run.assert_ok();

    // A state that is not this guest's is refused before any command.
    request.state = Some("{\"host\": \"evil\"}".into());
    let run = kit().run(&Script::new(), Export::Revoke { config, request });
    run.assert_nothing_carried_out();
    assert!(matches!(run.guest_error(), GuestError::InvalidRequest(_)));
}

/// A plan of the first grant on a fresh server: the reads run (scripted here), and every
/// change the grant would make is listed, in order, none carried out.
#[test]
#[rustfmt::skip]
fn a_plan_lists_every_change_of_a_first_grant() {
    let mut s = Script::new();
    s.on_ca_public_key().text(CA);
    s.on_read(T, &["sudo", "-n", "cat", "--", "/etc/ssh/latch/user_ca.pub"]).exit(1, "No such file");
    s.on_read(T, &["sudo", "-n", "test", "-f", "/etc/ssh/latch/revoked_keys"]).exit(1, "");
    s.on_read(T, &["sudo", "-n", "cat", "--", "/etc/ssh/sshd_config.d/latch.conf"]).exit(1, "");
    s.on_read(T, &["getent", "passwd", "--", "alice_smith"]).exit(2, "");
    let run = kit().plan(&s, grant("dev", "Alice.Smith@corp.example"));
    run.assert_script_done();
    assert_eq!(run.access().username, "alice_smith");
    let planned = run.planned();
    let expected_prefixes = [
        "ssh.exec apono@127.0.0.2:22: sudo -n install -d -m 0755 -- /etc/ssh/latch",
        "ssh.exec apono@127.0.0.2:22: sudo -n tee -- /etc/ssh/latch/.latch.",
        "ssh.exec apono@127.0.0.2:22: sudo -n chmod 0644 -- /etc/ssh/latch/.latch.",
        "ssh.exec apono@127.0.0.2:22: sudo -n mv -f -- /etc/ssh/latch/.latch.",
        "ssh.exec apono@127.0.0.2:22: sudo -n ssh-keygen -q -k -f /etc/ssh/latch/.latch.",
        "ssh.exec apono@127.0.0.2:22: sudo -n chmod 0644 -- /etc/ssh/latch/.latch.",
        "ssh.exec apono@127.0.0.2:22: sudo -n mv -f -- /etc/ssh/latch/.latch.",
        "ssh.exec apono@127.0.0.2:22: sudo -n install -d -m 0755 -- /etc/ssh/sshd_config.d",
        "ssh.exec apono@127.0.0.2:22: sudo -n tee -- /etc/ssh/sshd_config.d/.latch.",
        "ssh.exec apono@127.0.0.2:22: sudo -n chmod 0644 -- /etc/ssh/sshd_config.d/.latch.",
        "ssh.exec apono@127.0.0.2:22: sudo -n mv -f -- /etc/ssh/sshd_config.d/.latch.",
        "ssh.exec apono@127.0.0.2:22: sudo -n sshd -T",
        "ssh.exec apono@127.0.0.2:22: sudo -n pkill -HUP -F /run/sshd.pid",
        "ssh.exec apono@127.0.0.2:22: sudo -n groupadd -f latch-managed",
        "ssh.exec apono@127.0.0.2:22: sudo -n useradd -m -s /bin/bash -G latch-managed -c 'Latch just-in-time user' -- alice_smith",
        "ssh.exec apono@127.0.0.2:22: sudo -n usermod -s /bin/bash -a -G dev -p '*' -e '' -- alice_smith",
        "certs.sign-ssh-user principals=alice_smith",
    ];
    assert_eq!(planned.len(), expected_prefixes.len(), "{planned:#?}");
    for (got, want) in planned.iter().zip(expected_prefixes) {
        assert!(got.starts_with(want), "{got}\n  expected {want}…");
    }
}
