//! One WinRM cmdlet round trip (`make bench`; no root): Latch's transport vs pywinrm's
//! `Session.run_ps`, in the same run, against the same Windows stand-in
//! (`tests/winrm/standin.py`), with the same script: NTLM with message encryption over HTTP,
//! and NTLM (with channel binding) over HTTPS; cold (a new connection and login each time)
//! and warm (a connection already logged in; Latch also keeps its shell open, pywinrm opens
//! and deletes one per `run_ps`). The stand-in's own time is in both columns.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use latch::caps::ParamValue;
use latch::caps::Secret;
use latch::caps::table::tls_config;
use latch::caps::winrm::pool::{WinrmPool, WinrmSettings};
use latch::caps::winrm::shell::Run;
use latch::caps::winrm::transport::Credentials;
use latch::caps::winrm::{wire_script, wsman};

const PASSWORD: &str = "Bench-Passw0rd!x";
const N: usize = 30;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn stats(mut v: Vec<Duration>) -> (f64, f64, f64) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    (ms(v[0]), ms(v[v.len() / 2]), ms(v[v.len() - 1]))
}

fn main() {
    let py = root().join("target/py/bin/python");
    assert!(py.exists(), "run `make setup` first (target/py)");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("users"),
        format!("LAB:latch-svc:{PASSWORD}\n"),
    )
    .unwrap();
    let mut child = Command::new(&py)
        .arg(root().join("tests/winrm/standin.py"))
        .arg("--dir")
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = |k: &str| -> u16 {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(k))
            .and_then(|p| p.parse().ok())
            .expect("READY line")
    };
    let (http, https) = (port("http="), port("https="));
    let ca = dir.path().join("ca.pem");

    let mut settings = WinrmSettings::defaults().unwrap();
    settings.https_ports = vec![https];
    settings.transport.tls = Arc::new(tls_config(Some(&ca)).unwrap());
    let creds = Credentials {
        user: "LAB\\latch-svc".into(),
        password: Secret::new(PASSWORD.as_bytes().to_vec()),
    };
    let params = vec![("Name".to_string(), ParamValue::Text("Administrator".into()))];
    let script = wire_script("Get-LocalUser", &params, |_| unreachable!()).unwrap();
    let args = wsman::powershell_arguments(&script.script);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut latch = Vec::new();
    for (name, port) in [("http", http), ("https", https)] {
        let endpoint = settings.endpoint("localhost", port);
        let once = |pool: &WinrmPool| {
            let t = Instant::now();
            let r = rt
                .block_on(pool.run(
                    "bench",
                    &settings,
                    &endpoint,
                    &creds,
                    Run {
                        program: "powershell.exe",
                        arguments: &args,
                        stdin: None,
                    },
                ))
                .unwrap();
            assert!(String::from_utf8_lossy(&r.stdout).contains("Administrator"));
            t.elapsed()
        };
        let cold: Vec<Duration> = (0..N).map(|_| once(&WinrmPool::default())).collect();
        let pool = WinrmPool::default();
        once(&pool);
        let warm: Vec<Duration> = (0..N).map(|_| once(&pool)).collect();
        latch.push((format!("{name}_cold"), cold));
        latch.push((format!("{name}_warm"), warm));
    }

    // A cmdlet with a secret parameter: the script names `$latch0`, the value goes on stdin
    // (one more request, the `Send`). Against the same cmdlet on the same account with a
    // text parameter instead, on the same warm pool, interleaved, in the same run (issue 20).
    let secret_params = vec![
        ("Name".to_string(), ParamValue::Text("Administrator".into())),
        (
            "Password".to_string(),
            ParamValue::Secret(latch::world::SecretRef::GrantPassword),
        ),
    ];
    let wire = wire_script("Set-LocalUser", &secret_params, |_| {
        Ok(Secret::new(b"Bench-New-Passw0rd!y".to_vec()))
    })
    .unwrap();
    let secret_args = wsman::powershell_arguments(&wire.script);
    // The baseline: the same cmdlet changing the same account, a text parameter instead.
    let plain_params = vec![
        ("Name".to_string(), ParamValue::Text("Administrator".into())),
        ("Description".to_string(), ParamValue::Text("bench".into())),
    ];
    let plain_args = wsman::powershell_arguments(
        &wire_script("Set-LocalUser", &plain_params, |_| unreachable!())
            .unwrap()
            .script,
    );
    let stdin = wire.stdin.as_ref().expect("a secret goes on stdin");
    let mut with_secret = Vec::new();
    for port in [http, https] {
        let endpoint = settings.endpoint("localhost", port);
        let pool = WinrmPool::default();
        let once = |args: &[String], stdin: Option<&[u8]>| {
            let t = Instant::now();
            let r = rt
                .block_on(pool.run(
                    "bench",
                    &settings,
                    &endpoint,
                    &creds,
                    Run {
                        program: "powershell.exe",
                        arguments: args,
                        stdin,
                    },
                ))
                .unwrap();
            assert_eq!(
                r.exit_code,
                Some(0),
                "{}",
                String::from_utf8_lossy(&r.stderr)
            );
            t.elapsed()
        };
        once(&plain_args, None);
        let mut plain = Vec::new();
        let mut secret = Vec::new();
        for _ in 0..N {
            plain.push(once(&plain_args, None));
            secret.push(once(&secret_args, Some(stdin.expose())));
        }
        with_secret.push((if port == http { "http" } else { "https" }, plain, secret));
    }
    let out = Command::new(&py)
        .arg(root().join("tests/winrm/bench_pywinrm.py"))
        .args(["--http", &http.to_string(), "--https", &https.to_string()])
        .arg("--ca")
        .arg(&ca)
        .args([
            "--user",
            "LAB\\latch-svc",
            "--password",
            PASSWORD,
            "--n",
            &N.to_string(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let _ = child.kill();
    let _ = child.wait();

    println!("WinRM: one cmdlet round trip, {N} runs each, ms (min / median / max)");
    println!(
        "{:<12} {:>24} {:>24} {:>8}",
        "case", "Latch", "pywinrm run_ps", "ratio"
    );
    for (case, ours) in latch {
        let pys: Vec<Duration> = theirs[&case]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| Duration::from_secs_f64(v.as_f64().unwrap()))
            .collect();
        let (a, b, c) = stats(ours);
        let (x, y, z) = stats(pys);
        println!(
            "{case:<12} {:>24} {:>24} {:>7.2}x",
            format!("{a:.2} / {b:.2} / {c:.2}"),
            format!("{x:.2} / {y:.2} / {z:.2}"),
            b / y
        );
    }
    println!();
    println!(
        "Set-LocalUser -Password (a secret, on stdin) vs -Description (text, no stdin), warm, interleaved:"
    );
    println!(
        "{:<12} {:>24} {:>24} {:>8}",
        "transport", "with a secret (stdin)", "without (baseline)", "ratio"
    );
    for (name, plain, secret) in with_secret {
        let (a, b, c) = stats(secret);
        let (x, y, z) = stats(plain);
        println!(
            "{name:<12} {:>24} {:>24} {:>7.2}x",
            format!("{a:.2} / {b:.2} / {c:.2}"),
            format!("{x:.2} / {y:.2} / {z:.2}"),
            b / y
        );
    }
}
