//! The membership core as simulated nodes, the invariants it must keep, and the scenarios the
//! tests and the `luciole-sim` binary run.

use std::collections::{BTreeMap, BTreeSet};

use luciole_proto::membership::join::Joiner;
use luciole_proto::membership::monitor::MonitorConfig;
use luciole_proto::membership::node::{Envelope, Event, MemberNode, ViewChange};
use luciole_proto::{Epoch, MemberId};

use crate::{Actor, Clock, Sim};

/// A simulated node: joining, or a member, and what it installed.
#[derive(Debug)]
pub struct Member {
    /// The core.
    pub state: State,
    /// Views installed: (local ms, epoch, the view).
    pub installed: Vec<(u64, Epoch, ViewChange)>,
    /// When (local ms) it learned it was evicted.
    pub evicted_at: Option<u64>,
    /// Its monitoring settings (also those it takes into the view when it joins).
    pub config: MonitorConfig,
    last_now: u64,
}

impl Member {
    /// A node joining through `seeds` (in turn), asking first at local time `now_ms`.
    pub fn joining(me: MemberId, seeds: Vec<MemberId>, config: MonitorConfig, now_ms: u64) -> Self {
        let joiner = Joiner::new(me, seeds, JOIN_RETRY_MS, now_ms);
        Self {
            state: State::Joining(me, joiner),
            installed: Vec::new(),
            evicted_at: None,
            config,
            last_now: now_ms,
        }
    }

    /// A member running `node` (made with `config`) from local time `now_ms`.
    pub fn active(node: MemberNode, config: MonitorConfig, now_ms: u64) -> Self {
        Self {
            state: State::Active(Box::new(node)),
            installed: Vec::new(),
            evicted_at: None,
            config,
            last_now: now_ms,
        }
    }

    /// The members of the newest view it installed, if any.
    pub fn view(&self) -> Option<&[MemberId]> {
        self.installed.last().map(|(_, _, v)| v.members.as_slice())
    }
}

/// How often a joiner asks its seed again, ms.
pub const JOIN_RETRY_MS: u64 = 1_000;

/// Where a simulated node is.
#[derive(Debug)]
pub enum State {
    /// Asking to join.
    Joining(MemberId, Joiner),
    /// A member.
    Active(Box<MemberNode>),
}

impl Actor for Member {
    type Message = Envelope;

    fn handle_message(&mut self, now_ms: u64, _from: MemberId, message: Envelope) {
        self.last_now = now_ms;
        match &mut self.state {
            State::Joining(_, j) => j.handle_message(message),
            State::Active(n) => n.handle_message(now_ms, message),
        }
        self.collect();
    }

    fn handle_timeout(&mut self, now_ms: u64) {
        self.last_now = now_ms;
        match &mut self.state {
            State::Joining(_, j) => j.handle_timeout(now_ms),
            State::Active(n) => n.handle_timeout(now_ms),
        }
        self.collect();
    }

    fn poll_transmit(&mut self) -> Option<(MemberId, Envelope)> {
        match &mut self.state {
            State::Joining(_, j) => j.poll_transmit(),
            State::Active(n) => n.poll_transmit(),
        }
    }

    fn poll_timeout(&self) -> Option<u64> {
        match &self.state {
            State::Joining(_, j) => j.poll_timeout(),
            State::Active(n) => n.poll_timeout(),
        }
    }

    /// The postcard encoding of the epoch and message: the sender is not on the wire (the
    /// authenticated connection names it). Transport framing is not included.
    fn wire_size(e: &Envelope) -> usize {
        postcard::serialize_with_flavor::<_, postcard::ser_flavors::Size, usize>(
            &(e.epoch, &e.message),
            postcard::ser_flavors::Size::default(),
        )
        .expect("membership messages serialize")
    }
}

impl Member {
    fn collect(&mut self) {
        if let State::Joining(me, j) = &self.state
            && let Some((epoch, view)) = j.admitted()
        {
            let view = view.clone();
            self.installed.push((self.last_now, epoch, view.clone()));
            let node = MemberNode::new(*me, epoch, view, self.config, self.last_now);
            self.state = State::Active(Box::new(node));
        }
        let State::Active(node) = &mut self.state else { return };
        while let Some(e) = node.poll_event() {
            match e {
                Event::ViewInstalled { epoch, view, .. } => {
                    self.installed.push((self.last_now, epoch, view))
                }
                Event::Evicted(_) => self.evicted_at = Some(self.last_now),
            }
        }
    }
}

/// `n` members, all in a first view (epoch 1), ids spread over 128 bits, with the default
/// monitoring settings. Every node gets its own clock (offset up to a minute, drift within
/// ±1,000 ppm) and starts at a different moment within the first probe period, so that probes
/// are not in lockstep.
pub fn cluster(n: usize, seed: u64) -> Sim<Member> {
    cluster_with(n, seed, MonitorConfig::default())
}

/// [`cluster`] with monitoring settings `config`.
pub fn cluster_with(n: usize, seed: u64, config: MonitorConfig) -> Sim<Member> {
    let mut ids: Vec<MemberId> = (1..=n as u128).map(member_id).collect();
    ids.sort_unstable();
    let mut sim = Sim::new(BTreeMap::new(), seed);
    for &m in &ids {
        let clock = random_clock(sim.rng());
        let start = sim.rng().between(0, config.probe_period_ms.max(1) - 1);
        sim.set_clock(m, clock);
        let now = clock.local(0) + start;
        let node = MemberNode::new(m, Epoch(1), ViewChange::first(ids.clone()), config, now);
        sim.add(m, Member::active(node, config, now));
    }
    sim
}

/// The id of the `i`th node of a scenario.
pub fn member_id(i: u128) -> MemberId {
    MemberId(i.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835))
}

fn random_clock(rng: &mut crate::Rng) -> Clock {
    Clock { offset_ms: rng.between(0, 60_000), drift_ppm: rng.between(0, 2_000) as i64 - 1_000 }
}

/// The invariants, checked after every step: every member that installed epoch `e`
/// installed the same view for it (members, joined and left), a view's members are the
/// previous epoch's with its joined added and its left removed, and each member's epochs only
/// increase. Incremental: each installed view is checked once.
#[derive(Debug, Default)]
pub struct Checker {
    /// Per node, how many of its installed views are checked.
    checked: BTreeMap<MemberId, usize>,
    /// Per epoch, its view and the first node seen to install it.
    by_epoch: BTreeMap<Epoch, (ViewChange, MemberId)>,
}

impl Checker {
    /// Checks the views installed since the last call.
    pub fn check(&mut self, sim: &Sim<Member>) -> Result<(), String> {
        if self.by_epoch.is_empty() {
            // The first view, which nobody installs: the one the cluster starts with.
            let first = sim.nodes.iter().find_map(|(&id, m)| match &m.state {
                State::Active(n) if m.installed.is_empty() && n.view().0 == Epoch(1) => {
                    Some((n.view_change().clone(), id))
                }
                _ => None,
            });
            self.by_epoch.extend(first.map(|f| (Epoch(1), f)));
        }
        for (&id, m) in &sim.nodes {
            let done = self.checked.entry(id).or_default();
            // A node replaced under the same id starts over.
            if *done > m.installed.len() {
                *done = 0;
            }
            for i in *done..m.installed.len() {
                let (_, epoch, view) = &m.installed[i];
                let last = if i == 0 { Epoch(1) } else { m.installed[i - 1].1 };
                if *epoch <= last {
                    return Err(format!("{id} installed epoch {} after {}", epoch.0, last.0));
                }
                // Joined and left are the difference from the epoch before.
                if let Some((before, _)) = self.by_epoch.get(&Epoch(epoch.0 - 1)) {
                    let mut expect: Vec<MemberId> = before
                        .members
                        .iter()
                        .copied()
                        .filter(|x| !view.left.contains(x))
                        .chain(view.joined.iter().copied())
                        .collect();
                    expect.sort_unstable();
                    if expect != view.members {
                        return Err(format!(
                            "epoch {}: {id} installed members that are not epoch {}'s with {} joined and {} left",
                            epoch.0,
                            epoch.0 - 1,
                            view.joined.len(),
                            view.left.len()
                        ));
                    }
                }
                match self.by_epoch.get(epoch) {
                    Some((other, who)) if other != view => {
                        let count =
                            |v: &ViewChange| (v.members.len(), v.joined.len(), v.left.len());
                        return Err(format!(
                            "epoch {}: {id} installed (members, joined, left) of sizes {:?}, {who} installed {:?}{}",
                            epoch.0,
                            count(view),
                            count(other),
                            if other.members == view.members { ", the same members" } else { "" }
                        ));
                    }
                    Some(_) => {}
                    None => {
                        self.by_epoch.insert(*epoch, (view.clone(), id));
                    }
                }
            }
            *done = m.installed.len();
        }
        Ok(())
    }
}

/// Distinct epochs installed by any node: the view changes of a run.
fn views_installed(sim: &Sim<Member>) -> usize {
    let epochs: BTreeSet<Epoch> =
        sim.nodes.values().flat_map(|m| m.installed.iter().map(|v| v.1)).collect();
    epochs.len()
}

/// Adds node `id`, with a random clock and the first seed's monitoring settings, joining
/// through `seeds` (asked in turn) from global time `at_ms`.
fn spawn_joiner(sim: &mut Sim<Member>, id: MemberId, seeds: Vec<MemberId>, at_ms: u64) {
    let clock = random_clock(sim.rng());
    let config = sim.nodes[&seeds[0]].config;
    sim.set_clock(id, clock);
    sim.add(id, Member::joining(id, seeds, config, clock.local(at_ms)));
}

/// How many seeds a scenario's joiner gets.
const SEEDS: usize = 3;

/// Seeds for a joiner: up to [`SEEDS`] live members of `first_view` that have not learned they
/// were evicted (one may still be evicted without knowing it: the joiner then moves on).
fn seeds(sim: &Sim<Member>, first_view: &[MemberId]) -> Vec<MemberId> {
    sim.live()
        .into_iter()
        .filter(|m| first_view.contains(m) && sim.nodes[m].evicted_at.is_none())
        .take(SEEDS)
        .collect()
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
}

impl Default for Settings {
    fn default() -> Self {
        let probe_ms = MonitorConfig::default().probe_period_ms;
        Self { crashes: 3, bad: 1, duration_ms: 60_000, probe_ms }
    }
}

impl Settings {
    /// The members' monitoring settings: the defaults but for the probe period.
    pub fn monitor(&self) -> MonitorConfig {
        MonitorConfig { probe_period_ms: self.probe_ms, ..MonitorConfig::default() }
    }
}

/// The `luciole-sim` command that replays a run exactly.
pub fn replay(scenario: Scenario, nodes: usize, seed: u64, settings: Settings) -> String {
    let name = clap::ValueEnum::to_possible_value(&scenario).expect("every scenario is named");
    format!(
        "cargo run --release -p luciole-sim -- --scenario {} --nodes {nodes} --seed {seed} --crashes {} --bad {} --duration-ms {} --probe-ms {}",
        name.get_name(),
        settings.crashes,
        settings.bad,
        settings.duration_ms,
        settings.probe_ms
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
    /// Members evicted that the scenario did not make fail.
    pub false_evictions: usize,
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

/// Runs `scenario` on `n` members from `seed`. Errors name the broken invariant or the view
/// that never came.
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
    let pick = |sim: &mut Sim<Member>, k: usize| {
        let mut chosen: Vec<MemberId> = Vec::new();
        while chosen.len() < k.min(ids.len()) {
            let m = ids[(sim.rng().next_u64() % ids.len() as u64) as usize];
            if !chosen.contains(&m) {
                chosen.push(m);
            }
        }
        chosen.sort_unstable();
        chosen
    };
    let fault_at = sim.now_ms;
    // Long enough to detect a crash: about five probe periods, then the view change.
    let window = 5_000.max(settings.probe_ms * 10);
    // `failed`: must be evicted; `exempt`: may be (a node losing most of its messages is
    // faulty, not falsely evicted); `joiners`: must be admitted.
    let mut joiners: Vec<MemberId> = Vec::new();
    let mut late_joiners: Vec<(u64, MemberId)> = Vec::new();
    let mut sleeper = None;
    let (failed, exempt, end) = match scenario {
        Scenario::Crash | Scenario::Crashes => {
            let k = if scenario == Scenario::Crash { 1 } else { settings.crashes };
            let victims = pick(&mut sim, k);
            victims.iter().for_each(|&v| sim.crash(v));
            (victims, Vec::new(), fault_at + window)
        }
        Scenario::Loss => {
            sim.network.loss = 0.05;
            (Vec::new(), Vec::new(), fault_at + settings.duration_ms)
        }
        Scenario::BadNode => {
            let bad = pick(&mut sim, settings.bad);
            for &b in &bad {
                sim.network.node_loss.insert(b, 0.8);
            }
            (Vec::new(), bad, fault_at + settings.duration_ms)
        }
        Scenario::Partition => {
            let cut = pick(&mut sim, (n / 5).max(1));
            let rest: Vec<MemberId> = ids.iter().copied().filter(|m| !cut.contains(m)).collect();
            sim.network.partition(&cut, &rest);
            (cut, Vec::new(), fault_at + window)
        }
        Scenario::Join => {
            for i in 0..2 {
                let id = MemberId(sim.rng().next_u64() as u128 | (u128::from(i as u64) << 64));
                late_joiners.push((fault_at, id));
                joiners.push(id);
            }
            (Vec::new(), Vec::new(), fault_at + 10_000)
        }
        Scenario::Restart => {
            let victim = pick(&mut sim, 1)[0];
            sim.crash(victim);
            let reborn = MemberId(victim.0.wrapping_add(1));
            late_joiners.push((fault_at + 2_000, reborn));
            joiners.push(reborn);
            (vec![victim], Vec::new(), fault_at + 10_000)
        }
        Scenario::Pause => {
            let two = pick(&mut sim, 2);
            sim.pause(two[0], 300);
            sim.pause(two[1], 3_000);
            sleeper = Some(two[1]);
            (vec![two[1]], Vec::new(), fault_at + 10_000)
        }
        Scenario::Flap => {
            let flappy = pick(&mut sim, 1)[0];
            for &other in ids.iter().filter(|&&m| m != flappy) {
                sim.network.flap(flappy, other, 1_000, 250);
            }
            (Vec::new(), Vec::new(), fault_at + settings.duration_ms)
        }
        Scenario::Quiet => (Vec::new(), Vec::new(), fault_at + settings.duration_ms),
        Scenario::Joins => unreachable!("handled above"),
    };
    joiners.sort_unstable();
    late_joiners.sort_unstable();
    for (at, id) in late_joiners {
        sim.run_until(at, |s| checker.check(s))?;
        let seeds = seeds(&sim, &ids);
        if seeds.is_empty() {
            return Err(format!("no live member left for {id} to join through"));
        }
        let now = sim.now_ms;
        spawn_joiner(&mut sim, id, seeds, now);
    }
    sim.run_until(end, |s| checker.check(s))?;
    let all: Vec<MemberId> = sim.nodes.keys().copied().collect();
    let view_changes = views_installed(&sim);
    let mut detection_ms = Vec::new();
    let mut false_evictions = 0;
    let healthy = |x: &MemberId| !failed.contains(x) && !exempt.contains(x);
    for (id, m) in &sim.nodes {
        if !healthy(id) || sim.crashed.contains(id) {
            continue;
        }
        let evicted_here = all.iter().filter(|x| {
            healthy(x) && !sim.crashed.contains(x) && m.view().is_some_and(|l| !l.contains(x))
        });
        false_evictions =
            false_evictions.max(evicted_here.count() + usize::from(m.evicted_at.is_some()));
        if !failed.is_empty() || !joiners.is_empty() {
            let clock = sim.clocks.get(id).copied().unwrap_or_default();
            let at = m
                .installed
                .iter()
                .find(|(_, _, v)| {
                    failed.iter().all(|f| !v.members.contains(f))
                        && joiners.iter().all(|j| v.members.contains(j))
                })
                .map(|(t, _, _)| clock.global(*t).saturating_sub(fault_at))
                .ok_or_else(|| {
                    let views: Vec<(u64, u64, usize)> =
                        m.installed.iter().map(|(t, e, v)| (clock.global(*t), e.0, v.members.len())).collect();
                    format!("{id} never installed the view the scenario calls for (it installed, as (global ms, epoch, members): {views:?})")
                })?;
            detection_ms.push(at);
        }
    }
    if let Some(s) = sleeper
        && sim.nodes[&s].evicted_at.is_none()
    {
        return Err(format!("{s} paused 3 s, was removed, and never learned it"));
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
        failed,
        view_changes,
        detection_ms,
        false_evictions,
        bytes_per_s,
        msgs_per_s,
        simulated_ms: measured_ms,
        settled_ms,
    })
}

/// How long a run waits, after its faults stop, for one view of exactly the live nodes, ms.
pub const SETTLE_MS_MAX: u64 = 10_000;

/// The faults stop: the network heals, every node that learned it was evicted comes back as a
/// new incarnation (a new id, joining through a member of the first view that is still in),
/// and within [`SETTLE_MS_MAX`] every live node must have one view of exactly the live nodes.
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
        live.iter().all(|m| match &sim.nodes[m].state {
            State::Active(n) => n.view().1 == &live[..],
            State::Joining(..) => false,
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
                .map(|m| match &sim.nodes[m].state {
                    State::Active(n) => {
                        let (e, v) = n.view();
                        format!("{} epoch {} of {}", &m.to_string()[..6], e.0, v.len())
                    }
                    State::Joining(..) => format!("{} joining", &m.to_string()[..6]),
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
            return Err(format!(
                "after {limit_ms} ms only {inside} of {} nodes have a view, none with everyone",
                n + 1
            ));
        }
        step_ms += 10;
        sim.run_until(step_ms, |s| checker.check(s))?;
    }
    Ok(JoinsOutcome { all_in_ms: sim.now_ms, views: views_installed(&sim) })
}
