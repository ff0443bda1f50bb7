//! `latch init`, `resources`, `grant`, `revoke`: just-in-time access from the command line.

use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::Context;
use clap::Args;

use crate::caps::SecretStore;
use crate::caps::certs::ca::{self, CA_SECRET};
use crate::config::{Config, parse_duration};
use crate::connector::live_connector;
use crate::ledger::{Ledger, State, check_grant_id};
use crate::service::{self, GrantArgs};

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

/// `latch resources`.
pub async fn resources(config: &Path, integration: &str, json: bool) -> anyhow::Result<ExitCode> {
    let config = Config::load(config)?;
    let connector = live_connector(&config)?;
    let resources = service::resources(&connector, integration).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&resources)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("{:<20} {:<14} {:<30} TAGS", "ID", "KIND", "PERMISSIONS");
    for r in resources {
        let tags: Vec<String> = r.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!(
            "{:<20} {:<14} {:<30} {}",
            r.id,
            r.kind,
            r.permissions.join(","),
            tags.join(",")
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Arguments of `latch grant`.
#[derive(Debug, Args)]
pub struct GrantCli {
    /// Path to latch.toml.
    #[arg(long)]
    config: PathBuf,
    /// The integration to grant through.
    #[arg(long)]
    integration: String,
    /// The resource (e.g. server name) to grant access to.
    #[arg(long)]
    resource: String,
    /// The requester's e-mail.
    #[arg(long = "user", value_name = "EMAIL")]
    email: String,
    /// How long access lasts, e.g. 90s, 15m, 8h.
    #[arg(long = "for", value_name = "DURATION")]
    duration: String,
    /// The group to grant (default: the user's own group only).
    #[arg(long, default_value = "Default")]
    permission: String,
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
    let config = Config::load(&args.config)?;
    let connector = live_connector(&config)?;
    let ledger = Ledger::open(&config.data_dir)?;
    let granted = service::grant(
        &connector,
        &ledger,
        GrantArgs {
            integration: args.integration,
            resource: args.resource,
            permission: args.permission,
            email: args.email,
            username: args.username,
            duration,
            public_key,
        },
    )
    .await?;
    let mut files = Vec::new();
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir)?;
        if let Some(key) = &granted.private_key {
            let path = dir.join(&granted.grant_id);
            write_private(&path, key.expose(), 0o600)?;
            files.push(("private key", path));
        }
        if let Some(cert) = &granted.certificate {
            let path = dir.join(format!("{}-cert.pub", granted.grant_id));
            write_private(&path, format!("{cert}\n").as_bytes(), 0o644)?;
            files.push(("certificate", path));
        }
    }
    if args.json {
        let mut v = serde_json::to_value(&granted)?;
        v["expires_at_rfc3339"] = rfc3339(granted.expires_at).into();
        for (what, path) in &files {
            v[format!("{}_file", what.replace(' ', "_"))] = path.display().to_string().into();
        }
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "granted {}: {} on {} ({}:{}) until {}",
        granted.grant_id,
        granted.username,
        granted.resource,
        granted.host,
        granted.port,
        rfc3339(granted.expires_at)
    );
    println!("{}", granted.instructions);
    if files.is_empty() {
        if let Some(cert) = &granted.certificate {
            println!("certificate:\n{cert}");
        }
        if let Some(key) = &granted.private_key {
            println!(
                "private key (shown once, not stored):\n{}",
                String::from_utf8_lossy(key.expose())
            );
        }
    }
    for (what, path) in files {
        println!("{what}: {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// `latch revoke`.
pub async fn revoke(config: &Path, grant_id: &str, json: bool) -> anyhow::Result<ExitCode> {
    check_grant_id(grant_id)?;
    let config = Config::load(config)?;
    let connector = live_connector(&config)?;
    let ledger = Ledger::open(&config.data_dir)?;
    let record = service::revoke(&connector, &ledger, grant_id, "cli").await?;
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
pub fn grants(config: &Path, state: Option<&str>, json: bool) -> anyhow::Result<ExitCode> {
    let config = Config::load(config)?;
    let state = state.map(State::parse).transpose().context("--state")?;
    let grants = Ledger::open(&config.data_dir)?.list(state)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&grants)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<26} {:<9} {:<12} {:<10} {:<16} {:<20} EXPIRES",
        "GRANT", "STATE", "INTEGRATION", "RESOURCE", "USER", "EMAIL"
    );
    for g in grants {
        println!(
            "{:<26} {:<9} {:<12} {:<10} {:<16} {:<20} {}",
            g.grant_id,
            g.state.as_str(),
            g.integration,
            g.resource_id,
            g.username.as_deref().unwrap_or("-"),
            g.email,
            rfc3339(g.expires_at)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `latch audit verify`: check the hash chain; exit 1 naming the first bad record.
pub fn audit_verify(config: &Path) -> anyhow::Result<ExitCode> {
    let config = Config::load(config)?;
    let ledger = Ledger::open(&config.data_dir)?;
    match ledger.audit_verify()? {
        Ok(n) => {
            println!(
                "ok: {n} audit records, chain intact ({})",
                ledger.path().display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(broken) => {
            println!("TAMPERED: {broken}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// `latch audit tail`: the last records.
pub fn audit_tail(config: &Path, n: usize, json: bool) -> anyhow::Result<ExitCode> {
    let config = Config::load(config)?;
    let records = Ledger::open(&config.data_dir)?.audit_tail(n)?;
    for r in records {
        if json {
            println!("{}", serde_json::to_string(&r)?);
        } else {
            let when =
                humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(r.time as u64));
            println!(
                "{:>6} {when} {:<18} {:<9} {} {} {}",
                r.seq,
                r.event,
                r.outcome,
                r.grant_id.as_deref().unwrap_or("-"),
                r.target.as_deref().unwrap_or(""),
                if r.detail.is_null() {
                    String::new()
                } else {
                    r.detail.to_string()
                }
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `latch serve`: the HTTP API and the expiry scheduler, until SIGINT or SIGTERM.
pub async fn serve(config: &Path) -> anyhow::Result<ExitCode> {
    let config = Config::load(config)?;
    let connector = std::sync::Arc::new(live_connector(&config)?);
    let ledger = std::sync::Arc::new(Ledger::open(&config.data_dir)?);
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    eprintln!(
        "latch serve: {} integration(s); API on http://{} (bearer tokens); ledger {}; revoking at expiry",
        config.integrations.len(),
        config.listen,
        ledger.path().display(),
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let app = crate::api::router(crate::api::Api {
        connector: connector.clone(),
        ledger: ledger.clone(),
    });
    let http = axum::serve(listener, app).with_graceful_shutdown(stopped(stop_rx.clone()));
    let scheduler = crate::scheduler::Scheduler::new(connector, ledger).run(stopped(stop_rx));
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

/// `latch token create`: a new API token, printed once and stored only as its sha256.
pub fn token_create(config: &Path, name: &str) -> anyhow::Result<ExitCode> {
    crate::config::check_integration_name(name).context("token name")?;
    let config = Config::load(config)?;
    let ledger = Ledger::open(&config.data_dir)?;
    let token = crate::api::new_token();
    let event = crate::ledger::Event {
        actor: "cli".into(),
        event: "token.created".into(),
        detail: serde_json::json!({ "name": name }),
        outcome: "ok".into(),
        ..Default::default()
    };
    ledger.add_token(name, &crate::api::token_hash(&token), event)?;
    println!("{token}");
    eprintln!("token {name:?} created; it is shown once and stored only as its sha256");
    Ok(ExitCode::SUCCESS)
}
