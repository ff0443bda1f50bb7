//! The windows-dc guest against scripted capabilities, over both transports: every directory
//! operation it makes, in order, and every refusal before anything is sent.

use latch::caps::ldap::{Attribute, Change, Op, Scope, Value};
use latch::caps::{ParamValue, Secret};
use latch::runtime::{CallSecrets, Export, GuestError};
use latch::world::SecretRef;
use latch_testkit::{Kit, Script, grant_request};

const LDAP: &str = "dc1.latch.test:636";
const WINRM: &str = "dc1.latch.test:5985";
const BASE: &str = "DC=latch,DC=test";
const OU: &str = "OU=Latch,DC=latch,DC=test";
const GROUPS: &str = "OU=JIT Groups,DC=latch,DC=test";
const CONNECT: &str = "CN=JIT-Admins,OU=JIT Groups,DC=latch,DC=test";
const ALICE: &str = "CN=jit_alice,OU=Latch,DC=latch,DC=test";
const MARKER: &str = "Latch just-in-time account (latch-managed)";
const EXPIRES: u64 = 1_796_054_400; // 2026-11-30T16:00:00Z
const FILETIME: &str = "134405280000000000";

fn kit() -> Kit {
    Kit::built("windows_dc")
}

/// A script with the directory bounds the operator writes for this config (the test kit
/// implies none): searches under the domain, accounts under `OU=Latch`, group members under
/// `OU=JIT Groups`; the WinRM service account as the config names it.
fn script() -> Script {
    let mut s = Script::new();
    s.directory(&[BASE], &[OU], &[GROUPS])
        .winrm_account("svc_latch@latch.test");
    s
}

fn config(transport: &str) -> String {
    serde_json::json!({
        "host": "dc1.latch.test",
        "domain": "latch.test",
        "netbios": "LATCH",
        "base_dn": BASE,
        "users_ou": OU,
        "connect_group": CONNECT,
        "groups_ou": GROUPS,
        "transport": transport,
        "username_prefix": "jit_",
        "user": "svc_latch@latch.test",
        "password_secret": "dc-password",
        "custom_access_details": "Ask #it-ops."
    })
    .to_string()
}

fn password() -> CallSecrets {
    CallSecrets {
        grant_password: Some(Secret::new(b"Generated-Pw-1234!".to_vec())),
        new_service_password: None,
    }
}

fn grant(transport: &str, permission: &str, email: &str) -> Export {
    Export::Grant {
        config: config(transport),
        request: grant_request("g-1", "latch.test", permission, email, EXPIRES),
    }
}

fn revoke(transport: &str, state: Option<&str>) -> Export {
    let mut request = grant_request(
        "g-1",
        "latch.test",
        "Connect",
        "alice@corp.example",
        EXPIRES,
    );
    request.state = state.map(str::to_string);
    Export::Revoke {
        config: config(transport),
        request,
    }
}

fn text(name: &str, values: &[&str]) -> Attribute {
    Attribute {
        name: name.into(),
        values: values.iter().map(|v| Value::Text(v.to_string())).collect(),
    }
}

fn pwd() -> Attribute {
    Attribute {
        name: "unicodePwd".into(),
        values: vec![Value::Password(SecretRef::GrantPassword)],
    }
}

fn find_user(sam: &str) -> Op {
    Op::Search {
        base: BASE.into(),
        scope: Scope::Subtree,
        filter: vec![
            ("objectClass".into(), "user".into()),
            ("sAMAccountName".into(), sam.into()),
        ],
        attributes: vec![
            "description".into(),
            "userAccountControl".into(),
            "memberOf".into(),
        ],
    }
}

fn modify(dn: &str, changes: Vec<Change>) -> Op {
    Op::Modify {
        dn: dn.into(),
        changes,
    }
}

#[test]
fn validate_says_what_the_host_does() {
    let run = kit().run(
        &script(),
        Export::Validate {
            config: config("ldap"),
        },
    );
    let l = run.lifecycle();
    assert_eq!(l.default_permission, "Connect");
    assert_eq!(l.service_user.as_deref(), Some("svc_latch@latch.test"));
    assert_eq!(l.service_key_secret.as_deref(), Some("dc-password"));
    let mut c: serde_json::Value = serde_json::from_str(&config("ldap")).unwrap();
    c["credential_rotation_days"] = 30.into();
    let run = kit().run(
        &script(),
        Export::Validate {
            config: c.to_string(),
        },
    );
    assert_eq!(run.lifecycle().rotate_after_days, Some(30));
}

#[test]
#[rustfmt::skip]
fn rotation_resets_the_service_accounts_own_password_from_the_hosts_handle() {
    const SVC: &str = "CN=svc_latch,CN=Users,DC=latch,DC=test";
    let mut s = script();
    s.on_ldap(LDAP, find_user("svc_latch")).entries(&[(SVC, &[("userAccountControl", &["512"])])]);
    s.on_ldap(LDAP, modify(SVC, vec![Change::Replace(Attribute {
        name: "unicodePwd".into(),
        values: vec![Value::Password(SecretRef::NewServicePassword)],
    })]));
    let export = Export::AddServiceCredential {
        config: config("ldap"),
        resource_id: "latch.test".into(),
        credential: latch::runtime::ServiceCredential::Password,
    };
    let secrets = CallSecrets {
        grant_password: None,
        new_service_password: Some(Secret::new(b"New-Service-Pw-1!".to_vec())),
    };
    let run = kit().run_with_secrets(&s, export, secrets);
    run.assert_script_done();
    run.assert_ok();
}

#[test]
#[rustfmt::skip]
fn first_grant_over_ldap_creates_a_marked_expiring_account_then_adds_it() {
    let mut s = script();
    s.on_ldap(LDAP, find_user("jit_alice"));
    s.on_ldap(LDAP, Op::Add {
        dn: ALICE.into(),
        attributes: vec![
            text("objectClass", &["top", "person", "organizationalPerson", "user"]),
            text("cn", &["jit_alice"]),
            text("sAMAccountName", &["jit_alice"]),
            text("userPrincipalName", &["jit_alice@latch.test"]),
            text("description", &[MARKER]),
            text("userAccountControl", &["514"]),
            text("accountExpires", &[FILETIME]),
        ],
    });
    s.on_ldap(LDAP, modify(ALICE, vec![Change::Replace(pwd())]));
    s.on_ldap(LDAP, modify(ALICE, vec![Change::Replace(text("userAccountControl", &["512"]))]));
    s.on_ldap(LDAP, modify(CONNECT, vec![Change::Add(text("member", &[ALICE]))]));
    let run = kit().run_with_secrets(&s, grant("ldap", "Connect", "alice@corp.example"), password());
    run.assert_script_done();
    let access = run.access();
    assert_eq!(access.username, "LATCH\\jit_alice");
    assert_eq!((access.host.as_str(), access.port), ("dc1.latch.test", 3389));
    assert!(access.deliver_password);
    assert!(access.instructions.contains("2026-11-30T16:00:00Z"), "{}", access.instructions);
    assert!(access.instructions.ends_with("Ask #it-ops."));
    let state: serde_json::Value = serde_json::from_str(&run.granted().state).unwrap();
    assert_eq!(state["dn"], ALICE);
    assert_eq!(state["group"], CONNECT);
}

#[test]
#[rustfmt::skip]
fn first_grant_over_winrm_uses_the_ad_cmdlets() {
    let mut s = script();
    s.on_winrm_read(WINRM, "Get-ADUser", &[
        ("LDAPFilter", ParamValue::Text("(&(objectClass=user)(sAMAccountName=jit_alice))".into())),
        ("SearchBase", ParamValue::Text(BASE.into())),
        ("Properties", ParamValue::TextList(vec!["Description".into(), "MemberOf".into()])),
    ]).objects("[]", &[]);
    s.on_winrm(WINRM, "New-ADUser", &[
        ("Name", ParamValue::Text("jit_alice".into())),
        ("SamAccountName", ParamValue::Text("jit_alice".into())),
        ("UserPrincipalName", ParamValue::Text("jit_alice@latch.test".into())),
        ("Path", ParamValue::Text(OU.into())),
        ("Description", ParamValue::Text(MARKER.into())),
        ("AccountPassword", ParamValue::Secret(SecretRef::GrantPassword)),
        ("Enabled", ParamValue::Boolean(true)),
        ("AccountExpirationDate", ParamValue::Text("2026-11-30T16:00:00Z".into())),
    ]);
    s.on_winrm(WINRM, "Add-ADGroupMember", &[
        ("Identity", ParamValue::Text(CONNECT.into())),
        ("Members", ParamValue::TextList(vec![ALICE.into()])),
    ]);
    let run = kit().run_with_secrets(&s, grant("winrm", "Connect", "alice@corp.example"), password());
    run.assert_script_done();
    assert_eq!(run.access().username, "LATCH\\jit_alice");
}

#[test]
#[rustfmt::skip]
fn an_account_latch_did_not_create_is_refused_untouched() {
    for (dn, description) in [
        (ALICE, "created by hand"),
        ("CN=jit_alice,CN=Users,DC=latch,DC=test", MARKER),
    ] {
        let mut s = script();
        s.on_ldap(LDAP, find_user("jit_alice"))
            .entries(&[(dn, &[("description", &[description]), ("userAccountControl", &["512"])])]);
        let run = kit().run_with_secrets(&s, grant("ldap", "Connect", "alice@corp.example"), password());
        run.assert_script_done();
        match run.guest_error() {
            GuestError::Denied(m) => assert!(m.contains("not created by Latch"), "{m}"),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
#[rustfmt::skip]
fn granting_again_resets_the_password_and_expiry_and_keeps_membership() {
    let mut s = script();
    s.on_ldap(LDAP, find_user("jit_alice")).entries(&[(ALICE, &[
        ("description", &[MARKER]), ("userAccountControl", &["514"]), ("memberOf", &[CONNECT]),
    ])]);
    s.on_ldap(LDAP, modify(ALICE, vec![Change::Replace(pwd())]));
    s.on_ldap(LDAP, modify(ALICE, vec![Change::Replace(text("accountExpires", &[FILETIME]))]));
    s.on_ldap(LDAP, modify(ALICE, vec![Change::Replace(text("userAccountControl", &["512"]))]));
    let run = kit().run_with_secrets(&s, grant("ldap", "Connect", "alice@corp.example"), password());
    run.assert_script_done();
    run.access();
}

#[test]
#[rustfmt::skip]
fn revoke_removes_the_member_disables_and_scrambles() {
    let state = serde_json::json!({"account": "jit_alice", "dn": ALICE, "group": CONNECT}).to_string();
    let mut s = script();
    s.on_ldap(LDAP, find_user("jit_alice")).entries(&[(ALICE, &[
        ("description", &[MARKER]), ("userAccountControl", &["512"]), ("memberOf", &[CONNECT]),
    ])]);
    s.on_ldap(LDAP, modify(CONNECT, vec![Change::Delete(text("member", &[ALICE]))]));
    s.on_ldap(LDAP, modify(ALICE, vec![Change::Replace(text("userAccountControl", &["514"]))]));
    s.on_ldap(LDAP, modify(ALICE, vec![Change::Replace(pwd())]));
    let run = kit().run_with_secrets(&s, revoke("ldap", Some(&state)), password());
    run.assert_script_done();
    run.assert_ok();
}

#[test]
fn revoking_what_is_gone_succeeds() {
    let mut s = script();
    s.on_ldap(LDAP, find_user("jit_alice"));
    let run = kit().run_with_secrets(&s, revoke("ldap", None), password());
    run.assert_script_done();
    run.assert_ok();
}

#[test]
#[rustfmt::skip]
fn discovery_offers_connect_and_the_groups_found() {
    let mut s = script();
    s.on_ldap(LDAP, Op::Search {
        base: GROUPS.into(),
        scope: Scope::Subtree,
        filter: vec![("objectClass".into(), "group".into())],
        attributes: vec!["cn".into()],
    }).entries(&[
        ("CN=JIT-Ops,OU=JIT Groups,DC=latch,DC=test", &[("cn", &["JIT-Ops"])]),
        ("CN=JIT-Admins,OU=JIT Groups,DC=latch,DC=test", &[("cn", &["JIT-Admins"])]),
    ]);
    let run = kit().run(&s, Export::Discover { config: config("ldap"), cursor: None });
    run.assert_script_done();
    let r = &run.resources()[0];
    assert_eq!(r.id, "latch.test");
    assert_eq!(r.kind, "ad-domain");
    assert_eq!(r.permissions, vec!["Connect", "JIT-Admins", "JIT-Ops"]);
}

#[test]
fn hostile_names_are_refused_before_anything_is_sent() {
    let hostile = [
        "alice;rm -rf /",
        "$(id)",
        "a'b",
        "a\u{2018}b",
        "-oProxyCommand=x",
        "*",
        "a(b)",
        "a\\b",
        "a,b",
        "a=b",
        "a+b",
        "a\0b",
        "a\nb",
        "ünïcødé",
        "abcdefghijklmnopq", // with jit_: 21 characters, over sAMAccountName's 20
    ];
    for name in hostile {
        for transport in ["ldap", "winrm"] {
            let mut request =
                grant_request("g-1", "latch.test", "Connect", "x@corp.example", EXPIRES);
            request.identity.username = Some(name.to_string());
            let run = kit().run_with_secrets(
                &script(),
                Export::Grant {
                    config: config(transport),
                    request,
                },
                password(),
            );
            run.assert_nothing_carried_out();
            match run.guest_error() {
                GuestError::InvalidRequest(_) => {}
                other => panic!("{name:?}: {other:?}"),
            }
        }
    }
    let long = format!("{}@corp.example", "a".repeat(300));
    let run = kit().run_with_secrets(&script(), grant("ldap", "Connect", &long), password());
    run.assert_nothing_carried_out();
    assert!(matches!(run.guest_error(), GuestError::InvalidRequest(_)));
}

#[test]
#[rustfmt::skip]
fn a_hostile_permission_is_only_ever_an_escaped_filter_value() {
    let permission = "*)(|(cn=*";
    let mut s = script();
    s.on_ldap(LDAP, Op::Search {
        base: GROUPS.into(),
        scope: Scope::Subtree,
        filter: vec![("objectClass".into(), "group".into()), ("cn".into(), permission.into())],
        attributes: vec!["cn".into()],
    });
    let run = kit().run_with_secrets(&s, grant("ldap", permission, "alice@corp.example"), password());
    run.assert_script_done();
    match run.guest_error() {
        GuestError::InvalidRequest(m) => assert!(m.contains("not a group"), "{m}"),
        other => panic!("{other:?}"),
    }
}
