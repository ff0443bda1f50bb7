//! The WinRM service login: NTLM or Basic as the service account, TLS verified, a fresh
//! connection that runs nothing.

use std::sync::Arc;

use crate::pool::WinrmSettings;
use crate::shell::ExchangeError;
use crate::transport::{Connection, Credentials};
use latch_cap::login::{LoginError, Proof, ServiceLogin, Takes, password_login};
use latch_cap::{BoxFuture, SecretStore, Target};

/// The login's name, in [`latch_cap::login::Logins`] and in [`latch_cap::Call::login`].
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
