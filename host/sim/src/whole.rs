//! `luciole-sim --cluster FAULT`: whole-cluster runs, one per seed, with the built-in
//! migration policy or a wasm component in every node's policy slot.

use std::time::Instant;

use anyhow::Context;
use luciole_sim::cluster::{self, ClusterSettings, Fault, replay};
use luciole_wasm::{EngineConfig, PolicyEngine};

use crate::Args;

/// The migration policy every node runs: `path`'s component, compiled once; a bad file is an
/// error before any run.
fn wasm_policy(path: &str) -> anyhow::Result<luciole_sim::cluster::PolicyFactory> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {path}"))?;
    let engine = PolicyEngine::new(EngineConfig::default())?;
    let loaded = engine.load(&bytes).with_context(|| path.to_owned())?;
    cluster::wasm_policy(loaded).with_context(|| path.to_owned())
}

pub(crate) fn run_all(args: &Args, fault: Fault) -> anyhow::Result<bool> {
    let mut settings = ClusterSettings::new(args.nodes.unwrap_or(5) as usize);
    settings.duration_ms = args.duration_ms.unwrap_or(settings.duration_ms);
    if args.policy != "builtin" {
        settings.policy = wasm_policy(&args.policy)?;
        settings.policy_name = args.policy.clone();
    }
    let mut failed = 0u64;
    let wall_all = Instant::now();
    for seed in args.seed..args.seed + args.seeds {
        let wall = Instant::now();
        match cluster::run(fault, seed, &settings) {
            Ok(o) => println!(
                "seed {seed}: {} on {} members: {} committed, {} aborted ({} back-and-forth asks), {} crashes, {} evictions, {} views, {} log records, {} checks, settled at {} ms, {:.0}x real time",
                fault.name(),
                settings.nodes,
                o.commits,
                o.aborts,
                o.ping_pongs,
                o.crashes,
                o.evictions,
                o.views,
                o.records,
                o.steps,
                o.simulated_ms,
                o.simulated_ms as f64 / 1_000.0 / wall.elapsed().as_secs_f64()
            ),
            Err(e) => {
                failed += 1;
                eprintln!("seed {seed}: INVARIANT BROKEN: {e}");
                eprintln!("replay: {}", replay(fault, seed, &settings));
            }
        }
    }
    if args.seeds > 1 {
        println!(
            "{} seeds, {failed} failed, {:.1} s",
            args.seeds,
            wall_all.elapsed().as_secs_f64()
        );
    }
    Ok(failed == 0)
}

pub(crate) fn run(args: &Args, fault: Fault) {
    match run_all(args, fault) {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(2);
        }
    }
}
