//! The `latch` command line: a thin layer over the library, human output or `--json`.

mod access;
mod actor;
mod audit;
mod connect;
mod guest;
mod policy;
mod remote;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::caps::Unavailable;
use crate::config::Config;
use crate::connector::Connector;
use crate::runtime::Export;

/// Latch: just-in-time access to servers, with integrations you can read.
#[derive(Debug, Parser)]
#[command(name = "latch", version, about, max_term_width = 100)]
pub struct Cli {
    /// Log filter (tracing syntax), e.g. `info` or `latch=debug`. Default: `warn`; outside
    /// `latch serve` also `latch::outcome=off`, since the command prints the error itself.
    #[arg(long, global = true, env = "LATCH_LOG")]
    pub log: Option<String>,
    #[command(subcommand)]
    command: Command,
}

impl Cli {
    /// The log filter: `--log` / `LATCH_LOG` as given, else the command's default. A failed
    /// or refused call is logged (target `latch::outcome`) for `latch serve`, whose caller
    /// is across the network; a one-shot command prints that error once, as its own.
    pub fn log_filter(&self) -> String {
        match (&self.log, &self.command) {
            (Some(filter), _) => filter.clone(),
            (None, Command::Serve { .. }) => "warn".into(),
            (None, _) => "warn,latch::outcome=off".into(),
        }
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Read and run guest components (integrations) outside a connector.
    #[command(subcommand)]
    Guest(guest::GuestCommand),
    /// Check a configuration: its syntax, every guest's pin, every guest's `validate`; with
    /// `--connect`, also log in to every server of every integration (SSH and WinRM).
    Check {
        /// Path to latch.toml.
        #[arg(long)]
        config: PathBuf,
        /// Log in to every server: authenticated / refused / unreachable, with the reason.
        #[arg(long)]
        connect: bool,
        /// With `--connect`: the statuses as JSON.
        #[arg(long, requires = "connect")]
        json: bool,
    },
    /// Create the data directory, the user CA (mode 0600) and an example latch.toml.
    Init {
        /// The data directory.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
    /// List the resources an integration can grant access to.
    Resources {
        #[command(flatten)]
        at: access::Where,
        /// The integration.
        #[arg(long)]
        integration: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Grant just-in-time access.
    Grant(access::GrantCli),
    /// Extend an active grant (a later expiry and a new certificate).
    Extend(access::ExtendCli),
    /// List the ledger's grants, newest first.
    Grants {
        #[command(flatten)]
        at: access::Where,
        /// Only grants in this state: granting, active, revoking, revoked, failed.
        #[arg(long)]
        state: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// The audit log: verify its hash chain, or show its last records.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// API tokens for `latch serve`.
    #[command(subcommand)]
    Token(TokenCommand),
    /// The access policy (`[access] policy`, Cedar): who may request, approve, revoke and read
    /// what.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Run the connector: the HTTP API and the expiry scheduler (revoke at expiry, retries,
    /// reconciliation).
    Serve {
        /// Path to latch.toml.
        #[arg(long)]
        config: PathBuf,
    },
    /// Rotate an integration's service credential now: a new SSH key pair (authorized on
    /// every server, checked, switched to, the old one removed) or a new password (set on
    /// every server, logged in with, switched to).
    Rotate {
        /// Path to latch.toml.
        #[arg(long)]
        config: PathBuf,
        /// The integration.
        #[arg(long)]
        integration: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Take a grant's access away now.
    Revoke {
        #[command(flatten)]
        at: access::Where,
        /// The grant id (from `latch grant`).
        grant_id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum PolicyCommand {
    /// Print Latch's access schema (entities, actions, context), which policies are checked
    /// against.
    Schema,
    /// Parse the policy and validate it against the schema and latch.toml's integrations;
    /// errors name file, line and column.
    Check {
        /// Path to latch.toml.
        #[arg(long)]
        config: PathBuf,
    },
    /// Run a file of cases (who asks what, the decision expected) against the policy.
    Test {
        /// Path to latch.toml.
        #[arg(long)]
        config: PathBuf,
        /// The case file (TOML, `[[case]]`).
        cases: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Create a token with a scope and an expiry: printed once, stored only as its sha256.
    Create {
        /// Path to latch.toml.
        #[arg(long)]
        config: PathBuf,
        /// A name for the token (shown as the actor in the audit log).
        name: String,
        /// An integration it may grant on (and plan, extend, list); repeat for more.
        #[arg(long = "integration")]
        integrations: Vec<String>,
        /// Every integration, present and future (instead of --integration).
        #[arg(long, conflicts_with = "integrations")]
        all_integrations: bool,
        /// It may also revoke and extend grants that another caller asked for.
        #[arg(long)]
        revoke_others: bool,
        /// It may read the audit log and the metrics.
        #[arg(long)]
        read_audit: bool,
        /// A group its identity is in, for the access policy; repeat for more.
        #[arg(long = "group")]
        groups: Vec<String>,
        /// How long it works (default 30d, at most 366d).
        #[arg(long = "for", default_value = "30d")]
        lifetime: String,
    },
    /// List the tokens: name, scope, expiry, revoked or not (never a token itself).
    List {
        /// Path to latch.toml.
        #[arg(long)]
        config: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token now: the next request with it is refused (401).
    Revoke {
        /// Path to latch.toml.
        #[arg(long)]
        config: PathBuf,
        /// The token's name.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Check the hash chain; exit 1 naming the first edited, deleted or reordered record.
    Verify {
        /// Path to latch.toml.
        #[arg(long)]
        config: PathBuf,
        /// Also check against a forwarded copy (`[audit] forward_file`): finds records cut
        /// off the end of the ledger, which the chain alone cannot show.
        #[arg(long, value_name = "FILE")]
        against: Option<PathBuf>,
    },
    /// Show the last records.
    Tail {
        #[command(flatten)]
        at: access::Where,
        /// How many records.
        #[arg(short = 'n', long, default_value_t = 20)]
        lines: usize,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
}

impl Cli {
    /// Run the command; the exit code says whether it succeeded.
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        match self.command {
            Command::Guest(cmd) => cmd.run().await,
            Command::Check {
                config,
                connect,
                json,
            } => {
                if !connect {
                    return check(&config).await;
                }
                let loaded = Config::load(&config)?;
                connect::run(&loaded, json).await
            }
            Command::Init { dir } => access::init(&dir),
            Command::Resources {
                at,
                integration,
                json,
            } => access::resources(&at, &integration, json).await,
            Command::Grant(args) => access::grant(args).await,
            Command::Extend(args) => access::extend(args).await,
            Command::Serve { config } => access::serve(&config).await,
            Command::Token(TokenCommand::Create {
                config,
                name,
                integrations,
                all_integrations,
                revoke_others,
                read_audit,
                groups,
                lifetime,
            }) => {
                let scope = crate::ledger::TokenScope {
                    integrations: if all_integrations {
                        vec!["*".into()]
                    } else {
                        integrations
                    },
                    revoke_others,
                    read_audit,
                    groups,
                };
                access::token_create(&config, &name, scope, &lifetime)
            }
            Command::Policy(PolicyCommand::Schema) => policy::schema(),
            Command::Policy(PolicyCommand::Check { config }) => policy::check(&config),
            Command::Policy(PolicyCommand::Test { config, cases }) => policy::test(&config, &cases),
            Command::Token(TokenCommand::List { config, json }) => {
                access::token_list(&config, json)
            }
            Command::Token(TokenCommand::Revoke { config, name }) => {
                access::token_revoke(&config, &name)
            }
            Command::Grants { at, state, json } => {
                access::grants(&at, state.as_deref(), json).await
            }
            Command::Audit(AuditCommand::Verify { config, against }) => {
                audit::audit_verify(&config, against.as_deref())
            }
            Command::Audit(AuditCommand::Tail { at, lines, json }) => {
                audit::audit_tail(&at, lines, json).await
            }
            Command::Rotate {
                config,
                integration,
                json,
            } => access::rotate(&config, &integration, json).await,
            Command::Revoke { at, grant_id, json } => access::revoke(&at, &grant_id, json).await,
        }
    }
}

async fn check(path: &std::path::Path) -> anyhow::Result<ExitCode> {
    let config = Config::load(path)?;
    let connector = Connector::start(&config, Arc::new(Unavailable))?;
    let mut failed = 0;
    for (integration, ic) in connector.integrations() {
        let report = integration
            .call(
                connector.runtime(),
                Export::Validate {
                    config: ic.config_json.clone(),
                },
            )
            .await;
        match report.result {
            Ok(_) => println!(
                "ok    {}  {}  sha256 {}",
                ic.name,
                ic.guest.display(),
                ic.sha256
            ),
            Err(e) => {
                failed += 1;
                println!("FAIL  {}  {}: {e}", ic.name, ic.guest.display());
            }
        }
    }
    if config.access_policy.is_some() {
        match policy::load(&config) {
            Ok(access) => println!(
                "ok    access policy  {}  {} policies",
                access.source().display(),
                access.len()
            ),
            Err(e) => {
                failed += 1;
                println!("FAIL  access policy  {e:#}");
            }
        }
    }
    println!(
        "{}: {} integration(s), {} failed validation",
        path.display(),
        config.integrations.len(),
        failed
    );
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
