//! Every capability, registered here and nowhere else: its WIT bindings (every contract
//! version it serves) and its live part. The rest of `caps` (dispatch, records, the live
//! backend) knows no capability by name; a capability's module holds everything else.

use std::collections::HashMap;
use std::sync::Arc;

use super::cloud::live::CloudSettings;
use super::ldap::live::LdapSettings;
use super::live::{Live, LivePart};
use super::login::Logins;
use super::ssh::client::SshSettings;
use super::winrm::pool::WinrmSettings;
use super::{CallState, SecretStore};
use super::{certs, cloud, ldap, log, secrets, ssh, winrm};

/// Link every capability's imports, for every contract version each serves.
pub(crate) fn link(linker: &mut wasmtime::component::Linker<CallState>) -> wasmtime::Result<()> {
    ssh::wit::link(linker)?;
    winrm::wit::link(linker)?;
    ldap::wit::link(linker)?;
    cloud::wit::link(linker)?;
    secrets::wit::link(linker)?;
    certs::wit::link(linker)?;
    log::link(linker)?;
    Ok(())
}

/// What the live parts are built from: each capability's settings per integration name.
#[derive(Default)]
pub struct LiveSettings {
    /// `[integration.ssh]`, as the guest's lifecycle amended it.
    pub ssh: HashMap<String, SshSettings>,
    /// `[integration.winrm]`.
    pub winrm: HashMap<String, WinrmSettings>,
    /// `[integration.ldap]` (integrations that have the table).
    pub ldap: HashMap<String, LdapSettings>,
    /// `[integration.aws]` and `[integration.azure]`.
    pub cloud: CloudSettings,
}

/// The live backend of every capability (the same list as [`link`]), over `secrets`.
pub fn live(secrets: SecretStore, settings: LiveSettings) -> Live {
    let secrets = Arc::new(secrets);
    let parts: Vec<Box<dyn LivePart>> = vec![
        Box::new(ssh::live::Part::new(settings.ssh, &secrets)),
        Box::new(winrm::live::Part::new(settings.winrm, &secrets)),
        Box::new(ldap::live::Part::new(settings.ldap, &secrets)),
        Box::new(cloud::live::Part::new(settings.cloud, &secrets)),
        Box::new(secrets::live::Part::new(&secrets)),
        Box::new(certs::live::Part::new(&secrets)),
    ];
    Live::new(parts)
}

/// The service logins of one integration (see [`super::login`]), each built by its
/// capability from the integration's settings for it: a capability the integration has no
/// table for has no login.
pub fn service_logins(
    secrets: &Arc<SecretStore>,
    ssh: Option<&SshSettings>,
    winrm: &WinrmSettings,
    ldap: Option<&LdapSettings>,
) -> Logins {
    let mut logins = Logins::new();
    if let Some(s) = ssh {
        logins.insert(
            ssh::login::NAME,
            Box::new(ssh::login::Login::new(s.clone(), secrets.clone())),
        );
    }
    logins.insert(
        winrm::login::NAME,
        Box::new(winrm::login::Login::new(winrm.clone(), secrets.clone())),
    );
    if let Some(l) = ldap {
        logins.insert(
            ldap::login::NAME,
            Box::new(ldap::login::Login::new(l.clone(), secrets.clone())),
        );
    }
    logins
}
