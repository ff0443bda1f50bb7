//! The connector: a runtime and the integrations of one `latch.toml`, pins verified.
//!
//! Starting a connector is where the "pin by hash" promise is kept: each guest file is read
//! once, hashed, and refused unless the hash is the one `latch.toml` pins; only the bytes
//! that were hashed are compiled.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{Context, bail};

use latch_caps::{Backend, SecretStore, Unavailable, registry};
use latch_config::{Config, IntegrationConfig};
use latch_runtime::{
    Export, Guest, Integration, Lifecycle, Metadata, Returned, Runtime, sha256_hex,
};

type ResourceLock = Arc<tokio::sync::Mutex<()>>;

/// A runtime with every integration of a configuration loaded.
pub struct Connector {
    runtime: Runtime,
    integrations: BTreeMap<String, (Integration, IntegrationConfig)>,
    /// One lock per (integration, resource): see [`Connector::lock_resource`].
    resource_locks: std::sync::Mutex<BTreeMap<(String, String), ResourceLock>>,
}

impl Connector {
    /// Load every integration of `config`, verifying pins, with capabilities carried out by
    /// `backend`.
    pub fn start(config: &Config, backend: Arc<dyn Backend>) -> anyhow::Result<Connector> {
        Connector::start_with(config, |_| Ok(backend))
    }

    /// Load every integration of `config`, verifying pins; ask each guest what it is
    /// (`describe`) and what its configuration means for the host (`validate`), so a bad
    /// config stops the start; then carry out capabilities with the backend `make` builds
    /// from the integrations as their guests described them.
    pub fn start_with(
        config: &Config,
        make: impl FnOnce(&[IntegrationConfig]) -> anyhow::Result<Arc<dyn Backend>>,
    ) -> anyhow::Result<Connector> {
        let runtime = Runtime::new(config.runtime)?;
        let mut loaded = Vec::new();
        for ic in &config.integrations {
            let guest = Arc::new(
                load_pinned(&runtime, ic, Some(&config.data_dir.join("cache")))
                    .with_context(|| format!("integration {:?}", ic.name))?,
            );
            let mut ic = ic.clone();
            let (metadata, lifecycle) = ask_guest(&runtime, &guest, &ic)
                .with_context(|| format!("integration {:?}", ic.name))?;
            ic.apply(lifecycle, metadata.credential)
                .with_context(|| format!("integration {:?}", ic.name))?;
            loaded.push((guest, ic));
        }
        let configs: Vec<IntegrationConfig> = loaded.iter().map(|(_, ic)| ic.clone()).collect();
        let backend = make(&configs)?;
        let mut integrations = BTreeMap::new();
        for (guest, ic) in loaded {
            let integration = Integration::new(
                &ic.name,
                guest,
                ic.policy.clone(),
                backend.clone(),
                ic.limits,
            );
            integrations.insert(ic.name.clone(), (integration, ic));
        }
        Ok(Connector {
            runtime,
            integrations,
            resource_locks: Default::default(),
        })
    }

    /// Serialize the work on one resource: grants, revokes and extensions of the same server
    /// edit the same files there (the KRL is updated on a copy that is moved into place, so
    /// two revokes at once would lose one's entry). Different servers proceed in parallel.
    /// This holds within one connector process; see docs/DECISIONS.md for several.
    pub async fn lock_resource(
        &self,
        integration: &str,
        resource: &str,
    ) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self
                .resource_locks
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            locks
                .entry((integration.to_string(), resource.to_string()))
                .or_default()
                .clone()
        };
        lock.lock_owned().await
    }

    /// The runtime the integrations run in.
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// The integration called `name`, with its configuration.
    pub fn integration(&self, name: &str) -> anyhow::Result<(&Integration, &IntegrationConfig)> {
        match self.integrations.get(name) {
            Some((i, c)) => Ok((i, c)),
            None => bail!(
                "no integration {name:?}; this connector has [{}]",
                self.integrations
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }

    /// Every integration, by name.
    pub fn integrations(&self) -> impl Iterator<Item = (&Integration, &IntegrationConfig)> {
        self.integrations.values().map(|(i, c)| (i, c))
    }
}

/// The secret store `config` names: its directory (if it exists), then the environment.
pub fn secret_store(config: &Config) -> anyhow::Result<SecretStore> {
    let dir = config
        .secrets_dir
        .exists()
        .then_some(config.secrets_dir.as_path());
    Ok(SecretStore::new(dir, config.secrets_env_prefix.as_deref())
        .map_err(anyhow::Error::msg)?
        .with_remote(config.secret_stores.clone()))
}

/// Start a connector whose capabilities are carried out for real: each with the settings
/// of each integration's table of it (as its guest's lifecycle amended them), secrets from
/// the configured store.
pub fn live_connector(config: &Config) -> anyhow::Result<Connector> {
    let secrets = secret_store(config)?;
    Connector::start_with(config, |integrations| {
        let settings = integrations.iter().map(|i| (i.name.as_str(), &i.settings));
        Ok(Arc::new(registry::live(secrets, settings)))
    })
}

/// Call the guest's `describe` and `validate` (which may call no capability), on a thread of
/// their own so this works from inside an async runtime too.
fn ask_guest(
    runtime: &Runtime,
    guest: &Arc<Guest>,
    ic: &IntegrationConfig,
) -> anyhow::Result<(Metadata, Lifecycle)> {
    let probe = Integration::new(
        &ic.name,
        guest.clone(),
        ic.policy.clone(),
        Arc::new(Unavailable),
        ic.limits,
    );
    let config = ic.config_json.clone();
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                rt.block_on(async {
                    let described = probe.call(runtime, Export::Describe).await;
                    let metadata = match described.result {
                        Ok(Returned::Metadata(m)) => m,
                        Ok(other) => bail!("describe returned {other:?}"),
                        Err(e) => bail!("describe failed: {e}"),
                    };
                    let validated = probe.call(runtime, Export::Validate { config }).await;
                    match validated.result {
                        Ok(Returned::Lifecycle(l)) => Ok((metadata, l)),
                        Ok(other) => bail!("validate returned {other:?}"),
                        Err(e) => bail!("its config is not valid: {e}"),
                    }
                })
            })
            .join()
            .map_err(|_| anyhow::anyhow!("the guest's describe/validate thread panicked"))?
    })
}

/// Read the guest file of `ic`, refuse it unless its sha256 is the pinned one, compile it
/// (or take its compiled code from `cache`, see [`latch_runtime::cache`]).
pub fn load_pinned(
    runtime: &Runtime,
    ic: &IntegrationConfig,
    cache: Option<&std::path::Path>,
) -> anyhow::Result<Guest> {
    let bytes = std::fs::read(&ic.guest)
        .with_context(|| format!("cannot read guest {}", ic.guest.display()))?;
    // Hash before compiling: bytes nobody pinned never reach the compiler.
    let actual = sha256_hex(&bytes);
    if actual != ic.sha256 {
        bail!(
            "guest {} has sha256 {actual} but latch.toml pins {}; refusing to start. \
             If the guest was rebuilt on purpose, review its source and update the pin.",
            ic.guest.display(),
            ic.sha256
        );
    }
    match cache {
        Some(dir) => runtime.load_cached(&bytes, dir),
        None => runtime.load(&bytes),
    }
    .with_context(|| format!("cannot load guest {}", ic.guest.display()))
}
