//! Test guest for the WinRM transport: its `grant` makes, in order, the WinRM calls its
//! config lists, and answers with what each returned (in the grant's state). A refused or
//! failed call does not stop the next one, so one run can try a whole list of hostile values.
//!
//! Config: `{"host": "localhost", "port": 5985, "calls": [{"cmdlet": "Get-LocalUser",
//! "read": true, "parameters": [["Name", {"text": "alice"}]]}]}`; a value is one of
//! `{"text": s}`, `{"list": [s]}`, `{"integer": n}`, `{"boolean": b}`, `{"switch": true}`,
//! `{"grant-password": true}`, `{"secret": name}`.

use latch_guest_sdk::winrm::{Parameter, Value};
use latch_guest_sdk::{
    AccessDetails, CredentialKind, Error, GrantRequest, Granted, Integration, Lifecycle, Metadata,
    Page, Resource, SecretRef, ServiceCredential, Target, winrm,
};
use serde::Deserialize;

struct Probe;

#[derive(Deserialize)]
struct Config {
    host: String,
    port: u16,
    #[serde(default)]
    calls: Vec<CallSpec>,
}

#[derive(Deserialize)]
struct CallSpec {
    cmdlet: String,
    #[serde(default)]
    read: bool,
    #[serde(default)]
    parameters: Vec<(String, ValueSpec)>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
enum ValueSpec {
    Text(String),
    List(Vec<String>),
    Integer(i64),
    Boolean(bool),
    Switch(serde::de::IgnoredAny),
    GrantPassword(serde::de::IgnoredAny),
    Secret(String),
}

fn value(v: ValueSpec) -> Value {
    match v {
        ValueSpec::Text(s) => Value::Text(s),
        ValueSpec::List(l) => Value::TextList(l),
        ValueSpec::Integer(n) => Value::Integer(n),
        ValueSpec::Boolean(b) => Value::Boolean(b),
        ValueSpec::Switch(_) => Value::Switch,
        ValueSpec::GrantPassword(_) => Value::Secret(SecretRef::GrantPassword),
        ValueSpec::Secret(name) => Value::Secret(SecretRef::Named(name)),
    }
}

fn config(text: &str) -> Result<Config, Error> {
    serde_json::from_str(text).map_err(|e| Error::InvalidConfig(format!("probe config: {e}")))
}

impl Integration for Probe {
    fn describe() -> Metadata {
        Metadata {
            name: "winrm-probe".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "makes the WinRM calls its config lists (tests)".into(),
            config_schema: "{}".into(),
            credential: CredentialKind::Password,
        }
    }

    fn validate(config_text: String) -> Result<Lifecycle, Error> {
        config(&config_text)?;
        Ok(latch_guest_sdk::plain_lifecycle("Connect"))
    }

    fn discover(config_text: String, _: Option<String>) -> Result<Page, Error> {
        let c = config(&config_text)?;
        Ok(Page {
            resources: vec![Resource {
                id: c.host.clone(),
                name: c.host,
                kind: "windows-server".into(),
                tags: Vec::new(),
                permissions: vec!["Connect".into()],
            }],
            next: None,
        })
    }

    fn grant(config_text: String, request: GrantRequest) -> Result<Granted, Error> {
        let c = config(&config_text)?;
        let target = Target {
            host: c.host.clone(),
            port: c.port,
            user: None,
        };
        let mut results = Vec::new();
        for call in c.calls {
            let parameters: Vec<Parameter> = call
                .parameters
                .into_iter()
                .map(|(name, v)| Parameter {
                    name,
                    value: value(v),
                })
                .collect();
            let answer = if call.read {
                winrm::read(&target, &call.cmdlet, &parameters)
            } else {
                winrm::invoke(&target, &call.cmdlet, &parameters)
            };
            results.push(match answer {
                Ok(out) => serde_json::json!({"objects": out.objects, "errors": out.errors}),
                Err(e) => serde_json::json!({"error": format!("{e:?}")}),
            });
        }
        Ok(Granted {
            access: AccessDetails {
                username: format!("probe-{}", request.grant_id),
                host: c.host,
                port: 3389,
                certificate: None,
                deliver_password: true,
                instructions: "probe".into(),
                extras: Vec::new(),
            },
            state: serde_json::to_string(&results).unwrap_or_default(),
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

latch_guest_sdk::export!(Probe);
