//! `denial!`: a guest whose `discover` misbehaves and whose other exports are harmless.
//!
//! Each denial guest is then one line of intent plus its misbehaviour, e.g.
//! `denial_common::denial!("spin", "loops forever", { loop {} });`

pub use latch_guest_sdk;

/// Define and export a denial guest: `denial!(name, description, discover_body)`.
#[macro_export]
macro_rules! denial {
    ($name:literal, $description:literal, $discover:block) => {
        use $crate::latch_guest_sdk::{
            AccessDetails, Error, GrantRequest, Integration, Metadata, Resource,
        };

        struct Denial;

        impl Integration for Denial {
            fn describe() -> Metadata {
                Metadata {
                    name: concat!("denial-", $name).into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    description: $description.into(),
                    config_schema: "{}".into(),
                }
            }
            fn validate(_: String) -> Result<(), Error> {
                Ok(())
            }
            fn discover(_: String) -> Result<Vec<Resource>, Error> {
                $discover
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

        $crate::latch_guest_sdk::export!(Denial with_types_in $crate::latch_guest_sdk::bindings);
    };
}
