//! The membership core as simulated nodes, the invariants it must keep, and the scenarios the
//! tests and the `luciole-sim` binary run.

use std::collections::BTreeMap;

use luciole_proto::membership::lifecycle::{Membership, MembershipEvent, Phase};
use luciole_proto::membership::monitor::MonitorConfig;
use luciole_proto::membership::node::{Envelope, MemberNode, ViewChange};
use luciole_proto::{Epoch, MemberId, MemberInfo};

use crate::{Actor, Clock, Core, Millis, Sim};

mod forge;
mod scenario;

pub use scenario::{
    JoinsOutcome, Outcome, SETTLE_MS_MAX, Scenario, Settings, joins, replay, run_with, spawn_joiner,
};

/// A simulated node: the membership core, and what it installed.
#[derive(Debug)]
pub struct Member {
    /// The core.
    pub core: Membership,
    /// Views installed: (local ms, epoch, the view).
    pub installed: Vec<(u64, Epoch, ViewChange)>,
    /// When (local ms) it learned it was evicted.
    pub evicted_at: Option<u64>,
    /// When (local ms) it lost (false) or regained (true) its quorum, in order.
    pub quorum: Vec<(u64, bool)>,
    /// Its monitoring settings (also those it takes into the view when it joins).
    pub config: MonitorConfig,
}

impl Member {
    /// A node joining through `seeds` (in turn), asking first at local time `now_ms`.
    pub fn joining(me: MemberId, seeds: Vec<MemberId>, config: MonitorConfig, now_ms: u64) -> Self {
        Self::with(Membership::joining(me, info_of(me), seeds, config, Millis(now_ms)), config)
    }

    /// A member running `node` (made with `config`).
    pub fn active(node: MemberNode, config: MonitorConfig) -> Self {
        Self::with(Membership::member(node, config), config)
    }

    fn with(core: Membership, config: MonitorConfig) -> Self {
        Self { core, installed: Vec::new(), evicted_at: None, quorum: Vec::new(), config }
    }

    /// The members of the newest view it installed, if any.
    pub fn view(&self) -> Option<&[MemberId]> {
        self.installed.last().map(|(_, _, v)| v.members.as_slice())
    }

    /// Records what the core reports.
    fn collect(&mut self, now: Millis) {
        while let Some(e) = self.core.poll_event() {
            match e {
                MembershipEvent::ViewInstalled { epoch, view } => {
                    self.installed.push((now.0, epoch, view))
                }
                MembershipEvent::Evicted => self.evicted_at = Some(now.0),
                MembershipEvent::QuorumLost => self.quorum.push((now.0, false)),
                MembershipEvent::QuorumRegained => self.quorum.push((now.0, true)),
            }
        }
    }
}

pub use luciole_proto::membership::lifecycle::JOIN_RETRY_MS;

impl Core for Member {
    type Message = Envelope;
    type Event = MembershipEvent;

    fn handle_message(&mut self, now: Millis, from: MemberId, message: Envelope) {
        self.core.handle_message(now, from, message);
        self.collect(now);
    }

    fn handle_timeout(&mut self, now: Millis) {
        self.core.handle_timeout(now);
        self.collect(now);
    }

    fn poll_transmit(&mut self) -> Option<(MemberId, Envelope)> {
        self.core.poll_transmit()
    }

    /// Events are recorded (`installed`, `evicted_at`, `quorum`), not passed on.
    fn poll_event(&mut self) -> Option<MembershipEvent> {
        None
    }

    fn poll_timeout(&self) -> Option<Millis> {
        self.core.poll_timeout()
    }
}

impl Actor for Member {
    /// The postcard encoding of the epoch and message: the sender is not on the wire (the
    /// authenticated connection names it). Transport framing is not included.
    /// The frame the transport would send: its header and the envelope's postcard encoding.
    fn wire_size(e: &Envelope) -> usize {
        luciole_proto::limits::FRAME_HEADER_BYTES
            + postcard::serialize_with_flavor::<_, postcard::ser_flavors::Size, usize>(
                e,
                postcard::ser_flavors::Size::default(),
            )
            .expect("membership messages serialize")
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
        let first = ViewChange::first(ids.iter().map(|&m| (m, info_of(m))).collect());
        let node = MemberNode::new(m, Epoch(1), first, config, now);
        sim.add(m, Member::active(node, config));
    }
    sim
}

/// What node `m` brings into the view: capacity 1, no labels, and an address of the length a
/// real IPv4 one has (so that message sizes are realistic).
pub fn info_of(m: MemberId) -> MemberInfo {
    let b = m.0.to_be_bytes();
    MemberInfo {
        capacity: 1,
        labels: Vec::new(),
        addr: format!("10.{}.{}.{}:7400", b[0], b[1], b[2]),
    }
}

/// The id of the `i`th node of a scenario.
pub fn member_id(i: u128) -> MemberId {
    MemberId(i.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835))
}

pub(crate) fn random_clock(rng: &mut crate::Rng) -> Clock {
    Clock { offset_ms: rng.between(0, 60_000), drift_ppm: rng.between(0, 2_000) as i64 - 1_000 }
}

/// The invariants, checked after every step: every member that installed epoch `e`
/// installed the same view for it (members, joined and left), a view's members are the
/// previous epoch's with its joined added and its left removed, no view is empty or removes
/// half or more of the previous view at once, and each member's epochs only increase.
/// Incremental: each installed view is checked once.
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
            let first = sim.nodes.iter().find_map(|(&id, m)| match m.core.phase() {
                Phase::Member(n) if m.installed.is_empty() && n.view().0 == Epoch(1) => {
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
                if view.members.is_empty() {
                    return Err(format!("epoch {}: {id} installed an empty view", epoch.0));
                }
                // Joined and left are the difference from the epoch before.
                if let Some((before, _)) = self.by_epoch.get(&Epoch(epoch.0 - 1)) {
                    if view.left.len() * 2 >= before.members.len() {
                        return Err(format!(
                            "epoch {}: {id} installed a view that removes {} of epoch {}'s {} members at once",
                            epoch.0,
                            view.left.len(),
                            epoch.0 - 1,
                            before.members.len()
                        ));
                    }
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
