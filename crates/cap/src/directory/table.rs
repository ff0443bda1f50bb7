//! `[integration.directory]`: what the integration may touch in its directory, on every
//! transport (`ldap.*` and the AD cmdlets over WinRM). Checked before the transports' tables,
//! which ask whether it is there.

use serde::Deserialize;

use super::Bases;
use crate::table::{Table, TableCx};

/// The directory's table (shared by `ldap` and `winrm`, so part of the core).
pub struct Directory;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Section {
    #[serde(default)]
    read: Vec<String>,
    #[serde(default)]
    change: Vec<String>,
    #[serde(default)]
    groups: Vec<String>,
}

impl Table for Directory {
    fn names(&self) -> &'static [&'static str] {
        &["directory"]
    }

    fn check(&self, cx: &mut TableCx<'_>) -> anyhow::Result<()> {
        if let Some(d) = cx.take::<Section>("directory")? {
            let bases = Bases::parse(&d.read, &d.change, &d.groups).map_err(anyhow::Error::msg)?;
            cx.policy = std::mem::take(&mut cx.policy).with(bases);
        }
        Ok(())
    }
}
