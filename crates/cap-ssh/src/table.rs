//! `[integration.ssh]`: how the host reaches an integration's servers over SSH, and its one
//! service key.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use serde::Deserialize;

use latch_cap::SecretStore;
use latch_cap::login::ServiceLogin;
use latch_cap::table::{Table, TableCx, TableSettings, parse_duration};

use crate::client::SshSettings;

/// The `ssh` capability's table.
pub struct Ssh;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Section {
    key_secret: String,
    user: Option<String>,
    known_hosts: Option<PathBuf>,
    #[serde(default)]
    trust_on_first_use: bool,
    connect_timeout: Option<String>,
    command_timeout: Option<String>,
    idle_timeout: Option<String>,
}

const KEY_SECRET: &str = "[integration.ssh] key_secret";

impl Table for Ssh {
    fn names(&self) -> &'static [&'static str] {
        &["ssh"]
    }

    fn service_secret_fields(&self) -> &'static [&'static str] {
        &[KEY_SECRET]
    }

    /// `key_secret` is the one secret its SSH logins use: a guest config's `user_key_name`
    /// (as the product we mirror names it) must name the same secret.
    fn check(&self, cx: &mut TableCx<'_>) -> anyhow::Result<()> {
        let Some(s) = cx.take::<Section>("ssh")? else {
            return Ok(());
        };
        let settings = check(s, cx).context("ssh")?;
        cx.settings.insert(settings);
        Ok(())
    }
}

fn check(s: Section, cx: &TableCx<'_>) -> anyhow::Result<SshSettings> {
    let key_secret = s.key_secret;
    if let Some(user) = &s.user {
        latch_cap::check_account_name("user", user).map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    latch_secret_store::check_name(&key_secret)
        .map_err(anyhow::Error::msg)
        .context("key_secret")?;
    let timeout = |v: &Option<String>, default: u64, field: &str| -> anyhow::Result<Duration> {
        match v {
            Some(t) => parse_duration(t).with_context(|| field.to_string()),
            None => Ok(Duration::from_secs(default)),
        }
    };
    Ok(SshSettings {
        key_secret,
        default_user: s.user,
        known_hosts: cx.data_dir().join(
            s.known_hosts
                .unwrap_or_else(|| PathBuf::from("known_hosts")),
        ),
        trust_on_first_use: s.trust_on_first_use,
        connect_timeout: timeout(&s.connect_timeout, 10, "connect_timeout")?,
        command_timeout: timeout(&s.command_timeout, 60, "command_timeout")?,
        idle_timeout: timeout(&s.idle_timeout, 60, "idle_timeout")?,
    })
}

impl TableSettings for SshSettings {
    fn service_secrets(&self) -> Vec<(&'static str, String)> {
        vec![(KEY_SECRET, self.key_secret.clone())]
    }

    fn service_user(&self) -> Option<(&'static str, &str)> {
        Some(("[integration.ssh] user", self.default_user.as_deref()?))
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
