//! The WinRM service login: NTLM or Basic as the service account, TLS verified, a fresh
//! connection that runs nothing.

use std::sync::Arc;

use super::pool::WinrmSettings;
use super::shell::ExchangeError;
use super::transport::{Connection, Credentials};
use crate::caps::login::{LoginError, Proof, ServiceLogin, Takes, wrong_kind};
use crate::caps::{BoxFuture, SecretStore, Target};

/// The login's name, in [`crate::caps::login::Logins`] and in [`crate::caps::Call::login`].
pub const NAME: &str = "winrm";

/// The WinRM login of one integration.
pub struct Login {
    settings: WinrmSettings,
    secrets: Arc<SecretStore>,
}

impl Login {
    /// With `[integration.winrm]`.
    pub fn new(settings: WinrmSettings, secrets: Arc<SecretStore>) -> Self {
        Login { settings, secrets }
    }
}

impl ServiceLogin for Login {
    fn takes(&self) -> Takes {
        Takes::Password
    }

    fn prove<'a>(
        &'a self,
        target: &'a Target,
        proof: Proof<'a>,
    ) -> BoxFuture<'a, Result<(), LoginError>> {
        Box::pin(async move {
            let refused = |m: &str| LoginError::Refused(m.to_string());
            let user = self
                .settings
                .default_user
                .clone()
                .ok_or_else(|| refused("no WinRM account: set [integration.winrm] user"))?;
            let password = match proof {
                Proof::Password(p) => p.clone(),
                Proof::KeySecret(_) => return Err(wrong_kind(NAME, Takes::Password)),
                Proof::Configured => {
                    let secret = self.settings.password_secret.as_deref().ok_or_else(|| {
                        refused("no WinRM password: set [integration.winrm] password_secret")
                    })?;
                    self.secrets
                        .get(secret)
                        .map_err(LoginError::Refused)?
                        .ok_or_else(|| {
                            LoginError::Refused(format!("secret {secret:?} is not in the store"))
                        })?
                }
            };
            let endpoint = self.settings.endpoint(&target.host, target.port);
            let login = async {
                let mut conn = Connection::open(
                    &endpoint,
                    &self.settings.transport,
                    &Credentials { user, password },
                )
                .await?;
                conn.prove_login().await
            };
            login.await.map_err(|e| match e {
                ExchangeError::Unreachable(m) => LoginError::Unreachable(m),
                other => LoginError::Refused(other.to_string()),
            })
        })
    }
}
