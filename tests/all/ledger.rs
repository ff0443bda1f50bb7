//! The ledger on a real SQLite file: the state machine, and the audit chain against tampering
//! done with plain SQL, as an attacker with file access would.

use std::process::Command;

use latch::ledger::{Event, GrantRecord, Ledger, State, new_grant_id};

pub(crate) fn record() -> GrantRecord {
    GrantRecord {
        grant_id: new_grant_id(),
        integration: "linux".into(),
        resource_id: "web-1".into(),
        permission: "Default".into(),
        email: "alice@corp.example".into(),
        requested_username: None,
        public_key: "ssh-ed25519 AAAA alice".into(),
        created_at: 1,
        expires_at: 2,
        state: State::Granting,
        username: None,
        host: None,
        port: None,
        revoked_at: None,
        last_error: None,
        guest_sha256: "ab".repeat(32),
        granting_since: None,
        cleanup_due_at: None,
        cleaned_up_at: None,
        guest_state: None,
    }
}

fn ev(name: &str) -> Event {
    Event {
        actor: "alice@corp.example".into(),
        event: name.into(),
        outcome: "ok".into(),
        detail: serde_json::json!({"argv": ["sudo", "-n", "true"]}),
        ..Event::default()
    }
}

#[test]
fn grants_follow_the_state_machine_and_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path()).unwrap();
    let mut r = record();
    ledger.create(&r, ev("grant.requested")).unwrap();
    assert!(
        ledger.create(&r, ev("grant.requested")).is_err(),
        "ids are unique"
    );

    r.state = State::Revoked;
    let err = ledger
        .update(&r, State::Granting, ev("x"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a transition"), "{err}");

    r.state = State::Active;
    r.username = Some("alice".into());
    ledger
        .update(&r, State::Granting, ev("grant.active"))
        .unwrap();
    // A second writer still believing the grant is `granting` is refused.
    let err = ledger
        .update(&r, State::Granting, ev("grant.active"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("no longer granting"), "{err}");

    drop(ledger);
    let ledger = Ledger::open(dir.path()).unwrap();
    let back = ledger.get(&r.grant_id).unwrap();
    assert_eq!(
        (back.state, back.username.as_deref()),
        (State::Active, Some("alice"))
    );
    assert_eq!(ledger.list(Some(State::Active)).unwrap().len(), 1);
    assert!(ledger.list(Some(State::Revoked)).unwrap().is_empty());
    // Only what happened is audited: the refused create and updates rolled back whole.
    assert_eq!(ledger.audit_verify().unwrap(), Ok(2));
}

fn verify_cli(dir: &std::path::Path) -> (Option<i32>, String) {
    let config = dir.join("latch.toml");
    std::fs::write(&config, "data_dir = \".\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_latch"))
        .args(["audit", "verify", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn ledger_with_five_records() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path()).unwrap();
    for i in 0..5 {
        ledger.audit(ev(&format!("capability-{i}"))).unwrap();
    }
    dir
}

fn sql(dir: &std::path::Path, statement: &str) {
    let conn = rusqlite::Connection::open(dir.join("latch.db")).unwrap();
    conn.execute_batch(statement).unwrap();
}

#[test]
fn audit_verify_catches_edits_deletions_and_reorders() {
    let dir = ledger_with_five_records();
    let (code, out) = verify_cli(dir.path());
    assert_eq!(
        (code, out.contains("ok: 5 audit records")),
        (Some(0), true),
        "{out}"
    );

    let edited = ledger_with_five_records();
    sql(
        edited.path(),
        "UPDATE audit SET outcome = 'refused' WHERE seq = 3",
    );
    let (code, out) = verify_cli(edited.path());
    assert_eq!(code, Some(1));
    assert!(
        out.contains("audit record 3") && out.contains("edited"),
        "{out}"
    );

    let deleted = ledger_with_five_records();
    sql(deleted.path(), "DELETE FROM audit WHERE seq = 2");
    let (code, out) = verify_cli(deleted.path());
    assert_eq!(code, Some(1));
    assert!(
        out.contains("audit record 2") && out.contains("deleted"),
        "{out}"
    );

    let reordered = ledger_with_five_records();
    sql(
        reordered.path(),
        "UPDATE audit SET seq = 100 WHERE seq = 2; UPDATE audit SET seq = 2 WHERE seq = 3; UPDATE audit SET seq = 3 WHERE seq = 100;",
    );
    let (code, out) = verify_cli(reordered.path());
    assert_eq!(code, Some(1));
    assert!(out.contains("audit record 2"), "{out}");
}

fn verify_against(dir: &std::path::Path, copy: &std::path::Path) -> (Option<i32>, String) {
    let config = dir.join("latch.toml");
    std::fs::write(&config, "data_dir = \".\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_latch"))
        .args(["audit", "verify", "--config", config.to_str().unwrap()])
        .arg("--against")
        .arg(copy)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn forwarded_copy_resumes_after_a_torn_line_and_catches_a_cut_off_tail() {
    use latch::ledger::forward::Forwarder;
    let dir = ledger_with_five_records();
    let copy = dir.path().join("audit.jsonl");
    let ledger = Ledger::open(dir.path()).unwrap();
    let mut f = Forwarder::open(&copy).unwrap();
    assert_eq!(f.forward(&ledger).unwrap(), 5);
    assert_eq!(f.forward(&ledger).unwrap(), 0, "nothing twice");
    drop(f);

    // A crash mid-write leaves a torn line: reopening cuts it and carries on from record 5.
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&copy)
        .unwrap();
    file.write_all(b"{\"seq\":6,\"ti").unwrap();
    drop(file);
    ledger.audit(ev("capability-5")).unwrap();
    ledger.audit(ev("capability-6")).unwrap();
    let mut f = Forwarder::open(&copy).unwrap();
    assert_eq!(f.forward(&ledger).unwrap(), 2);
    let text = std::fs::read_to_string(&copy).unwrap();
    let seqs: Vec<i64> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["seq"]
                .as_i64()
                .unwrap()
        })
        .collect();
    assert_eq!(seqs, (1..=7).collect::<Vec<_>>());
    drop(ledger);

    let (code, out) = verify_against(dir.path(), &copy);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("all 7 records"), "{out}");

    // Cutting records off the end leaves a valid chain; only the copy shows it.
    sql(dir.path(), "DELETE FROM audit WHERE seq >= 6");
    let (code, out) = verify_cli(dir.path());
    assert_eq!(
        code,
        Some(0),
        "the chain alone cannot see a cut tail: {out}"
    );
    let (code, out) = verify_against(dir.path(), &copy);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("audit record 6") && out.contains("cut off"),
        "{out}"
    );

    // An edit that also rewrote the hashes of the ledger's chain is caught by the copy.
    let edited = ledger_with_five_records();
    let copy = edited.path().join("audit.jsonl");
    let ledger = Ledger::open(edited.path()).unwrap();
    Forwarder::open(&copy).unwrap().forward(&ledger).unwrap();
    drop(ledger);
    sql(edited.path(), "DELETE FROM audit WHERE seq >= 4");
    let ledger = Ledger::open(edited.path()).unwrap();
    let mut forged = ev("capability-3");
    forged.outcome = "refused".into();
    ledger.audit(forged).unwrap();
    ledger.audit(ev("capability-4")).unwrap();
    drop(ledger);
    assert_eq!(verify_cli(edited.path()).0, Some(0), "a re-chained forgery");
    let (code, out) = verify_against(edited.path(), &copy);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("audit record 4") && out.contains("edited"),
        "{out}"
    );
}

/// The ledger and its `-wal` and `-shm` files are 0600 from their creation, whatever the
/// process umask (here the usual 022): grants name people, accounts and servers.
#[test]
fn the_ledger_files_are_private_from_the_start() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path()).unwrap();
    ledger.create(&record(), ev("grant.requested")).unwrap();
    for name in ["latch.db", "latch.db-wal", "latch.db-shm"] {
        let mode = std::fs::metadata(dir.path().join(name))
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{name} has mode {:o}", mode & 0o777);
    }
}

/// A ledger written by a newer release (a schema version this binary does not know) is
/// refused, untouched: a downgrade must not write into a database it does not understand.
#[test]
fn a_ledger_newer_than_the_binary_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(Ledger::open(dir.path()).unwrap());
    let path = dir.path().join("latch.db");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    let before = std::fs::read(&path).unwrap();
    let err = match Ledger::open(dir.path()) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("a newer ledger was opened"),
    };
    assert!(
        err.contains("schema version 99") && err.contains("newer"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "the file was changed"
    );
}
