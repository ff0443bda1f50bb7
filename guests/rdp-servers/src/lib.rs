//! Latch integration `rdp-servers`: just-in-time local accounts on Windows servers reached
//! over RDP, managed over WinRM with the LocalAccounts cmdlets.
//!
//! - **discover**: each server, with `Connect` (the built-in Remote Desktop Users) and the
//!   configured local groups that exist there;
//! - **grant**: the local account `username_prefix` + the requester's name, created if
//!   missing and marked as Latch's (its description) — **refuse** an existing account Latch
//!   did not create; the host's generated password; **account expiry = the grant's expiry**
//!   (Windows itself refuses the account after it, whatever happens to Latch); enabled;
//!   added to the group. Answers `SERVER\user`, the password once, `host:rdp_port`, an
//!   `xfreerdp` command line and an `.rdp` file (no password in it);
//! - **revoke**: out of the group, disabled, its password set to a fresh random one nobody
//!   holds (a disabled account cannot reconnect or open a new session); then, if the
//!   administrator installed one, `session_logoff_cmdlet -UserName` ends its open sessions.
//!   Without it they are left to end: no built-in cmdlet logs another user off, and Latch
//!   lends no program runner (`logoff`, `Invoke-CimMethod` would run anything);
//! - **cleanup**: delete the account, only if it is Latch's.

mod config;

use config::{CONNECT, Config, Server};
use latch_guest_sdk::winrm::{self, Parameter, Value as P};
use latch_guest_sdk::{
    AccessDetails, CredentialKind, Error, GrantRequest, Granted, Integration, Level, Lifecycle,
    Metadata, Page, Resource, SecretRef, ServiceCredential, Target, ad, invalid_config,
    invalid_request, log, names,
};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

/// What marks a local account as Latch's own.
pub const MARKER: &str = "Latch just-in-time account (latch-managed)";

/// What a grant leaves for its revoke and cleanup.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct State {
    server: String,
    host: String,
    port: u16,
    account: String,
    group: String,
}

struct RdpServers;

impl Integration for RdpServers {
    fn describe() -> Metadata {
        Metadata {
            name: "rdp-servers".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Just-in-time local accounts on Windows RDP servers, expiring with the \
                          grant, over WinRM"
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
        let start = match cursor {
            None => 0,
            Some(c) => c
                .parse::<usize>()
                .ok()
                .filter(|&n| n < config.servers.len())
                .ok_or_else(|| invalid_request("not a cursor of this integration"))?,
        };
        let end = (start + 50).min(config.servers.len());
        Ok(Page {
            resources: config.servers[start..end]
                .iter()
                .map(|s| resource(&config, s))
                .collect(),
            next: (end < config.servers.len()).then(|| end.to_string()),
        })
    }

    fn grant(config: String, request: GrantRequest) -> Result<Granted, Error> {
        let config = Config::parse(&config)?;
        let (server, sam, group) = check_request(&config, &request)?;
        let t = server.target();
        let expires = ad::iso8601(request.expires_at);
        match find_user(&t, &sam)? {
            Some(user) => {
                if string(&user, "Description") != MARKER {
                    return Err(Error::Denied(format!(
                        "account {sam:?} on {} exists and was not created by Latch; refusing to \
                         touch it",
                        server.name
                    )));
                }
                invoke(
                    &t,
                    "Set-LocalUser",
                    &[
                        param("Name", text(&sam)),
                        param("Password", P::Secret(SecretRef::GrantPassword)),
                        param("AccountExpires", text(&expires)),
                    ],
                )?;
                if user.get("Enabled").and_then(Json::as_bool) != Some(true) {
                    invoke(&t, "Enable-LocalUser", &[param("Name", text(&sam))])?;
                }
            }
            None => invoke(
                &t,
                "New-LocalUser",
                &[
                    param("Name", text(&sam)),
                    param("Password", P::Secret(SecretRef::GrantPassword)),
                    param("AccountExpires", text(&expires)),
                    param("Description", text(MARKER)),
                ],
            )?,
        }
        if !is_member(&t, &group, &sam)? {
            invoke(
                &t,
                "Add-LocalGroupMember",
                &[
                    param("Group", text(&group)),
                    param("Member", P::TextList(vec![sam.clone()])),
                ],
            )?;
        }
        log(
            Level::Info,
            &format!("granted {sam} on {} until {expires}", server.name),
        );
        let state = State {
            server: server.name.clone(),
            host: t.host.clone(),
            port: t.port,
            account: sam.clone(),
            group,
        };
        Ok(Granted {
            access: access_details(&config, server, &sam, &expires),
            state: serde_json::to_string(&state).map_err(|e| Error::Failed(e.to_string()))?,
        })
    }

    fn revoke(config: String, request: GrantRequest) -> Result<(), Error> {
        let config = Config::parse(&config)?;
        let (t, name, sam, group) = match stored(&request)? {
            Some(s) => {
                let t = Target {
                    host: s.host.clone(),
                    port: s.port,
                    user: None,
                };
                (t, s.server, check_sam(&config, &s.account)?, s.group)
            }
            None => {
                let (server, sam, group) = check_request(&config, &request)?;
                (server.target(), server.name.clone(), sam, group)
            }
        };
        if !config::is_group_name(&group) {
            return Err(invalid_request("the grant's state names no valid group"));
        }
        let Some(user) = find_user(&t, &sam)? else {
            return Ok(());
        };
        if string(&user, "Description") != MARKER {
            log(
                Level::Warn,
                &format!("{sam} on {name} is not Latch's; left untouched"),
            );
            return Ok(());
        }
        if is_member(&t, &group, &sam)? {
            invoke(
                &t,
                "Remove-LocalGroupMember",
                &[
                    param("Group", text(&group)),
                    param("Member", P::TextList(vec![sam.clone()])),
                ],
            )?;
        }
        if user.get("Enabled").and_then(Json::as_bool) != Some(false) {
            invoke(&t, "Disable-LocalUser", &[param("Name", text(&sam))])?;
        }
        invoke(
            &t,
            "Set-LocalUser",
            &[
                param("Name", text(&sam)),
                param("Password", P::Secret(SecretRef::GrantPassword)),
            ],
        )?;
        if let Some(cmdlet) = &config.session_logoff_cmdlet {
            invoke(&t, cmdlet, &[param("UserName", text(&sam))])?;
        }
        log(Level::Info, &format!("revoked {sam} on {name}"));
        Ok(())
    }

    fn cleanup(config: String, request: GrantRequest, username: String) -> Result<(), Error> {
        let config = Config::parse(&config)?;
        let sam = check_sam(&config, &username)?;
        let (t, name) = match stored(&request)? {
            Some(s) => (
                Target {
                    host: s.host.clone(),
                    port: s.port,
                    user: None,
                },
                s.server,
            ),
            None => {
                let server = config.server(&request.resource_id)?;
                (server.target(), server.name.clone())
            }
        };
        let Some(user) = find_user(&t, &sam)? else {
            return Ok(());
        };
        if string(&user, "Description") != MARKER {
            return Err(Error::Denied(format!(
                "account {sam:?} on {name} was not created by Latch; refusing to delete it"
            )));
        }
        invoke(&t, "Remove-LocalUser", &[param("Name", text(&sam))])
    }

    fn add_service_credential(
        config: String,
        resource_id: String,
        credential: ServiceCredential,
    ) -> Result<(), Error> {
        let config = Config::parse(&config)?;
        let server = config.server(&resource_id)?;
        let ServiceCredential::Password = credential else {
            return Err(invalid_request(
                "rdp-servers logs in with a password; it has no SSH key to rotate",
            ));
        };
        let account = service_account(&config)?;
        invoke(
            &server.target(),
            "Set-LocalUser",
            &[
                param("Name", text(&account)),
                param("Password", P::Secret(SecretRef::NewServicePassword)),
            ],
        )?;
        log(
            Level::Info,
            &format!("service password of {account} set on {}", server.name),
        );
        Ok(())
    }

    fn remove_service_credential(
        config: String,
        resource_id: String,
        credential: ServiceCredential,
    ) -> Result<(), Error> {
        let config = Config::parse(&config)?;
        config.server(&resource_id)?;
        // Setting the new password replaced the old one: nothing is left to remove.
        ad::password_replaced("rdp-servers", &credential)
    }
}

/// The local account whose password rotation sets: `user`, as a local account (`NAME` or
/// `.\NAME` or `COMPUTER\NAME`). A domain account's password belongs to the domain and is
/// not set server by server.
fn service_account(config: &Config) -> Result<String, Error> {
    let Some(user) = &config.user else {
        return Err(invalid_config(
            "credential_rotation_days needs `user`: the local account whose password is rotated",
        ));
    };
    if user.contains('@') {
        return Err(invalid_config(format!(
            "user {user:?} is a domain account; its password is rotated on the domain, not on \
             each server"
        )));
    }
    let name = user.rsplit('\\').next().unwrap_or(user);
    if name.is_empty() || name.chars().count() > 20 || !config::is_group_name(name) {
        return Err(invalid_config(format!(
            "user {user:?} is not a local account name"
        )));
    }
    Ok(name.to_string())
}

fn param(name: &str, value: P) -> Parameter {
    Parameter {
        name: name.to_string(),
        value,
    }
}

fn text(s: &str) -> P {
    P::Text(s.to_string())
}

fn string(item: &Json, key: &str) -> String {
    item.get(key)
        .and_then(Json::as_str)
        .unwrap_or_default()
        .to_string()
}

fn objects(t: &Target, cmdlet: &str, parameters: &[Parameter]) -> Result<Vec<Json>, Error> {
    let out = winrm::read(t, cmdlet, parameters)?;
    if let Some(e) = out.errors.first() {
        return Err(Error::Failed(format!("{cmdlet} on {}: {e}", t.host)));
    }
    match serde_json::from_str::<Json>(&out.objects) {
        Ok(Json::Array(items)) => Ok(items),
        _ => Err(Error::Failed(format!(
            "{cmdlet} on {} did not answer with a JSON array",
            t.host
        ))),
    }
}

fn invoke(t: &Target, cmdlet: &str, parameters: &[Parameter]) -> Result<(), Error> {
    let out = winrm::invoke(t, cmdlet, parameters)?;
    match out.errors.first() {
        None => Ok(()),
        Some(e) => Err(Error::Failed(format!("{cmdlet} on {}: {e}", t.host))),
    }
}

/// The local account `sam`, from the list of all (no "not found" error text to interpret,
/// whatever the server's language).
fn find_user(t: &Target, sam: &str) -> Result<Option<Json>, Error> {
    let users = objects(t, "Get-LocalUser", &[])?;
    Ok(users
        .into_iter()
        .find(|u| string(u, "Name").eq_ignore_ascii_case(sam)))
}

/// Is `sam` a member of local group `group`? (Members come as `COMPUTER\name`.)
fn is_member(t: &Target, group: &str, sam: &str) -> Result<bool, Error> {
    let members = objects(t, "Get-LocalGroupMember", &[param("Group", text(group))])?;
    Ok(members.iter().any(|m| {
        let name = string(m, "Name");
        let short = name.rsplit('\\').next().unwrap_or(&name);
        short.eq_ignore_ascii_case(sam)
    }))
}

/// Check everything in a request before anything is sent: the server, the account name,
/// the permission, the grant id.
fn check_request<'c>(
    config: &'c Config,
    request: &GrantRequest,
) -> Result<(&'c Server, String, String), Error> {
    let server = config.server(&request.resource_id)?;
    let id = &request.grant_id;
    let id_ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !id_ok {
        return Err(invalid_request("grant id must be 1 to 64 of [A-Za-z0-9_-]"));
    }
    let name = match &request.identity.username {
        Some(name) => names::check("username", name)?.to_string(),
        None => names::username_from_email(&request.identity.email)?,
    };
    let sam = check_sam(config, &format!("{}{name}", config.username_prefix))?;
    let group = config.group(&request.permission)?;
    Ok((server, sam, group))
}

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

fn stored(request: &GrantRequest) -> Result<Option<State>, Error> {
    match request.state.as_deref() {
        None | Some("") => Ok(None),
        Some(text) => serde_json::from_str(text)
            .map(Some)
            .map_err(|e| invalid_request(format!("the grant's state is not this guest's: {e}"))),
    }
}

/// One resource per server: Connect plus each configured group that exists there. An
/// unreachable server is still listed, with Connect only, and a warning.
fn resource(config: &Config, server: &Server) -> Resource {
    let mut permissions = vec![CONNECT.to_string()];
    let custom: Vec<&String> = config
        .user_groups
        .iter()
        .filter(|g| *g != CONNECT)
        .collect();
    if !custom.is_empty() {
        match objects(&server.target(), "Get-LocalGroup", &[]) {
            Ok(groups) => {
                for g in custom {
                    if groups
                        .iter()
                        .any(|x| string(x, "Name").eq_ignore_ascii_case(g))
                    {
                        permissions.push(g.clone());
                    }
                }
            }
            Err(e) => log(
                Level::Warn,
                &format!("{}: cannot list groups: {e:?}", server.name),
            ),
        }
    }
    Resource {
        id: server.name.clone(),
        name: server.name.clone(),
        kind: "windows-server".into(),
        tags: server
            .tags
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        permissions,
    }
}

/// The `.rdp` file's text (CRLF, as mstsc writes it; no password: it is shown once, apart).
fn rdp_file(server: &Server, account: &str) -> String {
    [
        format!("full address:s:{}:{}", server.host, server.rdp_port),
        format!("username:s:{account}"),
        "prompt for credentials:i:1".into(),
        "enablecredsspsupport:i:1".into(),
        "authentication level:i:2".into(),
        "negotiate security layer:i:1".into(),
        "screen mode id:i:1".into(),
    ]
    .join("\r\n")
        + "\r\n"
}

fn access_details(config: &Config, server: &Server, sam: &str, expires: &str) -> AccessDetails {
    let account = format!("{}\\{sam}", server.computer());
    let mut instructions = format!(
        "xfreerdp /v:{}:{} /u:{sam} /d:{} (or open the .rdp file), with the password shown \
         once. Access ends at {expires} (UTC), when Windows itself stops accepting the account.",
        server.host,
        server.rdp_port,
        server.computer(),
    );
    if let Some(extra) = &config.custom_access_details {
        instructions.push('\n');
        instructions.push_str(extra);
    }
    AccessDetails {
        username: account.clone(),
        host: server.host.clone(),
        port: server.rdp_port,
        certificate: None,
        deliver_password: true,
        instructions,
        extras: vec![("rdp-file".into(), rdp_file(server, &account))],
    }
}

latch_guest_sdk::export!(RdpServers);
