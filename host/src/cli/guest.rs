//! `latch guest inspect` and `latch guest call`: an auditor's view of one guest file.
//!
//! `guest call --dry-run` is how a customer previews exactly what a guest would do: every
//! capability call passes the same checks and policy as in production, is recorded, and is
//! answered with an empty success instead of being carried out.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Subcommand, ValueEnum};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::caps::{Backend, CallRecord, Outcome, Policy, Recorder, Unavailable};
use crate::config::{parse_bytes, parse_duration};
use crate::runtime::{
    CallReport, Export, GrantRequest, Identity, Integration, Limits, Returned, Runtime,
    RuntimeConfig, ServiceCredential,
};

#[derive(Debug, Subcommand)]
pub(super) enum GuestCommand {
    /// Show a guest's sha256 (the value to pin), world, imports, exports and describe().
    Inspect {
        /// The guest `.wasm` component.
        file: PathBuf,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Run one export of a guest, with the policy given on the command line.
    Call {
        /// The guest `.wasm` component.
        file: PathBuf,
        /// The export to call.
        function: Function,
        /// The integration's config as JSON, or @FILE to read it from a file.
        #[arg(long, default_value = "{}")]
        config: String,
        /// For grant/revoke: the grant request as JSON (or @FILE):
        /// {"grant_id","resource_id","permission","identity":{"email","username"?},
        /// "public_key"?,"expires_at"}. For cleanup: {"resource_id","username"}.
        #[arg(long)]
        request: Option<String>,
        /// A target the guest may reach (host, IP, CIDR, optional :port); repeatable.
        #[arg(long = "allow", value_name = "TARGET")]
        allow: Vec<String>,
        /// A secret name the guest may read; repeatable.
        #[arg(long = "secret", value_name = "NAME")]
        secrets: Vec<String>,
        /// Record every capability call and answer it with an empty success; run nothing.
        #[arg(long)]
        dry_run: bool,
        /// Wall-clock deadline of the call.
        #[arg(long, default_value = "30s")]
        deadline: String,
        /// Memory cap of the call.
        #[arg(long, default_value = "64MiB")]
        memory: String,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub(super) enum Function {
    Describe,
    Validate,
    Discover,
    Grant,
    Revoke,
    Cleanup,
    AddServiceCredential,
    RemoveServiceCredential,
}

/// A grant request as typed on the command line; unknown fields are errors.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GrantRequestArg {
    grant_id: String,
    resource_id: String,
    permission: String,
    identity: IdentityArg,
    #[serde(default)]
    public_key: Option<String>,
    expires_at: u64,
    #[serde(default)]
    state: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IdentityArg {
    email: String,
    #[serde(default)]
    username: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceKeyArg {
    resource_id: String,
    #[serde(default)]
    public_key: Option<String>,
    #[serde(default)]
    password: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CleanupArg {
    resource_id: String,
    username: String,
    #[serde(default)]
    grant_id: Option<String>,
    #[serde(default)]
    state: Option<String>,
}

impl GuestCommand {
    pub(super) async fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            GuestCommand::Inspect { file, json } => inspect(&file, json).await,
            GuestCommand::Call {
                file,
                function,
                config,
                request,
                allow,
                secrets,
                dry_run,
                deadline,
                memory,
                json,
            } => {
                let limits = Limits {
                    deadline: parse_duration(&deadline).context("--deadline")?,
                    memory: parse_bytes(&memory).context("--memory")?,
                };
                let policy = Policy::parse(&allow, &secrets).map_err(anyhow::Error::msg)?;
                let export = build_export(function, &config, request.as_deref())?;
                let backend: Arc<dyn Backend> = if dry_run {
                    Arc::new(Recorder)
                } else {
                    Arc::new(Unavailable)
                };
                call(&file, export, policy, backend, limits, dry_run, json).await
            }
        }
    }
}

/// Read `text`, or the file it names after `@`.
fn arg_text(text: &str, what: &str) -> anyhow::Result<String> {
    match text.strip_prefix('@') {
        Some(path) => {
            std::fs::read_to_string(path).with_context(|| format!("{what}: cannot read {path}"))
        }
        None => Ok(text.to_string()),
    }
}

fn build_export(function: Function, config: &str, request: Option<&str>) -> anyhow::Result<Export> {
    let config = arg_text(config, "--config")?;
    let parsed: Value = serde_json::from_str(&config).context("--config is not valid JSON")?;
    if !parsed.is_object() {
        bail!("--config must be a JSON object");
    }
    let request = match request {
        Some(r) => Some(arg_text(r, "--request")?),
        None => None,
    };
    let need = |example: &str| -> anyhow::Result<String> {
        request.clone().with_context(|| {
            format!("{function:?} needs --request, e.g. --request '{example}'").to_lowercase()
        })
    };
    const GRANT_EXAMPLE: &str = r#"{"grant_id":"g-1","resource_id":"web-1","permission":"Default","identity":{"email":"alice@example.com"},"expires_at":1900000000}"#;
    Ok(match function {
        Function::Describe => Export::Describe,
        Function::Validate => Export::Validate { config },
        Function::Discover => Export::Discover {
            config,
            cursor: None,
        },
        Function::Grant | Function::Revoke => {
            let r: GrantRequestArg = serde_json::from_str(&need(GRANT_EXAMPLE)?)
                .context("--request is not a grant request")?;
            let request = GrantRequest {
                grant_id: r.grant_id,
                resource_id: r.resource_id,
                permission: r.permission,
                identity: Identity {
                    email: r.identity.email,
                    username: r.identity.username,
                },
                public_key: r.public_key,
                expires_at: r.expires_at,
                state: r.state,
            };
            match function {
                Function::Grant => Export::Grant { config, request },
                _ => Export::Revoke { config, request },
            }
        }
        Function::Cleanup => {
            let r: CleanupArg =
                serde_json::from_str(&need(r#"{"resource_id":"web-1","username":"alice"}"#)?)
                    .context("--request is not a cleanup request")?;
            Export::Cleanup {
                config,
                request: GrantRequest {
                    grant_id: r
                        .grant_id
                        .unwrap_or_else(|| "g-000000000000000000000000".into()),
                    resource_id: r.resource_id,
                    permission: String::new(),
                    identity: Identity {
                        email: String::new(),
                        username: Some(r.username.clone()),
                    },
                    public_key: None,
                    expires_at: 0,
                    state: r.state,
                },
                username: r.username,
            }
        }
        Function::AddServiceCredential | Function::RemoveServiceCredential => {
            let r: ServiceKeyArg = serde_json::from_str(&need(
                r#"{"resource_id":"web-1","public_key":"ssh-ed25519 AAAA… latch"}"#,
            )?)
            .context("--request is not a service credential request")?;
            let credential = match (r.public_key, r.password) {
                (Some(key), false) => ServiceCredential::SshKey(key),
                (None, true) => ServiceCredential::Password,
                _ => bail!("--request names either a public_key or \"password\": true"),
            };
            let (config, resource_id) = (config, r.resource_id);
            match function {
                Function::AddServiceCredential => Export::AddServiceCredential {
                    config,
                    resource_id,
                    credential,
                },
                _ => Export::RemoveServiceCredential {
                    config,
                    resource_id,
                    credential,
                },
            }
        }
    })
}

fn load(
    file: &Path,
    runtime_config: RuntimeConfig,
) -> anyhow::Result<(Runtime, crate::runtime::Guest)> {
    let runtime = Runtime::new(runtime_config)?;
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let guest = runtime
        .load(&bytes)
        .with_context(|| format!("cannot load {}", file.display()))?;
    Ok((runtime, guest))
}

fn small_runtime(memory: usize) -> RuntimeConfig {
    RuntimeConfig {
        max_concurrent_calls: 2,
        max_memory: memory.max(RuntimeConfig::default().max_memory),
        ..RuntimeConfig::default()
    }
}

async fn inspect(file: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let (runtime, guest) = load(file, small_runtime(0))?;
    let inspection = guest.inspect(&runtime);
    let integration = Integration::new(
        "inspect",
        Arc::new(guest),
        Policy::default(),
        Arc::new(Recorder),
        Limits::default(),
    );
    let report = integration.call(&runtime, Export::Describe).await;
    let describe = match &report.result {
        Ok(Returned::Metadata(m)) => serde_json::to_value(m)?,
        Ok(other) => bail!("describe returned {other:?}"),
        Err(e) => json!({ "error": e.to_string() }),
    };
    if json {
        let mut v = serde_json::to_value(&inspection)?;
        v["describe"] = describe;
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("file     {}", file.display());
    println!("sha256   {}", inspection.sha256);
    println!("world    {}", inspection.world);
    if let Value::Object(d) = &describe {
        for key in ["name", "version", "description", "error"] {
            if let Some(Value::String(s)) = d.get(key) {
                println!("{key:<8} {s}");
            }
        }
    }
    println!("imports");
    for item in &inspection.imports {
        println!("  {}  {}", item.name, item.functions.join(", "));
    }
    println!("exports");
    for item in &inspection.exports {
        println!("  {}  {}", item.name, item.functions.join(", "));
    }
    Ok(ExitCode::SUCCESS)
}

async fn call(
    file: &Path,
    export: Export,
    policy: Policy,
    backend: Arc<dyn Backend>,
    limits: Limits,
    dry_run: bool,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let (runtime, guest) = load(file, small_runtime(limits.memory))?;
    let name = export.name();
    let integration = Integration::new("cli", Arc::new(guest), policy, backend, limits);
    let report = integration.call(&runtime, export).await;
    let ok = report.result.is_ok();
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report_json(name, dry_run, &report)?)?
        );
    } else {
        print_report(name, dry_run, &report)?;
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn returned_json(returned: &Returned) -> anyhow::Result<Value> {
    Ok(match returned {
        Returned::Metadata(m) => serde_json::to_value(m)?,
        Returned::Lifecycle(l) => serde_json::to_value(l)?,
        Returned::Page(p) => serde_json::to_value(p)?,
        Returned::Granted(g) => serde_json::to_value(g)?,
        Returned::Unit => Value::Null,
    })
}

fn report_json(export: &str, dry_run: bool, report: &CallReport) -> anyhow::Result<Value> {
    let (returned, error) = match &report.result {
        Ok(r) => (returned_json(r)?, Value::Null),
        Err(e) => (
            Value::Null,
            json!({ "kind": e.kind(), "message": e.to_string() }),
        ),
    };
    Ok(json!({
        "export": export,
        "dry_run": dry_run,
        "ok": report.result.is_ok(),
        "returned": returned,
        "error": error,
        "calls": report.records,
        "dropped_calls": report.dropped_records,
        "note": dry_run_note(dry_run, report),
    }))
}

fn print_report(export: &str, dry_run: bool, report: &CallReport) -> anyhow::Result<()> {
    match &report.result {
        Ok(r) => {
            println!("{export}: ok");
            let v = returned_json(r)?;
            if !v.is_null() {
                println!("{}", serde_json::to_string_pretty(&v)?);
            }
        }
        Err(e) => println!("{export}: FAILED ({}): {e}", e.kind()),
    }
    let mode = if dry_run {
        "dry run: recorded, nothing carried out"
    } else {
        "carried out"
    };
    println!("capability calls ({}, {mode}):", report.records.len());
    for (i, r) in report.records.iter().enumerate() {
        println!("  {:>3}. {}", i + 1, describe_record(r));
    }
    if report.dropped_records > 0 {
        println!("  … and {} more, not kept", report.dropped_records);
    }
    if let Some(note) = dry_run_note(dry_run, report) {
        println!("note: {note}");
    }
    Ok(())
}

/// Why a dry run may fail where a real call would not: it answers reads with nothing. Said
/// when a dry run failed after a read, with where to look instead.
fn dry_run_note(dry_run: bool, report: &CallReport) -> Option<&'static str> {
    let read = report
        .records
        .iter()
        .any(|r| r.call.effect() == crate::caps::Effect::Read);
    (dry_run && report.result.is_err() && read).then_some(
        "a dry run answers every call, reads too, with an empty success (status 0, no \
         output), so a guest that decides from what it read (the Linux integrations' probe) \
         stops there. `latch grant --plan` carries out the reads for real and records the \
         changes without making them.",
    )
}

/// One line per capability call, with the exact command as it would be run.
fn describe_record(r: &CallRecord) -> String {
    let what = &r.command;
    let outcome = match &r.outcome {
        Outcome::Ok { status: Some(s) } => format!("ok (exit {s})"),
        Outcome::Ok { status: None } => "ok".to_string(),
        Outcome::Planned => "planned (not carried out)".to_string(),
        Outcome::Refused { error } => format!("REFUSED {error}"),
        Outcome::Failed { error } => format!("FAILED {error}"),
    };
    format!("{what}  -> {outcome}")
}
