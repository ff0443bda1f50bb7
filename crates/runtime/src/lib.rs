//! The sandbox guests run in: wasmtime with the component model.
//!
//! Defends the connector (and the servers it can reach) against a guest that misbehaves:
//! - **no ambient authority**: the linker provides only `latch:connector` capabilities and a
//!   WASI context with no directories, environment, arguments or network; a guest importing
//!   anything else fails to load, with the import named;
//! - **no state between calls**: each guest is compiled once and kept as an `InstancePre`;
//!   every call gets a fresh `Store`, dropped when the call ends;
//! - **bounded time**: epoch interruption traps a guest spinning in wasm, and a wall-clock
//!   timeout bounds the whole call, capability calls included (default 30 s);
//! - **bounded memory**: a per-call cap (default 64 MiB) on linear memory, inside a pooling
//!   allocator whose slots bound the total the connector can ever hand out.
//!
//! A guest that traps, loops or exhausts its memory fails *that call* with a [`CallError`]
//! saying which; the runtime and every other guest keep serving.

pub mod cache;
mod inspect;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, Trap};

pub use inspect::Inspection;
pub use latch_caps::{CallSecrets, CallState, GrantScope, MemoryCapExceeded};
pub use latch_contract::{
    AccessDetails, CredentialKind, GrantRequest, Granted, GuestError, Identity, Lifecycle,
    Metadata, Page, Resource, ServiceCredential,
};

use latch_caps::secrets::Scrubber;
use latch_caps::{Backend, CallRecord, Policy};
use latch_contract::v0_2::Same;
use latch_contract::{v0_1, v0_2, v0_3};

/// How often the epoch advances; the granularity of the CPU deadline.
const TICK: Duration = Duration::from_millis(10);

/// Limits of one integration's calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock time one export call may take, capability calls included.
    pub deadline: Duration,
    /// Bytes of linear memory one call may use.
    pub memory: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            deadline: Duration::from_secs(30),
            memory: 64 << 20,
        }
    }
}

/// Connector-wide sizing of the sandbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RuntimeConfig {
    /// Guest calls that may run at the same time (pool slots); one more waits for none and
    /// fails with a clear error.
    pub max_concurrent_calls: u32,
    /// The largest memory cap any integration may have (size of a pool slot).
    pub max_memory: usize,
    /// Use the pooling allocator (the default). Off only to measure what pooling buys.
    pub pooling: bool,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            max_concurrent_calls: 64,
            max_memory: 1 << 30,
            pooling: true,
        }
    }
}

/// Why a guest could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The bytes are not a component this engine can compile.
    #[error(
        "not a loadable WebAssembly component: {0:#} (guests are built as components, e.g. `cargo build --target wasm32-wasip2`)"
    )]
    Compile(wasmtime::Error),
    /// The component imports something the host does not provide.
    #[error(
        "the guest imports something Latch does not lend: {0:#}; a guest may import only latch:connector/{{ssh,winrm,ldap,cloud,secrets,certs,log}} (0.3.0, 0.2.0, or 0.1.0 without ldap and cloud) and WASI 0.2"
    )]
    Link(wasmtime::Error),
    /// The component does not export the integration interface.
    #[error(
        "not a Latch integration: {0:#}; it must export latch:connector/integration@0.3.0 (or @0.2.0, @0.1.0)"
    )]
    NotAnIntegration(wasmtime::Error),
}

/// Why a guest call did not return normally.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The guest ran and returned an error of its own.
    #[error("{}: {}", .0.kind(), .0.message())]
    Guest(GuestError),
    /// The call ran past its deadline and was stopped.
    #[error("the guest did not finish within its deadline of {0:?} and was stopped")]
    Deadline(Duration),
    /// The guest tried to use more memory than its cap.
    #[error("the guest exceeded its memory cap: {0}")]
    Memory(MemoryCapExceeded),
    /// The guest trapped (a panic, an `unreachable`, an out-of-bounds access, …).
    #[error("the guest trapped: {0}")]
    Trap(String),
    /// The call could not start (e.g. all pool slots busy).
    #[error("the guest could not be instantiated: {0}")]
    Instantiate(String),
}

impl CallError {
    /// The same error with every secret of `secrets` scrubbed from its text.
    pub fn scrubbed(self, secrets: &Scrubber) -> CallError {
        match self {
            CallError::Guest(g) => CallError::Guest(g.map_message(|m| secrets.scrub(&m))),
            CallError::Trap(t) => CallError::Trap(secrets.scrub(&t)),
            CallError::Instantiate(t) => CallError::Instantiate(secrets.scrub(&t)),
            other @ (CallError::Deadline(_) | CallError::Memory(_)) => other,
        }
    }

    /// A short name for the kind of failure: `guest`, `deadline`, `memory`, `trap`, `instantiate`.
    pub fn kind(&self) -> &'static str {
        match self {
            CallError::Guest(_) => "guest",
            CallError::Deadline(_) => "deadline",
            CallError::Memory(_) => "memory",
            CallError::Trap(_) => "trap",
            CallError::Instantiate(_) => "instantiate",
        }
    }
}

/// The wasmtime engine, the linker of capabilities, and the epoch ticker.
pub struct Runtime {
    engine: Engine,
    linker: Linker<CallState>,
    max_memory: usize,
    _ticker: Ticker,
}

impl Runtime {
    /// Build the engine (pooling allocator, epoch interruption) and link the capabilities.
    pub fn new(config: RuntimeConfig) -> anyhow::Result<Self> {
        let slots = config.max_concurrent_calls.max(1);
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(slots)
            .total_core_instances(slots * 8)
            .total_memories(slots * 2)
            .total_tables(slots * 4)
            .total_stacks(slots)
            .max_memory_size(config.max_memory);
        let mut wasm = Config::new();
        wasm.wasm_component_model(true).epoch_interruption(true);
        if config.pooling {
            wasm.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        }
        let engine = Engine::new(&wasm)?;

        let mut linker = Linker::<CallState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        v0_1::latch::connector::types::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)?;
        v0_2::latch::connector::types::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)?;
        v0_3::latch::connector::types::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)?;
        latch_caps::registry::link(&mut linker)?;

        let ticker = Ticker::start(&engine);
        Ok(Runtime {
            engine,
            linker,
            max_memory: config.max_memory,
            _ticker: ticker,
        })
    }

    /// The wasmtime engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The largest memory cap an integration may be given.
    pub fn max_memory(&self) -> usize {
        self.max_memory
    }

    /// Compile `bytes` and link it against the capabilities, once; calls reuse the result.
    pub fn load(&self, bytes: &[u8]) -> Result<Guest, LoadError> {
        let component = Component::new(&self.engine, bytes).map_err(LoadError::Compile)?;
        self.link(sha256_hex(bytes), component)
    }

    /// [`Runtime::load`], keeping the compiled code in `dir` between runs (a CLI start would
    /// otherwise compile the guest each time). See [`cache`] for what is checked before a
    /// cached file is used; any doubt means compiling afresh.
    pub fn load_cached(&self, bytes: &[u8], dir: &std::path::Path) -> Result<Guest, LoadError> {
        let sha256 = sha256_hex(bytes);
        let cache = cache::CompileCache::new(dir, &sha256, &self.engine);
        if let Some(component) = cache.get(&self.engine) {
            return self.link(sha256, component);
        }
        let component = Component::new(&self.engine, bytes).map_err(LoadError::Compile)?;
        cache.put(&component);
        self.link(sha256, component)
    }

    fn link(&self, sha256: String, component: Component) -> Result<Guest, LoadError> {
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(LoadError::Link)?;
        // The newest contract the component exports; an older one only if it has no newer.
        let pre = if let Ok(p) = v0_3::IntegrationGuestPre::new(pre.clone()) {
            GuestPre::V0_3(p)
        } else if let Ok(p) = v0_2::IntegrationGuestPre::new(pre.clone()) {
            GuestPre::V0_2(p)
        } else {
            GuestPre::V0_1(
                v0_1::IntegrationGuestPre::new(pre).map_err(LoadError::NotAnIntegration)?,
            )
        };
        Ok(Guest {
            sha256,
            component,
            pre,
        })
    }
}

/// Lower-case hex sha256 of `bytes`: the form pins take in `latch.toml`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Advances the engine's epoch every [`TICK`] until dropped.
struct Ticker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Ticker {
    fn start(engine: &Engine) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let weak = engine.weak();
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("latch-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(TICK);
                    match weak.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => break,
                    }
                }
            })
            .expect("spawn the epoch thread");
        Ticker {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A guest's compiled exports, for the contract version it was built against.
enum GuestPre {
    V0_1(v0_1::IntegrationGuestPre<CallState>),
    V0_2(v0_2::IntegrationGuestPre<CallState>),
    V0_3(v0_3::IntegrationGuestPre<CallState>),
}

/// A compiled, linked guest: ready to instantiate, many times, concurrently.
pub struct Guest {
    sha256: String,
    component: Component,
    pre: GuestPre,
}

impl Guest {
    /// Hex sha256 of the guest's bytes, as pinned in `latch.toml`.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// The contract version the guest was built against, e.g. `0.3.0`.
    pub fn contract(&self) -> &'static str {
        match self.pre {
            GuestPre::V0_1(_) => "0.1.0",
            GuestPre::V0_2(_) => "0.2.0",
            GuestPre::V0_3(_) => "0.3.0",
        }
    }

    /// The component's imports and exports.
    pub fn inspect(&self, runtime: &Runtime) -> Inspection {
        Inspection::of(
            &self.sha256,
            self.contract(),
            &self.component,
            runtime.engine(),
        )
    }
}

/// One export call of an integration.
#[derive(Clone, Debug)]
pub enum Export {
    /// `describe()`
    Describe,
    /// `validate(config)`
    Validate {
        /// The integration's config, as JSON.
        config: String,
    },
    /// `discover(config, cursor)`: one page.
    Discover {
        /// The integration's config, as JSON.
        config: String,
        /// `None` for the first page, else the previous page's `next`.
        cursor: Option<String>,
    },
    /// `grant(config, request)`: a new grant, or an extension (`request.state` set).
    Grant {
        /// The integration's config, as JSON.
        config: String,
        /// The grant.
        request: GrantRequest,
    },
    /// `revoke(config, request)`
    Revoke {
        /// The integration's config, as JSON.
        config: String,
        /// The grant.
        request: GrantRequest,
    },
    /// `cleanup(config, request, username)`
    Cleanup {
        /// The integration's config, as JSON.
        config: String,
        /// The revoked grant.
        request: GrantRequest,
        /// The account to delete.
        username: String,
    },
    /// `add-service-credential(config, resource-id, credential)`
    AddServiceCredential {
        /// The integration's config, as JSON.
        config: String,
        /// The resource whose service account gets it.
        resource_id: String,
        /// The credential.
        credential: ServiceCredential,
    },
    /// `remove-service-credential(config, resource-id, credential)`
    RemoveServiceCredential {
        /// The integration's config, as JSON.
        config: String,
        /// The resource whose service account loses it.
        resource_id: String,
        /// The credential.
        credential: ServiceCredential,
    },
}

impl Export {
    /// The WIT name of the export.
    pub fn name(&self) -> &'static str {
        match self {
            Export::Describe => "describe",
            Export::Validate { .. } => "validate",
            Export::Discover { .. } => "discover",
            Export::Grant { .. } => "grant",
            Export::Revoke { .. } => "revoke",
            Export::Cleanup { .. } => "cleanup",
            Export::AddServiceCredential { .. } => "add-service-credential",
            Export::RemoveServiceCredential { .. } => "remove-service-credential",
        }
    }

    fn grant_scope(&self) -> Option<GrantScope> {
        match self {
            Export::Grant { request, .. } | Export::Revoke { request, .. } => Some(GrantScope {
                grant_id: request.grant_id.clone(),
                expires_at: request.expires_at,
            }),
            _ => None,
        }
    }
}

/// What an export returned.
#[derive(Clone, Debug)]
pub enum Returned {
    /// From `describe`.
    Metadata(Metadata),
    /// From `validate`.
    Lifecycle(Lifecycle),
    /// From `discover`.
    Page(Page),
    /// From `grant`.
    Granted(Granted),
    /// From `revoke`, `cleanup` and the service-credential exports.
    Unit,
}

impl Returned {
    /// Does any text of the answer hold a form of a secret of `secrets`?
    fn carries(&self, secrets: &Scrubber) -> bool {
        if secrets.is_empty() {
            return false;
        }
        let any = |texts: &[&str]| texts.iter().any(|t| secrets.finds(t));
        match self {
            Returned::Page(page) => page.resources.iter().any(|r| {
                any(&[&r.id, &r.name, &r.kind])
                    || r.permissions.iter().any(|p| secrets.finds(p))
                    || r.tags.iter().any(|(k, v)| any(&[k, v]))
                    || page.next.as_deref().is_some_and(|n| secrets.finds(n))
            }),
            Returned::Granted(g) => {
                let a = &g.access;
                any(&[&g.state, &a.username, &a.host, &a.instructions])
                    || a.certificate.as_deref().is_some_and(|c| secrets.finds(c))
                    || a.extras.iter().any(|(k, v)| any(&[k, v]))
            }
            Returned::Metadata(_) | Returned::Lifecycle(_) | Returned::Unit => false,
        }
    }
}

/// The outcome of one export call, with every capability call it made.
#[derive(Debug)]
pub struct CallReport {
    /// What the export returned, or why it did not.
    pub result: Result<Returned, CallError>,
    /// The capability calls, in order.
    pub records: Vec<CallRecord>,
    /// Capability calls made past [`latch_caps::MAX_RECORDS`], counted but not kept.
    pub dropped_records: usize,
    /// Every secret value of the call (the grant's password, values the guest read with
    /// `secrets.get`, secrets the host read to carry its calls out): already scrubbed from
    /// the result and the records; for the caller's own checks.
    pub secrets: Scrubber,
}

/// How one export call runs, beyond the export itself.
#[derive(Clone, Debug, Default)]
pub struct CallOptions {
    /// Values the guest may name but not hold (the grant's password, …).
    pub secrets: CallSecrets,
    /// A plan: reads are carried out, changes only recorded.
    pub plan: bool,
}

/// A guest bound to one integration: its name, policy, limits and capability backend.
#[derive(Clone)]
pub struct Integration {
    name: Arc<str>,
    guest: Arc<Guest>,
    policy: Arc<Policy>,
    backend: Arc<dyn Backend>,
    limits: Limits,
}

impl Integration {
    /// Bind `guest` as integration `name`.
    pub fn new(
        name: &str,
        guest: Arc<Guest>,
        policy: Policy,
        backend: Arc<dyn Backend>,
        limits: Limits,
    ) -> Self {
        Integration {
            name: name.into(),
            guest,
            policy: Arc::new(policy),
            backend,
            limits,
        }
    }

    /// The integration's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The guest it runs.
    pub fn guest(&self) -> &Guest {
        &self.guest
    }

    /// Call one export in a fresh store, within the integration's limits.
    pub async fn call(&self, runtime: &Runtime, export: Export) -> CallReport {
        self.call_with(runtime, export, CallOptions::default())
            .await
    }

    /// Call one export with `options` (secrets for the call, plan mode).
    pub async fn call_with(
        &self,
        runtime: &Runtime,
        export: Export,
        options: CallOptions,
    ) -> CallReport {
        let state = CallState::new(
            self.name.clone(),
            self.policy.clone(),
            self.backend.clone(),
            export.grant_scope(),
            options.secrets,
            options.plan,
            self.limits.memory,
        );
        let mut store = Store::new(runtime.engine(), state);
        store.limiter(|s| s.limiter());
        store.set_epoch_deadline(ticks(self.limits.deadline));
        store.epoch_deadline_trap();

        let outcome = {
            let run = run_export(&self.guest.pre, &mut store, export);
            tokio::time::timeout(self.limits.deadline, run).await
        };
        let result = match outcome {
            Err(_elapsed) => Err(CallError::Deadline(self.limits.deadline)),
            Ok(Err(failure)) => Err(classify(
                failure,
                self.limits.deadline,
                &store.data().stderr_tail(),
            )),
            Ok(Ok(Err(guest_error))) => Err(CallError::Guest(guest_error)),
            Ok(Ok(Ok(returned))) => Ok(returned),
        };
        let state = store.data_mut();
        state.flush_stdio();
        let (records, dropped_records) = state.take_records();
        let secrets = state.scrubber();
        // Nothing that leaves the call carries a secret of it: an error is scrubbed (a guest
        // may quote one, a trap's stderr may hold one), an answer holding one is refused
        // (answers are recorded and shown; the host alone delivers a password).
        let result = match result {
            Err(e) => Err(e.scrubbed(&secrets)),
            Ok(returned) if returned.carries(&secrets) => {
                Err(CallError::Guest(GuestError::Failed(
                    "the guest put a secret of this call (a password the host made, a secret it \
                 read, or one the host used for it) into its answer; refused: answers are \
                 recorded and shown, and the host alone delivers passwords"
                        .into(),
                )))
            }
            Ok(returned) => Ok(returned),
        };
        if let Err(error) = &result {
            tracing::warn!(target: "latch::outcome", integration = %self.name, kind = error.kind(), %error, "guest call failed");
        }
        CallReport {
            result,
            records,
            dropped_records,
            secrets,
        }
    }
}

fn ticks(deadline: Duration) -> u64 {
    (deadline.as_millis() / TICK.as_millis()).max(1) as u64 + 1
}

/// Instantiate and call one export; the outer error is a trap, the inner one the guest's.
async fn run_export(
    pre: &GuestPre,
    store: &mut Store<CallState>,
    export: Export,
) -> Result<Result<Returned, GuestError>, Failure> {
    match pre {
        GuestPre::V0_3(pre) => {
            let guest = pre
                .instantiate_async(&mut *store)
                .await
                .map_err(Failure::Instantiate)?;
            let api = guest.latch_connector_integration();
            call_v0_3(api, store, export).await.map_err(Failure::Call)
        }
        GuestPre::V0_2(pre) => {
            let guest = pre
                .instantiate_async(&mut *store)
                .await
                .map_err(Failure::Instantiate)?;
            let api = guest.latch_connector_integration();
            call_v0_2(api, store, export).await.map_err(Failure::Call)
        }
        GuestPre::V0_1(pre) => {
            let guest = pre
                .instantiate_async(&mut *store)
                .await
                .map_err(Failure::Instantiate)?;
            let api = guest.latch_connector_integration();
            call_v0_1(api, store, export).await.map_err(Failure::Call)
        }
    }
}

async fn call_v0_3(
    api: &v0_3::integration::Guest,
    store: &mut Store<CallState>,
    export: Export,
) -> wasmtime::Result<Result<Returned, GuestError>> {
    Ok(match export {
        Export::Describe => Ok(Returned::Metadata(api.call_describe(&mut *store).await?)),
        Export::Validate { config } => api
            .call_validate(&mut *store, &config)
            .await?
            .map(Returned::Lifecycle),
        Export::Discover { config, cursor } => api
            .call_discover(&mut *store, &config, cursor.as_deref())
            .await?
            .map(Returned::Page),
        Export::Grant { config, request } => api
            .call_grant(&mut *store, &config, &request)
            .await?
            .map(Returned::Granted),
        Export::Revoke { config, request } => api
            .call_revoke(&mut *store, &config, &request)
            .await?
            .map(|()| Returned::Unit),
        Export::Cleanup {
            config,
            request,
            username,
        } => api
            .call_cleanup(&mut *store, &config, &request, &username)
            .await?
            .map(|()| Returned::Unit),
        Export::AddServiceCredential {
            config,
            resource_id,
            credential,
        } => api
            .call_add_service_credential(&mut *store, &config, &resource_id, &credential)
            .await?
            .map(|()| Returned::Unit),
        Export::RemoveServiceCredential {
            config,
            resource_id,
            credential,
        } => api
            .call_remove_service_credential(&mut *store, &config, &resource_id, &credential)
            .await?
            .map(|()| Returned::Unit),
    })
}

/// A 0.2 guest, through the conversions of [`latch_contract::v0_2`]: every type but `error`
/// has 0.3's shape.
async fn call_v0_2(
    api: &v0_2::integration::Guest,
    store: &mut Store<CallState>,
    export: Export,
) -> wasmtime::Result<Result<Returned, GuestError>> {
    let unit = |r: Result<(), v0_2::types::Error>| r.map(|()| Returned::Unit).map_err(Into::into);
    Ok(match export {
        Export::Describe => Ok(Returned::Metadata(
            api.call_describe(&mut *store).await?.same(),
        )),
        Export::Validate { config } => api
            .call_validate(&mut *store, &config)
            .await?
            .map(|l| Returned::Lifecycle(l.same()))
            .map_err(Into::into),
        Export::Discover { config, cursor } => api
            .call_discover(&mut *store, &config, cursor.as_deref())
            .await?
            .map(|p| Returned::Page(p.same()))
            .map_err(Into::into),
        Export::Grant { config, request } => api
            .call_grant(&mut *store, &config, &request.same())
            .await?
            .map(|g| Returned::Granted(g.same()))
            .map_err(Into::into),
        Export::Revoke { config, request } => unit(
            api.call_revoke(&mut *store, &config, &request.same())
                .await?,
        ),
        Export::Cleanup {
            config,
            request,
            username,
        } => unit(
            api.call_cleanup(&mut *store, &config, &request.same(), &username)
                .await?,
        ),
        Export::AddServiceCredential {
            config,
            resource_id,
            credential,
        } => unit(
            api.call_add_service_credential(&mut *store, &config, &resource_id, &credential.same())
                .await?,
        ),
        Export::RemoveServiceCredential {
            config,
            resource_id,
            credential,
        } => unit(
            api.call_remove_service_credential(
                &mut *store,
                &config,
                &resource_id,
                &credential.same(),
            )
            .await?,
        ),
    })
}

/// A 0.1 guest, through the conversions of [`latch_contract::v0_1`].
async fn call_v0_1(
    api: &v0_1::integration::Guest,
    store: &mut Store<CallState>,
    export: Export,
) -> wasmtime::Result<Result<Returned, GuestError>> {
    let unit = |r: Result<(), v0_1::types::Error>| r.map(|()| Returned::Unit).map_err(Into::into);
    Ok(match export {
        Export::Describe => Ok(Returned::Metadata(
            api.call_describe(&mut *store).await?.into(),
        )),
        Export::Validate { config } => match api.call_validate(&mut *store, &config).await? {
            Ok(()) => v0_1::legacy_lifecycle(&config)
                .map(Returned::Lifecycle)
                .map_err(GuestError::InvalidConfig),
            Err(e) => Err(e.into()),
        },
        Export::Discover { config, cursor } => {
            if cursor.is_some() {
                // One page only: a cursor is never handed out, so this is a host bug.
                Ok(Returned::Page(Page {
                    resources: Vec::new(),
                    next: None,
                }))
            } else {
                api.call_discover(&mut *store, &config)
                    .await?
                    .map(|resources| {
                        Returned::Page(Page {
                            resources: resources.into_iter().map(Into::into).collect(),
                            next: None,
                        })
                    })
                    .map_err(Into::into)
            }
        }
        Export::Grant { config, request } => api
            .call_grant(&mut *store, &config, &v0_1::request(&request))
            .await?
            .map(|a| Returned::Granted(v0_1::granted(a)))
            .map_err(Into::into),
        Export::Revoke { config, request } => unit(
            api.call_revoke(&mut *store, &config, &v0_1::request(&request))
                .await?,
        ),
        Export::Cleanup {
            config,
            request,
            username,
        } => unit(
            api.call_cleanup(&mut *store, &config, &request.resource_id, &username)
                .await?,
        ),
        Export::AddServiceCredential {
            config,
            resource_id,
            credential,
        } => match credential {
            ServiceCredential::SshKey(key) => unit(
                api.call_add_service_key(&mut *store, &config, &resource_id, &key)
                    .await?,
            ),
            ServiceCredential::Password => Err(GuestError::InvalidRequest(
                "a 0.1 guest rotates SSH keys only, not passwords".into(),
            )),
        },
        Export::RemoveServiceCredential {
            config,
            resource_id,
            credential,
        } => match credential {
            ServiceCredential::SshKey(key) => unit(
                api.call_remove_service_key(&mut *store, &config, &resource_id, &key)
                    .await?,
            ),
            ServiceCredential::Password => Err(GuestError::InvalidRequest(
                "a 0.1 guest rotates SSH keys only, not passwords".into(),
            )),
        },
    })
}

/// Where a call failed: while instantiating the guest, or while running the export.
enum Failure {
    Instantiate(wasmtime::Error),
    Call(wasmtime::Error),
}

/// Turn a wasmtime error into the [`CallError`] that says what happened.
///
/// A trap's wasm backtrace goes to the debug log; the error carries the trap's reason and the
/// guest's last stderr lines, where a Rust guest's panic message is.
fn classify(failure: Failure, deadline: Duration, stderr_tail: &str) -> CallError {
    let (error, instantiating) = match failure {
        Failure::Instantiate(e) => (e, true),
        Failure::Call(e) => (e, false),
    };
    if let Some(cap) = error.downcast_ref::<MemoryCapExceeded>() {
        return CallError::Memory(MemoryCapExceeded {
            desired: cap.desired,
            cap: cap.cap,
        });
    }
    if let Some(Trap::Interrupt) = error.downcast_ref::<Trap>() {
        return CallError::Deadline(deadline);
    }
    if instantiating && error.downcast_ref::<Trap>().is_none() {
        return CallError::Instantiate(format!("{error:#}"));
    }
    tracing::debug!("guest trap in detail: {error:?}");
    let reason = match error.downcast_ref::<Trap>() {
        Some(trap) => trap.to_string(),
        None => format!("{error:#}"),
    };
    if stderr_tail.is_empty() {
        CallError::Trap(reason)
    } else {
        CallError::Trap(format!("{reason}; guest stderr: {stderr_tail}"))
    }
}
