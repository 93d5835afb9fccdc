//! The node's entities: the migration core driven over the transport, logging to the file
//! write-ahead log, and the workload that moves the entities through the world's bubbles.
//!
//! The driver loop ([`crate::run`]) owns a [`World`] and is its only caller, as it is the
//! membership core's. What the migration core logs is appended to the log at once and the
//! core is told when it is durable; the core holds back every message that must wait for a
//! record, so a sync covers everything appended since the last one (group commit: the log's
//! writer gathers what arrives while it syncs) and the messages released by one sync go out
//! together, one frame per peer. Durable throughput is then the disk's sync rate times the
//! records per sync, not one sync per migration.
//!
//! An entity's state is its motion (48 bytes: position and velocity) followed by its opaque
//! payload. The motion changes every bucket and is not logged: a restart finds an entity
//! where its last logged state (its spawn or its arrival) put it. The payload is a pattern
//! of its id, checked on every arrival, so a state damaged in transit or in the log shows.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::Path;

use anyhow::Context;
use luciole_proto::core::{Core, Millis};
use luciole_proto::migration::{
    Event, Message, MigrationConfig, MigrationCore, MigrationPolicy, Outcome, Record, Role,
    Standard,
};
use luciole_proto::order::{Arrival, Numbering, Receipts, Stamp};
use luciole_proto::rand::SplitMix64;
use luciole_proto::skew::{SkewEvent, SkewMonitor};
use luciole_proto::world::{Body, Grid, Motion};
use luciole_proto::{BubbleId, EntityId, Epoch, MemberId, View};
use luciole_wal::{FileStorage, Pending, RecordType, Wal, WalConfig};
use serde::{Deserialize, Serialize};

use crate::config::{MotionKind, WorldConfig};
use crate::run::short;
use crate::wire::{Link, Summary, Wire};

mod report;
mod state;

use report::reason_name;
pub use report::{
    Holdings, LATENCY_BUCKETS, PeerWorld, WorldStats, WorldStatus, latency_bucket, latency_quantile,
};
pub use state::{MOTION_BYTES, decode_body, encode_state, payload_of, wall_ms};

/// Most migration messages in one frame.
const BATCH_MESSAGES_MAX: usize = 512;
/// Most entities created per bucket while a node creates its share.
const SPAWNS_PER_BUCKET: u64 = 1_000;
/// How often a node sends its clock reading and summary to each member, ms.
const PING_EVERY_MS: u64 = 1_000;
/// The log's directory inside the data directory.
pub const WAL_DIR: &str = "wal";

/// The log record type of migration records.
fn record_type() -> RecordType {
    RecordType::user(RecordType::USER_MIN).expect("a user record type")
}

/// The log record type of the node's counters, written with each snapshot.
fn counters_type() -> RecordType {
    RecordType::user(RecordType::USER_MIN + 1).expect("a user record type")
}

/// What the node counts over its whole log, written with each snapshot so that a log cut at
/// the snapshot still knows it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Counters {
    /// Commit decisions in the log up to the snapshot.
    commits_logged: u64,
    /// Arrivals in the log up to the snapshot.
    arrivals_logged: u64,
}

/// The node's entities and its side of every migration.
pub struct World {
    me: MemberId,
    core: MigrationCore<Box<dyn MigrationPolicy + Send>>,
    wal: Wal<FileStorage>,
    /// Appended and not yet durable: (the core's sequence number, the record's completion,
    /// whether it is a commit decision, whether it is an arrival).
    pending: VecDeque<(u64, Pending, bool, bool)>,
    config: WorldConfig,
    grid: Grid,
    motion: Motion,
    payload_bytes: usize,
    rng: SplitMix64,
    bodies: HashMap<EntityId, Body>,
    homes: BTreeMap<BubbleId, MemberId>,
    /// The view epoch of `homes`.
    homes_epoch: Epoch,
    epoch: Epoch,
    members: Vec<MemberId>,
    quorum: bool,
    numbering: Numbering,
    session: u64,
    receipts: Receipts,
    skew: SkewMonitor,
    spawn_next: u64,
    /// The wall-clock bucket last stepped.
    bucket: u64,
    next_bucket: Millis,
    next_ping: Millis,
    peers: BTreeMap<MemberId, (Summary, Millis)>,
    outbox: BTreeMap<MemberId, Vec<Message>>,
    /// Pings and pongs to send.
    control: Vec<(MemberId, Wire)>,
    /// Commits as source in the current and the previous second: (second, count).
    rate: [(u64, u64); 2],
    stats: WorldStats,
    wal_base: luciole_wal::WalStats,
    /// When each migration this node started was requested.
    requested: HashMap<luciole_proto::MigrationId, std::time::Instant>,
    /// `shuttle` workload: entities owned and idle, to send on.
    idle: VecDeque<EntityId>,
    /// `shuttle` workload: where to send them (a bubble of each other member), in turn.
    targets: Vec<(MemberId, BubbleId)>,
    turn: usize,
    /// The workload is paused: no entity starts a move (SIGUSR2).
    paused: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Bytes appended since the last checkpoint.
    since_checkpoint: u64,
}

impl std::fmt::Debug for World {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("World").field("me", &self.me).finish_non_exhaustive()
    }
}

impl World {
    /// Opens the log in `data_dir` and rebuilds the ownership table from it (a new log is
    /// empty). `policy` decides the migrations (the built-in one if `None`).
    pub fn open(
        me: MemberId,
        data_dir: &Path,
        config: &WorldConfig,
        policy: Option<Box<dyn MigrationPolicy + Send>>,
        now: Millis,
    ) -> anyhow::Result<Self> {
        let dir = data_dir.join(WAL_DIR);
        let storage = FileStorage::new(&dir)
            .with_context(|| format!("opening the log directory {}", dir.display()))?;
        let opened = Wal::open(storage, WalConfig::default())
            .with_context(|| format!("recovering the log in {}", dir.display()))?;
        let mut records = Vec::with_capacity(opened.records.len());
        let mut stats = WorldStats::default();
        for r in &opened.records {
            if r.kind == counters_type() {
                let c: Counters = postcard::from_bytes(&r.payload).with_context(|| {
                    format!("{}: record {} does not decode", dir.display(), r.lsn)
                })?;
                // What the log held before the snapshot, whether or not it is still there.
                stats.commits_logged = c.commits_logged;
                stats.arrivals_logged = c.arrivals_logged;
                continue;
            }
            let record: Record = postcard::from_bytes(&r.payload)
                .with_context(|| format!("{}: record {} does not decode", dir.display(), r.lsn))?;
            match record {
                Record::Commit { .. } => stats.commits_logged += 1,
                Record::Committed { .. } => stats.arrivals_logged += 1,
                _ => {}
            }
            records.push(record);
        }
        let report = &opened.report;
        eprintln!(
            "{}: log recovered: {} record(s), {} KiB in {} segment(s), {} ms{}",
            short(me),
            report.records,
            report.bytes / 1024,
            report.segments,
            report.elapsed.as_millis(),
            if report.torn_bytes > 0 {
                format!(", a torn tail of {} bytes cut", report.torn_bytes)
            } else {
                String::new()
            }
        );
        let policy = policy.unwrap_or_else(|| Box::new(Standard));
        let core = MigrationCore::recover(me, MigrationConfig::default(), policy, now, records);
        let session = {
            let mut b = [0u8; 8];
            getrandom::fill(&mut b).context("reading random bytes for the session")?;
            u64::from_le_bytes(b) | 1
        };
        let grid = config.grid()?;
        let wal = opened.wal;
        let wal_base = wal.stats();
        let mut w = Self {
            me,
            core,
            wal,
            pending: VecDeque::new(),
            config: config.clone(),
            grid,
            motion: config.motion(),
            payload_bytes: config.payload_bytes as usize,
            rng: SplitMix64::new(session ^ me.0 as u64),
            bodies: HashMap::new(),
            homes: BTreeMap::new(),
            homes_epoch: Epoch(0),
            epoch: Epoch(0),
            members: Vec::new(),
            quorum: false,
            numbering: Numbering::new(session),
            session,
            receipts: Receipts::default(),
            skew: SkewMonitor::new(config.skew_tolerance_ms),
            spawn_next: 0,
            bucket: wall_ms() / config.bucket_ms,
            next_bucket: now,
            next_ping: now,
            peers: BTreeMap::new(),
            outbox: BTreeMap::new(),
            control: Vec::new(),
            rate: [(0, 0); 2],
            stats,
            wal_base,
            requested: HashMap::new(),
            idle: VecDeque::new(),
            targets: Vec::new(),
            turn: 0,
            paused: Default::default(),
            since_checkpoint: 0,
        };
        w.stats.latency_us_log8 = vec![0; LATENCY_BUCKETS];
        w.schedule_bucket(now);
        Ok(w)
    }

    /// The migration core's view, its quorum, and the placement of that view, once known.
    pub fn handle_view(&mut self, now: Millis, view: &View) {
        if view.epoch() <= self.epoch {
            return;
        }
        self.epoch = view.epoch();
        self.members = view.members().iter().map(|m| m.id).collect();
        for gone in self.peers.keys().copied().collect::<Vec<_>>() {
            if !self.members.contains(&gone) {
                self.peers.remove(&gone);
                self.skew.forget(gone);
            }
        }
        self.core.handle_view(now, view);
    }

    /// Whether this node reaches a quorum of its view.
    pub fn handle_quorum(&mut self, now: Millis, quorum: bool) {
        if quorum != self.quorum {
            self.quorum = quorum;
            self.core.handle_quorum(now, quorum);
        }
    }

    /// Where each bubble is hosted in view `epoch` (from the placement policy). A placement
    /// for an older view than the newest one given is ignored.
    pub fn place(&mut self, now: Millis, epoch: Epoch, homes: BTreeMap<BubbleId, MemberId>) {
        if epoch < self.epoch || epoch < self.homes_epoch {
            return;
        }
        self.homes_epoch = epoch;
        self.homes = homes.clone();
        let mut targets: BTreeMap<MemberId, BubbleId> = BTreeMap::new();
        for (b, m) in &homes {
            if *m != self.me {
                targets.entry(*m).or_insert(*b);
            }
        }
        self.targets = targets.into_iter().collect();
        self.core.place(now, homes);
    }

    /// A message from `from`.
    pub fn handle_message(&mut self, now: Millis, from: MemberId, wire: Wire) {
        match wire {
            Wire::Membership(_) => {}
            Wire::Migrations { session, first, messages } => {
                for (i, m) in messages.into_iter().enumerate() {
                    let stamp = Stamp { session, seq: first.saturating_add(i as u64) };
                    match self.receipts.check(from, stamp) {
                        Arrival::Old => continue,
                        Arrival::Next | Arrival::After { .. } | Arrival::Restarted { .. } => {}
                    }
                    self.stats.messages_in += 1;
                    self.core.handle_message(now, from, m);
                }
                self.stats.gaps = self.receipts.missed;
                self.stats.duplicates = self.receipts.dropped;
            }
            Wire::Ping { sent_ms, summary } => {
                self.peers.insert(from, (summary, now));
                let pong = Wire::Pong { ping_ms: sent_ms, sent_ms: wall_ms() };
                self.control.push((from, pong));
            }
            Wire::Pong { ping_ms, sent_ms } => {
                let received = wall_ms();
                let rtt = received.saturating_sub(ping_ms);
                if let Some(e) = self.skew.observe(from, sent_ms, received, rtt) {
                    match e {
                        SkewEvent::Skewed { peer, offset_ms } => {
                            self.stats.skew_events += 1;
                            eprintln!(
                                "{}: the clock of {} is {offset_ms} ms off this node's (tolerance {} ms)",
                                short(self.me),
                                short(peer),
                                self.config.skew_tolerance_ms
                            );
                        }
                        SkewEvent::Agrees { peer } => eprintln!(
                            "{}: the clock of {} agrees with this node's again",
                            short(self.me),
                            short(peer)
                        ),
                    }
                }
            }
        }
    }
}

impl World {
    /// The switch that pauses the workload (no entity starts a move; moves under way finish).
    pub fn pause_switch(&self) -> std::sync::Arc<std::sync::atomic::AtomicBool> {
        self.paused.clone()
    }

    fn is_paused(&self) -> bool {
        self.paused.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// When the world next needs [`Self::handle_timeout`].
    pub fn poll_timeout(&self) -> Millis {
        let core = self.core.poll_timeout();
        [Some(self.next_bucket), Some(self.next_ping), core]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(self.next_bucket)
    }

    /// Fires what is due: the core's timers, the workload's bucket, the pings.
    pub fn handle_timeout(&mut self, now: Millis) {
        if self.core.poll_timeout().is_some_and(|t| t <= now) {
            self.core.handle_timeout(now);
        }
        if self.next_bucket <= now {
            let bucket = wall_ms() / self.config.bucket_ms;
            let buckets = bucket.saturating_sub(self.bucket).clamp(1, 10);
            self.bucket = bucket.max(self.bucket + 1);
            self.step(now, buckets as f64 * self.config.bucket_ms as f64 / 1000.0);
            self.spawn_some();
            self.schedule_bucket(now);
        }
        if self.next_ping <= now {
            self.next_ping = now.plus(PING_EVERY_MS);
            let summary = self.summary();
            let sent_ms = wall_ms();
            for m in self.members.iter().copied().filter(|m| *m != self.me) {
                self.control.push((m, Wire::Ping { sent_ms, summary: summary.clone() }));
            }
        }
    }

    fn schedule_bucket(&mut self, now: Millis) {
        let b = self.config.bucket_ms;
        let wall = wall_ms();
        self.next_bucket = now.plus(b - wall % b);
    }

    /// The bubbles hosted here.
    fn mine(&self) -> Vec<BubbleId> {
        self.homes.iter().filter(|(_, m)| **m == self.me).map(|(b, _)| *b).collect()
    }

    /// Creates some of this node's entities not yet created, in bubbles hosted here.
    fn spawn_some(&mut self) {
        if self.spawn_next >= self.config.entities || !self.core.active() || self.homes.is_empty() {
            return;
        }
        let mine = self.mine();
        let mut made = 0;
        while self.spawn_next < self.config.entities && made < SPAWNS_PER_BUCKET {
            let id = EntityId(u128::from(self.config.entity_base + self.spawn_next));
            let mut body =
                luciole_proto::world::spawn(&self.grid, self.config.speed, &mut self.rng);
            let bubble = if mine.is_empty() {
                self.grid.bubble_at(body.pos)
            } else {
                let b = mine[(self.rng.next_u64() % mine.len() as u64) as usize];
                if let Some((lo, hi)) = self.grid.bounds(b) {
                    for a in 0..3 {
                        let u = (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
                        body.pos[a] = lo[a] + u * (hi[a] - lo[a]);
                    }
                }
                b
            };
            let state = encode_state(&body, &payload_of(id, self.payload_bytes));
            match self.core.spawn(id, bubble, state) {
                Ok(()) => {
                    self.stats.spawned += 1;
                    made += 1;
                }
                Err(luciole_proto::migration::Fence::Conflict) => {}
                Err(_) => return,
            }
            self.spawn_next += 1;
        }
        if self.spawn_next == self.config.entities && self.stats.spawned > 0 {
            eprintln!("{}: created {} entities", short(self.me), self.stats.spawned);
        }
    }

    /// Moves every entity owned here and not moving by `dt_s` seconds; those that crossed
    /// into another bubble are relocated (hosted here) or migrated (hosted elsewhere).
    fn step(&mut self, now: Millis, dt_s: f64) {
        if !self.core.active() || self.config.motion == MotionKind::Shuttle || self.is_paused() {
            return;
        }
        // Each idle entity with the bubble the core holds it in (flocking groups by it).
        let mut moving: Vec<((EntityId, BubbleId), Body)> = self
            .core
            .owned()
            .iter()
            .filter(|(_, o)| o.moving.is_none())
            .filter_map(|(e, o)| Some(((*e, o.bubble), *self.bodies.get(e)?)))
            .collect();
        let bubble_of = |(_, bubble): &(EntityId, BubbleId)| *bubble;
        luciole_proto::world::step(
            &self.grid,
            &mut moving,
            bubble_of,
            self.motion,
            dt_s,
            &mut self.rng,
        );
        for ((e, from), body) in moving {
            self.bodies.insert(e, body);
            let crossing = self.grid.crossing(from, body.pos, self.config.margin);
            let home_now = self.homes.get(&from).copied();
            let (bubble, home) = match crossing {
                Some(b) => (b, self.homes.get(&b).copied()),
                // Not crossing, but its bubble is hosted elsewhere (a placement change): the
                // core moves it; it should carry where it is now.
                None if home_now.is_some_and(|h| h != self.me) => (from, None),
                None => continue,
            };
            let Some(payload) = self
                .core
                .owned()
                .get(&e)
                .map(|o| o.state.get(MOTION_BYTES..).unwrap_or_default().to_vec())
            else {
                continue;
            };
            let state = encode_state(&body, &payload);
            match home {
                Some(h) if h == self.me => {
                    if self.core.relocate(e, bubble, state).is_ok() {
                        self.stats.relocations += 1;
                    }
                }
                Some(h) => {
                    let _ = self.core.relocate(e, from, state);
                    self.request(now, e, h, bubble);
                }
                None => {
                    let _ = self.core.relocate(e, from, state);
                }
            }
        }
    }

    /// Starts moving `entity` to `bubble` on `target`, timing it.
    fn request(
        &mut self,
        now: Millis,
        entity: EntityId,
        target: MemberId,
        bubble: BubbleId,
    ) -> bool {
        match self.core.request(now, entity, target, bubble) {
            Ok(id) => {
                self.requested.insert(id, std::time::Instant::now());
                true
            }
            Err(r) => {
                *self.stats.not_started.entry(reason_name(r)).or_default() += 1;
                false
            }
        }
    }

    /// `shuttle` workload: sends idle entities on to the other members, in turn, up to
    /// `shuttle_in_flight` at once.
    fn shuttle(&mut self, now: Millis) {
        if self.config.motion != MotionKind::Shuttle
            || self.targets.is_empty()
            || !self.core.active()
            || self.is_paused()
        {
            return;
        }
        while self.core.outgoing().len() < self.config.shuttle_in_flight as usize {
            let Some(e) = self.idle.pop_front() else { return };
            if !self.core.acting(e) {
                continue;
            }
            let (target, bubble) = self.targets[self.turn % self.targets.len()];
            self.turn += 1;
            if !self.request(now, e, target, bubble) {
                self.idle.push_back(e);
                return;
            }
        }
    }

    fn summary(&self) -> Summary {
        Summary {
            epoch: self.epoch.0,
            entities: self.core.owned().len() as u64,
            per_bubble: self.per_bubble(),
            commits: self.stats.commits,
            commits_per_s: self.commits_per_s(),
        }
    }

    /// Commits as source in the last whole second.
    fn commits_per_s(&self) -> f64 {
        let second = wall_ms() / 1000;
        match self.rate {
            [_, (s, n)] if s + 1 == second => n as f64,
            [(s, n), _] if s + 1 == second => n as f64,
            _ => 0.0,
        }
    }

    fn per_bubble(&self) -> Vec<(u64, u32)> {
        let mut counts: BTreeMap<u64, u32> = BTreeMap::new();
        for o in self.core.owned().values() {
            *counts.entry(o.bubble.0).or_default() += 1;
        }
        counts.into_iter().collect()
    }

    /// Appends what the core logged, sends what it released, takes in its events. An error
    /// when the log failed: the node must stop (fail-stop), as nothing it logs can be
    /// trusted to be durable any more.
    pub fn flush(
        &mut self,
        mesh: &Link,
        addr_of: impl Fn(MemberId) -> Option<SocketAddr>,
        now: Millis,
    ) -> anyhow::Result<()> {
        self.shuttle(now);
        while let Some((seq, record)) = self.core.poll_persist() {
            let commit = matches!(record, Record::Commit { .. });
            let arrival = matches!(record, Record::Committed { .. });
            let bytes = postcard::to_allocvec(&record).context("encoding a log record")?;
            let pending = self.wal.append(record_type(), &bytes).context("appending to the log")?;
            self.pending.push_back((seq, pending, commit, arrival));
            self.stats.wal_records += 1;
            self.since_checkpoint += bytes.len() as u64;
        }
        if self.since_checkpoint >= u64::from(self.config.checkpoint_mib) << 20 {
            self.checkpoint()?;
        }
        while let Some((to, m)) = self.core.poll_transmit() {
            self.outbox.entry(to).or_default().push(m);
        }
        for (to, messages) in std::mem::take(&mut self.outbox) {
            let addr = addr_of(to);
            for chunk in messages.chunks(BATCH_MESSAGES_MAX) {
                let first = self.numbering.stamp(to).seq;
                for _ in 1..chunk.len() {
                    self.numbering.stamp(to);
                }
                let wire =
                    Wire::Migrations { session: self.session, first, messages: chunk.to_vec() };
                self.stats.messages_out += chunk.len() as u64;
                if mesh.send(to, addr, &wire).is_none() {
                    self.stats.frames_dropped += 1;
                }
            }
        }
        for (to, wire) in std::mem::take(&mut self.control) {
            let _ = mesh.send(to, addr_of(to), &wire);
        }
        while let Some(e) = self.core.poll_event() {
            self.event(e);
        }
        Ok(())
    }

    fn event(&mut self, e: Event) {
        match e {
            Event::Acquired { entity, .. } => {
                let Some(state) = self.core.owned().get(&entity).map(|o| &o.state) else { return };
                let body = decode_body(state).unwrap_or_else(|| {
                    luciole_proto::world::spawn(&self.grid, self.config.speed, &mut self.rng)
                });
                let payload = state.get(MOTION_BYTES..).unwrap_or_default();
                if payload != payload_of(entity, payload.len()) {
                    self.stats.payload_mismatches += 1;
                }
                self.bodies.insert(entity, body);
                if self.config.motion == MotionKind::Shuttle {
                    self.idle.push_back(entity);
                }
            }
            Event::Released { entity, .. } => {
                self.bodies.remove(&entity);
            }
            Event::Ended { migration, role, outcome, reason } => {
                if role == Role::Source
                    && let Some(at) = self.requested.remove(&migration.id)
                    && outcome == Outcome::Commit
                {
                    let us = at.elapsed().as_micros() as u64;
                    let k = latency_bucket(us).min(LATENCY_BUCKETS - 1);
                    self.stats.latency_us_log8[k] += 1;
                }
                if role == Role::Source
                    && outcome == Outcome::Abort
                    && self.config.motion == MotionKind::Shuttle
                {
                    self.idle.push_back(migration.entity);
                }
                match (role, outcome) {
                    (Role::Source, Outcome::Commit) => {
                        self.stats.commits += 1;
                        let second = wall_ms() / 1000;
                        if self.rate[1].0 != second {
                            self.rate = [self.rate[1], (second, 0)];
                        }
                        self.rate[1].1 += 1;
                    }
                    (Role::Source, Outcome::Abort) => self.stats.aborts += 1,
                    (Role::Target, Outcome::Commit) => self.stats.arrivals += 1,
                    (Role::Target, Outcome::Abort) => self.stats.target_aborts += 1,
                }
                *self.stats.by_reason.entry(reason_name(reason)).or_default() += 1;
            }
            Event::Overruled { call, violation } => {
                tracing::warn!(call, %violation, "the migration policy's answer was overruled");
            }
        }
    }

    /// Appends a snapshot of the table and the counters, and checkpoints the log at the
    /// snapshot's first record: once the checkpoint is durable (after the snapshot, by LSN
    /// order), recovery starts there and the segments before it are removed.
    fn checkpoint(&mut self) -> anyhow::Result<()> {
        self.since_checkpoint = 0;
        // The counters as of the snapshot's place in the log: what is durable, and what was
        // appended before it and is on its way.
        let waiting = |f: fn(&(u64, Pending, bool, bool)) -> bool| {
            self.pending.iter().filter(|p| f(p)).count() as u64
        };
        let counters = Counters {
            commits_logged: self.stats.commits_logged + waiting(|p| p.2),
            arrivals_logged: self.stats.arrivals_logged + waiting(|p| p.3),
        };
        let mut live_from = None;
        for record in self.core.snapshot() {
            let bytes = postcard::to_allocvec(&record).context("encoding a snapshot record")?;
            let pending = self.wal.append(record_type(), &bytes).context("appending a snapshot")?;
            live_from.get_or_insert(pending.lsn());
            self.pending.push_back((0, pending, false, false));
        }
        let bytes = postcard::to_allocvec(&counters).context("encoding the counters")?;
        let pending = self.wal.append(counters_type(), &bytes).context("appending a snapshot")?;
        let live_from = live_from.unwrap_or(pending.lsn());
        self.pending.push_back((0, pending, false, false));
        let pending = self.wal.checkpoint(live_from).context("checkpointing the log")?;
        self.pending.push_back((0, pending, false, false));
        self.stats.checkpoints += 1;
        Ok(())
    }

    /// Whether records wait for the disk.
    pub fn syncing(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Waits until the oldest record waiting for the disk is durable, then tells the core
    /// about every record durable by then. Cancel-safe. An error when the log failed.
    pub async fn durable(&mut self) -> anyhow::Result<()> {
        let Some((_, front, _, _)) = self.pending.front_mut() else {
            return std::future::pending().await;
        };
        front
            .await
            .context("the log failed: stopping (what it held is recovered at the next start)")?;
        let mut last = None;
        while self.pending.front().is_some_and(|(_, p, _, _)| p.is_durable()) {
            let (seq, _, commit, arrival) = self.pending.pop_front().expect("looked at");
            self.stats.commits_logged += u64::from(commit);
            self.stats.arrivals_logged += u64::from(arrival);
            last = last.max(Some(seq));
        }
        if let Some(seq) = last {
            self.core.handle_persisted(seq);
        }
        Ok(())
    }

    /// What `/status` shows of the entities.
    pub fn status(&self, now: Millis) -> WorldStatus {
        let owned = self.core.owned();
        let mut stats = self.stats.clone();
        let wal = self.wal.stats();
        stats.wal_syncs = wal.writes - self.wal_base.writes;
        stats.wal_bytes = wal.bytes - self.wal_base.bytes;
        let commits_per_s = self.commits_per_s();
        let bubbles = self.grid.len();
        let homes = if self.homes.is_empty() {
            Vec::new()
        } else {
            (0..bubbles)
                .map(|b| {
                    self.homes
                        .get(&BubbleId(b))
                        .map(|m| format!("{:032x}", m.0))
                        .unwrap_or_default()
                })
                .collect()
        };
        WorldStatus {
            cells: self.grid.cells,
            entities: owned.len() as u64,
            moving_out: owned.values().filter(|o| o.moving.is_some()).count() as u64,
            in_doubt: self.core.incoming().len() as u64,
            per_bubble: self.per_bubble(),
            homes,
            commits_per_s,
            latency_p50_us: latency_quantile(&self.stats.latency_us_log8, 0.5),
            latency_p99_us: latency_quantile(&self.stats.latency_us_log8, 0.99),
            peers: self
                .peers
                .iter()
                .map(|(id, (summary, at))| PeerWorld {
                    id: format!("{:032x}", id.0),
                    summary: summary.clone(),
                    age_ms: now.0.saturating_sub(at.0),
                    offset_ms: self.skew.offset_ms(*id),
                    skewed: self.skew.skewed().contains(id),
                })
                .collect(),
            stats,
        }
    }

    /// Every entity held here, for the conservation check.
    pub fn holdings(&self) -> Holdings {
        let paused = self.is_paused();
        let in_transit = self
            .core
            .outgoing()
            .values()
            .filter(|f| f.phase == luciole_proto::migration::Phase::Committing)
            .map(|f| (f.migration.entity.0, f.ownership.0))
            .collect();
        Holdings {
            node: format!("{:032x}", self.me.0),
            epoch: self.epoch.0,
            spawn_range: (self.config.entity_base, self.config.entities),
            owned: self.core.owned().iter().map(|(e, o)| (e.0, o.ownership.0)).collect(),
            in_transit,
            commits_logged: self.stats.commits_logged,
            payload_mismatches: self.stats.payload_mismatches,
            paused,
        }
    }

    /// Closes the log: what was appended is synced first.
    pub fn close(self) -> anyhow::Result<()> {
        self.wal.close().context("closing the log")
    }
}
