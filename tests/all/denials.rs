//! Denials as data: one small guest per misbehaviour, each with the error it must produce,
//! and after each, a good call on the same runtime must still succeed.

use std::time::Duration;

use latch::runtime::{CallError, Export, GuestError, Limits, LoadError, Returned};
use latch_testkit::{Kit, Script, runtime};

fn discover() -> Export {
    Export::Discover {
        config: "{}".into(),
        cursor: None,
    }
}

/// The runtime keeps serving: a fresh, well-behaved call succeeds.
fn assert_still_serving() {
    let run = Kit::built("bench_guest").run(&Script::new(), Export::Describe);
    match run.report.result {
        Ok(Returned::Metadata(m)) => assert_eq!(m.name, "bench"),
        other => panic!("the runtime stopped serving: {other:?}"),
    }
}

fn short(deadline: Duration) -> Limits {
    Limits {
        deadline,
        ..Limits::default()
    }
}

#[test]
fn a_guest_that_loops_is_stopped_at_its_deadline() {
    let kit = Kit::built("denial_spin").with_limits(short(Duration::from_millis(500)));
    let run = kit.run(&Script::new(), discover());
    match &run.report.result {
        Err(e @ CallError::Deadline(d)) => {
            assert_eq!(*d, Duration::from_millis(500));
            assert!(e.to_string().contains("deadline"), "{e}");
        }
        other => panic!("expected a deadline error, got {other:?}"),
    }
    assert_still_serving();
}

#[test]
fn a_guest_blocked_in_a_host_call_is_stopped_at_its_deadline() {
    let kit = Kit::built("denial_sleep").with_limits(short(Duration::from_millis(300)));
    let run = kit.run(&Script::new(), discover());
    assert!(
        matches!(run.report.result, Err(CallError::Deadline(_))),
        "{:?}",
        run.report.result
    );
    assert_still_serving();
}

#[test]
fn a_guest_that_balloons_hits_its_memory_cap() {
    let limits = Limits {
        memory: 16 << 20,
        ..Limits::default()
    };
    let run = Kit::built("denial_balloon")
        .with_limits(limits)
        .run(&Script::new(), discover());
    match &run.report.result {
        Err(e @ CallError::Memory(cap)) => {
            assert_eq!(cap.cap, 16 << 20);
            assert!(cap.desired > cap.cap);
            assert!(e.to_string().contains("16384 KiB"), "{e}");
        }
        other => panic!("expected a memory error, got {other:?}"),
    }
    assert_still_serving();
}

#[test]
fn a_guest_that_panics_traps_with_its_message() {
    let run = Kit::built("denial_trap").run(&Script::new(), discover());
    match &run.report.result {
        Err(CallError::Trap(msg)) => {
            assert!(msg.contains("unreachable"), "{msg}");
            assert!(msg.contains("this guest panics on purpose"), "{msg}");
        }
        other => panic!("expected a trap, got {other:?}"),
    }
    assert_still_serving();
}

#[test]
fn a_guest_reaching_an_unlisted_target_is_denied_and_nothing_is_sent() {
    // The empty script: any call reaching the backend would be reported as a mismatch.
    let run = Kit::built("denial_reach_unlisted").run(&Script::new(), discover());
    match run.guest_error() {
        GuestError::Denied(msg) => {
            assert!(msg.contains("203.0.113.9:22"), "{msg}");
            assert!(msg.contains("allow list"), "{msg}");
        }
        other => panic!("expected denied, got {other:?}"),
    }
    run.assert_script_done();
    run.assert_nothing_carried_out();
    assert_eq!(run.report.records.len(), 1, "the refusal is recorded");
    assert_still_serving();
}

#[test]
fn a_guest_reading_an_unlisted_secret_is_denied() {
    let run = Kit::built("denial_read_unlisted_secret").run(&Script::new(), discover());
    match run.guest_error() {
        GuestError::Denied(msg) => assert!(msg.contains("root-password"), "{msg}"),
        other => panic!("expected denied, got {other:?}"),
    }
    run.assert_script_done();
    run.assert_nothing_carried_out();
    assert_still_serving();
}

#[test]
fn a_guest_importing_what_the_host_lacks_does_not_load() {
    let bytes = std::fs::read(crate::guest("denial_foreign_import")).unwrap();
    let err = match runtime().load(&bytes) {
        Err(e) => e,
        Ok(_) => panic!("a guest importing an unknown interface must not load"),
    };
    assert!(matches!(err, LoadError::Link(_)), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("latch-denials:foreign/exfil"), "{msg}");
    assert_still_serving();
}

#[test]
fn bytes_that_are_not_a_component_do_not_load() {
    for bytes in [&b"not wasm at all"[..], b"\0asm\x01\0\0\0"] {
        let err = runtime().load(bytes).err().expect("must not load");
        assert!(matches!(err, LoadError::Compile(_)), "{err:?}");
    }
}

#[test]
fn no_state_survives_between_calls() {
    let kit = Kit::built("bench_guest");
    let probe = || Export::Discover {
        config: r#"{"probe":"state"}"#.into(),
        cursor: None,
    };
    for _ in 0..3 {
        let run = kit.run(&Script::new(), probe());
        assert_eq!(run.resources()[0].name, "1", "a fresh instance per call");
    }
}

#[test]
fn a_guest_finds_no_files_environment_arguments_or_network() {
    // The connector's own process has all of these; none may reach the guest.
    // SAFETY: a variable no other test reads.
    unsafe { std::env::set_var("LATCH_TEST_AMBIENT_SECRET", "must-not-leak") };
    let run = Kit::built("denial_ambient").run(&Script::new(), discover());
    let probes = run.resources();
    assert_eq!(probes.len(), 5);
    for p in probes {
        assert_eq!(p.name, "", "probe {:?} found {:?}", p.id, p.name);
    }
    run.assert_nothing_carried_out();
}
