//! Latch integration `ssh-servers`: just-in-time access to Linux servers over SSH.
//!
//! What it does on a server is **the Linux runbook**, `guests/sdk/src/linux/runbook.rs`
//! (`runbook::grant`, `runbook::revoke`: each step a named function, each command shown in
//! `guests/sdk/src/linux.rs`), in order:
//! - **grant**: 1 probe (one read); 2 **refuse** an existing account Latch did not create,
//!   or a group the server lacks; 3 trust the connector's user CA (CA key, KRL, sshd
//!   drop-in, reload if changed); 4 open the account (created marked `latch-managed`, or
//!   unlocked; shell, requested group, no expiry); 5 sign the requester's key for the
//!   account, valid until the grant expires;
//! - **revoke**: 1 probe; 2 put the grant's certificates on the KRL; 3 leave an account Latch
//!   did not create untouched; 4 remove the group; 5 lock and expire the account; 6 end its
//!   sessions and processes;
//! - **cleanup**: delete a `latch-managed` account and its home — never any other;
//! - **add- / remove-service-credential** (rotation of the service SSH key): edit the service
//!   account's own `~/.ssh/authorized_keys`, as that account, atomically; never remove the
//!   last key.
//!
//! A grant leaves the address and account it used as its state, so its revoke and cleanup
//! reach the same server even after it was renamed or removed from the config.

mod config;

use config::{Config, Server};
use latch_guest_sdk::linux::runbook::{self, DEFAULT_GROUP, Place};
use latch_guest_sdk::{
    CredentialKind, Error, GrantRequest, Granted, Integration, Level, Lifecycle, Metadata, Page,
    Resource, ServiceCredential, invalid_request, linux, log,
};

/// Servers per page of `discover` (each server costs a read per configured group).
const PAGE: usize = 50;

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
        // Each server names its own service user in its targets.
        Ok(config.account.lifecycle(None))
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
        runbook::grant_found(&config.account, &request, || {
            Ok(place(config.server(&request.resource_id)?))
        })
    }

    fn revoke(config: String, request: GrantRequest) -> Result<(), Error> {
        let config = Config::parse(&config)?;
        // Where the grant acted (its state), or, for a grant that left none, the server the
        // config names (a server no longer configured is an error: it may still hold the
        // account).
        runbook::revoke_found(&request, || {
            Ok(Some(place(config.server(&request.resource_id)?)))
        })
    }

    fn cleanup(config: String, request: GrantRequest, username: String) -> Result<(), Error> {
        let config = Config::parse(&config)?;
        runbook::cleanup_found(&request, &username, || {
            Ok(place(config.server(&request.resource_id)?))
        })
    }

    fn add_service_credential(
        config: String,
        resource_id: String,
        credential: ServiceCredential,
    ) -> Result<(), Error> {
        let config = Config::parse(&config)?;
        runbook::add_service_key(&place(config.server(&resource_id)?), &credential)
    }

    fn remove_service_credential(
        config: String,
        resource_id: String,
        credential: ServiceCredential,
    ) -> Result<(), Error> {
        let config = Config::parse(&config)?;
        runbook::remove_service_key(&place(config.server(&resource_id)?), &credential)
    }
}

/// Where a configured server is reached.
fn place(server: &Server) -> Place {
    Place {
        name: server.name.clone(),
        target: server.target(),
    }
}

/// One resource per server: the Default permission plus each configured group that exists
/// on it. An unreachable server is still listed, with Default only, and a warning.
fn resource(config: &Config, server: &Server) -> Resource {
    let mut permissions = vec![DEFAULT_GROUP.to_string()];
    let t = server.target();
    for group in config
        .account
        .user_groups
        .iter()
        .filter(|g| *g != DEFAULT_GROUP)
    {
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

latch_guest_sdk::export!(SshServers);
