//! The whole cluster on the simulator: membership, migration and the write-ahead log on every
//! node, under each fault class, for a fixed list of seeds (`luciole-sim --cluster` runs
//! sweeps). A failure prints the seed's replay command.

use luciole_sim::cluster::{ClusterSettings, Fault, replay, run};

fn seeds(fault: Fault, seeds: std::ops::Range<u64>) {
    let settings = ClusterSettings::new(5);
    for seed in seeds {
        match run(fault, seed, &settings) {
            Ok(o) => {
                assert!(o.commits > 0, "{fault:?} seed {seed}: nothing committed: {o:?}");
                eprintln!("{fault:?} seed {seed}: {o:?}");
            }
            Err(e) => panic!(
                "{fault:?} seed {seed}: INVARIANT BROKEN: {e}\nreplay: {}",
                replay(fault, seed, &settings)
            ),
        }
    }
}

#[test]
fn a_healthy_cluster_moves_entities_back_and_forth() {
    seeds(Fault::None, 1..3);
}

#[test]
fn each_fault_class_keeps_every_entity_once() {
    for fault in Fault::ALL {
        seeds(fault, 1..3);
    }
}
