//! Crash tests: `kill -9` at random moments, through many grant/revoke cycles.
//!
//! Grants run as separate `latch grant` processes, each killed with SIGKILL after a random
//! delay (often mid-grant); every tenth cycle the `latch serve` connector is killed too and
//! restarted. Afterwards every grant must reach a final state, no certificate that was
//! issued may still log in once its grant expired, and the audit chain must verify.
//! `LATCH_CRASH_CYCLES` sets the number of cycles (default 50).

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use latch::ledger::{Ledger, State};

use crate::fleet::{Env, Serve, eventually, latch, ssh_opts};

#[test]
fn kill_9_at_random_moments_leaves_no_access_behind() {
    let _g = crate::e2e::shared();
    let cycles: usize = std::env::var("LATCH_CRASH_CYCLES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(50);
    // Kill moments come from a seeded generator; the seed is printed so a failure can be
    // replayed with LATCH_CRASH_SEED.
    let seed: u64 = std::env::var("LATCH_CRASH_SEED")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("crash test: LATCH_CRASH_SEED={seed} LATCH_CRASH_CYCLES={cycles}");
    let mut state = seed;
    let mut next_wait_ms = move || splitmix64(&mut state) % 2500;
    let env = Env::new();
    // A short call deadline, so an abandoned `granting` row is reconciled within seconds.
    let config = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(
        &env.config,
        config.replace(
            "max_duration = \"8h\"",
            "max_duration = \"8h\"\ndeadline = \"5s\"",
        ) + "\n[audit]\nforward_file = \"audit.jsonl\"\n",
    )
    .unwrap();
    let key = env.tmp.path().join("crash");
    assert!(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", ""])
            .arg("-f")
            .arg(&key)
            .status()
            .unwrap()
            .success()
    );

    let mut serve = Some(Serve::start(&env));
    let mut killed = 0;
    for i in 0..cycles {
        let out = env.tmp.path().join(format!("out{i}"));
        let mut child = Command::new(env!("CARGO_BIN_EXE_latch"))
            .args([
                "grant",
                "--config",
                env.config.to_str().unwrap(),
                "--integration",
                "linux",
            ])
            .arg(format!("--resource=web-{}", i % 3 + 1))
            .arg(format!("--user=crash{i}@corp.example"))
            .args(["--for", "2s", "--permission", "adm", "--public-key"])
            .arg(key.with_extension("pub"))
            .arg("--out")
            .arg(&out)
            .env("LATCH_LOG", "off")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // A grant takes about a second here: some are killed mid-way, some finish.
        std::thread::sleep(Duration::from_millis(next_wait_ms()));
        let _ = child.kill(); // SIGKILL
        let status = child.wait().unwrap();
        if status.signal() == Some(9) {
            killed += 1;
        }
        if i % 10 == 9 {
            drop(serve.take()); // SIGKILL the connector, then start a new one
            serve = Some(Serve::start(&env));
        }
    }
    eprintln!("{cycles} cycles, {killed} grant processes killed before they finished");

    let ledger = Ledger::open(env.tmp.path()).unwrap();
    let settled = eventually(90, || {
        ledger
            .list(None)
            .unwrap()
            .iter()
            .all(|g| matches!(g.state, State::Revoked | State::Failed))
    });
    let states: Vec<(String, State)> = ledger
        .list(None)
        .unwrap()
        .into_iter()
        .map(|g| (g.grant_id, g.state))
        .collect();
    assert!(settled, "grants left unsettled: {states:?}");

    // Grants that became active were revoked within 5 s of their expiry, crashes included.
    for g in ledger
        .list(Some(State::Revoked))
        .unwrap()
        .iter()
        .filter(|g| g.username.is_some())
    {
        let lag = g.revoked_at.unwrap().saturating_sub(g.expires_at);
        assert!(
            lag <= 5,
            "{} was revoked {lag} s after it expired",
            g.grant_id
        );
    }

    // Every certificate that was written must be refused now (each grant was for 2 s).
    let mut checked = 0;
    for i in 0..cycles {
        let dir = env.tmp.path().join(format!("out{i}"));
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for cert in entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.to_string_lossy().ends_with("-cert.pub"))
        {
            let out = Command::new("ssh")
                .args(ssh_opts(&env.fleet.known_hosts()))
                .arg("-i")
                .arg(&key)
                .arg("-o")
                .arg(format!("CertificateFile={}", cert.display()))
                .arg(format!("crash{i}@127.0.10.{}", i % 3 + 2))
                .arg("true")
                .output()
                .unwrap();
            assert!(!out.status.success(), "crash{i} can still log in");
            checked += 1;
        }
    }
    eprintln!("{checked} issued certificates checked: all refused");
    assert!(
        killed > 0 && checked > 0,
        "the run must include both killed and finished grants"
    );
    // The forwarded copy, written by connectors killed at random, has every record once.
    let copy = env.tmp.path().join("audit.jsonl");
    let total = ledger.audit_tail(1).unwrap()[0].seq as usize;
    assert!(
        eventually(10, || std::fs::read_to_string(&copy)
            .is_ok_and(|t| t.lines().count() == total)),
        "the forwarded copy did not catch up with {total} records"
    );
    drop(serve);
    let out = latch(&[
        "audit",
        "verify",
        "--config",
        env.config.to_str().unwrap(),
        "--against",
        copy.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// SplitMix64: a small, well-known generator; enough to replay kill moments from a seed.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
