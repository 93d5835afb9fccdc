//! The scenarios the tests and the `luciole-sim` binary run: each injects its faults on a
//! timeline, runs, judges the views installed against what the scenario calls for, then stops
//! the faults and requires the live nodes to settle on one view of themselves.

use std::collections::{BTreeMap, BTreeSet};

use luciole_proto::membership::monitor::MonitorConfig;
use luciole_proto::membership::rings::{Rings, rings_for};
use luciole_proto::{Epoch, MemberId};

use super::{Checker, Member, cluster, cluster_with, forge, member_id, random_clock};
use crate::Sim;
use luciole_proto::membership::lifecycle::Phase;

/// Distinct epochs installed by any node: the view changes of a run.
fn views_installed(sim: &Sim<Member>) -> usize {
    let epochs: BTreeSet<Epoch> =
        sim.nodes.values().flat_map(|m| m.installed.iter().map(|v| v.1)).collect();
    epochs.len()
}

/// Adds node `id`, with a random clock and the first seed's monitoring settings, joining
/// through `seeds` (asked in turn) from global time `at_ms`.
pub fn spawn_joiner(sim: &mut Sim<Member>, id: MemberId, seeds: Vec<MemberId>, at_ms: u64) {
    let clock = random_clock(sim.rng());
    let config = sim.nodes[&seeds[0]].config;
    sim.set_clock(id, clock);
    sim.add(id, Member::joining(id, seeds, config, clock.local(at_ms)));
}

/// How many seeds a scenario's joiner gets.
const SEEDS: usize = 3;

/// Seeds for a joiner: up to [`SEEDS`] live members, those of `first_view` first (the
/// scenario's original members), those that say they have quorum before those that do not,
/// none that learned it was evicted. (A member cut off with a minority may be evicted without
/// knowing it yet, and then restarted under a new id; it loses its quorum first, so a joiner
/// does not pick three such seeds and ask dead ids for ever.)
fn seeds(sim: &Sim<Member>, first_view: &[MemberId]) -> Vec<MemberId> {
    let mut live: Vec<(bool, bool, MemberId)> = sim
        .live()
        .into_iter()
        .filter_map(|m| match sim.nodes[&m].core.phase() {
            Phase::Member(n) if sim.nodes[&m].evicted_at.is_none() => {
                Some((!n.has_quorum(), !first_view.contains(&m), m))
            }
            _ => None,
        })
        .collect();
    live.sort_unstable();
    live.into_iter().take(SEEDS).map(|(_, _, m)| m).collect()
}

/// The scenarios: what happens, and what must hold at the end.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// One member crashes.
    Crash,
    /// `--crashes` members (3 unless set) crash at the same moment.
    Crashes,
    /// 5 % of all messages are lost for `--duration-ms`; nothing crashes.
    Loss,
    /// `--bad` members (1 unless set) lose 80 % of their messages for `--duration-ms`.
    BadNode,
    /// A fifth of the members are cut off from the rest (both directions).
    Partition,
    /// Two nodes join at the same moment through one seed.
    Join,
    /// A member crashes and restarts 2 s later as a new incarnation (a new id) through a seed.
    Restart,
    /// One member pauses for 300 ms (and must stay), another for 3 s (and must go, and learn
    /// that it went when it wakes).
    Pause,
    /// One member's links go down for 250 ms of every second for `--duration-ms`.
    Flap,
    /// `--nodes` nodes join a one-member cluster through it, all starting within a second
    /// ([`joins`]).
    Joins,
    /// Nothing goes wrong for `--duration-ms`: the steady-state traffic.
    Quiet,
    /// A member leaves the view on purpose (its process stopping) and stops 2 s later: it
    /// must be removed, and nobody else.
    Leave,
    /// One member cannot send to `--observers` of its observers (the other way works) for
    /// `--heal-ms`; 3 s in, another member crashes and must be removed. That member may stay
    /// or go; nobody else may.
    OneWay,
    /// A joiner reaches only `--observers` of its expected observers (and its seeds), then
    /// crashes 3 s later; 4 s in, a member crashes and must be removed.
    PartialJoin,
    /// `--flap-percent` of all links go down for 1 s of every 3 s (each at its own phase) for
    /// `--duration-ms`; 5 s in, a member crashes and must be removed; nobody else may be.
    Flaps,
    /// The members split in two, `--split-percent` on one side, for `--heal-ms`. A side with a
    /// majority may remove the other; without one, nobody may be removed.
    Split,
    /// A member, then a node outside the view, send forged alerts (in observers' names), a
    /// forged newer view, forged votes, and a forged welcome to a joiner; 2 s in, a member
    /// crashes and must be removed. Nobody else may be removed; the joiner must get in.
    Forge,
}

/// Knobs of a scenario run beyond its kind.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// Simultaneous crashes in [`Scenario::Crashes`].
    pub crashes: usize,
    /// Members with 80 % loss in [`Scenario::BadNode`].
    pub bad: usize,
    /// How long loss, bad nodes and flapping last, ms.
    pub duration_ms: u64,
    /// Time between probes of one subject, ms ([`MonitorConfig::probe_period_ms`]).
    pub probe_ms: u64,
    /// Observers cut off in [`Scenario::OneWay`]; observers reached in
    /// [`Scenario::PartialJoin`].
    pub observers: usize,
    /// How long a one-way cut or a split lasts, ms.
    pub heal_ms: u64,
    /// The share of members on the smaller side of a [`Scenario::Split`], percent (1–50).
    pub split_percent: u64,
    /// The share of links that flap in [`Scenario::Flaps`], percent.
    pub flap_percent: u64,
    /// Suspicion-triggered probing's idle period, ms; 0 is off
    /// ([`MonitorConfig::idle_probe_ms`]).
    pub idle_probe_ms: u64,
    /// The smallest view that probes idly ([`MonitorConfig::idle_from_members`]).
    pub idle_from_members: usize,
}

impl Default for Settings {
    fn default() -> Self {
        let m = MonitorConfig::default();
        Self {
            crashes: 3,
            bad: 1,
            duration_ms: 60_000,
            probe_ms: m.probe_period_ms,
            observers: 4,
            heal_ms: 2_000,
            split_percent: 50,
            flap_percent: 5,
            idle_probe_ms: m.idle_probe_ms,
            idle_from_members: m.idle_from_members,
        }
    }
}

impl Settings {
    /// The members' monitoring settings: the defaults but for the probe period.
    pub fn monitor(&self) -> MonitorConfig {
        MonitorConfig {
            probe_period_ms: self.probe_ms,
            idle_probe_ms: self.idle_probe_ms,
            idle_from_members: self.idle_from_members,
            ..MonitorConfig::default()
        }
    }
}

/// The `luciole-sim` command that replays a run exactly.
pub fn replay(scenario: Scenario, nodes: usize, seed: u64, settings: Settings) -> String {
    let name = clap::ValueEnum::to_possible_value(&scenario).expect("every scenario is named");
    let s = settings;
    format!(
        "cargo run --release -p luciole-sim -- --scenario {} --nodes {nodes} --seed {seed} --crashes {} --bad {} --duration-ms {} --probe-ms {} --observers {} --heal-ms {} --split-percent {} --flap-percent {} --idle-probe-ms {} --idle-from-members {}",
        name.get_name(),
        s.crashes,
        s.bad,
        s.duration_ms,
        s.probe_ms,
        s.observers,
        s.heal_ms,
        s.split_percent,
        s.flap_percent,
        s.idle_probe_ms,
        s.idle_from_members
    )
}

/// What a scenario run found. Times are global virtual ms.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// Members the scenario made fail (crashed, cut off, or paused too long).
    pub failed: Vec<MemberId>,
    /// View changes installed (distinct epochs above 1).
    pub view_changes: usize,
    /// Per live member, ms from the fault to installing the view the scenario calls for.
    pub detection_ms: Vec<u64>,
    /// Members evicted that the scenario did not make fail: always 0 in an outcome
    /// [`run_with`] returns (any other count is an error), kept so that reports print it.
    pub false_evictions: usize,
    /// Times a member the scenario left healthy said it had lost its quorum, while the faults
    /// lasted.
    pub quorum_losses: usize,
    /// Bytes sent per node per second over the scenario (after the first second): mean over
    /// the nodes, and the busiest node.
    pub bytes_per_s: (f64, f64),
    /// Messages sent per node per second, the same way.
    pub msgs_per_s: (f64, f64),
    /// Global virtual ms the run covered.
    pub simulated_ms: u64,
    /// After the faults stopped (network healed, evicted nodes back as new incarnations),
    /// ms until every live node had the same view, of exactly the live nodes.
    pub settled_ms: u64,
}

/// Something a scenario does at a moment.
#[derive(Clone, Debug)]
enum Action {
    Crash(MemberId),
    /// A node joins through seeds of the first view.
    Join(MemberId),
    /// A node joins, reaching only the given members (it sends to nobody else).
    JoinReaching(MemberId, usize),
    /// Every cut and flapping link heals.
    Heal,
    /// `attacker` sends forged messages to every member.
    Forge(MemberId),
    /// `attacker` sends a forged welcome to a joiner.
    ForgeWelcome(MemberId, MemberId),
    /// The member leaves the view (`Membership::leave`).
    Leave(MemberId),
}

/// A scenario's faults and what must hold after them.
#[derive(Debug, Default)]
struct Plan {
    /// Must be removed.
    failed: Vec<MemberId>,
    /// May be removed (faulty, not falsely evicted).
    exempt: Vec<MemberId>,
    /// Must be admitted.
    joiners: Vec<MemberId>,
    /// What happens when (global ms), in order.
    actions: Vec<(u64, Action)>,
    /// When the run's fault phase ends.
    end: u64,
    /// The moment the view the scenario calls for is measured from.
    measure_from: u64,
    /// Must learn that it was removed.
    sleeper: Option<MemberId>,
    /// Must say, while the fault lasts, that it has no quorum.
    no_quorum: Vec<MemberId>,
}

/// Runs `scenario` on `n` members from `seed`. Errors name the broken invariant, the view
/// that never came, or the healthy members evicted.
pub fn run_with(
    scenario: Scenario,
    n: usize,
    seed: u64,
    settings: Settings,
) -> Result<Outcome, String> {
    if scenario == Scenario::Joins {
        let o = joins(n, seed, 120_000)?;
        return Ok(Outcome {
            failed: Vec::new(),
            view_changes: o.views,
            detection_ms: vec![o.all_in_ms],
            false_evictions: 0,
            quorum_losses: 0,
            bytes_per_s: (0.0, 0.0),
            msgs_per_s: (0.0, 0.0),
            simulated_ms: o.all_in_ms,
            settled_ms: 0,
        });
    }
    let mut sim = cluster_with(n, seed, settings.monitor());
    let mut checker = Checker::default();
    sim.run_until(1_000, |s| checker.check(s))?;
    sim.reset_traffic();
    let ids: Vec<MemberId> = sim.nodes.keys().copied().collect();
    let fault_at = sim.now_ms;
    let mut plan = plan(scenario, &mut sim, &ids, settings);
    plan.actions.sort_by_key(|(at, _)| *at);
    for (at, action) in std::mem::take(&mut plan.actions) {
        sim.run_until(at, |s| checker.check(s))?;
        act(&mut sim, &ids, action)?;
    }
    sim.run_until(plan.end, |s| checker.check(s))?;
    let (view_changes, detection_ms, false_evictions) = judge(&sim, &plan)?;
    let quorum_losses = quorum_losses(&sim, &plan);
    if false_evictions > 0 {
        return Err(format!("{false_evictions} healthy members evicted"));
    }
    // Traffic from the fault to here; settling (healing, rejoining) is not counted.
    let seconds = (sim.now_ms - fault_at) as f64 / 1_000.0;
    let rate = |count: fn(&crate::Traffic) -> u64| {
        let per_node: Vec<f64> = sim.traffic.values().map(|t| count(t) as f64 / seconds).collect();
        let mean = per_node.iter().sum::<f64>() / per_node.len().max(1) as f64;
        (mean, per_node.iter().copied().fold(0.0, f64::max))
    };
    let (bytes_per_s, msgs_per_s) = (rate(|t| t.sent_bytes), rate(|t| t.sent_msgs));
    let measured_ms = sim.now_ms;
    let settled_ms = settle(&mut sim, &mut checker, &ids)?;
    Ok(Outcome {
        failed: plan.failed,
        view_changes,
        detection_ms,
        false_evictions,
        quorum_losses,
        bytes_per_s,
        msgs_per_s,
        simulated_ms: measured_ms,
        settled_ms,
    })
}

/// `k` distinct members of `ids` drawn from the run's generator, sorted.
fn pick(sim: &mut Sim<Member>, ids: &[MemberId], k: usize, not: &[MemberId]) -> Vec<MemberId> {
    let pool: Vec<MemberId> = ids.iter().copied().filter(|m| !not.contains(m)).collect();
    let mut chosen: Vec<MemberId> = Vec::new();
    while chosen.len() < k.min(pool.len()) {
        let m = pool[(sim.rng().next_u64() % pool.len() as u64) as usize];
        if !chosen.contains(&m) {
            chosen.push(m);
        }
    }
    chosen.sort_unstable();
    chosen
}

/// The faults of `scenario`, from now.
fn plan(scenario: Scenario, sim: &mut Sim<Member>, ids: &[MemberId], s: Settings) -> Plan {
    let at = sim.now_ms;
    // Long enough to detect a crash: about five probe periods, then the view change.
    let window = 5_000.max(s.probe_ms * 10);
    let mut p = Plan { end: at + window, measure_from: at, ..Plan::default() };
    match scenario {
        Scenario::Crash | Scenario::Crashes => {
            let k = if scenario == Scenario::Crash { 1 } else { s.crashes };
            p.failed = pick(sim, ids, k, &[]);
            p.failed.iter().for_each(|&v| sim.crash(v));
        }
        Scenario::Loss => {
            sim.network.loss = 0.05;
            p.end = at + s.duration_ms;
        }
        Scenario::BadNode => {
            p.exempt = pick(sim, ids, s.bad, &[]);
            for &b in &p.exempt {
                sim.network.node_loss.insert(b, 0.8);
            }
            p.end = at + s.duration_ms;
        }
        Scenario::Partition => {
            p.failed = pick(sim, ids, (ids.len() / 5).max(1), &[]);
            let rest: Vec<MemberId> =
                ids.iter().copied().filter(|m| !p.failed.contains(m)).collect();
            sim.network.partition(&p.failed, &rest);
            p.no_quorum = p.failed.clone();
        }
        Scenario::Join => {
            for i in 0..2u64 {
                let id = MemberId(u128::from(sim.rng().next_u64()) | (u128::from(i) << 64));
                p.actions.push((at, Action::Join(id)));
                p.joiners.push(id);
            }
            p.end = at + 10_000;
        }
        Scenario::Restart => {
            p.failed = pick(sim, ids, 1, &[]);
            sim.crash(p.failed[0]);
            let reborn = MemberId(p.failed[0].0.wrapping_add(1));
            p.actions.push((at + 2_000, Action::Join(reborn)));
            p.joiners.push(reborn);
            p.end = at + 10_000;
        }
        Scenario::Pause => {
            let two = pick(sim, ids, 2, &[]);
            sim.pause(two[0], 300);
            sim.pause(two[1], 3_000);
            p.sleeper = Some(two[1]);
            p.failed = vec![two[1]];
            p.end = at + 10_000;
        }
        Scenario::Flap => {
            let flappy = pick(sim, ids, 1, &[])[0];
            for &other in ids.iter().filter(|&&m| m != flappy) {
                sim.network.flap(flappy, other, 1_000, 250, 0);
            }
            p.end = at + s.duration_ms;
        }
        Scenario::Quiet => p.end = at + s.duration_ms,
        Scenario::Leave => {
            p.failed = pick(sim, ids, 1, &[]);
            p.actions.push((at, Action::Leave(p.failed[0])));
            p.actions.push((at + 2_000, Action::Crash(p.failed[0])));
        }
        Scenario::Joins => unreachable!("run_with handles it"),
        Scenario::OneWay | Scenario::PartialJoin | Scenario::Flaps => {
            plan_freeze(scenario, sim, ids, s, &mut p, window)
        }
        Scenario::Split => plan_split(sim, ids, s, &mut p, window),
        Scenario::Forge => plan_forge(sim, ids, &mut p, window),
    }
    p
}

/// A split of the members in two, healed after `--heal-ms`.
fn plan_split(sim: &mut Sim<Member>, ids: &[MemberId], s: Settings, p: &mut Plan, window: u64) {
    let at = sim.now_ms;
    let small = pick(sim, ids, (ids.len() * s.split_percent as usize / 100).max(1), &[]);
    let large: Vec<MemberId> = ids.iter().copied().filter(|m| !small.contains(m)).collect();
    sim.network.partition(&small, &large);
    p.actions.push((at + s.heal_ms, Action::Heal));
    // A side with a majority may remove the other; no side may remove a majority, and
    // a side without one knows it (if the split lasts long enough to tell).
    let minority = if large.len() * 2 > ids.len() { small.clone() } else { ids.to_vec() };
    if s.heal_ms >= 2_000 {
        p.no_quorum = minority;
    }
    if large.len() * 2 > ids.len() {
        p.exempt = small;
    }
    p.end = at + s.heal_ms + window;
}

/// Forgeries from a member and from an outsider, a joiner, then a crash.
fn plan_forge(sim: &mut Sim<Member>, ids: &[MemberId], p: &mut Plan, window: u64) {
    let at = sim.now_ms;
    let attacker = pick(sim, ids, 1, &[])[0];
    let outsider = MemberId(u128::from(sim.rng().next_u64()) << 1 | 1);
    let joiner = MemberId(u128::from(sim.rng().next_u64()) << 1);
    let victim = pick(sim, ids, 1, &[attacker])[0];
    p.actions.push((at, Action::Forge(attacker)));
    p.actions.push((at + 200, Action::Forge(outsider)));
    p.actions.push((at + 500, Action::Join(joiner)));
    p.actions.push((at + 510, Action::ForgeWelcome(attacker, joiner)));
    p.actions.push((at + 520, Action::ForgeWelcome(outsider, joiner)));
    p.actions.push((at + 2_000, Action::Crash(victim)));
    (p.failed, p.exempt, p.joiners) = (vec![victim], vec![attacker], vec![joiner]);
    p.measure_from = at + 2_000;
    p.end = at + 2_000 + window;
}

/// The scenarios where a partial fault could freeze the tally: a crash elsewhere must still be
/// removed while it lasts.
fn plan_freeze(
    scenario: Scenario,
    sim: &mut Sim<Member>,
    ids: &[MemberId],
    s: Settings,
    p: &mut Plan,
    window: u64,
) {
    let at = sim.now_ms;
    let crash_after = match scenario {
        Scenario::OneWay => {
            let node = pick(sim, ids, 1, &[])[0];
            let mut observers: Vec<MemberId> = Vec::new();
            for (_, o) in rings_of(ids).observers_of(node) {
                if !observers.contains(&o) && observers.len() < s.observers {
                    observers.push(o);
                }
            }
            for o in observers {
                sim.network.cut.insert((node, o));
            }
            p.actions.push((at + s.heal_ms, Action::Heal));
            p.exempt = vec![node];
            3_000
        }
        Scenario::PartialJoin => {
            let joiner = MemberId(u128::from(sim.rng().next_u64()) << 2 | 2);
            p.actions.push((at, Action::JoinReaching(joiner, s.observers)));
            p.actions.push((at + 3_000, Action::Crash(joiner)));
            p.exempt = vec![joiner];
            4_000
        }
        _ => {
            let pairs: Vec<(MemberId, MemberId)> = ids
                .iter()
                .flat_map(|&a| ids.iter().filter(move |&&b| a < b).map(move |&b| (a, b)))
                .collect();
            for (a, b) in pairs {
                if sim.rng().between(0, 99) < s.flap_percent {
                    let phase = sim.rng().between(0, 2_999);
                    sim.network.flap(a, b, 3_000, 1_000, phase);
                }
            }
            5_000
        }
    };
    let victim = pick(sim, ids, 1, &p.exempt)[0];
    p.actions.push((at + crash_after, Action::Crash(victim)));
    p.failed = vec![victim];
    p.measure_from = at + crash_after;
    p.end = at
        + (crash_after + window).max(s.heal_ms).max(match scenario {
            Scenario::Flaps => s.duration_ms,
            _ => 0,
        });
}

/// How many times members the plan left healthy (and that did not join) lost their quorum.
fn quorum_losses(sim: &Sim<Member>, p: &Plan) -> usize {
    let faulty = |m: &MemberId| p.failed.contains(m) || p.exempt.contains(m);
    sim.nodes
        .iter()
        .filter(|(id, _)| !faulty(id) && !p.no_quorum.contains(id) && !p.joiners.contains(id))
        .map(|(_, m)| m.quorum.iter().filter(|q| !q.1).count())
        .sum()
}

/// The rings of a view of `ids`.
pub(super) fn rings_of(ids: &[MemberId]) -> Rings {
    Rings::new(ids, rings_for(ids.len()))
}

/// Does `action` now.
fn act(sim: &mut Sim<Member>, ids: &[MemberId], action: Action) -> Result<(), String> {
    match action {
        Action::Crash(m) => sim.crash(m),
        Action::Heal => sim.network.heal(),
        Action::Join(id) => {
            let seeds = seeds(sim, ids);
            if seeds.is_empty() {
                return Err(format!("no live member left for {id} to join through"));
            }
            let now = sim.now_ms;
            spawn_joiner(sim, id, seeds, now);
        }
        Action::JoinReaching(id, k) => {
            let view = sim.live();
            let mut reach: Vec<MemberId> = Vec::new();
            for (_, o) in rings_of(&view).expected_observers_of(id) {
                if !reach.contains(&o) && reach.len() < k {
                    reach.push(o);
                }
            }
            let seeds = seeds(sim, ids);
            reach.extend(seeds.iter().copied());
            for &m in view.iter().filter(|m| !reach.contains(m)) {
                sim.network.cut.insert((id, m));
            }
            let now = sim.now_ms;
            spawn_joiner(sim, id, seeds, now);
        }
        Action::Forge(attacker) => forge::everything(sim, attacker),
        Action::ForgeWelcome(attacker, joiner) => forge::welcome_to_joiner(sim, attacker, joiner),
        Action::Leave(m) => {
            sim.poke(m, |node, now| node.core.leave(now));
        }
    }
    Ok(())
}

/// What the run shows against its plan: view changes, per healthy live member the ms from
/// `measure_from` to the view the scenario calls for, and healthy members evicted.
fn judge(sim: &Sim<Member>, p: &Plan) -> Result<(usize, Vec<u64>, usize), String> {
    let all: Vec<MemberId> = sim.nodes.keys().copied().collect();
    let mut detection_ms = Vec::new();
    let mut false_evictions = 0;
    let healthy = |x: &MemberId| !p.failed.contains(x) && !p.exempt.contains(x);
    for (id, m) in &sim.nodes {
        if !healthy(id) || sim.crashed.contains(id) {
            continue;
        }
        let evicted_here = all.iter().filter(|x| {
            healthy(x) && !sim.crashed.contains(x) && m.view().is_some_and(|l| !l.contains(x))
        });
        false_evictions =
            false_evictions.max(evicted_here.count() + usize::from(m.evicted_at.is_some()));
        if !p.failed.is_empty() || !p.joiners.is_empty() {
            let clock = sim.clocks.get(id).copied().unwrap_or_default();
            let at = m
                .installed
                .iter()
                .find(|(_, _, v)| {
                    p.failed.iter().all(|f| !v.members.contains(f))
                        && p.joiners.iter().all(|j| v.members.contains(j))
                })
                .map(|(t, _, _)| clock.global(*t).saturating_sub(p.measure_from))
                .ok_or_else(|| {
                    let views: Vec<(u64, u64, usize)> =
                        m.installed.iter().map(|(t, e, v)| (clock.global(*t), e.0, v.members.len())).collect();
                    format!("{id} never installed the view the scenario calls for (it installed, as (global ms, epoch, members): {views:?})")
                })?;
            detection_ms.push(at);
        }
    }
    if let Some(s) = p.sleeper
        && sim.nodes[&s].evicted_at.is_none()
    {
        return Err(format!("{s} paused 3 s, was removed, and never learned it"));
    }
    if let Some(m) = p.no_quorum.iter().find(|m| !sim.nodes[*m].quorum.iter().any(|q| !q.1)) {
        return Err(format!(
            "{m} was on a side without a majority and never said it had no quorum"
        ));
    }
    Ok((views_installed(sim), detection_ms, false_evictions))
}

/// How long a run waits, after its faults stop, for one view of exactly the live nodes, ms.
pub const SETTLE_MS_MAX: u64 = 10_000;

/// The faults stop: the network heals, every node that learned it was evicted comes back as a
/// new incarnation (a new id, joining through a member of the first view that is still in),
/// and within [`SETTLE_MS_MAX`] every live node must have one view of exactly the live nodes,
/// and say it has quorum.
/// Returns how long that took.
fn settle(
    sim: &mut Sim<Member>,
    checker: &mut Checker,
    first_view: &[MemberId],
) -> Result<u64, String> {
    let start = sim.now_ms;
    sim.network.heal();
    sim.network.loss = 0.0;
    sim.network.node_loss.clear();
    sim.paused.clear();
    let settled = |sim: &Sim<Member>| {
        let live = sim.live();
        live.iter().all(|m| match sim.nodes[m].core.phase() {
            Phase::Member(n) => n.view().1 == &live[..] && n.has_quorum(),
            Phase::Joining(..) => false,
        })
    };
    loop {
        rejoin_evicted(sim, first_view)?;
        if settled(sim) {
            break;
        }
        if sim.now_ms >= start + SETTLE_MS_MAX {
            let live = sim.live();
            let states: Vec<String> = live
                .iter()
                .map(|m| match sim.nodes[m].core.phase() {
                    Phase::Member(n) => {
                        let (e, v) = n.view();
                        let q = if n.has_quorum() { "" } else { " without quorum" };
                        format!("{} epoch {} of {}{q}", &m.to_string()[..6], e.0, v.len())
                    }
                    Phase::Joining(..) => format!("{} joining", &m.to_string()[..6]),
                })
                .collect();
            return Err(format!(
                "{SETTLE_MS_MAX} ms after the faults stopped, the {} live nodes still have no common view of themselves: {states:?}",
                live.len()
            ));
        }
        let next = sim.now_ms + 10;
        sim.run_until(next, |s| checker.check(s))?;
    }
    Ok(sim.now_ms - start)
}

/// Every live node that learned it was evicted stops, and comes back as a new incarnation.
fn rejoin_evicted(sim: &mut Sim<Member>, first_view: &[MemberId]) -> Result<(), String> {
    let evicted: Vec<MemberId> = sim
        .nodes
        .iter()
        .filter(|(id, m)| !sim.crashed.contains(id) && m.evicted_at.is_some())
        .map(|(id, _)| *id)
        .collect();
    for old in evicted {
        sim.crash(old);
        let seeds = seeds(sim, first_view);
        if seeds.is_empty() {
            return Err("no member left to join through".into());
        }
        spawn_joiner(sim, MemberId(old.0.wrapping_add(1)), seeds, sim.now_ms);
    }
    Ok(())
}

/// What [`joins`] found.
#[derive(Clone, Debug)]
pub struct JoinsOutcome {
    /// Global ms from the first joiner's start until every node had a view with all of them.
    pub all_in_ms: u64,
    /// Views installed on the way (distinct epochs above the seed's first).
    pub views: usize,
}

/// `n` nodes join a one-member cluster through it, starting at random moments within the
/// first second; runs until every node has a view with all `n + 1`, or `limit_ms`.
pub fn joins(n: usize, seed: u64, limit_ms: u64) -> Result<JoinsOutcome, String> {
    let mut sim = cluster(1, seed);
    let seed_member = sim.live()[0];
    let mut everyone = vec![seed_member];
    for i in 0..n as u128 {
        let id = member_id(i + 2);
        let start = sim.rng().between(0, 999);
        spawn_joiner(&mut sim, id, vec![seed_member], start);
        everyone.push(id);
    }
    everyone.sort_unstable();
    let all_in = |sim: &Sim<Member>| sim.nodes.values().all(|m| m.view() == Some(&everyone[..]));
    let mut checker = Checker::default();
    let mut step_ms = 0;
    while !all_in(&sim) {
        if sim.now_ms >= limit_ms {
            let inside = sim.nodes.values().filter(|m| m.view().is_some()).count();
            let mut views: BTreeMap<Option<usize>, usize> = BTreeMap::new();
            for m in sim.nodes.values() {
                *views.entry(m.view().map(<[MemberId]>::len)).or_default() += 1;
            }
            let views: Vec<String> = views
                .iter()
                .map(|(v, k)| match v {
                    Some(v) => format!("{k} with a view of {v}"),
                    None => format!("{k} without a view"),
                })
                .collect();
            return Err(format!(
                "after {limit_ms} ms {inside} of {} nodes have a view, none with everyone ({})",
                n + 1,
                views.join(", ")
            ));
        }
        step_ms += 10;
        sim.run_until(step_ms, |s| checker.check(s))?;
    }
    Ok(JoinsOutcome { all_in_ms: sim.now_ms, views: views_installed(&sim) })
}
