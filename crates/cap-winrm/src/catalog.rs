//! The cmdlet catalog (`catalog.toml`, beside this file): the only cmdlets the host lends, each
//! parameter's kind, and the checks a kind brings.
//!
//! Defends against an allowlist that is only as good as the operator's memory of what each
//! cmdlet can do. An operator can list only cmdlets the catalog knows (and a cmdlet that
//! changes the server only as a change); a guest can pass only the parameters the catalog
//! lists, by their full names (PowerShell would bind `-Serv` to `-Server`), each value of the
//! type its kind allows — a `secret-ref` only where a SecureString belongs, so a secret can
//! never be written into a readable attribute — and every parameter that names a directory
//! object is checked against `[integration.directory]`, as `ldap.*` calls are (see
//! `crate::authorize`). The catalog is data, read once, embedded in the binary: reviewing
//! `catalog.toml` is reviewing what WinRM can do through Latch.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::Deserialize;

use latch_cap::Effect;

/// What a parameter is (see `catalog.toml` for each kind's checks).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// A string.
    Text,
    /// A whole number.
    Integer,
    /// `$true` / `$false`.
    Boolean,
    /// A switch (or `-Name:$bool`).
    Switch,
    /// One string or a list.
    TextList,
    /// `-Confirm:$false` only.
    Confirm,
    /// A `secret-ref`, as a SecureString.
    Secret,
    /// A time no later than the grant's expiry.
    Expiry,
    /// An RFC 4515 filter: no attribute that holds secrets.
    AdFilter,
    /// Attribute names to return: none that holds secrets.
    AdProperties,
    /// A DN at or under `directory.read`.
    AdSearchBase,
    /// An object a read names: at or under `directory.read`.
    AdReadEntry,
    /// Where an entry is created: at or under `directory.change`.
    AdContainer,
    /// An account the call changes: strictly under `directory.change`.
    AdEntry,
    /// A group whose members change: at or under `directory.groups`.
    AdGroup,
    /// Accounts added to or removed from a group: each strictly under `directory.change`.
    AdMembers,
    /// A local account.
    LocalUser,
    /// Local accounts (one or a list).
    LocalUsers,
    /// A local group.
    LocalGroup,
    /// Members of a local group (one or a list).
    LocalMembers,
}

impl Kind {
    /// Does it name a directory object, so that the integration needs `[integration.directory]`?
    pub fn is_directory(self) -> bool {
        matches!(
            self,
            Kind::AdFilter
                | Kind::AdProperties
                | Kind::AdSearchBase
                | Kind::AdReadEntry
                | Kind::AdContainer
                | Kind::AdEntry
                | Kind::AdGroup
                | Kind::AdMembers
        )
    }

    /// Does a value of it name one AD object (a DN, or a name to resolve)?
    pub fn is_ad_identity(self) -> bool {
        matches!(
            self,
            Kind::AdReadEntry | Kind::AdEntry | Kind::AdGroup | Kind::AdMembers
        )
    }

    /// May the value be a list?
    pub fn takes_list(self) -> bool {
        matches!(
            self,
            Kind::TextList
                | Kind::AdProperties
                | Kind::AdMembers
                | Kind::LocalUsers
                | Kind::LocalMembers
        )
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryFile {
    effect: String,
    #[serde(default)]
    requires: Vec<String>,
    parameters: BTreeMap<String, Kind>,
}

/// One cmdlet of the catalog.
#[derive(Debug)]
pub struct Entry {
    /// Its name as the catalog spells it.
    pub name: String,
    /// Read or change.
    pub effect: Effect,
    /// Parameters every call must pass.
    pub requires: Vec<String>,
    /// Parameter name (lower-case) → (its spelling, its kind).
    parameters: BTreeMap<String, (String, Kind)>,
}

impl Entry {
    /// The parameter called `name` (case-insensitively, in full): its spelling and kind.
    pub fn parameter(&self, name: &str) -> Option<(&str, Kind)> {
        self.parameters
            .get(&name.to_ascii_lowercase())
            .map(|(n, k)| (n.as_str(), *k))
    }

    /// Does any parameter name a directory object?
    pub fn names_directory_objects(&self) -> bool {
        self.parameters.values().any(|(_, k)| k.is_directory())
    }

    /// The parameters as the catalog spells them.
    pub fn parameter_names(&self) -> impl Iterator<Item = &str> {
        self.parameters.values().map(|(n, _)| n.as_str())
    }
}

/// The catalog, as `catalog.toml` holds it.
pub struct Catalog {
    /// Lower-case name → entry.
    cmdlets: BTreeMap<String, Entry>,
}

impl Catalog {
    /// Parse a catalog (the embedded one is [`catalog`]).
    pub fn parse(text: &str) -> Result<Catalog, String> {
        let file: BTreeMap<String, EntryFile> =
            toml::from_str(text).map_err(|e| format!("the cmdlet catalog: {e}"))?;
        let mut cmdlets = BTreeMap::new();
        for (name, e) in file {
            if !crate::is_cmdlet(&name) {
                return Err(format!("the cmdlet catalog: {name:?} is not Verb-Noun"));
            }
            let effect = match e.effect.as_str() {
                "read" => Effect::Read,
                "change" => Effect::Change,
                other => {
                    return Err(format!(
                        "the cmdlet catalog: {name}: effect {other:?} (read or change)"
                    ));
                }
            };
            let parameters: BTreeMap<String, (String, Kind)> = e
                .parameters
                .into_iter()
                .map(|(p, k)| (p.to_ascii_lowercase(), (p, k)))
                .collect();
            for r in &e.requires {
                if !parameters.contains_key(&r.to_ascii_lowercase()) {
                    return Err(format!(
                        "the cmdlet catalog: {name} requires {r}, which it does not list"
                    ));
                }
            }
            cmdlets.insert(
                name.to_ascii_lowercase(),
                Entry {
                    name,
                    effect,
                    requires: e.requires,
                    parameters,
                },
            );
        }
        Ok(Catalog { cmdlets })
    }

    /// The cmdlet called `name` (case-insensitively), if the catalog has it.
    pub fn get(&self, name: &str) -> Option<&Entry> {
        self.cmdlets.get(&name.to_ascii_lowercase())
    }

    /// Every cmdlet, by name.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.cmdlets.values().map(|e| e.name.as_str())
    }
}

/// The catalog embedded in this binary (`catalog.toml`).
pub fn catalog() -> &'static Catalog {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG.get_or_init(|| {
        Catalog::parse(include_str!("catalog.toml")).expect("the embedded cmdlet catalog parses")
    })
}

/// May `name` be listed under `[integration.winrm]` `list` (`read` or `change`)? Its entry,
/// or why not.
pub fn lendable(list: &str, name: &str) -> Result<&'static Entry, String> {
    let entry = catalog().get(name).ok_or_else(|| {
        format!(
            "winrm.{list}: {name} is not in Latch's cmdlet catalog \
             (host/src/caps/winrm/catalog.toml); only cataloged cmdlets can be lent, each with \
             the parameters it lists"
        )
    })?;
    if list == "read" && entry.effect == Effect::Change {
        return Err(format!(
            "winrm.read: {} changes the server (the catalog says so): list it under change, \
             or a plan would run it",
            entry.name
        ));
    }
    Ok(entry)
}

/// A time as the catalog's `expiry` takes it, `YYYY-MM-DDThh:mm:ssZ`, in Unix seconds.
pub fn parse_expiry(text: &str) -> Option<u64> {
    let b = text.as_bytes();
    let digits = |r: std::ops::Range<usize>| -> Option<u64> {
        let s = text.get(r)?;
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse().ok())?
    };
    if b.len() != 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || b[19] != b'Z'
    {
        return None;
    }
    let (y, m, d) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let (hh, mm, ss) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
    if !(1970..=9999).contains(&y) || !(1..=12).contains(&m) || hh > 23 || mm > 59 || ss > 59 {
        return None;
    }
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if d == 0 || d > month_days[m as usize - 1] {
        return None;
    }
    // Days from the civil date (Howard Hinnant's days_from_civil).
    let (y, m) = (y as i64 - i64::from(m <= 2), m as i64);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days as u64 * 86_400 + hh * 3600 + mm * 60 + ss)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_catalog_parses_and_says_what_each_parameter_is() {
        let c = catalog();
        let e = c.get("set-adaccountpassword").unwrap();
        assert_eq!(e.effect, Effect::Change);
        assert_eq!(e.parameter("identity"), Some(("Identity", Kind::AdEntry)));
        assert_eq!(
            e.parameter("NewPassword"),
            Some(("NewPassword", Kind::Secret))
        );
        assert_eq!(e.parameter("OldPassword"), None);
        assert_eq!(e.parameter("Serv"), None);
        assert!(e.names_directory_objects());
        assert!(!c.get("Get-LocalUser").unwrap().names_directory_objects());
        for never in [
            "Invoke-Expression",
            "Start-Process",
            "Add-Type",
            "Set-Item",
            "Set-Content",
            "Invoke-WebRequest",
            "Invoke-WmiMethod",
            "Register-ScheduledJob",
            "Set-ItemProperty",
            "Get-ADObject",
            "Set-ADUser",
        ] {
            assert!(c.get(never).is_none(), "{never}");
            assert!(lendable("change", never).is_err(), "{never}");
        }
        assert!(
            lendable("read", "New-ADUser")
                .unwrap_err()
                .contains("changes the server")
        );
        assert!(lendable("read", "get-aduser").is_ok());
    }

    #[test]
    fn a_broken_catalog_is_an_error_that_names_the_cmdlet() {
        for (text, says) in [
            ("[Foo]\neffect = \"read\"\nparameters = {}", "not Verb-Noun"),
            ("[Get-X]\neffect = \"write\"\nparameters = {}", "effect"),
            (
                "[Get-X]\neffect = \"read\"\nrequires = [\"A\"]\nparameters = {}",
                "requires A",
            ),
            (
                "[Get-X]\neffect = \"read\"\nparameters = { A = \"blob\" }",
                "blob",
            ),
        ] {
            let e = Catalog::parse(text).err().unwrap();
            assert!(e.contains(says), "{text}: {e}");
        }
    }

    #[test]
    fn expiry_times_are_read_strictly() {
        assert_eq!(parse_expiry("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_expiry("2026-12-07T14:44:53Z"), Some(1_796_654_693));
        assert_eq!(parse_expiry("2024-02-29T23:59:59Z"), Some(1_709_251_199));
        for bad in [
            "2023-02-29T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-12-07T24:00:00Z",
            "2026-12-07 14:44:53Z",
            "2026-12-07T14:44:53",
            "2026-12-07T14:44:53+01:00",
            "+026-12-07T14:44:53Z",
            "",
        ] {
            assert_eq!(parse_expiry(bad), None, "{bad}");
        }
    }
}
