//! Denial guest: tries to choose the secret the host logs in with, and forgets servers when
//! the service credential rotates. The host must refuse both before anything is sent.
//!
//! Config (JSON):
//! - `claim`: the secret its `validate` names as its service credential (e.g. another
//!   integration's key) — the host must refuse to start unless `latch.toml` lends exactly
//!   that secret to this integration;
//! - `user`: the service account its `validate` names;
//! - `servers`: `[{"id", "host", "port", "via": "ssh" | "winrm" | "ldap"}]`, one resource
//!   each; a grant reads on its server (so a plan names it);
//! - `forget`: resource ids whose `add-service-credential` acts on no server (an honest
//!   guest with a bug): rotation must be refused before any change.
//!
//! Its rotation exports otherwise do what `ssh-servers` does over SSH (the SDK's
//! `authorized_keys` edit), so a rotation that is allowed really works.

use latch_guest_sdk::linux::runbook::{self, Place};
use latch_guest_sdk::{
    AccessDetails, CredentialKind, Error, GrantRequest, Granted, Integration, Lifecycle, Metadata,
    Page, Resource, ServiceCredential, Target, invalid_config, ldap, read, winrm,
};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default)]
    claim: Option<String>,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    servers: Vec<Server>,
    #[serde(default)]
    forget: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Server {
    id: String,
    host: String,
    port: u16,
    via: String,
}

impl Config {
    fn parse(text: &str) -> Result<Config, Error> {
        serde_json::from_str(text).map_err(|e| invalid_config(e.to_string()))
    }

    fn server(&self, id: &str) -> Result<&Server, Error> {
        self.servers
            .iter()
            .find(|s| s.id == id)
            .ok_or_else(|| Error::InvalidRequest(format!("no server {id:?}")))
    }
}

impl Server {
    fn target(&self, user: &Option<String>) -> Target {
        Target {
            host: self.host.clone(),
            port: self.port,
            user: if self.via == "ssh" {
                user.clone()
            } else {
                None
            },
        }
    }

    /// A read on the server, so that a plan of a grant names it.
    fn touch(&self, user: &Option<String>) -> Result<(), Error> {
        let t = self.target(user);
        match self.via.as_str() {
            "ssh" => read(&t, &["true"]).map(drop),
            "winrm" => winrm::read(&t, "Get-LocalUser", &[]).map(drop),
            _ => ldap::search(&t, "DC=latch,DC=test", ldap::Scope::Base, &[], &[]).map(drop),
        }
    }
}

struct BorrowSecret;

impl Integration for BorrowSecret {
    fn describe() -> Metadata {
        Metadata {
            name: "denial-borrow-secret".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "names another integration's secret as its own (tests)".into(),
            config_schema: "{}".into(),
            credential: CredentialKind::None,
        }
    }

    fn validate(config: String) -> Result<Lifecycle, Error> {
        let config = Config::parse(&config)?;
        Ok(Lifecycle {
            cleanup_after_days: None,
            rotate_after_days: Some(1),
            service_key_secret: config.claim,
            service_user: config.user,
            default_permission: "Default".into(),
        })
    }

    fn discover(config: String, _: Option<String>) -> Result<Page, Error> {
        let config = Config::parse(&config)?;
        Ok(Page {
            resources: config
                .servers
                .iter()
                .map(|s| Resource {
                    id: s.id.clone(),
                    name: s.id.clone(),
                    kind: "server".into(),
                    tags: Vec::new(),
                    permissions: vec!["Default".into()],
                })
                .collect(),
            next: None,
        })
    }

    fn grant(config: String, request: GrantRequest) -> Result<Granted, Error> {
        let config = Config::parse(&config)?;
        let server = config.server(&request.resource_id)?;
        server.touch(&config.user)?;
        Ok(Granted {
            access: AccessDetails {
                username: "nobody".into(),
                host: server.host.clone(),
                port: server.port,
                certificate: None,
                deliver_password: false,
                instructions: String::new(),
                extras: Vec::new(),
            },
            state: String::new(),
        })
    }

    fn revoke(_: String, _: GrantRequest) -> Result<(), Error> {
        Ok(())
    }

    fn cleanup(_: String, _: GrantRequest, _: String) -> Result<(), Error> {
        Ok(())
    }

    fn add_service_credential(
        config: String,
        resource_id: String,
        credential: ServiceCredential,
    ) -> Result<(), Error> {
        let config = Config::parse(&config)?;
        if config.forget.contains(&resource_id) {
            return Ok(());
        }
        let server = config.server(&resource_id)?;
        match server.via.as_str() {
            "ssh" => runbook::add_service_key(
                &Place {
                    name: server.id.clone(),
                    target: server.target(&config.user),
                },
                &credential,
            ),
            _ => server.touch(&config.user),
        }
    }

    fn remove_service_credential(
        config: String,
        resource_id: String,
        credential: ServiceCredential,
    ) -> Result<(), Error> {
        let config = Config::parse(&config)?;
        let server = config.server(&resource_id)?;
        match server.via.as_str() {
            "ssh" => runbook::remove_service_key(
                &Place {
                    name: server.id.clone(),
                    target: server.target(&config.user),
                },
                &credential,
            ),
            _ => Ok(()),
        }
    }
}

latch_guest_sdk::export!(BorrowSecret);
