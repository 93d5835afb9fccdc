//! `luciole policy check` and `luciole policy componentize`.

use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use luciole_wasm::{EngineConfig, PolicyEngine, PolicyKind, PolicySlot, inspect};

/// Prints what a component is, and fails with one line if the node would refuse it.
pub fn check(file: &Path) -> anyhow::Result<()> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let info = inspect::inspect(&bytes).with_context(|| file.display().to_string())?;
    let engine = PolicyEngine::new(EngineConfig::default())?;
    let started = Instant::now();
    let loaded = engine.load(&bytes).with_context(|| file.display().to_string())?;
    let load_time = started.elapsed();
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
    println!("  compile      {:.1} ms (compile, link, describe)", load_time.as_secs_f64() * 1e3);
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
