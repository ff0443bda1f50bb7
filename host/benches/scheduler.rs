//! `latch serve` under a big ledger (`make bench`; no root, no servers): idle memory and the
//! scheduler's wake-up lag, with 100,000 active grants vs an empty ledger (the baseline).
//!
//! Each run starts the release `latch serve` on a fresh data dir whose integration points at
//! 500 servers on a closed local port, fills the ledger in bulk, and lets 1,000 grants expire
//! at the same second. It reports the connector's resident memory while idle (`VmRSS`, before
//! the expiry), its peak (`VmHWM`), and for each expired grant the delay from `expires_at` to
//! the scheduler's `revoke.requested` audit record (the revoke itself then fails fast — nothing
//! listens — which is what makes the wake-up measurable without 500 servers).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use latch::ledger::{Ledger, new_grant_id};
use rusqlite::params;

const DUE: usize = 1_000;
const SERVERS: usize = 500;

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

fn setup(dir: &Path, port: u16) {
    let out = Command::new(env!("CARGO_BIN_EXE_latch"))
        .args(["init", "--dir", dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    std::fs::write(dir.join("known_hosts"), "").unwrap();
    std::fs::write(dir.join("secrets/bench-key"), "bm90IGEga2V5").unwrap();
    let guest = latch_testkit::guest_path("ssh_servers");
    let sha = latch::runtime::sha256_hex(&std::fs::read(&guest).unwrap());
    let servers: Vec<String> = (0..SERVERS)
        .map(|i| format!("{{ name = \"web-{i}\", host = \"127.0.0.1\", port = 9 }}"))
        .collect();
    std::fs::write(
        dir.join("latch.toml"),
        format!(
            "listen = \"127.0.0.1:{port}\"\n[[integration]]\nname = \"linux\"\nguest = \"{}\"\nsha256 = \"{sha}\"\nallow = [\"127.0.0.1:9\"]\nmax_duration = \"30d\"\n[integration.ssh]\nkey_secret = \"bench-key\"\nknown_hosts = \"known_hosts\"\n[integration.config]\nservers = [{}]\n",
            guest.display(),
            servers.join(", ")
        ),
    )
    .unwrap();
}

/// `background` grants active for a day, and [`DUE`] expiring at `expiry`.
fn fill(dir: &Path, background: usize, expiry: u64) {
    drop(Ledger::open(dir).unwrap());
    let mut conn = rusqlite::Connection::open(dir.join("latch.db")).unwrap();
    let tx = conn.transaction().unwrap();
    {
        let mut insert = tx
            .prepare(
                "INSERT INTO grants (grant_id, integration, resource_id, permission, email,
                    public_key, created_at, expires_at, state, guest_sha256, username)
                 VALUES (?1, 'linux', ?2, 'Default', ?3, ?4, ?5, ?6, 'active', ?7, ?8)",
            )
            .unwrap();
        for i in 0..background + DUE {
            let expires = if i < DUE { expiry } else { expiry + 86_400 };
            insert
                .execute(params![
                    new_grant_id(),
                    format!("web-{}", i % SERVERS),
                    format!("u{i}@corp.example"),
                    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHv7fFq0n1o3p5r7t9v1x3z5B7D9F1H3J5L7N9P1R3T5",
                    now() as i64,
                    expires as i64,
                    "00".repeat(32),
                    format!("u{i}")
                ])
                .unwrap();
        }
    }
    tx.commit().unwrap();
}

struct Run {
    idle_rss_kib: u64,
    peak_kib: u64,
    lags_ms: Vec<i64>,
}

fn run(background: usize) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    setup(dir.path(), port);
    let expiry = now() + 12;
    fill(dir.path(), background, expiry);
    let mut serve = Command::new(env!("CARGO_BIN_EXE_latch"))
        .args(["serve", "--config"])
        .arg(dir.path().join("latch.toml"))
        .env("LATCH_LOG", "off")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = serve.id();
    // Idle: started, a few ticks done, nothing due yet.
    std::thread::sleep(Duration::from_secs(6));
    let idle_rss_kib = status_kib(pid, "VmRSS:");
    while now() < expiry + 10 {
        std::thread::sleep(Duration::from_millis(500));
    }
    let peak_kib = status_kib(pid, "VmHWM:");
    let _ = serve.kill();
    let _ = serve.wait();
    let conn = rusqlite::Connection::open(dir.path().join("latch.db")).unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT MIN(a.time) - g.expires_at * 1000 FROM audit a JOIN grants g USING (grant_id)
             WHERE a.event = 'revoke.requested' AND a.actor = 'scheduler' GROUP BY g.grant_id",
        )
        .unwrap();
    let mut lags_ms: Vec<i64> = stmt
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    lags_ms.sort();
    Run {
        idle_rss_kib,
        peak_kib,
        lags_ms,
    }
}

fn pct(v: &[i64], p: f64) -> i64 {
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    println!(
        "latch serve, {DUE} grants expiring in the same second (on {SERVERS} servers, closed port)"
    );
    println!(
        "{:<34} {:>10} {:>10} {:>9} {:>9} {:>9} {:>8}",
        "ledger", "idle RSS", "peak RSS", "lag p50", "lag p99", "lag max", "woken"
    );
    for (label, background) in [
        ("baseline: only the 1,000 due", 0),
        ("100,000 active + the 1,000 due", 100_000),
    ] {
        let r = run(background);
        assert!(!r.lags_ms.is_empty(), "no revoke was attempted");
        println!(
            "{label:<34} {:>7.1} MiB {:>6.1} MiB {:>6} ms {:>6} ms {:>6} ms {:>8}",
            r.idle_rss_kib as f64 / 1024.0,
            r.peak_kib as f64 / 1024.0,
            pct(&r.lags_ms, 0.5),
            pct(&r.lags_ms, 0.99),
            r.lags_ms.last().unwrap(),
            r.lags_ms.len()
        );
    }
}
