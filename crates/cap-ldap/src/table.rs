//! `[integration.ldap]`: how the host binds to the directory over LDAPS or StartTLS. What it
//! may touch there is `[integration.directory]`'s (the core's), which this table requires.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use serde::Deserialize;

use latch_cap::SecretStore;
use latch_cap::directory::Bases;
use latch_cap::directory::dn::Dn;
use latch_cap::login::ServiceLogin;
use latch_cap::table::{
    Table, TableCx, TableSettings, check_windows_account, parse_duration, tls_config,
};

use crate::live::LdapSettings;

/// The `ldap` capability's table.
pub struct Ldap;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Section {
    /// Moved to `[integration.directory]` (read as an error that says so).
    read: Option<toml::Value>,
    /// Moved to `[integration.directory]`.
    change: Option<toml::Value>,
    /// Moved to `[integration.directory]`.
    groups: Option<toml::Value>,
    user: Option<String>,
    password_secret: Option<String>,
    ca_file: Option<PathBuf>,
    #[serde(default)]
    starttls: bool,
    connect_timeout: Option<String>,
    operation_timeout: Option<String>,
    idle_timeout: Option<String>,
}

const PASSWORD_SECRET: &str = "[integration.ldap] password_secret";

impl Table for Ldap {
    fn names(&self) -> &'static [&'static str] {
        &["ldap"]
    }

    fn service_secret_fields(&self) -> &'static [&'static str] {
        &[PASSWORD_SECRET]
    }

    fn check(&self, cx: &mut TableCx<'_>) -> anyhow::Result<()> {
        let Some(section) = cx.take::<Section>("ldap")? else {
            return Ok(());
        };
        for (field, set) in [
            ("read", section.read.is_some()),
            ("change", section.change.is_some()),
            ("groups", section.groups.is_some()),
        ] {
            if set {
                bail!(
                    "ldap.{field} moved to [integration.directory] {field}: the directory \
                     bounds hold on every transport (LDAP and the AD cmdlets over WinRM)"
                );
            }
        }
        if cx.policy.get::<Bases>().is_none() {
            bail!(
                "[integration.ldap] lends nothing without [integration.directory]: set its \
                 read, change and groups (the subtrees the guest may touch)"
            );
        }
        let settings = check(section, cx).context("ldap")?;
        cx.settings.insert(settings);
        Ok(())
    }
}

fn check(s: Section, cx: &TableCx<'_>) -> anyhow::Result<LdapSettings> {
    let ca_file = s.ca_file.map(|ca| cx.data_dir().join(ca));
    let tls = tls_config(ca_file.as_deref())
        .map_err(anyhow::Error::msg)
        .context("ca_file")?;
    let mut l = LdapSettings::with_tls(Arc::new(tls));
    l.ca_file = ca_file;
    if let Some(user) = s.user {
        if Dn::parse(&user).is_err() {
            check_windows_account(&user)
                .context("user (an account name, user@domain, DOMAIN\\user or a DN)")?;
        }
        l.default_user = Some(user);
    }
    if let Some(name) = s.password_secret {
        latch_secret_store::check_name(&name)
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

impl TableSettings for LdapSettings {
    fn service_secrets(&self) -> Vec<(&'static str, String)> {
        self.password_secret
            .iter()
            .map(|s| (PASSWORD_SECRET, s.clone()))
            .collect()
    }

    fn service_user(&self) -> Option<(&'static str, &str)> {
        Some(("[integration.ldap] user", self.default_user.as_deref()?))
    }

    fn adopt_service_user(&mut self, user: &str) {
        self.default_user.get_or_insert_with(|| user.to_string());
    }

    fn login(&self, secrets: &Arc<SecretStore>) -> Option<(&'static str, Box<dyn ServiceLogin>)> {
        Some((
            crate::login::NAME,
            Box::new(crate::login::Login::new(self.clone(), secrets.clone())),
        ))
    }

    fn clone_box(&self) -> Box<dyn TableSettings> {
        Box::new(self.clone())
    }
}
