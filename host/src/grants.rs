//! Grant records: one JSON file per grant under `data_dir/grants/`, written before any
//! remote action and updated at each step.
//!
//! Interim storage until the SQLite ledger (state machine, scheduler, audit chain) replaces
//! it; the record's fields are the ledger's. Files are created with O_EXCL and mode 0600 and
//! replaced atomically (write, fsync, rename). A record holds no secret: the public key and
//! certificate are public, the generated private key is never stored.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

/// Where a grant is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Recorded; the guest's grant is running.
    Granting,
    /// Access is in place until `expires_at`.
    Active,
    /// The guest's revoke is running.
    Revoking,
    /// Access was taken away.
    Revoked,
    /// The grant failed (and was rolled back as far as the guest's revoke could).
    Failed,
}

/// One grant.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantRecord {
    pub grant_id: String,
    pub integration: String,
    pub resource_id: String,
    pub permission: String,
    pub email: String,
    /// The account name asked for, if any (else derived by the guest).
    pub requested_username: Option<String>,
    pub public_key: String,
    pub created_at: u64,
    pub expires_at: u64,
    pub state: State,
    /// Filled once granted.
    pub username: Option<String>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub revoked_at: Option<u64>,
    pub last_error: Option<String>,
    /// sha256 of the guest that granted it.
    pub guest_sha256: String,
}

/// The directory of grant records.
pub struct GrantStore {
    dir: PathBuf,
}

/// Grant ids are `g-` and 24 hex digits; nothing else names a file here.
pub fn check_grant_id(id: &str) -> anyhow::Result<()> {
    let ok = id.len() == 26
        && id.starts_with("g-")
        && id[2..]
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
    if !ok {
        bail!(
            "{:?} is not a grant id (g- and 24 hex digits)",
            id.chars().take(64).collect::<String>()
        );
    }
    Ok(())
}

/// A new random grant id.
pub fn new_grant_id() -> String {
    let bytes: [u8; 12] = rand::random();
    format!("g-{}", hex::encode(bytes))
}

impl GrantStore {
    /// The store under `data_dir/grants` (created, mode 0700, if missing).
    pub fn open(data_dir: &Path) -> anyhow::Result<GrantStore> {
        let dir = data_dir.join("grants");
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
        Ok(GrantStore { dir })
    }

    fn path(&self, id: &str) -> anyhow::Result<PathBuf> {
        check_grant_id(id)?;
        Ok(self.dir.join(format!("{id}.json")))
    }

    /// Record a new grant; fails if the id exists.
    pub fn create(&self, record: &GrantRecord) -> anyhow::Result<()> {
        let path = self.path(&record.grant_id)?;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        f.write_all(&serde_json::to_vec_pretty(record)?)?;
        f.sync_all()?;
        Ok(())
    }

    /// Replace a grant's record atomically.
    pub fn update(&self, record: &GrantRecord) -> anyhow::Result<()> {
        let path = self.path(&record.grant_id)?;
        let tmp = self.dir.join(format!(".{}.tmp", record.grant_id));
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&serde_json::to_vec_pretty(record)?)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        Ok(())
    }

    /// Forget grant `id` (only for a grant refused before anything was carried out).
    pub fn remove(&self, id: &str) -> anyhow::Result<()> {
        std::fs::remove_file(self.path(id)?)?;
        Ok(())
    }

    /// The record of grant `id`.
    pub fn get(&self, id: &str) -> anyhow::Result<GrantRecord> {
        let path = self.path(id)?;
        let bytes = std::fs::read(&path)
            .with_context(|| format!("no grant {id} in {}", self.dir.display()))?;
        serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is not a grant record", path.display()))
    }
}
