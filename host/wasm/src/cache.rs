//! Precompiled artifacts on disk, so that loading a policy a second time (or swapping back to
//! it) costs a memory map instead of a compile: milliseconds for a JS or Python interpreter
//! component instead of seconds.
//!
//! An artifact is keyed by the sha256 of the component and by the engine's compatibility hash
//! (wasmtime version, target, and the settings that change code generation such as fuel
//! metering). An artifact from another wasmtime or other settings is simply never looked up.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};

use anyhow::Context;
use wasmtime::Engine;
use wasmtime::component::Component;

/// A directory of precompiled components.
#[derive(Debug, Clone)]
pub struct ArtifactCache {
    dir: PathBuf,
}

impl ArtifactCache {
    /// A cache in `dir` (created if missing).
    pub fn new(dir: impl Into<PathBuf>) -> anyhow::Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("creating artifact cache {}", dir.display()))?;
        Ok(Self { dir })
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the artifact of `digest` for `engine` lives.
    pub fn path(&self, engine: &Engine, digest: &[u8; 32]) -> PathBuf {
        let mut h = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        self.dir.join(format!("{}-{:016x}.cwasm", hex::encode(digest), h.finish()))
    }

    /// Loads the artifact if present, else compiles `bytes` and stores the artifact. Returns
    /// the component and whether it came from the cache. A damaged artifact is recompiled.
    pub fn load_or_compile(
        &self,
        engine: &Engine,
        digest: &[u8; 32],
        bytes: &[u8],
    ) -> anyhow::Result<(Component, bool)> {
        let path = self.path(engine, digest);
        if path.exists() {
            // SAFETY: the file was written by `store` below from `Component::serialize` of an
            // engine with the same compatibility hash (it is part of the name), and is renamed
            // into place only once complete. wasmtime also checks the header and version.
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(c) => return Ok((c, true)),
                // Recompile; a good compile overwrites the artifact. Not removed here: the
                // error may be this engine's limits, not a damaged file.
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "artifact not loaded, recompiling");
                }
            }
        }
        let component = Component::new(engine, bytes)?;
        if let Err(e) = self.store(&path, &component) {
            tracing::warn!(path = %path.display(), error = %e, "could not store artifact");
        }
        Ok((component, false))
    }

    fn store(&self, path: &Path, component: &Component) -> anyhow::Result<()> {
        let bytes = component.serialize()?;
        // Unique per process and per call: threads of one process may store the same artifact.
        static STORES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = STORES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = path.with_extension(format!("tmp{}-{n}", std::process::id()));
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    }
}
