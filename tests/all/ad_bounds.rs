//! The directory bounds hold over WinRM as over LDAP, on a real Samba AD DC through the
//! Windows stand-in: every AD cmdlet a guest is lent is checked against
//! `[integration.directory]` before it is sent, whatever names the object — a DN, a
//! sAMAccountName, a GUID or a SID (the last three resolved by the host's own read first) —
//! and a parameter outside the catalog, a filter or property on a secret attribute, a secret
//! in a readable parameter and an expiry past the grant's are refused too. The directory is
//! then checked to be as it was, and the stand-in's record to hold only what was allowed.

use std::sync::Arc;

use base64::Engine;
use latch::caps::directory::Bases;
use latch::caps::registry;
use latch::caps::table::Settings;
use latch::caps::winrm::lent::{Cmdlets, ServiceAccount};
use latch::caps::{Outcome, Policy, Secret, SecretStore};
use latch::runtime::{CallOptions, CallSecrets, Export, Returned};
use latch_testkit::{Kit, grant_request};
use serde_json::{Value, json};

use crate::windows_dc::DcEnv;

/// The grant the probe serves ends here (its expiry bounds every expiry it sets).
const EXPIRES: u64 = 4_000_000_000;

/// One attribute of an `ldapsearch -LLL` answer (`name:: base64` for binary values).
fn attribute(ldif: &str, name: &str) -> Vec<u8> {
    let line = ldif
        .lines()
        .find(|l| l.starts_with(&format!("{name}:")))
        .unwrap_or_else(|| panic!("{name} in {ldif}"));
    match line.split_once(":: ") {
        Some((_, b64)) => base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap(),
        None => line.split_once(": ").unwrap().1.as_bytes().to_vec(),
    }
}

fn sid_text(b: &[u8]) -> String {
    let authority = b[2..8].iter().fold(0u64, |a, x| a << 8 | u64::from(*x));
    let subs = b[8..]
        .chunks(4)
        .map(|c| u32::from_le_bytes(c.try_into().unwrap()).to_string());
    format!(
        "S-{}-{authority}-{}",
        b[0],
        subs.collect::<Vec<_>>().join("-")
    )
}

fn guid_text(b: &[u8]) -> String {
    let h = |r: &[u8]| hex::encode(r);
    let rev = |r: &[u8]| h(&r.iter().rev().copied().collect::<Vec<_>>());
    format!(
        "{}-{}-{}-{}-{}",
        rev(&b[0..4]),
        rev(&b[4..6]),
        rev(&b[6..8]),
        h(&b[8..10]),
        h(&b[10..16])
    )
}

#[test]
fn ad_cmdlets_over_winrm_are_held_to_the_directory_bounds_on_a_real_dc() {
    let env = DcEnv::new("winrm", "jit_bnd");
    let dc = env.dc;
    // A Latch account of this test's own, under OU=Latch (the change bound), by a real grant.
    let granted = env.grant("owned", &[]).unwrap();
    // The access details name it `LATCH\sam`.
    let own_sam = granted["username"]
        .as_str()
        .unwrap()
        .rsplit('\\')
        .next()
        .unwrap()
        .to_string();
    let own_dn = format!("CN={own_sam},{}", dc.get("USERS_OU"));
    let admin = dc.search(
        dc.get("BASE_DN"),
        "(sAMAccountName=Administrator)",
        &["objectSid", "objectGUID"],
    );
    let admin_sid = sid_text(&attribute(&admin, "objectSid"));
    let admin_guid = guid_text(&attribute(&admin, "objectGUID"));
    let domain_admins = || {
        dc.search(
            dc.get("BASE_DN"),
            "(sAMAccountName=Domain Admins)",
            &["member"],
        )
    };
    let before = (domain_admins(), dc.snapshot());

    let standin = env.standin.as_ref().unwrap();
    let mut settings = standin.settings();
    settings.default_user = Some("LATCH\\svc_latch".into());
    settings.password_secret = Some("dc-password".into());
    let secrets = env.config.parent().unwrap().join("secrets");
    let mut of_probe = Settings::default();
    of_probe.insert(settings);
    let live = Arc::new(registry::live(
        SecretStore::new(Some(&secrets), None).unwrap(),
        [("probe", &of_probe)],
    ));
    let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let policy = Policy::parse(&[format!("localhost:{}", standin.https)], &[])
        .unwrap()
        .with(
            Cmdlets::parse(
                &strings(&["Get-ADUser"]),
                &strings(&[
                    "Set-ADAccountPassword",
                    "Set-ADAccountExpiration",
                    "Add-ADGroupMember",
                    "Disable-ADAccount",
                    "New-ADUser",
                ]),
            )
            .unwrap(),
        )
        .with(
            Bases::parse(
                &[dc.get("BASE_DN").into()],
                &[dc.get("USERS_OU").into()],
                &[dc.get("GROUPS_OU").into()],
            )
            .unwrap(),
        )
        .with(ServiceAccount("LATCH\\svc_latch".into()));
    let reset = |identity: &str| {
        json!({"cmdlet": "Set-ADAccountPassword", "parameters": [
            ["Identity", {"text": identity}], ["Reset", {"switch": true}],
            ["NewPassword", {"grant-password": true}]]})
    };
    let base = dc.get("BASE_DN");
    // (the call, the error it must get, or None: carried out)
    let cases: Vec<(Value, Option<&str>)> = vec![
        (
            reset("Administrator"),
            Some("not strictly under directory.change"),
        ),
        (
            reset(dc.get("ADMIN_DN")),
            Some("not strictly under directory.change"),
        ),
        (
            reset(&admin_sid),
            Some("not strictly under directory.change"),
        ),
        (
            reset(&admin_guid),
            Some("not strictly under directory.change"),
        ),
        (
            reset("svc_latch"),
            Some("not strictly under directory.change"),
        ),
        (reset("nobody_such"), Some("names 0 directory objects")),
        (
            json!({"cmdlet": "Add-ADGroupMember", "parameters": [
                ["Identity", {"text": "Domain Admins"}], ["Members", {"list": [own_sam]}]]}),
            Some("not at or under directory.groups"),
        ),
        (
            json!({"cmdlet": "Add-ADGroupMember", "parameters": [
                ["Identity", {"text": dc.get("GROUP_ADMINS_DN")}],
                ["Members", {"list": ["Administrator"]}]]}),
            Some("a guest puts only its own accounts into groups"),
        ),
        (
            json!({"cmdlet": "Get-ADUser", "read": true, "parameters": [
                ["LDAPFilter", {"text": "(ms-Mcs-AdmPwd=a*)"}], ["SearchBase", {"text": base}]]}),
            Some("holds secrets"),
        ),
        (
            json!({"cmdlet": "Get-ADUser", "read": true, "parameters": [
                ["LDAPFilter", {"text": "(sAMAccountName=x)"}], ["SearchBase", {"text": base}],
                ["Properties", {"list": ["msLAPS-Password"]}]]}),
            Some("holds secrets"),
        ),
        (
            json!({"cmdlet": "Get-ADUser", "read": true, "parameters": [
                ["LDAPFilter", {"text": "(sAMAccountName=x)"}],
                ["SearchBase", {"text": "DC=elsewhere,DC=test"}]]}),
            Some("not at or under directory.read"),
        ),
        (
            json!({"cmdlet": "Get-ADUser", "read": true, "parameters": [
                ["LDAPFilter", {"text": "(sAMAccountName=x)"}]]}),
            Some("needs -SearchBase"),
        ),
        (
            json!({"cmdlet": "Disable-ADAccount", "parameters": [
                ["Identity", {"text": own_dn}], ["Server", {"text": "evil.example"}]]}),
            Some("takes no parameter -Server"),
        ),
        (
            json!({"cmdlet": "New-ADUser", "parameters": [
                ["Name", {"text": "jit_bnd_leak"}], ["Path", {"text": dc.get("USERS_OU")}],
                ["Description", {"grant-password": true}]]}),
            Some("is not a SecureString"),
        ),
        (
            json!({"cmdlet": "Set-ADAccountExpiration", "parameters": [
                ["Identity", {"text": own_dn}], ["DateTime", {"text": "2999-01-01T00:00:00Z"}]]}),
            Some("after the grant's expiry"),
        ),
        // Within the bounds, named by sAMAccountName: resolved, then sent as its DN.
        (reset(&own_sam), None),
        (
            json!({"cmdlet": "Disable-ADAccount", "parameters": [["Identity", {"text": own_sam}]]}),
            None,
        ),
    ];
    let calls: Vec<Value> = cases.iter().map(|(c, _)| c.clone()).collect();
    let config = json!({"host": "localhost", "port": standin.https, "calls": calls}).to_string();
    let before_calls = standin.calls().len();
    let report = Kit::built("winrm-probe").run_on(
        "probe",
        policy,
        live,
        Export::Grant {
            config,
            request: grant_request("g-1", "latch.test", "Connect", "p@corp.example", EXPIRES),
        },
        CallOptions {
            secrets: CallSecrets {
                grant_password: Some(Secret::new(b"Bounded-Pw-1234!".to_vec())),
                new_service_password: None,
            },
            plan: false,
        },
    );
    let state = match &report.result {
        Ok(Returned::Granted(g)) => g.state.clone(),
        other => panic!("{other:?}"),
    };
    let results: Value = serde_json::from_str(&state).unwrap();
    for (i, (call, expected)) in cases.iter().enumerate() {
        let got = &results[i];
        match expected {
            Some(says) => {
                let error = got["error"].as_str().unwrap_or_default();
                assert!(error.contains(says), "{call}: {got}");
            }
            None => assert!(got["error"].is_null(), "{call}: {got}"),
        }
    }
    // What reached the server: the host's own lookups, and the two calls within bounds, each
    // naming the account by its DN.
    let arrived: Vec<Value> = standin.calls()[before_calls..].to_vec();
    let changes: Vec<(String, String)> = arrived
        .iter()
        .filter(|c| c["cmdlet"] != "Get-ADObject")
        .map(|c| {
            (
                c["cmdlet"].as_str().unwrap().to_string(),
                c["parameters"][0][1]["value"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        changes,
        [
            ("Set-ADAccountPassword".to_string(), own_dn.clone()),
            ("Disable-ADAccount".to_string(), own_dn.clone()),
        ],
        "{arrived:#?}"
    );
    let lookups = arrived
        .iter()
        .filter(|c| c["cmdlet"] == "Get-ADObject")
        .count();
    assert_eq!(lookups, 10, "one read per name resolved: {arrived:#?}");
    // The lookups are in the records, as reads the host made.
    assert!(report.records.iter().any(|r| {
        r.command
            .contains("Get-ADObject -LDAPFilter '(objectSid=\\01")
            && matches!(r.outcome, Outcome::Ok { .. })
    }));
    // The directory is as it was, but for this test's own account; the Administrator's
    // password still works.
    assert_eq!((domain_admins(), dc.snapshot()), before);
    assert_eq!(dc.bind(dc.get("ADMIN_DN"), dc.get("ADMIN_PW")), "OK");
}
