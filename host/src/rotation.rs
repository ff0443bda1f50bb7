//! Credential rotation (`credential_rotation_days`): the service account's SSH key pair.
//!
//! What rotates, for SSH: the one long-lived credential Latch holds — the private key it logs
//! in to every server with (`[integration.ssh] key_secret`). User certificates need no
//! rotation: each is issued per grant and expires with it (an extension issues a new one).
//!
//! Defends against a stolen or leaked service key staying useful forever, without ever
//! risking the connector's own access. In order, each step idempotent, resumable from the
//! files alone after a crash:
//! 1. a new Ed25519 key pair is generated in the host and written as `NAME.next` (0600);
//! 2. the guest's `add-service-key` authorizes its public key on every resource, beside the
//!    current one;
//! 3. the host logs in with the new key to every server those calls reached, on fresh
//!    connections — if any refuses it, rotation stops here and the current key stays in use;
//! 4. the current key is kept as `NAME.retiring`, and `NAME.next` is renamed over `NAME`
//!    (atomically: every later connection uses the new key);
//! 5. the guest's `remove-service-key` removes the old public key everywhere (it refuses to
//!    remove a last key); then `NAME.retiring` is deleted.
//!
//! A rotation is due when the key file is older than the period (its mtime is when it was
//! last rotated or installed), or when a `.next`/`.retiring` file shows one was interrupted.
//! Only a key stored as a file in the secrets directory can be rotated (an environment
//! variable cannot be rewritten); such integrations are reported, not rotated.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::caps::SecretStore;
use crate::caps::certs::ca::generate_key_pair;
use crate::caps::ssh::client::{check_login, service_public_key};
use crate::config::IntegrationConfig;
use crate::connector::Connector;
use crate::ledger::{Event, Ledger};
use crate::runtime::{CallReport, Export, ServiceCredential};
use crate::service;

/// What a rotation did.
#[derive(Debug, serde::Serialize)]
pub struct Rotated {
    pub integration: String,
    /// SHA256 fingerprints (public).
    pub old_fingerprint: String,
    pub new_fingerprint: String,
    pub resources: usize,
    pub servers_checked: usize,
}

/// The files of one integration's service key.
struct KeyFiles {
    name: String,
    current: PathBuf,
    next: PathBuf,
    retiring: PathBuf,
}

impl KeyFiles {
    fn of(ic: &IntegrationConfig, secrets_dir: &Path) -> anyhow::Result<KeyFiles> {
        let ssh = ic
            .ssh
            .as_ref()
            .with_context(|| format!("integration {:?} has no [integration.ssh]", ic.name))?;
        let name = ssh.key_secret.clone();
        Ok(KeyFiles {
            current: secrets_dir.join(&name),
            next: secrets_dir.join(format!("{name}.next")),
            retiring: secrets_dir.join(format!("{name}.retiring")),
            name,
        })
    }
}

/// Is a rotation of `ic` due now (or one to finish)?
pub fn due(ic: &IntegrationConfig, secrets_dir: &Path) -> bool {
    let (Some(days), Ok(files)) = (
        ic.lifecycle.rotate_after_days,
        KeyFiles::of(ic, secrets_dir),
    ) else {
        return false;
    };
    if files.next.exists() || files.retiring.exists() {
        return true;
    }
    let Ok(modified) = std::fs::metadata(&files.current).and_then(|m| m.modified()) else {
        return false; // not a file: reported by `rotate`, not retried every tick
    };
    let age = std::time::SystemTime::now()
        .duration_since(modified)
        .unwrap_or_default()
        .as_secs();
    age >= u64::from(days) * 86_400
}

/// Rotate (or finish rotating) the service key of `integration`; see the module docs.
pub async fn rotate(
    connector: &Connector,
    ledger: &Ledger,
    secrets_dir: &Path,
    integration: &str,
    actor: &str,
) -> anyhow::Result<Rotated> {
    let result = run(connector, ledger, secrets_dir, integration, actor).await;
    let (guest_sha256, name) = match connector.integration(integration) {
        Ok((i, ic)) => (Some(i.guest().sha256().to_string()), Some(ic.name.clone())),
        Err(_) => (None, None),
    };
    let (outcome, detail) = match &result {
        Ok(r) => ("ok", serde_json::to_value(r)?),
        Err(e) => ("failed", serde_json::json!({ "error": format!("{e:#}") })),
    };
    ledger.audit(Event {
        actor: actor.into(),
        event: "credential.rotation".into(),
        integration: name,
        guest_sha256,
        detail,
        outcome: outcome.into(),
        ..Event::default()
    })?;
    result
}

async fn run(
    connector: &Connector,
    ledger: &Ledger,
    secrets_dir: &Path,
    integration_name: &str,
    actor: &str,
) -> anyhow::Result<Rotated> {
    let (integration, ic) = connector.integration(integration_name)?;
    let files = KeyFiles::of(ic, secrets_dir)?;
    let settings = ic.ssh.as_ref().expect("checked by KeyFiles::of");
    if !files.current.is_file() {
        bail!(
            "the service key {:?} is not a file in {} (an environment variable cannot be \
             rotated); store it as a file to rotate it",
            files.name,
            secrets_dir.display()
        );
    }
    let store = SecretStore::new(Some(secrets_dir), None).map_err(anyhow::Error::msg)?;
    let public = |name: &str| service_public_key(&store, name).map_err(|e| anyhow::anyhow!("{e}"));
    let resources: Vec<String> = service::resources(connector, integration_name)
        .await?
        .into_iter()
        .map(|r| r.id)
        .collect();
    let base = Event {
        actor: actor.into(),
        event: "capability".into(),
        integration: Some(ic.name.clone()),
        guest_sha256: Some(integration.guest().sha256().to_string()),
        ..Event::default()
    };
    let call = |export: Export| async {
        let report: CallReport = integration.call(connector.runtime(), export).await;
        service::audit_report(ledger, &base, &report)?;
        report.result.as_ref().map_err(|e| anyhow::anyhow!("{e}"))?;
        anyhow::Ok(report)
    };

    let mut checked = 0;
    let (old_public, new_public) = if files.next.exists() || !files.retiring.exists() {
        // Steps 1–4.
        if !files.next.exists() {
            let (private, _) = generate_key_pair(&format!("latch-service-{}", ic.name))
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            write_private(&files.next, private.expose())?;
        }
        let next_name = format!("{}.next", files.name);
        let new_public = public(&next_name)?;
        let old_public = public(&files.name)?;
        let mut servers = BTreeSet::new();
        for id in &resources {
            let report = call(Export::AddServiceCredential {
                config: ic.config_json.clone(),
                resource_id: id.clone(),
                credential: ServiceCredential::SshKey(new_public.clone()),
            })
            .await
            .with_context(|| format!("authorizing the new key on {id}"))?;
            for r in &report.records {
                if let Some(exec) = r.call.get::<crate::caps::ssh::Exec>() {
                    servers.insert(exec.target.clone());
                }
            }
        }
        for target in &servers {
            let Some(user) = target.user.as_deref().or(settings.default_user.as_deref()) else {
                bail!("{target} names no account and the integration has no service user");
            };
            check_login(settings, &store, &next_name, target, user)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))
                .with_context(|| {
                    format!("{target} does not accept the new key; the current key stays in use")
                })?;
        }
        checked = servers.len();
        write_private(&files.retiring, &std::fs::read(&files.current)?)?;
        std::fs::rename(&files.next, &files.current)
            .with_context(|| format!("cannot move {} into place", files.next.display()))?;
        // The key file's age is the key's age: the next rotation counts from now.
        let current = std::fs::File::options().write(true).open(&files.current)?;
        current.set_modified(std::time::SystemTime::now())?;
        current.sync_all()?;
        // The rename must be on disk before the old key is removed from any server: after a
        // power cut, the connector must come back with a key the servers still accept.
        sync_dir(&files.current)?;
        (old_public, new_public)
    } else {
        // Interrupted after the switch: only step 5 is left.
        let retiring = format!("{}.retiring", files.name);
        (public(&retiring)?, public(&files.name)?)
    };
    if old_public != new_public {
        for id in &resources {
            call(Export::RemoveServiceCredential {
                config: ic.config_json.clone(),
                resource_id: id.clone(),
                credential: ServiceCredential::SshKey(old_public.clone()),
            })
            .await
            .with_context(|| format!("removing the old key on {id}"))?;
        }
    }
    std::fs::remove_file(&files.retiring)
        .with_context(|| format!("cannot delete {}", files.retiring.display()))?;
    sync_dir(&files.retiring)?;
    let fingerprint = |line: &str| {
        ssh_key::PublicKey::from_openssh(line)
            .map(|k| k.fingerprint(ssh_key::HashAlg::Sha256).to_string())
            .unwrap_or_default()
    };
    Ok(Rotated {
        integration: ic.name.clone(),
        old_fingerprint: fingerprint(&old_public),
        new_fingerprint: fingerprint(&new_public),
        resources: resources.len(),
        servers_checked: checked,
    })
}

/// Make `path` hold `bytes`, mode 0600 from its creation, atomically and durably: written to
/// `path.tmp` (a leftover from a crash is replaced), synced, renamed over `path`, and the
/// directory synced. A crash leaves the old file or the new one, never a partial key that a
/// resumed rotation would then trust.
fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    match std::fs::remove_file(&tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e).with_context(|| format!("cannot remove {}", tmp.display()));
        }
        _ => {}
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("cannot create {}", tmp.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)
        .with_context(|| format!("cannot move {} into place", tmp.display()))?;
    sync_dir(path)
}

/// fsync the directory holding `path`, so renames and deletions in it are durable.
fn sync_dir(path: &Path) -> anyhow::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("cannot sync directory {}", dir.display()))
}
