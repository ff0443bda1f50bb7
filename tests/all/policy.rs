//! `latch policy`: the example access policy checked and its case file run by the binary, as
//! an operator would; a broken policy named by file, line and column.

use std::process::{Command, Output};

fn latch(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_latch"))
        .args(args)
        .env("LATCH_LOG", "error")
        .output()
        .expect("run latch")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

const CONFIG: &str = r#"
[access]
policy = "access.cedar"

[[integration]]
name = "linux"
guest = "ssh_servers.wasm"
sha256 = "ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01"
allow = ["10.0.0.0/24"]
"#;

fn examples() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

#[test]
fn the_example_policy_checks_and_its_cases_pass() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("latch.toml");
    std::fs::write(&config, CONFIG).unwrap();
    std::fs::copy(
        examples().join("access.cedar"),
        dir.path().join("access.cedar"),
    )
    .unwrap();
    let config = config.to_str().unwrap();

    let out = latch(&["policy", "check", "--config", config]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("7 policies"), "{}", text(&out));

    let cases = examples().join("access-cases.toml");
    let out = latch(&[
        "policy",
        "test",
        "--config",
        config,
        cases.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("10 passed, 0 failed"), "{}", text(&out));

    // A case that expects what the policy does not say fails the run, saying what differed.
    let wrong = dir.path().join("wrong.toml");
    std::fs::write(
        &wrong,
        "[[case]]\nname = \"alice gets root\"\nwho = { id = \"alice\", groups = [\"devs\"] }\n\
         action = \"request\"\nintegration = \"linux\"\nresource = \"web-1\"\n\
         tags = { env = \"dev\" }\npermission = \"root\"\nduration = \"1h\"\nexpect = \"allow\"\n",
    )
    .unwrap();
    let out = latch(&[
        "policy",
        "test",
        "--config",
        config,
        wrong.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("FAIL  alice gets root: expected allow; got deny by [no-root]"),
        "{}",
        text(&out)
    );

    let out = latch(&["policy", "schema"]);
    assert!(
        text(&out).contains("action \"read-audit\""),
        "{}",
        text(&out)
    );
}

#[test]
fn a_broken_policy_is_named_by_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("latch.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let policy = dir.path().join("access.cedar");
    let config = config.to_str().unwrap();
    for (text_of_policy, says) in [
        (
            "@id(\"a\")\npermit(principal, action == Action::\"request\", resource)\n  when { context.hours < 5 };\n",
            "access.cedar:3:",
        ),
        (
            "@id(\"a\")\npermit(principal action, resource);\n",
            "access.cedar:2:",
        ),
        (
            "@id(\"a\")\npermit(principal, action, resource in Integration::\"linx\");\n",
            "integration \"linx\"",
        ),
        ("permit(principal, action, resource);\n", "has no @id"),
    ] {
        std::fs::write(&policy, text_of_policy).unwrap();
        let out = latch(&["policy", "check", "--config", config]);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        assert!(
            text(&out).contains(says),
            "{text_of_policy}\n=> {}",
            text(&out)
        );
    }
    std::fs::remove_file(&policy).unwrap();
    let out = latch(&["policy", "check", "--config", config]);
    assert!(
        text(&out).contains("cannot read access policy"),
        "{}",
        text(&out)
    );
}
