//! `[integration.winrm]`: the WinRM capability's transport, service account and cmdlets.
//! Every integration has WinRM settings (the defaults when it has no table): a guest that
//! lends no cmdlet can run none.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use serde::Deserialize;

use latch_cap::SecretStore;
use latch_cap::directory::Bases;
use latch_cap::login::ServiceLogin;
use latch_cap::policy::Policy;
use latch_cap::table::{
    Table, TableCx, TableSettings, check_windows_account, parse_duration, tls_config,
};

use crate::lent::{Cmdlets, ServiceAccount};
use crate::pool::WinrmSettings;
use crate::transport::AuthMethod;

/// The `winrm` capability's table.
pub struct Winrm;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Section {
    #[serde(default)]
    read: Vec<String>,
    #[serde(default)]
    change: Vec<String>,
    user: Option<String>,
    password_secret: Option<String>,
    auth: Option<String>,
    ca_file: Option<PathBuf>,
    https_ports: Option<Vec<u16>>,
    #[serde(default)]
    allow_unencrypted: bool,
    connect_timeout: Option<String>,
    command_timeout: Option<String>,
    idle_timeout: Option<String>,
}

const PASSWORD_SECRET: &str = "[integration.winrm] password_secret";

impl Table for Winrm {
    fn names(&self) -> &'static [&'static str] {
        &["winrm"]
    }

    fn service_secret_fields(&self) -> &'static [&'static str] {
        &[PASSWORD_SECRET]
    }

    /// The cmdlets lent go to the policy; a cmdlet that names directory objects needs the
    /// directory's bounds (`[integration.directory]`, checked before this table).
    fn check(&self, cx: &mut TableCx<'_>) -> anyhow::Result<()> {
        let s = cx.take::<Section>("winrm")?.unwrap_or_default();
        let cmdlets = Cmdlets::parse(&s.read, &s.change).map_err(anyhow::Error::msg)?;
        if cx.policy.get::<Bases>().is_none()
            && let Some(c) = s.read.iter().chain(&s.change).find(|c| {
                crate::catalog::catalog()
                    .get(c)
                    .is_some_and(|e| e.names_directory_objects())
            })
        {
            bail!(
                "winrm lends {c}, which names directory objects: set [integration.directory] \
                 read, change and groups (the bounds hold on WinRM as on LDAP)"
            );
        }
        let settings = check(s, cx).context("winrm")?;
        cx.policy = std::mem::take(&mut cx.policy).with(cmdlets);
        cx.settings.insert(settings);
        Ok(())
    }
}

fn check(s: Section, cx: &TableCx<'_>) -> anyhow::Result<WinrmSettings> {
    let mut w = WinrmSettings::defaults().map_err(anyhow::Error::msg)?;
    if let Some(user) = s.user {
        check_windows_account(&user).context("user")?;
        w.default_user = Some(user);
    }
    if let Some(name) = s.password_secret {
        latch_secret_store::check_name(&name)
            .map_err(anyhow::Error::msg)
            .context("password_secret")?;
        w.password_secret = Some(name);
    }
    w.transport.auth = match s.auth.as_deref() {
        None | Some("ntlm") => AuthMethod::Ntlm,
        Some("basic") => AuthMethod::Basic,
        Some(other) => bail!("auth must be \"ntlm\" or \"basic\", not {other:?}"),
    };
    if let Some(ports) = s.https_ports {
        if ports.contains(&0) {
            bail!("https_ports: 0 is not a port");
        }
        w.https_ports = ports;
    }
    if let Some(ca) = s.ca_file {
        let ca = cx.data_dir().join(ca);
        let tls = tls_config(Some(&ca))
            .map_err(anyhow::Error::msg)
            .context("ca_file")?;
        w.transport.tls = Arc::new(tls);
        w.ca_file = Some(ca);
    }
    w.transport.allow_unencrypted = s.allow_unencrypted;
    if let Some(t) = &s.connect_timeout {
        w.transport.connect_timeout = parse_duration(t).context("connect_timeout")?;
    }
    if let Some(t) = &s.command_timeout {
        w.command_timeout = parse_duration(t).context("command_timeout")?;
        w.transport.request_timeout = w.command_timeout;
    }
    if let Some(t) = &s.idle_timeout {
        w.idle_timeout = parse_duration(t).context("idle_timeout")?;
    }
    Ok(w)
}

impl TableSettings for WinrmSettings {
    fn service_secrets(&self) -> Vec<(&'static str, String)> {
        self.password_secret
            .iter()
            .map(|s| (PASSWORD_SECRET, s.clone()))
            .collect()
    }

    fn service_user(&self) -> Option<(&'static str, &str)> {
        Some(("[integration.winrm] user", self.default_user.as_deref()?))
    }

    fn adopt_service_user(&mut self, user: &str) {
        self.default_user.get_or_insert_with(|| user.to_string());
    }

    /// The account WinRM logs in as (latch.toml's, or the guest's): the cmdlets' checks keep
    /// a guest from acting on it.
    fn lend(&self, policy: Policy) -> Policy {
        match &self.default_user {
            Some(account) => policy.with(ServiceAccount(account.clone())),
            None => policy,
        }
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
