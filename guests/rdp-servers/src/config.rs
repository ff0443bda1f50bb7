//! The integration's settings, as the product we mirror names them.

use std::collections::{BTreeMap, BTreeSet};

use latch_guest_sdk::{Error, Target, ad, invalid_config, invalid_request};
use serde::Deserialize;

/// The permission that means the built-in Remote Desktop Users group.
pub const CONNECT: &str = "Connect";
/// The group `Connect` grants.
pub const RDP_USERS: &str = "Remote Desktop Users";
/// Longest `custom_access_details`.
pub const MAX_CUSTOM_DETAILS: usize = 400;

/// `config` of an `rdp-servers` integration.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub servers: Vec<Server>,
    /// The service account WinRM logs in as (for the host: the lifecycle's service user).
    #[serde(default)]
    pub user: Option<String>,
    /// The secret holding its password (for the host).
    #[serde(default)]
    pub password_secret: Option<String>,
    #[serde(default = "default_groups")]
    pub user_groups: Vec<String>,
    #[serde(default)]
    pub username_prefix: String,
    #[serde(default)]
    pub credential_rotation_days: Option<u32>,
    #[serde(default)]
    pub user_cleanup_days: Option<u32>,
    #[serde(default)]
    pub custom_access_details: Option<String>,
    /// A cmdlet the administrator installed to log a user's sessions off
    /// (`Disconnect-LatchSession` from `docs/windows/LatchSessions.psm1`), called at revoke
    /// with `-UserName`. None: sessions already open are left to end by themselves.
    #[serde(default)]
    pub session_logoff_cmdlet: Option<String>,
}

/// One server of the `servers` list.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Server {
    pub name: String,
    pub host: String,
    #[serde(default)]
    pub computer_name: Option<String>,
    #[serde(default)]
    pub winrm_port: Option<u16>,
    #[serde(default)]
    pub use_ssl: bool,
    #[serde(default = "default_rdp_port")]
    pub rdp_port: u16,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

fn default_groups() -> Vec<String> {
    vec![CONNECT.to_string()]
}
fn default_rdp_port() -> u16 {
    3389
}

impl Server {
    /// Where capability calls for this server go (the host binds the service account; HTTPS
    /// or HTTP is the host's choice by port).
    pub fn target(&self) -> Target {
        Target {
            host: self.host.clone(),
            port: self
                .winrm_port
                .unwrap_or(if self.use_ssl { 5986 } else { 5985 }),
            user: None,
        }
    }

    /// The name Windows knows the computer by.
    pub fn computer(&self) -> &str {
        self.computer_name.as_deref().unwrap_or(&self.name)
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

/// A local group name Windows accepts: 1 to 256 characters, no control characters, none of
/// `" / \ [ ] : ; | = , + * ? < >` (the host quotes it anyway).
pub fn is_group_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars().count() <= 256
        && !s.ends_with('.')
        && !s
            .chars()
            .any(|c| c.is_control() || "\"/\\[]:;|=,+*?<>".contains(c))
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
            if !seen.insert(s.name.to_ascii_lowercase()) {
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
            if s.winrm_port == Some(0) || s.rdp_port == 0 {
                return Err(invalid_config(format!(
                    "servers[{i}]: ports must be 1 to 65535"
                )));
            }
            if let Some(c) = &s.computer_name
                && !(c.len() <= 15
                    && !c.is_empty()
                    && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
            {
                return Err(invalid_config(format!(
                    "servers[{i}].computer_name {c:?} must be 1 to 15 of [A-Za-z0-9-]"
                )));
            }
        }
        for (i, g) in c.user_groups.iter().enumerate() {
            if !is_group_name(g) {
                return Err(invalid_config(format!(
                    "user_groups[{i}] {g:?} is not a Windows group name"
                )));
            }
        }
        ad::check_username_prefix(&c.username_prefix)?;
        if let Some(user) = &c.user {
            ad::check_service_user(user)?;
        }
        if let Some(name) = &c.password_secret {
            ad::check_password_secret(name)?;
        }
        if let Some(days) = c.user_cleanup_days
            && days > 3650
        {
            return Err(invalid_config(format!(
                "user_cleanup_days must be 0 to 3650, not {days}"
            )));
        }
        if let Some(cmdlet) = &c.session_logoff_cmdlet {
            let ok = cmdlet.len() <= 64
                && cmdlet.split_once('-').is_some_and(|(verb, noun)| {
                    !verb.is_empty()
                        && !noun.is_empty()
                        && verb.bytes().all(|b| b.is_ascii_alphabetic())
                        && noun.bytes().all(|b| b.is_ascii_alphanumeric())
                });
            if !ok {
                return Err(invalid_config(format!(
                    "session_logoff_cmdlet {cmdlet:?} must be a cmdlet name (Verb-Noun)"
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

    /// The local group `permission` grants, if it is one this integration grants.
    pub fn group(&self, permission: &str) -> Result<String, Error> {
        if self.user_groups.iter().any(|g| g == permission) {
            return Ok(if permission == CONNECT {
                RDP_USERS.to_string()
            } else {
                permission.to_string()
            });
        }
        let shown: String = permission.chars().take(64).collect();
        Err(invalid_request(format!(
            "permission {shown:?} is not one of user_groups [{}]",
            self.user_groups.join(", ")
        )))
    }
}
