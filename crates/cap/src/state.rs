//! What one guest call's `Store` holds: the WASI context (empty by design), the memory
//! limiter, the integration's policy and backend, the grant being served, and the records.
//!
//! A `CallState` lives exactly as long as one call of one export: nothing a guest writes
//! into its memory or tables survives into the next call.

use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::{Backend, CallRecord, MAX_RECORDS, Policy, Secret};
use latch_secret::Scrubber;

/// Bytes of stdout and of stderr kept per call; beyond this the guest's writes fail.
const MAX_STDIO: usize = 64 * 1024;

/// The grant a call serves: bounds what `certs.sign-ssh-user` may sign.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrantScope {
    /// The grant's id; the only key id a certificate may carry.
    pub grant_id: String,
    /// The grant's expiry (Unix seconds); no certificate outlives it.
    pub expires_at: u64,
}

/// Values the host made for this call, which a guest may name (`secret-ref`) but never
/// holds: the backend puts them on the wire; records show their names only.
#[derive(Clone, Debug, Default)]
pub struct CallSecrets {
    /// The password generated for the grant being served.
    pub grant_password: Option<Secret>,
    /// The service account's next password, during a rotation.
    pub new_service_password: Option<Secret>,
}

/// Store data of one guest call.
pub struct CallState {
    pub(crate) integration: Arc<str>,
    pub(crate) policy: Arc<Policy>,
    pub(crate) backend: Arc<dyn Backend>,
    pub(crate) grant: Option<GrantScope>,
    pub(crate) secrets: CallSecrets,
    /// A plan: changes are recorded, not carried out (see `caps::dispatch`).
    pub(crate) plan: bool,
    /// Secret values `secrets.get` handed to the guest in this call: the host checks that
    /// none comes back in what it keeps (a grant's state, its access details).
    pub(crate) revealed: Vec<Secret>,
    /// Secret values the host read to carry out this call's capability calls (a WinRM or
    /// directory password, a named `secret-ref`): never the guest's, scrubbed like the rest.
    pub(crate) resolved: std::sync::Mutex<Vec<Secret>>,
    pub(crate) limiter: MemoryCap,
    records: Vec<CallRecord>,
    dropped_records: usize,
    wasi: WasiCtx,
    table: ResourceTable,
    stdout: MemoryOutputPipe,
    stderr: MemoryOutputPipe,
}

impl CallState {
    pub fn new(
        integration: Arc<str>,
        policy: Arc<Policy>,
        backend: Arc<dyn Backend>,
        grant: Option<GrantScope>,
        secrets: CallSecrets,
        plan: bool,
        memory_cap: usize,
    ) -> Self {
        let stdout = MemoryOutputPipe::new(MAX_STDIO);
        let stderr = MemoryOutputPipe::new(MAX_STDIO);
        // No preopened directories, no environment, no arguments, no network: the builder's
        // defaults, with networking switched off explicitly.
        let wasi = WasiCtx::builder()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        CallState {
            integration,
            policy,
            backend,
            grant,
            secrets,
            plan,
            revealed: Vec::new(),
            resolved: std::sync::Mutex::new(Vec::new()),
            limiter: MemoryCap::new(memory_cap),
            records: Vec::new(),
            dropped_records: 0,
            wasi,
            table: ResourceTable::new(),
            stdout,
            stderr,
        }
    }

    /// The integration the call is for.
    pub fn integration(&self) -> &str {
        &self.integration
    }

    /// The integration's policy, with every capability's slice.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The values the host made for this call, which the guest may name but never holds.
    pub fn secrets(&self) -> &CallSecrets {
        &self.secrets
    }

    /// The grant the call serves, if it serves one.
    pub fn grant(&self) -> Option<&GrantScope> {
        self.grant.as_ref()
    }

    /// Keep `secret`, which `secrets.get` is handing the guest: the host checks that none
    /// of these comes back in what it keeps (a grant's state, its access details).
    pub fn reveal_to_guest(&mut self, secret: Secret) {
        self.revealed.push(secret);
    }

    /// The memory limiter of the call's store.
    pub fn limiter(&mut self) -> &mut MemoryCap {
        &mut self.limiter
    }

    pub(crate) fn record(&mut self, record: CallRecord) {
        if self.records.len() < MAX_RECORDS {
            self.records.push(record);
        } else {
            self.dropped_records += 1;
        }
    }

    /// Take the capability records (and the count of those dropped past [`MAX_RECORDS`]).
    pub fn take_records(&mut self) -> (Vec<CallRecord>, usize) {
        (std::mem::take(&mut self.records), self.dropped_records)
    }

    /// The last few lines the guest wrote to stderr (where a Rust panic message goes).
    pub fn stderr_tail(&self) -> String {
        let bytes = self.stderr.contents();
        let text = String::from_utf8_lossy(&bytes);
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        let tail = lines[lines.len().saturating_sub(3)..].join(" | ");
        self.scrub(&crate::text::sanitize(&tail))
    }

    /// Every secret value of this call so far: the grant's password, the new service
    /// password, values `secrets.get` returned, and secrets the host read to carry calls out.
    pub fn scrubber(&self) -> Scrubber {
        let mut scrubber = Scrubber::new();
        scrubber.extend(&self.secrets.grant_password);
        scrubber.extend(&self.secrets.new_service_password);
        scrubber.extend(&self.revealed);
        scrubber.extend(
            self.resolved
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter(),
        );
        scrubber
    }

    /// `text` with every secret of this call, in every form Latch makes, replaced by
    /// `[redacted]` (see [`Scrubber`]): applied to all the guest writes into the host's log
    /// and errors (log messages, stdout, stderr, a panic's message), as to everything else
    /// that leaves the call.
    pub fn scrub(&self, text: &str) -> String {
        self.scrubber().scrub(text)
    }

    /// Send what the guest printed to the log, tagged with the integration.
    pub fn flush_stdio(&self) {
        for (stream, pipe) in [("stdout", &self.stdout), ("stderr", &self.stderr)] {
            let bytes = pipe.contents();
            for line in String::from_utf8_lossy(&bytes).lines() {
                let line = self.scrub(line);
                tracing::info!(integration = %self.integration, stream, "guest: {line}");
            }
        }
    }
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// The error a guest's call fails with when it grows its memory past the cap.
#[derive(Debug, thiserror::Error)]
#[error(
    "it asked for {} KiB of linear memory, above its cap of {} KiB",
    desired / 1024,
    cap / 1024
)]
pub struct MemoryCapExceeded {
    /// Bytes the guest asked for.
    pub desired: usize,
    /// The integration's cap.
    pub cap: usize,
}

/// Caps the linear memory of one store; growing past the cap traps at once, so the error
/// names the cause instead of surfacing later as the guest's own allocation failure.
pub struct MemoryCap {
    cap: usize,
}

impl MemoryCap {
    fn new(cap: usize) -> Self {
        MemoryCap { cap }
    }
}

/// Most table elements a guest may have (function references; 8 bytes each).
const MAX_TABLE_ELEMENTS: usize = 100_000;

impl wasmtime::ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.cap {
            return Err(wasmtime::Error::new(MemoryCapExceeded {
                desired,
                cap: self.cap,
            }));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

// The shared `types` interface has no functions: every contract version's is served as is.
impl latch_contract::v0_1::types::Host for CallState {}
impl latch_contract::v0_2::types::Host for CallState {}
impl latch_contract::v0_3::types::Host for CallState {}
