//! `latch serve`: access ends at expiry with nobody touching it; a crash is reconciled; a
//! failed revoke is retried.

use latch::ledger::{Event, GrantRecord, Ledger, State, new_grant_id};

use crate::fleet::{Env, Serve, eventually};

fn ledger(env: &Env) -> Ledger {
    Ledger::open(env.tmp.path()).unwrap()
}

#[test]
fn access_ends_at_expiry_with_nobody_touching_it() {
    let _g = crate::e2e::shared();
    let env = Env::new();
    let _serve = Serve::start(&env);
    let granted = env
        .grant(
            "web-1",
            "e2e-jack@corp.example",
            &["--for", "3s", "--permission", "adm"],
        )
        .unwrap();
    let id = granted["grant_id"].as_str().unwrap().to_string();
    assert!(env.login(&granted, "true").status.success());

    let revoked = eventually(20, || {
        ledger(&env)
            .get(&id)
            .map(|g| g.state == State::Revoked)
            .unwrap_or(false)
    });
    assert!(revoked, "the scheduler did not revoke the expired grant");
    let g = ledger(&env).get(&id).unwrap();
    let lag = g.revoked_at.unwrap().saturating_sub(g.expires_at);
    assert!(lag <= 5, "revoked {lag} s after expiry");
    let by: Vec<String> = ledger(&env)
        .audit_tail(1000)
        .unwrap()
        .into_iter()
        .filter(|r| r.event == "grant.revoked")
        .map(|r| r.actor)
        .collect();
    assert_eq!(by, ["scheduler"]);
    // The account is locked and expired, not only the certificate.
    let chage =
        String::from_utf8_lossy(&env.fleet.admin(1, "sudo chage -l e2e-jack").stdout).into_owned();
    assert!(
        !chage.contains("Account expires\t\t\t\t\t\t: never"),
        "{chage}"
    );
    assert!(!env.login(&granted, "true").status.success());
}

fn interrupted_grant(env: &Env, user: &str, resource: &str) -> GrantRecord {
    let r = GrantRecord {
        grant_id: new_grant_id(),
        integration: "linux".into(),
        resource_id: resource.into(),
        permission: "Default".into(),
        email: format!("{user}@corp.example"),
        requested_username: None,
        public_key:
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHv7fFq0n1o3p5r7t9v1x3z5B7D9F1H3J5L7N9P1R3T5 t"
                .into(),
        // Long before the call deadline: certainly abandoned, not in progress.
        created_at: latch::caps::certs::ca::unix_now() - 3600,
        expires_at: latch::caps::certs::ca::unix_now() + 3600,
        state: State::Granting,
        username: None,
        host: None,
        port: None,
        revoked_at: None,
        last_error: None,
        guest_sha256: "00".repeat(32),
        granting_since: None,
        cleanup_due_at: None,
        cleaned_up_at: None,
        guest_state: None,
    };
    let event = Event {
        actor: "test".into(),
        event: "grant.requested".into(),
        outcome: "pending".into(),
        ..Event::default()
    };
    ledger(env).create(&r, event).unwrap();
    r
}

#[test]
fn a_grant_interrupted_by_a_crash_is_rolled_back_on_start() {
    let _g = crate::e2e::shared();
    let env = Env::new();
    // What a connector killed mid-grant leaves: a `granting` row and a half-made account.
    let out = env.fleet.admin(3, "sudo groupadd -f latch-managed && sudo useradd -m -G latch-managed e2e-kate && sudo usermod -p '*' e2e-kate");
    assert!(out.status.success(), "{out:?}");
    let r = interrupted_grant(&env, "e2e-kate", "web-3");
    let _serve = Serve::start(&env);
    let done = eventually(20, || {
        ledger(&env)
            .get(&r.grant_id)
            .map(|g| g.state == State::Revoked)
            .unwrap_or(false)
    });
    assert!(
        done,
        "the interrupted grant was not rolled back: {:?}",
        ledger(&env).get(&r.grant_id)
    );
    let chage =
        String::from_utf8_lossy(&env.fleet.admin(3, "sudo chage -l e2e-kate").stdout).into_owned();
    assert!(
        !chage.contains("Account expires\t\t\t\t\t\t: never"),
        "the account is expired: {chage}"
    );
}

#[test]
fn a_revoke_that_fails_is_retried_and_stays_visible() {
    let _g = crate::e2e::shared();
    let env = Env::new();
    let r = interrupted_grant(&env, "e2e-liam", "web-down");
    let _serve = Serve::start(&env);
    let retried = eventually(20, || ledger(&env).attempts(&r.grant_id).unwrap_or(0) >= 2);
    let g = ledger(&env).get(&r.grant_id).unwrap();
    assert!(retried, "no retry: {g:?}");
    assert_eq!(g.state, State::Revoking, "still revoking, visibly");
    assert!(
        g.last_error
            .as_deref()
            .unwrap_or("")
            .contains("127.0.10.99"),
        "{:?}",
        g.last_error
    );
}

#[test]
fn grants_expiring_together_on_one_server_all_reach_the_krl() {
    let _g = crate::e2e::shared();
    let env = Env::new();
    // Granted with nobody serving, so all expire before the scheduler sees them and are
    // revoked in the same tick: concurrently across servers, one at a time per server.
    let granted: Vec<serde_json::Value> = (0..4)
        .map(|i| {
            env.grant(
                if i < 3 { "web-2" } else { "web-3" },
                &format!("e2e-krl{i}@corp.example"),
                &["--for", "8s"],
            )
            .unwrap()
        })
        .collect();
    let ids: Vec<String> = granted
        .iter()
        .map(|g| g["grant_id"].as_str().unwrap().to_string())
        .collect();
    let last = granted
        .iter()
        .map(|g| g["expires_at"].as_u64().unwrap())
        .max()
        .unwrap();
    while crate::fleet::now() <= last {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let _serve = Serve::start(&env);
    assert!(eventually(30, || ids.iter().all(|id| ledger(&env)
        .get(id)
        .is_ok_and(|g| g.state == State::Revoked))));
    let krl = String::from_utf8_lossy(
        &env.fleet
            .admin(2, "sudo ssh-keygen -Q -l -f /etc/ssh/latch/revoked_keys")
            .stdout,
    )
    .into_owned();
    for id in &ids[..3] {
        assert!(
            krl.contains(id.as_str()),
            "{id} missing from the KRL:\n{krl}"
        );
    }
}
