//! What loading a policy component costs, per language: the first load on a machine (inspect,
//! compile, link, `describe` — what `luciole policy check` or a node's first swap to a new
//! version pays) and the load from the artifact cache afterwards (every later swap, restart
//! and `policy check`), with the compile time and the artifact's size. Each component is
//! loaded by the default engine (Winch for components from
//! `luciole_wasm::BASELINE_FROM_BYTES_DEFAULT` bytes on, Cranelift below) and by an engine
//! that compiles everything with Cranelift (the engine before Winch was added).
//!
//! Needs the components: `cargo xtask plugins && cargo xtask examples`, then
//! `cargo bench -p luciole-tests --bench first_load [-- --runs N]` (default 3 cold loads per
//! component; each takes seconds for the interpreters).

use std::time::{Duration, Instant};

use luciole_tests::{component, example};
use luciole_wasm::{ArtifactCache, EngineConfig, PolicyEngine, inspect};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort_unstable();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1e3;
    if ms >= 100.0 { format!("{ms:.0} ms") } else { format!("{ms:.2} ms") }
}

fn mb(bytes: u64) -> String {
    if bytes >= 1_000_000 {
        format!("{:.1} MB", bytes as f64 / 1e6)
    } else {
        format!("{} KB", bytes.div_ceil(1000))
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let runs = args
        .iter()
        .position(|a| a == "--runs")
        .and_then(|i| args.get(i + 1))
        .map(|n| n.parse::<usize>().expect("--runs N: a number"))
        .unwrap_or(3)
        .max(1);
    let components = [
        ("Rust", "coordinator-lowest-id", component("coordinator-lowest-id")),
        ("JavaScript", "js-coordinator-lowest-id", example("js-coordinator-lowest-id")),
        ("Python", "py-coordinator-lowest-id", example("py-coordinator-lowest-id")),
    ];
    println!(
        "{runs} cold load(s) per component, each on a fresh engine with no cache; 10 cached loads"
    );
    println!(
        "| language | component | size | engine | inspect | compile | first load | artifact | cached load |"
    );
    println!("|---|---|---:|---|---:|---:|---:|---:|---:|");
    let cranelift = EngineConfig { baseline_from_bytes: None, ..EngineConfig::default() };
    let engines = [("Cranelift only (before)", cranelift), ("default", EngineConfig::default())];
    for ((lang, name, bytes), (engine_name, config)) in
        components.iter().flat_map(|c| engines.clone().map(|e| (c, e)))
    {
        let compiler = match config.baseline_from_bytes {
            Some(from) if bytes.len() >= from && cfg!(target_arch = "x86_64") => "Winch",
            _ => "Cranelift",
        };
        let engine_name = format!("{engine_name}: {compiler}");
        let inspects: Vec<Duration> = (0..runs)
            .map(|_| {
                let t = Instant::now();
                inspect::inspect(bytes).expect("inspects");
                t.elapsed()
            })
            .collect();
        let (mut compiles, mut firsts) = (Vec::new(), Vec::new());
        for run in 0..runs {
            eprintln!("{name}: cold load {}/{runs}", run + 1);
            let engine = PolicyEngine::new(config.clone()).expect("engine");
            let t = Instant::now();
            let loaded = engine.load(bytes).expect("loads");
            firsts.push(t.elapsed());
            assert!(!loaded.from_cache);
            compiles.push(loaded.compile_time);
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let cache = ArtifactCache::new(dir.path()).expect("cache");
        let engine = PolicyEngine::new(EngineConfig { cache: Some(cache), ..config.clone() })
            .expect("engine");
        engine.load(bytes).expect("fills the cache");
        let artifact: u64 = std::fs::read_dir(dir.path())
            .expect("cache dir")
            .filter_map(|e| e.ok()?.metadata().ok())
            .map(|m| m.len())
            .sum();
        let cached: Vec<Duration> = (0..10)
            .map(|_| {
                let t = Instant::now();
                let loaded = engine.load(bytes).expect("loads");
                assert!(loaded.from_cache);
                t.elapsed()
            })
            .collect();
        println!(
            "| {lang} | {name} | {} | {engine_name} | {} | {} | **{}** | {} | **{}** |",
            mb(bytes.len() as u64),
            ms(median(inspects)),
            ms(median(compiles)),
            ms(median(firsts)),
            mb(artifact),
            ms(median(cached)),
        );
    }
}
