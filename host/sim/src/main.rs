//! `luciole-sim`: runs one membership scenario from a seed and prints what happened. A broken
//! invariant prints the seed and the command that replays it, and exits 1.

mod report;
mod whole;

use clap::Parser;
use luciole_sim::cluster::Fault;
use luciole_sim::membership::{Scenario, Settings, replay, run_with};

/// Run a deterministic membership scenario on virtual time.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// What happens.
    #[arg(long, value_enum, default_value_t = Scenario::Crash)]
    scenario: Scenario,
    /// Members in the first view, 20 unless set (5 with `--cluster`). Crashes of three need
    /// at least 12: a fast quorum is 3/4.
    #[arg(long, value_parser = clap::value_parser!(u64).range(4..=1_000))]
    nodes: Option<u64>,
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
    /// How long loss, bad nodes and flapping last, in simulated ms: 60,000 unless set (20,000
    /// with `--cluster`, where it is how long the workload and the faults last).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1_000..=10_000_000))]
    duration_ms: Option<u64>,
    /// Time between two probes of one subject, in ms: detection takes about five of these,
    /// and steady traffic is proportional to their rate.
    #[arg(long, default_value_t = Settings::default().probe_ms,
        value_parser = clap::value_parser!(u64).range(10..=60_000))]
    probe_ms: u64,
    /// Suspicion-triggered probing in views of at least --idle-from-members members (0 = off):
    /// a subject that answered is probed again only after this many ms; a missed answer makes
    /// its observers probe it every --probe-ms.
    #[arg(long, default_value_t = Settings::default().idle_probe_ms,
        value_parser = clap::value_parser!(u64).range(0..=60_000))]
    idle_probe_ms: u64,
    /// The smallest view that probes idly; smaller views probe every subject every --probe-ms.
    #[arg(long, default_value_t = Settings::default().idle_from_members,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_000_000))]
    idle_from_members: usize,
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
    /// Instead of membership alone, run the whole cluster under this fault class: membership,
    /// the migration core and the write-ahead log on every node, entities created, updated and
    /// moved (one back and forth between two members, others at random, whole bubbles when the
    /// placement changes), with the conservation checker after every step. Takes `--nodes`
    /// (5 unless set), `--seed`, `--seeds`, `--duration-ms` (20 s unless set) and `--policy`.
    #[arg(long, value_enum, conflicts_with_all = ["report", "log"])]
    cluster: Option<Fault>,
    /// With `--cluster`: the migration policy, `builtin` or the path of a migration policy
    /// component (`.wasm`, e.g. target/plugins/migration-standard.wasm after
    /// `cargo xtask plugins`), run under fuel in every node's policy slot.
    #[arg(long, default_value = "builtin", requires = "cluster")]
    policy: String,
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
    if let Some(fault) = args.cluster {
        return whole::run(&args, fault);
    }
    let nodes = args.nodes.unwrap_or(20);
    let mut failed = false;
    for seed in args.seed..args.seed + args.seeds {
        let settings = Settings {
            crashes: args.crashes,
            bad: args.bad,
            duration_ms: args.duration_ms.unwrap_or(60_000),
            probe_ms: args.probe_ms,
            observers: args.observers,
            heal_ms: args.heal_ms,
            split_percent: args.split_percent,
            flap_percent: args.flap_percent,
            idle_probe_ms: args.idle_probe_ms,
            idle_from_members: args.idle_from_members,
        };
        let wall = std::time::Instant::now();
        match run_with(args.scenario, nodes as usize, seed, settings) {
            Ok(o) => {
                let mut d = o.detection_ms.clone();
                d.sort_unstable();
                let (p50, max) = (d.get(d.len() / 2).copied(), d.last().copied());
                println!(
                    "seed {seed}: {:?} on {} members: {} view change(s), fault to view p50 {} max {} ms, false evictions {}, quorum losses of healthy members {}, bytes/s per node mean {:.0} max {:.0}, messages/s per node mean {:.0}, settled {} ms after the faults stopped, {:.0}x real time",
                    args.scenario,
                    nodes,
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
                eprintln!("replay: {}", replay(args.scenario, nodes as usize, seed, settings));
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
