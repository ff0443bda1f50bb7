//! The SSH service login: the service key, the host key checked, a session that runs
//! nothing.

use std::sync::Arc;

use crate::client::{SshSettings, check_login};
use latch_cap::login::{LoginError, Proof, ServiceLogin, Takes, wrong_kind};
use latch_cap::{BoxFuture, CapError, SecretStore, Target};

/// The login's name, in [`latch_cap::login::Logins`] and in [`latch_cap::Call::login`].
pub const NAME: &str = "ssh";

/// The SSH login of one integration.
pub struct Login {
    settings: SshSettings,
    secrets: Arc<SecretStore>,
}

impl Login {
    /// With `[integration.ssh]` (as the guest's lifecycle amended it).
    pub fn new(settings: SshSettings, secrets: Arc<SecretStore>) -> Self {
        Login { settings, secrets }
    }
}

impl ServiceLogin for Login {
    fn takes(&self) -> Takes {
        Takes::Key
    }

    fn secret(&self) -> Option<&str> {
        Some(&self.settings.key_secret)
    }

    fn prove<'a>(
        &'a self,
        target: &'a Target,
        proof: Proof<'a>,
    ) -> BoxFuture<'a, Result<(), LoginError>> {
        Box::pin(async move {
            let key = match proof {
                Proof::Configured => self.settings.key_secret.as_str(),
                Proof::KeySecret(name) => name,
                Proof::Password(_) => return Err(wrong_kind(NAME, Takes::Key)),
            };
            let user = target
                .user
                .as_deref()
                .or(self.settings.default_user.as_deref())
                .ok_or_else(|| {
                    LoginError::Refused(format!(
                        "{target} names no account and the integration has no service user \
                         ([integration.ssh] user)"
                    ))
                })?;
            check_login(&self.settings, &self.secrets, key, target, user)
                .await
                .map_err(|e| match e {
                    CapError::Unreachable(m) => LoginError::Unreachable(m),
                    other => LoginError::Refused(other.to_string()),
                })
        })
    }
}
