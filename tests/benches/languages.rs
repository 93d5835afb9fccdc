//! The same policies in Rust, JavaScript and Python, on the same inputs: compile time, load
//! from the precompiled artifact, instantiate (a swap's preparation), and per-call latency: on a
//! fresh instantiation made ahead (`call`), and instantiating first (`call, instantiating`).
//!
//! Needs the components: `cargo xtask plugins && cargo xtask examples`, then
//! `cargo bench -p luciole-tests --bench languages` (`-- --no-compile` skips the cold compiles,
//! which take seconds each for the interpreters; `--cranelift` compiles the interpreters with
//! Cranelift instead of Winch).

use std::sync::Arc;
use std::time::{Duration, Instant};

use luciole_proto::BubbleId;
use luciole_proto::placement::Bubble;
use luciole_tests::{component, example, plugin_dir, view};
use luciole_wasm::{
    AnsweredBy, ArtifactCache, Coordinator, EngineConfig, LoadedPolicy, Placement, PolicyEngine,
    PolicySlot,
};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort_unstable();
    v[v.len() / 2]
}

fn size(bytes: usize) -> String {
    if bytes >= 1 << 20 {
        format!("{:.1} MB", bytes as f64 / 1e6)
    } else {
        format!("{} KB", bytes / 1000)
    }
}

fn us(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us >= 10_000.0 { format!("{:.1} ms", us / 1000.0) } else { format!("{us:.1} µs") }
}

fn main() {
    let compile = !std::env::args().any(|a| a == "--no-compile");
    // `--cranelift`: every component compiled by Cranelift (the engine before Winch compiled
    // the interpreters), to compare calls under both compilers.
    let base = if std::env::args().any(|a| a == "--cranelift") {
        EngineConfig { baseline_from_bytes: None, ..EngineConfig::default() }
    } else {
        EngineConfig::default()
    };
    let cache_dir = plugin_dir().with_file_name("bench-artifact-cache");
    let cached = PolicyEngine::new(EngineConfig {
        cache: Some(ArtifactCache::new(&cache_dir).unwrap()),
        ..base.clone()
    })
    .unwrap();
    let uncached = PolicyEngine::new(base).unwrap();
    let coordinators = [
        ("Rust", "coordinator-lowest-id", component("coordinator-lowest-id")),
        ("JavaScript", "js-coordinator-lowest-id", example("js-coordinator-lowest-id")),
        ("Python", "py-coordinator-lowest-id", example("py-coordinator-lowest-id")),
    ];
    let placements = [
        ("Rust", "placement-rendezvous", component("placement-rendezvous")),
        ("JavaScript", "js-placement-rendezvous", example("js-placement-rendezvous")),
        ("Python", "py-placement-rendezvous", example("py-placement-rendezvous")),
    ];
    let v100 = view(7, 100);
    let v10 = view(7, 10);
    let bubbles: Vec<Bubble> = (0..100).map(|i| Bubble::new(BubbleId(i))).collect();
    println!(
        "| policy | language | size | compile | load (artifact) | instantiate | call | call, instantiating |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    for (kind, set) in [
        ("coordinator, 100 members", &coordinators),
        ("placement, 100 bubbles on 10 members", &placements),
    ] {
        for (lang, _name, bytes) in set.iter() {
            let compile_time = if compile {
                let t = Instant::now();
                uncached.load(bytes).unwrap();
                us(t.elapsed())
            } else {
                "—".into()
            };
            cached.load(bytes).unwrap(); // make sure the artifact is there
            let loads: Vec<Duration> = (0..10)
                .map(|_| {
                    let t = Instant::now();
                    let l = cached.load(bytes).unwrap();
                    assert!(l.from_cache);
                    t.elapsed()
                })
                .collect();
            let loaded: Arc<LoadedPolicy> = cached.load(bytes).unwrap();
            let (instantiate, call) = if kind.starts_with("coordinator") {
                let slot = PolicySlot::<Coordinator>::new();
                let swaps: Vec<Duration> =
                    (0..10).map(|_| slot.swap(&loaded).unwrap().prepare_time).collect();
                let n = if *lang == "Rust" { 5000 } else { 500 };
                let call = |prepared: bool| {
                    if prepared {
                        slot.prepare(); // untimed, as the node does after a decision
                    }
                    let t = Instant::now();
                    let a = slot.choose(&v100, None);
                    let d = t.elapsed();
                    assert!(matches!(a.by, AnsweredBy::Active(_)), "{lang}: {:?}", a.faults);
                    d
                };
                let calls: Vec<Duration> = (0..n).map(|_| call(true)).collect();
                let inline: Vec<Duration> = (0..n / 5).map(|_| call(false)).collect();
                (median(swaps), (median(calls), median(inline)))
            } else {
                let slot = PolicySlot::<Placement>::new();
                let swaps: Vec<Duration> =
                    (0..10).map(|_| slot.swap(&loaded).unwrap().prepare_time).collect();
                let n = if *lang == "Rust" { 2000 } else { 100 };
                let call = |prepared: bool| {
                    if prepared {
                        slot.prepare();
                    }
                    let t = Instant::now();
                    let a = slot.place(&v10, &bubbles, &[]);
                    let d = t.elapsed();
                    assert!(matches!(a.by, AnsweredBy::Active(_)), "{lang}: {:?}", a.faults);
                    d
                };
                let calls: Vec<Duration> = (0..n).map(|_| call(true)).collect();
                let inline: Vec<Duration> = (0..n / 5).map(|_| call(false)).collect();
                (median(swaps), (median(calls), median(inline)))
            };
            println!(
                "| {kind} | {lang} | {} | {compile_time} | {} | {} | {} | {} |",
                size(bytes.len()),
                us(median(loads)),
                us(instantiate),
                us(call.0),
                us(call.1)
            );
        }
    }
}
