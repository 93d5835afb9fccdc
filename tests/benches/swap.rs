//! Node-local hot-swap latency with precompiled artifacts, while another thread keeps calling
//! the slot, beside a baseline run with no caller. Prints medians and tails.
//!
//! `cargo xtask plugins && cargo bench -p luciole-tests --bench swap`
//!
//! Two latencies per swap:
//! * `load+swap`: read the precompiled artifact from the cache (mmap), link, `describe`, then
//!   instantiate, smoke-call and publish (what an operator's swap command costs);
//! * `swap`: instantiate, smoke-call and publish an already loaded version.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use luciole_tests::{component, view};
use luciole_wasm::{
    AnsweredBy, ArtifactCache, Coordinator, EngineConfig, PolicyEngine, PolicySlot,
};

const SWAPS: usize = 1000;

fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    let dir = std::env::temp_dir().join(format!("luciole-bench-swap-{}", std::process::id()));
    let cache = ArtifactCache::new(&dir).expect("cache dir");
    let engine =
        PolicyEngine::new(EngineConfig { cache: Some(cache), ..EngineConfig::default() }).unwrap();
    let versions = [component("coordinator-lowest-id"), component("coordinator-sticky")];
    for bytes in &versions {
        let loaded = engine.load(bytes).unwrap(); // compiles once and stores the artifact
        assert!(!loaded.from_cache);
    }
    println!("swap latency, {SWAPS} swaps alternating lowest-id and sticky, precompiled artifacts");
    run(&engine, &versions, false);
    run(&engine, &versions, true);
    let _ = std::fs::remove_dir_all(&dir);
}

fn run(engine: &PolicyEngine, versions: &[Vec<u8>; 2], with_caller: bool) {
    let slot = Arc::new(PolicySlot::<Coordinator>::new());
    slot.swap(&engine.load(&versions[0]).unwrap()).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let (calls, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let caller = with_caller.then(|| {
        let (slot, stop, calls, failed) =
            (slot.clone(), stop.clone(), calls.clone(), failed.clone());
        std::thread::spawn(move || {
            let v = view(1, 100);
            let mut latencies = Vec::new();
            while !stop.load(Relaxed) {
                let started = Instant::now();
                let answer = slot.choose(&v, None);
                latencies.push(started.elapsed());
                if !matches!(answer.by, AnsweredBy::Active(_)) || !answer.faults.is_empty() {
                    failed.fetch_add(1, Relaxed);
                }
                calls.fetch_add(1, Relaxed);
            }
            latencies
        })
    });
    let (mut full, mut swap) = (Vec::with_capacity(SWAPS), Vec::with_capacity(SWAPS));
    for i in 0..SWAPS {
        let started = Instant::now();
        let loaded = engine.load(&versions[(i + 1) % 2]).unwrap();
        assert!(loaded.from_cache);
        let swapping = Instant::now();
        slot.swap(&loaded).unwrap();
        swap.push(swapping.elapsed());
        full.push(started.elapsed());
        std::thread::sleep(Duration::from_micros(200));
    }
    stop.store(true, Relaxed);
    let call_latencies = caller.map(|c| c.join().unwrap());
    let label = if with_caller { "with a caller thread" } else { "baseline, no caller" };
    println!("  {label}:");
    println!("    load+swap  {}", summary(&mut full));
    println!("    swap       {}", summary(&mut swap));
    if let Some(mut l) = call_latencies {
        println!(
            "    calls during the swaps: {} ({} failed)  call latency {}",
            calls.load(Relaxed),
            failed.load(Relaxed),
            summary(&mut l)
        );
    }
}

fn summary(v: &mut [Duration]) -> String {
    v.sort();
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1e6;
    format!(
        "p50 {:>8.1} µs  p90 {:>8.1} µs  p99 {:>8.1} µs  max {:>8.1} µs",
        at(0.5),
        at(0.9),
        at(0.99),
        at(1.0)
    )
}
