//! The membership core as simulated nodes, the invariants it must keep, and the scenarios the
//! tests and the `luciole-sim` binary run.

use std::collections::BTreeMap;

use luciole_proto::membership::join::Joiner;
use luciole_proto::membership::monitor::MonitorConfig;
use luciole_proto::membership::node::{Envelope, Event, MemberNode};
use luciole_proto::{Epoch, MemberId};

use crate::{Actor, Sim};

/// A simulated node: joining, or a member, and what it installed.
#[derive(Debug)]
pub struct Member {
    /// The core.
    pub state: State,
    /// Views installed: (virtual ms, epoch, members).
    pub installed: Vec<(u64, Epoch, Vec<MemberId>)>,
    /// When it learned it was evicted.
    pub evicted_at: Option<u64>,
    last_now: u64,
}

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
}

impl Member {
    fn collect(&mut self) {
        if let State::Joining(me, j) = &self.state
            && let Some((epoch, members)) = j.admitted()
        {
            let node = MemberNode::new(
                *me,
                epoch,
                members.to_vec(),
                MonitorConfig::default(),
                self.last_now,
            );
            self.installed.push((self.last_now, epoch, members.to_vec()));
            self.state = State::Active(Box::new(node));
        }
        let State::Active(node) = &mut self.state else { return };
        while let Some(e) = node.poll_event() {
            match e {
                Event::ViewInstalled { epoch, members } => {
                    self.installed.push((self.last_now, epoch, members))
                }
                Event::Evicted(_) => self.evicted_at = Some(self.last_now),
            }
        }
    }
}

/// `n` members, all in a first view (epoch 1), ids spread over 128 bits.
pub fn cluster(n: usize, seed: u64) -> Sim<Member> {
    let mut ids: Vec<MemberId> = (1..=n as u128)
        .map(|i| MemberId(i.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835)))
        .collect();
    ids.sort_unstable();
    // Members start at different moments within the first probe period, so their probes are
    // not in lockstep.
    let mut starts = crate::Rng::new(seed ^ 0x5eed_57a7);
    let period = MonitorConfig::default().probe_period_ms;
    let nodes = ids
        .iter()
        .map(|&m| {
            let start = starts.between(0, period - 1);
            let node = MemberNode::new(m, Epoch(1), ids.clone(), MonitorConfig::default(), start);
            (
                m,
                Member {
                    state: State::Active(Box::new(node)),
                    installed: Vec::new(),
                    evicted_at: None,
                    last_now: 0,
                },
            )
        })
        .collect();
    Sim::new(nodes, seed)
}

/// The invariants, checked after every step: every member that installed epoch `e` installed
/// the same member set for it, and each member's epochs only increase.
pub fn check(sim: &Sim<Member>) -> Result<(), String> {
    let mut by_epoch: BTreeMap<Epoch, (&[MemberId], MemberId)> = BTreeMap::new();
    for (&id, m) in &sim.nodes {
        let mut last = Epoch(1);
        for (_, epoch, members) in &m.installed {
            if *epoch <= last {
                return Err(format!("{id} installed epoch {} after {}", epoch.0, last.0));
            }
            last = *epoch;
            match by_epoch.get(epoch) {
                Some((other, who)) if *other != &members[..] => {
                    return Err(format!(
                        "epoch {}: {id} installed {} members, {who} installed {}",
                        epoch.0,
                        members.len(),
                        other.len()
                    ));
                }
                Some(_) => {}
                None => {
                    by_epoch.insert(*epoch, (members, id));
                }
            }
        }
    }
    Ok(())
}

/// The scenarios: what happens, and what must hold at the end.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// One member crashes.
    Crash,
    /// Three members crash at the same moment.
    Crashes,
    /// 5 % of all messages are lost for a simulated minute; nothing crashes.
    Loss,
    /// One member loses 80 % of its messages for a simulated minute.
    BadNode,
    /// A fifth of the members are cut off from the rest (both directions).
    Partition,
    /// Two nodes join at the same moment through one seed.
    Join,
}

/// What a scenario run found.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// Members the scenario made fail (crashed or cut off).
    pub failed: Vec<MemberId>,
    /// View changes installed (distinct epochs above 1).
    pub view_changes: usize,
    /// Per live member, ms from the fault to installing the view without the failed ones.
    pub detection_ms: Vec<u64>,
    /// Members evicted that the scenario did not make fail.
    pub false_evictions: usize,
}

/// Runs `scenario` on `n` members from `seed`. Errors name the broken invariant.
pub fn run(scenario: Scenario, n: usize, seed: u64) -> Result<Outcome, String> {
    let mut sim = cluster(n, seed);
    sim.run_until(1_000, check)?;
    let ids: Vec<MemberId> = sim.nodes.keys().copied().collect();
    let pick = |sim: &mut Sim<Member>, k: usize| {
        let mut chosen: Vec<MemberId> = Vec::new();
        while chosen.len() < k {
            let m = ids[(sim.rng().next_u64() % ids.len() as u64) as usize];
            if !chosen.contains(&m) {
                chosen.push(m);
            }
        }
        chosen.sort_unstable();
        chosen
    };
    let fault_at = sim.now_ms;
    // `failed`: must be evicted; `exempt`: may be (a node losing most of its messages is
    // faulty, not falsely evicted).
    let mut joiners: Vec<MemberId> = Vec::new();
    let (failed, exempt, end) = match scenario {
        Scenario::Crash | Scenario::Crashes => {
            let victims = pick(&mut sim, if scenario == Scenario::Crash { 1 } else { 3 });
            victims.iter().for_each(|&v| sim.crash(v));
            (victims, Vec::new(), fault_at + 5_000)
        }
        Scenario::Loss => {
            sim.network.loss = 0.05;
            (Vec::new(), Vec::new(), fault_at + 60_000)
        }
        Scenario::BadNode => {
            let bad = pick(&mut sim, 1);
            sim.network.node_loss.insert(bad[0], 0.8);
            (Vec::new(), bad, fault_at + 60_000)
        }
        Scenario::Partition => {
            let cut = pick(&mut sim, (n / 5).max(1));
            let rest: Vec<MemberId> = ids.iter().copied().filter(|m| !cut.contains(m)).collect();
            sim.network.partition(&cut, &rest);
            (cut, Vec::new(), fault_at + 5_000)
        }
        Scenario::Join => {
            let seed_member = ids[0];
            for i in 0..2 {
                let id = MemberId(sim.rng().next_u64() as u128 | (u128::from(i as u64) << 64));
                let joiner = Joiner::new(id, seed_member, 1_000, fault_at);
                let state = State::Joining(id, joiner);
                sim.nodes.insert(
                    id,
                    Member { state, installed: Vec::new(), evicted_at: None, last_now: 0 },
                );
                joiners.push(id);
            }
            joiners.sort_unstable();
            (Vec::new(), Vec::new(), fault_at + 10_000)
        }
    };
    let ids: Vec<MemberId> = sim.nodes.keys().copied().collect();
    sim.run_until(end, check)?;
    let mut epochs: Vec<Epoch> =
        sim.nodes.values().flat_map(|m| m.installed.iter().map(|v| v.1)).collect();
    epochs.sort_unstable();
    epochs.dedup();
    let mut detection_ms = Vec::new();
    let mut false_evictions = 0;
    let healthy = |x: &MemberId| !failed.contains(x) && !exempt.contains(x);
    for (id, m) in &sim.nodes {
        if !healthy(id) {
            continue;
        }
        let last = m.installed.last().map(|(_, _, members)| members.as_slice());
        let evicted_here =
            ids.iter().filter(|x| healthy(x) && last.is_some_and(|l| !l.contains(x)));
        false_evictions =
            false_evictions.max(evicted_here.count() + usize::from(m.evicted_at.is_some()));
        if !failed.is_empty() || !joiners.is_empty() {
            let at = m
                .installed
                .iter()
                .find(|(_, _, members)| {
                    failed.iter().all(|f| !members.contains(f))
                        && joiners.iter().all(|j| members.contains(j))
                })
                .map(|(t, _, _)| t - fault_at)
                .ok_or_else(|| {
                    let views: Vec<(u64, u64, usize)> =
                        m.installed.iter().map(|(t, e, v)| (*t, e.0, v.len())).collect();
                    format!("{id} never installed the view the scenario calls for (it installed, as (ms, epoch, members): {views:?})")
                })?;
            detection_ms.push(at);
        }
    }
    Ok(Outcome { failed, view_changes: epochs.len(), detection_ms, false_evictions })
}
