//! Every capability, registered here and nowhere else: its WIT bindings (every contract
//! version it serves), its tables of `latch.toml` and its live part. The rest of the host
//! knows no capability by name; a capability's crate holds everything else.

use std::sync::Arc;

use super::live::{Live, LivePart};
use super::login::Logins;
use super::table::{Settings, Table};
use super::{CallState, SecretStore};
use super::{certs, cloud, directory, ldap, log, secrets, ssh, winrm};

/// Link every capability's imports, for every contract version each serves.
pub fn link(linker: &mut wasmtime::component::Linker<CallState>) -> wasmtime::Result<()> {
    ssh::wit::link(linker)?;
    winrm::wit::link(linker)?;
    ldap::wit::link(linker)?;
    cloud::wit::link(linker)?;
    secrets::wit::link(linker)?;
    certs::wit::link(linker)?;
    log::link(linker)?;
    Ok(())
}

/// Every capability's tables of `[[integration]]`, in the order they are checked: the
/// directory's bounds first (the `winrm` and `ldap` tables ask for them).
pub fn tables() -> Vec<Box<dyn Table>> {
    vec![
        Box::new(directory::table::Directory),
        Box::new(ssh::table::Ssh),
        Box::new(winrm::table::Winrm),
        Box::new(ldap::table::Ldap),
        Box::new(cloud::table::Cloud),
    ]
}

/// The live backend of every capability (the same list as [`link`]), over `secrets`, each
/// built from the settings of the integrations (by name) that have its table.
pub fn live<'a>(
    secrets: SecretStore,
    integrations: impl IntoIterator<Item = (&'a str, &'a Settings)> + Clone,
) -> Live {
    let secrets = Arc::new(secrets);
    let of = || integrations.clone();
    let parts: Vec<Box<dyn LivePart>> = vec![
        Box::new(ssh::live::Part::new(Settings::collect(of()), &secrets)),
        Box::new(winrm::live::Part::new(Settings::collect(of()), &secrets)),
        Box::new(ldap::live::Part::new(Settings::collect(of()), &secrets)),
        Box::new(cloud::live::Part::new(
            cloud::live::CloudSettings::from_tables(Settings::collect(of())),
            &secrets,
        )),
        Box::new(secrets::live::Part::new(&secrets)),
        Box::new(certs::live::Part::new(&secrets)),
    ];
    Live::new(parts)
}

/// The service logins of one integration (see [`super::login`]), each built by its
/// capability from the integration's settings for it: a capability the integration has no
/// table for has no login.
pub fn service_logins(secrets: &Arc<SecretStore>, settings: &Settings) -> Logins {
    settings.iter().filter_map(|s| s.login(secrets)).collect()
}
