//! Fleet benchmarks against real sshd hosts (needs root; run with `make bench-fleet`).
//!
//! (a) one grant + revoke on one host, through a running connector (warm connection pool),
//!     vs the *same commands* — captured from a Latch run — sent over a warm OpenSSH
//!     ControlMaster session, one `ssh` client process per command (the baseline);
//! (b) the same grant + revoke on 20 hosts at once vs on one host;
//! (c) grant latency through the HTTP API of a running `latch serve` (p50/p99), vs the guest's
//!     grant alone in-process (same warm pool, no HTTP, no ledger) and vs a cold CLI
//!     `latch grant` (process start, guest compile, first handshake), all on host 1.
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
        state: None,
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
            let Some(latch::caps::ssh::Exec { argv, stdin, .. }) = call.get() else {
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
        .filter(|c| c.get::<latch::caps::ssh::Exec>().is_some())
        .count();
    eprintln!("one grant + revoke (steady state) = {ssh_calls} ssh commands");

    api_latency(data.path(), &connector, &rt);

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

/// One HTTP/1.1 request to 127.0.0.1:`port`; the status and the body.
fn http(port: u16, method: &str, path: &str, token: &str, body: &str) -> (u16, String) {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/json\r\nAuthorization: Bearer {token}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = String::new();
    let _ = s.read_to_string(&mut raw);
    let status = raw
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = raw
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn report(label: &str, mut v: Vec<Duration>) {
    v.sort();
    println!(
        "{label:<58} p50 {:>8.1} ms  p99 {:>8.1} ms  (n = {})",
        percentile(&v, 0.5).as_secs_f64() * 1e3,
        percentile(&v, 0.99).as_secs_f64() * 1e3,
        v.len()
    );
}

/// (c): see the module docs.
fn api_latency(data: &Path, connector: &Arc<Connector>, rt: &tokio::runtime::Runtime) {
    const N: usize = 50;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = data.join("latch.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("listen = \"127.0.0.1:{port}\"\n{text}")).unwrap();
    let latch = env!("CARGO_BIN_EXE_latch");
    let out = Command::new(latch)
        .args([
            "token",
            "create",
            "--config",
            config.to_str().unwrap(),
            "bench",
            "--all-integrations",
            "--revoke-others",
            "--read-audit",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let token = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let mut serve = Command::new(latch)
        .args(["serve", "--config", config.to_str().unwrap()])
        .env("LATCH_LOG", "off")
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        std::thread::sleep(Duration::from_millis(50));
    }
    let key = request(1, 0).public_key.unwrap();
    let body = serde_json::json!({"integration": "linux", "resource": "web-1", "permission": "adm",
        "user": "bench-api@corp.example", "duration": 600, "public_key": key})
    .to_string();
    let mut api = Vec::new();
    for i in 0..N + 3 {
        let start = Instant::now();
        let (status, reply) = http(port, "POST", "/v1/grants", &token, &body);
        let took = start.elapsed();
        assert_eq!(status, 201, "{reply}");
        if i >= 3 {
            api.push(took); // the first ones warm the connector's pool
        }
        let id = serde_json::from_str::<serde_json::Value>(&reply).unwrap()["grant_id"]
            .as_str()
            .unwrap()
            .to_string();
        let (status, reply) = http(port, "POST", &format!("/v1/grants/{id}/revoke"), &token, "");
        assert_eq!(status, 200, "{reply}");
    }
    let _ = serve.kill();
    let _ = serve.wait();

    let (integration, ic) = connector.integration("linux").unwrap();
    let mut guest_only = Vec::new();
    for n in 0..N as u64 {
        let req = request(1, 10_000 + n);
        let start = Instant::now();
        let report = rt.block_on(integration.call(
            connector.runtime(),
            Export::Grant {
                config: ic.config_json.clone(),
                request: req.clone(),
            },
        ));
        guest_only.push(start.elapsed());
        assert!(report.result.is_ok(), "{:?}", report.result);
        let undo = rt.block_on(integration.call(
            connector.runtime(),
            Export::Revoke {
                config: ic.config_json.clone(),
                request: req,
            },
        ));
        assert!(undo.result.is_ok());
    }

    let keyfile = data.join("bench.pub");
    std::fs::write(&keyfile, format!("{key}\n")).unwrap();
    let mut cli = Vec::new();
    for _ in 0..10 {
        let start = Instant::now();
        let out = Command::new(latch)
            .args([
                "grant",
                "--config",
                config.to_str().unwrap(),
                "--integration",
                "linux",
            ])
            .args([
                "--resource",
                "web-1",
                "--permission",
                "adm",
                "--for",
                "10m",
                "--json",
            ])
            .args(["--user", "bench-cli@corp.example", "--public-key"])
            .arg(&keyfile)
            .output()
            .unwrap();
        cli.push(start.elapsed());
        assert!(out.status.success(), "{out:?}");
        let id = serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["grant_id"]
            .as_str()
            .unwrap()
            .to_string();
        let out = Command::new(latch)
            .args(["revoke", "--config", config.to_str().unwrap(), &id])
            .output()
            .unwrap();
        assert!(out.status.success());
    }
    println!("\n(c) grant latency on host 1 ({N} grants, each revoked before the next)");
    report("API: POST /v1/grants to a running latch serve", api);
    report(
        "baseline: the guest's grant alone, in-process, warm pool",
        guest_only,
    );
    report(
        "baseline: cold CLI `latch grant` (new process each time)",
        cli,
    );
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
