//! WebAssembly functions: standard `wasi:http/proxy` components run by
//! wasmtime, one fresh instance per request.
//!
//! - One [`wasmtime::Engine`] per node: pooling allocator sized to the
//!   node's concurrency limit, epoch interruption driven by a ticker thread.
//! - Compiled code is cached on disk per (component hash, engine
//!   compatibility hash) and loaded with `Component::deserialize_file`, so a
//!   restart never recompiles; a bounded in-memory map keeps a `ProxyPre`
//!   per component.
//! - Per request: memory limit, wall-clock timeout (504), request-body limit
//!   (413), node and per-function concurrency limits (503, never queued),
//!   the project's env vars only, stdout/stderr as [`FunctionLog`] lines,
//!   outbound HTTP only to listed public hosts.
//!
//! `serve/` moves the request and response between pingora and the
//! instance (its `mod.rs` lists its parts); `outbound.rs`, `logs.rs`,
//! `cache.rs`, `metrics.rs` and `errors.rs` (failures folded for error
//! tracking) hold the pure parts, table-tested.

mod cache;
pub mod errors;
mod host;
mod logs;
mod metrics;
pub(crate) mod outbound;
pub(crate) mod serve;
mod ticker;

use rustc_hash::FxHashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use protocol::BlobHash;
use tokio::sync::{mpsc, OnceCell, Semaphore};
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};
use wasmtime_wasi_http::p2::bindings::ProxyPre;

use crate::store::{BlobBody, BlobStore};
use host::Host;
use logs::LogChannel;
use metrics::{bump, load, FunctionCounters, StatCounters};

pub use errors::{ErrorReporter, TakenErrors};
pub use logs::{FunctionLog, LogStream};
pub use metrics::{FunctionMetrics, LatencySummary, RuntimeStats};
pub use outbound::is_restricted as is_restricted_address;
pub(crate) use serve::respond;

/// Linear memories, core instances and tables one component may use. Rust
/// components have one memory and a handful of core instances (the program,
/// the WASI adapter, shims); these leave room for other toolchains.
const MEMORIES_PER_COMPONENT: u32 = 2;
const CORE_INSTANCES_PER_COMPONENT: u32 = 32;
const TABLES_PER_COMPONENT: u32 = 16;
pub const TABLE_ELEMENTS: usize = 100_000;
/// Tables one core module may define (Rust components with the WASI
/// adapter use two).
pub const MAX_TABLES_PER_MODULE: u32 = 2;
/// Bytes of each linear memory and table whose dirty pages are reset in
/// place between instances when the kernel can list them (PAGEMAP_SCAN);
/// a Rust component's stack, data and first heap pages fit.
const PAGEMAP_RESIDENT: usize = 4 * 1024 * 1024;
/// Bytes reset with memset (dirty or not) where it cannot, and of fiber
/// stacks; the rest of a slot goes back to the kernel (madvise).
const MEMSET_RESIDENT: usize = 256 * 1024;
/// Resources (headers, streams, pollables…) one instance may hold.
const MAX_RESOURCES: usize = 10_000;

#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Compiled components: `<data_dir>/functions`.
    pub cache_dir: PathBuf,
    /// Instances running at once on this node; also sizes the pooling
    /// allocator. Requests over it get a 503.
    pub max_concurrent: usize,
    /// Instances of one function (project, route, component) at once.
    pub max_concurrent_per_function: usize,
    /// Instances of one project (all its functions) at once: one tenant
    /// cannot take every slot of the node. Default: half of
    /// `max_concurrent`.
    pub max_concurrent_per_project: usize,
    /// Outbound connections one project's functions hold open at once.
    pub max_outbound_per_project: usize,
    /// How long a request may wait for a free slot before its 503 (bridges
    /// the moment an instance takes to be released; not a queue).
    pub admission_wait: Duration,
    /// Larger request bodies get a 413.
    pub max_request_body_bytes: u64,
    /// Ceiling of any function's memory limit (the pool's slot size).
    pub max_memory_bytes: u64,
    /// Lets functions reach loopback/private/link-local addresses (tests,
    /// private deployments). Hosts must still be on the project's list.
    pub allow_private_outbound: bool,
    pub outbound_connect_timeout: Duration,
    /// `ProxyPre`s kept in memory (least recently used go first).
    pub max_cached_components: usize,
    /// Epoch tick: the granularity of timeouts and of yielding a busy
    /// instance back to the scheduler. An instance yields on a socket
    /// thread twice (about three ticks) before it moves to the executor.
    pub epoch_tick: Duration,
    pub max_log_line_bytes: usize,
    pub max_log_lines_per_request: usize,
    /// How often per-function metrics are logged (at info).
    pub metrics_log_interval: Duration,
    /// Threads of the executor instances run on (they are kept apart from
    /// the threads serving sockets); `0` = one per core.
    pub executor_threads: usize,
    /// How long a component's load (compile, or read of its cached code)
    /// is waited for: one slow to compile fails its own deploy's first
    /// requests, not everyone's. The compile goes on in the background
    /// (its code is cached for the next try).
    pub compile_wait: Duration,
    /// Components loaded at once; `0` = half the cores (at least one), so
    /// compiles never take every core from serving.
    pub max_concurrent_compiles: usize,
}

/// Instances a node runs at once unless its operator says otherwise.
pub const DEFAULT_MAX_INSTANCES: u32 = 64;
/// The most an operator may ask for: each slot reserves address space for
/// its memories (4 GiB each plus guards), and x86-64 user space is 128 TiB.
pub const MAX_INSTANCES_LIMIT: u32 = 4096;

/// A project's share of a node's instances by default: half.
pub fn per_project(max_concurrent: usize) -> usize {
    (max_concurrent / 2).max(1)
}

impl RuntimeConfig {
    /// Sets the node's instance count and the per-project share with it.
    pub fn set_max_concurrent(&mut self, n: usize) {
        self.max_concurrent = n;
        self.max_concurrent_per_project = per_project(n);
    }

    pub fn new(data_dir: &Path) -> Self {
        RuntimeConfig {
            cache_dir: data_dir.join("functions"),
            max_concurrent: DEFAULT_MAX_INSTANCES as usize,
            max_concurrent_per_function: 16,
            max_concurrent_per_project: per_project(DEFAULT_MAX_INSTANCES as usize),
            max_outbound_per_project: 256,
            admission_wait: Duration::from_millis(20),
            max_request_body_bytes: 16 * 1024 * 1024,
            max_memory_bytes: protocol::functions::MAX_MEMORY_BYTES,
            allow_private_outbound: false,
            outbound_connect_timeout: Duration::from_secs(10),
            max_cached_components: 256,
            epoch_tick: Duration::from_millis(1),
            max_log_line_bytes: 4096,
            max_log_lines_per_request: 1000,
            metrics_log_interval: Duration::from_secs(60),
            executor_threads: 0,
            compile_wait: Duration::from_secs(60),
            max_concurrent_compiles: 0,
        }
    }
}

/// The node's function runtime. Share it with an `Arc`; the epoch ticker
/// stops once the runtime and every instance still running are gone.
pub struct FunctionRuntime {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    engine: Engine,
    linker: Linker<Host>,
    config: RuntimeConfig,
    /// Engine compatibility tag in artefact names.
    tag: String,
    // Looked up on every request with keys from manifests, never from
    // clients: a fast hash without HashDoS resistance is enough.
    components: Mutex<FxHashMap<BlobHash, Arc<Slot>>>,
    use_clock: AtomicU64,
    node_permits: Arc<Semaphore>,
    /// Loads (compiles) running at once.
    compiles: Arc<Semaphore>,
    functions: Mutex<FxHashMap<FunctionKey, Arc<FunctionState>>>,
    projects: Mutex<FxHashMap<Arc<str>, Arc<ProjectLimits>>>,
    logs: Arc<LogChannel>,
    /// Instances' failures, folded for error tracking.
    errors: Arc<ErrorReporter>,
    stats: Arc<StatCounters>,
    tls: Arc<rustls::ClientConfig>,
    /// Where instances run; `None` only while dropping.
    executor: Option<tokio::runtime::Runtime>,
    /// Instances running, for the epoch ticker.
    ticker: Arc<ticker::Ticker>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // May be dropped inside another runtime: never block here.
        if let Some(rt) = self.executor.take() {
            rt.shutdown_background();
        }
    }
}

struct Slot {
    pre: OnceCell<ProxyPre<Host>>,
    last_used: AtomicU64,
    /// The last failed load: requests within [`RETRY_LOAD_AFTER`] fail fast
    /// instead of compiling a bad component again and again.
    failed: Mutex<Option<(Instant, String)>>,
}

const RETRY_LOAD_AFTER: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct FunctionKey {
    project: Arc<str>,
    route: Arc<str>,
    component: BlobHash,
}

pub(crate) struct FunctionState {
    permits: Arc<Semaphore>,
    counters: FunctionCounters,
    /// The project's shares, which all its functions draw from.
    project: Arc<ProjectLimits>,
}

/// What one project may hold of a node at once.
pub(crate) struct ProjectLimits {
    instances: Arc<Semaphore>,
    outbound: Arc<Semaphore>,
}

/// Per-function states kept before idle ones are forgotten.
const MAX_FUNCTION_STATES: usize = 4096;

impl FunctionRuntime {
    /// Builds the engine (pooling allocator, epoch interruption) and starts
    /// the epoch ticker. Function stdout/stderr lines go to `logs`; when it
    /// is full they are dropped and counted.
    pub fn new(config: RuntimeConfig, logs: mpsc::Sender<FunctionLog>) -> anyhow::Result<Self> {
        anyhow::ensure!(config.max_concurrent > 0, "max_concurrent must be positive");
        anyhow::ensure!(
            config.max_concurrent_per_function > 0
                && config.max_concurrent_per_project > 0
                && config.max_outbound_per_project > 0,
            "per-function and per-project limits must be positive"
        );
        std::fs::create_dir_all(&config.cache_dir).with_context(|| {
            format!(
                "cannot create function cache {}",
                config.cache_dir.display()
            )
        })?;
        cache::remove_temporaries(&config.cache_dir);
        let engine = engine(&config)?;
        let linker = host::linker(&engine)?;
        let tag = cache::compatibility_tag(engine.precompile_compatibility_hash());
        let inner = Arc::new(Inner {
            node_permits: Arc::new(Semaphore::new(config.max_concurrent)),
            compiles: Arc::new(Semaphore::new(match config.max_concurrent_compiles {
                0 => std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1)),
                n => n,
            })),
            projects: Mutex::default(),
            engine,
            linker,
            tag,
            components: Mutex::default(),
            use_clock: AtomicU64::new(0),
            functions: Mutex::default(),
            logs: Arc::new(LogChannel {
                tx: logs,
                dropped: AtomicU64::new(0),
            }),
            errors: Arc::default(),
            stats: Arc::default(),
            tls: outbound::tls_client_config(),
            executor: Some(executor(&config)?),
            ticker: Arc::default(),
            config,
        });
        spawn_ticker(&inner)?;
        Ok(FunctionRuntime { inner })
    }

    pub fn config(&self) -> &RuntimeConfig {
        &self.inner.config
    }

    /// Compiles (or loads from the disk cache) a component so the first
    /// request does not pay for it. Call it when a bundle becomes complete.
    pub async fn prepare(&self, blobs: &Arc<BlobStore>, component: BlobHash) -> anyhow::Result<()> {
        self.inner.proxy_pre(blobs, component).await.map(|_| ())
    }

    /// How many components' code the runtime keeps in memory at once.
    pub fn capacity(&self) -> usize {
        self.inner.capacity()
    }

    /// Instances this node runs at once (`--max-instances`).
    pub fn max_instances(&self) -> usize {
        self.inner.config.max_concurrent
    }

    /// Where the compiled artefact of `component` lives for this engine.
    pub fn artefact_path(&self, component: &BlobHash) -> PathBuf {
        cache::artefact_path(&self.inner.config.cache_dir, component, &self.inner.tag)
    }

    pub fn stats(&self) -> RuntimeStats {
        let s = &self.inner.stats;
        RuntimeStats {
            compiled: load(&s.compiled),
            loaded_from_cache: load(&s.loaded_from_cache),
            load_failures: load(&s.load_failures),
            instantiations: load(&s.instantiations),
            instantiate: s.instantiate.summary_us(),
            rejected_busy: load(&s.rejected_busy),
            rejected_too_large: load(&s.rejected_too_large),
            timeouts: load(&s.timeouts),
            traps: load(&s.traps),
            memory_exceeded: load(&s.memory_exceeded),
            logs_dropped: load(&self.inner.logs.dropped),
            cached_components: (self.inner.components.lock().unwrap().values())
                .filter(|slot| slot.pre.get().is_some())
                .count(),
            in_flight: self.inner.config.max_concurrent
                - self.inner.node_permits.available_permits(),
        }
    }

    /// The functions' failures, folded; `errorship::run` ships them.
    pub fn errors(&self) -> Arc<ErrorReporter> {
        self.inner.errors.clone()
    }

    /// Median instantiation time in nanoseconds (for benchmarks).
    pub fn instantiate_p50_ns(&self) -> u64 {
        self.inner.stats.instantiate.p50_ns()
    }

    /// Every function seen since start (idle ones may have been forgotten
    /// past a few thousand), sorted by project and route.
    pub fn snapshot(&self) -> Vec<FunctionMetrics> {
        self.inner.snapshot()
    }
}

/// The engine every function on a node runs on. Public so the benchmark's
/// bare host (`examples/bare_host.rs`) is measured with the very same settings.
pub fn engine(config: &RuntimeConfig) -> anyhow::Result<Engine> {
    let n = u32::try_from(config.max_concurrent).context("max_concurrent is too large")?;
    let residency = pool_residency();
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(n)
        .total_core_instances(n.saturating_mul(CORE_INSTANCES_PER_COMPONENT))
        .max_core_instances_per_component(CORE_INSTANCES_PER_COMPONENT)
        .total_memories(n.saturating_mul(MEMORIES_PER_COMPONENT))
        .max_memories_per_component(MEMORIES_PER_COMPONENT)
        .total_tables(n.saturating_mul(TABLES_PER_COMPONENT))
        .max_tables_per_component(TABLES_PER_COMPONENT)
        .max_tables_per_module(MAX_TABLES_PER_MODULE)
        .table_elements(TABLE_ELEMENTS)
        .total_stacks(n)
        .async_stack_keep_resident(residency.async_stack_bytes)
        .pagemap_scan(if residency.pagemap_scan {
            Enabled::Yes
        } else {
            Enabled::No
        })
        .linear_memory_keep_resident(residency.memory_bytes)
        .table_keep_resident(residency.table_bytes)
        .max_memory_size(
            usize::try_from(config.max_memory_bytes).context("max_memory_bytes is too large")?,
        );
    let mut c = Config::new();
    c.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    c.epoch_interruption(true);
    c.wasm_component_model(true);
    Engine::new(&c).map_err(anyhow::Error::from)
}

/// How the pooling allocator resets a slot between instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolResidency {
    /// The kernel lists the pages an instance dirtied (PAGEMAP_SCAN, Linux
    /// 6.7+) and only those are reset, in place: no madvise (a syscall and
    /// a TLB shootdown across cores) per instance, and no page faults for
    /// the next one. Without it the first bytes are memset whole.
    pub pagemap_scan: bool,
    /// Bytes of each linear memory and table kept resident (reset in place).
    pub memory_bytes: usize,
    pub table_bytes: usize,
    /// Bytes of each fiber stack kept resident.
    pub async_stack_bytes: usize,
}

/// The residency the edge's engine uses on this machine. Public so the
/// benchmark can give `wasmtime serve` the same settings.
pub fn pool_residency() -> PoolResidency {
    let pagemap_scan = PoolingAllocationConfig::is_pagemap_scan_available();
    let keep = if pagemap_scan {
        PAGEMAP_RESIDENT
    } else {
        MEMSET_RESIDENT
    };
    PoolResidency {
        pagemap_scan,
        memory_bytes: keep,
        table_bytes: keep,
        async_stack_bytes: MEMSET_RESIDENT,
    }
}

/// The executor instances run on. Every tick a running instance yields;
/// checking the injection queue and the I/O driver on every scheduling tick
/// lets a newly admitted instance start while others spin, instead of
/// waiting out tokio's default 61 ticks (61 epoch slices).
fn executor(config: &RuntimeConfig) -> anyhow::Result<tokio::runtime::Runtime> {
    let threads = match config.executor_threads {
        0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
        n => n,
    };
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name("wasm")
        .global_queue_interval(1)
        .event_interval(1)
        .enable_all()
        .build()
        .context("cannot start the function executor")
}

/// Ticks the engine's epoch while an instance runs (see `ticker`) and logs
/// the metrics summary now and then. Exits when the runtime is dropped.
fn spawn_ticker(inner: &Arc<Inner>) -> anyhow::Result<()> {
    let weak: Weak<Inner> = Arc::downgrade(inner);
    let engine = inner.engine.clone();
    let ticker = inner.ticker.clone();
    let tick = inner.config.epoch_tick.max(Duration::from_millis(1));
    let interval = inner.config.metrics_log_interval;
    // While idle, the thread still looks now and then whether the runtime
    // is gone or a summary is due.
    let idle = interval.clamp(Duration::from_millis(10), Duration::from_secs(1));
    std::thread::Builder::new()
        .name("wasm-epoch".into())
        .spawn(move || {
            let mut last_log = Instant::now();
            loop {
                if ticker.wait_for_instances(idle) {
                    std::thread::sleep(tick);
                    engine.increment_epoch();
                }
                // In-flight instances hold the runtime too: they still need
                // ticks for their timeouts after the last handle is dropped.
                let Some(inner) = weak.upgrade() else { break };
                if last_log.elapsed() >= interval {
                    last_log = Instant::now();
                    inner.log_summary();
                }
            }
        })
        .context("cannot start the epoch ticker thread")?;
    Ok(())
}

impl Inner {
    pub(crate) fn executor(&self) -> &tokio::runtime::Handle {
        self.executor
            .as_ref()
            .expect("the executor lives as long as the runtime")
            .handle()
    }

    /// The `ProxyPre` of a component: from memory, else the disk cache, else
    /// compiled from its blob (once, however many requests ask at the same
    /// time).
    async fn proxy_pre(
        self: &Arc<Self>,
        blobs: &Arc<BlobStore>,
        component: BlobHash,
    ) -> anyhow::Result<ProxyPre<Host>> {
        let slot = self.slot(component);
        if let Some(pre) = slot.pre.get() {
            return Ok(pre.clone());
        }
        if let Some((at, why)) = slot.failed.lock().unwrap().as_ref() {
            if at.elapsed() < RETRY_LOAD_AFTER {
                anyhow::bail!("{why} (failed {} ms ago)", at.elapsed().as_millis());
            }
        }
        let pre = slot
            .pre
            .get_or_try_init(|| {
                let inner = self.clone();
                let blobs = blobs.clone();
                async move {
                    let wait = inner.config.compile_wait;
                    let load = async {
                        // The permit lives with the load, also past a
                        // timeout: compiles never exceed their bound.
                        let permit = inner.compiles.clone().acquire_owned().await?;
                        let inner = inner.clone();
                        tokio::task::spawn_blocking(move || {
                            let _permit = permit;
                            inner.load(&blobs, component)
                        })
                        .await
                        .context("component load task failed")?
                    };
                    match tokio::time::timeout(wait, load).await {
                        Ok(r) => r,
                        Err(_) => Err(anyhow::anyhow!(
                            "component {component} took longer than {wait:?} to load; its compile goes on and it is tried again shortly"
                        )),
                    }
                }
            })
            .await;
        match pre {
            Ok(pre) => Ok(pre.clone()),
            Err(e) => {
                bump(&self.stats.load_failures);
                *slot.failed.lock().unwrap() = Some((Instant::now(), format!("{e:#}")));
                Err(e)
            }
        }
    }

    fn capacity(&self) -> usize {
        self.config.max_cached_components.max(1)
    }

    fn slot(&self, component: BlobHash) -> Arc<Slot> {
        let now = self.use_clock.fetch_add(1, Ordering::Relaxed);
        let mut map = self.components.lock().unwrap();
        if let Some(slot) = map.get(&component) {
            slot.last_used.store(now, Ordering::Relaxed);
            return slot.clone();
        }
        if map.len() >= self.capacity() {
            let oldest = map
                .iter()
                .min_by_key(|(_, s)| s.last_used.load(Ordering::Relaxed))
                .map(|(h, _)| *h);
            if let Some(h) = oldest {
                map.remove(&h);
            }
        }
        let slot = Arc::new(Slot {
            pre: OnceCell::new(),
            last_used: AtomicU64::new(now),
            failed: Mutex::new(None),
        });
        map.insert(component, slot.clone());
        slot
    }

    /// Blocking: deserialize the cached artefact, or compile and cache it.
    fn load(&self, blobs: &BlobStore, hash: BlobHash) -> anyhow::Result<ProxyPre<Host>> {
        let path = cache::artefact_path(&self.config.cache_dir, &hash, &self.tag);
        let mut component = None;
        if path.is_file() {
            // SAFETY: the file is one this node wrote (atomically) from a
            // component it compiled with an engine of the same
            // compatibility hash; the cache directory is ours alone.
            match unsafe { Component::deserialize_file(&self.engine, &path) } {
                Ok(c) => {
                    bump(&self.stats.loaded_from_cache);
                    component = Some(c);
                }
                Err(e) => {
                    tracing::warn!(component = %hash, path = %path.display(), error = %e, "unusable compiled artefact; recompiling");
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        let component = match component {
            Some(c) => c,
            None => {
                let wasm = read_blob(blobs, &hash)?;
                let started = Instant::now();
                let c = Component::new(&self.engine, &wasm)
                    .map_err(anyhow::Error::from)
                    .with_context(|| format!("component {hash} does not compile"))?;
                bump(&self.stats.compiled);
                tracing::info!(component = %hash, bytes = wasm.len(), ms = started.elapsed().as_millis() as u64, "compiled function component");
                match c.serialize() {
                    Ok(bytes) => {
                        if let Err(e) = cache::write_atomic(&path, &bytes) {
                            tracing::warn!(path = %path.display(), error = %e, "cannot cache compiled component");
                        }
                    }
                    Err(e) => {
                        tracing::warn!(component = %hash, error = %e, "cannot serialize compiled component")
                    }
                }
                c
            }
        };
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("component {hash} imports what the edge does not provide"))?;
        ProxyPre::new(pre)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("component {hash} does not export wasi:http/incoming-handler"))
    }

    fn function(
        &self,
        project: &Arc<str>,
        route: &Arc<str>,
        component: BlobHash,
    ) -> Arc<FunctionState> {
        let key = FunctionKey {
            project: project.clone(),
            route: route.clone(),
            component,
        };
        let mut map = self.functions.lock().unwrap();
        if let Some(f) = map.get(&key) {
            return f.clone();
        }
        if map.len() >= MAX_FUNCTION_STATES {
            let per_fn = self.config.max_concurrent_per_function;
            map.retain(|_, f| Arc::strong_count(f) > 1 || f.permits.available_permits() < per_fn);
        }
        let f = Arc::new(FunctionState {
            permits: Arc::new(Semaphore::new(self.config.max_concurrent_per_function)),
            counters: FunctionCounters::new(),
            project: self.project_limits(project),
        });
        map.insert(key, f.clone());
        f
    }

    /// The shares of `project`, made on first use. Idle ones are forgotten
    /// when many projects have come and gone (a busy one is referenced by
    /// its functions, so its counts are never reset under it).
    fn project_limits(&self, project: &Arc<str>) -> Arc<ProjectLimits> {
        let mut map = self.projects.lock().unwrap();
        if let Some(p) = map.get(project) {
            return p.clone();
        }
        if map.len() >= MAX_FUNCTION_STATES {
            map.retain(|_, p| Arc::strong_count(p) > 1);
        }
        let p = Arc::new(ProjectLimits {
            instances: Arc::new(Semaphore::new(self.config.max_concurrent_per_project)),
            outbound: Arc::new(Semaphore::new(self.config.max_outbound_per_project)),
        });
        map.insert(project.clone(), p.clone());
        p
    }

    fn snapshot(&self) -> Vec<FunctionMetrics> {
        let map = self.functions.lock().unwrap();
        let mut v: Vec<FunctionMetrics> = map
            .iter()
            .map(|(k, f)| f.counters.snapshot(&k.project, &k.route, k.component))
            .collect();
        v.sort_by(|a, b| (&a.project, &a.route).cmp(&(&b.project, &b.route)));
        v
    }

    fn log_summary(&self) {
        let due: Vec<FunctionMetrics> = {
            let map = self.functions.lock().unwrap();
            map.iter()
                .filter(|(_, f)| f.counters.take_log_due())
                .map(|(k, f)| f.counters.snapshot(&k.project, &k.route, k.component))
                .collect()
        };
        for m in due {
            tracing::info!(
                project = %m.project,
                route = %m.route,
                component = %m.component,
                invocations = m.invocations,
                errors = m.errors,
                rejected = m.rejected,
                p50_us = m.latency.p50_us,
                p99_us = m.latency.p99_us,
                max_us = m.latency.max_us,
                "function metrics"
            );
        }
    }
}

fn read_blob(blobs: &BlobStore, hash: &BlobHash) -> anyhow::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    match blobs
        .open_verified(hash)
        .with_context(|| format!("component blob {hash} is not available"))?
    {
        BlobBody::Memory(b) => Ok(b.to_vec()),
        BlobBody::File { file, len } => {
            let mut v = vec![0; len as usize];
            file.read_exact_at(&mut v, 0)?;
            Ok(v)
        }
    }
}
