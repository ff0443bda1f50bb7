//! Access decisions at 1,000 policies, asks drawn from 9,000 identities in 200 groups and
//! 800 resources in 8 integrations (10,000 entities): the indexed decision beside the full
//! evaluation, in the same run. `cargo bench -p latch-access` (release).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use latch_access::{Access, Act, Ask, Principal};
use rand::{RngExt, SeedableRng};

fn main() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(22);
    let integrations: Vec<String> = (0..8).map(|i| format!("int-{i}")).collect();
    let names: Vec<&str> = integrations.iter().map(String::as_str).collect();
    let mut text = String::new();
    for n in 0..1000 {
        let group = format!("g{}", rng.random_range(0..200));
        let integration = &integrations[rng.random_range(0..8)];
        let (action, resource) = match rng.random_range(0..10) {
            0 => ("approve", "resource".to_string()),
            1 => (
                "revoke",
                format!("resource in Integration::\"{integration}\""),
            ),
            2..=5 => (
                "request",
                format!(
                    "resource == Resource::\"{integration}/s{}\"",
                    rng.random_range(0..100)
                ),
            ),
            _ => (
                "request",
                format!("resource in Integration::\"{integration}\""),
            ),
        };
        let effect = if n % 10 == 0 { "forbid" } else { "permit" };
        let when = match action {
            "request" => format!(
                " when {{ context.duration_seconds <= {} && (resource.hasTag(\"env\") && resource.getTag(\"env\") == \"dev\" || context.permission == \"read\") }}",
                3600 * rng.random_range(1..9)
            ),
            "revoke" => " when { context.owner == principal }".to_string(),
            _ => String::new(),
        };
        text.push_str(&format!(
            "@id(\"p{n}\")\n{effect}(principal in Group::\"{group}\", action == Action::\"{action}\", {resource}){when};\n"
        ));
    }
    let started = Instant::now();
    let access = Access::parse(&text, Path::new("bench.cedar"), &names).expect("valid");
    println!(
        "parse + validate + index of {} policies: {:?}",
        access.len(),
        started.elapsed()
    );

    let asks: Vec<(Principal, Act, Ask)> = (0..10_000)
        .map(|_| {
            let id = rng.random_range(0..9000);
            let groups = (0..rng.random_range(1..4))
                .map(|_| format!("g{}", rng.random_range(0..200)))
                .collect();
            let who = Principal {
                id: format!("u{id}"),
                email: Some(format!("u{id}@example.test")),
                groups,
                kind: "person",
            };
            let act = if rng.random_range(0..5) == 0 {
                Act::Approve
            } else {
                Act::Request
            };
            let integration = integrations[rng.random_range(0..8)].clone();
            let mut tags = BTreeMap::new();
            if rng.random_range(0..2) == 0 {
                tags.insert("env".to_string(), "dev".to_string());
            }
            let other = (act == Act::Approve).then(|| Principal {
                id: format!("u{}", rng.random_range(0..9000)),
                email: None,
                groups: vec![format!("g{}", rng.random_range(0..200))],
                kind: "person",
            });
            let ask = Ask {
                integration,
                resource: format!("s{}", rng.random_range(0..100)),
                tags,
                permission: if rng.random_range(0..2) == 0 {
                    "read"
                } else {
                    "admin"
                }
                .into(),
                duration: Duration::from_secs(3600 * rng.random_range(1..9)),
                justification: "bench".into(),
                other,
            };
            (who, act, ask)
        })
        .collect();

    // Warm the index's cache of candidate sets as a running connector would have it.
    for (who, act, ask) in &asks {
        let _ = access.decide(who, *act, ask);
    }
    let time = |indexed: bool| {
        let mut t: Vec<Duration> = asks
            .iter()
            .map(|(who, act, ask)| {
                let s = Instant::now();
                let d = if indexed {
                    access.decide(who, *act, ask)
                } else {
                    access.decide_unindexed(who, *act, ask)
                };
                std::hint::black_box(d);
                s.elapsed()
            })
            .collect();
        t.sort();
        let q = |p: f64| t[((t.len() as f64 * p) as usize).min(t.len() - 1)];
        (q(0.5), q(0.9), q(0.99))
    };
    let allowed = asks
        .iter()
        .filter(|(w, a, k)| access.decide(w, *a, k).allowed)
        .count();
    let full = time(false);
    let indexed = time(true);
    println!("{} asks, {allowed} allowed", asks.len());
    println!("| decision | p50 | p90 | p99 |");
    println!("| --- | --- | --- | --- |");
    println!(
        "| every policy evaluated (baseline) | {:?} | {:?} | {:?} |",
        full.0, full.1, full.2
    );
    println!(
        "| indexed by action and resource | {:?} | {:?} | {:?} |",
        indexed.0, indexed.1, indexed.2
    );
}
