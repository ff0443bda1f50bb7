//! The ledger on SQLite: `data_dir/latch.db` (WAL), grants and the audit chain in one file.
//!
//! Defends the "no access outlives its record" promise: a grant's row is written before any
//! remote action, each state change is one `UPDATE … WHERE state = <from>` (so a concurrent
//! change is detected, not overwritten) in the same transaction as its audit record, and
//! transitions outside the state machine are refused. The interface is narrow on purpose:
//! the PostgreSQL store for high availability implements the same methods.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context, anyhow};
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::audit::{self, Broken, Event, Record};
use super::error::{LedgerError, Result};
use super::grant::{GrantRecord, State, check_grant_id};
use super::token::{TokenRecord, TokenScope};

/// Schema migrations, applied in order; the index + 1 is the schema version.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE grants (
    grant_id            TEXT PRIMARY KEY,
    integration         TEXT NOT NULL,
    resource_id         TEXT NOT NULL,
    permission          TEXT NOT NULL,
    email               TEXT NOT NULL,
    requested_username  TEXT,
    public_key          TEXT NOT NULL,
    created_at          INTEGER NOT NULL,
    expires_at          INTEGER NOT NULL,
    state               TEXT NOT NULL,
    username            TEXT,
    host                TEXT,
    port                INTEGER,
    revoked_at          INTEGER,
    attempts            INTEGER NOT NULL DEFAULT 0,
    last_error          TEXT,
    guest_sha256        TEXT NOT NULL
);
CREATE INDEX grants_by_state_expiry ON grants (state, expires_at);
CREATE TABLE audit (
    seq           INTEGER PRIMARY KEY,
    time          INTEGER NOT NULL,
    actor         TEXT NOT NULL,
    event         TEXT NOT NULL,
    grant_id      TEXT,
    integration   TEXT,
    guest_sha256  TEXT,
    target        TEXT,
    detail        TEXT NOT NULL,
    outcome       TEXT NOT NULL,
    prev_hash     TEXT NOT NULL,
    hash          TEXT NOT NULL
);
"#,
    r#"
ALTER TABLE grants ADD COLUMN next_attempt_at INTEGER;
"#,
    r#"
CREATE TABLE tokens (
    name        TEXT PRIMARY KEY,
    sha256      TEXT NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL
);
"#,
    r#"
ALTER TABLE grants ADD COLUMN granting_since INTEGER;
ALTER TABLE grants ADD COLUMN cleanup_due_at INTEGER;
ALTER TABLE grants ADD COLUMN cleaned_up_at INTEGER;
CREATE INDEX grants_by_cleanup ON grants (cleanup_due_at) WHERE cleaned_up_at IS NULL;
CREATE INDEX grants_by_resource ON grants (integration, resource_id, state);
"#,
    r#"
ALTER TABLE grants ADD COLUMN guest_state TEXT;
"#,
    // Tokens get a scope, an expiry and a revocation. Tokens made before could do
    // everything: they keep that scope, and expire 30 days from this migration.
    r#"
ALTER TABLE tokens ADD COLUMN expires_at INTEGER;
ALTER TABLE tokens ADD COLUMN revoked_at INTEGER;
ALTER TABLE tokens ADD COLUMN scope TEXT;
UPDATE tokens SET expires_at = CAST(strftime('%s', 'now') AS INTEGER) + 2592000,
    scope = '{"integrations":["*"],"revoke_others":true,"read_audit":true}';
"#,
    // Access requests and their approvals (issue 22): see `request.rs`.
    r#"
CREATE TABLE requests (
    request_id        TEXT PRIMARY KEY,
    integration       TEXT NOT NULL,
    resource_id       TEXT NOT NULL,
    permission        TEXT NOT NULL,
    requester         TEXT NOT NULL,
    requester_email   TEXT,
    requester_groups  TEXT NOT NULL,
    public_key        TEXT NOT NULL,
    duration_secs     INTEGER NOT NULL,
    justification     TEXT NOT NULL,
    approvals_needed  INTEGER NOT NULL,
    policies          TEXT NOT NULL,
    created_at        INTEGER NOT NULL,
    decide_by         INTEGER NOT NULL,
    state             TEXT NOT NULL,
    grant_id          TEXT UNIQUE,
    closed_at         INTEGER,
    closed_by         TEXT,
    reason            TEXT
);
CREATE INDEX requests_by_state ON requests (state, decide_by);
CREATE TABLE approvals (
    request_id  TEXT NOT NULL REFERENCES requests (request_id),
    approver    TEXT NOT NULL,
    email       TEXT,
    policies    TEXT NOT NULL,
    at          INTEGER NOT NULL,
    PRIMARY KEY (request_id, approver)
);
"#,
];

/// Grants due for a revoke at `?1`: `active` past expiry, `revoking` whose retry is due.
const DUE_SQL: &str = "SELECT * FROM grants
    WHERE (state = 'active' AND expires_at <= ?1)
       OR (state = 'revoking' AND (next_attempt_at IS NULL OR next_attempt_at <= ?1))
    ORDER BY expires_at";

/// `(label, count)` pairs.
pub type Counts = Vec<(String, i64)>;

/// The ledger of one connector.
pub struct Ledger {
    path: PathBuf,
    conn: Mutex<Connection>,
}

/// Create the database file 0600 before SQLite opens it, if it does not exist: SQLite gives
/// its `-wal` and `-shm` files the mode of the database file, so all three are private from
/// the first byte (setting the mode afterwards left a window, and missed the other two). An
/// existing file that others can read is made private, and so are its companions.
fn create_private(path: &Path) -> Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            for suffix in ["", "-wal", "-shm"] {
                let mut file = path.as_os_str().to_owned();
                file.push(suffix);
                let file = PathBuf::from(file);
                if let Ok(meta) = std::fs::metadata(&file)
                    && meta.permissions().mode() & 0o077 != 0
                {
                    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))
                        .with_context(|| format!("cannot make {} private", file.display()))?;
                }
            }
            Ok(())
        }
        Err(e) => Err(anyhow::Error::from(e)
            .context(format!("cannot create the ledger {}", path.display()))
            .into()),
    }
}

/// Run ledger work that may block on disk (SQLite's fsync) without stalling the async
/// worker it was called from: on a multi-threaded runtime the worker's other tasks (API
/// requests, the scheduler's tick) move to another thread meanwhile.
pub(crate) fn blocking<T>(work: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(work)
        }
        _ => work(),
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Ledger {
    /// Open (or create) `data_dir/latch.db` and bring its schema up to date.
    pub fn open(data_dir: &Path) -> Result<Ledger> {
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("cannot create {}", data_dir.display()))?;
        let path = data_dir.join("latch.db");
        create_private(&path)?;
        let conn = Connection::open(&path)
            .with_context(|| format!("cannot open the ledger {}", path.display()))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version > MIGRATIONS.len() as i64 {
            return Err(anyhow!(
                "the ledger {} has schema version {version}, newer than this latch knows \
                 ({}); it was written by a newer release. Run that release (or newer); this \
                 one will not touch it",
                path.display(),
                MIGRATIONS.len()
            )
            .into());
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = conn.unchecked_transaction()?;
            tx.execute_batch(sql)
                .with_context(|| format!("ledger migration {}", i + 1))?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)?;
            tx.commit()?;
        }
        Ok(Ledger {
            path,
            conn: Mutex::new(conn),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Record a new grant (state `granting`) and its audit event, atomically — unless the
    /// same person (or account name) has a live grant on the same resource already.
    pub fn create(&self, r: &GrantRecord, event: Event) -> Result<()> {
        blocking(|| -> Result<()> {
            check_grant_id(&r.grant_id)?;
            if r.state != State::Granting {
                return Err(anyhow!("a new grant starts as granting, not {:?}", r.state).into());
            }
            let mut conn = self.conn();
            // IMMEDIATE: the check below and the insert are one write transaction, so two
            // connectors (or CLI processes) cannot both pass the check.
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let live: Option<(String, String, i64)> = tx
                .query_row(
                    "SELECT grant_id, state, expires_at FROM grants
                     WHERE integration = ?1 AND resource_id = ?2
                       AND state IN ('granting', 'active', 'revoking')
                       AND (email = ?3 OR username = ?4 OR requested_username = ?4)
                     LIMIT 1",
                    params![r.integration, r.resource_id, r.email, r.requested_username],
                    |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
                )
                .optional()?;
            if let Some((id, state, expires)) = live {
                return Err(LedgerError::Conflict(format!(
                    "{} already has grant {id} ({state}, until {expires}) on {}; extend it or \
                     revoke it first (one live grant per account and resource, so revoking one \
                     never cuts another)",
                    r.email, r.resource_id
                )));
            }
            tx.execute(
                "INSERT INTO grants (grant_id, integration, resource_id, permission, email,
                    requested_username, public_key, created_at, expires_at, state, guest_sha256)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                params![
                    r.grant_id,
                    r.integration,
                    r.resource_id,
                    r.permission,
                    r.email,
                    r.requested_username,
                    r.public_key,
                    r.created_at as i64,
                    r.expires_at as i64,
                    r.state.as_str(),
                    r.guest_sha256
                ],
            )?;
            append(&tx, event)?;
            tx.commit()?;
            Ok(())
        })
    }

    /// Move grant `r.grant_id` from state `from` to `r.state`, saving `r`'s other fields,
    /// with its audit event, atomically. Fails if the stored state is no longer `from`.
    pub fn update(&self, r: &GrantRecord, from: State, event: Event) -> Result<()> {
        self.update_leased(r, from, event, None)
    }

    /// [`Ledger::update`], and — with `lease` — no retry of a `revoking` grant by the
    /// scheduler before that time (the caller is carrying the revoke out itself), in the
    /// same transaction.
    pub fn update_leased(
        &self,
        r: &GrantRecord,
        from: State,
        event: Event,
        lease: Option<u64>,
    ) -> Result<()> {
        blocking(|| -> Result<()> {
            if !from.can_move_to(r.state) {
                return Err(anyhow!(
                    "grant {}: {} -> {} is not a transition of the state machine",
                    r.grant_id,
                    from.as_str(),
                    r.state.as_str()
                )
                .into());
            }
            let mut conn = self.conn();
            let tx = conn.transaction()?;
            let n = tx.execute(
                "UPDATE grants SET state = ?3, username = ?4, host = ?5, port = ?6, revoked_at = ?7,
                    attempts = attempts + ?8, last_error = ?9, expires_at = ?10,
                    granting_since = ?11, cleanup_due_at = ?12, guest_state = ?13,
                    next_attempt_at = COALESCE(?14, next_attempt_at)
                 WHERE grant_id = ?1 AND state = ?2",
                params![
                    r.grant_id,
                    from.as_str(),
                    r.state.as_str(),
                    r.username,
                    r.host,
                    r.port,
                    r.revoked_at.map(|t| t as i64),
                    i64::from(r.state == State::Revoking),
                    r.last_error,
                    r.expires_at as i64,
                    r.granting_since.map(|t| t as i64),
                    r.cleanup_due_at.map(|t| t as i64),
                    r.guest_state,
                    lease.map(|t| t as i64)
                ],
            )?;
            if n != 1 {
                return Err(LedgerError::Conflict(format!(
                    "grant {} is no longer {} (changed by someone else?)",
                    r.grant_id,
                    from.as_str()
                )));
            }
            append(&tx, event)?;
            tx.commit()?;
            Ok(())
        })
    }

    /// Start extending grant `grant_id`: `active → granting`, only while it has not expired
    /// (`now < expires_at`), so an extension never races the scheduler's revoke. Returns the
    /// record as it now stands.
    pub fn begin_extend(&self, grant_id: &str, now: u64, event: Event) -> Result<GrantRecord> {
        blocking(|| -> Result<GrantRecord> {
            check_grant_id(grant_id)?;
            let mut conn = self.conn();
            let tx = conn.transaction()?;
            let n = tx.execute(
                "UPDATE grants SET state = 'granting', granting_since = ?2
                 WHERE grant_id = ?1 AND state = 'active' AND expires_at > ?2",
                params![grant_id, now as i64],
            )?;
            if n != 1 {
                let state: Option<(String, i64)> = tx
                    .query_row(
                        "SELECT state, expires_at FROM grants WHERE grant_id = ?1",
                        params![grant_id],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()?;
                match state {
                    None => return Err(LedgerError::NotFound(grant_id.to_string())),
                    Some((s, _)) if s != "active" => {
                        return Err(LedgerError::Conflict(format!(
                            "grant {grant_id} is {s}; only an active grant can be extended"
                        )));
                    }
                    Some(_) => {
                        return Err(LedgerError::Conflict(format!(
                            "grant {grant_id} has expired; request a new grant"
                        )));
                    }
                }
            }
            append(&tx, event)?;
            let record = tx.query_row(
                "SELECT * FROM grants WHERE grant_id = ?1",
                params![grant_id],
                grant_of,
            )?;
            tx.commit()?;
            Ok(record)
        })
    }

    /// Revoked grants whose account cleanup is due at `now`, oldest first.
    pub fn cleanup_due(&self, now: u64) -> Result<Vec<GrantRecord>> {
        blocking(|| -> Result<Vec<GrantRecord>> {
            let conn = self.conn();
            let mut stmt = conn.prepare(
                "SELECT * FROM grants
                 WHERE cleaned_up_at IS NULL AND cleanup_due_at <= ?1 AND state = 'revoked'
                 ORDER BY cleanup_due_at",
            )?;
            let rows = stmt.query_map(params![now as i64], grant_of)?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    /// Is another grant of the same account on the same resource still live (granting,
    /// active or revoking)? Then its account must not be deleted.
    pub fn account_in_use(&self, r: &GrantRecord) -> Result<Option<String>> {
        blocking(|| self.account_in_use_now(r))
    }

    fn account_in_use_now(&self, r: &GrantRecord) -> Result<Option<String>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT grant_id FROM grants
                 WHERE integration = ?1 AND resource_id = ?2 AND grant_id != ?3
                   AND state IN ('granting', 'active', 'revoking')
                   AND (username = ?4 OR (username IS NULL AND email = ?5))
                 LIMIT 1",
                params![
                    r.integration,
                    r.resource_id,
                    r.grant_id,
                    r.username,
                    r.email
                ],
                |row| row.get(0),
            )
            .optional()?)
    }

    /// Record the outcome of an account cleanup: done at `done_at`, or (None) retry at `retry_at`.
    pub fn cleanup_done(
        &self,
        grant_id: &str,
        done_at: Option<u64>,
        retry_at: u64,
        event: Event,
    ) -> Result<()> {
        blocking(|| -> Result<()> {
            let mut conn = self.conn();
            let tx = conn.transaction()?;
            match done_at {
                Some(t) => tx.execute(
                    "UPDATE grants SET cleaned_up_at = ?2 WHERE grant_id = ?1",
                    params![grant_id, t as i64],
                )?,
                None => tx.execute(
                    "UPDATE grants SET cleanup_due_at = ?2 WHERE grant_id = ?1",
                    params![grant_id, retry_at as i64],
                )?,
            };
            append(&tx, event)?;
            tx.commit()?;
            Ok(())
        })
    }

    /// Record that a revoke attempt of `r` failed (`r.last_error`); it stays `revoking`.
    pub fn note_failure(&self, r: &GrantRecord, event: Event) -> Result<()> {
        blocking(|| -> Result<()> {
            let mut conn = self.conn();
            let tx = conn.transaction()?;
            tx.execute(
                "UPDATE grants SET last_error = ?2 WHERE grant_id = ?1 AND state = 'revoking'",
                params![r.grant_id, r.last_error],
            )?;
            append(&tx, event)?;
            tx.commit()?;
            Ok(())
        })
    }

    /// Forget a grant refused before anything was carried out, keeping the audit event.
    pub fn discard(&self, grant_id: &str, event: Event) -> Result<()> {
        blocking(|| -> Result<()> {
            let mut conn = self.conn();
            let tx = conn.transaction()?;
            tx.execute(
                "DELETE FROM grants WHERE grant_id = ?1 AND state = 'granting'",
                params![grant_id],
            )?;
            append(&tx, event)?;
            tx.commit()?;
            Ok(())
        })
    }

    /// Append an audit event that changes no grant (e.g. a capability call).
    pub fn audit(&self, event: Event) -> Result<()> {
        self.audit_many(vec![event])
    }

    /// Append several audit events in one transaction (one fsync: a guest call's capability
    /// calls are recorded together).
    pub fn audit_many(&self, events: Vec<Event>) -> Result<()> {
        blocking(|| -> Result<()> {
            if events.is_empty() {
                return Ok(());
            }
            let mut conn = self.conn();
            let tx = conn.transaction()?;
            for event in events {
                append(&tx, event)?;
            }
            tx.commit()?;
            Ok(())
        })
    }

    /// Claim the grants due for a revoke at `now`, in one transaction: `active` ones past
    /// their expiry move to `revoking`, and `revoking` ones whose retry is due are taken again;
    /// each gets its `revoke.requested` record from `event(record)`. Oldest expiry first.
    /// (One fsync for any number of grants: the scheduler's wake-up does not grow with them.)
    pub fn claim_due(
        &self,
        now: u64,
        event: impl Fn(&GrantRecord) -> Event,
    ) -> Result<Vec<GrantRecord>> {
        blocking(|| -> Result<Vec<GrantRecord>> {
            let mut conn = self.conn();
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let due: Vec<GrantRecord> = {
                let mut stmt = tx.prepare(DUE_SQL)?;
                let rows = stmt.query_map(params![now as i64], grant_of)?;
                rows.collect::<rusqlite::Result<_>>()?
            };
            let mut claimed = Vec::with_capacity(due.len());
            for mut g in due {
                tx.execute(
                    "UPDATE grants SET state = 'revoking', attempts = attempts + 1,
                        next_attempt_at = NULL
                     WHERE grant_id = ?1 AND state IN ('active', 'revoking')",
                    params![g.grant_id],
                )?;
                g.state = State::Revoking;
                append(&tx, event(&g))?;
                claimed.push(g);
            }
            tx.commit()?;
            Ok(claimed)
        })
    }

    /// The grant `grant_id`.
    pub fn get(&self, grant_id: &str) -> Result<GrantRecord> {
        blocking(|| -> Result<GrantRecord> {
            check_grant_id(grant_id)?;
            self.conn()
                .query_row(
                    "SELECT * FROM grants WHERE grant_id = ?1",
                    params![grant_id],
                    grant_of,
                )
                .optional()?
                .ok_or_else(|| LedgerError::NotFound(grant_id.to_string()))
        })
    }

    /// Grants that need a revoke now: `active` past their expiry, and `revoking` ones whose
    /// next retry is due. Oldest expiry first. (Read only; the scheduler uses [`Ledger::claim_due`].)
    pub fn due(&self, now: u64) -> Result<Vec<GrantRecord>> {
        blocking(|| -> Result<Vec<GrantRecord>> {
            let conn = self.conn();
            let mut stmt = conn.prepare(DUE_SQL)?;
            let rows = stmt.query_map(params![now as i64], grant_of)?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    /// When grant `grant_id` (stuck in `revoking`) may be retried: `at` (Unix seconds).
    pub fn retry_at(&self, grant_id: &str, at: u64) -> Result<()> {
        blocking(|| -> Result<()> {
            self.conn().execute(
                "UPDATE grants SET next_attempt_at = ?2 WHERE grant_id = ?1 AND state = 'revoking'",
                params![grant_id, at as i64],
            )?;
            Ok(())
        })
    }

    /// The number of revoke attempts made for `grant_id`.
    pub fn attempts(&self, grant_id: &str) -> Result<u32> {
        blocking(|| -> Result<u32> {
            Ok(self.conn().query_row(
                "SELECT attempts FROM grants WHERE grant_id = ?1",
                params![grant_id],
                |r| r.get::<_, i64>(0),
            )? as u32)
        })
    }

    /// Store API token `name` by its sha256 (the token itself is never stored), with its
    /// expiry and scope.
    pub fn add_token(
        &self,
        name: &str,
        sha256: &str,
        expires_at: u64,
        scope: &TokenScope,
        event: Event,
    ) -> Result<()> {
        let scope = serde_json::to_string(scope).map_err(anyhow::Error::from)?;
        blocking(|| -> Result<()> {
            let mut conn = self.conn();
            let tx = conn.transaction()?;
            tx.execute(
                "INSERT INTO tokens (name, sha256, created_at, expires_at, scope)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![name, sha256, now_ms() / 1000, expires_at as i64, scope],
            )
            .with_context(|| format!("a token named {name:?} exists already"))?;
            append(&tx, event)?;
            tx.commit()?;
            Ok(())
        })
    }

    /// The token whose sha256 is `sha256`, if any (expired or revoked ones too: the caller
    /// says why they no longer work).
    pub fn token(&self, sha256: &str) -> Result<Option<TokenRecord>> {
        blocking(|| -> Result<Option<TokenRecord>> {
            Ok(self
                .conn()
                .query_row(
                    "SELECT * FROM tokens WHERE sha256 = ?1",
                    params![sha256],
                    token_of,
                )
                .optional()?)
        })
    }

    /// Every token, oldest first.
    pub fn tokens(&self) -> Result<Vec<TokenRecord>> {
        blocking(|| -> Result<Vec<TokenRecord>> {
            let conn = self.conn();
            let mut q = conn.prepare("SELECT * FROM tokens ORDER BY created_at, name")?;
            let rows = q
                .query_map([], token_of)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
    }

    /// Revoke token `name` now; `false` if it was revoked already. Unknown: not found.
    pub fn revoke_token(&self, name: &str, event: Event) -> Result<bool> {
        blocking(|| -> Result<bool> {
            let mut conn = self.conn();
            let tx = conn.transaction()?;
            let known: Option<Option<i64>> = tx
                .query_row(
                    "SELECT revoked_at FROM tokens WHERE name = ?1",
                    params![name],
                    |r| r.get(0),
                )
                .optional()?;
            match known {
                None => Err(LedgerError::Invalid(format!("no token named {name:?}"))),
                Some(Some(_)) => Ok(false),
                Some(None) => {
                    tx.execute(
                        "UPDATE tokens SET revoked_at = ?2 WHERE name = ?1",
                        params![name, now_ms() / 1000],
                    )?;
                    append(&tx, event)?;
                    tx.commit()?;
                    Ok(true)
                }
            }
        })
    }

    /// Who asked for grant `grant_id` (the actor of its `grant.requested` record).
    pub fn requested_by(&self, grant_id: &str) -> Result<Option<String>> {
        blocking(|| -> Result<Option<String>> {
            Ok(self
                .conn()
                .query_row(
                    "SELECT actor FROM audit WHERE grant_id = ?1 AND event = 'grant.requested'
                     ORDER BY seq LIMIT 1",
                    params![grant_id],
                    |r| r.get(0),
                )
                .optional()?)
        })
    }

    /// Grants per state, and capability calls per outcome (from the audit log).
    pub fn counts(&self) -> Result<(Counts, Counts)> {
        blocking(|| -> Result<(Counts, Counts)> {
            let conn = self.conn();
            let mut by_state = conn.prepare("SELECT state, count(*) FROM grants GROUP BY state")?;
            let states = by_state
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?;
            let mut by_outcome = conn.prepare(
                "SELECT outcome, count(*) FROM audit WHERE event = 'capability' GROUP BY outcome",
            )?;
            let outcomes = by_outcome
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?;
            Ok((states, outcomes))
        })
    }

    /// The largest revoke lag (seconds after expiry) of grants revoked in the last hour.
    pub fn max_revoke_lag(&self, now: u64) -> Result<i64> {
        blocking(|| -> Result<i64> {
            Ok(self.conn().query_row(
                "SELECT COALESCE(MAX(MAX(revoked_at - expires_at, 0)), 0) FROM grants
                 WHERE state = 'revoked' AND revoked_at >= ?1 AND revoked_at >= expires_at",
                params![now as i64 - 3600],
                |r| r.get(0),
            )?)
        })
    }

    /// Grants, newest first, optionally only those in `state`.
    pub fn list(&self, state: Option<State>) -> Result<Vec<GrantRecord>> {
        blocking(|| -> Result<Vec<GrantRecord>> {
            let conn = self.conn();
            let mut stmt = conn.prepare(
                "SELECT * FROM grants WHERE (?1 IS NULL OR state = ?1) ORDER BY created_at DESC, grant_id",
            )?;
            let rows = stmt.query_map(params![state.map(State::as_str)], grant_of)?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    /// The last `n` audit records, oldest first.
    pub fn audit_tail(&self, n: usize) -> Result<Vec<Record>> {
        blocking(|| -> Result<Vec<Record>> {
            let conn = self.conn();
            let mut stmt = conn.prepare(
                "SELECT * FROM (SELECT * FROM audit ORDER BY seq DESC LIMIT ?1) ORDER BY seq",
            )?;
            let rows = stmt.query_map(params![n as i64], record_of)?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    /// Up to `limit` audit records after `seq`, in order.
    pub fn audit_after(&self, seq: i64, limit: usize) -> Result<Vec<Record>> {
        blocking(|| -> Result<Vec<Record>> {
            let conn = self.conn();
            let mut stmt =
                conn.prepare("SELECT * FROM audit WHERE seq > ?1 ORDER BY seq LIMIT ?2")?;
            let rows = stmt.query_map(params![seq, limit as i64], record_of)?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    /// Every audit record, in order.
    pub fn audit_all(&self) -> Result<Vec<Record>> {
        self.audit_after(0, usize::MAX >> 1)
    }

    /// Verify the whole audit chain: `Ok(Ok(n))` when intact, `Ok(Err(first break))` if not.
    pub fn audit_verify(&self) -> Result<std::result::Result<u64, Broken>> {
        Ok(audit::verify(self.audit_all()?))
    }
}

/// Append `event` to the chain inside transaction `tx`.
pub(crate) fn append(tx: &rusqlite::Transaction<'_>, event: Event) -> Result<()> {
    let last: Option<(i64, String)> = tx
        .query_row(
            "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let r = Record::next(
        last.as_ref().map(|(s, h)| (*s, h.as_str())),
        now_ms(),
        event,
    );
    tx.execute(
        "INSERT INTO audit (seq, time, actor, event, grant_id, integration, guest_sha256, target,
            detail, outcome, prev_hash, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        params![
            r.seq,
            r.time,
            r.actor,
            r.event,
            r.grant_id,
            r.integration,
            r.guest_sha256,
            r.target,
            r.detail.to_string(),
            r.outcome,
            r.prev_hash,
            r.hash
        ],
    )?;
    Ok(())
}

fn token_of(row: &Row<'_>) -> rusqlite::Result<TokenRecord> {
    let scope: Option<String> = row.get("scope")?;
    Ok(TokenRecord {
        name: row.get("name")?,
        created_at: row.get::<_, i64>("created_at")? as u64,
        expires_at: row.get::<_, Option<i64>>("expires_at")?.unwrap_or(0) as u64,
        revoked_at: row.get::<_, Option<i64>>("revoked_at")?.map(|t| t as u64),
        // A scope that does not parse grants nothing.
        scope: scope
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or_default(),
    })
}

fn grant_of(row: &Row<'_>) -> rusqlite::Result<GrantRecord> {
    let state: String = row.get("state")?;
    Ok(GrantRecord {
        grant_id: row.get("grant_id")?,
        integration: row.get("integration")?,
        resource_id: row.get("resource_id")?,
        permission: row.get("permission")?,
        email: row.get("email")?,
        requested_username: row.get("requested_username")?,
        public_key: row.get("public_key")?,
        created_at: row.get::<_, i64>("created_at")? as u64,
        expires_at: row.get::<_, i64>("expires_at")? as u64,
        state: State::parse(&state).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, e.into())
        })?,
        username: row.get("username")?,
        host: row.get("host")?,
        port: row.get("port")?,
        revoked_at: row.get::<_, Option<i64>>("revoked_at")?.map(|t| t as u64),
        last_error: row.get("last_error")?,
        guest_sha256: row.get("guest_sha256")?,
        granting_since: row
            .get::<_, Option<i64>>("granting_since")?
            .map(|t| t as u64),
        cleanup_due_at: row
            .get::<_, Option<i64>>("cleanup_due_at")?
            .map(|t| t as u64),
        cleaned_up_at: row
            .get::<_, Option<i64>>("cleaned_up_at")?
            .map(|t| t as u64),
        guest_state: row.get("guest_state")?,
    })
}

fn record_of(row: &Row<'_>) -> rusqlite::Result<Record> {
    let detail: String = row.get("detail")?;
    Ok(Record {
        seq: row.get("seq")?,
        time: row.get("time")?,
        actor: row.get("actor")?,
        event: row.get("event")?,
        grant_id: row.get("grant_id")?,
        integration: row.get("integration")?,
        guest_sha256: row.get("guest_sha256")?,
        target: row.get("target")?,
        // Unparsable detail is kept as a string, so verify reports the hash mismatch.
        detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::String(detail)),
        outcome: row.get("outcome")?,
        prev_hash: row.get("prev_hash")?,
        hash: row.get("hash")?,
    })
}
