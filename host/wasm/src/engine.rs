//! The engine: wasmtime configured for deterministic, metered policies, and loading components
//! into [`LoadedPolicy`] values ready to instantiate.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::bindings::v0_1;
use crate::cache::ArtifactCache;
use crate::inspect::{self, ApiVersion, InspectError, Inspection, PolicyKind};
use crate::instance::{HostState, Instance, KindPre};
use luciole_proto::limits::POLICY_NAME_BYTES_MAX;

/// Default fuel per call: roughly 50 ms of guest work on this machine class; a placement of
/// 1,000 bubbles on 100 members by rendezvous needs about 2 % of it.
pub const FUEL_PER_CALL_DEFAULT: u64 = 50_000_000;
/// Default cap on a policy instance's linear memory.
pub const MEMORY_BYTES_MAX_DEFAULT: usize = 64 << 20;

/// Most policy instances alive at once per engine (the pooling allocator's slots). A slot
/// holds two (active and last good), a swap briefly a third, a load one more.
pub const POOL_COMPONENT_INSTANCES: u32 = 128;

/// Sandbox settings, the same for every policy the engine loads.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Fuel given to each call (wasmtime fuel units, about one per wasm instruction).
    pub fuel_per_call: u64,
    /// Most linear memory one policy instance may have, in bytes.
    pub memory_bytes_max: usize,
    /// Where precompiled artifacts are kept; `None` compiles every load.
    pub cache: Option<ArtifactCache>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            fuel_per_call: FUEL_PER_CALL_DEFAULT,
            memory_bytes_max: MEMORY_BYTES_MAX_DEFAULT,
            cache: None,
        }
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
    config: EngineConfig,
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
    /// Its `describe` call failed or returned nonsense.
    #[error("describe: {0}")]
    Describe(String),
    /// It needs more linear memory at start than the cap allows.
    #[error(
        "needs {} MiB of linear memory before it runs; the memory cap is {} MiB",
        needs.div_ceil(1 << 20),
        cap >> 20
    )]
    Memory {
        /// Bytes its largest memory starts with.
        needs: u64,
        /// The cap, in bytes.
        cap: u64,
    },
}

impl PolicyEngine {
    /// An engine with these sandbox settings.
    pub fn new(config: EngineConfig) -> anyhow::Result<Self> {
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(POOL_COMPONENT_INSTANCES)
            .total_core_instances(POOL_COMPONENT_INSTANCES * 4)
            .total_memories(POOL_COMPONENT_INSTANCES)
            .total_tables(POOL_COMPONENT_INSTANCES * 2)
            .max_memory_size(config.memory_bytes_max);
        let mut wasm = Config::new();
        wasm.consume_fuel(true) // deterministic CPU metering
            .cranelift_nan_canonicalization(true) // deterministic floats across machines
            .concurrency_support(false) // no async component model: ~350 ns less per call
            .parallel_compilation(true)
            // Instance slots are reused: a swap does not map and unmap a fresh 4 GiB
            // reservation per instance (measured in BENCHMARKS.md).
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        // For profiling policies: `LUCIOLE_PERFMAP=1` makes wasmtime write
        // /tmp/perf-<pid>.map, so `perf report` names guest functions (`wasm[0]::function[N]`).
        if std::env::var_os("LUCIOLE_PERFMAP").is_some() {
            wasm.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        let engine = Engine::new(&wasm)?;
        let mut linker = Linker::new(&engine);
        v0_1::coordinator::CoordinatorPolicy::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)?;
        Ok(Self { inner: Arc::new(EngineInner { engine, linker, config }) })
    }

    /// The sandbox settings.
    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    pub(crate) fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// Inspects, compiles (or loads the cached artifact), links, and calls `describe` once.
    pub fn load(&self, bytes: &[u8]) -> Result<Arc<LoadedPolicy>, LoadError> {
        let inspection = inspect::inspect(bytes)?;
        // Refused before compiling: a JavaScript or Python runtime takes seconds to compile.
        let cap = self.inner.config.memory_bytes_max as u64;
        if inspection.memory_bytes_min > cap {
            return Err(LoadError::Memory { needs: inspection.memory_bytes_min, cap });
        }
        let digest: [u8; 32] = Sha256::digest(bytes).into();
        let started = Instant::now();
        let (component, from_cache) = match &self.inner.config.cache {
            Some(cache) => cache.load_or_compile(&self.inner.engine, &digest, bytes),
            None => wasmtime::component::Component::new(&self.inner.engine, bytes)
                .map(|c| (c, false))
                .map_err(Into::into),
        }
        .map_err(|e| LoadError::Compile(format!("{e:#}")))?;
        let compile_time = started.elapsed();
        let pre = self
            .inner
            .linker
            .instantiate_pre(&component)
            .map_err(|e| LoadError::Link(format!("{e:#}")))?;
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
        let instance = probe.instantiate().map_err(|e| LoadError::Describe(format!("{e:#}")))?;
        let (name, version) =
            instance.describe().map_err(|f| LoadError::Describe(f.to_string()))?;
        check_name(&name).map_err(LoadError::Describe)?;
        if version.is_empty() || version.len() > POLICY_NAME_BYTES_MAX {
            return Err(LoadError::Describe(format!("version {version:?} is empty or too long")));
        }
        meta.name = name;
        meta.version = version;
        Ok(Arc::new(LoadedPolicy { meta: Arc::new(meta), ..probe }))
    }
}

fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= POLICY_NAME_BYTES_MAX
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok { Ok(()) } else { Err(format!("name {name:?} is not 1 to 64 bytes of a-z, 0-9 and -")) }
}
