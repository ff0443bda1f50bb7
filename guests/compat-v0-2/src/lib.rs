//! A guest built against the frozen `latch:connector@0.2.0` (`wit/0.2.0/`), with its own
//! bindings (not the SDK, which follows the current contract). It calls every 0.2 import
//! once, so a test can prove that a host serving 0.3 still links and runs it with 0.2's
//! meaning: `ssh.read`/`ssh.exec`, `winrm.read` with typed values, `ldap.search`,
//! `cloud.azure`, `secrets.get`, `certs`, `log`, and the 0.2 exports (grant state handed
//! back to revoke). Above all: what 0.3 calls `not-found` reaches a 0.2 guest as `failed`,
//! worded as before, because that is the only way a 0.2 guest could tell.
//!
//! Config: `{"host": "…"}` (the server it acts on; SSH on 22, WinRM on 5985, LDAP on 389).

mod bindings {
    wit_bindgen::generate!({
        path: "../../wit/0.2.0",
        world: "integration-guest",
    });
}

use bindings::exports::latch::connector::integration::{
    Error, GrantRequest, Granted, Guest, Lifecycle, Metadata, Page, ServiceCredential,
};
use bindings::latch::connector::cloud::AzureRequest;
use bindings::latch::connector::types::Target;
use bindings::latch::connector::types::{AccessDetails, CredentialKind, Resource};
use bindings::latch::connector::winrm::{Parameter, Value};
use bindings::latch::connector::{certs, cloud, ldap, log, secrets, ssh, winrm};

struct Compat;

fn target(config: &str, port: u16) -> Target {
    // A tiny reader for {"host": "..."}: this guest is a fixture, not an example.
    let host = config
        .split('"')
        .skip_while(|s| *s != "host")
        .nth(2)
        .unwrap_or("127.0.0.2")
        .to_string();
    Target {
        host,
        port,
        user: Some("svc".into()),
    }
}

impl Guest for Compat {
    fn describe() -> Metadata {
        Metadata {
            name: "compat-v0-2".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "a 0.2.0 guest".into(),
            config_schema: "{}".into(),
            credential: CredentialKind::SshCertificate,
        }
    }

    fn validate(_: String) -> Result<Lifecycle, Error> {
        Ok(Lifecycle {
            cleanup_after_days: None,
            rotate_after_days: None,
            service_key_secret: None,
            service_user: None,
            default_permission: "Default".into(),
        })
    }

    fn discover(config: String, _: Option<String>) -> Result<Page, Error> {
        let out = ssh::read(&target(&config, 22), &["hostname".to_string()], &[])?;
        let entries = ldap::search(
            &target(&config, 389),
            "dc=corp,dc=example",
            ldap::Scope::Subtree,
            &[("sAMAccountName".to_string(), "svc".to_string())],
            &["cn".to_string()],
        )?;
        Ok(Page {
            resources: vec![Resource {
                id: "only".into(),
                name: String::from_utf8_lossy(&out.stdout).trim().to_string(),
                kind: "compat".into(),
                tags: entries.into_iter().map(|e| ("dn".into(), e.dn)).collect(),
                permissions: vec!["Default".into()],
            }],
            next: None,
        })
    }

    fn grant(config: String, request: GrantRequest) -> Result<Granted, Error> {
        let t = target(&config, 22);
        log::write(log::Level::Info, "compat 0.2 grant");
        let token = secrets::get("compat-token")?;
        ssh::exec(&t, &["useradd".to_string(), "compat".to_string()], &token)?;
        let found = winrm::read(
            &target(&config, 5985),
            "Get-LocalUser",
            &[Parameter {
                name: "Name".into(),
                value: Value::TextList(vec!["compat".into()]),
            }],
        )?;
        // 0.2 had no `not-found`: a 404 came as `failed`, and a guest read its message.
        let vm = cloud::azure(&[AzureRequest {
            path:
                "/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/rg/providers/\
                   Microsoft.Compute/virtualMachines/vm"
                    .into(),
            query: vec![("api-version".into(), "2024-07-01".into())],
        }]);
        let azure = match vm.into_iter().next() {
            Some(Ok(_)) => "there".to_string(),
            Some(Err(Error::Failed(m))) if m.contains("HTTP 404") => "gone (HTTP 404)".into(),
            Some(Err(e)) => return Err(e),
            None => return Err(Error::Failed("cloud.azure answered nothing".into())),
        };
        let ca = certs::ca_public_key()?;
        let certificate = certs::sign_ssh_user(
            request.public_key.as_deref().unwrap_or_default(),
            &["compat".to_string()],
            request.expires_at,
            &request.grant_id,
        )?;
        Ok(Granted {
            access: AccessDetails {
                username: "compat".into(),
                host: t.host,
                port: t.port,
                certificate: Some(certificate),
                deliver_password: false,
                instructions: format!("ca: {ca}; users: {}", found.objects),
                extras: Vec::new(),
            },
            state: format!("azure: {azure}"),
        })
    }

    fn revoke(config: String, request: GrantRequest) -> Result<(), Error> {
        let state = request.state.unwrap_or_default();
        let argv = ["usermod".to_string(), "-L".to_string(), state];
        ssh::exec(&target(&config, 22), &argv, &[]).map(|_| ())
    }

    fn cleanup(config: String, _: GrantRequest, username: String) -> Result<(), Error> {
        let argv = ["userdel".to_string(), username];
        ssh::exec(&target(&config, 22), &argv, &[]).map(|_| ())
    }

    fn add_service_credential(
        config: String,
        _: String,
        credential: ServiceCredential,
    ) -> Result<(), Error> {
        match credential {
            ServiceCredential::SshKey(key) => {
                ssh::exec(&target(&config, 22), &["tee".to_string()], key.as_bytes()).map(|_| ())
            }
            ServiceCredential::Password => Err(Error::InvalidRequest("keys only".into())),
        }
    }

    fn remove_service_credential(_: String, _: String, _: ServiceCredential) -> Result<(), Error> {
        Ok(())
    }
}

bindings::export!(Compat with_types_in bindings);
