//! Denial guest: reaches a target outside its allow list. The host must stop it with a clear error and keep serving.

use latch_guest_sdk::{AccessDetails, Error, GrantRequest, Integration, Metadata, Resource};

struct Denial;

impl Integration for Denial {
    fn describe() -> Metadata {
        Metadata {
            name: "denial-reach-unlisted".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "reaches a target outside its allow list".into(),
            config_schema: "{}".into(),
        }
    }
    fn validate(_: String) -> Result<(), Error> {
        Ok(())
    }
    fn discover(_: String) -> Result<Vec<Resource>, Error> {
        // 203.0.113.0/24 is TEST-NET-3: never a real host, and the policy refuses it first.
        let target = latch_guest_sdk::Target {
            host: "203.0.113.9".into(),
            port: 22,
            user: None,
        };
        latch_guest_sdk::exec(&target, &["id"])?;
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
}

latch_guest_sdk::export!(Denial);
