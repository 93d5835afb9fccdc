//! The engine: wasmtime configured for deterministic, metered policies, and loading components
//! into [`LoadedPolicy`] values ready to instantiate.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Strategy};

use crate::cache::ArtifactCache;
use crate::inspect::{self, ApiVersion, InspectError, Inspection, PolicyKind, Shape};
use crate::instance::{HostState, Instance, KindPre, add_log_to_linker, new_store};
use luciole_proto::limits::{POLICY_NAME_BYTES_MAX, TABLE_ELEMENTS_PER_POLICY_MAX};

/// Default fuel per call: roughly 50 ms of guest work on this machine class; a placement of
/// 1,000 bubbles on 100 members by rendezvous needs about 2 % of it.
pub const FUEL_PER_CALL_DEFAULT: u64 = 50_000_000;
/// Default cap on a policy instance's linear memory.
pub const MEMORY_BYTES_MAX_DEFAULT: usize = 64 << 20;

/// Default time a compile may take before the load is refused (the JavaScript and Python
/// interpreter components compile in about 2 s with Winch on this machine class, 8–11 s with
/// Cranelift).
pub const COMPILE_DEADLINE_DEFAULT: Duration = Duration::from_secs(60);

/// Components of at least this many bytes are compiled by Winch, wasmtime's baseline compiler,
/// where it exists (x86_64): a JavaScript or Python interpreter component (12–18 MB) then
/// compiles in about 2 s instead of 8–11 s on this machine class. Policies written against
/// the SDK (tens of KB) keep Cranelift's optimised code.
pub const BASELINE_FROM_BYTES_DEFAULT: usize = 4 << 20;

/// Policy instances of one kind alive at once per engine. Each kind has its own share of the
/// pooling allocator's slots, so no policy can starve another kind, and each instance is held
/// to [`Shape::LIMITS`] counts, so none can take more than its share. A slot holds two
/// (active and last good), a swap briefly a third, a load one more.
pub const POOL_INSTANCES_PER_KIND: u32 = 16;

/// Bytes of each linear memory and table a reused pool slot keeps mapped, its dirty pages reset
/// with `memset` instead of `madvise`: a fresh instantiation per call then does not fault its
/// pages in again.
const KEEP_RESIDENT_BYTES: usize = 4 << 20;

/// Sandbox settings, the same for every policy the engine loads.
///
/// `fuel_per_call` and `memory_bytes_max` are **cluster settings**: a policy can observe them
/// (by running out, or by growing memory until refused) and answer from them, so every node
/// of a cluster must use the same values for coordinator and placement answers to agree.
/// The rest is node-local and changes no answer.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Fuel given to each call (wasmtime fuel units, about one per wasm instruction). Cluster
    /// setting.
    pub fuel_per_call: u64,
    /// Most linear memory one policy instance may have, in bytes, over all its memories.
    /// Cluster setting.
    pub memory_bytes_max: usize,
    /// Where precompiled artifacts are kept; `None` compiles every load. Node-local.
    pub cache: Option<ArtifactCache>,
    /// Longest a compile may take; a load past it is refused and its digest remembered.
    /// Node-local.
    pub compile_deadline: Duration,
    /// Components of at least this many bytes are compiled by Winch, the baseline compiler,
    /// instead of Cranelift: seconds less on their first load, slower calls. `None`: always
    /// Cranelift. Only where Winch exists (x86_64); elsewhere ignored. **Cluster setting**:
    /// both compilers canonicalise NaNs, but their fuel counts differ by a few thousand units
    /// per call (measured: 0.3–1.4 % of a small call), so a call within that much of the budget
    /// can run out under one compiler and not the other.
    pub baseline_from_bytes: Option<usize>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            fuel_per_call: FUEL_PER_CALL_DEFAULT,
            memory_bytes_max: MEMORY_BYTES_MAX_DEFAULT,
            cache: None,
            compile_deadline: COMPILE_DEADLINE_DEFAULT,
            baseline_from_bytes: Some(BASELINE_FROM_BYTES_DEFAULT),
        }
    }
}

/// One instance's share of the instance pool, given back when dropped.
pub(crate) struct PoolShare {
    live: Arc<[AtomicU32; 3]>,
    kind: usize,
}

impl Drop for PoolShare {
    fn drop(&mut self) {
        self.live[self.kind].fetch_sub(1, SeqCst);
    }
}

/// Loads policy components. Cheap to clone (shared).
#[derive(Clone)]
pub struct PolicyEngine {
    inner: Arc<EngineInner>,
}

struct EngineInner {
    engine: Engine,
    linker: Linker<HostState>,
    /// Winch's engine, for components of at least `config.baseline_from_bytes`.
    baseline: Option<(Engine, Linker<HostState>)>,
    config: EngineConfig,
    /// Live instances per kind (index of [`PolicyKind::ALL`]).
    live: Arc<[AtomicU32; 3]>,
    /// Digests whose compile overran the deadline, and why: refused at once next time.
    refused: Mutex<HashMap<[u8; 32], String>>,
}

impl std::fmt::Debug for PolicyEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyEngine").field("config", &self.inner.config).finish()
    }
}

/// Who a loaded policy is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyMeta {
    /// Name the policy gives itself.
    pub name: String,
    /// Version the policy gives itself.
    pub version: String,
    /// Its kind.
    pub kind: PolicyKind,
    /// The API version it was built against.
    pub api_version: ApiVersion,
    /// sha256 of the component bytes: the identity quarantine works on.
    pub digest: [u8; 32],
    /// Component size in bytes.
    pub size_bytes: usize,
}

impl PolicyMeta {
    /// `name@version`, for logs.
    pub fn label(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }
    /// The first 12 hex digits of the digest, for humans.
    pub fn short_digest(&self) -> String {
        hex::encode(&self.digest[..6])
    }
}

/// A policy compiled and linked, ready to instantiate.
pub struct LoadedPolicy {
    pub(crate) meta: Arc<PolicyMeta>,
    pub(crate) pre: KindPre,
    pub(crate) engine: PolicyEngine,
    /// What the component declared about itself.
    pub inspection: Inspection,
    /// Time spent compiling, or loading the precompiled artifact.
    pub compile_time: Duration,
    /// Whether the precompiled artifact came from the cache.
    pub from_cache: bool,
}

impl std::fmt::Debug for LoadedPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPolicy").field("meta", &self.meta).finish_non_exhaustive()
    }
}

impl LoadedPolicy {
    /// Who it is.
    pub fn meta(&self) -> &Arc<PolicyMeta> {
        &self.meta
    }

    /// A fresh instance with its own store.
    pub(crate) fn instantiate(&self) -> wasmtime::Result<Instance> {
        Instance::new(self)
    }
}

/// Why a component cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Refused before compiling.
    #[error(transparent)]
    Inspect(#[from] InspectError),
    /// wasmtime refused it (invalid wasm, missing exports, …).
    #[error("compiling: {0}")]
    Compile(String),
    /// Imports that do not match what the host provides.
    #[error("linking: {0}")]
    Link(String),
    /// Compiling took longer than the engine's deadline. The compile is left to finish on its
    /// worker thread (it is bounded by the shape limits) and its result is dropped.
    #[error("compiling took longer than the deadline of {} s; refused", deadline.as_secs_f64())]
    CompileDeadline {
        /// The deadline.
        deadline: Duration,
    },
    /// Refused earlier by this engine (its compile overran the deadline, or the version was
    /// quarantined): not compiled again.
    #[error("refused earlier: {0}")]
    RefusedBefore(String),
    /// Could not be instantiated (memory beyond the cap in all its memories, a start function
    /// that faults, the kind's share of the instance pool in use).
    #[error("instantiating: {0}")]
    Instantiate(String),
    /// Its `describe` call failed or returned nonsense.
    #[error("describe: {0}")]
    Describe(String),
    /// It needs more linear memory at start than the cap allows.
    #[error(
        "needs {} MiB of linear memory in all before it runs; the memory cap is {} MiB",
        needs.div_ceil(1 << 20),
        cap >> 20
    )]
    Memory {
        /// Bytes its memories start with, together.
        needs: u64,
        /// The cap, in bytes.
        cap: u64,
    },
}

impl PolicyEngine {
    /// An engine with these sandbox settings.
    pub fn new(config: EngineConfig) -> anyhow::Result<Self> {
        let shape = Shape::LIMITS;
        let instances = POOL_INSTANCES_PER_KIND * PolicyKind::ALL.len() as u32;
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(instances)
            .total_core_instances(instances * shape.core_instances)
            .total_memories(instances * shape.memories)
            .total_tables(instances * shape.tables)
            .max_core_instances_per_component(shape.core_instances)
            .max_memories_per_component(shape.memories)
            .max_tables_per_component(shape.tables)
            .max_memories_per_module(shape.memories)
            .max_tables_per_module(shape.tables)
            .table_elements(TABLE_ELEMENTS_PER_POLICY_MAX)
            .max_memory_size(config.memory_bytes_max)
            .linear_memory_keep_resident(KEEP_RESIDENT_BYTES)
            .table_keep_resident(KEEP_RESIDENT_BYTES)
            // Resets only the pages a call dirtied (Linux ≥ 6.7), not all kept bytes.
            .pagemap_scan(wasmtime::Enabled::Auto);
        let wasmtime = |strategy: Strategy| -> anyhow::Result<(Engine, Linker<HostState>)> {
            let mut wasm = Config::new();
            wasm.strategy(strategy)
                .consume_fuel(true) // deterministic CPU metering
                .cranelift_nan_canonicalization(true) // deterministic floats across machines
                // Relaxed SIMD with one semantics everywhere: without it an x86 and an aarch64
                // node answer differently (e.g. truncating NaN gives i32::MIN or 0).
                .relaxed_simd_deterministic(true)
                .concurrency_support(false) // no async component model: ~350 ns less per call
                .parallel_compilation(true)
                // Instance slots are reused: a swap does not map and unmap a fresh 4 GiB
                // reservation per instance (measured in BENCHMARKS.md).
                .allocation_strategy(InstanceAllocationStrategy::Pooling(pool.clone()));
            // For profiling policies: `LUCIOLE_PERFMAP=1` makes wasmtime write
            // /tmp/perf-<pid>.map, so `perf report` names guest functions.
            if std::env::var_os("LUCIOLE_PERFMAP").is_some() {
                wasm.profiler(wasmtime::ProfilingStrategy::PerfMap);
            }
            let engine = Engine::new(&wasm)?;
            let mut linker = Linker::new(&engine);
            add_log_to_linker(&mut linker)?;
            Ok((engine, linker))
        };
        let (engine, linker) = wasmtime(Strategy::Cranelift)?;
        let baseline = match config.baseline_from_bytes {
            Some(_) if cfg!(target_arch = "x86_64") => Some(wasmtime(Strategy::Winch)?),
            _ => None,
        };
        let inner = EngineInner {
            engine,
            linker,
            baseline,
            config,
            live: Arc::new(Default::default()),
            refused: Mutex::new(HashMap::new()),
        };
        Ok(Self { inner: Arc::new(inner) })
    }

    /// Takes one instance's share of the pool for `kind`, or says why not.
    pub(crate) fn reserve(&self, kind: PolicyKind) -> wasmtime::Result<PoolShare> {
        let at = PolicyKind::ALL.iter().position(|k| *k == kind).expect("a kind of ALL");
        let live = self.inner.live.clone();
        let taken = live[at].fetch_add(1, SeqCst);
        let share = PoolShare { live, kind: at };
        if taken >= POOL_INSTANCES_PER_KIND {
            return Err(wasmtime::Error::msg(format!(
                "the {kind} policies' share of the instance pool is in use \
                 ({POOL_INSTANCES_PER_KIND} live instances)"
            )));
        }
        Ok(share)
    }

    /// Live policy instances of `kind` on this engine.
    pub fn live_instances(&self, kind: PolicyKind) -> u32 {
        let at = PolicyKind::ALL.iter().position(|k| *k == kind).expect("a kind of ALL");
        self.inner.live[at].load(SeqCst)
    }

    /// The sandbox settings.
    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    /// The wasmtime engine (and its linker) that compiles and runs a component of `size`
    /// bytes: Winch's from [`EngineConfig::baseline_from_bytes`] on, else Cranelift's.
    pub(crate) fn engine_for(&self, size: usize) -> (&Engine, &Linker<HostState>) {
        let inner = &self.inner;
        match (&inner.baseline, inner.config.baseline_from_bytes) {
            (Some((engine, linker)), Some(from)) if size >= from => (engine, linker),
            _ => (&inner.engine, &inner.linker),
        }
    }

    /// Inspects, compiles (or loads the cached artifact), links, and calls `describe` once.
    pub fn load(&self, bytes: &[u8]) -> Result<Arc<LoadedPolicy>, LoadError> {
        let digest: [u8; 32] = Sha256::digest(bytes).into();
        // A component whose artifact this engine cached passed the full shape check when it
        // was compiled: its function bodies need not be read again.
        let compiled_before = self
            .inner
            .config
            .cache
            .as_ref()
            .is_some_and(|c| c.path(self.engine_for(bytes.len()).0, &digest).exists());
        let inspection = inspect::inspect_bodies(bytes, &Shape::LIMITS, !compiled_before)?;
        // Refused before compiling: a JavaScript or Python runtime takes seconds to compile.
        let cap = self.inner.config.memory_bytes_max as u64;
        if inspection.memory_bytes_min > cap {
            return Err(LoadError::Memory { needs: inspection.memory_bytes_min, cap });
        }
        if let Some(reason) = self.refused(&digest) {
            return Err(LoadError::RefusedBefore(reason));
        }
        let started = Instant::now();
        let (component, from_cache) = self.compile(digest, bytes)?;
        let compile_time = started.elapsed();
        let pre = self
            .engine_for(bytes.len())
            .1
            .instantiate_pre(&component)
            .map_err(|e| LoadError::Link(format!("{e:#}")))?;
        let raw = pre.clone();
        let pre =
            KindPre::new(inspection.kind, pre).map_err(|e| LoadError::Link(format!("{e:#}")))?;
        let mut meta = PolicyMeta {
            name: String::new(),
            version: String::new(),
            kind: inspection.kind,
            api_version: inspection.api_version,
            digest,
            size_bytes: bytes.len(),
        };
        let probe = LoadedPolicy {
            meta: Arc::new(meta.clone()),
            pre,
            engine: self.clone(),
            inspection,
            compile_time,
            from_cache,
        };
        let instance = probe.instantiate().map_err(|e| {
            // The bindings check every function at once; name the one that differs.
            let interface = probe
                .inspection
                .exports
                .iter()
                .find(|n| n.starts_with(&format!("{}/{}@", inspect::PACKAGE, probe.meta.kind)));
            let named = interface.and_then(|i| {
                let mut store = new_store(self, &probe.meta).ok()?;
                crate::signature::mismatch(&mut store, &raw, probe.meta.kind, i)
            });
            LoadError::Instantiate(named.unwrap_or_else(|| format!("{e:#}")))
        })?;
        let (name, version) =
            instance.describe().map_err(|f| LoadError::Describe(f.to_string()))?;
        check_name(&name).map_err(LoadError::Describe)?;
        if version.is_empty() || version.len() > POLICY_NAME_BYTES_MAX {
            return Err(LoadError::Describe(format!(
                "version {} is empty or longer than {POLICY_NAME_BYTES_MAX} bytes",
                echo(&version)
            )));
        }
        meta.name = name;
        meta.version = version;
        Ok(Arc::new(LoadedPolicy { meta: Arc::new(meta), ..probe }))
    }
}

impl PolicyEngine {
    fn refused(&self, digest: &[u8; 32]) -> Option<String> {
        self.inner.refused.lock().unwrap_or_else(|p| p.into_inner()).get(digest).cloned()
    }

    /// Refuses every later load of `digest` (a quarantined version), before compiling.
    pub(crate) fn refuse(&self, digest: [u8; 32], reason: String) {
        self.inner.refused.lock().unwrap_or_else(|p| p.into_inner()).insert(digest, reason);
    }

    /// Compiles on a worker thread, so that the caller (a thread that decides) waits at most
    /// the deadline. A compile that overruns it is refused and its digest remembered; the
    /// thread finishes on its own and its result is dropped.
    fn compile(&self, digest: [u8; 32], bytes: &[u8]) -> Result<(Component, bool), LoadError> {
        let (done, result) = std::sync::mpsc::sync_channel(1);
        let engine = self.clone();
        let bytes = bytes.to_vec();
        std::thread::Builder::new()
            .name("luciole-compile".into())
            .spawn(move || {
                let wasm = engine.engine_for(bytes.len()).0;
                let compiled = match &engine.inner.config.cache {
                    Some(cache) => cache.load_or_compile(wasm, &digest, &bytes),
                    None => Component::new(wasm, &bytes)
                        .map(|c| (c, false))
                        .map_err(anyhow::Error::from),
                };
                let _ = done.send(compiled.map_err(|e| format!("{e:#}")));
            })
            .map_err(|e| LoadError::Compile(format!("starting the compile thread: {e}")))?;
        let deadline = self.inner.config.compile_deadline;
        match result.recv_timeout(deadline) {
            Ok(compiled) => compiled.map_err(LoadError::Compile),
            Err(_) => {
                let err = LoadError::CompileDeadline { deadline };
                let mut refused = self.inner.refused.lock().unwrap_or_else(|p| p.into_inner());
                refused.insert(digest, err.to_string());
                Err(err)
            }
        }
    }
}

fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= POLICY_NAME_BYTES_MAX
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!("name {} is not 1 to 64 bytes of a-z, 0-9 and -", echo(name)))
    }
}

/// A policy's string as an error line shows it: quoted, at most 64 bytes of it, and its length
/// when cut.
pub(crate) fn echo(s: &str) -> String {
    let shown = crate::instance::truncate(s, POLICY_NAME_BYTES_MAX);
    if shown.len() == s.len() {
        format!("{s:?}")
    } else {
        format!("{shown:?}… ({} bytes)", s.len())
    }
}
