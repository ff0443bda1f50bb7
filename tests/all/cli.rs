//! The `latch` binary, run as a user would.

use std::process::{Command, Output};

use serde_json::Value;

fn latch(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_latch"))
        .args(args)
        .env("LATCH_LOG", "error")
        .output()
        .expect("run latch")
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn path(name: &str) -> String {
    crate::guest(name).display().to_string()
}

#[test]
fn version() {
    let out = latch(&["--version"]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("latch {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn inspect_shows_hash_world_imports_exports_and_describe() {
    let out = latch(&["guest", "inspect", &path("bench_guest"), "--json"]);
    assert!(out.status.success(), "{out:?}");
    let v = json(&out);
    let bytes = std::fs::read(crate::guest("bench_guest")).unwrap();
    assert_eq!(v["sha256"], latch::runtime::sha256_hex(&bytes));
    assert_eq!(v["world"], "latch:connector/integration-guest@0.3.0");
    assert_eq!(v["describe"]["name"], "bench");
    let exports: Vec<&str> = v["exports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(exports, ["latch:connector/integration@0.3.0"]);
    let imports = v["imports"].as_array().unwrap();
    assert!(
        imports
            .iter()
            .any(|i| i["name"] == "latch:connector/ssh@0.3.0")
    );
    assert!(
        !imports
            .iter()
            .any(|i| i["name"].as_str().unwrap().starts_with("wasi:sockets")),
        "{imports:?}"
    );

    let human = latch(&["guest", "inspect", &path("bench_guest")]);
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(
        text.contains("sha256") && text.contains("describe, validate, discover"),
        "{text}"
    );
}

#[test]
fn dry_run_records_every_call_and_runs_nothing() {
    let out = latch(&[
        "guest",
        "call",
        &path("bench_guest"),
        "discover",
        "--config",
        r#"{"calls":3}"#,
        "--allow",
        "127.0.0.2:22",
        "--dry-run",
        "--json",
    ]);
    assert!(out.status.success(), "{out:?}");
    let v = json(&out);
    assert_eq!(v["dry_run"], true);
    assert_eq!(v["ok"], true);
    let calls = v["calls"].as_array().unwrap();
    assert_eq!(calls.len(), 3);
    for c in calls {
        assert_eq!(c["capability"], "ssh.exec");
        assert_eq!(c["target"]["host"], "127.0.0.2");
        assert_eq!(c["argv"], serde_json::json!(["true"]));
        assert_eq!(c["outcome"], "ok");
    }
}

#[test]
fn dry_run_shows_refusals_and_fails() {
    let out = latch(&[
        "guest",
        "call",
        &path("denial_reach_unlisted"),
        "discover",
        "--dry-run",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let v = json(&out);
    assert_eq!(v["ok"], false);
    assert_eq!(v["error"]["kind"], "guest");
    assert_eq!(v["calls"][0]["outcome"], "refused");
    assert_eq!(v["calls"][0]["error"]["error"], "denied");
}

#[test]
fn a_dry_run_that_stops_after_a_read_says_why_and_prints_its_error_once() {
    // No LATCH_LOG: the default a user gets.
    let out = Command::new(env!("CARGO_BIN_EXE_latch"))
        .args([
            "guest",
            "call",
            &path("ssh_servers"),
            "grant",
            "--config",
            r#"{"servers":[{"name":"web-1","host":"127.0.0.2"}],"user_groups":["Default"]}"#,
            "--request",
            r#"{"grant_id":"g-1","resource_id":"web-1","permission":"Default","identity":{"email":"alice@corp.example","username":"alice"},"public_key":"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBwtHcPM+IHEXVf0JAOZalYJ9PfFoDkXt/uQ9vNsbWLQ alice","expires_at":4000000000}"#,
            "--allow",
            "127.0.0.2:22",
            "--dry-run",
        ])
        .env_remove("LATCH_LOG")
        .output()
        .expect("run latch");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("grant: FAILED"), "{stdout}");
    assert!(
        stdout.contains("note: a dry run answers every call, reads too, with an empty success")
            && stdout.contains("`latch grant --plan`"),
        "{stdout}"
    );
    // The failure is the command's answer, printed once: no log line repeats it.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("WARN"), "{stderr}");
    assert!(!stderr.contains("guest call failed"), "{stderr}");

    // A dry run that read nothing before failing gets no such note.
    let refused = latch(&[
        "guest",
        "call",
        &path("denial_reach_unlisted"),
        "discover",
        "--dry-run",
    ]);
    assert!(!String::from_utf8_lossy(&refused.stdout).contains("note:"));
}

#[test]
fn without_dry_run_nothing_is_carried_out_and_it_says_so() {
    let out = latch(&[
        "guest",
        "call",
        &path("bench_guest"),
        "discover",
        "--config",
        r#"{"calls":1}"#,
        "--allow",
        "127.0.0.2:22",
        "--json",
    ]);
    let v = json(&out);
    assert_eq!(v["calls"][0]["outcome"], "failed");
    let msg = v["calls"][0]["error"]["message"].as_str().unwrap();
    assert!(msg.contains("is not carried out here"), "{msg}");
}

#[test]
fn bad_arguments_are_clear_errors() {
    let g = path("bench_guest");
    let cases: &[(&[&str], &str)] = &[
        (
            &["guest", "call", &g, "discover", "--config", "not json"],
            "--config is not valid JSON",
        ),
        (
            &["guest", "call", &g, "discover", "--config", "[1]"],
            "JSON object",
        ),
        (&["guest", "call", &g, "grant"], "needs --request"),
        (
            &[
                "guest",
                "call",
                &g,
                "grant",
                "--request",
                r#"{"grant_id":"g"}"#,
            ],
            "not a grant request",
        ),
        (
            &[
                "guest",
                "call",
                &g,
                "revoke",
                "--request",
                r#"{"grant_id":"g","resource_id":"r","permission":"p","identity":{"email":"e"},"expires_at":1,"extra":1}"#,
            ],
            "unknown field",
        ),
        (
            &["guest", "call", &g, "discover", "--allow", "a;b"],
            "allow entry",
        ),
        (
            &["guest", "call", &g, "discover", "--deadline", "0s"],
            "--deadline",
        ),
        (
            &["guest", "call", &g, "discover", "--memory", "lots"],
            "--memory",
        ),
        (
            &["guest", "inspect", "/nonexistent.wasm"],
            "/nonexistent.wasm",
        ),
        (
            &["check", "--config", "/nonexistent.toml"],
            "/nonexistent.toml",
        ),
    ];
    for (args, expect) in cases {
        let out = latch(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expect), "{args:?}: {err}");
    }
}

#[test]
fn check_validates_pins_and_guests() {
    let dir = tempfile::tempdir().unwrap();
    let guest = crate::guest("bench_guest");
    let sha = latch::runtime::sha256_hex(&std::fs::read(&guest).unwrap());
    let cfg = dir.path().join("latch.toml");
    let write = |sha: &str| {
        std::fs::write(
            &cfg,
            format!(
                "[[integration]]\nname = \"bench\"\nguest = {:?}\nsha256 = \"{sha}\"\n",
                guest.display().to_string()
            ),
        )
        .unwrap()
    };
    write(&sha);
    let out = latch(&["check", "--config", cfg.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("0 failed"));

    write(&"f".repeat(64));
    let out = latch(&["check", "--config", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&sha) && err.contains(&"f".repeat(64)), "{err}");
}
