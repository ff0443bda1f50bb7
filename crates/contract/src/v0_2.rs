//! `latch:connector@0.2.0` (`wit/0.2.0/connector.wit`), frozen: guests built for it keep
//! loading and working. Everything that converts between 0.2 and the model (0.3) is here.
//!
//! 0.3 changed one thing: `error` gained `not-found`. A 0.2 guest cannot receive that
//! case, so it gets `failed` with the message it got before 0.3 (the capability's own
//! wording, e.g. `… HTTP 404 …`): a 0.2 guest that read "gone" out of the text keeps
//! working as it did. Every other type has the same shape in both versions and converts by
//! that shape ([`Same`]).

wasmtime::component::bindgen!({
    path: "../../wit/0.2.0",
    world: "integration-guest",
    imports: { default: async },
    exports: { default: async },
    additional_derives: [serde::Serialize, serde::Deserialize, PartialEq, Eq],
});

pub use self::latch::connector::types;
use super::v0_3::types as now;
pub use exports::latch::connector::integration;

/// A value of one contract version as the same-shaped type of another: every type but
/// `error` is written identically in `wit/0.2.0/` and `wit/connector.wit`, so their
/// generated Rust types serialize identically, and each converts through that form.
/// `tests::every_shared_type_converts_both_ways` holds one value of each.
pub trait Same: serde::Serialize + Sized {
    /// `self` as the same-shaped `T`.
    fn same<T: serde::de::DeserializeOwned>(self) -> T {
        let value = serde_json::to_value(self).expect("a contract type serializes");
        serde_json::from_value(value)
            .expect("the type has the same shape in both contract versions (see the test)")
    }
}

impl<T: serde::Serialize> Same for T {}

impl From<now::Error> for types::Error {
    fn from(e: now::Error) -> Self {
        match e {
            now::Error::InvalidConfig(m) => types::Error::InvalidConfig(m),
            now::Error::InvalidRequest(m) => types::Error::InvalidRequest(m),
            now::Error::NotFound(m) => types::Error::Failed(m),
            now::Error::Denied(m) => types::Error::Denied(m),
            now::Error::Unreachable(m) => types::Error::Unreachable(m),
            now::Error::Failed(m) => types::Error::Failed(m),
        }
    }
}

impl From<types::Error> for now::Error {
    fn from(e: types::Error) -> Self {
        match e {
            types::Error::InvalidConfig(m) => now::Error::InvalidConfig(m),
            types::Error::InvalidRequest(m) => now::Error::InvalidRequest(m),
            types::Error::Denied(m) => now::Error::Denied(m),
            types::Error::Unreachable(m) => now::Error::Unreachable(m),
            types::Error::Failed(m) => now::Error::Failed(m),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn both_ways<A, B>(a: A)
    where
        A: Same + Clone + PartialEq + std::fmt::Debug + serde::de::DeserializeOwned,
        B: Same + serde::de::DeserializeOwned,
    {
        let b: B = a.clone().same();
        let back: A = b.same();
        assert_eq!(back, a);
    }

    #[test]
    fn every_shared_type_converts_both_ways() {
        use crate::v0_3::latch::connector as n;
        use latch::connector as o;
        let target = types::Target {
            host: "10.0.0.5".into(),
            port: 22,
            user: Some("svc".into()),
        };
        both_ways::<_, now::Target>(target.clone());
        both_ways::<_, now::Output>(types::Output {
            status: 3,
            stdout: b"out".to_vec(),
            stderr: b"err".to_vec(),
        });
        for r in [
            types::SecretRef::GrantPassword,
            types::SecretRef::NewServicePassword,
            types::SecretRef::Named("n".into()),
        ] {
            both_ways::<_, now::SecretRef>(r);
        }
        for v in [
            o::winrm::Value::Text("t".into()),
            o::winrm::Value::Integer(-4),
            o::winrm::Value::Boolean(true),
            o::winrm::Value::TextList(vec!["a".into()]),
            o::winrm::Value::Secret(types::SecretRef::Named("n".into())),
            o::winrm::Value::Switch,
        ] {
            both_ways::<_, n::winrm::Value>(v.clone());
            both_ways::<_, n::winrm::Parameter>(o::winrm::Parameter {
                name: "Identity".into(),
                value: v,
            });
        }
        both_ways::<_, n::winrm::CmdletOutput>(o::winrm::CmdletOutput {
            objects: "[]".into(),
            errors: vec!["e".into()],
        });
        for s in [
            o::ldap::Scope::Base,
            o::ldap::Scope::OneLevel,
            o::ldap::Scope::Subtree,
        ] {
            both_ways::<_, n::ldap::Scope>(s);
        }
        let values = vec![
            o::ldap::Value::Text("t".into()),
            o::ldap::Value::Password(types::SecretRef::GrantPassword),
        ];
        both_ways::<_, n::ldap::Attribute>(o::ldap::Attribute {
            name: "cn".into(),
            values: values.clone(),
        });
        for c in [
            o::ldap::Change::Add(o::ldap::Attribute {
                name: "member".into(),
                values: values.clone(),
            }),
            o::ldap::Change::Delete(o::ldap::Attribute {
                name: "member".into(),
                values: Vec::new(),
            }),
            o::ldap::Change::Replace(o::ldap::Attribute {
                name: "unicodePwd".into(),
                values,
            }),
        ] {
            both_ways::<_, n::ldap::Change>(c);
        }
        both_ways::<_, n::ldap::Entry>(o::ldap::Entry {
            dn: "cn=a".into(),
            attributes: vec![("cn".into(), vec!["a".into()])],
        });
        both_ways::<_, n::cloud::AwsRequest>(o::cloud::AwsRequest {
            service: "ec2".into(),
            region: "eu-west-1".into(),
            action: "DescribeInstances".into(),
            parameters: vec![("MaxResults".into(), "5".into())],
        });
        both_ways::<_, n::cloud::AzureRequest>(o::cloud::AzureRequest {
            path: "/subscriptions/x".into(),
            query: vec![("api-version".into(), "2024-07-01".into())],
        });
        for l in [
            o::log::Level::Trace,
            o::log::Level::Debug,
            o::log::Level::Info,
            o::log::Level::Warn,
            o::log::Level::Error,
        ] {
            both_ways::<_, n::log::Level>(l);
        }
        both_ways::<_, now::Metadata>(types::Metadata {
            name: "n".into(),
            version: "1".into(),
            description: "d".into(),
            config_schema: "{}".into(),
            credential: types::CredentialKind::Password,
        });
        both_ways::<_, now::Lifecycle>(types::Lifecycle {
            cleanup_after_days: Some(3),
            rotate_after_days: None,
            service_key_secret: Some("k".into()),
            service_user: Some("svc".into()),
            default_permission: "Default".into(),
        });
        let resource = types::Resource {
            id: "r".into(),
            name: "n".into(),
            kind: "k".into(),
            tags: vec![("a".into(), "b".into())],
            permissions: vec!["Default".into()],
        };
        both_ways::<_, now::Page>(types::Page {
            resources: vec![resource],
            next: Some("c".into()),
        });
        both_ways::<_, now::GrantRequest>(types::GrantRequest {
            grant_id: "g".into(),
            resource_id: "r".into(),
            permission: "p".into(),
            identity: types::Identity {
                email: "a@b".into(),
                username: Some("alice".into()),
            },
            public_key: Some("ssh-ed25519 AAAA".into()),
            expires_at: 7,
            state: Some("s".into()),
        });
        both_ways::<_, now::Granted>(types::Granted {
            access: types::AccessDetails {
                username: "alice".into(),
                host: "h".into(),
                port: 22,
                certificate: Some("c".into()),
                deliver_password: true,
                instructions: "i".into(),
                extras: vec![("k".into(), "v".into())],
            },
            state: "s".into(),
        });
        for c in [
            types::ServiceCredential::SshKey("k".into()),
            types::ServiceCredential::Password,
        ] {
            both_ways::<_, now::ServiceCredential>(c);
        }
    }

    #[test]
    fn not_found_reaches_a_0_2_guest_as_failed_with_its_words() {
        let e: types::Error = now::Error::NotFound("GET /x: HTTP 404 NotFound".into()).into();
        assert_eq!(e, types::Error::Failed("GET /x: HTTP 404 NotFound".into()));
        let e: now::Error = types::Error::Denied("no".into()).into();
        assert_eq!(e, now::Error::Denied("no".into()));
    }
}
