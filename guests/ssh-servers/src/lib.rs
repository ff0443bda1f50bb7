//! Latch integration `ssh-servers`: just-in-time access to Linux servers over SSH.
//!
//! What it does on a server, in order (every command is in `latch_guest_sdk::linux`):
//! - **grant**: trust the connector's user CA (CA key, KRL, sshd drop-in, reload if changed);
//!   create the account if missing, marked `latch-managed` — and **refuse** an existing
//!   account Latch did not create; open it (shell, requested group, no expiry);
//!   sign the requester's key for the account, valid until the grant expires;
//! - **revoke**: put the grant's certificates on the KRL; remove the group; lock and expire
//!   the account; end its sessions and processes;
//! - **cleanup**: delete a `latch-managed` account and its home — never any other;
//! - **add- / remove-service-credential** (rotation of the service SSH key): edit the service
//!   account's own `~/.ssh/authorized_keys`, as that account, atomically; never remove the
//!   last key.
//!
//! A grant leaves the address and account it used as its state, so its revoke and cleanup
//! reach the same server even after it was renamed or removed from the config.

mod config;

use config::{Config, DEFAULT_GROUP, Server};
use latch_guest_sdk::linux;
use latch_guest_sdk::{
    AccessDetails, CredentialKind, Error, GrantRequest, Granted, Integration, Level, Lifecycle,
    Metadata, Page, Resource, ServiceCredential, Target, certs, invalid_request, log, names,
};
use serde::{Deserialize, Serialize};

/// Servers per page of `discover` (each server costs a read per configured group).
const PAGE: usize = 50;

/// What a grant leaves for its revoke and cleanup: where it acted, and on which account.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct State {
    server: String,
    host: String,
    port: u16,
    service_user: String,
    account: String,
    /// The group the grant added the account to (none for `Default`).
    #[serde(default)]
    group: Option<String>,
}

struct SshServers;

impl Integration for SshServers {
    fn describe() -> Metadata {
        Metadata {
            name: "ssh-servers".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description:
                "Just-in-time access to Linux servers over SSH, with short-lived certificates"
                    .into(),
            config_schema: include_str!("../schema.json").into(),
            credential: CredentialKind::SshCertificate,
        }
    }

    fn validate(config: String) -> Result<Lifecycle, Error> {
        let config = Config::parse(&config)?;
        Ok(Lifecycle {
            cleanup_after_days: config.user_cleanup_days,
            rotate_after_days: config.credential_rotation_days,
            service_key_secret: config.user_key_name.clone(),
            // Each server names its own service user in its targets.
            service_user: None,
            default_permission: DEFAULT_GROUP.into(),
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
        let end = (start + PAGE).min(config.servers.len());
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
        let (server, user, group) = check_request(&config, &request)?;
        let public_key = request
            .public_key
            .as_deref()
            .ok_or_else(|| invalid_request("a grant needs the requester's public key"))?;
        let t = server.target();

        // Everything is learned, and every refusal made, before anything changes.
        let on = linux::probe(&t, &user, group.as_slice())?;
        if let Some(account) = &on.account
            && !account.is_managed()
        {
            return Err(Error::Denied(format!(
                "account {user:?} on {} exists and was not created by Latch; refusing to touch it",
                server.name
            )));
        }
        if let Some(group) = group
            && !on.has_group(group)
        {
            return Err(invalid_request(format!(
                "group {group:?} does not exist on {}",
                server.name
            )));
        }
        on.user_tools()?;
        let trust = on.trust_plan(&certs::ca_public_key()?)?;

        if let Some(plan) = &trust {
            linux::apply_trust(&on, plan)?;
        }
        linux::open_account(&on, &user, &config.login_shell, group)?;
        let certificate = certs::sign_ssh_user(
            public_key,
            std::slice::from_ref(&user),
            request.expires_at,
            &request.grant_id,
        )?;
        log(
            Level::Info,
            &format!(
                "granted {user} on {} until {}",
                server.name, request.expires_at
            ),
        );
        let state = State {
            server: server.name.clone(),
            host: t.host.clone(),
            port: t.port,
            service_user: server.user.clone(),
            account: user.clone(),
            group: group.map(str::to_string),
        };
        Ok(Granted {
            access: access_details(&config, server, &user, certificate),
            state: serde_json::to_string(&state).map_err(|e| Error::Failed(e.to_string()))?,
        })
    }

    fn revoke(config: String, request: GrantRequest) -> Result<(), Error> {
        let config = Config::parse(&config)?;
        let (t, name, user, group) = revoke_target(&config, &request)?;

        let on = linux::probe(&t, &user, &[])?;
        linux::revoke_key_id(&on, &request.grant_id)?;
        let Some(account) = &on.account else {
            return Ok(());
        };
        if !account.is_managed() {
            log(
                Level::Warn,
                &format!("{user} on {} is not Latch's; left untouched", name),
            );
            return Ok(());
        }
        if let Some(group) = group {
            linux::remove_from_group(&on, &user, &group)?;
        }
        linux::lock_account(&on, &user)?;
        linux::kill_sessions(&on, &user)?;
        log(Level::Info, &format!("revoked {user} on {}", name));
        Ok(())
    }

    fn cleanup(config: String, request: GrantRequest, username: String) -> Result<(), Error> {
        let config = Config::parse(&config)?;
        let user = names::check("username", &username)?;
        let (t, name) = match stored(&request)? {
            Some(state) => (state_target(&state)?, state.server),
            None => {
                let server = config.server(&request.resource_id)?;
                (server.target(), server.name.clone())
            }
        };

        let on = linux::probe(&t, user, &[])?;
        let Some(account) = &on.account else {
            return Ok(());
        };
        if !account.is_managed() {
            return Err(Error::Denied(format!(
                "account {user:?} on {} was not created by Latch; refusing to delete it",
                name
            )));
        }
        linux::kill_sessions(&on, user)?;
        linux::delete_user(&on, user)
    }

    fn add_service_credential(
        config: String,
        resource_id: String,
        credential: ServiceCredential,
    ) -> Result<(), Error> {
        let config = Config::parse(&config)?;
        let server = config.server(&resource_id)?;
        let key = ssh_key_of(&credential)?;
        let key = check_service_key(&key)?;
        let (t, path, current) = service_keys(server)?;
        if let Some(content) = linux::with_key(&current, key) {
            linux::write_service_keys(&t, &path, &content)?;
            log(
                Level::Info,
                &format!("service key added on {}", server.name),
            );
        }
        Ok(())
    }

    fn remove_service_credential(
        config: String,
        resource_id: String,
        credential: ServiceCredential,
    ) -> Result<(), Error> {
        let config = Config::parse(&config)?;
        let server = config.server(&resource_id)?;
        let key = ssh_key_of(&credential)?;
        let key = check_service_key(&key)?;
        let (t, path, current) = service_keys(server)?;
        match linux::without_key(&current, key) {
            None => Ok(()),
            Some((_, 0)) => Err(Error::Denied(format!(
                "{path} on {} has no other key; refusing to remove the last one",
                server.name
            ))),
            Some((content, _)) => {
                linux::write_service_keys(&t, &path, &content)?;
                log(
                    Level::Info,
                    &format!("old service key removed on {}", server.name),
                );
                Ok(())
            }
        }
    }
}

/// The state a grant left, if any (a grant that failed before it answered left none).
fn stored(request: &GrantRequest) -> Result<Option<State>, Error> {
    match request.state.as_deref() {
        None | Some("") => Ok(None),
        Some(text) => serde_json::from_str(text)
            .map(Some)
            .map_err(|e| invalid_request(format!("the grant's state is not this guest's: {e}"))),
    }
}

/// The target a grant's state names, checked like the config's.
fn state_target(state: &State) -> Result<Target, Error> {
    names::check("service user", &state.service_user)?;
    Ok(Target {
        host: state.host.clone(),
        port: state.port,
        user: Some(state.service_user.clone()),
    })
}

/// Where and on which account a revoke acts: where the grant acted (its state), or, for a
/// grant that left none, the server the config names.
fn revoke_target(
    config: &Config,
    request: &GrantRequest,
) -> Result<(Target, String, String, Option<String>), Error> {
    check_grant_id(&request.grant_id)?;
    match stored(request)? {
        Some(state) => {
            let user = names::check("username", &state.account)?.to_string();
            if let Some(group) = &state.group {
                names::check("group", group)?;
            }
            Ok((state_target(&state)?, state.server, user, state.group))
        }
        None => {
            let (server, user, group) = check_request(config, request)?;
            Ok((
                server.target(),
                server.name.clone(),
                user,
                group.map(str::to_string),
            ))
        }
    }
}

/// The SSH key of a service credential; this integration rotates no password.
fn ssh_key_of(credential: &ServiceCredential) -> Result<String, Error> {
    match credential {
        ServiceCredential::SshKey(key) => Ok(key.clone()),
        ServiceCredential::Password => Err(invalid_request(
            "ssh-servers logs in with an SSH key; it has no service password to rotate",
        )),
    }
}

/// The service account's target on `server`, its `authorized_keys` path and content.
fn service_keys(server: &Server) -> Result<(latch_guest_sdk::Target, String, String), Error> {
    let t = server.target();
    let path = linux::service_keys_path(&t)?;
    let current = linux::read_service_keys(&t, &path)?;
    Ok((t, path, current))
}

/// A service key for `authorized_keys`: one plain OpenSSH public key line, no options.
fn check_service_key(line: &str) -> Result<&str, Error> {
    let line = line.trim();
    let plain = line.len() <= 8192
        && !line.contains(['\n', '\r'])
        && line.bytes().all(|b| b == b' ' || b.is_ascii_graphic())
        && linux::key_blob(line).is_some_and(|(kind, _)| line.starts_with(kind));
    if !plain {
        return Err(invalid_request(
            "the service key must be one OpenSSH public key line (type, base64, comment)",
        ));
    }
    Ok(line)
}

/// Check everything in a request before any command runs: the server, the account name,
/// the permission and the grant id.
fn check_request<'c>(
    config: &'c Config,
    request: &'c GrantRequest,
) -> Result<(&'c Server, String, Option<&'c str>), Error> {
    let server = config.server(&request.resource_id)?;
    let user = match &request.identity.username {
        Some(name) => names::check("username", name)?.to_string(),
        None => names::username_from_email(&request.identity.email)?,
    };
    let permission = config.permission(&request.permission)?;
    let group = (permission != DEFAULT_GROUP)
        .then(|| names::check("group", permission))
        .transpose()?;
    check_grant_id(&request.grant_id)?;
    Ok((server, user, group))
}

fn check_grant_id(id: &str) -> Result<(), Error> {
    let id_ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !id_ok {
        return Err(invalid_request("grant id must be 1 to 64 of [A-Za-z0-9_-]"));
    }
    Ok(())
}

/// One resource per server: the Default permission plus each configured group that exists
/// on it. An unreachable server is still listed, with Default only, and a warning.
fn resource(config: &Config, server: &Server) -> Resource {
    let mut permissions = vec![DEFAULT_GROUP.to_string()];
    let t = server.target();
    for group in config.user_groups.iter().filter(|g| *g != DEFAULT_GROUP) {
        match linux::group_exists(&t, group) {
            Ok(true) => permissions.push(group.clone()),
            Ok(false) => {}
            Err(e) => {
                log(
                    Level::Warn,
                    &format!("{}: cannot list groups: {e:?}", server.name),
                );
                break;
            }
        }
    }
    Resource {
        id: server.name.clone(),
        name: server.name.clone(),
        kind: "linux-server".into(),
        tags: server
            .tags
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        permissions,
    }
}

fn access_details(
    config: &Config,
    server: &Server,
    user: &str,
    certificate: String,
) -> AccessDetails {
    let port = if server.port == 22 {
        String::new()
    } else {
        format!(" -p {}", server.port)
    };
    let mut instructions = format!(
        "ssh -i KEY -o CertificateFile=CERT{port} {user}@{}\n(KEY is your private key, CERT this certificate saved to a file)",
        server.host
    );
    if let Some(extra) = &config.custom_access_details {
        instructions.push('\n');
        instructions.push_str(extra);
    }
    AccessDetails {
        username: user.to_string(),
        host: server.host.clone(),
        port: server.port,
        certificate: Some(certificate),
        deliver_password: false,
        instructions,
        extras: Vec::new(),
    }
}

latch_guest_sdk::export!(SshServers);
