//! The whole cluster on the simulator: every node runs membership, the migration core and its
//! write-ahead log ([`ClusterNode`]); a workload spawns entities, updates them and moves them
//! (at random, one of them back and forth between two members, and whole bubbles whenever the
//! placement changes); faults from the chosen [`Fault`] class strike on a timeline drawn from
//! the seed. After every step the [`Conservation`] checker runs; at the end faults stop and
//! every migration must resolve, every entity be owned once, at its bubble's home.

mod check;
mod node;

use std::collections::BTreeMap;
use std::rc::Rc;

use luciole_proto::membership::monitor::MonitorConfig;
use luciole_proto::membership::node::ViewChange;
use luciole_proto::migration::{MigrationConfig, MigrationPolicy, Standard};
use luciole_proto::{BubbleId, EntityId, MemberId};

pub use check::Conservation;
pub use node::{
    ClusterNode, CrashPoint, Disk, Migrations, NodeSettings, NodeStats, PolicyFactory,
    REJOIN_AFTER_MS, Wire,
};

use crate::membership::{info_of, member_id, random_clock};
use crate::{Rng, Sim};

/// A migration policy factory for `loaded`, a migration component: each node life gets a
/// fresh policy slot holding it (fuel, checks and fallback as on a node). Refused if a slot
/// does not take it (tried once here; every later slot is fresh and takes the same).
pub fn wasm_policy(
    loaded: std::sync::Arc<luciole_wasm::LoadedPolicy>,
) -> Result<PolicyFactory, luciole_wasm::SwapError> {
    use luciole_wasm::{Migration, MigrationDecider, PolicySlot};
    PolicySlot::<Migration>::new().swap(&loaded)?;
    Ok(Rc::new(move |_| {
        let slot = std::sync::Arc::new(PolicySlot::<Migration>::new());
        let _ = slot.swap(&loaded);
        Box::new(MigrationDecider(slot)) as Box<dyn MigrationPolicy>
    }))
}

/// What goes wrong in a run, beside the workload (which always runs, A→B→A→B included).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Fault {
    /// Nothing: moves back and forth and at random on a healthy cluster.
    None,
    /// One member's disk syncs take 150–600 ms (its prepares are slow but succeed, or the
    /// source gives up first).
    SlowPrepare,
    /// Every source's disk syncs take 150–600 ms: commits are slow but succeed.
    SlowCommit,
    /// 20 % of messages are duplicated and delays spread 1–60 ms (reordering).
    Duplicates,
    /// 10 % of messages are lost.
    Loss,
    /// A member that takes part in migrations pauses for 4 s: it is evicted mid-migration,
    /// learns it, and joins again.
    Evict,
    /// Two of the members (a source among them) are cut off for 5 s.
    Minority,
    /// Members crash right after a log write, right after a sync, right after sending a
    /// migration message, and at random moments; each restarts from its log 0.2–4 s later.
    Crashes,
    /// All of the above, at random moments.
    Chaos,
}

impl Fault {
    /// Every class, in the order the CI list runs them.
    pub const ALL: [Fault; 9] = [
        Fault::None,
        Fault::SlowPrepare,
        Fault::SlowCommit,
        Fault::Duplicates,
        Fault::Loss,
        Fault::Evict,
        Fault::Minority,
        Fault::Crashes,
        Fault::Chaos,
    ];

    /// Its name on the command line.
    pub fn name(self) -> String {
        clap::ValueEnum::to_possible_value(&self).expect("named").get_name().to_owned()
    }
}

/// A run's knobs.
#[derive(Clone)]
pub struct ClusterSettings {
    /// Members.
    pub nodes: usize,
    /// Entities each member creates at the start.
    pub entities_per_node: u64,
    /// Bubbles, placed by rendezvous over the view.
    pub bubbles: u64,
    /// How long the workload and the faults last, ms of simulated time.
    pub duration_ms: u64,
    /// Random moves asked per simulated second, over the cluster.
    pub moves_per_s: u64,
    /// The migration policy.
    pub policy: PolicyFactory,
    /// Its name, for the replay command.
    pub policy_name: String,
    /// Print each fault as it strikes, and the nodes' lives, to stderr.
    pub trace: bool,
}

impl ClusterSettings {
    /// Defaults: 5 members, 8 entities each, 16 bubbles, 20 s, 40 moves/s, the built-in policy.
    pub fn new(nodes: usize) -> Self {
        Self {
            nodes,
            entities_per_node: 8,
            bubbles: 16,
            duration_ms: 20_000,
            moves_per_s: 40,
            policy: Rc::new(|_| Box::new(Standard) as Box<dyn MigrationPolicy>),
            policy_name: "builtin".into(),
            trace: std::env::var_os("LUCIOLE_SIM_TRACE").is_some(),
        }
    }
}

impl std::fmt::Debug for ClusterSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterSettings")
            .field("nodes", &self.nodes)
            .field("duration_ms", &self.duration_ms)
            .field("policy", &self.policy_name)
            .finish_non_exhaustive()
    }
}

/// What a run did.
#[derive(Clone, Debug, Default)]
pub struct ClusterOutcome {
    /// Migrations committed and aborted (by their sources).
    pub commits: u64,
    /// See `commits`.
    pub aborts: u64,
    /// Moves of the back-and-forth entity asked (each one a new migration; one is asked only
    /// once the previous one committed and the entity may be acted on again).
    pub ping_pongs: u64,
    /// Crashes, evictions learned, view changes.
    pub crashes: u64,
    /// See `crashes`.
    pub evictions: u64,
    /// See `crashes`.
    pub views: usize,
    /// Log records appended over the cluster.
    pub records: u64,
    /// Steps the checker ran after.
    pub steps: u64,
    /// Simulated time, ms (until everything settled).
    pub simulated_ms: u64,
    /// Messages sent.
    pub messages: u64,
    /// Policy answers the migration cores refused as unsafe (and answered built-in).
    pub overruled: u64,
}

/// The entity that moves back and forth between the first two members.
pub const PING_PONG: EntityId = EntityId(0);

/// The `luciole-sim` command that replays a run.
pub fn replay(fault: Fault, seed: u64, s: &ClusterSettings) -> String {
    format!(
        "cargo run --release -p luciole-sim -- --cluster {} --nodes {} --seed {seed} --duration-ms {} --policy {}",
        fault.name(),
        s.nodes,
        s.duration_ms,
        s.policy_name
    )
}

/// The longest a run may take to settle once faults stop, ms.
pub const SETTLE_MS_MAX: u64 = 120_000;

/// Runs `fault` on a cluster from `seed`. An error names the broken invariant (the seed and
/// [`replay`] reproduce it).
pub fn run(fault: Fault, seed: u64, settings: &ClusterSettings) -> Result<ClusterOutcome, String> {
    let mut sim = cluster(seed, settings);
    let ids: Vec<MemberId> = sim.nodes.keys().copied().collect();
    let mut check = Conservation::default();
    sim.run_until(500, |s| check.check(s))?;
    spawn(&mut sim, &ids, settings)?;
    // An entity exists once its creation is durable (before, a crash forgets it, as it
    // forgets any unacknowledged write); the faults start after that.
    sim.run_until(1_000, |s| check.check(s))?;
    check.expect(&sim);
    let mut faults = plan(fault, &mut sim, &ids, settings.duration_ms);
    faults.sort_by_key(|(at, _)| *at);
    let mut faults = std::collections::VecDeque::from(faults);
    let start = sim.now_ms;
    let end = start + settings.duration_ms;
    let tick = 20;
    let mut ping = 0;
    while sim.now_ms < end {
        let next = sim.now_ms + tick;
        while faults.front().is_some_and(|(at, _)| *at <= next) {
            let (at, action) = faults.pop_front().expect("looked at");
            sim.run_until(at, |s| check.check(s))?;
            if settings.trace {
                eprintln!("{} ms: {action:?}", sim.now_ms);
            }
            act(&mut sim, action);
        }
        sim.run_until(next, |s| check.check(s))?;
        ping += ping_pong(&mut sim, &ids);
        workload(&mut sim, settings, tick);
    }
    heal(&mut sim, &ids);
    let settled = settle(&mut sim, &mut check, settings)?;
    let stats: Vec<NodeStats> = sim.nodes.values().map(|n| n.stats).collect();
    let mut views: Vec<_> =
        sim.nodes.values().flat_map(|n| n.installed.iter().map(|v| v.0)).collect();
    views.sort_unstable();
    views.dedup();
    Ok(ClusterOutcome {
        commits: stats.iter().map(|s| s.commits).sum(),
        aborts: stats.iter().map(|s| s.aborts).sum(),
        ping_pongs: ping,
        crashes: stats.iter().map(|s| s.crashes).sum(),
        evictions: stats.iter().map(|s| s.evictions).sum(),
        views: views.len(),
        records: stats.iter().map(|s| s.records).sum(),
        steps: check.steps(),
        simulated_ms: settled,
        messages: sim.traffic.values().map(|t| t.sent_msgs).sum(),
        overruled: stats.iter().map(|s| s.overruled).sum::<u64>()
            + sim.nodes.values().map(|n| n.migration.overruled()).sum::<u64>(),
    })
}

/// `settings.nodes` founding members with their own clocks, starting within 100 ms.
fn cluster(seed: u64, settings: &ClusterSettings) -> Sim<ClusterNode> {
    let mut ids: Vec<MemberId> = (1..=settings.nodes as u128).map(member_id).collect();
    ids.sort_unstable();
    let node_settings = NodeSettings {
        monitor: MonitorConfig::default(),
        migration: MigrationConfig::default(),
        policy: Rc::clone(&settings.policy),
        bubbles: settings.bubbles,
        trace: settings.trace,
    };
    let mut sim = Sim::new(BTreeMap::new(), seed);
    for &m in &ids {
        let clock = random_clock(sim.rng());
        let start = sim.rng().between(0, 100);
        let disk_seed = sim.rng().next_u64();
        sim.set_clock(m, clock);
        let first = ViewChange::first(ids.iter().map(|&m| (m, info_of(m))).collect());
        let now = crate::Millis(clock.local(0) + start);
        sim.add(m, ClusterNode::founder(m, first, &node_settings, disk_seed, now));
    }
    sim
}

/// Each member creates its entities, in bubbles it hosts when it hosts any; the first
/// member also creates [`PING_PONG`].
fn spawn(
    sim: &mut Sim<ClusterNode>,
    ids: &[MemberId],
    settings: &ClusterSettings,
) -> Result<(), String> {
    for (i, &m) in ids.iter().enumerate() {
        let bubbles = settings.bubbles;
        let first = (i as u64) * settings.entities_per_node + 1;
        let made = sim.poke(m, |n, now| {
            let mine: Vec<BubbleId> =
                n.homes_now().iter().filter(|(_, h)| **h == m).map(|(b, _)| *b).collect();
            n.with_migration(now, |core| {
                let mut made = Vec::new();
                if i == 0 {
                    made.push(core.spawn(PING_PONG, BubbleId(0), vec![0; 16]));
                }
                for k in 0..settings.entities_per_node {
                    let bubble = mine
                        .get(k as usize % mine.len().max(1))
                        .copied()
                        .unwrap_or(BubbleId(k % bubbles));
                    made.push(core.spawn(
                        EntityId(u128::from(first + k)),
                        bubble,
                        vec![k as u8; 32],
                    ));
                }
                made
            })
        });
        for r in made.into_iter().flatten() {
            r.map_err(|f| format!("{m} could not create its entities: {f:?}"))?;
        }
    }
    Ok(())
}

/// The ping-pong entity goes to the other of the first two members whenever its owner may act
/// on it. Returns 1 when it asked.
fn ping_pong(sim: &mut Sim<ClusterNode>, ids: &[MemberId]) -> u64 {
    let (a, b) = (ids[0], ids[1]);
    for (from, to) in [(a, b), (b, a)] {
        let asked = sim.poke(from, |n, now| {
            if !n.migration.acting(PING_PONG) {
                return false;
            }
            let bubble = n.home_of(to);
            n.with_migration(now, |core| core.request(now, PING_PONG, to, bubble).is_ok())
        });
        if asked == Some(true) {
            return 1;
        }
    }
    0
}

/// Over `tick_ms`, about `moves_per_s` random moves and as many updates.
fn workload(sim: &mut Sim<ClusterNode>, settings: &ClusterSettings, tick_ms: u64) {
    let ids: Vec<MemberId> = sim.nodes.keys().copied().collect();
    let asks = settings.moves_per_s * tick_ms / 1_000 + u64::from(sim.rng().chance(0.5));
    for _ in 0..asks {
        let from = ids[sim.rng().between(0, ids.len() as u64 - 1) as usize];
        let r1 = sim.rng().next_u64();
        let r2 = sim.rng().next_u64();
        sim.poke(from, |n, now| {
            let owned: Vec<EntityId> = n
                .migration
                .owned()
                .keys()
                .copied()
                .filter(|e| *e != PING_PONG && n.migration.acting(*e))
                .collect();
            let Some(&entity) = owned.get((r1 % owned.len().max(1) as u64) as usize) else {
                return;
            };
            let others = n.others();
            if others.is_empty() {
                return;
            }
            let to = others[(r2 % others.len() as u64) as usize];
            let bubble = n.home_of(to);
            n.with_migration(now, |core| {
                let mut state = core.owned()[&entity].state.clone();
                state[0] = state[0].wrapping_add(1);
                let _ = core.update(entity, state);
                let _ = core.request(now, entity, to, bubble);
            });
        });
    }
}

/// A scheduled fault.
#[derive(Clone, Debug)]
enum Action {
    Disk(MemberId, Disk),
    Network { delay_ms: (u64, u64), loss: f64, duplication: f64 },
    Pause(MemberId, u64),
    Partition(Vec<MemberId>),
    Heal,
    Plan(MemberId, CrashPoint, u64),
    Crash(MemberId, u64),
}

fn slow_disk() -> Disk {
    Disk { write_ms: (0, 2), sync_ms: (150, 600) }
}

/// The faults of `fault`, at global times within the run.
fn plan(
    fault: Fault,
    sim: &mut Sim<ClusterNode>,
    ids: &[MemberId],
    duration_ms: u64,
) -> Vec<(u64, Action)> {
    let start = sim.now_ms;
    let rng = sim.rng();
    let at = |rng: &mut Rng| start + rng.between(0, duration_ms * 3 / 4);
    let pick = |rng: &mut Rng| ids[rng.between(0, ids.len() as u64 - 1) as usize];
    let mut out = Vec::new();
    let classes: Vec<Fault> = match fault {
        Fault::Chaos => Fault::ALL[1..8].iter().copied().filter(|_| rng.chance(0.5)).collect(),
        f => vec![f],
    };
    for class in classes {
        match class {
            Fault::None | Fault::Chaos => {}
            Fault::SlowPrepare => out.push((start, Action::Disk(ids[1], slow_disk()))),
            Fault::SlowCommit => {
                out.extend(ids.iter().map(|&m| (start, Action::Disk(m, slow_disk()))))
            }
            Fault::Duplicates => out
                .push((start, Action::Network { delay_ms: (1, 60), loss: 0.0, duplication: 0.2 })),
            Fault::Loss => {
                out.push((start, Action::Network { delay_ms: (1, 5), loss: 0.1, duplication: 0.0 }))
            }
            Fault::Evict => {
                let who = if rng.chance(0.5) { ids[0] } else { pick(rng) };
                out.push((at(rng), Action::Pause(who, 4_000)));
            }
            Fault::Minority => {
                let mut side = vec![ids[rng.between(0, 1) as usize]];
                while side.len() < 2.min(ids.len() / 2) {
                    let m = pick(rng);
                    if !side.contains(&m) {
                        side.push(m);
                    }
                }
                let t = at(rng);
                out.push((t, Action::Partition(side)));
                out.push((t + 5_000, Action::Heal));
            }
            Fault::Crashes => {
                for point in [CrashPoint::AfterWrite, CrashPoint::AfterSync, CrashPoint::AfterSend]
                {
                    let down = rng.between(200, 4_000);
                    out.push((at(rng), Action::Plan(pick(rng), point, down)));
                }
                for _ in 0..2 {
                    let down = rng.between(200, 4_000);
                    out.push((at(rng), Action::Crash(pick(rng), down)));
                }
            }
        }
    }
    out
}

fn act(sim: &mut Sim<ClusterNode>, action: Action) {
    match action {
        Action::Disk(m, disk) => {
            sim.poke(m, |n, _| n.set_disk(disk));
        }
        Action::Network { delay_ms, loss, duplication } => {
            sim.network.delay_ms = delay_ms;
            sim.network.loss = loss;
            sim.network.duplication = duplication;
        }
        Action::Pause(m, ms) if majority_survives(sim, &[m]) => sim.pause(m, ms),
        Action::Partition(side) if majority_survives(sim, &side) => {
            let rest: Vec<MemberId> =
                sim.nodes.keys().copied().filter(|m| !side.contains(m)).collect();
            sim.network.partition(&side, &rest);
        }
        Action::Heal => sim.network.heal(),
        Action::Pause(..) | Action::Partition(..) => {}
        Action::Plan(m, point, down) if majority_survives(sim, &[m]) => {
            sim.poke(m, |n, _| n.planned = Some((point, down)));
        }
        Action::Crash(m, down) if majority_survives(sim, &[m]) => {
            sim.poke(m, |n, now| n.crash(now, down));
        }
        Action::Plan(..) | Action::Crash(..) => {}
    }
}

/// Whether a majority of the newest view stays healthy (up, not paused, not cut off, a member
/// with a quorum and without a planned crash) if `out` crash, pause or are cut off. Faults that would break
/// this are skipped: a view that loses its majority cannot change any more, and restarted
/// nodes join again only into a newer view, which only a majority can make, so the cluster
/// would never recover (see docs/ARCHITECTURE.md, the whole-cluster simulation).
fn majority_survives(sim: &Sim<ClusterNode>, out: &[MemberId]) -> bool {
    let newest = sim.nodes.values().filter_map(ClusterNode::view).max_by_key(|v| v.0);
    let Some((_, members, _)) = newest else { return false };
    let healthy = members
        .iter()
        .filter(|x| !out.contains(x))
        .filter(|x| sim.paused.get(x).is_none_or(|&until| until <= sim.now_ms))
        .filter(|&&x| !sim.network.cut.iter().any(|&(from, _)| from == x))
        .filter(|x| {
            sim.nodes.get(x).is_some_and(|n| {
                !n.is_down() && n.planned.is_none() && n.view().is_some_and(|v| v.2)
            })
        })
        .count();
    healthy * 2 > members.len()
}

/// Faults stop: the network is healed and fair, disks are fast, planned crashes are off.
fn heal(sim: &mut Sim<ClusterNode>, ids: &[MemberId]) {
    sim.network = crate::Network::default();
    for &m in ids {
        sim.poke(m, |n, _| {
            n.set_disk(Disk::default());
            n.planned = None;
        });
    }
}

/// Runs until every node is up, in one view of all of them with a quorum, with no migration
/// in flight and every entity at its bubble's home; returns the global time it took.
fn settle(
    sim: &mut Sim<ClusterNode>,
    check: &mut Conservation,
    settings: &ClusterSettings,
) -> Result<u64, String> {
    let from = sim.now_ms;
    let mut last = String::new();
    while sim.now_ms < from + SETTLE_MS_MAX {
        let next = sim.now_ms + 500;
        sim.run_until(next, |s| check.check(s))?;
        match check::settled(sim, settings.bubbles) {
            Ok(()) => return Ok(sim.now_ms),
            Err(e) => last = e,
        }
    }
    if settings.trace {
        for (m, n) in &sim.nodes {
            eprintln!("== {m}: {:#?}", n.membership);
        }
    }
    Err(format!("not settled {} s after the faults stopped: {last}", SETTLE_MS_MAX / 1_000))
}
