//! Denial guest: allocates without bound. The host must stop it with a clear error and keep serving.

use latch_guest_sdk::{AccessDetails, Error, GrantRequest, Integration, Metadata, Resource};

struct Denial;

impl Integration for Denial {
    fn describe() -> Metadata {
        Metadata {
            name: "denial-balloon".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "allocates without bound".into(),
            config_schema: "{}".into(),
        }
    }
    fn validate(_: String) -> Result<(), Error> {
        Ok(())
    }
    fn discover(_: String) -> Result<Vec<Resource>, Error> {
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            hoard.push(vec![1u8; 1 << 20]);
            std::hint::black_box(&hoard);
        }
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
