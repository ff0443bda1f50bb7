//! Contract versions side by side: guests built against `latch:connector@0.1.0` and
//! `@0.2.0` (`guests/compat-v0-1`, `guests/compat-v0-2`, each with its own frozen bindings)
//! run in the same runtime as 0.3.0 guests, through their imports and exports, with their
//! versions' meaning kept.

use latch::caps::cloud::kit::ExpectAzure;
use latch::caps::ldap::{Op, Scope};
use latch::caps::winrm::lent::Cmdlets;
use latch::caps::{CapError, Effect, ParamValue};
use latch::runtime::{CredentialKind, Export, GuestError, ServiceCredential};
use latch_testkit::{Kit, Script, grant_request};

const T: &str = "svc@127.0.0.2:22";
const CONFIG: &str = r#"{"host": "127.0.0.2", "port": 22, "user_cleanup_days": 3}"#;

fn compat() -> Kit {
    Kit::built("compat-v0-1")
}

#[test]
fn a_0_1_guest_and_0_3_guests_load_side_by_side() {
    assert_eq!(compat().contract(), "0.1.0");
    assert_eq!(Kit::built("ssh_servers").contract(), "0.3.0");
    assert_eq!(Kit::built("bench_guest").contract(), "0.3.0");
    // Both run in the one shared runtime, one after the other and interleaved.
    let old = compat().run(&Script::new(), Export::Describe);
    let new = Kit::built("ssh_servers").run(&Script::new(), Export::Describe);
    assert_eq!(old.metadata().name, "compat-v0-1");
    assert_eq!(new.metadata().name, "ssh-servers");
    // 0.1 had no credential kind: its guests issued SSH certificates.
    assert_eq!(old.metadata().credential, CredentialKind::SshCertificate);
}

#[test]
fn a_0_1_guest_keeps_0_1_meaning() {
    // validate: 0.1 said nothing, so the host reads the settings 0.1 documented by name.
    let run = compat().run(
        &Script::new(),
        Export::Validate {
            config: CONFIG.into(),
        },
    );
    let lifecycle = run.lifecycle();
    assert_eq!(lifecycle.cleanup_after_days, Some(3));
    assert_eq!(lifecycle.rotate_after_days, None);
    assert_eq!(lifecycle.default_permission, "Default");
    let bad = compat().run(
        &Script::new(),
        Export::Validate {
            config: r#"{"user_cleanup_days": -1}"#.into(),
        },
    );
    assert!(
        matches!(bad.guest_error(), GuestError::InvalidConfig(m) if m.contains("user_cleanup_days"))
    );

    // discover: one page.
    let mut s = Script::new();
    s.on_ssh(T, &["hostname"]).ok("box-1\n");
    let run = compat().run(
        &s,
        Export::Discover {
            config: CONFIG.into(),
            cursor: None,
        },
    );
    run.assert_script_done();
    assert_eq!(run.page().next, None);
    assert_eq!(run.resources()[0].name, "box-1");

    // grant: every 0.1 import; ssh.exec and winrm.invoke are changes; string and switch
    // parameters become text and switch; the password the guest held is not delivered.
    let mut s = Script::new();
    s.on_secret("compat-token").value(b"tok");
    s.on_ssh(T, &["useradd", "compat"]).stdin(b"tok");
    s.on_winrm(
        "svc@127.0.0.2:5985",
        "New-LocalUser",
        &[
            ("Name", ParamValue::Text("compat".into())),
            ("Disabled", ParamValue::Switch),
        ],
    )
    .objects("[]", &[]);
    s.on_ca_public_key().text("ssh-ed25519 AAAA ca");
    s.on_sign(&["compat"], "g-1").text("cert");
    let mut request = grant_request("g-1", "only", "Default", "a@corp.example", 4_000_000_000);
    request.public_key = Some("ssh-ed25519 AAAA key".into());
    request.state = Some("a 0.2 state a 0.1 guest never sees".into());
    let run = compat().run(
        &s,
        Export::Grant {
            config: CONFIG.into(),
            request: request.clone(),
        },
    );
    run.assert_script_done();
    let granted = run.granted();
    assert_eq!(granted.access.certificate.as_deref(), Some("cert"));
    assert!(
        !granted.access.deliver_password,
        "a 0.1 guest's password is dropped"
    );
    assert_eq!(granted.state, "");
    let effects: Vec<Effect> = run
        .report
        .records
        .iter()
        .filter(|r| r.call.target().is_some())
        .map(|r| r.call.effect())
        .collect();
    assert_eq!(effects, [Effect::Change, Effect::Change]);

    // A cmdlet's errors reach a 0.1 guest as status 1 and stderr.
    let mut s = Script::new();
    s.on_secret("compat-token").value(b"tok");
    s.on_ssh(T, &["useradd", "compat"]);
    s.on_winrm(
        "svc@127.0.0.2:5985",
        "New-LocalUser",
        &[
            ("Name", ParamValue::Text("compat".into())),
            ("Disabled", ParamValue::Switch),
        ],
    )
    .objects("[]", &["The user compat already exists."]);
    let run = compat().run(
        &s,
        Export::Grant {
            config: CONFIG.into(),
            request: request.clone(),
        },
    );
    run.assert_script_done();
    assert!(
        matches!(run.guest_error(), GuestError::Failed(m) if m == "The user compat already exists.")
    );

    // revoke, cleanup (0.1's resource-id and username), service keys; no password rotation.
    let mut s = Script::new();
    s.on_ssh(T, &["usermod", "-L", "g-1"]);
    let run = compat().run(
        &s,
        Export::Revoke {
            config: CONFIG.into(),
            request: request.clone(),
        },
    );
    run.assert_script_done();
    run.assert_ok();
    let mut s = Script::new();
    s.on_ssh(T, &["userdel", "only", "compat"]);
    let run = compat().run(
        &s,
        Export::Cleanup {
            config: CONFIG.into(),
            request: request.clone(),
            username: "compat".into(),
        },
    );
    run.assert_script_done();
    run.assert_ok();
    let mut s = Script::new();
    s.on_ssh(T, &["tee"]).stdin(b"ssh-ed25519 AAAA new");
    let run = compat().run(
        &s,
        Export::AddServiceCredential {
            config: CONFIG.into(),
            resource_id: "only".into(),
            credential: ServiceCredential::SshKey("ssh-ed25519 AAAA new".into()),
        },
    );
    run.assert_script_done();
    run.assert_ok();
    let run = compat().run(
        &Script::new(),
        Export::AddServiceCredential {
            config: CONFIG.into(),
            resource_id: "only".into(),
            credential: ServiceCredential::Password,
        },
    );
    assert!(matches!(run.guest_error(), GuestError::InvalidRequest(_)));
}

#[test]
fn a_0_1_guest_is_held_to_the_same_policy() {
    // The policy and checks are the host's, whatever the contract version: a target outside
    // the allow list is denied before anything is sent.
    let mut s = Script::new();
    s.allow("127.0.0.9:22");
    let run = compat().run(
        &s,
        Export::Discover {
            config: CONFIG.into(),
            cursor: None,
        },
    );
    run.assert_nothing_carried_out();
    match run.guest_error() {
        GuestError::Denied(m) => assert!(m.contains("allow list"), "{m}"),
        other => panic!("{other:?}"),
    }
}

/// The WinRM policy, through the real runtime (the canary guest's grant makes two WinRM
/// calls, `Set-LocalUser` with the grant's password and `New-LocalUser` with a named secret):
/// a cmdlet outside `[integration.winrm]` is refused before anything is sent, a read-listed
/// cmdlet is not lent to changes' opposite, and the grant's password exists only where the
/// host made one.
#[test]
fn winrm_calls_outside_the_policy_are_refused_before_anything_is_sent() {
    use latch::runtime::CallSecrets;
    let kit = Kit::built("canary-guest");
    let request = || {
        let mut r = grant_request("g-1", "box", "Connect", "c@corp.example", 4_000_000_000);
        r.state = None;
        r
    };
    let grant = || Export::Grant {
        config: "{}".into(),
        request: request(),
    };
    let password = || CallSecrets {
        grant_password: Some(latch::caps::Secret::new(b"Pw-1234567890ab!".to_vec())),
        new_service_password: None,
    };

    // New-LocalUser is not lent: the script expects Set-LocalUser only and allows nothing else.
    let mut s = Script::new();
    s.on_secret("canary-secret").value(b"tok");
    s.on_ssh("svc@127.0.0.2:22", &["chpasswd"]).stdin(b"tok");
    s.on_winrm(
        "svc@127.0.0.2:5985",
        "Set-LocalUser",
        &[
            ("Name", ParamValue::Text("canary".into())),
            (
                "Password",
                ParamValue::Secret(latch::world::SecretRef::GrantPassword),
            ),
        ],
    );
    s.allow("127.0.0.2:5985").allow_secret("canary-secret");
    let run = kit.run_with_secrets(&s, grant(), password());
    run.assert_script_done();
    let last = run.report.records.last().unwrap();
    assert_eq!(last.capability, "winrm.invoke");
    match &last.outcome {
        latch::caps::Outcome::Refused { error } => {
            assert!(error.to_string().contains("allowlist"), "{error}")
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(run.guest_error(), GuestError::Denied(_)));

    // Without a grant password (an integration whose credential is not a password), the
    // handle is refused before anything is sent.
    let mut s = Script::new();
    s.on_secret("canary-secret").value(b"tok");
    s.on_ssh("svc@127.0.0.2:22", &["chpasswd"]).stdin(b"tok");
    s.allow("127.0.0.2:5985")
        .allow_cmdlets(&[], &["Set-LocalUser", "New-LocalUser"]);
    let run = kit.run(&s, grant());
    run.assert_script_done();
    match &run.report.records.last().unwrap().outcome {
        latch::caps::Outcome::Refused { error } => {
            assert!(error.to_string().contains("no grant password"), "{error}")
        }
        other => panic!("{other:?}"),
    }

    // A cmdlet listed only as a read is not lent to `winrm.invoke`'s opposite: the policy
    // itself says so, whatever the guest.
    let cmdlets = Cmdlets::parse(&["Get-LocalUser".into()], &["Set-LocalUser".into()]).unwrap();
    assert!(cmdlets.check("get-localuser", Effect::Read).is_ok());
    assert!(cmdlets.check("Get-LocalUser", Effect::Change).is_ok());
    assert!(cmdlets.check("Set-LocalUser", Effect::Read).is_err());
    assert!(cmdlets.check("Remove-LocalUser", Effect::Change).is_err());
    // And cmdlets outside the catalog (code runners among them) cannot be lent at all.
    for never in [
        "Invoke-Expression",
        "start-process",
        "Add-Type",
        "Set-Content",
    ] {
        let err = Cmdlets::parse(&[], &[never.to_string()]).unwrap_err();
        assert!(err.contains("not in Latch's cmdlet catalog"), "{err}");
    }
}

/// A compiled guest is kept between runs, and used only while it is intact and private:
/// a damaged, foreign-writable or differently named file is not loaded (the guest is
/// compiled afresh and works the same).
#[test]
fn compiled_guests_are_cached_and_checked_before_use() {
    use latch::runtime::cache::CompileCache;
    use latch::runtime::{Runtime, RuntimeConfig, sha256_hex};
    use std::os::unix::fs::PermissionsExt;

    let bytes = std::fs::read(crate::guest("ssh-servers")).unwrap();
    let sha = sha256_hex(&bytes);
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let runtime = Runtime::new(RuntimeConfig {
        max_concurrent_calls: 2,
        ..RuntimeConfig::default()
    })
    .unwrap();
    let entry = CompileCache::new(&cache, &sha, runtime.engine());
    assert!(entry.get(runtime.engine()).is_none(), "nothing cached yet");

    let first = runtime.load_cached(&bytes, &cache).unwrap();
    assert_eq!(first.sha256(), sha);
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&cache), 0o700);
    assert_eq!(mode(entry.path()), 0o600);
    assert!(
        entry.get(runtime.engine()).is_some(),
        "the compiled guest was kept"
    );
    assert!(runtime.load_cached(&bytes, &cache).is_ok());

    // One flipped byte in the code: refused by the checksum, then replaced by a good copy.
    let mut damaged = std::fs::read(entry.path()).unwrap();
    let last = damaged.len() - 1;
    damaged[last] ^= 0xff;
    std::fs::write(entry.path(), &damaged).unwrap();
    assert!(
        entry.get(runtime.engine()).is_none(),
        "a damaged file was used"
    );
    assert!(runtime.load_cached(&bytes, &cache).is_ok());
    assert!(
        entry.get(runtime.engine()).is_some(),
        "the damaged file was not replaced"
    );

    // Writable by others: not used.
    std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(0o666)).unwrap();
    assert!(
        entry.get(runtime.engine()).is_none(),
        "a world-writable file was used"
    );
    std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o777)).unwrap();
    assert!(
        entry.get(runtime.engine()).is_none(),
        "a world-writable directory was used"
    );
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o700)).unwrap();

    // Another guest's name never finds this code.
    let other = CompileCache::new(&cache, &"0".repeat(64), runtime.engine());
    assert!(other.get(runtime.engine()).is_none());
}

fn compat_0_2() -> Kit {
    Kit::built("compat-v0-2")
}

const VM: &str = "/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm";

/// Everything a 0.2 grant asks, in order, with `vm` as the Azure read's answer.
fn a_0_2_grant(vm: Result<&str, CapError>) -> Script {
    let mut s = Script::new();
    s.on_secret("compat-token").value(b"tok");
    s.on_ssh(T, &["useradd", "compat"]).stdin(b"tok");
    s.on_winrm_read(
        "svc@127.0.0.2:5985",
        "Get-LocalUser",
        &[("Name", ParamValue::TextList(vec!["compat".into()]))],
    )
    .objects(r#"[{"Name":"compat"}]"#, &[]);
    let azure = s.on(ExpectAzure {
        path: VM.into(),
        query: Some(vec![("api-version".into(), "2024-07-01".into())]),
    });
    match vm {
        Ok(body) => azure.text(body),
        Err(e) => azure.error(e),
    };
    s.on_ca_public_key().text("ssh-ed25519 AAAA ca");
    s.on_sign(&["compat"], "g-2").text("cert");
    s
}

#[test]
fn a_0_2_guest_loads_beside_0_3_guests_and_keeps_0_2_meaning() {
    assert_eq!(compat_0_2().contract(), "0.2.0");
    assert_eq!(Kit::built("ssh_servers").contract(), "0.3.0");
    let old = compat_0_2().run(&Script::new(), Export::Describe);
    assert_eq!(old.metadata().name, "compat-v0-2");

    // discover: ssh.read and ldap.search through the 0.2 bindings.
    let mut s = Script::new();
    s.directory(&["dc=corp,dc=example"], &[], &[]);
    s.on_read(T, &["hostname"]).ok("box-2\n");
    s.on_ldap(
        "svc@127.0.0.2:389",
        Op::Search {
            base: "dc=corp,dc=example".into(),
            scope: Scope::Subtree,
            filter: vec![("sAMAccountName".into(), "svc".into())],
            attributes: vec!["cn".into()],
        },
    )
    .entries(&[("cn=svc,dc=corp,dc=example", &[("cn", &["svc"])])]);
    let run = compat_0_2().run(
        &s,
        Export::Discover {
            config: CONFIG.into(),
            cursor: None,
        },
    );
    run.assert_script_done();
    assert_eq!(run.resources()[0].name, "box-2");
    assert_eq!(
        run.resources()[0].tags,
        [("dn".to_string(), "cn=svc,dc=corp,dc=example".to_string())]
    );

    // grant: every other 0.2 import; the state goes back to revoke as 0.2 had it.
    let mut request = grant_request("g-2", "only", "Default", "a@corp.example", 4_000_000_000);
    request.public_key = Some("ssh-ed25519 AAAA key".into());
    let run = compat_0_2().run(
        &a_0_2_grant(Ok("{}")),
        Export::Grant {
            config: CONFIG.into(),
            request: request.clone(),
        },
    );
    run.assert_script_done();
    assert_eq!(run.granted().access.certificate.as_deref(), Some("cert"));
    assert_eq!(run.granted().state, "azure: there");

    // 0.3's `not-found` reaches a 0.2 guest as `failed`, in the words it had before 0.3,
    // so a 0.2 guest that read "HTTP 404" out of them still can.
    let run = compat_0_2().run(
        &a_0_2_grant(Err(CapError::NotFound(
            "GET …: HTTP 404 ResourceNotFound: gone".into(),
        ))),
        Export::Grant {
            config: CONFIG.into(),
            request: request.clone(),
        },
    );
    run.assert_script_done();
    assert_eq!(run.granted().state, "azure: gone (HTTP 404)");
    // And a guest's own error comes back to the host in 0.2's cases.
    let run = compat_0_2().run(
        &a_0_2_grant(Err(CapError::Denied("GET …: HTTP 403".into()))),
        Export::Grant {
            config: CONFIG.into(),
            request: request.clone(),
        },
    );
    assert!(matches!(run.guest_error(), GuestError::Denied(m) if m.contains("403")));

    let mut s = Script::new();
    s.on_ssh(T, &["usermod", "-L", "azure: there"]);
    request.state = Some("azure: there".into());
    let run = compat_0_2().run(
        &s,
        Export::Revoke {
            config: CONFIG.into(),
            request,
        },
    );
    run.assert_script_done();
    run.assert_ok();
}
