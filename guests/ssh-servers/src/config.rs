//! The integration's settings, as the product we mirror names them.

use std::collections::{BTreeMap, BTreeSet};

use latch_guest_sdk::{Error, Target, invalid_config, invalid_request, names};
use serde::Deserialize;

/// The permission that means "the user's own group", i.e. no extra group.
pub const DEFAULT_GROUP: &str = "Default";
/// Longest `custom_access_details`.
pub const MAX_CUSTOM_DETAILS: usize = 400;

/// `config` of an `ssh-servers` integration.
///
/// `user_key_name`, `credential_rotation_days` and `user_cleanup_days` are for the host: this
/// guest reads and checks them and tells the host what they mean (`validate`'s lifecycle);
/// the host never reads this config itself.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub servers: Vec<Server>,
    #[serde(default = "default_groups")]
    pub user_groups: Vec<String>,
    #[serde(default = "default_shell")]
    pub login_shell: String,
    /// The secret holding the service key (overrides `[integration.ssh] key_secret`).
    #[serde(default)]
    pub user_key_name: Option<String>,
    #[serde(default)]
    pub credential_rotation_days: Option<u32>,
    #[serde(default)]
    pub user_cleanup_days: Option<u32>,
    #[serde(default)]
    pub custom_access_details: Option<String>,
}

/// One server of the `servers` list.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Server {
    pub name: String,
    pub host: String,
    #[serde(default = "default_user")]
    pub user: String,
    #[serde(default = "default_port")]
    pub port: u16,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

fn default_groups() -> Vec<String> {
    vec![DEFAULT_GROUP.to_string()]
}
fn default_shell() -> String {
    "/bin/bash".to_string()
}
fn default_user() -> String {
    "apono".to_string()
}
fn default_port() -> u16 {
    22
}

impl Server {
    /// Where capability calls for this server go.
    pub fn target(&self) -> Target {
        Target {
            host: self.host.clone(),
            port: self.port,
            user: Some(self.user.clone()),
        }
    }
}

fn is_server_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.as_bytes()[0].is_ascii_alphanumeric()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

fn is_host(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && !s.starts_with(['-', '.'])
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-_:".contains(&b))
}

fn is_shell(s: &str) -> bool {
    s.starts_with('/')
        && s.len() <= 64
        && !s.contains("..")
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-".contains(&b))
}

impl Config {
    /// Parse and check `json`; every error names the field.
    pub fn parse(json: &str) -> Result<Config, Error> {
        let c: Config = latch_guest_sdk::config::parse(json)?;
        if c.servers.is_empty() {
            return Err(invalid_config("servers: at least one server is needed"));
        }
        let mut seen = BTreeSet::new();
        for (i, s) in c.servers.iter().enumerate() {
            if !is_server_name(&s.name) {
                return Err(invalid_config(format!(
                    "servers[{i}].name {:?}: use 1 to 63 of [A-Za-z0-9._-]",
                    s.name
                )));
            }
            if !seen.insert(s.name.as_str()) {
                return Err(invalid_config(format!(
                    "servers[{i}].name {:?} is a duplicate",
                    s.name
                )));
            }
            if !is_host(&s.host) {
                return Err(invalid_config(format!(
                    "servers[{i}].host {:?} is not a host name or IP address",
                    s.host
                )));
            }
            if s.port == 0 {
                return Err(invalid_config(format!(
                    "servers[{i}].port must be 1 to 65535"
                )));
            }
            if !names::is_valid(&s.user) {
                return Err(invalid_config(format!(
                    "servers[{i}].user {:?} is not a valid account name",
                    s.user
                )));
            }
        }
        for (i, g) in c.user_groups.iter().enumerate() {
            if g != DEFAULT_GROUP && !names::is_valid(g) {
                return Err(invalid_config(format!(
                    "user_groups[{i}] {g:?} is not a valid group name (or \"Default\")"
                )));
            }
        }
        if !is_shell(&c.login_shell) {
            return Err(invalid_config(format!(
                "login_shell {:?} must be an absolute path of [A-Za-z0-9/._-]",
                c.login_shell
            )));
        }
        if let Some(days) = c.credential_rotation_days
            && !(1..=3650).contains(&days)
        {
            return Err(invalid_config(format!(
                "credential_rotation_days must be 1 to 3650, not {days}"
            )));
        }
        if let Some(days) = c.user_cleanup_days
            && days > 3650
        {
            return Err(invalid_config(format!(
                "user_cleanup_days must be 0 to 3650, not {days}"
            )));
        }
        if let Some(name) = &c.user_key_name {
            let plain = !name.is_empty()
                && name.len() <= 128
                && !name.starts_with('.')
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
            if !plain {
                return Err(invalid_config(format!(
                    "user_key_name {name:?} must be a plain secret name ([A-Za-z0-9._-], not \
                     starting with '.')"
                )));
            }
        }
        if let Some(d) = &c.custom_access_details
            && d.chars().count() > MAX_CUSTOM_DETAILS
        {
            return Err(invalid_config(format!(
                "custom_access_details is {} characters, more than {MAX_CUSTOM_DETAILS}",
                d.chars().count()
            )));
        }
        Ok(c)
    }

    /// The server called `name`, or `invalid-request` listing the known ones.
    pub fn server(&self, name: &str) -> Result<&Server, Error> {
        self.servers.iter().find(|s| s.name == name).ok_or_else(|| {
            let known: Vec<&str> = self.servers.iter().map(|s| s.name.as_str()).collect();
            let shown: String = name.chars().take(64).collect();
            invalid_request(format!(
                "unknown server {shown:?}; known: {}",
                known.join(", ")
            ))
        })
    }

    /// Check that `permission` is one this integration grants.
    pub fn permission<'a>(&self, permission: &'a str) -> Result<&'a str, Error> {
        if self.user_groups.iter().any(|g| g == permission)
            || (permission == DEFAULT_GROUP && self.user_groups.is_empty())
        {
            return Ok(permission);
        }
        let shown: String = permission.chars().take(64).collect();
        Err(invalid_request(format!(
            "permission {shown:?} is not one of user_groups [{}]",
            self.user_groups.join(", ")
        )))
    }
}
