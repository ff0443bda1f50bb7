//! The integration's settings, as the product we mirror names them, plus how to reach the DC.

use latch_guest_sdk::{Error, Target, ad, invalid_config, invalid_request};
use serde::Deserialize;

/// The permission that means "the configured `connect_group`".
pub const CONNECT: &str = "Connect";
/// Longest `custom_access_details`.
pub const MAX_CUSTOM_DETAILS: usize = 400;

/// How the guest reaches the DC.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// PowerShell's AD cmdlets over WinRM (as the product we mirror does).
    Winrm,
    /// LDAP over TLS, through the host's `ldap` capability (for DCs where WinRM is off).
    Ldap,
}

/// `config` of a `windows-dc` integration.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The DC's host name or address.
    pub host: String,
    /// The domain's DNS name (`corp.example`): the resource's id and the UPN suffix.
    pub domain: String,
    /// The domain's NetBIOS name (`CORP`), for `CORP\user`.
    pub netbios: String,
    /// The domain's DN (`DC=corp,DC=example`): where account names are looked up.
    pub base_dn: String,
    /// Where Latch creates (and only where it manages) accounts.
    pub users_ou: String,
    /// The group `Connect` grants.
    pub connect_group: String,
    /// Where the groups Latch may grant are (discovery lists them).
    #[serde(default)]
    pub groups_ou: Option<String>,
    #[serde(default = "default_transport")]
    pub transport: Transport,
    #[serde(default)]
    pub use_ssl: bool,
    #[serde(default)]
    pub winrm_port: Option<u16>,
    #[serde(default = "default_ldap_port")]
    pub ldap_port: u16,
    #[serde(default = "default_rdp_port")]
    pub rdp_port: u16,
    /// Prepended to every account name (`jit_`).
    #[serde(default)]
    pub username_prefix: String,
    /// The service account (for the host: the lifecycle's service user).
    #[serde(default)]
    pub user: Option<String>,
    /// The secret with its password (for the host).
    #[serde(default)]
    pub password_secret: Option<String>,
    #[serde(default)]
    pub credential_rotation_days: Option<u32>,
    #[serde(default)]
    pub user_cleanup_days: Option<u32>,
    #[serde(default)]
    pub custom_access_details: Option<String>,
}

fn default_transport() -> Transport {
    Transport::Winrm
}
fn default_ldap_port() -> u16 {
    636
}
fn default_rdp_port() -> u16 {
    3389
}

fn is_host(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && !s.starts_with(['-', '.'])
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-_:".contains(&b))
}

/// A DN as configured: the host parses it properly; here only plausibility.
fn check_dn(field: &str, dn: &str) -> Result<(), Error> {
    let ok =
        !dn.is_empty() && dn.len() <= 1024 && dn.contains('=') && !dn.chars().any(char::is_control);
    if !ok {
        return Err(invalid_config(format!(
            "{field} {:?} is not a distinguished name (like OU=Latch,DC=corp,DC=example)",
            dn.chars().take(80).collect::<String>()
        )));
    }
    Ok(())
}

fn ends_with_dn(dn: &str, base: &str) -> bool {
    let (dn, base) = (dn.to_ascii_lowercase(), base.to_ascii_lowercase());
    dn.ends_with(&format!(",{base}"))
}

impl Config {
    /// Parse and check `json`; every error names the field.
    pub fn parse(json: &str) -> Result<Config, Error> {
        let c: Config = latch_guest_sdk::config::parse(json)?;
        if !is_host(&c.host) {
            return Err(invalid_config(format!(
                "host {:?} is not a host name or IP address",
                c.host
            )));
        }
        let domain_ok = !c.domain.is_empty()
            && c.domain.len() <= 253
            && c.domain.contains('.')
            && c.domain
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
        if !domain_ok {
            return Err(invalid_config(format!(
                "domain {:?} must be the domain's DNS name (corp.example)",
                c.domain
            )));
        }
        let netbios_ok = !c.netbios.is_empty()
            && c.netbios.len() <= 15
            && c.netbios
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !netbios_ok {
            return Err(invalid_config(format!(
                "netbios {:?} must be 1 to 15 of [A-Za-z0-9-]",
                c.netbios
            )));
        }
        check_dn("base_dn", &c.base_dn)?;
        check_dn("users_ou", &c.users_ou)?;
        check_dn("connect_group", &c.connect_group)?;
        if !ends_with_dn(&c.users_ou, &c.base_dn) {
            return Err(invalid_config("users_ou must lie under base_dn"));
        }
        if let Some(ou) = &c.groups_ou {
            check_dn("groups_ou", ou)?;
        }
        for (field, port) in [
            ("ldap_port", Some(c.ldap_port)),
            ("rdp_port", Some(c.rdp_port)),
            ("winrm_port", c.winrm_port),
        ] {
            if port == Some(0) {
                return Err(invalid_config(format!("{field} must be 1 to 65535")));
            }
        }
        ad::check_username_prefix(&c.username_prefix)?;
        if let Some(user) = &c.user {
            ad::check_service_user(user)?;
        }
        if let Some(name) = &c.password_secret {
            ad::check_password_secret(name)?;
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

    /// Where capability calls go: the DC, on the transport's port; the host binds the
    /// configured service account.
    pub fn target(&self) -> Target {
        let port = match self.transport {
            Transport::Ldap => self.ldap_port,
            Transport::Winrm => self
                .winrm_port
                .unwrap_or(if self.use_ssl { 5986 } else { 5985 }),
        };
        Target {
            host: self.host.clone(),
            port,
            user: None,
        }
    }

    /// Check that `resource` is this integration's domain.
    pub fn check_resource(&self, resource: &str) -> Result<(), Error> {
        if resource.eq_ignore_ascii_case(&self.domain) {
            return Ok(());
        }
        let shown: String = resource.chars().take(64).collect();
        Err(invalid_request(format!(
            "unknown resource {shown:?}; this integration has {:?}",
            self.domain
        )))
    }
}
