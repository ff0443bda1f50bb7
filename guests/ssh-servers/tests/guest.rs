//! The ssh-servers guest against scripted capabilities: every command it would run on a
//! server, in order, and every refusal before anything runs.

use latch::caps::CapError;
use latch::runtime::{Export, GuestError, ServiceCredential};
use latch_guest_sdk::linux;
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

fn trust_script() -> String {
    linux::compact(linux::TRUST_SCRIPT)
}
fn revoke_script() -> String {
    linux::compact(linux::REVOKE_SCRIPT)
}

/// What the probe finds on a server; [`Probe::answer`] prints it as `probe.sh` would.
#[derive(Clone)]
struct Probe {
    busybox: bool,
    /// No account tools at all.
    no_tools: bool,
    ca: bool,
    krl: bool,
    dropin: bool,
    include: bool,
    /// `sshd -T`'s trustedusercakeys / revokedkeys values.
    effective: (&'static str, &'static str),
    /// systemd's MainPID for ssh.service, if systemd runs.
    systemd: Option<u32>,
    /// `sshd -T`'s authorizedprincipalsfile, if set.
    principals: Option<&'static str>,
    /// The listener's command line (pid 100; this session's sshd processes are 300 and 200).
    listener: &'static str,
    /// The account's `id -nG`, shell and shadow facts.
    account: Option<(&'static str, &'static str, &'static str)>,
    groups: &'static [&'static str],
}

const SHADOW_TOOLS: &[&str] = &[
    "useradd",
    "usermod",
    "userdel",
    "groupadd",
    "gpasswd",
    "passwd",
    "chpasswd",
    "sshd",
    "ssh-keygen",
    "pkill",
    "kill",
];

impl Probe {
    fn fresh() -> Probe {
        Probe {
            busybox: false,
            no_tools: false,
            ca: false,
            krl: false,
            dropin: false,
            include: true,
            effective: ("none", "none"),
            systemd: None,
            principals: None,
            listener: "/usr/sbin/sshd -D",
            account: None,
            groups: &["dev"],
        }
    }
    fn warm() -> Probe {
        Probe {
            ca: true,
            krl: true,
            dropin: true,
            effective: ("/etc/ssh/latch/user_ca.pub", "/etc/ssh/latch/revoked_keys"),
            groups: &["latch-managed", "dev"],
            ..Probe::fresh()
        }
    }
    fn with_account(mut self, groups: &'static str) -> Probe {
        self.account = Some((groups, "/bin/bash", "password=star expire=none"));
        self
    }
    fn answer(&self) -> String {
        let mut o = String::from("\u{1e}probe\n\u{1e}tools\n");
        if self.no_tools {
            o += "sshd /usr/sbin/sshd /usr/sbin/sshd\n";
        } else if self.busybox {
            for t in [
                "adduser", "addgroup", "deluser", "delgroup", "passwd", "chpasswd",
            ] {
                o += &format!("{t} /usr/sbin/{t} /bin/busybox\n");
            }
            for t in ["sshd", "ssh-keygen", "pkill", "kill"] {
                o += &format!("{t} /usr/sbin/{t} /usr/sbin/{t}\n");
            }
        } else {
            for t in SHADOW_TOOLS {
                o += &format!("{t} /usr/sbin/{t} /usr/sbin/{t}\n");
            }
        }
        if self.systemd.is_some() {
            o += "systemctl /usr/bin/systemctl /usr/bin/systemctl\n";
        }
        if self.ca {
            o += &format!("\u{1e}ca\n{CA}\n");
        }
        if self.krl {
            o += "\u{1e}krl\n";
        }
        if self.dropin {
            o += &format!("\u{1e}dropin\n{}", linux::dropin());
        }
        o += "\u{1e}include\n";
        if self.include {
            o += "Include /etc/ssh/sshd_config.d/*.conf\n";
        }
        o += &format!(
            "\u{1e}sshd\ntrustedusercakeys {}\nrevokedkeys {}\npidfile /run/sshd.pid\nauthorizedprincipalsfile {}\n",
            self.effective.0,
            self.effective.1,
            self.principals.unwrap_or("none")
        );
        if let Some(pid) = self.systemd {
            o += &format!("\u{1e}systemd\nssh.service {pid}\nsshd.service 0\n");
        }
        o += "\u{1e}procs\n400 310 sh\t/bin/sh -c ...\n310 305 sudo\tsudo -n /bin/sh -c ...\n305 300 bash\tbash -c ...\n300 200 sshd\tsshd: apono@notty\n200 100 sshd\tsshd: apono [priv]\n";
        o += &format!("100 1 sshd\t{}\n1 0 systemd\t/sbin/init\n", self.listener);
        if let Some((groups, shell, facts)) = self.account {
            let user = groups.split(' ').next().unwrap();
            o += &format!(
                "\u{1e}account\n{user}:x:1002:1002::/home/{user}:{shell}\n{groups}\n{facts}\n"
            );
        }
        o += "\u{1e}groups\n";
        for g in self.groups {
            o += &format!("{g}\n");
        }
        o
    }
}

/// The probe, asked about `user` and `groups`, finding `p`.
fn expect_probe(s: &mut Script, user: &str, groups: &[&str], p: &Probe) {
    s.on_linux_probe(T, user, groups).ok(&p.answer());
}

/// The trust script with these arguments (`reload`: `systemd UNIT`, `signal PID` or empty),
/// answering `answer`.
#[allow(clippy::too_many_arguments)]
fn expect_trust<'a>(
    s: &'a mut Script,
    ca: bool,
    krl: bool,
    dropin_too: bool,
    group_tool: &str,
    reload: &str,
    answer: &str,
) -> &'a mut latch_testkit::Step {
    let script = trust_script();
    let ca_line = if ca { format!("{CA}\n") } else { String::new() };
    let d = if dropin_too {
        linux::dropin()
    } else {
        String::new()
    };
    let (how, target) = reload.split_once(' ').unwrap_or(("", ""));
    s.on_ssh(
        T,
        &[
            "sudo",
            "-n",
            "/bin/sh",
            "-c",
            &script,
            "latch-trust",
            &ca_line,
            if krl { "new" } else { "" },
            &d,
            group_tool,
            how,
            target,
        ],
    )
    .ok(answer)
}

const APPLIED: &str = "\u{1e}sshd\ntrustedusercakeys /etc/ssh/latch/user_ca.pub\nrevokedkeys /etc/ssh/latch/revoked_keys\n";

#[test]
#[rustfmt::skip]
fn first_grant_on_a_fresh_server_runs_exactly_this() {
    let mut s = Script::new();
    expect_probe(&mut s, "alice_smith", &["dev"], &Probe::fresh());
    s.on_ca_public_key().text(CA);
    expect_trust(&mut s, true, true, true, "/usr/sbin/groupadd", "signal 100", APPLIED);
    s.on_ssh(T, &["sudo", "-n", "/usr/sbin/useradd", "-m", "-s", "/bin/bash", "-G", "latch-managed,dev", "-c", "Latch just-in-time user", "-p", "*", "-e", "", "--", "alice_smith"]);
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

/// A second grant finds everything in place: one read, no change, a certificate.
#[test]
#[rustfmt::skip]
fn granting_again_changes_nothing_on_the_server() {
    let mut s = Script::new();
    expect_probe(&mut s, "alice", &[], &Probe::warm().with_account("alice latch-managed"));
    s.on_ca_public_key().text(CA);
    s.on_sign(&["alice"], "g-1").text("cert");
    let run = kit().run(&s, grant("Default", "alice@corp.example"));
    run.assert_script_done();
    run.access();
    let changes = run.changes();
    assert!(changes.len() == 1 && changes[0].starts_with("certs.sign-ssh-user"), "{changes:?}");
}

/// A locked, expired Latch account (an earlier grant's revoke) is opened in one `usermod`.
#[test]
#[rustfmt::skip]
fn granting_a_revoked_account_again_reopens_it() {
    let mut s = Script::new();
    let mut p = Probe::warm();
    p.account = Some(("alice latch-managed", "/bin/bash", "password=locked expire=set"));
    expect_probe(&mut s, "alice", &["dev"], &p);
    s.on_ca_public_key().text(CA);
    s.on_ssh(T, &["sudo", "-n", "/usr/sbin/usermod", "-s", "/bin/bash", "-a", "-G", "dev", "-p", "*", "-e", "", "--", "alice"]);
    s.on_sign(&["alice"], "g-1").text("cert");
    let run = kit().run(&s, grant("dev", "alice@corp.example"));
    run.assert_script_done();
    run.access();
}

/// How sshd is reloaded follows how it runs: systemd's unit, or nothing per connection.
#[test]
#[rustfmt::skip]
fn sshd_is_reloaded_the_way_it_runs() {
    let mut p = Probe::fresh();
    p.systemd = Some(100);
    let mut s = Script::new();
    expect_probe(&mut s, "alice", &[], &p);
    s.on_ca_public_key().text(CA);
    expect_trust(&mut s, true, true, true, "/usr/sbin/groupadd", "systemd ssh.service", APPLIED);
    s.on_ssh(T, &["sudo", "-n", "/usr/sbin/useradd", "-m", "-s", "/bin/bash", "-G", "latch-managed", "-c", "Latch just-in-time user", "-p", "*", "-e", "", "--", "alice"]);
    s.on_sign(&["alice"], "g-1").text("cert");
    let run = kit().run(&s, grant("Default", "alice@corp.example"));
    run.assert_script_done();
    run.access();

    // inetd style: the topmost sshd is this connection's own monitor.
    let mut p = Probe::fresh();
    p.listener = "sshd: apono [priv]";
    let mut s = Script::new();
    expect_probe(&mut s, "alice", &[], &p);
    s.on_ca_public_key().text(CA);
    expect_trust(&mut s, true, true, true, "/usr/sbin/groupadd", "", APPLIED);
    s.on_ssh(T, &["sudo", "-n", "/usr/sbin/useradd", "-m", "-s", "/bin/bash", "-G", "latch-managed", "-c", "Latch just-in-time user", "-p", "*", "-e", "", "--", "alice"]);
    s.on_sign(&["alice"], "g-1").text("cert");
    let run = kit().run(&s, grant("Default", "alice@corp.example"));
    run.assert_script_done();
    run.access();
}

/// On BusyBox (Alpine) the account is made with adduser/addgroup and opened with chpasswd.
#[test]
#[rustfmt::skip]
fn busybox_servers_get_busybox_commands() {
    let mut p = Probe::warm();
    p.busybox = true;
    let mut s = Script::new();
    expect_probe(&mut s, "alice", &["dev"], &p);
    s.on_ca_public_key().text(CA);
    s.on_ssh(T, &["sudo", "-n", "/usr/sbin/adduser", "-D", "-s", "/bin/bash", "-g", "Latch just-in-time user", "alice"]);
    s.on_ssh(T, &["sudo", "-n", "/usr/sbin/addgroup", "alice", "latch-managed"]);
    s.on_ssh(T, &["sudo", "-n", "/usr/sbin/addgroup", "alice", "dev"]);
    s.on_ssh(T, &["sudo", "-n", "/usr/sbin/chpasswd", "-e"]).stdin(b"alice:*\n");
    s.on_sign(&["alice"], "g-1").text("cert");
    let run = kit().run(&s, grant("dev", "alice@corp.example"));
    run.assert_script_done();
    run.access();

    let mut p = Probe::warm().with_account("alice latch-managed dev");
    p.busybox = true;
    let mut s = Script::new();
    expect_probe(&mut s, "alice", &[], &p);
    s.on_ssh(T, &["sudo", "-n", "/bin/sh", "-c", &revoke_script(), "latch-revoke"]).stdin(b"id: g-1\n");
    s.on_ssh(T, &["sudo", "-n", "/usr/sbin/delgroup", "alice", "dev"]);
    s.on_ssh(T, &["sudo", "-n", "/usr/sbin/passwd", "-l", "alice"]);
    s.on_ssh(T, &["sudo", "-n", "/usr/sbin/pkill", "-KILL", "-u", "alice"]).exit(1, "");
    let request = grant_request("g-1", "web-1", "dev", "alice@corp.example", EXPIRES);
    let run = kit().run(&s, Export::Revoke { config: config(), request });
    run.assert_script_done();
    run.assert_ok();
}

/// What cannot work is refused after the probe, before any change, saying what to do.
#[test]
#[rustfmt::skip]
fn servers_latch_cannot_set_up_are_refused_before_any_change() {
    let cases: Vec<(Probe, &str)> = vec![
        (Probe { include: false, ..Probe::fresh() }, "Include /etc/ssh/sshd_config.d/*.conf"),
        (Probe { effective: ("/etc/ssh/other_ca.pub", "none"), ..Probe::fresh() }, "trustedusercakeys /etc/ssh/other_ca.pub"),
        (Probe { principals: Some("/etc/ssh/principals/%u"), ..Probe::fresh() }, "authorizedprincipalsfile /etc/ssh/principals/%u"),
        (Probe { no_tools: true, ..Probe::fresh() }, "found neither shadow-utils"),
    ];
    for (p, says) in cases {
        let mut s = Script::new();
        expect_probe(&mut s, "alice", &[], &p);
        if !p.no_tools {
            s.on_ca_public_key().text(CA);
        }
        let run = kit().run(&s, grant("Default", "alice@corp.example"));
        run.assert_script_done();
        assert_eq!(run.changes(), Vec::<String>::new());
        match run.guest_error() {
            GuestError::Failed(m) => assert!(m.contains(says) && m.contains("nothing was changed"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    // sudo that needs a password or a terminal: the probe itself is refused.
    for (stderr, says) in [
        ("sudo: a password is required\n", "NOPASSWD"),
        ("sudo: sorry, you must have a tty to run sudo\n", "!requiretty"),
    ] {
        let mut s = Script::new();
        s.on_linux_probe(T, "alice", &[]).exit(1, stderr);
        let run = kit().run(&s, grant("Default", "alice@corp.example"));
        run.assert_script_done();
        match run.guest_error() {
            GuestError::Failed(m) => assert!(m.contains(says) && m.contains("nothing was changed"), "{m}"),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn an_existing_account_latch_did_not_create_is_refused_untouched() {
    let mut s = Script::new();
    expect_probe(
        &mut s,
        "alice",
        &[],
        &Probe::fresh().with_account("alice sudo"),
    );
    let run = kit().run(&s, grant("Default", "alice@corp.example"));
    run.assert_script_done();
    assert_eq!(run.changes(), Vec::<String>::new());
    match run.guest_error() {
        GuestError::Denied(m) => assert!(m.contains("not created by Latch"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[test]
#[rustfmt::skip]
fn a_server_that_ignores_the_dropin_is_an_error_and_the_dropin_is_removed() {
    let mut s = Script::new();
    expect_probe(&mut s, "alice", &[], &Probe { ca: true, krl: true, ..Probe::fresh() });
    s.on_ca_public_key().text(CA);
    expect_trust(&mut s, false, false, true, "/usr/sbin/groupadd", "signal 100", "\u{1e}sshd\ntrustedusercakeys none\nrevokedkeys none\n")
        .exit(3, "");
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
    expect_probe(&mut s, "alice", &[], &Probe::warm().with_account("alice latch-managed dev"));
    s.on_ssh(T, &["sudo", "-n", "/bin/sh", "-c", &revoke_script(), "latch-revoke"]).stdin(b"id: g-1\n");
    s.on_ssh(T, &["sudo", "-n", "/usr/sbin/gpasswd", "-d", "alice", "dev"]);
    s.on_ssh(T, &["sudo", "-n", "/usr/sbin/usermod", "-L", "-e", "1", "--", "alice"]);
    s.on_ssh(T, &["sudo", "-n", "/usr/sbin/pkill", "-KILL", "-u", "alice"]).exit(1, "");
    let mut request = grant_request("g-1", "web-1", "dev", "alice@corp.example", EXPIRES);
    request.public_key = Some(KEY.into());
    let run = kit().run(&s, Export::Revoke { config: config(), request });
    run.assert_script_done();
    run.assert_ok();
}

#[test]
fn revoking_what_is_gone_succeeds() {
    let mut s = Script::new();
    expect_probe(&mut s, "alice", &[], &Probe::fresh());
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
    assert_eq!(run.changes(), Vec::<String>::new());
}

#[test]
#[rustfmt::skip]
fn cleanup_deletes_only_latch_accounts() {
    let cleanup = |user: &str| Export::Cleanup {
        config: config(),
        request: grant_request("g-1", "web-1", "Default", "x@corp.example", EXPIRES),
        username: user.into(),
    };
    let mut s = Script::new();
    expect_probe(&mut s, "alice", &[], &Probe::warm().with_account("alice latch-managed"));
    s.on_ssh(T, &["sudo", "-n", "/usr/sbin/pkill", "-KILL", "-u", "alice"]).exit(1, "");
    s.on_ssh(T, &["sudo", "-n", "/usr/sbin/userdel", "-r", "--", "alice"]);
    let run = kit().run(&s, cleanup("alice"));
    run.assert_script_done();
    run.assert_ok();

    let mut s = Script::new();
    expect_probe(&mut s, "bob", &[], &Probe::warm().with_account("bob sudo"));
    let run = kit().run(&s, cleanup("bob"));
    run.assert_script_done();
    assert_eq!(run.changes(), Vec::<String>::new());
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
    expect_probe(&mut s, "alice", &[], &Probe::warm().with_account("alice latch-managed"));
    s.on_ca_public_key().text(CA);
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
    expect_probe(&mut s, "alice", &[], &Probe::fresh());
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
    expect_probe(&mut s, "alice_smith", &["dev"], &Probe::fresh());
    s.on_ca_public_key().text(CA);
    let run = kit().plan(&s, grant("dev", "Alice.Smith@corp.example"));
    run.assert_script_done();
    assert_eq!(run.access().username, "alice_smith");
    let planned = run.planned();
    let expected_prefixes = [
        "ssh.exec apono@127.0.0.2:22: sudo -n /bin/sh -c 'set -eu\nPATH=",
        "ssh.exec apono@127.0.0.2:22: sudo -n /usr/sbin/useradd -m -s /bin/bash -G latch-managed,dev -c 'Latch just-in-time user' -p '*' -e '' -- alice_smith",
        "certs.sign-ssh-user principals=alice_smith",
    ];
    assert_eq!(planned.len(), expected_prefixes.len(), "{planned:#?}");
    for (got, want) in planned.iter().zip(expected_prefixes) {
        assert!(got.starts_with(want), "{got}\n  expected {want}…");
    }
    assert!(planned[0].contains("latch-trust"), "{}", planned[0]);
}
