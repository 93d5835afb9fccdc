//! `luciole-sim`: runs one membership scenario from a seed and prints what happened. A broken
//! invariant prints the seed and the command that replays it, and exits 1.

mod report;

use clap::Parser;
use luciole_sim::membership::{Scenario, Settings, replay, run_with};

/// Run a deterministic membership scenario on virtual time.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// What happens.
    #[arg(long, value_enum, default_value_t = Scenario::Crash)]
    scenario: Scenario,
    /// Members in the first view (crashes of three need at least 12: a fast quorum is 3/4).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(4..=1_000))]
    nodes: u64,
    /// The seed: the same seed replays the same run.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Run this many seeds from `--seed` on.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    seeds: u64,
    /// Simultaneous crashes for `--scenario crashes`.
    #[arg(long, default_value_t = 3)]
    crashes: usize,
    /// Members at 80 % loss for `--scenario bad-node`.
    #[arg(long, default_value_t = 1)]
    bad: usize,
    /// How long loss, bad nodes and flapping last, in simulated ms.
    #[arg(long, default_value_t = 60_000)]
    duration_ms: u64,
    /// Time between two probes of one subject, in ms: detection takes about five of these,
    /// and steady traffic is proportional to their rate.
    #[arg(long, default_value_t = Settings::default().probe_ms,
        value_parser = clap::value_parser!(u64).range(10..=60_000))]
    probe_ms: u64,
    /// Suspicion-triggered probing (experimental; 0 = off, the default): a subject that
    /// answered is probed again only after this many ms; a missed answer makes its observers
    /// probe it every --probe-ms.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=60_000))]
    idle_probe_ms: u64,
    /// Observers a node cannot send to (`one-way`), or a joiner reaches (`partial-join`).
    #[arg(long, default_value_t = Settings::default().observers)]
    observers: usize,
    /// How long a one-way cut or a split lasts, in simulated ms.
    #[arg(long, default_value_t = Settings::default().heal_ms)]
    heal_ms: u64,
    /// The share of members on the smaller side of a `split`, in percent.
    #[arg(long, default_value_t = Settings::default().split_percent,
        value_parser = clap::value_parser!(u64).range(1..=50))]
    split_percent: u64,
    /// The share of all links that flap in `flaps`, in percent.
    #[arg(long, default_value_t = Settings::default().flap_percent,
        value_parser = clap::value_parser!(u64).range(0..=100))]
    flap_percent: u64,
    /// Instead of one scenario, run the whole membership report (BENCHMARKS.md) and print it
    /// as Markdown; takes minutes. `--seeds` and the scenario settings are ignored.
    #[arg(long)]
    report: bool,
    /// With `--report`: run the 1,000-member bad-node row for a simulated hour instead of two
    /// minutes (about half an hour of wall time more).
    #[arg(long, requires = "report")]
    long: bool,
    /// Instead of membership, run the write-ahead log: the node's log core, recovery and
    /// segment code over memory storage, with appends, checkpoints and power losses drawn from
    /// the seed, checked after every power loss. Takes `--seed`, `--seeds` and `--steps`.
    #[arg(long, conflicts_with = "report")]
    log: bool,
    /// With `--log`: steps of virtual time (one I/O or one append each).
    #[arg(long, default_value_t = 3_000, requires = "log",
        value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    steps: u64,
}

fn main() {
    let args = Args::parse();
    if args.report {
        if let Err(e) = report::run(args.seed, args.long) {
            eprintln!("INVARIANT BROKEN: {e}");
            std::process::exit(1);
        }
        return;
    }
    if args.log {
        return run_log(&args);
    }
    let mut failed = false;
    for seed in args.seed..args.seed + args.seeds {
        let settings = Settings {
            crashes: args.crashes,
            bad: args.bad,
            duration_ms: args.duration_ms,
            probe_ms: args.probe_ms,
            observers: args.observers,
            heal_ms: args.heal_ms,
            split_percent: args.split_percent,
            flap_percent: args.flap_percent,
            idle_probe_ms: args.idle_probe_ms,
        };
        let wall = std::time::Instant::now();
        match run_with(args.scenario, args.nodes as usize, seed, settings) {
            Ok(o) => {
                let mut d = o.detection_ms.clone();
                d.sort_unstable();
                let (p50, max) = (d.get(d.len() / 2).copied(), d.last().copied());
                println!(
                    "seed {seed}: {:?} on {} members: {} view change(s), fault to view p50 {} max {} ms, false evictions {}, quorum losses of healthy members {}, bytes/s per node mean {:.0} max {:.0}, messages/s per node mean {:.0}, settled {} ms after the faults stopped, {:.0}x real time",
                    args.scenario,
                    args.nodes,
                    o.view_changes,
                    p50.map_or("-".into(), |v| v.to_string()),
                    max.map_or("-".into(), |v| v.to_string()),
                    o.false_evictions,
                    o.quorum_losses,
                    o.bytes_per_s.0,
                    o.bytes_per_s.1,
                    o.msgs_per_s.0,
                    o.settled_ms,
                    o.simulated_ms as f64 / 1_000.0 / wall.elapsed().as_secs_f64()
                );
            }
            Err(e) => {
                failed = true;
                eprintln!("seed {seed}: INVARIANT BROKEN: {e}");
                eprintln!("replay: {}", replay(args.scenario, args.nodes as usize, seed, settings));
            }
        }
    }
    if failed {
        std::process::exit(1);
    }
}

/// `--log`: the write-ahead log scenario for each seed.
fn run_log(args: &Args) {
    let mut failed = false;
    for seed in args.seed..args.seed + args.seeds {
        match luciole_sim::wal::run(seed, args.steps) {
            Ok(o) => println!(
                "seed {seed}: write-ahead log, {} steps: {} appended, {} power losses, {} records checked after them, {} unacknowledged records lost",
                o.steps, o.appended, o.crashes, o.checked, o.lost_unacknowledged
            ),
            Err(e) => {
                failed = true;
                eprintln!("seed {seed}: INVARIANT BROKEN: {e}");
                eprintln!(
                    "replay: cargo run -p luciole-sim -- --log --seed {seed} --steps {}",
                    args.steps
                );
            }
        }
    }
    if failed {
        std::process::exit(1);
    }
}
