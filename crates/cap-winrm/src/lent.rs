//! What `[integration.winrm]` lends a guest: its slices of the integration's policy
//! ([`latch_cap::policy::Slice`]), made from the table and looked up by type by the checks.

use std::collections::BTreeSet;

use latch_cap::Effect;
use latch_cap::policy::Slice;

/// The cmdlets a guest may run: `read` ones by `winrm.read` and `winrm.invoke`, `change`
/// ones by `winrm.invoke` only. Only cmdlets of the catalog can be lent
/// (`winrm/catalog.toml`), and one that changes the server never as a read. Lower-cased:
/// PowerShell's names are case-insensitive.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cmdlets {
    read: BTreeSet<String>,
    change: BTreeSet<String>,
}

impl Slice for Cmdlets {}

impl Cmdlets {
    /// The cmdlets of `[integration.winrm] read` and `change`, each checked against the
    /// catalog.
    pub fn parse(read: &[String], change: &[String]) -> Result<Self, String> {
        let check = |list: &str, name: &String| -> Result<String, String> {
            if !crate::is_cmdlet(name) {
                return Err(format!(
                    "winrm.{list}: {name:?} is not a cmdlet name (Verb-Noun)"
                ));
            }
            crate::catalog::lendable(list, name)?;
            Ok(name.to_ascii_lowercase())
        };
        Ok(Cmdlets {
            read: read
                .iter()
                .map(|n| check("read", n))
                .collect::<Result<_, _>>()?,
            change: change
                .iter()
                .map(|n| check("change", n))
                .collect::<Result<_, _>>()?,
        })
    }

    /// May the guest run `cmdlet` with this effect?
    pub fn check(&self, cmdlet: &str, effect: Effect) -> Result<(), String> {
        let name = cmdlet.to_ascii_lowercase();
        let listed = match effect {
            Effect::Read => self.read.contains(&name),
            Effect::Change => self.read.contains(&name) || self.change.contains(&name),
        };
        if listed {
            return Ok(());
        }
        if effect == Effect::Read && self.change.contains(&name) {
            return Err(format!(
                "cmdlet {cmdlet} is listed as a change, not a read, in [integration.winrm]; \
                 a plan would run it"
            ));
        }
        Err(format!(
            "cmdlet {cmdlet} is not in the integration's [integration.winrm] allowlist"
        ))
    }
}

/// The account WinRM logs in as (`[integration.winrm] user`): the only one a new service
/// password may be set on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceAccount(pub String);

impl Slice for ServiceAccount {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_is_never_lent_as_a_read() {
        let c = Cmdlets::parse(&["Get-LocalUser".into()], &["Set-LocalUser".into()]).unwrap();
        assert!(c.check("get-localuser", Effect::Read).is_ok());
        assert!(c.check("Get-LocalUser", Effect::Change).is_ok());
        assert!(c.check("Set-LocalUser", Effect::Change).is_ok());
        let e = c.check("Set-LocalUser", Effect::Read).unwrap_err();
        assert!(e.contains("listed as a change"), "{e}");
        assert!(c.check("Remove-LocalUser", Effect::Change).is_err());
        assert!(Cmdlets::parse(&["Set-LocalUser".into()], &[]).is_err());
        assert!(Cmdlets::parse(&[], &["Invoke-Expression".into()]).is_err());
        assert!(Cmdlets::parse(&["not a cmdlet".into()], &[]).is_err());
    }
}
