//! Fleet benchmarks against real sshd hosts (needs root; run with `make bench-fleet`).
//!
//! (a) one grant + revoke on one host, through a running connector (warm connection pool),
//!     vs the *same commands* — captured from a Latch run — sent over a warm OpenSSH
//!     ControlMaster session, one `ssh` client process per command (the baseline);
//! (b) the same grant + revoke on 20 hosts at once vs on one host.
//!
//! The fleet (20 hosts on 127.0.20.2-21) is started here and stopped at the end.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use latch::caps::CapCall;
use latch::config::Config;
use latch::connector::{Connector, live_connector};
use latch::runtime::{Export, GrantRequest, Identity};

const HOSTS: usize = 20;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

struct Fleet {
    dir: PathBuf,
}

impl Fleet {
    fn up() -> Fleet {
        let dir = repo().join("target/fleet-bench");
        let ok = Command::new("bash")
            .arg(repo().join("tests/fleet/fleet.sh"))
            .args(["up", dir.to_str().unwrap(), &HOSTS.to_string(), "127.0.20"])
            .status()
            .expect("fleet.sh")
            .success();
        assert!(ok, "the bench fleet did not start (needs root: make setup)");
        Fleet { dir }
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(repo().join("tests/fleet/fleet.sh"))
            .args(["down", self.dir.to_str().unwrap()])
            .status();
    }
}

fn setup(fleet: &Fleet, data: &Path) -> Connector {
    let init = Command::new(env!("CARGO_BIN_EXE_latch"))
        .args(["init", "--dir", data.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(init.status.success());
    use base64::Engine;
    let key = std::fs::read(fleet.dir.join("service_key")).unwrap();
    std::fs::write(
        data.join("secrets/fleet-key"),
        base64::engine::general_purpose::STANDARD.encode(key),
    )
    .unwrap();
    let guest = latch_testkit::guest_path("ssh_servers");
    let sha = latch::runtime::sha256_hex(&std::fs::read(&guest).unwrap());
    let servers: Vec<String> = (1..=HOSTS)
        .map(|i| format!("{{ name = \"web-{i}\", host = \"127.0.20.{}\" }}", i + 1))
        .collect();
    let config = data.join("latch.toml");
    std::fs::write(
        &config,
        format!(
            "[runtime]\nmax_concurrent_calls = 64\n[[integration]]\nname = \"linux\"\nguest = \"{}\"\nsha256 = \"{sha}\"\nallow = [\"127.0.20.0/24:22\"]\n[integration.ssh]\nkey_secret = \"fleet-key\"\nknown_hosts = \"{}\"\n[integration.config]\nservers = [{}]\nuser_groups = [\"Default\", \"adm\"]\n",
            guest.display(),
            fleet.dir.join("known_hosts").display(),
            servers.join(", ")
        ),
    )
    .unwrap();
    live_connector(&Config::load(&config).unwrap()).unwrap()
}

fn request(host: usize, n: u64) -> GrantRequest {
    GrantRequest {
        grant_id: format!("g-bench-{host}-{n}"),
        resource_id: format!("web-{host}"),
        permission: "adm".into(),
        identity: Identity {
            email: "bench@corp.example".into(),
            username: None,
        },
        public_key: Some(
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHv7fFq0n1o3p5r7t9v1x3z5B7D9F1H3J5L7N9P1R3T5 bench".into(),
        ),
        expires_at: latch::caps::certs::ca::unix_now() + 3600,
    }
}

/// Grant then revoke on `host`; returns the capability calls made.
async fn grant_revoke(connector: &Connector, host: usize, n: u64) -> Vec<CapCall> {
    let (integration, ic) = connector.integration("linux").unwrap();
    let req = request(host, n);
    let mut calls = Vec::new();
    for export in [
        Export::Grant {
            config: ic.config_json.clone(),
            request: req.clone(),
        },
        Export::Revoke {
            config: ic.config_json.clone(),
            request: req,
        },
    ] {
        let report = integration.call(connector.runtime(), export).await;
        assert!(report.result.is_ok(), "{:?}", report.result);
        calls.extend(report.records.into_iter().map(|r| r.call));
    }
    calls
}

/// A warm ControlMaster session to one host, as the service user.
struct ControlMaster {
    socket: PathBuf,
    args: Vec<String>,
}

impl ControlMaster {
    fn open(fleet: &Fleet, data: &Path, host: usize) -> ControlMaster {
        let socket = data.join(format!("cm{host}.sock"));
        let args: Vec<String> = [
            "-i",
            fleet.dir.join("service_key").to_str().unwrap(),
            "-o",
            &format!(
                "UserKnownHostsFile={}",
                fleet.dir.join("known_hosts").display()
            ),
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            &format!("ControlPath={}", socket.display()),
            &format!("apono@127.0.20.{}", host + 1),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let ok = Command::new("ssh")
            .args(["-o", "ControlMaster=yes", "-o", "ControlPersist=300", "-fN"])
            .args(&args)
            .status()
            .unwrap()
            .success();
        assert!(ok, "ControlMaster did not start");
        ControlMaster { socket, args }
    }

    /// Run each ssh.exec of `calls` over the master, exactly as Latch quoted it.
    fn replay(&self, calls: &[CapCall]) {
        for call in calls {
            let CapCall::SshExec { argv, stdin, .. } = call else {
                continue;
            };
            let mut child = Command::new("ssh")
                .args(&self.args)
                .arg(latch::caps::ssh::quote_argv(argv))
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            child.stdin.take().unwrap().write_all(stdin).unwrap();
            child.wait().unwrap();
        }
    }
}

impl Drop for ControlMaster {
    fn drop(&mut self) {
        let _ = Command::new("ssh")
            .args(["-O", "exit", "-o"])
            .arg(format!("ControlPath={}", self.socket.display()))
            .arg("x")
            .output();
    }
}

fn benches(c: &mut Criterion) {
    let fleet = Fleet::up();
    let data = tempfile::tempdir().unwrap();
    let connector = Arc::new(setup(&fleet, data.path()));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    // Warm up: every host trusts the CA and has the account; every connection is open.
    let mut n = 0u64;
    rt.block_on(on_hosts(&connector, 1..=HOSTS, 0));
    let steady = rt.block_on(grant_revoke(&connector, 1, 1));
    let ssh_calls = steady
        .iter()
        .filter(|c| matches!(c, CapCall::SshExec { .. }))
        .count();
    eprintln!("one grant + revoke (steady state) = {ssh_calls} ssh commands");

    let master = ControlMaster::open(&fleet, data.path(), 1);
    let masters: Vec<ControlMaster> = (1..=HOSTS)
        .map(|h| ControlMaster::open(&fleet, data.path(), h))
        .collect();
    let mut group = c.benchmark_group(format!("grant+revoke, 1 host ({ssh_calls} ssh commands)"));
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(15));
    group.bench_function("latch, running connector (warm pool)", |b| {
        b.iter(|| {
            n += 1;
            rt.block_on(grant_revoke(&connector, 1, n))
        })
    });
    group.bench_function("same commands over warm ControlMaster (baseline)", |b| {
        b.iter(|| master.replay(&steady))
    });
    group.finish();

    let mut group = c.benchmark_group("grant+revoke, hosts at once");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));
    group.bench_function("1 host (baseline)", |b| {
        b.iter(|| {
            n += 1;
            rt.block_on(grant_revoke(&connector, 1, n))
        })
    });
    group.bench_function(
        format!("{HOSTS} hosts, same commands over {HOSTS} warm ControlMasters at once (baseline)"),
        |b| {
            b.iter(|| {
                std::thread::scope(|scope| {
                    for m in &masters {
                        let steady = &steady;
                        scope.spawn(move || m.replay(steady));
                    }
                })
            })
        },
    );
    group.bench_function(format!("{HOSTS} hosts concurrently"), |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                n += 1;
                let k = n;
                rt.block_on(on_hosts(&connector, 1..=HOSTS, k));
            }
            start.elapsed()
        })
    });
    group.finish();
    drop(master);
    drop(masters);
}

/// Grant + revoke on every host of `hosts` at once, each on its own task.
async fn on_hosts(connector: &Arc<Connector>, hosts: std::ops::RangeInclusive<usize>, n: u64) {
    let mut set = tokio::task::JoinSet::new();
    for h in hosts {
        let c = connector.clone();
        set.spawn(async move { grant_revoke(&c, h, n).await });
    }
    while let Some(r) = set.join_next().await {
        r.expect("task");
    }
}

criterion_group!(fleet, benches);
criterion_main!(fleet);
