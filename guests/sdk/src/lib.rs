//! The guest side of Latch: what every integration needs, written once.
//!
//! - [`bindings`]: the `latch:connector@0.3.0` world, generated once here; a guest exports
//!   its integration with `latch_guest_sdk::export!(MyIntegration);`
//! - [`names`]: POSIX account and group names, and deriving an account name from an e-mail;
//! - [`ad`]: Windows account names, DN and filter escaping, AD times;
//! - [`config`]: typed config parsing whose errors name the field;
//! - [`read`] / [`exec`]: run a command over the `ssh` capability, as a read (carried out in
//!   a plan too) or as a change (only recorded in a plan); [`run`] and [`read_ok`] treat a
//!   non-zero exit as an error.
//!
//! Everything that touches a server goes through the host's capabilities; this crate adds no
//! authority, only checks and conveniences.

pub mod ad;
pub mod config;
pub mod linux;
pub mod names;

/// Bindings for the `integration-guest` world.
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "integration-guest",
        pub_export_macro: true,
        default_bindings_module: "latch_guest_sdk::bindings",
    });
}

pub use bindings::export;
pub use bindings::exports::latch::connector::integration::Guest as Integration;
pub use bindings::latch::connector::log::{Level, write as log};
pub use bindings::latch::connector::types::{
    AccessDetails, CredentialKind, Error, GrantRequest, Granted, Identity, Lifecycle, Metadata,
    Output, Page, Resource, SecretRef, ServiceCredential, Target,
};
pub use bindings::latch::connector::{certs, cloud, ldap, secrets, ssh, winrm};

/// A lifecycle that asks the host for nothing (no cleanup, no rotation, the configured
/// service credentials), with `default_permission` for requests that name none.
pub fn plain_lifecycle(default_permission: &str) -> Lifecycle {
    Lifecycle {
        cleanup_after_days: None,
        rotate_after_days: None,
        service_key_secret: None,
        service_user: None,
        default_permission: default_permission.to_string(),
    }
}

/// `Error::InvalidConfig` with `message`.
pub fn invalid_config(message: impl Into<String>) -> Error {
    Error::InvalidConfig(message.into())
}

/// `Error::InvalidRequest` with `message`.
pub fn invalid_request(message: impl Into<String>) -> Error {
    Error::InvalidRequest(message.into())
}

fn ok(target: &Target, argv: &[&str], out: Output) -> Result<Output, Error> {
    if out.status != 0 {
        return Err(Error::Failed(format!(
            "`{}` on {}:{} exited with status {}: {}",
            argv.join(" "),
            target.host,
            target.port,
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(out)
}

fn owned(argv: &[&str]) -> Vec<String> {
    argv.iter().map(|s| s.to_string()).collect()
}

/// Run `argv`, a command that **changes** the server, on `target` over SSH; a non-zero exit
/// status becomes `Error::Failed` naming the command and quoting its stderr.
pub fn run(target: &Target, argv: &[&str]) -> Result<Output, Error> {
    ok(target, argv, exec(target, argv)?)
}

/// Run `argv`, a command that changes the server, and return its output whatever the exit
/// status. In a plan it is not run, and answers exit 0 with no output.
pub fn exec(target: &Target, argv: &[&str]) -> Result<Output, Error> {
    exec_with_stdin(target, argv, &[])
}

/// [`exec`] with `stdin`.
pub fn exec_with_stdin(target: &Target, argv: &[&str], stdin: &[u8]) -> Result<Output, Error> {
    ssh::exec(target, &owned(argv), stdin)
}

/// Run `argv`, a command that only **reads**, and return its output whatever the exit
/// status. It runs in a plan too, so a plan's decisions are the real ones.
pub fn read(target: &Target, argv: &[&str]) -> Result<Output, Error> {
    ssh::read(target, &owned(argv), &[])
}

/// [`read`], with a non-zero exit status as `Error::Failed`.
pub fn read_ok(target: &Target, argv: &[&str]) -> Result<Output, Error> {
    ok(target, argv, read(target, argv)?)
}
