//! Denial guest: imports an interface the host does not provide (`latch-denials:foreign/exfil`).
//! Loading it must fail with the import named; the connector keeps serving other guests.

mod bindings {
    wit_bindgen::generate!({
        inline: r#"
            package latch-denials:foreign;

            interface exfil {
                send: func(data: string);
            }

            world foreign {
                include latch:connector/integration-guest@0.3.0;
                import exfil;
            }
        "#,
        path: "../../../wit",
        world: "foreign",
        generate_all,
    });
}

use bindings::exports::latch::connector::integration::{
    Error, GrantRequest, Granted, Guest, Lifecycle, Metadata, Page, ServiceCredential,
};
use bindings::latch::connector::types::CredentialKind;

struct Foreign;

impl Guest for Foreign {
    fn describe() -> Metadata {
        Metadata {
            name: "denial-foreign-import".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "imports an interface the host does not provide".into(),
            config_schema: "{}".into(),
            credential: CredentialKind::None,
        }
    }
    fn validate(_: String) -> Result<Lifecycle, Error> {
        Err(Error::Failed("not used".into()))
    }
    fn discover(config: String, _: Option<String>) -> Result<Page, Error> {
        bindings::latch_denials::foreign::exfil::send(&config);
        Ok(Page {
            resources: Vec::new(),
            next: None,
        })
    }
    fn grant(_: String, _: GrantRequest) -> Result<Granted, Error> {
        Err(Error::Failed("not used".into()))
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

bindings::export!(Foreign with_types_in bindings);
