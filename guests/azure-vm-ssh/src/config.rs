//! The integration's settings: the product's SSH settings, plus where to find VMs.

use std::collections::BTreeMap;

use latch_guest_sdk::linux::runbook;
use latch_guest_sdk::{Error, invalid_config, names};
use serde::Deserialize;

/// `config` of an `azure-vm-ssh` integration.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub subscriptions: Vec<String>,
    #[serde(default)]
    pub resource_groups: Vec<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default = "yes")]
    pub scale_sets: bool,
    #[serde(default = "default_address")]
    pub address: String,
    #[serde(default = "default_user")]
    pub user: String,
    #[serde(default = "default_port")]
    pub port: u16,
    /// The account settings every Linux integration shares (`user_groups`, `login_shell`,
    /// `user_key_name`, `credential_rotation_days`, `user_cleanup_days`,
    /// `custom_access_details`): keys of the same config, split off by
    /// [`runbook::parse_config`].
    #[serde(skip)]
    pub account: runbook::Settings,
}

fn yes() -> bool {
    true
}
fn default_address() -> String {
    "private_ip".into()
}
fn default_user() -> String {
    "apono".into()
}
fn default_port() -> u16 {
    22
}

/// A subscription id: a GUID.
pub fn is_guid(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

/// A resource name as this integration accepts them: letters, digits, `._()-`.
pub fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 90
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._()-".contains(&b))
}

impl Config {
    /// Parse and check `json`; every error names the field.
    pub fn parse(json: &str) -> Result<Config, Error> {
        let (mut c, account) = runbook::parse_config::<Config>(json)?;
        c.account = account;
        if c.subscriptions.is_empty() || c.subscriptions.len() > 32 {
            return Err(invalid_config("subscriptions: name 1 to 32 subscriptions"));
        }
        for (i, s) in c.subscriptions.iter().enumerate() {
            if !is_guid(s) {
                return Err(invalid_config(format!(
                    "subscriptions[{i}] {s:?} is not a subscription id"
                )));
            }
        }
        for (i, g) in c.resource_groups.iter().enumerate() {
            if !is_name(g) {
                return Err(invalid_config(format!(
                    "resource_groups[{i}] {g:?} is not a resource group name ([A-Za-z0-9._()-])"
                )));
            }
        }
        for (k, v) in &c.tags {
            let ok = !k.is_empty()
                && k.chars().count() <= 512
                && v.chars().count() <= 256
                && !k.chars().chain(v.chars()).any(char::is_control);
            if !ok {
                return Err(invalid_config(format!(
                    "tags: {k:?} = {v:?} is not an Azure tag"
                )));
            }
        }
        if !matches!(c.address.as_str(), "private_ip" | "public_ip") {
            return Err(invalid_config(format!(
                "address {:?}: use private_ip or public_ip",
                c.address
            )));
        }
        if c.port == 0 {
            return Err(invalid_config("port must be 1 to 65535"));
        }
        if !names::is_valid(&c.user) {
            return Err(invalid_config(format!(
                "user {:?} is not a valid account name",
                c.user
            )));
        }
        Ok(c)
    }

    /// Is `group` of `subscription` one this integration looks in?
    pub fn in_scope(&self, subscription: &str, group: &str) -> bool {
        self.subscriptions
            .iter()
            .any(|s| s.eq_ignore_ascii_case(subscription))
            && (self.resource_groups.is_empty()
                || self
                    .resource_groups
                    .iter()
                    .any(|g| g.eq_ignore_ascii_case(group)))
    }

    /// The scopes to list in: `/subscriptions/S/resourceGroups/G` per listed group, else
    /// `/subscriptions/S`.
    pub fn scopes(&self) -> Vec<String> {
        let mut out = Vec::new();
        for s in &self.subscriptions {
            if self.resource_groups.is_empty() {
                out.push(format!("/subscriptions/{s}"));
            } else {
                for g in &self.resource_groups {
                    out.push(format!("/subscriptions/{s}/resourceGroups/{g}"));
                }
            }
        }
        out
    }
}
