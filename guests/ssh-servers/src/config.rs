//! The integration's settings, as the product we mirror names them.

use std::collections::{BTreeMap, BTreeSet};

use latch_guest_sdk::{Error, Target, invalid_config, invalid_request, names};
use serde::Deserialize;

use latch_guest_sdk::linux::runbook;

/// `config` of an `ssh-servers` integration.
///
/// `user_key_name`, `credential_rotation_days` and `user_cleanup_days` are for the host: this
/// guest reads and checks them and tells the host what they mean (`validate`'s lifecycle);
/// the host never reads this config itself.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub servers: Vec<Server>,
    /// The account settings every Linux integration shares (`user_groups`, `login_shell`,
    /// `user_key_name`, `credential_rotation_days`, `user_cleanup_days`,
    /// `custom_access_details`): keys of the same config, split off by
    /// [`runbook::parse_config`].
    #[serde(skip)]
    pub account: runbook::Settings,
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

impl Config {
    /// Parse and check `json`; every error names the field.
    pub fn parse(json: &str) -> Result<Config, Error> {
        let (mut c, account) = runbook::parse_config::<Config>(json)?;
        c.account = account;
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
}
