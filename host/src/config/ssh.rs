//! `[integration.ssh]`: the SSH capability's connection settings and its one service key.

use super::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SshSection {
    pub(super) key_secret: String,
    pub(super) user: Option<String>,
    pub(super) known_hosts: Option<PathBuf>,
    #[serde(default)]
    pub(super) trust_on_first_use: bool,
    pub(super) connect_timeout: Option<String>,
    pub(super) command_timeout: Option<String>,
    pub(super) idle_timeout: Option<String>,
}

/// The `[integration.ssh]` table. `key_secret` is the one secret its SSH logins use: a guest
/// config's `user_key_name` (as the product we mirror names it) must name the same secret.
pub(super) fn check_ssh(s: SshSection, data_dir: &Path) -> anyhow::Result<SshSettings> {
    let key_secret = s.key_secret;
    if let Some(user) = &s.user {
        crate::caps::check_account_name("user", user).map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    secrets::check_name(&key_secret)
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
        known_hosts: data_dir.join(
            s.known_hosts
                .unwrap_or_else(|| PathBuf::from("known_hosts")),
        ),
        trust_on_first_use: s.trust_on_first_use,
        connect_timeout: timeout(&s.connect_timeout, 10, "connect_timeout")?,
        command_timeout: timeout(&s.command_timeout, 60, "command_timeout")?,
        idle_timeout: timeout(&s.idle_timeout, 60, "idle_timeout")?,
    })
}
