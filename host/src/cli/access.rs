//! `latch init`, `resources`, `grant`, `extend`, `revoke`, `grants`: just-in-time
//! access from the command line, acting locally on a configuration (`--config`) or through a
//! running connector's API (`--url`, token from `LATCH_TOKEN`).

use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::Args;

use crate::caps::SecretStore;
use crate::caps::certs::ca::{self, CA_SECRET};
use crate::config::{Config, parse_duration};
use crate::connector::live_connector;
use crate::ledger::{GrantRecord, Ledger, State, check_grant_id};
use crate::service::{self, GrantArgs};

use super::remote::Remote;

fn write_private(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(bytes)?;
    Ok(())
}

/// `latch init`: the data directory, the user CA, an example config.
pub fn init(dir: &Path) -> anyhow::Result<ExitCode> {
    use std::os::unix::fs::PermissionsExt;
    let secrets = dir.join("secrets");
    std::fs::create_dir_all(&secrets)
        .with_context(|| format!("cannot create {}", secrets.display()))?;
    std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o700))?;
    let ledger = Ledger::open(dir)?;
    println!("ready    {} (the ledger)", ledger.path().display());
    let ca_path = secrets.join(CA_SECRET);
    if ca_path.exists() {
        println!("kept     {} (the user CA exists)", ca_path.display());
    } else {
        let key = ca::new_ca().map_err(|e| anyhow::anyhow!("{e}"))?;
        write_private(&ca_path, key.expose(), 0o600)?;
        println!("created  {} (the user CA, mode 0600)", ca_path.display());
    }
    let config = dir.join("latch.toml");
    if config.exists() {
        println!("kept     {}", config.display());
    } else {
        std::fs::write(&config, include_str!("../../../examples/latch.toml"))?;
        println!(
            "created  {} (edit it: guest path, sha256 pin, servers)",
            config.display()
        );
    }
    let store = SecretStore::new(Some(&secrets), None).map_err(anyhow::Error::msg)?;
    let public = ca::public_key(&store).map_err(|e| anyhow::anyhow!("{e}"))?;
    println!("user CA  {public}");
    Ok(ExitCode::SUCCESS)
}

/// Where a command acts: locally on a configuration, or through a running connector.
#[derive(Debug, Args)]
pub struct Where {
    /// Path to latch.toml: act locally (this process reaches the servers and the ledger).
    #[arg(long, required_unless_present = "url", conflicts_with = "url")]
    pub config: Option<PathBuf>,
    /// A running connector (`latch serve`) on this machine, e.g. http://127.0.0.1:8700; the
    /// API token is read from LATCH_TOKEN.
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
}

pub(super) enum Target {
    Local(Box<Config>),
    Remote(Remote),
}

impl Where {
    pub(super) fn target(&self) -> anyhow::Result<Target> {
        match (&self.config, &self.url) {
            (Some(path), _) => Ok(Target::Local(Box::new(Config::load(path)?))),
            (None, Some(url)) => Ok(Target::Remote(Remote::from_env(url)?)),
            (None, None) => bail!("give --config FILE or --url URL"),
        }
    }
}

/// `latch resources`.
pub async fn resources(at: &Where, integration: &str, json: bool) -> anyhow::Result<ExitCode> {
    crate::config::check_integration_name(integration).context("--integration")?;
    let resources = match at.target()? {
        Target::Local(config) => {
            let connector = live_connector(&config)?;
            serde_json::to_value(service::resources(&connector, integration).await?)?
        }
        Target::Remote(api) => {
            api.get(&format!("/v1/integrations/{integration}/resources"))
                .await?
        }
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&resources)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("{:<20} {:<14} {:<30} TAGS", "ID", "KIND", "PERMISSIONS");
    for r in resources.as_array().into_iter().flatten() {
        let strings = |v: &serde_json::Value| -> Vec<String> {
            v.as_array()
                .into_iter()
                .flatten()
                .map(|x| match x {
                    serde_json::Value::Array(kv) if kv.len() == 2 => format!(
                        "{}={}",
                        kv[0].as_str().unwrap_or("?"),
                        kv[1].as_str().unwrap_or("?")
                    ),
                    other => other.as_str().unwrap_or("?").to_string(),
                })
                .collect()
        };
        println!(
            "{:<20} {:<14} {:<30} {}",
            r["id"].as_str().unwrap_or("?"),
            r["kind"].as_str().unwrap_or("?"),
            strings(&r["permissions"]).join(","),
            strings(&r["tags"]).join(",")
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Arguments of `latch grant`.
#[derive(Debug, Args)]
pub struct GrantCli {
    #[command(flatten)]
    at: Where,
    /// The integration to grant through.
    #[arg(long)]
    integration: String,
    /// The resource (e.g. server name) to grant access to; repeat it to grant several at once
    /// (one grant each, carried out concurrently, with a progress bar on a terminal).
    #[arg(long, required = true)]
    resource: Vec<String>,
    /// The requester's e-mail.
    #[arg(long = "user", value_name = "EMAIL")]
    email: String,
    /// How long access lasts, e.g. 90s, 15m, 8h.
    #[arg(long = "for", value_name = "DURATION")]
    duration: String,
    /// The permission (e.g. group) to grant; default: the integration's default (for SSH
    /// servers, the user's own group only).
    #[arg(long)]
    permission: Option<String>,
    /// An explicit account name (default: derived from the e-mail).
    #[arg(long)]
    username: Option<String>,
    /// The requester's OpenSSH public key file; without it Latch generates a key pair and
    /// shows the private key once.
    #[arg(long, value_name = "FILE")]
    public_key: Option<PathBuf>,
    /// Write the certificate (and a generated private key, mode 0600) into DIR.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    /// Do not grant: show what the grant would do on each server (its reads run for real,
    /// its changes are listed, not made), like `terraform plan`.
    #[arg(long)]
    plan: bool,
}

fn rfc3339(secs: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs)).to_string()
}

/// `latch grant`.
pub async fn grant(args: GrantCli) -> anyhow::Result<ExitCode> {
    let duration = parse_duration(&args.duration).context("--for")?;
    let public_key = match &args.public_key {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("--public-key: cannot read {}", path.display()))?,
        ),
        None => None,
    };
    if let Some(key) = &public_key {
        service::check_public_key(key).context("--public-key")?;
    }
    let mut seen = std::collections::BTreeSet::new();
    if let Some(dup) = args.resource.iter().find(|r| !seen.insert(r.as_str())) {
        bail!("--resource {dup:?} is given twice");
    }
    if args.resource.len() > MAX_RESOURCES {
        bail!(
            "at most {MAX_RESOURCES} resources per command, not {}",
            args.resource.len()
        );
    }
    let via = match args.at.target()? {
        Target::Local(config) => Via::Local(
            std::sync::Arc::new(live_connector(&config)?),
            std::sync::Arc::new(Ledger::open(&config.data_dir)?),
        ),
        Target::Remote(api) => Via::Remote(std::sync::Arc::new(api)),
    };
    let actor = super::actor::os_actor();
    let request = |resource: &str| GrantArgs {
        grant_id: None,
        actor: actor.clone(),
        integration: args.integration.clone(),
        resource: resource.to_string(),
        permission: args.permission.clone(),
        email: args.email.clone(),
        username: args.username.clone(),
        duration,
        public_key: public_key.clone(),
    };
    if args.plan {
        return plan(
            &via,
            args.resource.iter().map(|r| request(r)).collect(),
            args.json,
        )
        .await;
    }
    if let [resource] = args.resource.as_slice() {
        let granted = via.grant(request(resource)).await?;
        return show_access(granted, args.out.as_deref(), args.json, "granted");
    }

    // Several resources: one grant each, concurrently; each succeeds or fails on its own.
    let bar = indicatif::ProgressBar::new(args.resource.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} granting [{bar:30}] {pos}/{len} {msg}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    let mut set = tokio::task::JoinSet::new();
    for (i, resource) in args.resource.iter().enumerate() {
        let (via, req) = (via.clone(), request(resource));
        set.spawn(async move { (i, via.grant(req).await) });
    }
    let mut results: Vec<Option<anyhow::Result<serde_json::Value>>> =
        args.resource.iter().map(|_| None).collect();
    while let Some(done) = set.join_next().await {
        let (i, result) = done?;
        bar.inc(1);
        bar.set_message(format!(
            "{} {}",
            args.resource[i],
            if result.is_ok() { "ok" } else { "FAILED" }
        ));
        results[i] = Some(result);
    }
    bar.finish_and_clear();
    let mut failed = 0;
    let mut all = Vec::new();
    for (resource, result) in args.resource.iter().zip(results) {
        match result
            .expect("every task reported")
            .and_then(|v| save_access(v, args.out.as_deref()))
        {
            Ok(v) => {
                if !args.json {
                    print_access(&v, "granted");
                }
                all.push(v);
            }
            Err(e) => {
                failed += 1;
                eprintln!("error: {resource}: {e:#}");
                all.push(serde_json::json!({ "resource": resource, "error": format!("{e:#}") }));
            }
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&all)?);
    }
    if failed > 0 {
        eprintln!("{failed} of {} grants failed", args.resource.len());
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// Most resources one `latch grant` takes.
pub const MAX_RESOURCES: usize = 100;

/// Where a grant is carried out: in this process, or by a running connector.
#[derive(Clone)]
enum Via {
    Local(
        std::sync::Arc<crate::connector::Connector>,
        std::sync::Arc<Ledger>,
    ),
    Remote(std::sync::Arc<Remote>),
}

/// `latch grant --plan`: what each grant would do.
async fn plan(via: &Via, requests: Vec<GrantArgs>, json: bool) -> anyhow::Result<ExitCode> {
    let mut all = Vec::new();
    for args in requests {
        all.push(via.plan(args).await?);
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&all)?);
        return Ok(ExitCode::SUCCESS);
    }
    for p in &all {
        println!(
            "plan for {} on {} ({}): {}; {} read(s) carried out",
            p["permission"].as_str().unwrap_or("?"),
            p["resource"].as_str().unwrap_or("?"),
            p["integration"].as_str().unwrap_or("?"),
            p["outcome"].as_str().unwrap_or("?"),
            p["reads"]
        );
        let changes: Vec<&str> = p["changes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c.as_str())
            .collect();
        if changes.is_empty() {
            println!("  no change");
        }
        for change in changes {
            println!("  + {change}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The API's grant request body for `args` (the actor is the token, not a field).
fn grant_body(args: &GrantArgs) -> serde_json::Value {
    serde_json::json!({
        "integration": args.integration,
        "resource": args.resource,
        "permission": args.permission,
        "user": args.email,
        "username": args.username,
        "duration": args.duration.as_secs(),
        "public_key": args.public_key,
    })
}

impl Via {
    async fn plan(&self, args: GrantArgs) -> anyhow::Result<serde_json::Value> {
        match self {
            Via::Local(connector, ledger) => Ok(serde_json::to_value(
                service::plan_grant(connector, ledger, args).await?,
            )?),
            Via::Remote(api) => api.post("/v1/grants/plan", grant_body(&args)).await,
        }
    }

    async fn grant(&self, args: GrantArgs) -> anyhow::Result<serde_json::Value> {
        match self {
            Via::Local(connector, ledger) => Ok(serde_json::to_value(
                service::grant(connector, ledger, args).await?,
            )?),
            Via::Remote(api) => api.post("/v1/grants", grant_body(&args)).await,
        }
    }
}

/// Print access details (of a grant or an extension), writing the certificate and a
/// generated private key into `out` if given.
fn show_access(
    v: serde_json::Value,
    out: Option<&Path>,
    json: bool,
    verb: &str,
) -> anyhow::Result<ExitCode> {
    let v = save_access(v, out)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print_access(&v, verb);
    }
    Ok(ExitCode::SUCCESS)
}

/// Write the certificate (replaced atomically: an extension re-issues it) and a generated
/// private key (never overwritten, mode 0600) into `out`; returns `v` with the file paths and
/// the expiry as RFC 3339 added.
fn save_access(mut v: serde_json::Value, out: Option<&Path>) -> anyhow::Result<serde_json::Value> {
    let id = v["grant_id"].as_str().unwrap_or_default().to_string();
    check_grant_id(&id).context("the connector's answer")?;
    v["expires_at_rfc3339"] = rfc3339(v["expires_at"].as_u64().unwrap_or(0)).into();
    let Some(dir) = out else { return Ok(v) };
    std::fs::create_dir_all(dir)?;
    if let Some(key) = v["private_key"].as_str() {
        let path = dir.join(&id);
        write_private(&path, key.as_bytes(), 0o600)?;
        v["private_key_file"] = path.display().to_string().into();
    }
    if let Some(cert) = v["certificate"].as_str() {
        let path = dir.join(format!("{id}-cert.pub"));
        let tmp = dir.join(format!(".{id}-cert.pub.tmp"));
        let _ = std::fs::remove_file(&tmp);
        write_private(&tmp, format!("{cert}\n").as_bytes(), 0o644)?;
        std::fs::rename(&tmp, &path)?;
        v["certificate_file"] = path.display().to_string().into();
    }
    Ok(v)
}

/// The human form of [`save_access`]'s result.
fn print_access(v: &serde_json::Value, verb: &str) {
    println!(
        "{verb} {}: {} on {} ({}:{}) until {}",
        v["grant_id"].as_str().unwrap_or("?"),
        v["username"].as_str().unwrap_or("?"),
        v["resource"].as_str().unwrap_or("?"),
        v["host"].as_str().unwrap_or("?"),
        v["port"],
        v["expires_at_rfc3339"].as_str().unwrap_or("?")
    );
    println!("{}", v["instructions"].as_str().unwrap_or(""));
    let files = ["private_key_file", "certificate_file"]
        .iter()
        .any(|f| v[*f].is_string());
    if !files {
        if let Some(cert) = v["certificate"].as_str() {
            println!("certificate:\n{cert}");
        }
        if let Some(key) = v["private_key"].as_str() {
            println!("private key (shown once, not stored):\n{key}");
        }
    }
    if let Some(password) = v["password"].as_str() {
        println!("password (shown once, not stored): {password}");
    }
    if let Some(extras) = v["extras"].as_object() {
        for (name, text) in extras {
            println!("{name}:\n{}", text.as_str().unwrap_or(""));
        }
    }
    for (what, field) in [
        ("private key", "private_key_file"),
        ("certificate", "certificate_file"),
    ] {
        if let Some(path) = v[field].as_str() {
            println!("{what}: {path}");
        }
    }
}

/// Arguments of `latch extend`.
#[derive(Debug, Args)]
pub struct ExtendCli {
    #[command(flatten)]
    at: Where,
    /// The grant id (from `latch grant`).
    grant_id: String,
    /// The new length of access, counted from now, e.g. 30m.
    #[arg(long = "for", value_name = "DURATION")]
    duration: String,
    /// Write the new certificate into DIR (replacing the old one).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// `latch extend`: a later expiry and a new certificate.
pub async fn extend(args: ExtendCli) -> anyhow::Result<ExitCode> {
    check_grant_id(&args.grant_id)?;
    let duration = parse_duration(&args.duration).context("--for")?;
    let extended = match args.at.target()? {
        Target::Local(config) => {
            let connector = live_connector(&config)?;
            let ledger = Ledger::open(&config.data_dir)?;
            let granted = service::extend(
                &connector,
                &ledger,
                &args.grant_id,
                duration,
                &super::actor::os_actor(),
            )
            .await?;
            serde_json::to_value(&granted)?
        }
        Target::Remote(api) => {
            let body = serde_json::json!({ "duration": duration.as_secs() });
            api.post(&format!("/v1/grants/{}/extend", args.grant_id), body)
                .await?
        }
    };
    show_access(extended, args.out.as_deref(), args.json, "extended")
}

/// `latch revoke`.
pub async fn revoke(at: &Where, grant_id: &str, json: bool) -> anyhow::Result<ExitCode> {
    check_grant_id(grant_id)?;
    let record: GrantRecord = match at.target()? {
        Target::Local(config) => {
            let connector = live_connector(&config)?;
            let ledger = Ledger::open(&config.data_dir)?;
            service::revoke(&connector, &ledger, grant_id, &super::actor::os_actor()).await?
        }
        Target::Remote(api) => serde_json::from_value(
            api.post(
                &format!("/v1/grants/{grant_id}/revoke"),
                serde_json::Value::Null,
            )
            .await?,
        )?,
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&record)?);
    } else {
        println!(
            "revoked {}: {} on {}",
            record.grant_id,
            record.username.as_deref().unwrap_or("?"),
            record.resource_id
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `latch grants`: the ledger's grants, newest first.
pub async fn grants(at: &Where, state: Option<&str>, json: bool) -> anyhow::Result<ExitCode> {
    let state = state.map(State::parse).transpose().context("--state")?;
    let grants: Vec<GrantRecord> = match at.target()? {
        Target::Local(config) => Ledger::open(&config.data_dir)?.list(state)?,
        Target::Remote(api) => {
            let query = state.map(|s| format!("?state={}", s.as_str()));
            serde_json::from_value(
                api.get(&format!("/v1/grants{}", query.unwrap_or_default()))
                    .await?,
            )?
        }
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&grants)?);
        return Ok(ExitCode::SUCCESS);
    }
    let now = crate::caps::certs::ca::unix_now();
    let rows: Vec<[String; 7]> = grants
        .iter()
        .map(|g| {
            let ends = match g.state {
                State::Revoked | State::Failed => "-".to_string(),
                _ if g.expires_at <= now => "expired".to_string(),
                _ => {
                    humantime::format_duration(Duration::from_secs(g.expires_at - now)).to_string()
                }
            };
            [
                g.grant_id.clone(),
                g.state.as_str().to_string(),
                g.integration.clone(),
                g.resource_id.clone(),
                g.username.clone().unwrap_or_else(|| "-".into()),
                g.email.clone(),
                format!("{} ({ends})", rfc3339(g.expires_at)),
            ]
        })
        .collect();
    print_table(
        [
            "GRANT",
            "STATE",
            "INTEGRATION",
            "RESOURCE",
            "USER",
            "EMAIL",
            "EXPIRES (LEFT)",
        ],
        &rows,
    );
    if grants.is_empty() {
        println!(
            "(no grants{})",
            state
                .map(|s| format!(" in state {}", s.as_str()))
                .unwrap_or_default()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Print `rows` under `head` as plain aligned columns (no borders: easy to read and to grep).
pub(super) fn print_table<const N: usize>(head: [&str; N], rows: &[[String; N]]) {
    let mut table = comfy_table::Table::new();
    table
        .load_style(comfy_table::presets::NOTHING)
        .set_content_arrangement(comfy_table::ContentArrangement::Disabled)
        .set_header(head);
    for row in rows {
        table.add_row(row);
    }
    for column in table.column_iter_mut() {
        column.set_padding((0, 2));
    }
    for line in table.lines() {
        println!("{}", line.trim_end());
    }
}

/// `latch serve`: the HTTP API and the expiry scheduler, until SIGINT or SIGTERM.
pub async fn serve(config: &Path) -> anyhow::Result<ExitCode> {
    let config = Config::load(config)?;
    let connector = std::sync::Arc::new(live_connector(&config)?);
    let ledger = std::sync::Arc::new(Ledger::open(&config.data_dir)?);
    // A broken access policy stops the start, naming file, line and column.
    let access = match &config.access_policy {
        Some(_) => Some(std::sync::Arc::new(super::policy::load(&config)?)),
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    // The address actually bound (with `listen = "127.0.0.1:0"` the kernel picks the port):
    // the one line tests and supervisors read to find the API.
    let bound = listener.local_addr().unwrap_or(config.listen);
    let certs = match &config.api.tls {
        Some((cert, key)) => Some(crate::api::tls::Reloading::new(cert, key)?),
        None => None,
    };
    eprintln!(
        "latch serve: {} integration(s); API on {}://{bound} (bearer tokens); ledger {}; revoking at expiry",
        config.integrations.len(),
        if certs.is_some() { "https" } else { "http" },
        ledger.path().display(),
    );
    if certs.is_none() && !bound.ip().is_loopback() {
        // Only with [api] insecure_http = true (the config refuses it otherwise).
        let warning = format!(
            "the API listens on {bound} in PLAIN HTTP ([api] insecure_http = true): bearer \
             tokens, and the private keys and passwords grants deliver, cross the network \
             readable by anyone on the path; set [api] tls_cert and tls_key"
        );
        tracing::warn!("{warning}");
        eprintln!("latch serve: WARNING: {warning}");
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let app = crate::api::router(crate::api::Api {
        connector: connector.clone(),
        ledger: ledger.clone(),
        access,
    });
    let http_stop = stop_rx.clone();
    let http = async move {
        match certs {
            Some(certs) => crate::api::tls::serve(listener, app, certs, stopped(http_stop)).await,
            None => axum::serve(listener, app)
                .with_graceful_shutdown(stopped(http_stop))
                .await
                .map_err(anyhow::Error::from),
        }
    };
    let mut scheduler =
        crate::service::scheduler::Scheduler::new(connector, ledger).rotating(&config.secrets_dir);
    if let Some(path) = &config.audit_forward_file {
        let forwarder = crate::ledger::forward::Forwarder::open(path)?;
        eprintln!(
            "latch serve: forwarding the audit log to {}",
            path.display()
        );
        scheduler = scheduler.forwarding(forwarder);
    }
    let scheduler = scheduler.run(stopped(stop_rx));
    let signals = async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("install the SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        let _ = stop_tx.send(true);
    };
    let (http, scheduler, ()) = tokio::join!(http, scheduler, signals);
    http?;
    scheduler?;
    eprintln!("latch serve: stopped");
    Ok(ExitCode::SUCCESS)
}

/// `latch rotate`: rotate an integration's service key or password now (see `rotation`).
pub async fn rotate(config: &Path, integration: &str, json: bool) -> anyhow::Result<ExitCode> {
    let config = Config::load(config)?;
    let connector = live_connector(&config)?;
    let ledger = Ledger::open(&config.data_dir)?;
    let r = crate::service::rotation::rotate(
        &connector,
        &ledger,
        &config.secrets_dir,
        integration,
        &super::actor::os_actor(),
    )
    .await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        match (&r.old_fingerprint, &r.new_fingerprint) {
            (Some(old), Some(new)) => println!(
                "rotated the service key of {}: {old} -> {new} ({} resources, {} servers \
                 accepted the new key)",
                r.integration, r.resources, r.servers_checked
            ),
            _ => println!(
                "rotated the service {} of {} ({} resources, {} servers accepted the new one)",
                r.credential, r.integration, r.resources, r.servers_checked
            ),
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `latch token create`: a new API token with a scope and an expiry, printed once and stored
/// only as its sha256.
pub fn token_create(
    config: &Path,
    name: &str,
    scope: crate::ledger::TokenScope,
    lifetime: &str,
) -> anyhow::Result<ExitCode> {
    crate::config::check_integration_name(name).context("token name")?;
    let config = Config::load(config)?;
    if scope.integrations.is_empty() {
        anyhow::bail!(
            "a token acts on the integrations its scope names: give --integration NAME \
             (repeat it for more) or --all-integrations"
        );
    }
    for i in scope.integrations.iter().filter(|i| *i != "*") {
        config.integration(i).context("--integration")?;
    }
    for g in &scope.groups {
        let ok = !g.is_empty()
            && g.len() <= 64
            && g.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if !ok {
            anyhow::bail!("--group {g:?}: use 1 to 64 of [A-Za-z0-9._-]");
        }
    }
    let lifetime = crate::config::parse_duration(lifetime).context("--for")?;
    if lifetime.as_secs() > crate::ledger::token::MAX_LIFETIME_SECS {
        anyhow::bail!("--for: a token lives at most 366 days (make a new one then)");
    }
    let expires_at = crate::caps::certs::ca::unix_now() + lifetime.as_secs();
    let ledger = Ledger::open(&config.data_dir)?;
    let token = crate::api::new_token();
    let event = crate::ledger::Event {
        actor: super::actor::os_actor(),
        event: "token.created".into(),
        detail: serde_json::json!({ "name": name, "expires_at": expires_at, "scope": scope }),
        outcome: "ok".into(),
        ..Default::default()
    };
    ledger.add_token(
        name,
        &crate::api::token_hash(&token),
        expires_at,
        &scope,
        event,
    )?;
    println!("{token}");
    eprintln!(
        "token {name:?} created ({}; until {}); it is shown once and stored only as its sha256",
        scope.describe(),
        humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(expires_at))
    );
    Ok(ExitCode::SUCCESS)
}

/// `latch token list`: every token's name, scope, expiry and status.
pub fn token_list(config: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let config = Config::load(config)?;
    let tokens = Ledger::open(&config.data_dir)?.tokens()?;
    let now = crate::caps::certs::ca::unix_now();
    if json {
        println!("{}", serde_json::to_string_pretty(&tokens)?);
        return Ok(ExitCode::SUCCESS);
    }
    let when = |t: u64| humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(t));
    let rows: Vec<[String; 4]> = tokens
        .iter()
        .map(|t| {
            let status = match t.unusable(now) {
                None => "active".to_string(),
                Some(_) if t.revoked_at.is_some() => "revoked".to_string(),
                Some(_) => "expired".to_string(),
            };
            [
                t.name.clone(),
                t.scope.describe(),
                when(t.expires_at).to_string(),
                status,
            ]
        })
        .collect();
    print_table(["NAME", "SCOPE", "EXPIRES", "STATUS"], &rows);
    Ok(ExitCode::SUCCESS)
}

/// `latch token revoke`: the token stops working now.
pub fn token_revoke(config: &Path, name: &str) -> anyhow::Result<ExitCode> {
    let config = Config::load(config)?;
    let ledger = Ledger::open(&config.data_dir)?;
    let event = crate::ledger::Event {
        actor: super::actor::os_actor(),
        event: "token.revoked".into(),
        detail: serde_json::json!({ "name": name }),
        outcome: "ok".into(),
        ..Default::default()
    };
    if ledger.revoke_token(name, event)? {
        println!("token {name:?} revoked");
    } else {
        println!("token {name:?} was revoked already");
    }
    Ok(ExitCode::SUCCESS)
}
