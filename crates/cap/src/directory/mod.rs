//! The directory bounds, held on every transport that reaches Active Directory: `ldap.*` over
//! LDAPS and the AD cmdlets over WinRM alike.
//!
//! Defends against a guest changing more of the directory than it was lent, whichever way it
//! reaches it: `[integration.directory]` lends `read` (where searches may start), `change`
//! (entries strictly under these may be added, changed, deleted) and `groups` (groups at or
//! under these may gain or lose members that are themselves under `change`). The bounds used
//! to bind `ldap.*` calls only; the same guest over WinRM could reset the Administrator's
//! password or join Domain Admins if those cmdlets were lent. Now both capabilities ask
//! [`Bases`], with DNs parsed ([`dn::Dn`], RFC 4514), never compared as strings.
//!
//! And against reading secrets out of the directory: the attributes that hold them
//! ([`is_secret_attribute`]: LAPS passwords, BitLocker recovery, gMSA passwords, password
//! hashes) are never asked for, never returned and never filtered on (a substring filter is an
//! oracle that reads a value character by character) — [`filter`] reads an LDAP filter a
//! guest wrote, for the AD cmdlets' `-LDAPFilter`.

pub mod dn;
pub mod filter;
pub mod table;

use self::dn::Dn;

/// An entry of the directory, as a search finds it (`ldap.entry`; an AD lookup over WinRM).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Entry {
    /// Its DN.
    pub dn: String,
    /// Attribute name → values.
    pub attributes: Vec<(String, Vec<String>)>,
}

/// What an integration may touch in its directory (`[integration.directory]`, parsed).
#[derive(Clone, Debug, Default)]
pub struct Bases {
    /// Searches start at or under one of these.
    pub read: Vec<Dn>,
    /// Entries strictly under one of these may be added, changed and deleted.
    pub change: Vec<Dn>,
    /// Groups at or under one of these may gain or lose `member`s (DNs under `change`).
    pub groups: Vec<Dn>,
}

/// The directory's bounds are one slice, read by every transport that reaches a directory
/// (`ldap.*` and the AD cmdlets over WinRM).
impl crate::policy::Slice for Bases {}

impl Bases {
    /// Parse the three lists of `[integration.directory]`; an error names the list and the DN.
    pub fn parse(read: &[String], change: &[String], groups: &[String]) -> Result<Bases, String> {
        let list = |name: &str, dns: &[String]| -> Result<Vec<Dn>, String> {
            dns.iter()
                .map(|d| Dn::parse(d).map_err(|e| format!("directory.{name}: {e}")))
                .collect()
        };
        Ok(Bases {
            read: list("read", read)?,
            change: list("change", change)?,
            groups: list("groups", groups)?,
        })
    }

    /// Nothing lent at all?
    pub fn is_empty(&self) -> bool {
        self.read.is_empty() && self.change.is_empty() && self.groups.is_empty()
    }

    /// May a search start at `dn`?
    pub fn read_covers(&self, dn: &Dn) -> bool {
        self.read.iter().any(|b| dn.is_at_or_under(b))
    }

    /// May the entry `dn` be added, changed or deleted?
    pub fn change_covers(&self, dn: &Dn) -> bool {
        self.change.iter().any(|b| dn.is_under(b))
    }

    /// May the group `dn` gain or lose members?
    pub fn groups_cover(&self, dn: &Dn) -> bool {
        self.groups.iter().any(|b| dn.is_at_or_under(b))
    }

    /// `dns` as a list for messages: `["OU=a,DC=x", …]`.
    pub fn listed(dns: &[Dn]) -> String {
        let all: Vec<String> = dns.iter().map(|d| format!("{:?}", d.to_string())).collect();
        format!("[{}]", all.join(", "))
    }
}

/// Attributes that hold secrets: never asked for, returned or filtered on through Latch. A
/// name matches case-insensitively, with any `;option` (`;binary`) ignored; every attribute
/// of Windows LAPS (`msLAPS-…`) matches.
pub const SECRET_ATTRIBUTES: &[&str] = &[
    // Legacy LAPS: the local administrator's password, in clear for whoever may read it.
    "ms-Mcs-AdmPwd",
    // BitLocker recovery passwords and key packages.
    "msFVE-RecoveryPassword",
    "msFVE-KeyPackage",
    // Group managed service accounts' password blob.
    "msDS-ManagedPassword",
    // Passwords and their hashes (AD refuses to return most; they are never asked for).
    "unicodePwd",
    "userPassword",
    "supplementalCredentials",
    "dBCSPwd",
    "ntPwdHistory",
    "lmPwdHistory",
    // TPM owner authorization (older Windows stored it in AD).
    "msTPM-OwnerInformation",
    "msTPM-TpmInformationForComputer",
];

/// Is `name` an attribute that holds a secret ([`SECRET_ATTRIBUTES`], or any `msLAPS-`)?
pub fn is_secret_attribute(name: &str) -> bool {
    let base = name.split(';').next().unwrap_or(name);
    SECRET_ATTRIBUTES
        .iter()
        .any(|a| a.eq_ignore_ascii_case(base))
        || base
            .get(..6)
            .is_some_and(|p| p.eq_ignore_ascii_case("msLAPS"))
}

/// An attribute name a guest may use: a letter, then letters, digits and `-`, at most 64
/// (`;binary` and other options are not accepted), and not one holding a secret.
pub fn check_attribute_name(what: &str, name: &str) -> Result<(), String> {
    let well_formed = name.len() <= 64
        && name.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if !well_formed {
        return Err(format!("{what} {name:?} is not an attribute name"));
    }
    if is_secret_attribute(name) {
        return Err(format!(
            "{what} {name:?} holds secrets (LAPS, BitLocker, gMSA or password data): Latch never \
             reads or filters on it"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_attributes_are_known_whatever_their_case_or_option() {
        for name in [
            "ms-Mcs-AdmPwd",
            "MS-MCS-ADMPWD",
            "msLAPS-Password",
            "mslaps-encryptedpassword",
            "msLAPS-EncryptedDSRMPasswordHistory",
            "msFVE-RecoveryPassword",
            "msDS-ManagedPassword",
            "unicodePwd;binary",
            "supplementalCredentials",
        ] {
            assert!(is_secret_attribute(name), "{name}");
            assert!(check_attribute_name("attribute", name).is_err(), "{name}");
        }
        for name in [
            "sAMAccountName",
            "description",
            "msDS-UserPasswordExpiryTimeComputed",
        ] {
            assert!(!is_secret_attribute(name), "{name}");
            assert!(check_attribute_name("attribute", name).is_ok(), "{name}");
        }
        for bad in ["", "1cn", "cn;binary", "cn)", "a b", "*"] {
            assert!(check_attribute_name("attribute", bad).is_err(), "{bad}");
        }
    }
}
