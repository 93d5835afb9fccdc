//! Helpers for the integration tests: where the built plugin components are, and small views.
//!
//! The components are built by `cargo xtask plugins` (the README's test command does it first).

use std::path::PathBuf;
use std::sync::Arc;

use luciole_proto::placement::Bubble;
use luciole_proto::{BubbleId, Epoch, Member, MemberId, View};
use luciole_wasm::{EngineConfig, LoadedPolicy, PolicyEngine, PolicyView};

pub mod vectors;

/// Directory of the built components: `$LUCIOLE_PLUGIN_DIR`, else `target/plugins`.
pub fn plugin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("LUCIOLE_PLUGIN_DIR") {
        return dir.into();
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("plugins")
}

/// The value of `answer`, after checking that the active version named `policy` gave it (no
/// fallback, no fault); `case` names the input in the failure message.
pub fn active<T>(answer: luciole_wasm::Answer<T>, policy: &str, case: &str) -> T {
    assert!(
        matches!(&answer.by, luciole_wasm::AnsweredBy::Active(m) if m.name == policy),
        "{policy} / {case}: answered by {:?}, faults {:?}, declined {:?}",
        answer.by,
        answer.faults,
        answer.declined
    );
    answer.value
}

/// Directory of the built JavaScript and Python examples: `target/examples`.
pub fn example_dir() -> PathBuf {
    plugin_dir().with_file_name("examples")
}

/// The bytes of the built example `name` (`js-…` or `py-…`). Panics with the command to run if
/// it is missing.
pub fn example(name: &str) -> Vec<u8> {
    let path = example_dir().join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!("{}: {e}. Build the examples first: cargo xtask examples", path.display())
    })
}

/// An engine with these settings that keeps precompiled artifacts in `target/artifact-cache`,
/// so the JavaScript and Python runtimes are compiled once per build, not once per test.
pub fn cached_engine(mut config: EngineConfig) -> PolicyEngine {
    let dir = plugin_dir().with_file_name("artifact-cache");
    config.cache = Some(luciole_wasm::ArtifactCache::new(dir).expect("artifact cache"));
    PolicyEngine::new(config).expect("engine")
}

/// The bytes of the built component `name`. Panics with the command to run if it is missing.
pub fn component(name: &str) -> Vec<u8> {
    let path = plugin_dir().join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!("{}: {e}. Build the plugins first: cargo xtask plugins", path.display())
    })
}

/// An engine with default sandbox settings and no artifact cache.
pub fn engine() -> PolicyEngine {
    PolicyEngine::new(EngineConfig::default()).expect("engine")
}

/// Loads the built component `name`.
pub fn load(engine: &PolicyEngine, name: &str) -> Arc<LoadedPolicy> {
    engine.load(&component(name)).unwrap_or_else(|e| panic!("loading {name}: {e}"))
}

/// A view of `n` members with spread-out ids and capacity 100, prepared for policy calls.
pub fn view(epoch: u64, n: usize) -> PolicyView {
    PolicyView::new(View::new(Epoch(epoch), members(n)).expect("valid view"))
}

/// `n` members with spread-out ids (the high bit set on half of them) and capacity 100.
pub fn members(n: usize) -> Vec<Member> {
    (0..n as u128)
        .map(|i| {
            Member::new(
                MemberId((i + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835)),
                100,
            )
        })
        .collect()
}

/// Bubbles `0..n` with loads spread over 0..=99.
pub fn bubbles(n: u64) -> Vec<Bubble> {
    (0..n).map(|i| Bubble { load: (i * 37 % 100) as u32, ..Bubble::new(BubbleId(i)) }).collect()
}
