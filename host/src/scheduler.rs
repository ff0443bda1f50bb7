//! The expiry scheduler of `latch serve`: no access outlives its expiry, whatever happened.
//!
//! Every tick (1 s) it revokes `active` grants whose expiry has passed and retries `revoking`
//! ones whose previous attempt failed, with exponential backoff (2, 4, 8 … s, at most 5 min),
//! so a server that was down at expiry is revoked as soon as it is back. It also reconciles
//! what a crashed process left: a `granting` grant older than its integration's call deadline
//! (plus [`GRACE_SECS`]) can no longer be in progress anywhere, so it is rolled back (marked
//! failed, then revoked: grants are idempotent, so a revoke undoes whatever part happened); a
//! `revoking` one is finished. Younger `granting` rows are left alone: another process (a CLI
//! `latch grant`) may be carrying them out right now. The certificate expires at the grant's expiry regardless: the
//! scheduler locks the account and ends sessions that outlive it.

use std::sync::Arc;
use std::time::Duration;

use crate::caps::certs::ca::unix_now;
use crate::connector::Connector;
use crate::ledger::{Event, Ledger, State};
use crate::service;

/// How often the scheduler looks for due grants.
pub const TICK: Duration = Duration::from_secs(1);
/// How long past its call deadline a `granting` grant is left before it counts as abandoned.
pub const GRACE_SECS: u64 = 10;
/// The longest wait between two revoke attempts.
pub const MAX_BACKOFF_SECS: u64 = 300;

/// Revokes what is due; see the module docs.
pub struct Scheduler {
    connector: Arc<Connector>,
    ledger: Arc<Ledger>,
}

impl Scheduler {
    /// A scheduler over `ledger`, acting through `connector`.
    pub fn new(connector: Arc<Connector>, ledger: Arc<Ledger>) -> Self {
        Scheduler { connector, ledger }
    }

    /// Roll back grants abandoned while `granting` (see the module docs).
    pub async fn reconcile(&self) -> anyhow::Result<()> {
        let now = unix_now();
        for mut g in self.ledger.list(Some(State::Granting))? {
            let deadline = match self.connector.integration(&g.integration) {
                Ok((_, ic)) => ic.limits.deadline.as_secs(),
                Err(_) => crate::config::MAX_DEADLINE.as_secs(),
            };
            if g.created_at + deadline + GRACE_SECS > now {
                continue; // possibly still being granted by another process
            }
            tracing::warn!(grant = %g.grant_id, "found a grant interrupted while granting; rolling it back");
            g.state = State::Failed;
            g.last_error = Some("interrupted while granting (connector restarted)".into());
            let event = Event {
                actor: "scheduler".into(),
                event: "grant.failed".into(),
                grant_id: Some(g.grant_id.clone()),
                integration: Some(g.integration.clone()),
                guest_sha256: Some(g.guest_sha256.clone()),
                detail: serde_json::json!({ "error": g.last_error }),
                outcome: "failed".into(),
                ..Event::default()
            };
            self.ledger.update(&g, State::Granting, event)?;
            self.revoke(&g.grant_id).await;
        }
        Ok(())
    }

    /// Reconcile, then revoke everything due now (`revoking` grants with no retry set are
    /// due at once).
    pub async fn tick(&self) {
        if let Err(e) = self.reconcile().await {
            tracing::error!("reconciling the ledger failed: {e:#}");
        }
        let due = match self.ledger.due(unix_now()) {
            Ok(due) => due,
            Err(e) => {
                tracing::error!("cannot read the ledger: {e:#}");
                return;
            }
        };
        for g in due {
            self.revoke(&g.grant_id).await;
        }
    }

    async fn revoke(&self, grant_id: &str) {
        match service::revoke(&self.connector, &self.ledger, grant_id, "scheduler").await {
            Ok(g) => {
                let lag = unix_now().saturating_sub(g.expires_at);
                tracing::info!(grant = grant_id, lag_secs = lag, "revoked");
            }
            Err(e) => {
                let attempts = self.ledger.attempts(grant_id).unwrap_or(1).max(1);
                let wait = 2u64.saturating_pow(attempts.min(16)).min(MAX_BACKOFF_SECS);
                tracing::warn!(
                    grant = grant_id,
                    attempts,
                    retry_in_secs = wait,
                    "revoke failed: {e:#}"
                );
                if let Err(e) = self.ledger.retry_at(grant_id, unix_now() + wait) {
                    tracing::error!(grant = grant_id, "cannot schedule the retry: {e:#}");
                }
            }
        }
    }

    /// Tick until `shutdown` resolves.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) -> anyhow::Result<()> {
        tokio::pin!(shutdown);
        let mut ticker = tokio::time::interval(TICK);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = &mut shutdown => return Ok(()),
                _ = ticker.tick() => self.tick().await,
            }
        }
    }
}
