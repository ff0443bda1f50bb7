//! The directory service login: a simple bind as the service account over LDAPS (or
//! StartTLS), the certificate verified, then nothing.

use std::sync::Arc;

use crate::live::{LdapSettings, open};
use latch_cap::login::{LoginError, Proof, ServiceLogin, Takes, password_login};
use latch_cap::{BoxFuture, CapError, SecretStore, Target};

/// The login's name, in [`latch_cap::login::Logins`] and in [`latch_cap::Call::login`].
pub const NAME: &str = "ldap";

/// The directory login of one integration.
pub struct Login {
    settings: LdapSettings,
    secrets: Arc<SecretStore>,
}

impl Login {
    /// With `[integration.ldap]`.
    pub fn new(settings: LdapSettings, secrets: Arc<SecretStore>) -> Self {
        Login { settings, secrets }
    }
}

impl ServiceLogin for Login {
    fn takes(&self) -> Takes {
        Takes::Password
    }

    fn secret(&self) -> Option<&str> {
        self.settings.password_secret.as_deref()
    }

    fn prove<'a>(
        &'a self,
        target: &'a Target,
        proof: Proof<'a>,
    ) -> BoxFuture<'a, Result<(), LoginError>> {
        Box::pin(async move {
            let (user, password) = password_login(
                NAME,
                self.settings.default_user.as_deref(),
                self.settings.password_secret.as_deref(),
                &self.secrets,
                proof,
            )?;
            match open(&self.settings, target, &user, &password).await {
                Ok(_) => Ok(()),
                // Reached, and not the server it must be: a refusal, like a wrong password.
                Err(f) if f.tls => Err(LoginError::Refused(f.error.to_string())),
                Err(f) => Err(match f.error {
                    CapError::Unreachable(m) => LoginError::Unreachable(m),
                    other => LoginError::Refused(other.to_string()),
                }),
            }
        })
    }
}
