//! Test guest for the no-leak tests: a password integration whose `grant` puts secrets
//! through every path a secret can take — a listed secret read with `secrets.get` and sent
//! as SSH stdin, the grant's generated password and a named secret as WinRM `secret-ref`
//! parameters — and asks the host to deliver the password. With config `{"leak": "MODE"}`
//! it tries to leak the secret it read: into its grant state (`state`, which the host must
//! refuse), into the host's log (`log`), into an error through a panic (`panic`) or its own
//! error (`error`), into the access details' host (`host`, refused), or into a command's
//! arguments (`argv`, which records and plans must show redacted).

use latch_guest_sdk::winrm::{Parameter, Value};
use latch_guest_sdk::{
    AccessDetails, CredentialKind, Error, GrantRequest, Granted, Integration, Lifecycle, Metadata,
    Page, Resource, SecretRef, ServiceCredential, Target, exec_with_stdin, secrets, winrm,
};

struct Canary;

const SECRET: &str = "canary-secret";

fn target(port: u16) -> Target {
    Target {
        host: "127.0.0.2".into(),
        port,
        user: Some("svc".into()),
    }
}

impl Integration for Canary {
    fn describe() -> Metadata {
        Metadata {
            name: "canary".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "puts secrets through every path (tests)".into(),
            config_schema: "{}".into(),
            credential: CredentialKind::Password,
        }
    }

    fn validate(_: String) -> Result<Lifecycle, Error> {
        Ok(latch_guest_sdk::plain_lifecycle("Connect"))
    }

    fn discover(_: String, _: Option<String>) -> Result<Page, Error> {
        Ok(Page {
            resources: vec![Resource {
                id: "box".into(),
                name: "box".into(),
                kind: "windows-server".into(),
                tags: Vec::new(),
                permissions: vec!["Connect".into()],
            }],
            next: None,
        })
    }

    fn grant(config: String, request: GrantRequest) -> Result<Granted, Error> {
        let token = secrets::get(SECRET)?;
        let text = String::from_utf8_lossy(&token).into_owned();
        if config.contains("\"log\"") {
            latch_guest_sdk::log(
                latch_guest_sdk::Level::Error,
                &format!("the token is {text}"),
            );
            println!("stdout: {text}");
        }
        if config.contains("\"panic\"") {
            panic!("leaking {text}");
        }
        if config.contains("\"error\"") {
            return Err(Error::Failed(format!("the server said no to {text}")));
        }
        if config.contains("\"argv\"") {
            exec_with_stdin(&target(22), &["printf", "%s", &text], &[])?;
        }
        exec_with_stdin(&target(22), &["chpasswd"], &token)?;
        let user = "canary".to_string();
        let set = [
            Parameter {
                name: "Name".into(),
                value: Value::Text(user.clone()),
            },
            Parameter {
                name: "Password".into(),
                value: Value::Secret(SecretRef::GrantPassword),
            },
        ];
        winrm::invoke(&target(5985), "Set-LocalUser", &set)?;
        let token_param = [
            Parameter {
                name: "Name".into(),
                value: Value::Text("canary2".into()),
            },
            Parameter {
                name: "Password".into(),
                value: Value::Secret(SecretRef::Named(SECRET.into())),
            },
        ];
        winrm::invoke(&target(5985), "New-LocalUser", &token_param)?;
        let state = if config.contains("\"state\"") {
            String::from_utf8_lossy(&token).into_owned()
        } else {
            format!("{{\"grant\":\"{}\"}}", request.grant_id)
        };
        Ok(Granted {
            access: AccessDetails {
                username: user,
                host: if config.contains("\"host\"") {
                    text
                } else {
                    "127.0.0.2".into()
                },
                port: 3389,
                certificate: None,
                deliver_password: true,
                instructions: "log in with the password".into(),
                extras: vec![("rdp-file".into(), "full address:s:127.0.0.2".into())],
            },
            state,
        })
    }

    fn revoke(_: String, _: GrantRequest) -> Result<(), Error> {
        Ok(())
    }

    fn cleanup(_: String, _: GrantRequest, _: String) -> Result<(), Error> {
        Ok(())
    }

    fn add_service_credential(_: String, _: String, _: ServiceCredential) -> Result<(), Error> {
        Ok(())
    }

    fn remove_service_credential(_: String, _: String, _: ServiceCredential) -> Result<(), Error> {
        Ok(())
    }
}

latch_guest_sdk::export!(Canary);
