//! Runtime benchmarks: what one guest call costs, and what one capability call costs.
//!
//! Each figure is measured beside its baseline in the same run:
//! - instantiate+call of a trivial export (`describe`), pooling allocator vs on-demand;
//! - a guest making 1,000 `ssh.exec` calls through the full host path (argument checks,
//!   policy, dry-run backend, record) vs 1,000 `log.write` calls (the bare host-call cost)
//!   vs the same export making 0 calls.
//!
//! Run with `make bench`; guests must be built (`make guests`).

use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use latch::caps::{Policy, Recorder};
use latch::runtime::{Export, Integration, Limits, Returned, Runtime, RuntimeConfig};

fn guest_bytes() -> Vec<u8> {
    let path = latch_testkit::guest_path("bench_guest");
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}; run `make guests`", path.display()))
}

fn integration(runtime: &Runtime) -> Integration {
    let guest = Arc::new(runtime.load(&guest_bytes()).expect("load bench guest"));
    let policy = Policy::parse(&["127.0.0.2:22".to_string()], &[]).unwrap();
    Integration::new(
        "bench",
        guest,
        policy,
        Arc::new(Recorder),
        Limits::default(),
    )
}

fn instantiate_and_call(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("instantiate+call describe");
    for (label, pooling) in [("pooling", true), ("on-demand (baseline)", false)] {
        let runtime = Runtime::new(RuntimeConfig {
            pooling,
            ..RuntimeConfig::default()
        })
        .unwrap();
        let integration = integration(&runtime);
        group.bench_function(label, |b| {
            b.iter(|| {
                let report = rt.block_on(integration.call(&runtime, Export::Describe));
                assert!(matches!(report.result, Ok(Returned::Metadata(_))));
            })
        });
    }
    group.finish();
}

fn capability_calls(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let runtime = Runtime::new(RuntimeConfig::default()).unwrap();
    let integration = integration(&runtime);
    let mut group = c.benchmark_group("guest making capability calls");
    group.sample_size(30);
    for (label, config) in [
        ("1000 x ssh.exec (dry-run backend)", r#"{"calls":1000}"#),
        (
            "1000 x log.write (baseline)",
            r#"{"calls":1000,"capability":"log"}"#,
        ),
        ("0 calls (baseline)", r#"{"calls":0}"#),
    ] {
        group.bench_function(label, |b| {
            b.iter(|| {
                let export = Export::Discover {
                    config: config.to_string(),
                    cursor: None,
                };
                let report = rt.block_on(integration.call(&runtime, export));
                assert!(report.result.is_ok(), "{:?}", report.result);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, instantiate_and_call, capability_calls);
criterion_main!(benches);
