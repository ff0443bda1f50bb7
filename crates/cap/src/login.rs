//! Proving that an integration's service account can log in to a server: on a fresh
//! connection, running nothing. `latch check --connect` proves the configured credential on
//! every server a grant would reach; a rotation proves the new one before it switches.
//!
//! Each capability that logs in to servers (ssh, winrm, ldap) offers its own
//! [`ServiceLogin`], built from its own settings by the host's `registry::service_logins`; a
//! call says which login reaches its server ([`super::Call::login`]). Central code names no
//! transport and reads no error text: a login answers [`LoginError`], typed.

use std::collections::BTreeMap;

use super::{BoxFuture, Secret, SecretStore, Target};

/// What a login proves.
#[derive(Clone, Copy, Debug)]
pub enum Proof<'a> {
    /// The credential `latch.toml` configures for the integration.
    Configured,
    /// A service key held in the secret named (a rotation's next key).
    KeySecret(&'a str),
    /// A password (a rotation's next password).
    Password(&'a Secret),
}

/// The kind of credential a login takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Takes {
    /// A service key (SSH).
    Key,
    /// A password (WinRM, LDAP).
    Password,
}

/// Why a login was not proven.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoginError {
    /// The server could not be reached.
    Unreachable(String),
    /// It was reached and refused: the login, its host key or its TLS certificate, or the
    /// integration configures no account or credential for it.
    Refused(String),
}

impl LoginError {
    /// `unreachable` or `refused`.
    pub fn kind(&self) -> &'static str {
        match self {
            LoginError::Unreachable(_) => "unreachable",
            LoginError::Refused(_) => "refused",
        }
    }
}

impl std::fmt::Display for LoginError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoginError::Unreachable(m) | LoginError::Refused(m) => f.write_str(m),
        }
    }
}

/// One capability's service login for one integration.
pub trait ServiceLogin: Send + Sync {
    /// The kind of credential it takes.
    fn takes(&self) -> Takes;
    /// The secret it proves the service account with as configured (`Proof::Configured`),
    /// if the integration names one: what a rotation of the service credential rewrites.
    fn secret(&self) -> Option<&str>;
    /// Log in to `target` as the service account with `proof`, run nothing, disconnect.
    fn prove<'a>(
        &'a self,
        target: &'a Target,
        proof: Proof<'a>,
    ) -> BoxFuture<'a, Result<(), LoginError>>;
}

/// An integration's service logins, by the name a call's [`super::Call::login`] gives.
pub type Logins = BTreeMap<&'static str, Box<dyn ServiceLogin>>;

/// A credential given to a login that does not take it.
pub fn wrong_kind(transport: &str, takes: Takes) -> LoginError {
    LoginError::Refused(match takes {
        Takes::Key => format!("a {transport} login takes a service key, not a password"),
        Takes::Password => format!("a {transport} login takes a password, not a key"),
    })
}

/// The account and password a password login (WinRM, LDAP) proves, from its table
/// (`[integration.TABLE]`'s `user` and `password_secret`) and `proof`.
pub fn password_login(
    table: &str,
    default_user: Option<&str>,
    password_secret: Option<&str>,
    secrets: &SecretStore,
    proof: Proof<'_>,
) -> Result<(String, Secret), LoginError> {
    let user = default_user.ok_or_else(|| {
        LoginError::Refused(format!(
            "no {table} account: set [integration.{table}] user"
        ))
    })?;
    let password = match proof {
        Proof::Password(p) => p.clone(),
        Proof::KeySecret(_) => return Err(wrong_kind(table, Takes::Password)),
        Proof::Configured => {
            let secret = password_secret.ok_or_else(|| {
                LoginError::Refused(format!(
                    "no {table} password: set [integration.{table}] password_secret"
                ))
            })?;
            secrets
                .get(secret)
                .map_err(LoginError::Refused)?
                .ok_or_else(|| {
                    LoginError::Refused(format!("secret {secret:?} is not in the store"))
                })?
        }
    };
    Ok((user.to_string(), password))
}
