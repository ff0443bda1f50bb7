//! `[integration.ldap]` (connection settings) and `[integration.directory]` (what the
//! integration may touch in its directory, on every transport).

use super::*;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct LdapSection {
    /// Moved to `[integration.directory]` (read as an error that says so).
    pub(super) read: Option<toml::Value>,
    /// Moved to `[integration.directory]`.
    pub(super) change: Option<toml::Value>,
    /// Moved to `[integration.directory]`.
    pub(super) groups: Option<toml::Value>,
    pub(super) user: Option<String>,
    pub(super) password_secret: Option<String>,
    pub(super) ca_file: Option<PathBuf>,
    #[serde(default)]
    pub(super) starttls: bool,
    pub(super) connect_timeout: Option<String>,
    pub(super) operation_timeout: Option<String>,
    pub(super) idle_timeout: Option<String>,
}

/// `[integration.directory]`: what the integration may touch in its directory, on every
/// transport (`ldap.*` and the AD cmdlets over WinRM).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct DirectorySection {
    #[serde(default)]
    pub(super) read: Vec<String>,
    #[serde(default)]
    pub(super) change: Vec<String>,
    #[serde(default)]
    pub(super) groups: Vec<String>,
}

/// The `[integration.ldap]` table's connection settings (its bases go to the policy).
pub(super) fn check_ldap(s: LdapSection, data_dir: &Path) -> anyhow::Result<LdapSettings> {
    let tls = match &s.ca_file {
        Some(ca) => crate::caps::winrm::transport::tls_config(Some(&data_dir.join(ca))),
        None => crate::caps::winrm::transport::tls_config(None),
    }
    .map_err(anyhow::Error::msg)
    .context("ca_file")?;
    let mut l = LdapSettings::with_tls(std::sync::Arc::new(tls));
    l.ca_file = s.ca_file.map(|ca| data_dir.join(ca));
    if let Some(user) = s.user {
        if crate::caps::directory::dn::Dn::parse(&user).is_err() {
            check_windows_account(&user)
                .context("user (an account name, user@domain, DOMAIN\\user or a DN)")?;
        }
        l.default_user = Some(user);
    }
    if let Some(name) = s.password_secret {
        secrets::check_name(&name)
            .map_err(anyhow::Error::msg)
            .context("password_secret")?;
        l.password_secret = Some(name);
    }
    l.starttls = s.starttls;
    if let Some(t) = &s.connect_timeout {
        l.connect_timeout = parse_duration(t).context("connect_timeout")?;
    }
    if let Some(t) = &s.operation_timeout {
        l.operation_timeout = parse_duration(t).context("operation_timeout")?;
    }
    if let Some(t) = &s.idle_timeout {
        l.idle_timeout = parse_duration(t).context("idle_timeout")?;
    }
    Ok(l)
}
