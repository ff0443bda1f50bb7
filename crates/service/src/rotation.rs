//! Credential rotation (`credential_rotation_days`): the service account's SSH key pair, or
//! its password (integrations that log in over WinRM or LDAP; see [`run_password`]).
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
//! 3. the host logs in with the new key to every server of every resource, on fresh
//!    connections — if any refuses it, rotation stops here and the current key stays in use;
//! 4. the current key is kept as `NAME.retiring`, and `NAME.next` is renamed over `NAME`
//!    (atomically: every later connection uses the new key);
//! 5. the guest's `remove-service-key` removes the old public key everywhere (it refuses to
//!    remove a last key); then `NAME.retiring` is deleted.
//!
//! "Every server of every resource" is what grants reach, not only what the guest's
//! `add-service-credential` says: before anything changes, a **plan** of a grant on each
//! resource names the servers grants act on, and a plan of `add-service-credential` must
//! reach each of them (else the rotation is refused, nothing changed, every secret as it
//! was: a guest that forgets a server would lock the connector out of it). A resource whose
//! plans name no server is refused too: a rotation never "succeeds" on no server.
//!
//! Rotation rewrites only the secret `latch.toml` lends this integration as its service
//! credential, and only while no other integration uses that secret: it is never a guest's
//! choice which secret is rewritten.
//!
//! A rotation is due when the key file is older than the period (its mtime is when it was
//! last rotated or installed), or when a `.next`/`.retiring` file shows one was interrupted.
//! Only a key stored as a file in the secrets directory can be rotated (an environment
//! variable cannot be rewritten); such integrations are reported, not rotated.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate as service;
use crate::Transport;
use crate::connector::Connector;
use latch_caps::SecretStore;
use latch_caps::Target;
use latch_caps::certs::ca::generate_key_pair;
use latch_caps::login::{Logins, Proof, Takes};
use latch_caps::ssh::client::service_public_key;
use latch_config::IntegrationConfig;
use latch_ledger::{Event, Ledger};
use latch_runtime::{CallOptions, CallReport, CallSecrets, Export, ServiceCredential};

/// What a rotation did.
#[derive(Debug, serde::Serialize)]
pub struct Rotated {
    pub integration: String,
    /// `ssh-key` or `password`.
    pub credential: &'static str,
    /// SHA256 fingerprints of the keys (public); none for a password.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old_fingerprint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_fingerprint: Option<String>,
    pub resources: usize,
    pub servers_checked: usize,
}

/// The files of one integration's service key.
struct KeyFiles {
    /// A key or a password, as the integration's service logins take it.
    takes: Takes,
    name: String,
    current: PathBuf,
    next: PathBuf,
    retiring: PathBuf,
}

impl KeyFiles {
    fn of(ic: &IntegrationConfig, secrets_dir: &Path) -> anyhow::Result<KeyFiles> {
        let (takes, name) = credential_of(ic, secrets_dir)?;
        Ok(KeyFiles {
            takes,
            current: secrets_dir.join(&name),
            next: secrets_dir.join(format!("{name}.next")),
            retiring: secrets_dir.join(format!("{name}.retiring")),
            name,
        })
    }
}

/// What an integration's service account logs in with, as its capabilities' service logins
/// say (no transport is named here): a key, if a login takes one (the secret it names);
/// else the one password its password logins name — two different ones are refused, as
/// rotation changes one account's password.
fn credential_of(ic: &IntegrationConfig, secrets_dir: &Path) -> anyhow::Result<(Takes, String)> {
    let store =
        std::sync::Arc::new(SecretStore::new(Some(secrets_dir), None).map_err(anyhow::Error::msg)?);
    let logins = ic.service_logins(&store);
    let named = |takes: Takes| -> Vec<(&str, &str)> {
        logins
            .iter()
            .filter(|(_, l)| l.takes() == takes)
            .filter_map(|(name, l)| l.secret().map(|s| (*name, s)))
            .collect()
    };
    for takes in [Takes::Key, Takes::Password] {
        let found = named(takes);
        match found.as_slice() {
            [] => continue,
            [(_, secret), rest @ ..] if rest.iter().all(|(_, s)| s == secret) => {
                return Ok((takes, secret.to_string()));
            }
            [(a, x), rest @ ..] => {
                let (b, y) = rest.iter().find(|(_, s)| s != x).expect("one differs");
                bail!(
                    "integration {:?} logs in with two service credentials ([integration.{a}] \
                     {x:?} and [integration.{b}] {y:?}); rotation changes one service \
                     account's credential: name one secret in both tables",
                    ic.name
                );
            }
        }
    }
    bail!(
        "integration {:?} has no service credential to rotate (no service key, no password \
         secret in any table it logs in with)",
        ic.name
    )
}

/// Refuse to rotate `name` unless `ic` alone uses it: a secret another integration logs in
/// with (or the host holds for itself) would be rewritten under that integration's feet.
fn check_owned(connector: &Connector, ic: &IntegrationConfig, name: &str) -> anyhow::Result<()> {
    if latch_caps::secrets::same_secret(name, latch_caps::certs::ca::CA_SECRET) {
        bail!("secret {name:?} is the user CA's key, not a service credential; refusing");
    }
    for (_, other) in connector.integrations() {
        if other.name == ic.name {
            continue;
        }
        if let Some((field, _)) = other
            .service_secrets()
            .into_iter()
            .find(|(_, s)| latch_caps::secrets::same_secret(s, name))
        {
            bail!(
                "secret {name:?} is also integration {:?}'s service credential ({field}); \
                 rotating it for {:?} would lock {:?} out. Give each integration a secret of \
                 its own to rotate it",
                other.name,
                ic.name,
                other.name
            );
        }
    }
    Ok(())
}

/// A rotation stopped before anything changed on any server: forget the `.next` it made
/// (`fresh`), so the secrets are as they were, and hand back the error.
fn unchanged(fresh: bool, next: &std::path::Path, e: anyhow::Error) -> anyhow::Error {
    if fresh {
        let _ = std::fs::remove_file(next);
    }
    e
}

/// The servers of resource `r` that must accept the new credential before the switch:
/// where grants act (a plan of a grant) and where the guest's `add-service-credential` acts
/// (`plan_add`, a plan of it) — refused, before any change, if the latter misses one of the
/// former, or if both name none.
async fn servers_to_prove(
    connector: &Connector,
    ic: &IntegrationConfig,
    r: &latch_runtime::Resource,
    transports: &[Transport],
    plan_add: &CallReport,
) -> anyhow::Result<BTreeSet<(Transport, Target)>> {
    let granted: BTreeSet<_> = service::servers_of(connector, ic, r)
        .await
        .map_err(anyhow::Error::msg)
        .with_context(|| format!("finding the servers of {}", r.id))?
        .into_iter()
        .filter(|(t, _)| transports.contains(t))
        .collect();
    let added: BTreeSet<_> = plan_add
        .records
        .iter()
        .filter_map(service::login_of)
        .filter(|(t, _)| transports.contains(t))
        .collect();
    let missed: Vec<String> = granted
        .difference(&added)
        .map(|(_, t)| t.to_string())
        .collect();
    if !missed.is_empty() {
        bail!(
            "the guest's add-service-credential for {} would not reach {} where grants act: \
             rotation refused before any change (the current credential stays in use \
             everywhere)",
            r.id,
            missed.join(", ")
        );
    }
    if added.is_empty() {
        bail!(
            "neither a grant nor add-service-credential of {} reaches a server: nothing would \
             prove the new credential; rotation refused before any change",
            r.id
        );
    }
    Ok(added)
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
    check_owned(connector, ic, &files.name)?;
    if !files.current.is_file() {
        bail!(
            "the service credential {:?} is not a file in {} (an environment variable cannot \
             be rotated); store it as a file to rotate it",
            files.name,
            secrets_dir.display()
        );
    }
    if files.takes == Takes::Password {
        return run_password(
            connector,
            ledger,
            secrets_dir,
            integration_name,
            actor,
            &files,
        )
        .await;
    }
    let store =
        std::sync::Arc::new(SecretStore::new(Some(secrets_dir), None).map_err(anyhow::Error::msg)?);
    let public = |name: &str| service_public_key(&store, name).map_err(|e| anyhow::anyhow!("{e}"));
    let logins = ic.service_logins(&store);
    let key_logins = taking(&logins, Takes::Key);
    let resources = service::resources(connector, integration_name).await?;
    let base = Event {
        actor: actor.into(),
        event: "capability".into(),
        integration: Some(ic.name.clone()),
        guest_sha256: Some(integration.guest().sha256().to_string()),
        ..Event::default()
    };
    let base = &base;
    let call = |export: Export, plan: bool| async move {
        let options = CallOptions {
            plan,
            ..CallOptions::default()
        };
        let report: CallReport = integration
            .call_with(connector.runtime(), export, options)
            .await;
        service::audit_report(ledger, base, &report)?;
        report.result.as_ref().map_err(|e| anyhow::anyhow!("{e}"))?;
        anyhow::Ok(report)
    };
    let add = |id: &str, key: &str| Export::AddServiceCredential {
        config: ic.config_json.clone(),
        resource_id: id.to_string(),
        credential: ServiceCredential::SshKey(key.to_string()),
    };

    let mut checked = 0;
    let (old_public, new_public) = if files.next.exists() || !files.retiring.exists() {
        // Steps 1–4.
        let fresh = !files.next.exists();
        if fresh {
            let (private, _) = generate_key_pair(&format!("latch-service-{}", ic.name))
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            write_private(&files.next, private.expose())?;
        }
        let next_name = format!("{}.next", files.name);
        let new_public = public(&next_name)?;
        let old_public = public(&files.name)?;
        let mut proving = Vec::new();
        for r in &resources {
            let servers = async {
                let plan = call(add(&r.id, &new_public), true)
                    .await
                    .with_context(|| format!("planning the new key on {}", r.id))?;
                servers_to_prove(connector, ic, r, &key_logins, &plan).await
            };
            match servers.await {
                Ok(s) => proving.push((r.id.clone(), s)),
                Err(e) => return Err(unchanged(fresh, &files.next, e)),
            }
        }
        let mut servers = BTreeSet::new();
        for (id, to_prove) in proving {
            let report = call(add(&id, &new_public), false)
                .await
                .with_context(|| format!("authorizing the new key on {id}"))?;
            servers.extend(to_prove);
            servers.extend(
                report
                    .records
                    .iter()
                    .filter_map(service::login_of)
                    .filter(|(t, _)| key_logins.contains(t)),
            );
        }
        for (login, target) in &servers {
            prove(&logins, login, target, Proof::KeySecret(&next_name))
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
        for r in &resources {
            call(
                Export::RemoveServiceCredential {
                    config: ic.config_json.clone(),
                    resource_id: r.id.clone(),
                    credential: ServiceCredential::SshKey(old_public.clone()),
                },
                false,
            )
            .await
            .with_context(|| format!("removing the old key on {}", r.id))?;
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
        credential: "ssh-key",
        old_fingerprint: Some(fingerprint(&old_public)),
        new_fingerprint: Some(fingerprint(&new_public)),
        resources: resources.len(),
        servers_checked: checked,
    })
}

/// Rotate (or finish rotating) a service **password**. One password has no "beside the
/// current one" as keys have, so each step is checked against the servers themselves:
/// 1. a new password (`[integration.password]` rules) is generated and written as
///    `NAME.next` (0600); a resumed rotation keeps the one it finds;
/// 2. for each resource, a **plan** of a grant names the servers grants act on and a plan of
///    the guest's `add-service-credential` the servers it would set the password on, nothing
///    changed; the latter must cover the former (else refused, `NAME.next` removed if this
///    attempt made it: every secret as it was); a server that already accepts `NAME.next`
///    (a rotation interrupted after setting it) is skipped; otherwise the guest sets the
///    password (`secret-ref::new-service-password`) logged in with the current one;
/// 3. the host logs in with `NAME.next` on fresh connections to every server (WinRM:
///    authenticated and a shell opened; LDAP: a bind); if one refuses, rotation stops and
///    `NAME.next` stays for the next attempt;
/// 4. `NAME.next` is renamed over `NAME` (atomically, synced): later logins use it. The old
///    password is gone; it was never logged or recorded.
async fn run_password(
    connector: &Connector,
    ledger: &Ledger,
    secrets_dir: &Path,
    integration_name: &str,
    actor: &str,
    files: &KeyFiles,
) -> anyhow::Result<Rotated> {
    let (integration, ic) = connector.integration(integration_name)?;
    let fresh = !files.next.exists();
    if fresh {
        let password = service::credentials::password(&ic.password);
        write_private(&files.next, password.expose())?;
    }
    let store =
        std::sync::Arc::new(SecretStore::new(Some(secrets_dir), None).map_err(anyhow::Error::msg)?);
    let next = store
        .get(&format!("{}.next", files.name))
        .map_err(anyhow::Error::msg)?
        .context("the new password file vanished")?;
    let logins = ic.service_logins(&store);
    let password_logins = taking(&logins, Takes::Password);
    let resources = service::resources(connector, integration_name).await?;
    let base = Event {
        actor: actor.into(),
        event: "capability".into(),
        integration: Some(ic.name.clone()),
        guest_sha256: Some(integration.guest().sha256().to_string()),
        ..Event::default()
    };
    let (base, next_ref) = (&base, &next);
    let call = |export: Export, plan: bool| {
        let next = next_ref;
        let options = CallOptions {
            secrets: CallSecrets {
                grant_password: None,
                new_service_password: Some(next.clone()),
            },
            plan,
        };
        async move {
            let report: CallReport = integration
                .call_with(connector.runtime(), export, options)
                .await;
            service::audit_report(ledger, base, &report)?;
            report.result.as_ref().map_err(|e| anyhow::anyhow!("{e}"))?;
            anyhow::Ok(report)
        }
    };
    let add = |id: &str| Export::AddServiceCredential {
        config: ic.config_json.clone(),
        resource_id: id.to_string(),
        credential: ServiceCredential::Password,
    };
    let mut proving = Vec::new();
    for r in &resources {
        let servers = async {
            let plan = call(add(&r.id), true)
                .await
                .with_context(|| format!("planning the new password on {}", r.id))?;
            servers_to_prove(connector, ic, r, &password_logins, &plan).await
        };
        match servers.await {
            Ok(s) => proving.push((r.id.clone(), s)),
            Err(e) => return Err(unchanged(fresh, &files.next, e)),
        }
    }
    let mut checked = BTreeSet::new();
    for (id, servers) in proving {
        let mut done = true;
        for server in &servers {
            done &= prove(&logins, server.0, &server.1, Proof::Password(&next))
                .await
                .is_ok();
        }
        if !done {
            call(add(&id), false)
                .await
                .with_context(|| format!("setting the new password on {id}"))?;
            for server in &servers {
                prove(&logins, server.0, &server.1, Proof::Password(&next))
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))
                    .with_context(|| {
                        format!(
                            "{} does not accept the new password; the current one stays in use \
                             and the new one is kept for the next attempt",
                            server.1
                        )
                    })?;
            }
        }
        checked.extend(servers);
    }
    std::fs::rename(&files.next, &files.current)
        .with_context(|| format!("cannot move {} into place", files.next.display()))?;
    let current = std::fs::File::options().write(true).open(&files.current)?;
    current.set_modified(std::time::SystemTime::now())?;
    current.sync_all()?;
    sync_dir(&files.current)?;
    Ok(Rotated {
        integration: ic.name.clone(),
        credential: "password",
        old_fingerprint: None,
        new_fingerprint: None,
        resources: resources.len(),
        servers_checked: checked.len(),
    })
}

/// The names of the logins that take `kind` of credential.
fn taking(logins: &Logins, kind: Takes) -> Vec<Transport> {
    logins
        .iter()
        .filter(|(_, l)| l.takes() == kind)
        .map(|(name, _)| *name)
        .collect()
}

/// Log in to `target` as the integration's service account with `proof` through its
/// capability's login `login`, on a fresh connection, running nothing.
async fn prove(
    logins: &Logins,
    login: &str,
    target: &Target,
    proof: Proof<'_>,
) -> Result<(), String> {
    let Some(l) = logins.get(login) else {
        return Err(format!("the integration has no {login} login"));
    };
    l.prove(target, proof).await.map_err(|e| e.to_string())
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
