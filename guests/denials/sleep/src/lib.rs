//! Denial guest: blocks in a host call forever. The host must stop it with a clear error and keep serving.

use latch_guest_sdk::{AccessDetails, Error, GrantRequest, Integration, Metadata, Resource};

struct Denial;

impl Integration for Denial {
    fn describe() -> Metadata {
        Metadata {
            name: "denial-sleep".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "blocks in a host call forever".into(),
            config_schema: "{}".into(),
        }
    }
    fn validate(_: String) -> Result<(), Error> {
        Ok(())
    }
    fn discover(_: String) -> Result<Vec<Resource>, Error> {
        std::thread::sleep(std::time::Duration::from_secs(24 * 3600));
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
