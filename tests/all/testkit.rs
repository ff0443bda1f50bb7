//! The test kit itself: a script that matches passes; one that does not says how.

use latch::caps::CapError;
use latch::runtime::Export;
use latch_testkit::{Kit, Script};

fn bench(calls: u32) -> Export {
    Export::Discover {
        config: format!(r#"{{"calls":{calls}}}"#),
        cursor: None,
    }
}

#[test]
fn a_matching_script_passes() {
    let mut script = Script::new();
    script.on_ssh("127.0.0.2:22", &["true"]).ok("");
    script.on_ssh("127.0.0.2:22", &["true"]).exit(1, "nope");
    let run = Kit::built("bench_guest").run(&script, bench(2));
    run.assert_script_done();
    // One call exited 0, one exited 1: the guest counts the successful exec calls (both ran).
    assert_eq!(run.resources()[0].name, "2");
    assert_eq!(run.report.records.len(), 2);
}

#[test]
fn an_unexpected_call_fails_with_a_readable_diff() {
    let mut script = Script::new();
    script.on_ssh("127.0.0.2:22", &["false"]);
    let run = Kit::built("bench_guest").run(&script, bench(1));
    let panic = std::panic::catch_unwind(|| run.assert_script_done()).unwrap_err();
    let msg = panic.downcast_ref::<String>().unwrap();
    assert!(
        msg.contains("expected: ssh.exec 127.0.0.2:22: false"),
        "{msg}"
    );
    assert!(
        msg.contains("got:      ssh.exec 127.0.0.2:22: true"),
        "{msg}"
    );
}

#[test]
fn a_call_never_made_is_reported() {
    let mut script = Script::new();
    script.on_ssh("127.0.0.2:22", &["true"]);
    script.on_ssh("127.0.0.2:22", &["true"]);
    let run = Kit::built("bench_guest").run(&script, bench(1));
    let panic = std::panic::catch_unwind(|| run.assert_script_done()).unwrap_err();
    let msg = panic.downcast_ref::<String>().unwrap();
    assert!(msg.contains("never made"), "{msg}");
}

#[test]
fn scripted_errors_reach_the_guest() {
    let mut script = Script::new();
    script
        .on_ssh("127.0.0.2:22", &["true"])
        .error(CapError::Unreachable("connection refused".into()));
    let run = Kit::built("bench_guest").run(&script, bench(1));
    run.assert_script_done();
    assert_eq!(run.resources()[0].name, "0", "the guest saw the error");
}

#[test]
fn the_policy_is_what_the_script_names() {
    // No expectation for 127.0.0.2, so the policy refuses it before the script is consulted.
    let run = Kit::built("bench_guest").run(&Script::new(), bench(1));
    run.assert_script_done();
    run.assert_nothing_carried_out();
    assert_eq!(run.resources()[0].name, "0");
}
