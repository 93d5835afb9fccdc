//! Simulator speed with migration on: one whole-cluster run (membership, the migration core and
//! the write-ahead log on every node, the conservation checker after every step) of 10 members
//! on a healthy network for 5 simulated seconds of workload plus the settling, with the
//! built-in migration policy and with the wasm `migration-standard` component in every node's
//! slot. Prints the simulated time and decisions of one run, so the median time per run gives
//! "× real time" and decisions per second.
//!
//! Needs the components: `cargo xtask plugins`, then `cargo bench -p luciole-tests --bench cluster`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use luciole_sim::cluster::{ClusterSettings, Fault, run, wasm_policy};
use luciole_tests::{engine, load};

fn settings() -> ClusterSettings {
    let mut s = ClusterSettings::new(10);
    s.duration_ms = 5_000;
    s.entities_per_node = 10;
    s.bubbles = 32;
    s.moves_per_s = 100;
    s
}

fn clusters(c: &mut Criterion) {
    let builtin = settings();
    let mut wasm = settings();
    wasm.policy =
        wasm_policy(load(&engine(), "migration-standard")).expect("a migration component");
    let o = run(Fault::None, 1, &builtin).expect("a clean run");
    println!(
        "one run: {} simulated ms, {} migrations committed (3 policy decisions each), {} checks, {} messages",
        o.simulated_ms, o.commits, o.steps, o.messages
    );
    let mut group = c.benchmark_group("whole cluster, 10 members, one run");
    group.sample_size(10);
    group.bench_function("built-in standard", |b| {
        b.iter(|| run(Fault::None, black_box(1), &builtin).expect("a clean run"))
    });
    group.bench_function("wasm migration-standard", |b| {
        b.iter(|| run(Fault::None, black_box(1), &wasm).expect("a clean run"))
    });
    group.finish();
    // The CLI's default load (8 entities per member, 16 bubbles, 40 moves/s), same duration.
    let mut light = ClusterSettings::new(10);
    light.duration_ms = 5_000;
    let o = run(Fault::None, 1, &light).expect("a clean run");
    println!("default load: {} simulated ms, {} migrations committed", o.simulated_ms, o.commits);
    let mut group = c.benchmark_group("whole cluster, 10 members, default load, one run");
    group.sample_size(10);
    group.bench_function("built-in standard", |b| {
        b.iter(|| run(Fault::None, black_box(1), &light).expect("a clean run"))
    });
    group.finish();
}

criterion_group!(benches, clusters);
criterion_main!(benches);
