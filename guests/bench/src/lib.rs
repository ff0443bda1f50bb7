//! Benchmark guest. `describe` does nothing (instantiate-and-call cost); `discover` with
//! config `{"calls": N, "capability": "ssh" | "log"}` makes N capability calls and returns
//! how many succeeded as the one resource's name. With config `{"probe": "state"}` it counts
//! its own calls in a static and returns the count: a fresh instance per call always says 1.

use latch_guest_sdk::{
    CredentialKind, Error, GrantRequest, Granted, Integration, Level, Lifecycle, Metadata, Page,
    Resource, ServiceCredential, Target,
};

struct Bench;

/// Survives between calls only if the host reused an instance (it must not).
static CALLS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

fn field(config: &str, key: &str) -> Option<String> {
    // A deliberately tiny parser: the bench should measure calls, not JSON.
    let at = config.find(&format!("\"{key}\""))? + key.len() + 2;
    let rest = config[at..].trim_start().strip_prefix(':')?.trim_start();
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    Some(rest[..end].trim().trim_matches('"').to_string())
}

impl Integration for Bench {
    fn describe() -> Metadata {
        Metadata {
            name: "bench".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "benchmark guest".into(),
            config_schema: "{}".into(),
            credential: CredentialKind::None,
        }
    }
    fn validate(_: String) -> Result<Lifecycle, Error> {
        Ok(latch_guest_sdk::plain_lifecycle("Default"))
    }
    fn discover(config: String, _: Option<String>) -> Result<Page, Error> {
        if field(&config, "probe").as_deref() == Some("state") {
            let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            return Ok(page(resource(n)));
        }
        let calls: u32 = field(&config, "calls")
            .and_then(|n| n.parse().ok())
            .unwrap_or(1000);
        let log_only = field(&config, "capability").as_deref() == Some("log");
        let target = Target {
            host: "127.0.0.2".into(),
            port: 22,
            user: None,
        };
        let argv = vec!["true".to_string()];
        let mut ok = 0u32;
        for _ in 0..calls {
            if log_only {
                latch_guest_sdk::log(Level::Trace, "tick");
                ok += 1;
            } else if latch_guest_sdk::ssh::exec(&target, &argv, &[]).is_ok() {
                ok += 1;
            }
        }
        Ok(page(resource(ok)))
    }
    fn grant(_: String, _: GrantRequest) -> Result<Granted, Error> {
        Err(Error::Failed("not used".into()))
    }
    fn revoke(_: String, _: GrantRequest) -> Result<(), Error> {
        Ok(())
    }
    fn cleanup(_: String, _: GrantRequest, _: String) -> Result<(), Error> {
        Ok(())
    }
    fn add_service_credential(_: String, _: String, _: ServiceCredential) -> Result<(), Error> {
        Ok(())
    }
    fn remove_service_credential(_: String, _: String, _: ServiceCredential) -> Result<(), Error> {
        Ok(())
    }
}

fn page(r: Resource) -> Page {
    Page {
        resources: vec![r],
        next: None,
    }
}

fn resource(n: u32) -> Resource {
    Resource {
        id: "bench".into(),
        name: n.to_string(),
        kind: "bench".into(),
        tags: Vec::new(),
        permissions: Vec::new(),
    }
}

latch_guest_sdk::export!(Bench);
