//! `latch policy test`: a file of cases (who asks what, and the decision expected), run
//! against the policy like `opa test`.
//!
//! ```toml
//! [[case]]
//! name = "devs may ask for 4h on a dev server"
//! who = { id = "alice", email = "alice@example.test", groups = ["devs"] }
//! action = "request"
//! integration = "prod-ssh"
//! resource = "web-1"
//! tags = { env = "dev" }
//! permission = "admin"
//! duration = "4h"
//! expect = "allow"
//! why = ["devs-request-dev"]   # optional: exactly these policies decided it
//! approvals = 1                # optional, for an allowed request
//! ```
//! `approve` cases name the requester (`requester = { id = "bob" }`), `revoke` cases the
//! grant's owner (`owner = { … }`).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context as _, bail};
use serde::Deserialize;

use crate::{Access, Act, Ask, Principal};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default, rename = "case")]
    cases: Vec<Case>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Who {
    id: String,
    email: Option<String>,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    token: bool,
}

impl Who {
    fn principal(self) -> Principal {
        Principal {
            id: self.id,
            email: self.email,
            groups: self.groups,
            kind: if self.token { "token" } else { "person" },
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    who: Who,
    action: String,
    integration: String,
    #[serde(default)]
    resource: String,
    #[serde(default)]
    tags: BTreeMap<String, String>,
    #[serde(default)]
    permission: String,
    duration: Option<String>,
    #[serde(default)]
    justification: String,
    requester: Option<Who>,
    owner: Option<Who>,
    expect: String,
    why: Option<Vec<String>>,
    approvals: Option<u32>,
}

/// One case's result.
#[derive(Debug)]
pub struct CaseOutcome {
    /// The case's name.
    pub name: String,
    /// `None` if it passed, else what differed.
    pub failure: Option<String>,
    /// The decision, in words (`allow by [a, b]`).
    pub decision: String,
}

/// Run the cases of `text` (read from `path`) against `access`.
pub fn run_cases(access: &Access, text: &str, path: &Path) -> anyhow::Result<Vec<CaseOutcome>> {
    let file: File =
        toml::from_str(text).with_context(|| format!("{} is not a case file", path.display()))?;
    if file.cases.is_empty() {
        bail!("{} has no [[case]]", path.display());
    }
    let mut out = Vec::new();
    for case in file.cases {
        let name = case.name.clone();
        let outcome = run_one(access, case).with_context(|| format!("case {name:?}"))?;
        out.push(outcome);
    }
    Ok(out)
}

fn run_one(access: &Access, case: Case) -> anyhow::Result<CaseOutcome> {
    let act = Act::parse(&case.action)?;
    let expect_allow = match case.expect.as_str() {
        "allow" => true,
        "deny" => false,
        other => bail!("expect {other:?}: use \"allow\" or \"deny\""),
    };
    let duration = match &case.duration {
        Some(d) => {
            humantime::parse_duration(d).map_err(|e| anyhow::anyhow!("duration {d:?}: {e}"))?
        }
        None => std::time::Duration::ZERO,
    };
    let other = match act {
        Act::Approve => Some(
            case.requester
                .context("an approve case names its requester")?,
        ),
        Act::Revoke => Some(
            case.owner
                .context("a revoke case names the grant's owner")?,
        ),
        _ => None,
    };
    let ask = Ask {
        integration: case.integration,
        resource: case.resource,
        tags: case.tags,
        permission: case.permission,
        duration,
        justification: case.justification,
        other: other.map(Who::principal),
    };
    let d = access.decide(&case.who.principal(), act, &ask);
    let decision = format!(
        "{} by [{}]{}",
        if d.allowed { "allow" } else { "deny" },
        d.why.join(", "),
        if d.allowed && act == Act::Request {
            format!(", {} approval(s)", d.approvals)
        } else {
            String::new()
        }
    );
    let mut failure = Vec::new();
    if d.allowed != expect_allow {
        failure.push(format!("expected {}", case.expect));
    }
    if let Some(mut why) = case.why {
        why.sort();
        if why != d.why {
            failure.push(format!("expected why [{}]", why.join(", ")));
        }
    }
    if let Some(n) = case.approvals
        && n != d.approvals
    {
        failure.push(format!("expected {n} approval(s)"));
    }
    Ok(CaseOutcome {
        name: case.name,
        failure: (!failure.is_empty()).then(|| failure.join("; ")),
        decision: if d.errors.is_empty() {
            decision
        } else {
            format!("{decision} (skipped: {})", d.errors.join("; "))
        },
    })
}
