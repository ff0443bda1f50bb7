//! Ledger benchmarks (`make bench`; no root, no servers).
//!
//! (a) durable grant records: what one grant costs the ledger on a real file (WAL,
//!     `synchronous = FULL`): the `granting` row and its audit record, then the move to
//!     `active` with its audit record — two fsync'd transactions — vs the baseline of one bare
//!     `INSERT` of the same row in its own transaction on a file with the same settings;
//! (b) the scheduler's per-tick query (`due`) with 100,000 active grants vs 1,000, 100 of them
//!     due in each: what a tick costs as the ledger grows.

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use latch::ledger::{Event, GrantRecord, Ledger, State, new_grant_id};
use rusqlite::params;

fn record(expires_at: u64) -> GrantRecord {
    GrantRecord {
        grant_id: new_grant_id(),
        integration: "linux".into(),
        resource_id: format!("web-{}", rand::random::<u16>() % 500),
        permission: "adm".into(),
        email: format!("{}@corp.example", new_grant_id()),
        requested_username: None,
        public_key:
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHv7fFq0n1o3p5r7t9v1x3z5B7D9F1H3J5L7N9P1R3T5 bench"
                .into(),
        created_at: 1,
        expires_at,
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

fn event(name: &str, r: &GrantRecord) -> Event {
    Event {
        actor: "bench@corp.example".into(),
        event: name.into(),
        grant_id: Some(r.grant_id.clone()),
        integration: Some(r.integration.clone()),
        guest_sha256: Some(r.guest_sha256.clone()),
        detail: serde_json::json!({"resource": r.resource_id, "expires_at": r.expires_at}),
        outcome: "ok".into(),
        ..Event::default()
    }
}

/// A ledger holding `active` grants, `due` of them expired at `now`, inserted in bulk (one
/// transaction; the audit records are not needed for the query).
fn ledger_with(dir: &std::path::Path, active: usize, due: usize, now: u64) -> Ledger {
    let ledger = Ledger::open(dir).unwrap();
    let mut conn = rusqlite::Connection::open(dir.join("latch.db")).unwrap();
    let tx = conn.transaction().unwrap();
    {
        let mut insert = tx
            .prepare(
                "INSERT INTO grants (grant_id, integration, resource_id, permission, email,
                    public_key, created_at, expires_at, state, guest_sha256, username)
                 VALUES (?1, 'linux', ?2, 'adm', ?3, 'ssh-ed25519 AAAA', 1, ?4, 'active', ?5, ?6)",
            )
            .unwrap();
        for i in 0..active {
            let expires = if i < due {
                now - 1
            } else {
                now + 3600 + i as u64
            };
            insert
                .execute(params![
                    new_grant_id(),
                    format!("web-{}", i % 500),
                    format!("u{i}@corp.example"),
                    expires as i64,
                    "ab".repeat(32),
                    format!("u{i}")
                ])
                .unwrap();
        }
    }
    tx.commit().unwrap();
    ledger
}

fn benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("durable grant record (WAL, synchronous=FULL)");
    group.measurement_time(Duration::from_secs(10));
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path()).unwrap();
    group.bench_function(
        "latch: granting row + audit, then active + audit (2 transactions)",
        |b| {
            b.iter(|| {
                let mut r = record(10_000);
                ledger.create(&r, event("grant.requested", &r)).unwrap();
                r.state = State::Active;
                r.username = Some("alice".into());
                ledger
                    .update(&r, State::Granting, event("grant.active", &r))
                    .unwrap();
            })
        },
    );
    let base = tempfile::tempdir().unwrap();
    let conn = rusqlite::Connection::open(base.path().join("bare.db")).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.pragma_update(None, "synchronous", "FULL").unwrap();
    conn.execute_batch(
        "CREATE TABLE grants (grant_id TEXT PRIMARY KEY, integration TEXT, resource_id TEXT,
            permission TEXT, email TEXT, public_key TEXT, created_at INTEGER, expires_at INTEGER,
            state TEXT, guest_sha256 TEXT)",
    )
    .unwrap();
    group.bench_function(
        "baseline: one bare INSERT of the row (1 transaction)",
        |b| {
            b.iter(|| {
                let r = record(10_000);
                conn.execute(
                    "INSERT INTO grants VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                    params![
                        r.grant_id,
                        r.integration,
                        r.resource_id,
                        r.permission,
                        r.email,
                        r.public_key,
                        r.created_at as i64,
                        r.expires_at as i64,
                        "active",
                        r.guest_sha256
                    ],
                )
                .unwrap();
            })
        },
    );
    group.finish();

    let now = 2_000_000_000;
    let mut group = c.benchmark_group("scheduler tick query (due grants)");
    for active in [1_000usize, 100_000] {
        let dir = tempfile::tempdir().unwrap();
        let ledger = ledger_with(dir.path(), active, 100, now);
        assert_eq!(ledger.due(now).unwrap().len(), 100);
        group.bench_function(format!("{active} active grants, 100 due"), |b| {
            b.iter(|| ledger.due(now).unwrap())
        });
        group.bench_function(format!("{active} active grants, cleanup_due"), |b| {
            b.iter(|| ledger.cleanup_due(now).unwrap())
        });
    }
    group.finish();
}

criterion_group!(ledger, benches);
criterion_main!(ledger);
