//! A guest built against the frozen `latch:connector@0.1.0` (`wit/0.1.0/`), with its own
//! bindings (not the SDK, which follows the current contract). It exercises every 0.1
//! import the way a 0.1 integration did, so a test can prove that a host serving 0.2 still
//! runs it: `ssh.exec`, `winrm.invoke` with string and switch parameters, `secrets.get`,
//! `certs`, `log`, and 0.1's exports (`add-service-key`, one-shot `discover`, access details
//! with a password, which the host must not deliver).
//!
//! Config: `{"host": "…", "port": 22}` (the server it acts on).

mod bindings {
    wit_bindgen::generate!({
        path: "../../wit/0.1.0",
        world: "integration-guest",
    });
}

use bindings::exports::latch::connector::integration::{
    AccessDetails, Error, GrantRequest, Guest, Metadata, Resource,
};
use bindings::latch::connector::types::Target;
use bindings::latch::connector::winrm::Parameter;
use bindings::latch::connector::{certs, log, secrets, ssh, winrm};

struct Compat;

fn target(config: &str) -> Target {
    // A tiny reader for {"host": "...", "port": N}: this guest is a fixture, not an example.
    let field = |key: &str| -> Option<String> {
        let at = config.find(&format!("\"{key}\""))? + key.len() + 2;
        let rest = config[at..].trim_start().strip_prefix(':')?.trim_start();
        let end = rest.find([',', '}']).unwrap_or(rest.len());
        Some(rest[..end].trim().trim_matches('"').to_string())
    };
    Target {
        host: field("host").unwrap_or_else(|| "127.0.0.2".into()),
        port: field("port").and_then(|p| p.parse().ok()).unwrap_or(22),
        user: Some("svc".into()),
    }
}

impl Guest for Compat {
    fn describe() -> Metadata {
        Metadata {
            name: "compat-v0-1".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "a 0.1.0 guest".into(),
            config_schema: "{}".into(),
        }
    }

    fn validate(_: String) -> Result<(), Error> {
        Ok(())
    }

    fn discover(config: String) -> Result<Vec<Resource>, Error> {
        let t = target(&config);
        let out = ssh::exec(&t, &["hostname".to_string()], &[])?;
        Ok(vec![Resource {
            id: "only".into(),
            name: String::from_utf8_lossy(&out.stdout).trim().to_string(),
            kind: "compat".into(),
            tags: Vec::new(),
            permissions: vec!["Default".into()],
        }])
    }

    fn grant(config: String, request: GrantRequest) -> Result<AccessDetails, Error> {
        let t = target(&config);
        log::write(log::Level::Info, "compat grant");
        let token = secrets::get("compat-token")?;
        let argv = ["useradd".to_string(), "compat".to_string()];
        ssh::exec(&t, &argv, &token)?;
        let out = winrm::invoke(
            &Target {
                port: 5985,
                ..t.clone()
            },
            "New-LocalUser",
            &[
                Parameter {
                    name: "Name".into(),
                    value: Some("compat".into()),
                },
                Parameter {
                    name: "Disabled".into(),
                    value: None,
                },
            ],
        )?;
        if out.status != 0 {
            return Err(Error::Failed(String::from_utf8_lossy(&out.stderr).into()));
        }
        let ca = certs::ca_public_key()?;
        let public_key = request.public_key.clone().unwrap_or_default();
        let certificate = certs::sign_ssh_user(
            &public_key,
            &["compat".to_string()],
            request.expires_at,
            &request.grant_id,
        )?;
        Ok(AccessDetails {
            username: "compat".into(),
            host: t.host,
            port: t.port,
            certificate: Some(certificate),
            private_key: None,
            // 0.1 let a guest hand out a password; the 0.2 host must drop it.
            password: Some("guest-held-password".into()),
            instructions: format!("ca: {ca}"),
        })
    }

    fn revoke(config: String, request: GrantRequest) -> Result<(), Error> {
        let t = target(&config);
        let argv = [
            "usermod".to_string(),
            "-L".to_string(),
            request.grant_id.clone(),
        ];
        ssh::exec(&t, &argv, &[]).map(|_| ())
    }

    fn cleanup(config: String, resource_id: String, username: String) -> Result<(), Error> {
        let t = target(&config);
        let argv = ["userdel".to_string(), resource_id, username];
        ssh::exec(&t, &argv, &[]).map(|_| ())
    }

    fn add_service_key(config: String, _: String, public_key: String) -> Result<(), Error> {
        let t = target(&config);
        ssh::exec(&t, &["tee".to_string()], public_key.as_bytes()).map(|_| ())
    }

    fn remove_service_key(_: String, _: String, _: String) -> Result<(), Error> {
        Ok(())
    }
}

bindings::export!(Compat with_types_in bindings);
