//! Latch integration `windows-dc`: just-in-time domain accounts on a Windows Domain
//! Controller, over WinRM (the AD cmdlets) or LDAPS (the host's `ldap` capability); the
//! logic is the same on both ([`directory::Directory`]).
//!
//! - **discover**: the domain, with `Connect` (the configured `connect_group`) and the groups
//!   found under `groups_ou` as its permissions;
//! - **grant**: the account `username_prefix` + the requester's name, in `users_ou`, marked as
//!   Latch's (its place and its description) — **refuse** an existing account that is not;
//!   the host's generated password; **account expiry = the grant's expiry**, enforced by AD
//!   itself even if the connector is down; enabled; added to the group. An extension does
//!   the same with the new expiry and a new password;
//! - **revoke**: out of the group, disabled, its password set to a fresh random one nobody
//!   holds (the host's `grant-password` in a revoke);
//! - **cleanup**: delete the account, only if it is Latch's;
//! - **add-service-credential** (rotation): reset the service account's own password to the
//!   host's new one (LDAP: `unicodePwd` on its own entry, which the host checks; WinRM:
//!   `Set-ADAccountPassword -Reset`).
//!
//! A grant leaves the account's DN and the group's DN as its state, so revoke and cleanup act
//! on exactly what the grant touched.

mod config;
mod directory;

use config::{CONNECT, Config, Transport};
use directory::{Directory, is_managed, user_dn};
use latch_guest_sdk::{
    AccessDetails, CredentialKind, Error, GrantRequest, Granted, Integration, Level, Lifecycle,
    Metadata, Page, Resource, ServiceCredential, ad, invalid_config, invalid_request, log, names,
};
use serde::{Deserialize, Serialize};

/// What a grant leaves for its revoke and cleanup.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct State {
    account: String,
    dn: String,
    group: String,
}

struct WindowsDc;

impl Integration for WindowsDc {
    fn describe() -> Metadata {
        Metadata {
            name: "windows-dc".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Just-in-time domain accounts in Active Directory groups, expiring with \
                          the grant, over WinRM or LDAPS"
                .into(),
            config_schema: include_str!("../schema.json").into(),
            credential: CredentialKind::Password,
        }
    }

    fn validate(config: String) -> Result<Lifecycle, Error> {
        let config = Config::parse(&config)?;
        if config.credential_rotation_days.is_some() {
            service_account(&config)?;
        }
        Ok(Lifecycle {
            cleanup_after_days: config.user_cleanup_days,
            rotate_after_days: config.credential_rotation_days,
            service_key_secret: config.password_secret.clone(),
            service_user: config.user.clone(),
            default_permission: CONNECT.into(),
        })
    }

    fn discover(config: String, cursor: Option<String>) -> Result<Page, Error> {
        let config = Config::parse(&config)?;
        if cursor.is_some() {
            return Err(invalid_request("not a cursor of this integration"));
        }
        let mut permissions = vec![CONNECT.to_string()];
        if let Some(ou) = &config.groups_ou {
            let dir = directory::open(&config);
            let mut found: Vec<String> = dir
                .groups(ou, None)?
                .into_iter()
                .map(|g| g.name)
                .filter(|n| !n.is_empty() && n != CONNECT)
                .collect();
            found.sort();
            found.dedup();
            permissions.extend(found);
        }
        let transport = match config.transport {
            Transport::Winrm => "winrm",
            Transport::Ldap => "ldaps",
        };
        Ok(Page {
            resources: vec![Resource {
                id: config.domain.clone(),
                name: format!("{} ({})", config.domain, config.netbios),
                kind: "ad-domain".into(),
                tags: vec![("transport".into(), transport.into())],
                permissions,
            }],
            next: None,
        })
    }

    fn grant(config: String, request: GrantRequest) -> Result<Granted, Error> {
        let config = Config::parse(&config)?;
        let sam = check_request(&config, &request)?;
        let dir = directory::open(&config);
        let group = group_dn(&config, dir.as_ref(), &request.permission)?;

        let dn = match dir.find_user(&sam)? {
            Some(user) => {
                if !is_managed(&config, &sam, &user) {
                    return Err(Error::Denied(format!(
                        "account {sam:?} exists in the directory ({}) and was not created by \
                         Latch; refusing to touch it",
                        user.dn
                    )));
                }
                dir.reset_password(&user.dn)?;
                dir.set_expiry(&user.dn, request.expires_at)?;
                if !user.enabled {
                    dir.set_enabled(&user.dn, true)?;
                }
                if !member(&user.member_of, &group) {
                    dir.add_member(&group, &user.dn)?;
                }
                user.dn
            }
            None => {
                let dn = dir.create_user(&sam, request.expires_at)?;
                dir.add_member(&group, &dn)?;
                dn
            }
        };
        log(
            Level::Info,
            &format!(
                "granted {sam} in {} until {}",
                config.domain, request.expires_at
            ),
        );
        let state = State {
            account: sam.clone(),
            dn,
            group,
        };
        Ok(Granted {
            access: access_details(&config, &sam, request.expires_at),
            state: serde_json::to_string(&state).map_err(|e| Error::Failed(e.to_string()))?,
        })
    }

    fn revoke(config: String, request: GrantRequest) -> Result<(), Error> {
        let config = Config::parse(&config)?;
        let dir = directory::open(&config);
        let (sam, group) = match stored(&request)? {
            Some(state) => (check_sam(&config, &state.account)?, Some(state.group)),
            None => (check_request(&config, &request)?, None),
        };
        let Some(user) = dir.find_user(&sam)? else {
            return Ok(());
        };
        if !is_managed(&config, &sam, &user) {
            log(
                Level::Warn,
                &format!("{sam} in {} is not Latch's; left untouched", config.domain),
            );
            return Ok(());
        }
        let group = match group {
            Some(g) => g,
            None => group_dn(&config, dir.as_ref(), &request.permission)?,
        };
        if member(&user.member_of, &group) {
            dir.remove_member(&group, &user.dn)?;
        }
        if user.enabled {
            dir.set_enabled(&user.dn, false)?;
        }
        dir.reset_password(&user.dn)?;
        log(Level::Info, &format!("revoked {sam} in {}", config.domain));
        Ok(())
    }

    fn cleanup(config: String, request: GrantRequest, username: String) -> Result<(), Error> {
        let config = Config::parse(&config)?;
        let sam = check_sam(&config, &username)?;
        let dir = directory::open(&config);
        let _ = request;
        let Some(user) = dir.find_user(&sam)? else {
            return Ok(());
        };
        if !is_managed(&config, &sam, &user) {
            return Err(Error::Denied(format!(
                "account {sam:?} ({}) was not created by Latch; refusing to delete it",
                user.dn
            )));
        }
        if user.enabled {
            dir.set_enabled(&user.dn, false)?;
        }
        dir.delete_user(&user.dn)
    }

    fn add_service_credential(
        config: String,
        resource_id: String,
        credential: ServiceCredential,
    ) -> Result<(), Error> {
        let config = Config::parse(&config)?;
        config.check_resource(&resource_id)?;
        let ServiceCredential::Password = credential else {
            return Err(invalid_request(
                "windows-dc logs in with a password; it has no SSH key to rotate",
            ));
        };
        let sam = service_account(&config)?;
        directory::open(&config).set_service_password(&sam)?;
        log(
            Level::Info,
            &format!("service password of {sam} reset in {}", config.domain),
        );
        Ok(())
    }

    fn remove_service_credential(
        config: String,
        resource_id: String,
        credential: ServiceCredential,
    ) -> Result<(), Error> {
        let config = Config::parse(&config)?;
        config.check_resource(&resource_id)?;
        // Setting the new password replaced the old one: nothing is left to remove.
        ad::password_replaced("windows-dc", &credential)
    }
}

/// The service account's sAMAccountName, from `user` (`svc@corp.example`, `CORP\svc`, `svc`).
fn service_account(config: &Config) -> Result<String, Error> {
    let Some(user) = &config.user else {
        return Err(invalid_config(
            "credential_rotation_days needs `user`: the account whose password is rotated",
        ));
    };
    let name = user.rsplit('\\').next().unwrap_or(user);
    let name = name.split('@').next().unwrap_or(name);
    let ok = !name.is_empty()
        && name.chars().count() <= 20
        && !name
            .chars()
            .any(|c| c.is_control() || "\"/\\[]:;|=,+*?<>".contains(c));
    if !ok {
        return Err(invalid_config(format!(
            "user {user:?} does not name an account (svc@domain, DOMAIN\\svc or svc)"
        )));
    }
    Ok(name.to_string())
}

/// Is `group` among `member_of` (DNs compared as names: escapes and case aside)?
fn member(member_of: &[String], group: &str) -> bool {
    member_of.iter().any(|g| ad::same_dn(g, group))
}

/// The group `permission` grants: `Connect`'s, or a group of that name under `groups_ou`.
fn group_dn(config: &Config, dir: &dyn Directory, permission: &str) -> Result<String, Error> {
    if permission == CONNECT {
        return Ok(config.connect_group.clone());
    }
    let shown: String = permission.chars().take(64).collect();
    let Some(ou) = &config.groups_ou else {
        return Err(invalid_request(format!(
            "permission {shown:?}: this integration grants only {CONNECT:?} (no groups_ou)"
        )));
    };
    let plain = !permission.is_empty()
        && permission.chars().count() <= 64
        && !permission.chars().any(char::is_control);
    if !plain {
        return Err(invalid_request(format!(
            "permission {shown:?} is not a group name"
        )));
    }
    let found = dir.groups(ou, Some(permission))?;
    match found.as_slice() {
        [g] if g.name == permission => Ok(g.dn.clone()),
        [] | [_] => Err(invalid_request(format!(
            "permission {shown:?} is not a group under groups_ou"
        ))),
        _ => Err(Error::Failed(format!(
            "{} groups are called {shown:?} under groups_ou",
            found.len()
        ))),
    }
}

/// The account name for a request, checked before anything is sent.
fn check_request(config: &Config, request: &GrantRequest) -> Result<String, Error> {
    config.check_resource(&request.resource_id)?;
    check_grant_id(&request.grant_id)?;
    let name = match &request.identity.username {
        Some(name) => names::check("username", name)?.to_string(),
        None => names::username_from_email(&request.identity.email)?,
    };
    check_sam(config, &format!("{}{name}", config.username_prefix))
}

/// `sam` as an account of this integration: a Windows account name with the prefix.
fn check_sam(config: &Config, sam: &str) -> Result<String, Error> {
    let sam = ad::check_account("account", sam)?;
    if !sam.starts_with(&config.username_prefix) {
        return Err(invalid_request(format!(
            "account {sam:?} does not start with the prefix {:?}",
            config.username_prefix
        )));
    }
    Ok(sam.to_string())
}

fn check_grant_id(id: &str) -> Result<(), Error> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !ok {
        return Err(invalid_request("grant id must be 1 to 64 of [A-Za-z0-9_-]"));
    }
    Ok(())
}

/// The state a grant left, if any.
fn stored(request: &GrantRequest) -> Result<Option<State>, Error> {
    match request.state.as_deref() {
        None | Some("") => Ok(None),
        Some(text) => serde_json::from_str(text)
            .map(Some)
            .map_err(|e| invalid_request(format!("the grant's state is not this guest's: {e}"))),
    }
}

fn access_details(config: &Config, sam: &str, expires_at: u64) -> AccessDetails {
    let account = format!("{}\\{sam}", config.netbios);
    let upn = format!("{sam}@{}", config.domain);
    let mut instructions = format!(
        "Sign in as {account} (or {upn}) with the password shown once. The account expires \
         at {} (UTC); Active Directory refuses it after that, whatever happens to Latch.",
        ad::iso8601(expires_at)
    );
    if let Some(extra) = &config.custom_access_details {
        instructions.push('\n');
        instructions.push_str(extra);
    }
    AccessDetails {
        username: account,
        host: config.host.clone(),
        port: config.rdp_port,
        certificate: None,
        deliver_password: true,
        instructions,
        extras: vec![
            ("user-principal-name".into(), upn),
            ("distinguished-name".into(), user_dn(config, sam)),
        ],
    }
}

latch_guest_sdk::export!(WindowsDc);
