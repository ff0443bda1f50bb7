//! The rdp-servers guest against scripted capabilities: every cmdlet it runs, in order, and
//! every refusal before anything is sent.

use latch::caps::{ParamValue, Secret};
use latch::runtime::{CallSecrets, Export, GuestError};
use latch::world::SecretRef;
use latch_testkit::{Kit, Script, grant_request};

const T: &str = "10.0.0.5:5986";
const MARKER: &str = "Latch just-in-time account (latch-managed)";
const EXPIRES: u64 = 1_796_054_400; // 2026-11-30T16:00:00Z
const ISO: &str = "2026-11-30T16:00:00Z";

fn kit() -> Kit {
    Kit::built("rdp_servers")
}

/// A script whose WinRM service account is the config's (the one a rotation may set).
fn script() -> Script {
    let mut s = Script::new();
    s.winrm_account("latch-svc");
    s
}

fn config() -> String {
    serde_json::json!({
        "servers": [
            {"name": "ws-1", "host": "10.0.0.5", "use_ssl": true, "computer_name": "WS1"},
            {"name": "ws-2", "host": "10.0.0.6", "winrm_port": 5985, "rdp_port": 3390}
        ],
        "user": "latch-svc",
        "password_secret": "winrm-password",
        "user_groups": ["Connect", "Operators"],
        "username_prefix": "jit_",
        "custom_access_details": "VPN first."
    })
    .to_string()
}

fn password() -> CallSecrets {
    CallSecrets {
        grant_password: Some(Secret::new(b"Generated-Pw-1234!".to_vec())),
        new_service_password: None,
    }
}

fn grant(permission: &str) -> Export {
    Export::Grant {
        config: config(),
        request: grant_request("g-1", "ws-1", permission, "alice@corp.example", EXPIRES),
    }
}

fn t(s: &str) -> ParamValue {
    ParamValue::Text(s.into())
}

const NO_PARAMS: &[(&str, ParamValue)] = &[];

#[test]
#[rustfmt::skip]
fn first_grant_creates_a_marked_expiring_account_in_remote_desktop_users() {
    let mut s = script();
    s.on_winrm_read(T, "Get-LocalUser", NO_PARAMS)
        .objects(r#"[{"Name":"Administrator","Enabled":true,"Description":"Built-in"}]"#, &[]);
    s.on_winrm(T, "New-LocalUser", &[
        ("Name", t("jit_alice")),
        ("Password", ParamValue::Secret(SecretRef::GrantPassword)),
        ("AccountExpires", t(ISO)),
        ("Description", t(MARKER)),
    ]);
    s.on_winrm_read(T, "Get-LocalGroupMember", &[("Group", t("Remote Desktop Users"))]).objects("[]", &[]);
    s.on_winrm(T, "Add-LocalGroupMember", &[
        ("Group", t("Remote Desktop Users")),
        ("Member", ParamValue::TextList(vec!["jit_alice".into()])),
    ]);
    let run = kit().run_with_secrets(&s, grant("Connect"), password());
    run.assert_script_done();
    let a = run.access();
    assert_eq!(a.username, "WS1\\jit_alice");
    assert_eq!((a.host.as_str(), a.port), ("10.0.0.5", 3389));
    assert!(a.deliver_password);
    assert!(a.instructions.contains("xfreerdp /v:10.0.0.5:3389 /u:jit_alice /d:WS1"), "{}", a.instructions);
    assert!(a.instructions.ends_with("VPN first."));
    let (name, rdp) = &a.extras[0];
    assert_eq!(name, "rdp-file");
    assert!(rdp.contains("full address:s:10.0.0.5:3389\r\n"), "{rdp}");
    assert!(rdp.contains("username:s:WS1\\jit_alice\r\n"), "{rdp}");
    assert!(!rdp.to_lowercase().contains("password"), "{rdp}");
}

#[test]
#[rustfmt::skip]
fn granting_again_sets_a_new_password_and_expiry_and_enables() {
    let mut s = script();
    s.on_winrm_read(T, "Get-LocalUser", NO_PARAMS).objects(
        &format!(r#"[{{"Name":"jit_alice","Enabled":false,"Description":"{MARKER}"}}]"#), &[]);
    s.on_winrm(T, "Set-LocalUser", &[
        ("Name", t("jit_alice")),
        ("Password", ParamValue::Secret(SecretRef::GrantPassword)),
        ("AccountExpires", t(ISO)),
    ]);
    s.on_winrm(T, "Enable-LocalUser", &[("Name", t("jit_alice"))]);
    s.on_winrm_read(T, "Get-LocalGroupMember", &[("Group", t("Operators"))])
        .objects(r#"[{"Name":"WS1\\jit_alice","ObjectClass":"User"}]"#, &[]);
    let run = kit().run_with_secrets(&s, grant("Operators"), password());
    run.assert_script_done();
    run.access();
}

#[test]
fn an_account_latch_did_not_create_is_refused_untouched() {
    let mut s = script();
    s.on_winrm_read(T, "Get-LocalUser", NO_PARAMS).objects(
        r#"[{"Name":"JIT_ALICE","Enabled":true,"Description":"made by hand"}]"#,
        &[],
    );
    let run = kit().run_with_secrets(&s, grant("Connect"), password());
    run.assert_script_done();
    match run.guest_error() {
        GuestError::Denied(m) => assert!(m.contains("not created by Latch"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[test]
#[rustfmt::skip]
fn revoke_removes_the_member_disables_and_scrambles() {
    let state = serde_json::json!({"server": "ws-1", "host": "10.0.0.5", "port": 5986,
        "account": "jit_alice", "group": "Remote Desktop Users"}).to_string();
    let mut request = grant_request("g-1", "ws-1", "Connect", "alice@corp.example", EXPIRES);
    request.state = Some(state);
    let mut s = script();
    s.on_winrm_read(T, "Get-LocalUser", NO_PARAMS).objects(
        &format!(r#"[{{"Name":"jit_alice","Enabled":true,"Description":"{MARKER}"}}]"#), &[]);
    s.on_winrm_read(T, "Get-LocalGroupMember", &[("Group", t("Remote Desktop Users"))])
        .objects(r#"[{"Name":"WS1\\jit_alice"}]"#, &[]);
    s.on_winrm(T, "Remove-LocalGroupMember", &[
        ("Group", t("Remote Desktop Users")),
        ("Member", ParamValue::TextList(vec!["jit_alice".into()])),
    ]);
    s.on_winrm(T, "Disable-LocalUser", &[("Name", t("jit_alice"))]);
    s.on_winrm(T, "Set-LocalUser", &[
        ("Name", t("jit_alice")),
        ("Password", ParamValue::Secret(SecretRef::GrantPassword)),
    ]);
    let run = kit().run_with_secrets(&s, Export::Revoke { config: config(), request }, password());
    run.assert_script_done();
    run.assert_ok();
}

#[test]
#[rustfmt::skip]
fn revoke_calls_the_installed_logoff_cmdlet_last() {
    let mut c: serde_json::Value = serde_json::from_str(&config()).unwrap();
    c["session_logoff_cmdlet"] = "Disconnect-LatchSession".into();
    let mut request = grant_request("g-1", "ws-1", "Connect", "alice@corp.example", EXPIRES);
    request.state = Some(serde_json::json!({"server": "ws-1", "host": "10.0.0.5", "port": 5986,
        "account": "jit_alice", "group": "Remote Desktop Users"}).to_string());
    let mut s = script();
    s.on_winrm_read(T, "Get-LocalUser", NO_PARAMS).objects(
        &format!(r#"[{{"Name":"jit_alice","Enabled":false,"Description":"{MARKER}"}}]"#), &[]);
    s.on_winrm_read(T, "Get-LocalGroupMember", &[("Group", t("Remote Desktop Users"))]).objects("[]", &[]);
    s.on_winrm(T, "Set-LocalUser", &[
        ("Name", t("jit_alice")),
        ("Password", ParamValue::Secret(SecretRef::GrantPassword)),
    ]);
    s.on_winrm(T, "Disconnect-LatchSession", &[("UserName", t("jit_alice"))]);
    let run = kit().run_with_secrets(&s, Export::Revoke { config: c.to_string(), request }, password());
    run.assert_script_done();
    run.assert_ok();
    c["session_logoff_cmdlet"] = "logoff.exe 2".into();
    let run = kit().run(&script(), Export::Validate { config: c.to_string() });
    assert!(matches!(run.guest_error(), GuestError::InvalidConfig(_)));
}

#[test]
fn hostile_names_servers_and_permissions_are_refused_before_anything_is_sent() {
    for name in [
        "alice;rm -rf /",
        "$(id)",
        "a'b",
        "a\u{2018}b",
        "-oProxyCommand=x",
        "*",
        "a(b)",
        "a\\b",
        "a,b",
        "a\0b",
        "a\nb",
        "ünïcødé",
        "abcdefghijklmnopq",
    ] {
        let mut request = grant_request("g-1", "ws-1", "Connect", "x@corp.example", EXPIRES);
        request.identity.username = Some(name.to_string());
        let run = kit().run_with_secrets(
            &script(),
            Export::Grant {
                config: config(),
                request,
            },
            password(),
        );
        run.assert_nothing_carried_out();
        assert!(
            matches!(run.guest_error(), GuestError::InvalidRequest(_)),
            "{name:?}"
        );
    }
    for (resource, permission) in [
        ("ws-9", "Connect"),
        ("ws-1", "Administrators"),
        ("ws-1", "Remote Desktop Users"),
    ] {
        let request = grant_request("g-1", resource, permission, "alice@corp.example", EXPIRES);
        let run = kit().run_with_secrets(
            &script(),
            Export::Grant {
                config: config(),
                request,
            },
            password(),
        );
        run.assert_nothing_carried_out();
        assert!(
            matches!(run.guest_error(), GuestError::InvalidRequest(_)),
            "{resource} {permission}"
        );
    }
}

#[test]
fn rotation_sets_the_local_service_account_password_from_the_hosts_handle() {
    let mut c: serde_json::Value = serde_json::from_str(&config()).unwrap();
    c["credential_rotation_days"] = 30.into();
    c["user"] = "WS1\\latch-svc".into();
    let run = kit().run(
        &script(),
        Export::Validate {
            config: c.to_string(),
        },
    );
    assert_eq!(run.lifecycle().rotate_after_days, Some(30));
    let mut s = script();
    s.on_winrm(
        T,
        "Set-LocalUser",
        &[
            ("Name", t("latch-svc")),
            (
                "Password",
                ParamValue::Secret(SecretRef::NewServicePassword),
            ),
        ],
    );
    let export = Export::AddServiceCredential {
        config: c.to_string(),
        resource_id: "ws-1".into(),
        credential: latch::runtime::ServiceCredential::Password,
    };
    let secrets = CallSecrets {
        grant_password: None,
        new_service_password: Some(Secret::new(b"New-Service-Pw-1!".to_vec())),
    };
    let run = kit().run_with_secrets(&s, export, secrets);
    run.assert_script_done();
    run.assert_ok();
    // A domain account's password is the domain's: refused, not set server by server.
    c["user"] = "svc@corp.example".into();
    let run = kit().run(
        &script(),
        Export::Validate {
            config: c.to_string(),
        },
    );
    assert!(matches!(run.guest_error(), GuestError::InvalidConfig(m) if m.contains("domain")));
}
