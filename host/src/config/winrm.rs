//! `[integration.winrm]`: the WinRM capability's transport, account and cmdlets.

use super::*;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct WinrmSection {
    #[serde(default)]
    pub(super) read: Vec<String>,
    #[serde(default)]
    pub(super) change: Vec<String>,
    pub(super) user: Option<String>,
    pub(super) password_secret: Option<String>,
    pub(super) auth: Option<String>,
    pub(super) ca_file: Option<PathBuf>,
    pub(super) https_ports: Option<Vec<u16>>,
    #[serde(default)]
    pub(super) allow_unencrypted: bool,
    pub(super) connect_timeout: Option<String>,
    pub(super) command_timeout: Option<String>,
    pub(super) idle_timeout: Option<String>,
}

/// The `[integration.winrm]` table's transport settings.
pub(super) fn check_winrm(s: WinrmSection, data_dir: &Path) -> anyhow::Result<WinrmSettings> {
    let mut w = WinrmSettings::defaults().map_err(anyhow::Error::msg)?;
    if let Some(user) = s.user {
        check_windows_account(&user).context("user")?;
        w.default_user = Some(user);
    }
    if let Some(name) = s.password_secret {
        secrets::check_name(&name)
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
        let ca = data_dir.join(ca);
        let tls = crate::caps::winrm::transport::tls_config(Some(&ca))
            .map_err(anyhow::Error::msg)
            .context("ca_file")?;
        w.transport.tls = std::sync::Arc::new(tls);
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

/// A Windows account as `user`, `DOMAIN\user` or `user@domain`: printable, no characters
/// Windows forbids in account names, at most 256 bytes.
pub fn check_windows_account(name: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 256
        && name.chars().all(|c| !c.is_control())
        && !name.chars().any(|c| {
            matches!(
                c,
                '"' | '/' | '[' | ']' | ':' | ';' | '|' | '=' | ',' | '+' | '*' | '?' | '<' | '>'
            )
        })
        && name.matches('\\').count() <= 1;
    if !ok {
        bail!("{name:?} is not a Windows account name (user, DOMAIN\\user or user@domain)");
    }
    Ok(())
}
