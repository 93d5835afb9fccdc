//! The deterministic simulator: many protocol cores in one process, on virtual time, every
//! choice drawn from one seeded generator, so that a run is a function of its seed and a failing
//! seed replays exactly.
//!
//! A simulated node is an [`Actor`]: the sans-IO calling shape of luciole's cores
//! (`handle_message`, `handle_timeout`, `poll_transmit`, `poll_timeout`), so the membership core
//! runs here today and the migration core, the WAL's memory backend and wasm policies under fuel
//! can be wrapped the same way later. The [`Network`] delays, loses, duplicates and reorders
//! messages and cuts links (both ways or one way); nodes crash and restart. After every step the
//! caller's invariant checks run.
//!
//! In progress (the membership issue): node pauses, clock offset and drift, flapping links and
//! the report are not built yet.

pub mod membership;

use std::collections::{BTreeMap, BTreeSet};

use luciole_proto::MemberId;
use luciole_proto::rand::SplitMix64;

/// A simulated node: a protocol core in its calling shape.
pub trait Actor {
    /// What nodes send each other.
    type Message: Clone + std::fmt::Debug;
    /// A message from `from` arrived at virtual time `now_ms`.
    fn handle_message(&mut self, now_ms: u64, from: MemberId, message: Self::Message);
    /// Virtual time reached a timeout the node asked for.
    fn handle_timeout(&mut self, now_ms: u64);
    /// The next message to send.
    fn poll_transmit(&mut self) -> Option<(MemberId, Self::Message)>;
    /// When the node next needs [`Actor::handle_timeout`].
    fn poll_timeout(&self) -> Option<u64>;
}

/// The simulator's only source of randomness: splitmix64 from one seed.
#[derive(Clone, Debug)]
pub struct Rng(SplitMix64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(SplitMix64::new(seed))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// True with probability `p` (0.0–1.0).
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p && p > 0.0
    }

    /// Uniform in `lo..=hi`.
    pub fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }
}

/// Network behaviour, the same for every link unless a link is cut.
#[derive(Clone, Debug)]
pub struct Network {
    /// Shortest and longest delivery delay, in ms (uniform between; different delays reorder).
    pub delay_ms: (u64, u64),
    /// Probability that a message is lost.
    pub loss: f64,
    /// Probability that a message is delivered twice.
    pub duplication: f64,
    /// Per node, an extra loss probability on everything it sends or receives (a bad NIC).
    pub node_loss: BTreeMap<MemberId, f64>,
    /// Cut links: `(from, to)` never delivers. Cut both directions for a symmetric partition.
    pub cut: BTreeSet<(MemberId, MemberId)>,
}

impl Default for Network {
    fn default() -> Self {
        Self {
            delay_ms: (1, 5),
            loss: 0.0,
            duplication: 0.0,
            node_loss: BTreeMap::new(),
            cut: BTreeSet::new(),
        }
    }
}

impl Network {
    /// Cuts every link between `a` and `b` (both ways).
    pub fn partition(&mut self, a: &[MemberId], b: &[MemberId]) {
        for &x in a {
            for &y in b {
                self.cut.insert((x, y));
                self.cut.insert((y, x));
            }
        }
    }

    /// Heals every cut link.
    pub fn heal(&mut self) {
        self.cut.clear();
    }
}

/// A cluster of actors on virtual time.
#[derive(Debug)]
pub struct Sim<A: Actor> {
    /// The nodes, crashed ones included.
    pub nodes: BTreeMap<MemberId, A>,
    /// Nodes that are down: they neither send, receive nor time out.
    pub crashed: BTreeSet<MemberId>,
    /// The network.
    pub network: Network,
    /// Virtual time, ms.
    pub now_ms: u64,
    /// Messages sent: for the bytes-per-node figures (counted by the caller's sizing).
    pub sent: u64,
    rng: Rng,
    /// (due, sequence) → (from, to, message).
    wire: BTreeMap<(u64, u64), (MemberId, MemberId, A::Message)>,
    seq: u64,
}

impl<A: Actor> Sim<A> {
    /// A simulation of `nodes` from `seed`.
    pub fn new(nodes: BTreeMap<MemberId, A>, seed: u64) -> Self {
        Self {
            nodes,
            crashed: BTreeSet::new(),
            network: Network::default(),
            now_ms: 0,
            sent: 0,
            rng: Rng::new(seed),
            wire: BTreeMap::new(),
            seq: 0,
        }
    }

    /// The simulation's generator, for scenario choices that must replay too.
    pub fn rng(&mut self) -> &mut Rng {
        &mut self.rng
    }

    /// The live nodes.
    pub fn live(&self) -> Vec<MemberId> {
        self.nodes.keys().copied().filter(|m| !self.crashed.contains(m)).collect()
    }

    /// Crashes `m`: its messages in flight to it are lost, it stops.
    pub fn crash(&mut self, m: MemberId) {
        self.crashed.insert(m);
    }

    /// Runs until virtual time `until_ms`, one millisecond at a time, calling `check` after
    /// every millisecond; stops at the first violation it returns.
    pub fn run_until(
        &mut self,
        until_ms: u64,
        mut check: impl FnMut(&Self) -> Result<(), String>,
    ) -> Result<(), String> {
        while self.now_ms < until_ms {
            self.now_ms += 1;
            self.step();
            check(self).map_err(|e| format!("at {} ms: {e}", self.now_ms))?;
        }
        Ok(())
    }

    fn step(&mut self) {
        let now = self.now_ms;
        let due: Vec<(u64, u64)> = self.wire.range(..=(now, u64::MAX)).map(|(k, _)| *k).collect();
        for k in due {
            let (from, to, message) = self.wire.remove(&k).expect("listed");
            if self.crashed.contains(&to) {
                continue;
            }
            if let Some(node) = self.nodes.get_mut(&to) {
                node.handle_message(now, from, message);
                self.flush(to);
            }
        }
        let ids: Vec<MemberId> = self.nodes.keys().copied().collect();
        for m in ids {
            if self.crashed.contains(&m) {
                continue;
            }
            let node = self.nodes.get_mut(&m).expect("listed");
            if node.poll_timeout().is_some_and(|t| t <= now) {
                node.handle_timeout(now);
                self.flush(m);
            }
        }
    }

    fn flush(&mut self, from: MemberId) {
        let mut out = Vec::new();
        let node = self.nodes.get_mut(&from).expect("flushing a node");
        while let Some(t) = node.poll_transmit() {
            out.push(t);
        }
        for (to, message) in out {
            self.sent += 1;
            let net = &self.network;
            if net.cut.contains(&(from, to)) {
                continue;
            }
            let extra = net.node_loss.get(&from).copied().unwrap_or(0.0)
                + net.node_loss.get(&to).copied().unwrap_or(0.0);
            let (loss, dup, (lo, hi)) = (net.loss + extra, net.duplication, net.delay_ms);
            if self.rng.chance(loss) {
                continue;
            }
            let copies = if self.rng.chance(dup) { 2 } else { 1 };
            for _ in 0..copies {
                let delay = self.rng.between(lo, hi);
                self.seq += 1;
                self.wire.insert((self.now_ms + delay, self.seq), (from, to, message.clone()));
            }
        }
    }
}
