//! The deterministic simulator: many protocol cores in one process, on virtual time, every
//! choice drawn from one seeded generator, so that a run is a function of its seed and a failing
//! seed replays exactly.
//!
//! A simulated node is an [`Actor`]: a [`Core`], the sans-IO calling shape of luciole's protocol
//! cores (`handle_message`, `handle_timeout`, `poll_transmit`, `poll_event`, `poll_timeout`)
//! that the node's driver runs too, so the membership core runs here as on a node, and the
//! migration core and wasm policies under fuel can be wrapped the same way. The write-ahead log
//! runs here through its step driver (see [`wal`]). The [`Network`] delays, loses, duplicates and reorders
//! messages and cuts links (both ways or one way); nodes crash and restart. After every step the
//! caller's invariant checks run.
//!
//! Nodes also pause (messages and timers wait) and each has its own clock, offset and drifting
//! from global time; links flap. Traffic is counted per node in messages and wire bytes.

pub mod cluster;
pub mod membership;
pub mod wal;

use std::collections::{BTreeMap, BTreeSet};

use luciole_proto::MemberId;
pub use luciole_proto::core::{Core, Millis};
use luciole_proto::rand::SplitMix64;

/// A simulated node: a protocol core ([`Core`], the calling shape the node's driver uses too),
/// and what its messages weigh on the wire. Times are the node's own clock (see [`Clock`]): a
/// core never sees the simulator's global time.
pub trait Actor: Core {
    /// Bytes `message` takes on the wire, for the traffic figures.
    fn wire_size(message: &Self::Message) -> usize;
}

/// A node's clock: `local = global + offset + global × drift_ppm / 1e6`. Offsets are not
/// negative so that local time starts at or above 0; drift is bounded so time never runs back.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Clock {
    /// Local minus global time at global 0, ms.
    pub offset_ms: u64,
    /// Parts per million the clock runs fast (positive) or slow (negative), within ±100,000.
    pub drift_ppm: i64,
}

impl Clock {
    /// Local time at global `g`.
    pub fn local(&self, g: u64) -> u64 {
        let skew = i128::from(g) * i128::from(self.drift_ppm) / 1_000_000;
        (i128::from(g) + i128::from(self.offset_ms) + skew).max(0) as u64
    }

    /// The first global time at which local time reaches `l`.
    pub fn global(&self, l: u64) -> u64 {
        let rate = 1_000_000 + i128::from(self.drift_ppm);
        let mut g = ((i128::from(l) - i128::from(self.offset_ms)) * 1_000_000 / rate).max(0) as u64;
        while g > 0 && self.local(g - 1) >= l {
            g -= 1;
        }
        while self.local(g) < l {
            g += 1;
        }
        g
    }
}

/// Messages and bytes a node handed to the network (lost ones included).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Messages handed to the network.
    pub sent_msgs: u64,
    /// Their bytes.
    pub sent_bytes: u64,
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
    /// Links that go down and up on a cycle: per link (lower id first), the cycle length, the
    /// down time at the start of each cycle and the cycle's phase, ms. See [`Network::flap`].
    pub flaps: BTreeMap<(MemberId, MemberId), (u64, u64, u64)>,
}

impl Default for Network {
    fn default() -> Self {
        Self {
            delay_ms: (1, 5),
            loss: 0.0,
            duplication: 0.0,
            node_loss: BTreeMap::new(),
            cut: BTreeSet::new(),
            flaps: BTreeMap::new(),
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

    /// Heals every cut and flapping link.
    pub fn heal(&mut self) {
        self.cut.clear();
        self.flaps.clear();
    }

    /// The link between `a` and `b` goes down (both ways) for `down_ms` at the start of every
    /// `period_ms`, cycles starting at `phase_ms` (modulo the period).
    pub fn flap(&mut self, a: MemberId, b: MemberId, period_ms: u64, down_ms: u64, phase_ms: u64) {
        self.flaps.insert((a.min(b), a.max(b)), (period_ms.max(1), down_ms, phase_ms));
    }

    /// Whether `from` → `to` is down at global time `now_ms`.
    pub fn down(&self, from: MemberId, to: MemberId, now_ms: u64) -> bool {
        self.cut.contains(&(from, to))
            || self.flaps.get(&(from.min(to), from.max(to))).is_some_and(
                |&(period, down, phase)| (now_ms + period - phase % period) % period < down,
            )
    }
}

/// A message on the network.
#[derive(Debug)]
struct InFlight<M> {
    from: MemberId,
    to: MemberId,
    message: M,
}

/// A cluster of actors on virtual time. Event-driven: time jumps to the next delivery or
/// timer, so idle stretches cost nothing.
#[derive(Debug)]
pub struct Sim<A: Actor> {
    /// The nodes, crashed ones included.
    pub nodes: BTreeMap<MemberId, A>,
    /// Nodes that are down: they neither send, receive nor time out.
    pub crashed: BTreeSet<MemberId>,
    /// Nodes paused until a global time: messages to them wait, their timers wait (a long GC
    /// pause, a stopped VM). They resume where they were.
    pub paused: BTreeMap<MemberId, u64>,
    /// Per node clock; nodes not listed keep global time.
    pub clocks: BTreeMap<MemberId, Clock>,
    /// The network.
    pub network: Network,
    /// Global virtual time, ms.
    pub now_ms: u64,
    /// Per node traffic since the start (or the last [`Sim::reset_traffic`]).
    pub traffic: BTreeMap<MemberId, Traffic>,
    rng: Rng,
    /// (due, sequence) → the message.
    wire: BTreeMap<(u64, u64), InFlight<A::Message>>,
    /// (global due, node): the timer each node asked for.
    timers: BTreeSet<(u64, MemberId)>,
    timer_of: BTreeMap<MemberId, u64>,
    seq: u64,
}

impl<A: Actor> Sim<A> {
    /// A simulation of `nodes` from `seed`.
    pub fn new(nodes: BTreeMap<MemberId, A>, seed: u64) -> Self {
        let mut sim = Self {
            nodes: BTreeMap::new(),
            crashed: BTreeSet::new(),
            paused: BTreeMap::new(),
            clocks: BTreeMap::new(),
            network: Network::default(),
            now_ms: 0,
            traffic: BTreeMap::new(),
            rng: Rng::new(seed),
            wire: BTreeMap::new(),
            timers: BTreeSet::new(),
            timer_of: BTreeMap::new(),
            seq: 0,
        };
        for (id, node) in nodes {
            sim.add(id, node);
        }
        sim
    }

    /// Adds (or replaces) node `id`, running from now.
    pub fn add(&mut self, id: MemberId, node: A) {
        self.nodes.insert(id, node);
        self.crashed.remove(&id);
        self.schedule(id);
    }

    /// Sets `id`'s clock (before it starts: a core's times are not rewritten).
    pub fn set_clock(&mut self, id: MemberId, clock: Clock) {
        self.clocks.insert(id, clock);
        self.schedule(id);
    }

    /// `id`'s local time now.
    pub fn local_now(&self, id: MemberId) -> u64 {
        self.clocks.get(&id).map_or(self.now_ms, |c| c.local(self.now_ms))
    }

    /// The simulation's generator, for scenario choices that must replay too.
    pub fn rng(&mut self) -> &mut Rng {
        &mut self.rng
    }

    /// The live nodes.
    pub fn live(&self) -> Vec<MemberId> {
        self.nodes.keys().copied().filter(|m| !self.crashed.contains(m)).collect()
    }

    /// Crashes `m`: messages in flight to it are lost, it stops for good (a restart is a new
    /// node, see [`Sim::add`]).
    pub fn crash(&mut self, m: MemberId) {
        self.crashed.insert(m);
        if let Some(t) = self.timer_of.remove(&m) {
            self.timers.remove(&(t, m));
        }
    }

    /// Pauses `m` for `ms` from now.
    pub fn pause(&mut self, m: MemberId, ms: u64) {
        self.paused.insert(m, self.now_ms + ms);
    }

    /// Runs `f` on node `m` (not crashed) with its local time now, then puts what it queued
    /// on the network and re-reads its timer: how a scenario acts on a node from outside
    /// (a request, a planned fault).
    pub fn poke<T>(&mut self, m: MemberId, f: impl FnOnce(&mut A, Millis) -> T) -> Option<T> {
        if self.crashed.contains(&m) {
            return None;
        }
        let local = Millis(self.local_now(m));
        let out = f(self.nodes.get_mut(&m)?, local);
        self.flush(m);
        Some(out)
    }

    /// Forgets the traffic counted so far.
    pub fn reset_traffic(&mut self) {
        self.traffic.clear();
    }

    /// Runs until global time `until_ms`, calling `check` after every step (every moment
    /// something happened); stops at the first violation it returns.
    pub fn run_until(
        &mut self,
        until_ms: u64,
        mut check: impl FnMut(&Self) -> Result<(), String>,
    ) -> Result<(), String> {
        loop {
            let next_wire = self.wire.keys().next().map(|k| k.0);
            let next_timer = self.timers.iter().next().map(|k| k.0);
            let next = [next_wire, next_timer].into_iter().flatten().min();
            match next {
                Some(t) if t <= until_ms => {
                    self.now_ms = self.now_ms.max(t);
                    self.step();
                    check(self).map_err(|e| format!("at {} ms: {e}", self.now_ms))?;
                }
                _ => {
                    self.now_ms = self.now_ms.max(until_ms);
                    return Ok(());
                }
            }
        }
    }

    fn step(&mut self) {
        let now = self.now_ms;
        while let Some((&(due, seq), _)) = self.wire.first_key_value() {
            if due > now {
                break;
            }
            let m = self.wire.remove(&(due, seq)).expect("listed");
            let to = m.to;
            if self.crashed.contains(&to) || !self.nodes.contains_key(&to) {
                continue;
            }
            if let Some(&until) = self.paused.get(&to) {
                if until > now {
                    self.seq += 1;
                    self.wire.insert((until, self.seq), m);
                    continue;
                }
                self.paused.remove(&to);
            }
            let (from, message) = (m.from, m.message);
            let local = self.local_now(to);
            self.nodes.get_mut(&to).expect("checked").handle_message(Millis(local), from, message);
            self.flush(to);
        }
        while let Some(&(due, m)) = self.timers.first() {
            if due > now {
                break;
            }
            self.timers.pop_first();
            self.timer_of.remove(&m);
            if self.crashed.contains(&m) {
                continue;
            }
            if let Some(&until) = self.paused.get(&m) {
                if until > now {
                    self.timers.insert((until, m));
                    self.timer_of.insert(m, until);
                    continue;
                }
                self.paused.remove(&m);
            }
            let local = self.local_now(m);
            let node = self.nodes.get_mut(&m).expect("a timer of a node");
            if node.poll_timeout().is_some_and(|t| t.0 <= local) {
                node.handle_timeout(Millis(local));
            }
            self.flush(m);
        }
    }

    /// Re-reads `m`'s timer.
    fn schedule(&mut self, m: MemberId) {
        if let Some(t) = self.timer_of.remove(&m) {
            self.timers.remove(&(t, m));
        }
        if self.crashed.contains(&m) {
            return;
        }
        let Some(Millis(local)) = self.nodes.get(&m).and_then(|n| n.poll_timeout()) else {
            return;
        };
        let global = self.clocks.get(&m).map_or(local, |c| c.global(local)).max(self.now_ms);
        // A timer already due fires in this step's timer pass or the next moment.
        let global = if global <= self.now_ms { self.now_ms + 1 } else { global };
        self.timers.insert((global, m));
        self.timer_of.insert(m, global);
    }

    fn flush(&mut self, from: MemberId) {
        let mut out = Vec::new();
        let node = self.nodes.get_mut(&from).expect("flushing a node");
        while let Some(t) = node.poll_transmit() {
            out.push(t);
        }
        self.schedule(from);
        for (to, message) in out {
            self.send(from, to, message);
        }
    }

    /// Puts `message` from `from` to `to` on the network, which delays, loses, duplicates or
    /// drops it like any other: what nodes send goes through here, and a scenario can send a
    /// message in a node's name (a forged or replayed one).
    pub fn send(&mut self, from: MemberId, to: MemberId, message: A::Message) {
        let size = A::wire_size(&message) as u64;
        let t = self.traffic.entry(from).or_default();
        t.sent_msgs += 1;
        t.sent_bytes += size;
        let net = &self.network;
        if net.down(from, to, self.now_ms) {
            return;
        }
        let extra = net.node_loss.get(&from).copied().unwrap_or(0.0)
            + net.node_loss.get(&to).copied().unwrap_or(0.0);
        let (loss, dup, (lo, hi)) = (net.loss + extra, net.duplication, net.delay_ms);
        if self.rng.chance(loss) {
            return;
        }
        let copies = if self.rng.chance(dup) { 2 } else { 1 };
        for _ in 0..copies {
            let delay = self.rng.between(lo, hi).max(1);
            self.seq += 1;
            let copy = InFlight { from, to, message: message.clone() };
            self.wire.insert((self.now_ms + delay, self.seq), copy);
        }
    }
}
