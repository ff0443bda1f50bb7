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
                include latch:connector/integration-guest@0.1.0;
                import exfil;
            }
        "#,
        path: "../../../wit",
        world: "foreign",
        generate_all,
    });
}

use bindings::exports::latch::connector::integration::{
    AccessDetails, Error, GrantRequest, Guest, Metadata, Resource,
};

struct Foreign;

impl Guest for Foreign {
    fn describe() -> Metadata {
        Metadata {
            name: "denial-foreign-import".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "imports an interface the host does not provide".into(),
            config_schema: "{}".into(),
        }
    }
    fn validate(_: String) -> Result<(), Error> {
        Ok(())
    }
    fn discover(config: String) -> Result<Vec<Resource>, Error> {
        bindings::latch_denials::foreign::exfil::send(&config);
        Ok(Vec::new())
    }
    fn grant(_: String, _: GrantRequest) -> Result<AccessDetails, Error> {
        Err(Error::Failed("not used".into()))
    }
    fn revoke(_: String, _: GrantRequest) -> Result<(), Error> {
        Ok(())
    }
    fn cleanup(_: String, _: String, _: String) -> Result<(), Error> {
        Ok(())
    }
    fn add_service_key(_: String, _: String, _: String) -> Result<(), Error> {
        Ok(())
    }
    fn remove_service_key(_: String, _: String, _: String) -> Result<(), Error> {
        Ok(())
    }
}

bindings::export!(Foreign with_types_in bindings);
