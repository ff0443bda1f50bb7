//! `latch:connector@0.1.0` (`wit/0.1.0/connector.wit`), frozen: guests built for it keep
//! loading and working. Everything that converts between 0.1 and the model (0.3) is here.
//!
//! What a 0.1 guest cannot say, and how the host fills it in:
//! - reads and changes are not told apart: every `ssh.exec` and `winrm.invoke` is a
//!   change, so a plan of a 0.1 guest stops where it first needs a change's output;
//! - `winrm.invoke` parameters are strings or switches; results come back as 0.1's
//!   `output` (objects as JSON on stdout, error messages on stderr, status 1 if any);
//! - the credential is an SSH certificate; a password a 0.1 guest put in its access details
//!   is dropped (a guest-held password is what 0.2 removed), with a warning;
//! - `validate` returns nothing, so the host reads the settings 0.1 documented by name
//!   ([`legacy_lifecycle`]): the only place the host reads a guest's config;
//! - no grant state (revoke gets the request only), and discovery is one page;
//! - service credentials are SSH keys only.

wasmtime::component::bindgen!({
    path: "../../wit/0.1.0",
    world: "integration-guest",
    imports: { default: async },
    exports: { default: async },
    additional_derives: [serde::Serialize, serde::Deserialize, PartialEq, Eq],
});

pub use self::latch::connector::types;
use super::v0_3::types as now;
pub use exports::latch::connector::integration;

impl From<types::Target> for now::Target {
    fn from(t: types::Target) -> Self {
        now::Target {
            host: t.host,
            port: t.port,
            user: t.user,
        }
    }
}

impl From<now::Output> for types::Output {
    fn from(o: now::Output) -> Self {
        types::Output {
            status: o.status,
            stdout: o.stdout,
            stderr: o.stderr,
        }
    }
}

impl From<now::Error> for types::Error {
    fn from(e: now::Error) -> Self {
        match e {
            now::Error::InvalidConfig(m) => types::Error::InvalidConfig(m),
            now::Error::InvalidRequest(m) => types::Error::InvalidRequest(m),
            // 0.1 has no `not-found`: the capability's own words, as `failed` (as before 0.3).
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

impl From<types::Resource> for now::Resource {
    fn from(r: types::Resource) -> Self {
        now::Resource {
            id: r.id,
            name: r.name,
            kind: r.kind,
            tags: r.tags,
            permissions: r.permissions,
        }
    }
}

impl From<types::Metadata> for now::Metadata {
    fn from(m: types::Metadata) -> Self {
        now::Metadata {
            name: m.name,
            version: m.version,
            description: m.description,
            config_schema: m.config_schema,
            credential: now::CredentialKind::SshCertificate,
        }
    }
}

/// The 0.1 request for a model request (its `state` is dropped: 0.1 has none).
pub fn request(r: &now::GrantRequest) -> types::GrantRequest {
    types::GrantRequest {
        grant_id: r.grant_id.clone(),
        resource_id: r.resource_id.clone(),
        permission: r.permission.clone(),
        identity: types::Identity {
            email: r.identity.email.clone(),
            username: r.identity.username.clone(),
        },
        public_key: r.public_key.clone(),
        expires_at: r.expires_at,
    }
}

/// The model's answer for 0.1 access details: no state; a password the guest held is
/// dropped, with a warning.
pub fn granted(a: types::AccessDetails) -> now::Granted {
    if a.password.is_some() || a.private_key.is_some() {
        tracing::warn!(
            "a 0.1 guest returned a password or private key in its access details; it is not \
             delivered (0.2 guests have the host generate and deliver credentials)"
        );
    }
    now::Granted {
        access: now::AccessDetails {
            username: a.username,
            host: a.host,
            port: a.port,
            certificate: a.certificate,
            deliver_password: false,
            instructions: a.instructions,
            extras: Vec::new(),
        },
        state: String::new(),
    }
}

/// What a 0.1 guest's config means for the host, read by the names 0.1 documented:
/// `user_cleanup_days` (0–3650), `credential_rotation_days` (1–3650), `user_key_name`;
/// the default permission is `Default`, as 0.1's SSH integration named it.
pub fn legacy_lifecycle(config_json: &str) -> Result<now::Lifecycle, String> {
    let config: serde_json::Value =
        serde_json::from_str(config_json).map_err(|e| format!("config: {e}"))?;
    let days = |key: &str, min: u64| -> Result<Option<u32>, String> {
        match config.get(key) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(v) => match v.as_u64() {
                Some(n) if (min..=3650).contains(&n) => Ok(Some(n as u32)),
                _ => Err(format!(
                    "config.{key} must be a whole number of days from {min} to 3650, not {v}"
                )),
            },
        }
    };
    let key = match config.get("user_key_name") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => Some(s.clone()),
        Some(_) => return Err("config.user_key_name must be a string".into()),
    };
    Ok(now::Lifecycle {
        cleanup_after_days: days("user_cleanup_days", 0)?,
        rotate_after_days: days("credential_rotation_days", 1)?,
        service_key_secret: key,
        service_user: None,
        default_permission: "Default".into(),
    })
}
