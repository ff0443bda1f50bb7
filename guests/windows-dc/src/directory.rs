//! The directory operations the integration needs, over either transport: the AD cmdlets
//! over WinRM, or LDAP through the host's `ldap` capability. The integration's logic
//! (`lib.rs`) is written once against [`Directory`].

use latch_guest_sdk::ad::{dn_value, filetime, filter_value, iso8601};
use latch_guest_sdk::ldap::{self, Attribute, Change, Scope, Value};
use latch_guest_sdk::winrm::{self, Parameter, Value as P};
use latch_guest_sdk::{Error, SecretRef, Target};
use serde_json::Value as Json;

use crate::config::Config;

/// What marks an account as Latch's own (with its place: directly in `users_ou`).
pub const MARKER: &str = "Latch just-in-time account (latch-managed)";

/// A user as found.
#[derive(Debug, Clone)]
pub struct User {
    pub dn: String,
    pub description: String,
    pub enabled: bool,
    pub member_of: Vec<String>,
}

/// A group as found.
#[derive(Debug, Clone)]
pub struct Group {
    pub dn: String,
    pub name: String,
}

/// The directory operations, each idempotent where the directory allows.
pub trait Directory {
    /// The account called `sam` anywhere under `base_dn`.
    fn find_user(&self, sam: &str) -> Result<Option<User>, Error>;
    /// Create `sam` in `users_ou`, marked, with the grant's password, enabled, expiring at
    /// `expires_at`; returns its DN.
    fn create_user(&self, sam: &str, expires_at: u64) -> Result<String, Error>;
    /// Set the account's password to the host's `grant-password`.
    fn reset_password(&self, dn: &str) -> Result<(), Error>;
    /// Set the account's expiry.
    fn set_expiry(&self, dn: &str, expires_at: u64) -> Result<(), Error>;
    /// Enable or disable the account.
    fn set_enabled(&self, dn: &str, enabled: bool) -> Result<(), Error>;
    /// Add `user` to `group`.
    fn add_member(&self, group: &str, user: &str) -> Result<(), Error>;
    /// Remove `user` from `group`.
    fn remove_member(&self, group: &str, user: &str) -> Result<(), Error>;
    /// Delete the account.
    fn delete_user(&self, dn: &str) -> Result<(), Error>;
    /// The groups under `base`; with `name`, only the one whose CN is `name`.
    fn groups(&self, base: &str, name: Option<&str>) -> Result<Vec<Group>, Error>;
    /// Reset the service account `sam`'s own password to the host's new service password.
    fn set_service_password(&self, sam: &str) -> Result<(), Error>;
}

/// The DN an account `sam` has in `users_ou`.
pub fn user_dn(config: &Config, sam: &str) -> String {
    format!("CN={},{}", dn_value(sam), config.users_ou)
}

/// Is `user` Latch's: directly in `users_ou` under its own name, and marked?
pub fn is_managed(config: &Config, sam: &str, user: &User) -> bool {
    latch_guest_sdk::ad::same_dn(&user.dn, &user_dn(config, sam)) && user.description == MARKER
}

/// The directory for `config`'s transport.
pub fn open(config: &Config) -> Box<dyn Directory + '_> {
    match config.transport {
        crate::config::Transport::Ldap => Box::new(Ldap {
            config,
            target: config.target(),
        }),
        crate::config::Transport::Winrm => Box::new(Winrm {
            config,
            target: config.target(),
        }),
    }
}

/// LDAP through the host's `ldap` capability.
pub struct Ldap<'c> {
    config: &'c Config,
    target: Target,
}

fn text(name: &str, values: &[&str]) -> Attribute {
    Attribute {
        name: name.to_string(),
        values: values.iter().map(|v| Value::Text(v.to_string())).collect(),
    }
}

fn password() -> Attribute {
    Attribute {
        name: "unicodePwd".into(),
        values: vec![Value::Password(SecretRef::GrantPassword)],
    }
}

fn first<'e>(entry: &'e ldap::Entry, name: &str) -> Option<&'e str> {
    entry
        .attributes
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| v.first())
        .map(String::as_str)
}

fn all(entry: &ldap::Entry, name: &str) -> Vec<String> {
    entry
        .attributes
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

impl Ldap<'_> {
    fn modify(&self, dn: &str, changes: Vec<Change>) -> Result<(), Error> {
        ldap::modify(&self.target, dn, &changes)
    }
}

impl Directory for Ldap<'_> {
    fn find_user(&self, sam: &str) -> Result<Option<User>, Error> {
        let found = ldap::search(
            &self.target,
            &self.config.base_dn,
            Scope::Subtree,
            &[
                ("objectClass".into(), "user".into()),
                ("sAMAccountName".into(), sam.into()),
            ],
            &[
                "description".into(),
                "userAccountControl".into(),
                "memberOf".into(),
            ],
        )?;
        match found.as_slice() {
            [] => Ok(None),
            [e] => {
                let uac: u32 = first(e, "userAccountControl")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(2);
                Ok(Some(User {
                    dn: e.dn.clone(),
                    description: first(e, "description").unwrap_or("").to_string(),
                    enabled: uac & 2 == 0,
                    member_of: all(e, "memberOf"),
                }))
            }
            _ => Err(Error::Failed(format!(
                "{} accounts are named {sam:?} in the directory",
                found.len()
            ))),
        }
    }

    fn create_user(&self, sam: &str, expires_at: u64) -> Result<String, Error> {
        let dn = user_dn(self.config, sam);
        let upn = format!("{sam}@{}", self.config.domain);
        let expires = filetime(expires_at).to_string();
        ldap::add(
            &self.target,
            &dn,
            &[
                text(
                    "objectClass",
                    &["top", "person", "organizationalPerson", "user"],
                ),
                text("cn", &[sam]),
                text("sAMAccountName", &[sam]),
                text("userPrincipalName", &[&upn]),
                text("description", &[MARKER]),
                text("userAccountControl", &["514"]),
                text("accountExpires", &[&expires]),
            ],
        )?;
        // AD takes a password only on an existing account, and enables it only with one.
        self.modify(&dn, vec![Change::Replace(password())])?;
        self.modify(
            &dn,
            vec![Change::Replace(text("userAccountControl", &["512"]))],
        )?;
        Ok(dn)
    }

    fn reset_password(&self, dn: &str) -> Result<(), Error> {
        self.modify(dn, vec![Change::Replace(password())])
    }

    fn set_expiry(&self, dn: &str, expires_at: u64) -> Result<(), Error> {
        let ft = filetime(expires_at).to_string();
        self.modify(dn, vec![Change::Replace(text("accountExpires", &[&ft]))])
    }

    fn set_enabled(&self, dn: &str, enabled: bool) -> Result<(), Error> {
        let uac = if enabled { "512" } else { "514" };
        self.modify(
            dn,
            vec![Change::Replace(text("userAccountControl", &[uac]))],
        )
    }

    fn add_member(&self, group: &str, user: &str) -> Result<(), Error> {
        self.modify(group, vec![Change::Add(text("member", &[user]))])
    }

    fn remove_member(&self, group: &str, user: &str) -> Result<(), Error> {
        self.modify(group, vec![Change::Delete(text("member", &[user]))])
    }

    fn delete_user(&self, dn: &str) -> Result<(), Error> {
        ldap::delete(&self.target, dn)
    }

    fn set_service_password(&self, sam: &str) -> Result<(), Error> {
        let user = self.find_user(sam)?.ok_or_else(|| {
            Error::Failed(format!(
                "the service account {sam:?} is not in the directory"
            ))
        })?;
        let new = Attribute {
            name: "unicodePwd".into(),
            values: vec![Value::Password(SecretRef::NewServicePassword)],
        };
        self.modify(&user.dn, vec![Change::Replace(new)])
    }

    fn groups(&self, base: &str, name: Option<&str>) -> Result<Vec<Group>, Error> {
        let mut filter = vec![("objectClass".to_string(), "group".to_string())];
        if let Some(name) = name {
            filter.push(("cn".into(), name.into()));
        }
        let found = ldap::search(&self.target, base, Scope::Subtree, &filter, &["cn".into()])?;
        Ok(found
            .iter()
            .map(|e| Group {
                dn: e.dn.clone(),
                name: first(e, "cn").unwrap_or("").to_string(),
            })
            .collect())
    }
}

/// The AD cmdlets over WinRM.
pub struct Winrm<'c> {
    config: &'c Config,
    target: Target,
}

fn param(name: &str, value: P) -> Parameter {
    Parameter {
        name: name.to_string(),
        value,
    }
}

fn t(s: &str) -> P {
    P::Text(s.to_string())
}

impl Winrm<'_> {
    fn objects(&self, cmdlet: &str, parameters: &[Parameter]) -> Result<Vec<Json>, Error> {
        let out = winrm::read(&self.target, cmdlet, parameters)?;
        if let Some(e) = out.errors.first() {
            return Err(Error::Failed(format!("{cmdlet}: {e}")));
        }
        match serde_json::from_str::<Json>(&out.objects) {
            Ok(Json::Array(items)) => Ok(items),
            _ => Err(Error::Failed(format!(
                "{cmdlet} did not answer with a JSON array"
            ))),
        }
    }

    fn invoke(&self, cmdlet: &str, parameters: &[Parameter]) -> Result<(), Error> {
        let out = winrm::invoke(&self.target, cmdlet, parameters)?;
        match out.errors.first() {
            None => Ok(()),
            Some(e) => Err(Error::Failed(format!("{cmdlet}: {e}"))),
        }
    }
}

fn string(item: &Json, key: &str) -> String {
    item.get(key)
        .and_then(Json::as_str)
        .unwrap_or_default()
        .to_string()
}

impl Directory for Winrm<'_> {
    fn find_user(&self, sam: &str) -> Result<Option<User>, Error> {
        let filter = format!(
            "(&(objectClass=user)(sAMAccountName={}))",
            filter_value(sam)
        );
        let found = self.objects(
            "Get-ADUser",
            &[
                param("LDAPFilter", t(&filter)),
                param("SearchBase", t(&self.config.base_dn)),
                param(
                    "Properties",
                    P::TextList(vec!["Description".into(), "MemberOf".into()]),
                ),
            ],
        )?;
        match found.as_slice() {
            [] => Ok(None),
            [u] => Ok(Some(User {
                dn: string(u, "DistinguishedName"),
                description: string(u, "Description"),
                enabled: u.get("Enabled").and_then(Json::as_bool).unwrap_or(false),
                member_of: match u.get("MemberOf") {
                    Some(Json::Array(v)) => v
                        .iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect(),
                    Some(Json::String(s)) => vec![s.clone()],
                    _ => Vec::new(),
                },
            })),
            _ => Err(Error::Failed(format!(
                "{} accounts are named {sam:?} in the directory",
                found.len()
            ))),
        }
    }

    fn create_user(&self, sam: &str, expires_at: u64) -> Result<String, Error> {
        let upn = format!("{sam}@{}", self.config.domain);
        self.invoke(
            "New-ADUser",
            &[
                param("Name", t(sam)),
                param("SamAccountName", t(sam)),
                param("UserPrincipalName", t(&upn)),
                param("Path", t(&self.config.users_ou)),
                param("Description", t(MARKER)),
                param("AccountPassword", P::Secret(SecretRef::GrantPassword)),
                param("Enabled", P::Boolean(true)),
                param("AccountExpirationDate", t(&iso8601(expires_at))),
            ],
        )?;
        Ok(user_dn(self.config, sam))
    }

    fn reset_password(&self, dn: &str) -> Result<(), Error> {
        self.invoke(
            "Set-ADAccountPassword",
            &[
                param("Identity", t(dn)),
                param("Reset", P::Switch),
                param("NewPassword", P::Secret(SecretRef::GrantPassword)),
            ],
        )
    }

    fn set_expiry(&self, dn: &str, expires_at: u64) -> Result<(), Error> {
        self.invoke(
            "Set-ADAccountExpiration",
            &[
                param("Identity", t(dn)),
                param("DateTime", t(&iso8601(expires_at))),
            ],
        )
    }

    fn set_enabled(&self, dn: &str, enabled: bool) -> Result<(), Error> {
        let cmdlet = if enabled {
            "Enable-ADAccount"
        } else {
            "Disable-ADAccount"
        };
        self.invoke(cmdlet, &[param("Identity", t(dn))])
    }

    fn add_member(&self, group: &str, user: &str) -> Result<(), Error> {
        self.invoke(
            "Add-ADGroupMember",
            &[
                param("Identity", t(group)),
                param("Members", P::TextList(vec![user.to_string()])),
            ],
        )
    }

    fn remove_member(&self, group: &str, user: &str) -> Result<(), Error> {
        self.invoke(
            "Remove-ADGroupMember",
            &[
                param("Identity", t(group)),
                param("Members", P::TextList(vec![user.to_string()])),
                param("Confirm", P::Boolean(false)),
            ],
        )
    }

    fn delete_user(&self, dn: &str) -> Result<(), Error> {
        self.invoke(
            "Remove-ADUser",
            &[
                param("Identity", t(dn)),
                param("Confirm", P::Boolean(false)),
            ],
        )
    }

    fn set_service_password(&self, sam: &str) -> Result<(), Error> {
        self.invoke(
            "Set-ADAccountPassword",
            &[
                param("Identity", t(sam)),
                param("Reset", P::Switch),
                param("NewPassword", P::Secret(SecretRef::NewServicePassword)),
            ],
        )
    }

    fn groups(&self, base: &str, name: Option<&str>) -> Result<Vec<Group>, Error> {
        let filter = match name {
            Some(n) => format!("(&(objectClass=group)(cn={}))", filter_value(n)),
            None => "(objectClass=group)".to_string(),
        };
        let found = self.objects(
            "Get-ADGroup",
            &[
                param("LDAPFilter", t(&filter)),
                param("SearchBase", t(base)),
            ],
        )?;
        Ok(found
            .iter()
            .map(|g| Group {
                dn: string(g, "DistinguishedName"),
                name: string(g, "Name"),
            })
            .collect())
    }
}
