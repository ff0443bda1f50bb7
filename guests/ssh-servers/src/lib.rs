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
//! - **add-service-key / remove-service-key** (credential rotation): edit the service
//!   account's own `~/.ssh/authorized_keys`, as that account, atomically; never remove the
//!   last key.

mod config;

use config::{Config, DEFAULT_GROUP, Server};
use latch_guest_sdk::linux;
use latch_guest_sdk::{
    AccessDetails, Error, GrantRequest, Integration, Level, Metadata, Resource, certs,
    invalid_request, log, names,
};

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
        }
    }

    fn validate(config: String) -> Result<(), Error> {
        Config::parse(&config).map(|_| ())
    }

    fn discover(config: String) -> Result<Vec<Resource>, Error> {
        let config = Config::parse(&config)?;
        Ok(config
            .servers
            .iter()
            .map(|s| resource(&config, s))
            .collect())
    }

    fn grant(config: String, request: GrantRequest) -> Result<AccessDetails, Error> {
        let config = Config::parse(&config)?;
        let (server, user, group) = check_request(&config, &request)?;
        let public_key = request
            .public_key
            .as_deref()
            .ok_or_else(|| invalid_request("a grant needs the requester's public key"))?;
        let t = server.target();

        linux::ensure_ca_trust(&t, &certs::ca_public_key()?)?;
        if linux::user_exists(&t, &user)? {
            if !linux::is_managed(&t, &user)? {
                return Err(Error::Denied(format!(
                    "account {user:?} on {} exists and was not created by Latch; refusing to touch it",
                    server.name
                )));
            }
        } else {
            linux::create_user(&t, &user, &config.login_shell)?;
        }
        linux::open_account(&t, &user, &config.login_shell, group)?;
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
        Ok(access_details(&config, server, &user, certificate))
    }

    fn revoke(config: String, request: GrantRequest) -> Result<(), Error> {
        let config = Config::parse(&config)?;
        let (server, user, group) = check_request(&config, &request)?;
        let t = server.target();

        linux::revoke_key_id(&t, &request.grant_id)?;
        if !linux::user_exists(&t, &user)? {
            return Ok(());
        }
        if !linux::is_managed(&t, &user)? {
            log(
                Level::Warn,
                &format!("{user} on {} is not Latch's; left untouched", server.name),
            );
            return Ok(());
        }
        if let Some(group) = group {
            linux::remove_from_group(&t, &user, group)?;
        }
        linux::lock_account(&t, &user)?;
        linux::kill_sessions(&t, &user)?;
        log(Level::Info, &format!("revoked {user} on {}", server.name));
        Ok(())
    }

    fn cleanup(config: String, resource_id: String, username: String) -> Result<(), Error> {
        let config = Config::parse(&config)?;
        let server = config.server(&resource_id)?;
        let user = names::check("username", &username)?;
        let t = server.target();

        if !linux::user_exists(&t, user)? {
            return Ok(());
        }
        if !linux::is_managed(&t, user)? {
            return Err(Error::Denied(format!(
                "account {user:?} on {} was not created by Latch; refusing to delete it",
                server.name
            )));
        }
        linux::kill_sessions(&t, user)?;
        linux::delete_user(&t, user)
    }

    fn add_service_key(
        config: String,
        resource_id: String,
        public_key: String,
    ) -> Result<(), Error> {
        let config = Config::parse(&config)?;
        let server = config.server(&resource_id)?;
        let key = check_service_key(&public_key)?;
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

    fn remove_service_key(
        config: String,
        resource_id: String,
        public_key: String,
    ) -> Result<(), Error> {
        let config = Config::parse(&config)?;
        let server = config.server(&resource_id)?;
        let key = check_service_key(&public_key)?;
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
    let id_ok = !request.grant_id.is_empty()
        && request.grant_id.len() <= 64
        && request
            .grant_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !id_ok {
        return Err(invalid_request("grant id must be 1 to 64 of [A-Za-z0-9_-]"));
    }
    Ok((server, user, group))
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
        private_key: None,
        password: None,
        instructions,
    }
}

latch_guest_sdk::export!(SshServers);
