//! `latch policy`: the access policy (`[access] policy` in latch.toml, Cedar) — its schema,
//! a check against it, and a file of test cases.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;

use crate::access::{Access, run_cases, schema_text};
use crate::config::Config;

/// The access policy `config` names, parsed and validated for its integrations.
pub fn load(config: &Config) -> anyhow::Result<Access> {
    let path = config.access_policy.as_deref().with_context(|| {
        format!(
            "{} sets no [access] policy (the Cedar file of who may get what)",
            config.path.display()
        )
    })?;
    let names: Vec<&str> = config
        .integrations
        .iter()
        .map(|i| i.name.as_str())
        .collect();
    Access::load(path, &names)
}

/// `latch policy schema`: Latch's access schema.
pub fn schema() -> anyhow::Result<ExitCode> {
    print!("{}", schema_text());
    Ok(ExitCode::SUCCESS)
}

/// `latch policy check`: parse and validate the policy.
pub fn check(config: &Path) -> anyhow::Result<ExitCode> {
    let config = Config::load(config)?;
    let access = load(&config)?;
    println!(
        "ok    {}  {} policies, valid against Latch's access schema",
        access.source().display(),
        access.len()
    );
    Ok(ExitCode::SUCCESS)
}

/// `latch policy test`: run a case file; exit 1 unless every case passed.
pub fn test(config: &Path, cases: &Path) -> anyhow::Result<ExitCode> {
    let config = Config::load(config)?;
    let access = load(&config)?;
    let text = std::fs::read_to_string(cases)
        .with_context(|| format!("cannot read {}", cases.display()))?;
    let outcomes = run_cases(&access, &text, cases)?;
    let failed = outcomes.iter().filter(|o| o.failure.is_some()).count();
    for o in &outcomes {
        match &o.failure {
            None => println!("ok    {}  ({})", o.name, o.decision),
            Some(f) => println!("FAIL  {}: {f}; got {}", o.name, o.decision),
        }
    }
    println!("{} passed, {failed} failed", outcomes.len() - failed);
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
