//! The write-ahead log on the simulator: seeds `0..LUCIOLE_SIM_SEEDS` (default 40), each a run
//! of appends, checkpoints, writes, syncs and power losses on the node's own log code.

use luciole_sim::wal::run;

#[test]
fn acknowledged_records_survive_every_power_loss_on_every_seed() {
    let seeds: u64 =
        std::env::var("LUCIOLE_SIM_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(40);
    let mut total = luciole_sim::wal::WalOutcome::default();
    for seed in 0..seeds {
        let o = run(seed, 3_000).unwrap_or_else(|e| {
            panic!(
                "seed {seed}: {e}\nreplay: cargo run -p luciole-sim -- --log --seed {seed} --steps 3000"
            )
        });
        total.crashes += o.crashes;
        total.checked += o.checked;
        total.lost_unacknowledged += o.lost_unacknowledged;
        total.appended += o.appended;
    }
    eprintln!("{seeds} seeds: {total:?}");
    // The runs did what they are for: power losses that caught records in flight.
    assert!(total.crashes >= seeds * 20, "{total:?}");
    assert!(total.checked > total.crashes * 10, "{total:?}");
    assert!(total.lost_unacknowledged > 0, "no crash ever caught an unsynced write: {total:?}");
}

#[test]
fn a_run_is_a_function_of_its_seed() {
    assert_eq!(run(7, 2_000), run(7, 2_000));
}
