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
            CredentialKind, Error, GrantRequest, Granted, Integration, Lifecycle, Metadata, Page,
            ServiceCredential,
        };

        struct Denial;

        impl Integration for Denial {
            fn describe() -> Metadata {
                Metadata {
                    name: concat!("denial-", $name).into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    description: $description.into(),
                    config_schema: "{}".into(),
                    credential: CredentialKind::None,
                }
            }
            fn validate(_: String) -> Result<Lifecycle, Error> {
                Ok($crate::latch_guest_sdk::plain_lifecycle("Default"))
            }
            #[allow(unreachable_code, clippy::diverging_sub_expression)] // it may never return
            fn discover(_: String, _: Option<String>) -> Result<Page, Error> {
                let resources: Result<Vec<$crate::latch_guest_sdk::Resource>, Error> = $discover;
                Ok(Page {
                    resources: resources?,
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
            fn remove_service_credential(
                _: String,
                _: String,
                _: ServiceCredential,
            ) -> Result<(), Error> {
                Ok(())
            }
        }

        $crate::latch_guest_sdk::export!(Denial with_types_in $crate::latch_guest_sdk::bindings);
    };
}
