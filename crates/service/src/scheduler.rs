//! The expiry scheduler of `latch serve`: no access outlives its expiry, whatever happened.
//!
//! Every tick (1 s) it revokes `active` grants whose expiry has passed and retries `revoking`
//! ones whose previous attempt failed, with exponential backoff (2, 4, 8 … s, at most 5 min),
//! so a server that was down at expiry is revoked as soon as it is back. It also reconciles
//! what a crashed process left: a `granting` grant older than its integration's call deadline
//! (plus [`GRACE_SECS`]) can no longer be in progress anywhere, so it is rolled back (marked
//! failed, then revoked: grants are idempotent, so a revoke undoes whatever part happened); a
//! `revoking` one is finished. Younger `granting` rows are left alone: another process (a CLI
//! `latch grant`) may be carrying them out right now. For integrations with
//! `user_cleanup_days`, it also deletes revoked grants' accounts that many days after the
//! revoke (the guest's `cleanup`), never while another live grant uses the same account. The certificate expires at the grant's expiry regardless: the
//! scheduler locks the account and ends sessions that outlive it.

use std::sync::Arc;
use std::time::Duration;

use crate as service;
use crate::connector::Connector;
use latch_caps::certs::ca::unix_now;
use latch_ledger::forward::Forwarder;
use latch_ledger::{Event, GrantRecord, Ledger, State};
use latch_runtime::Export;

/// How often the scheduler looks for due grants.
pub const TICK: Duration = Duration::from_secs(1);
pub use service::GRACE_SECS;
/// The longest wait between two revoke attempts.
pub const MAX_BACKOFF_SECS: u64 = 300;
/// How many revokes one tick runs at once.
pub const REVOKE_CONCURRENCY: usize = 32;
/// How long after a failed credential rotation it is tried again.
pub const ROTATION_RETRY_SECS: u64 = 600;
/// How long after a failed account cleanup it is tried again.
pub const CLEANUP_RETRY_SECS: u64 = 600;

/// Revokes what is due; see the module docs.
pub struct Scheduler {
    connector: Arc<Connector>,
    ledger: Arc<Ledger>,
    forwarder: Option<std::sync::Mutex<Forwarder>>,
    /// Where service keys live, for credential rotation.
    secrets_dir: Option<std::path::PathBuf>,
    /// Integrations whose rotation is running, or failed and waits until the given time.
    rotations: Arc<std::sync::Mutex<std::collections::HashMap<String, u64>>>,
}

impl Scheduler {
    /// A scheduler over `ledger`, acting through `connector`.
    pub fn new(connector: Arc<Connector>, ledger: Arc<Ledger>) -> Self {
        Scheduler {
            connector,
            ledger,
            forwarder: None,
            secrets_dir: None,
            rotations: Default::default(),
        }
    }

    /// Also rotate service keys (integrations with `credential_rotation_days`) in `dir`.
    pub fn rotating(mut self, secrets_dir: &std::path::Path) -> Self {
        self.secrets_dir = Some(secrets_dir.to_path_buf());
        self
    }

    /// Start the credential rotations that are due, each on its own task (a rotation visits
    /// every server; revokes must not wait for it). A failed one is retried after
    /// [`ROTATION_RETRY_SECS`].
    fn rotate_due(&self) {
        let Some(dir) = &self.secrets_dir else { return };
        let now = unix_now();
        for (_, ic) in self.connector.integrations() {
            if !super::rotation::due(ic, dir) {
                continue;
            }
            {
                let mut busy = self.rotations.lock().unwrap_or_else(|e| e.into_inner());
                if busy.get(&ic.name).is_some_and(|until| *until > now) {
                    continue;
                }
                busy.insert(ic.name.clone(), u64::MAX); // running
            }
            let (connector, ledger, rotations, dir, name) = (
                self.connector.clone(),
                self.ledger.clone(),
                self.rotations.clone(),
                dir.clone(),
                ic.name.clone(),
            );
            tokio::spawn(async move {
                let result =
                    super::rotation::rotate(&connector, &ledger, &dir, &name, "scheduler").await;
                let mut busy = rotations.lock().unwrap_or_else(|e| e.into_inner());
                match result {
                    Ok(r) => {
                        tracing::info!(integration = %name, credential = r.credential, new = ?r.new_fingerprint, "service credential rotated");
                        busy.remove(&name);
                    }
                    Err(e) => {
                        tracing::error!(integration = %name, "credential rotation failed (retrying in {ROTATION_RETRY_SECS} s): {e:#}");
                        busy.insert(name, unix_now() + ROTATION_RETRY_SECS);
                    }
                }
            });
        }
    }

    /// Also forward the audit log to `forwarder` each tick.
    pub fn forwarding(mut self, forwarder: Forwarder) -> Self {
        self.forwarder = Some(std::sync::Mutex::new(forwarder));
        self
    }

    /// Forward new audit records, if forwarding is configured.
    pub fn forward(&self) {
        let Some(f) = &self.forwarder else { return };
        let mut f = f.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            match f.forward(&self.ledger) {
                Ok(n) if n == latch_ledger::forward::BATCH => continue,
                Ok(_) => return,
                Err(e) => {
                    tracing::error!("forwarding the audit log failed: {e:#}");
                    return;
                }
            }
        }
    }

    /// Roll back grants abandoned while `granting` (see the module docs).
    pub async fn reconcile(&self) -> anyhow::Result<()> {
        let now = unix_now();
        for mut g in self.ledger.list(Some(State::Granting))? {
            let deadline = match self.connector.integration(&g.integration) {
                Ok((_, ic)) => ic.limits.deadline.as_secs(),
                Err(_) => latch_config::MAX_DEADLINE.as_secs(),
            };
            if g.granting_since.unwrap_or(g.created_at) + deadline + GRACE_SECS > now {
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
            revoke(&self.connector, &self.ledger, &g.grant_id).await;
        }
        // Requests: time out the pending ones past their window; settle approved ones whose
        // grant finished (or never started) while no one was watching.
        crate::requests::reconcile(
            &self.ledger,
            latch_config::MAX_DEADLINE.as_secs() + GRACE_SECS,
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(())
    }

    /// Reconcile, then revoke everything due now (`revoking` grants with no retry set are
    /// due at once).
    pub async fn tick(&self) {
        if let Err(e) = self.reconcile().await {
            tracing::error!("reconciling the ledger failed: {e:#}");
        }
        // Claim everything due in one transaction (one fsync however many expire together),
        // then carry the revokes out.
        let claimed = self
            .ledger
            .claim_due(unix_now(), |g| service::revoke_requested("scheduler", g));
        let due = match claimed {
            Ok(due) => due,
            Err(e) => {
                tracing::error!("cannot read the ledger: {e:#}");
                return;
            }
        };
        // Revoke concurrently (many grants often expire together, on different servers); the
        // runtime's `max_concurrent_calls` bounds the guest calls in flight.
        let mut set = tokio::task::JoinSet::new();
        let limit = Arc::new(tokio::sync::Semaphore::new(REVOKE_CONCURRENCY));
        for g in due {
            let (connector, ledger, limit) =
                (self.connector.clone(), self.ledger.clone(), limit.clone());
            set.spawn(async move {
                let _permit = limit.acquire().await;
                let id = g.grant_id.clone();
                let result = service::carry_out_revoke(&connector, &ledger, g, "scheduler").await;
                after_revoke(&ledger, &id, result)
            });
        }
        while set.join_next().await.is_some() {}
        match self.ledger.cleanup_due(unix_now()) {
            Ok(due) => {
                for g in due {
                    self.cleanup(g).await;
                }
            }
            Err(e) => tracing::error!("cannot read the ledger: {e:#}"),
        }
        self.rotate_due();
        self.forward();
    }

    /// Delete the account of a revoked grant (`user_cleanup_days` after its revoke) with the
    /// guest's `cleanup` — unless another live grant uses the same account on the same
    /// resource: then that grant's own revoke schedules the cleanup.
    async fn cleanup(&self, g: GrantRecord) {
        let Some(username) = g.username.clone() else {
            return;
        };
        let mut event = Event {
            actor: "scheduler".into(),
            event: "account.cleanup".into(),
            grant_id: Some(g.grant_id.clone()),
            integration: Some(g.integration.clone()),
            guest_sha256: Some(g.guest_sha256.clone()),
            detail: serde_json::json!({ "resource": g.resource_id, "username": username }),
            ..Event::default()
        };
        let _serial = self
            .connector
            .lock_resource(&g.integration, &g.resource_id)
            .await;
        let now = unix_now();
        let result = match self.ledger.account_in_use(&g) {
            Ok(Some(other)) => {
                event.outcome = "skipped".into();
                event.detail["in_use_by"] = other.into();
                Ok(true)
            }
            Ok(None) => match self.connector.integration(&g.integration) {
                Ok((integration, ic)) => {
                    let report = integration
                        .call_with(
                            self.connector.runtime(),
                            Export::Cleanup {
                                config: ic.config_json.clone(),
                                request: service::request_of(&g),
                                username: username.clone(),
                            },
                            service::lockout_options(ic),
                        )
                        .await;
                    if let Err(e) = service::audit_calls(&self.ledger, "scheduler", &g, &report) {
                        tracing::error!(grant = %g.grant_id, "cannot audit: {e:#}");
                    }
                    report.result.map(|_| false).map_err(|e| e.to_string())
                }
                Err(e) => Err(format!("{e:#}")),
            },
            Err(e) => Err(format!("{e:#}")),
        };
        let done = match result {
            Ok(skipped) => {
                if !skipped {
                    event.outcome = "ok".into();
                    tracing::info!(grant = %g.grant_id, user = %username, "account cleaned up");
                }
                Some(now)
            }
            Err(e) => {
                tracing::warn!(grant = %g.grant_id, "account cleanup failed, retrying in {CLEANUP_RETRY_SECS} s: {e}");
                event.outcome = "failed".into();
                event.detail["error"] = e.into();
                None
            }
        };
        if let Err(e) = self
            .ledger
            .cleanup_done(&g.grant_id, done, now + CLEANUP_RETRY_SECS, event)
        {
            tracing::error!(grant = %g.grant_id, "cannot record the cleanup: {e:#}");
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

/// Revoke `grant_id`; on failure, schedule the next attempt with exponential backoff.
async fn revoke(connector: &Connector, ledger: &Ledger, grant_id: &str) {
    let result = service::revoke(connector, ledger, grant_id, "scheduler").await;
    after_revoke(ledger, grant_id, result)
}

/// Log a revoke's outcome; on failure, schedule the next attempt with exponential backoff.
fn after_revoke(ledger: &Ledger, grant_id: &str, result: service::Result<GrantRecord>) {
    match result {
        Ok(g) => {
            let lag = unix_now().saturating_sub(g.expires_at);
            tracing::info!(grant = grant_id, lag_secs = lag, "revoked");
        }
        Err(e) => {
            let attempts = ledger.attempts(grant_id).unwrap_or(1).max(1);
            let wait = 2u64.saturating_pow(attempts.min(16)).min(MAX_BACKOFF_SECS);
            tracing::warn!(
                grant = grant_id,
                attempts,
                retry_in_secs = wait,
                "revoke failed: {e:#}"
            );
            if let Err(e) = ledger.retry_at(grant_id, unix_now() + wait) {
                tracing::error!(grant = grant_id, "cannot schedule the retry: {e:#}");
            }
        }
    }
}
