//! `luciole policy check` and `luciole policy componentize`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use luciole_wasm::{
    ArtifactCache, EngineConfig, Inspection, LoadedPolicy, PolicyEngine, PolicyKind, PolicySlot,
    inspect,
};

/// Which artifact cache a command uses.
#[derive(Debug, Clone, Copy)]
pub enum Cache<'a> {
    /// This directory (an error if it cannot be made).
    Dir(&'a Path),
    /// [`default_cache_dir`], or none if it cannot be made.
    Default,
    /// None.
    None,
}

/// Where compiled policy artifacts are kept unless told otherwise: `~/.cache/luciole/artifacts`.
pub fn default_cache_dir() -> PathBuf {
    match std::env::var_os("HOME") {
        Some(home) => PathBuf::from(home).join(".cache/luciole/artifacts"),
        None => std::env::temp_dir().join("luciole-artifacts"),
    }
}

/// The artifact cache in [`default_cache_dir`], or none (with a warning) when that directory
/// cannot be made: the default must never stop a node or a check, only slow it down.
pub fn default_cache() -> Option<ArtifactCache> {
    let dir = default_cache_dir();
    match ArtifactCache::new(&dir) {
        Ok(cache) => Some(cache),
        Err(e) => {
            eprintln!("warning: no artifact cache ({e:#}); components are compiled on every load");
            None
        }
    }
}

impl<'a> Cache<'a> {
    /// The cache the `--cache-dir` and `--no-cache` flags of a `policy` command choose.
    pub fn from_flags(cache_dir: Option<&'a Path>, no_cache: bool) -> Self {
        match (cache_dir, no_cache) {
            (_, true) => Cache::None,
            (Some(dir), false) => Cache::Dir(dir),
            (None, false) => Cache::Default,
        }
    }

    fn open(self) -> anyhow::Result<Option<ArtifactCache>> {
        Ok(match self {
            Cache::Dir(dir) => Some(ArtifactCache::new(dir)?),
            Cache::Default => default_cache(),
            Cache::None => None,
        })
    }
}

/// A component as a `policy` command loads it: what it declares, and how long loading took.
pub struct Loaded {
    /// What inspecting its bytes found (kind, API version, imports, exports, size).
    pub info: Inspection,
    /// The compiled component.
    pub policy: Arc<LoadedPolicy>,
    /// Compiling (or loading the cached artifact), linking and describing it.
    pub took: Duration,
}

/// Reads and inspects `file`; unless `kind_ok` refuses its kind, compiles it (through
/// `cache`). Every error names the file.
pub fn load(
    file: &Path,
    cache: Cache<'_>,
    kind_ok: impl FnOnce(PolicyKind) -> anyhow::Result<()>,
) -> anyhow::Result<Loaded> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let info = inspect::inspect(&bytes).with_context(|| file.display().to_string())?;
    kind_ok(info.kind).with_context(|| file.display().to_string())?;
    let engine =
        PolicyEngine::new(EngineConfig { cache: cache.open()?, ..EngineConfig::default() })?;
    let started = Instant::now();
    let policy = engine.load(&bytes).with_context(|| file.display().to_string())?;
    Ok(Loaded { info, policy, took: started.elapsed() })
}

/// Prints what a component is, and fails with one line if the node would refuse it. With a
/// cache directory, a compiled component is kept there and later checks (and nodes and demos
/// using the same directory) load it instead of compiling again.
pub fn check(file: &Path, cache: Cache<'_>) -> anyhow::Result<()> {
    let Loaded { info, policy: loaded, took: load_time } = load(file, cache, |_| Ok(()))?;
    let meta = loaded.meta();
    let smoke = match info.kind {
        PolicyKind::Coordinator => {
            PolicySlot::<luciole_wasm::Coordinator>::new().swap(&loaded).map(|_| ())
        }
        PolicyKind::Placement => {
            PolicySlot::<luciole_wasm::Placement>::new().swap(&loaded).map(|_| ())
        }
        PolicyKind::Migration => {
            PolicySlot::<luciole_wasm::Migration>::new().swap(&loaded).map(|_| ())
        }
    };
    smoke.with_context(|| format!("{}: smoke call", file.display()))?;
    println!("{}", file.display());
    println!("  policy       {} {}", meta.name, meta.version);
    println!("  kind         {} (world luciole:policy/{})", info.kind, info.kind.world());
    println!(
        "  api version  {}{}",
        info.api_version,
        if info.version_from_section { "" } else { " (from export names; no SDK section)" }
    );
    println!("  size         {} bytes", info.size_bytes);
    println!("  sha256       {}", hex_digest(&meta.digest));
    let how = if loaded.from_cache {
        "load the precompiled artifact, link, describe"
    } else {
        "compile, link, describe"
    };
    println!("  load         {:.1} ms ({how})", load_time.as_secs_f64() * 1e3);
    let compiler = if loaded.from_cache { "artifact loaded" } else { "compiled" };
    println!("  compile      {:.1} ms ({compiler})", loaded.compile_time.as_secs_f64() * 1e3);
    println!("  imports      {}", list(&info.imports));
    println!("  exports      {}", list(&info.exports));
    println!("  smoke call   ok");
    Ok(())
}

fn list(items: &[String]) -> String {
    if items.is_empty() { "(none)".into() } else { items.join(", ") }
}

fn hex_digest(d: &[u8; 32]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// Wraps a core module into a component.
pub fn componentize(input: &Path, output: &Path) -> anyhow::Result<()> {
    let core = std::fs::read(input).with_context(|| format!("reading {}", input.display()))?;
    let component = luciole_wasm::componentize::componentize(&core)
        .with_context(|| input.display().to_string())?;
    std::fs::write(output, &component).with_context(|| format!("writing {}", output.display()))?;
    println!("{} -> {} ({} bytes)", input.display(), output.display(), component.len());
    Ok(())
}
