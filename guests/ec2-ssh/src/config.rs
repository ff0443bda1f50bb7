//! The integration's settings: the product's SSH settings, plus where to find instances.

use std::collections::BTreeMap;

use latch_guest_sdk::linux::runbook;
use latch_guest_sdk::{Error, invalid_config, names};
use serde::Deserialize;

/// `config` of an `ec2-ssh` integration.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub regions: Regions,
    #[serde(default = "default_home")]
    pub home_region: String,
    /// Tag filters: only instances having every one of these tags.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
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

/// `regions`: a list, or `"all"`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Regions {
    List(Vec<String>),
    All(String),
}

/// Which of an instance's addresses the connector and the requester use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    PrivateIp,
    PublicIp,
    Tag(String),
}

fn default_home() -> String {
    "us-east-1".into()
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

/// Most tag filters (EC2 takes 50 filters a call).
pub const MAX_TAGS: usize = 40;

/// A region name: lower-case letters, digits and `-`.
pub fn is_region(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.as_bytes()[0].is_ascii_alphanumeric()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// A tag key or value as EC2 allows them (1–128 / 0–256 Unicode characters), without control
/// characters. Anything else in it is data: the host percent-encodes every parameter.
fn is_tag_text(s: &str, max: usize) -> bool {
    s.chars().count() <= max && !s.chars().any(char::is_control)
}

impl Config {
    /// Parse and check `json`; every error names the field.
    pub fn parse(json: &str) -> Result<Config, Error> {
        let (mut c, account) = runbook::parse_config::<Config>(json)?;
        c.account = account;
        match &c.regions {
            Regions::All(s) if s == "all" => {}
            Regions::All(s) => {
                return Err(invalid_config(format!(
                    "regions {s:?}: give a list of regions, or \"all\""
                )));
            }
            Regions::List(list) => {
                if list.is_empty() || list.len() > 32 {
                    return Err(invalid_config("regions: name 1 to 32 regions, or \"all\""));
                }
                for (i, r) in list.iter().enumerate() {
                    if !is_region(r) {
                        return Err(invalid_config(format!(
                            "regions[{i}] {r:?} is not a region name"
                        )));
                    }
                }
            }
        }
        if !is_region(&c.home_region) {
            return Err(invalid_config(format!(
                "home_region {:?} is not a region name",
                c.home_region
            )));
        }
        if c.tags.len() > MAX_TAGS {
            return Err(invalid_config(format!(
                "tags: at most {MAX_TAGS} tag filters"
            )));
        }
        for (k, v) in &c.tags {
            if k.is_empty() || !is_tag_text(k, 128) || !is_tag_text(v, 256) {
                return Err(invalid_config(format!(
                    "tags: {k:?} = {v:?} is not an EC2 tag (key 1-128, value 0-256 characters, \
                     no control characters)"
                )));
            }
        }
        c.address()?;
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

    /// `address`, parsed.
    pub fn address(&self) -> Result<Address, Error> {
        match self.address.as_str() {
            "private_ip" => Ok(Address::PrivateIp),
            "public_ip" => Ok(Address::PublicIp),
            other => match other.strip_prefix("tag:") {
                Some(key) if !key.is_empty() && is_tag_text(key, 128) => {
                    Ok(Address::Tag(key.to_string()))
                }
                _ => Err(invalid_config(format!(
                    "address {other:?}: use private_ip, public_ip or tag:KEY"
                ))),
            },
        }
    }
}
