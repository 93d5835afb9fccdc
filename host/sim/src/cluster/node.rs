//! One simulated luciole node: the membership core, the migration core and the write-ahead
//! log (the node's log core and recovery over [`MemStorage`]) wired together as the node's
//! driver wires them, with a disk that takes time and crashes that lose what was not synced.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::rc::Rc;

use luciole_proto::membership::lifecycle::{Membership, MembershipEvent};
use luciole_proto::membership::monitor::MonitorConfig;
use luciole_proto::membership::node::{Durable, Envelope, MemberNode, ViewChange};
use luciole_proto::migration::{
    Event, Message, MigrationConfig, MigrationCore, MigrationPolicy, Outcome, Record,
};
use luciole_proto::rand::SplitMix64;
use luciole_proto::{BubbleId, Epoch, MemberId, MigrationId, View, builtin, placement::Bubble};
use luciole_wal::{CrashMode, Lsn, MemStorage, RecordType, Step, StepLog, WalConfig};

use crate::membership::info_of;
use crate::{Actor, Core, Millis};

/// What one node sends: membership and migration share the connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Wire {
    /// A membership message.
    Membership(Envelope),
    /// A migration message.
    Migration(Message),
}

/// Makes a member's migration policy (again after every restart).
pub type PolicyFactory = Rc<dyn Fn(MemberId) -> Box<dyn MigrationPolicy>>;

/// The migration core as the simulator runs it: any policy, boxed.
pub type Migrations = MigrationCore<Box<dyn MigrationPolicy>>;

/// Where a planned crash strikes, relative to the log and the network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashPoint {
    /// Right after a write of migration records reached the file, before its sync: the
    /// records may be lost (or torn), nothing that waited on them was sent.
    AfterWrite,
    /// Right after a sync made migration records durable, before the messages that waited on
    /// them were sent.
    AfterSync,
    /// Right after a migration message was sent, before anything else (the next record, the
    /// next message).
    AfterSend,
}

/// How a node's disk behaves: each write and each sync takes a uniform time in its range, ms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Disk {
    /// A write's time.
    pub write_ms: (u64, u64),
    /// A sync's time.
    pub sync_ms: (u64, u64),
}

impl Default for Disk {
    fn default() -> Self {
        Self { write_ms: (0, 1), sync_ms: (1, 3) }
    }
}

/// Counts of what a node did, over all its lives.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeStats {
    /// Migrations it committed as their source.
    pub commits: u64,
    /// Migrations it aborted as their source.
    pub aborts: u64,
    /// Crashes.
    pub crashes: u64,
    /// Records appended to its log.
    pub records: u64,
    /// Policy answers overruled by the core.
    pub overruled: u64,
    /// Times it learned it was evicted.
    pub evictions: u64,
}

/// The log type of migration records.
fn record_type() -> RecordType {
    RecordType::user(RecordType::USER_MIN).expect("a user record type")
}

/// Small segments: every node's log is in memory.
fn wal_config() -> WalConfig {
    WalConfig {
        segment_bytes: 256 << 10,
        record_bytes_max: 16 << 10,
        write_bytes_max: 64 << 10,
        queue_bytes_max: 4 << 20,
        gather_us_max: 0,
    }
}

/// A node writes a snapshot of its migration core and checkpoints its log after this many
/// records (the node does it by bytes, and far less often; here often, so that crashes strike
/// around checkpoints too).
pub const CHECKPOINT_EVERY_RECORDS: u64 = 48;

/// How long an evicted node waits before it asks to join again, ms (as the node does).
pub const REJOIN_AFTER_MS: u64 = 1_000;

/// A simulated node. While down (crashed, not yet restarted) it holds the migration core its
/// log recovers to, so that the checker sees what a restart would find.
pub struct ClusterNode {
    me: MemberId,
    /// Membership; `None` while down.
    pub membership: Option<Membership>,
    /// The migration core (recovered from the log while down).
    pub migration: Migrations,
    storage: MemStorage,
    log: Option<StepLog<MemStorage>>,
    /// Appended, not yet durable: (LSN, the core's sequence number — 0 for a snapshot's —,
    /// the record).
    pending: VecDeque<(Lsn, u64, Record)>,
    /// Records appended since the last checkpoint.
    since_checkpoint: u64,
    next_io: Option<Millis>,
    disk: Disk,
    monitor: MonitorConfig,
    migration_config: MigrationConfig,
    policy: PolicyFactory,
    bubbles: u64,
    /// Where each bubble lives in the view last handed to the migration core.
    homes: BTreeMap<BubbleId, MemberId>,
    trace: bool,
    rng: SplitMix64,
    /// Fed to the migration core: the view epoch and quorum it last heard of.
    fed: (Epoch, bool),
    rejoin_at: Option<Millis>,
    /// The newest view epoch it installed, kept on its disk (written before it acts in that
    /// view): after a restart or an eviction it joins again only into a newer view.
    last_epoch: Epoch,
    /// Its membership's acceptor state as last handed out, kept on its disk (written before
    /// anything it says next leaves, as the node does): a restart resumes with it in that
    /// view, if it is still in it ([`MemberNode::resume`]).
    durable: Option<Durable>,
    /// Every other member of every view it installed: whom to ask to join again.
    known: std::collections::BTreeSet<MemberId>,
    /// Down until this local time.
    down_until: Option<Millis>,
    /// A crash planned at a point of the log or network, and for how long it stays down.
    pub planned: Option<(CrashPoint, u64)>,
    /// A planned crash struck: crash at the next event, down for this long.
    crash_due: Option<u64>,
    /// Committed records (source, migration) that became durable in this node's log, in order.
    pub durable_commits: Vec<(MemberId, MigrationId)>,
    /// What went wrong that is not the protocol's doing (the log failed): the checker reports
    /// it.
    pub fault: Option<String>,
    /// Counters.
    pub stats: NodeStats,
    /// Raised whenever the migration core may have changed (the checker skips the steps
    /// where no node's changed: most steps are membership traffic).
    pub version: u64,
    /// Views installed: (epoch, members).
    pub installed: Vec<(Epoch, Vec<MemberId>)>,
}

impl fmt::Debug for ClusterNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterNode")
            .field("me", &self.me)
            .field("down_until", &self.down_until)
            .field("owned", &self.migration.owned().len())
            .finish_non_exhaustive()
    }
}

/// Settings every node of a run shares.
#[derive(Clone)]
pub struct NodeSettings {
    /// Membership monitoring.
    pub monitor: MonitorConfig,
    /// Migration limits and first timer.
    pub migration: MigrationConfig,
    /// The migration policy.
    pub policy: PolicyFactory,
    /// Bubbles `0..bubbles`, placed by the built-in rendezvous placement on every view.
    pub bubbles: u64,
    /// Print the node's lives (crashes, restarts, evictions, views) to stderr.
    pub trace: bool,
}

impl fmt::Debug for NodeSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeSettings").field("bubbles", &self.bubbles).finish_non_exhaustive()
    }
}

impl ClusterNode {
    /// A founding member of `first` (epoch 1), starting at local time `now`; `seed` drives its
    /// disk.
    pub fn founder(
        me: MemberId,
        first: ViewChange,
        settings: &NodeSettings,
        seed: u64,
        now: Millis,
    ) -> Self {
        let storage = MemStorage::new();
        let (log, fault) = match StepLog::open(storage.clone(), wal_config()) {
            Ok((log, _, _)) => (Some(log), None),
            Err(e) => (None, Some(format!("opening the log: {e}"))),
        };
        let policy = (settings.policy)(me);
        let known = first.members.iter().copied().filter(|m| *m != me).collect();
        let node = MemberNode::new(me, Epoch(1), first, settings.monitor, now.0);
        let mut n = Self {
            me,
            membership: Some(Membership::member(node, settings.monitor)),
            migration: MigrationCore::new(me, settings.migration, policy, now),
            storage,
            log,
            pending: VecDeque::new(),
            since_checkpoint: 0,
            next_io: None,
            disk: Disk::default(),
            monitor: settings.monitor,
            migration_config: settings.migration,
            policy: Rc::clone(&settings.policy),
            bubbles: settings.bubbles,
            homes: BTreeMap::new(),
            trace: settings.trace,
            rng: SplitMix64::new(seed),
            fed: (Epoch(0), false),
            rejoin_at: None,
            known,
            last_epoch: Epoch(1),
            durable: None,
            down_until: None,
            planned: None,
            crash_due: None,
            durable_commits: Vec::new(),
            fault,
            stats: NodeStats::default(),
            version: 0,
            installed: Vec::new(),
        };
        n.settle(now);
        n
    }

    /// Its id.
    pub fn me(&self) -> MemberId {
        self.me
    }

    /// Whether it is down.
    pub fn is_down(&self) -> bool {
        self.down_until.is_some()
    }

    /// Sets how its disk behaves from now on.
    pub fn set_disk(&mut self, disk: Disk) {
        self.disk = disk;
    }

    /// The view it is in and whether it reaches a quorum (`None` while down or joining).
    pub fn view(&self) -> Option<(Epoch, &[MemberId], bool)> {
        let node = self.membership.as_ref()?.node()?;
        let (epoch, members) = node.view();
        let evicted = self.membership.as_ref().is_some_and(Membership::is_evicted);
        Some((epoch, members, node.has_quorum() && !evicted))
    }

    /// Where each bubble lives in `view` (the built-in rendezvous placement).
    fn homes(view: &View, bubbles: u64) -> BTreeMap<BubbleId, MemberId> {
        let all: Vec<Bubble> = (0..bubbles).map(|b| Bubble::new(BubbleId(b))).collect();
        builtin::placement(view, &all).into_iter().map(|a| (a.bubble, a.member)).collect()
    }

    /// Where each bubble lives in its current view (empty while down or joining): what the
    /// migration core was last given.
    pub fn homes_now(&self) -> &BTreeMap<BubbleId, MemberId> {
        &self.homes
    }

    /// A bubble that lives on `member` in its current view (bubble 0 if none does).
    pub fn home_of(&self, member: MemberId) -> BubbleId {
        self.homes.iter().find(|(_, m)| **m == member).map_or(BubbleId(0), |(b, _)| *b)
    }

    /// The other members of its current view.
    pub fn others(&self) -> Vec<MemberId> {
        self.view()
            .map(|(_, members, _)| members.iter().copied().filter(|m| *m != self.me).collect())
            .unwrap_or_default()
    }

    /// Crashes now (local time `now`) for `down_ms`: unsynced writes are lost (or torn), the
    /// log is recovered as a restart would and the migration core rebuilt from it; membership
    /// is gone until the restart, which joins again through the last view's members.
    pub fn crash(&mut self, now: Millis, down_ms: u64) {
        if self.is_down() {
            return;
        }
        self.stats.crashes += 1;
        self.version += 1;
        self.say(now, format_args!("crashes for {down_ms} ms"));
        self.stats.overruled += self.migration.overruled();
        self.crash_due = None;
        self.planned = None;
        self.log = None;
        self.pending.clear();
        self.next_io = None;
        self.homes.clear();
        let mode = if self.rng.next_u64().is_multiple_of(2) {
            CrashMode::LoseUnsynced
        } else {
            CrashMode::Scramble { seed: self.rng.next_u64() }
        };
        self.storage.crash(mode);
        let records = match StepLog::open(self.storage.clone(), wal_config()) {
            Ok((log, records, _)) => {
                self.log = Some(log);
                records
            }
            Err(e) => {
                self.fault = Some(format!("{}: recovering the log: {e}", self.me));
                Vec::new()
            }
        };
        let mut decoded = Vec::with_capacity(records.len());
        for r in records {
            match postcard::from_bytes::<Record>(&r.payload) {
                Ok(rec) => decoded.push(rec),
                Err(e) => self.fault = Some(format!("{}: record {}: {e}", self.me, r.lsn)),
            }
        }
        let policy = (self.policy)(self.me);
        self.migration =
            MigrationCore::recover(self.me, self.migration_config, policy, now, decoded);
        self.membership = None;
        self.fed = (Epoch(0), false);
        self.rejoin_at = None;
        self.down_until = Some(now.plus(down_ms.max(1)));
        // What recovery logged (its Boot) waits for the restart's disk (nothing is scheduled
        // while down).
        self.drain_persist(now);
    }
}

impl ClusterNode {
    /// Whom to ask to join: the other members of the last view first, then everyone else
    /// it knew.
    fn seeds(&self) -> Vec<MemberId> {
        let mut seeds: Vec<MemberId> = self
            .view()
            .map(|(_, members, _)| members.iter().copied().filter(|m| *m != self.me).collect())
            .unwrap_or_default();
        seeds.extend(self.known.iter().filter(|m| !seeds.contains(m)).collect::<Vec<_>>());
        seeds
    }

    fn say(&self, now: Millis, what: fmt::Arguments<'_>) {
        if self.trace {
            eprintln!("[{} local {}] {what}", self.me, now.0);
        }
    }

    fn restart(&mut self, now: Millis) {
        self.down_until = None;
        let resumed = self.durable.clone().and_then(|d| {
            let epoch = d.epoch;
            Some((epoch, MemberNode::resume(self.me, d, self.monitor, now.0)?))
        });
        if let Some((epoch, node)) = resumed {
            self.say(now, format_args!("restarts, resuming in view {}", epoch.0));
            self.membership = Some(Membership::member(node, self.monitor));
        } else {
            let seeds = self.seeds();
            self.say(now, format_args!("restarts, joining through {seeds:?}"));
            self.membership = Some(self.joiner(seeds, now));
        }
        if !self.pending.is_empty() {
            self.next_io = Some(now);
        }
    }

    fn rejoin(&mut self, now: Millis) {
        self.rejoin_at = None;
        self.homes.clear();
        let seeds = self.seeds();
        self.membership = Some(self.joiner(seeds, now));
    }

    fn joiner(&self, seeds: Vec<MemberId>, now: Millis) -> Membership {
        let info = info_of(self.me);
        Membership::rejoining(self.me, info, seeds, self.monitor, now, self.last_epoch)
    }

    fn between(&mut self, (lo, hi): (u64, u64)) -> u64 {
        lo + self.rng.next_u64() % (hi.saturating_sub(lo) + 1)
    }

    /// Appends what the migration core logged; schedules the disk.
    fn drain_persist(&mut self, now: Millis) {
        while let Some((seq, record)) = self.migration.poll_persist() {
            let Some(log) = self.log.as_mut() else { continue };
            let bytes = match postcard::to_allocvec(&record) {
                Ok(b) => b,
                Err(e) => {
                    self.fault = Some(format!("{}: encoding a record: {e}", self.me));
                    continue;
                }
            };
            match log.append(record_type(), &bytes) {
                Ok(lsn) => {
                    self.pending.push_back((lsn, seq, record));
                    self.stats.records += 1;
                    self.since_checkpoint += 1;
                }
                Err(e) => self.fault = Some(format!("{}: appending: {e}", self.me)),
            }
        }
        if self.since_checkpoint >= CHECKPOINT_EVERY_RECORDS && !self.is_down() {
            self.checkpoint();
        }
        if self.next_io.is_none() && !self.pending.is_empty() && !self.is_down() {
            let t = self.between(self.disk.write_ms);
            self.next_io = Some(now.plus(t));
        }
    }

    /// Appends the migration core's snapshot and checkpoints the log at its first record, as
    /// the node does.
    fn checkpoint(&mut self) {
        self.since_checkpoint = 0;
        let Some(log) = self.log.as_mut() else { return };
        let mut live_from = None;
        for record in self.migration.snapshot() {
            let appended = postcard::to_allocvec(&record)
                .map_err(|e| e.to_string())
                .and_then(|bytes| log.append(record_type(), &bytes).map_err(|e| e.to_string()));
            match appended {
                Ok(lsn) => {
                    live_from.get_or_insert(lsn);
                    self.pending.push_back((lsn, 0, record));
                }
                Err(e) => {
                    self.fault = Some(format!("{}: writing a snapshot: {e}", self.me));
                    return;
                }
            }
        }
        if let Some(lsn) = live_from
            && let Err(e) = log.checkpoint(lsn)
        {
            self.fault = Some(format!("{}: checkpointing: {e}", self.me));
        }
    }

    /// One I/O of the log: a write, or the sync of the write before.
    fn io(&mut self, now: Millis) {
        self.next_io = None;
        let Some(log) = self.log.as_mut() else { return };
        match log.step() {
            Ok(Step::Idle) => {}
            Ok(Step::Written) => {
                if let Some((CrashPoint::AfterWrite, down)) = self.planned {
                    return self.crash(now, down);
                }
                let t = self.between(self.disk.sync_ms);
                self.next_io = Some(now.plus(t));
            }
            Ok(Step::Durable(lsn)) => {
                if let Some((CrashPoint::AfterSync, down)) = self.planned {
                    return self.crash(now, down);
                }
                let mut last = None;
                while self.pending.front().is_some_and(|(l, _, _)| *l <= lsn) {
                    let (_, seq, record) = self.pending.pop_front().expect("looked at");
                    if let Record::Committed { source, id, .. } = record {
                        self.durable_commits.push((source, id));
                    }
                    last = last.max(Some(seq));
                }
                if let Some(seq) = last {
                    self.migration.handle_persisted(seq);
                }
                if !self.pending.is_empty() {
                    let t = self.between(self.disk.write_ms);
                    self.next_io = Some(now.plus(t));
                }
            }
            Err(e) => self.fault = Some(format!("{}: the log failed: {e}", self.me)),
        }
    }

    /// Passes membership's news to the migration core, and the core's records to the log.
    fn settle(&mut self, now: Millis) {
        if self.is_down() {
            return;
        }
        if let Some(m) = self.membership.as_mut() {
            while let Some(d) = m.poll_persist() {
                self.durable = Some(d);
            }
            while let Some(e) = m.poll_event() {
                match e {
                    MembershipEvent::Evicted => {
                        if self.trace {
                            eprintln!("[{} local {}] learns it was evicted", self.me, now.0);
                        }
                        self.stats.evictions += 1;
                        self.rejoin_at = Some(now.plus(REJOIN_AFTER_MS));
                    }
                    MembershipEvent::ViewInstalled { epoch, view } => {
                        if self.trace {
                            let n = view.members.len();
                            eprintln!(
                                "[{} local {}] installs {} ({n} members)",
                                self.me, now.0, epoch.0
                            );
                        }
                        self.known.extend(view.members.iter().filter(|m| **m != self.me));
                        self.last_epoch = self.last_epoch.max(epoch);
                        self.installed.push((epoch, view.members.clone()));
                    }
                    MembershipEvent::QuorumLost | MembershipEvent::QuorumRegained => {}
                }
            }
        }
        // A view is converted for the migration core once, when it is new.
        let current = self.membership.as_ref().and_then(Membership::node).and_then(|n| {
            let (epoch, _) = n.view();
            (epoch > self.fed.0).then(|| (epoch, n.view_change().policy_view(epoch)))
        });
        if let Some((epoch, view)) = current {
            self.fed.0 = epoch;
            self.version += 1;
            match view {
                Ok(view) => {
                    self.migration.handle_view(now, &view);
                    self.homes = Self::homes(&view, self.bubbles);
                    self.migration.place(now, self.homes.clone());
                }
                Err(e) => self.fault = Some(format!("{}: view {}: {e}", self.me, epoch.0)),
            }
        }
        let quorum = self.view().is_some_and(|v| v.2);
        if quorum != self.fed.1 {
            self.fed.1 = quorum;
            self.version += 1;
            self.migration.handle_quorum(now, quorum);
        }
        while let Some(e) = self.migration.poll_event() {
            if let Event::Ended { role: luciole_proto::migration::Role::Source, outcome, .. } = e {
                match outcome {
                    Outcome::Commit => self.stats.commits += 1,
                    Outcome::Abort => self.stats.aborts += 1,
                }
            }
        }
        self.drain_persist(now);
    }

    /// Runs `f` on the migration core at `now` (a request, an update) and passes on what it
    /// logged.
    pub fn with_migration<T>(&mut self, now: Millis, f: impl FnOnce(&mut Migrations) -> T) -> T {
        let out = f(&mut self.migration);
        self.version += 1;
        self.settle(now);
        out
    }

    fn strike(&mut self, now: Millis) -> bool {
        match self.crash_due {
            Some(down) => {
                self.crash(now, down);
                true
            }
            None => false,
        }
    }
}

impl Core for ClusterNode {
    type Message = Wire;
    type Event = ();

    fn handle_message(&mut self, now: Millis, from: MemberId, message: Wire) {
        if self.is_down() || self.strike(now) {
            return;
        }
        match message {
            Wire::Membership(e) => {
                if let Some(m) = self.membership.as_mut() {
                    m.handle_message(now, from, e);
                }
            }
            Wire::Migration(m) => {
                self.version += 1;
                self.migration.handle_message(now, from, m);
            }
        }
        self.settle(now);
    }

    fn handle_timeout(&mut self, now: Millis) {
        if let Some(until) = self.down_until {
            if until <= now {
                self.version += 1;
                self.restart(now);
                self.settle(now);
            }
            return;
        }
        if self.strike(now) {
            return;
        }
        if self.rejoin_at.is_some_and(|t| t <= now) {
            self.rejoin(now);
        }
        if let Some(m) = self.membership.as_mut()
            && m.poll_timeout().is_some_and(|t| t <= now)
        {
            m.handle_timeout(now);
        }
        if self.migration.poll_timeout().is_some_and(|t| t <= now) {
            self.version += 1;
            self.migration.handle_timeout(now);
        }
        self.settle(now);
        if self.next_io.is_some_and(|t| t <= now) {
            self.version += 1;
            self.io(now);
            self.settle(now);
        }
    }

    fn poll_transmit(&mut self) -> Option<(MemberId, Wire)> {
        if self.is_down() || self.crash_due.is_some() {
            return None;
        }
        if let Some((to, e)) = self.membership.as_mut().and_then(Membership::poll_transmit) {
            return Some((to, Wire::Membership(e)));
        }
        let (to, m) = self.migration.poll_transmit()?;
        if let Some((CrashPoint::AfterSend, down)) = self.planned {
            self.crash_due = Some(down);
        }
        Some((to, Wire::Migration(m)))
    }

    fn poll_event(&mut self) -> Option<()> {
        None
    }

    fn poll_timeout(&self) -> Option<Millis> {
        if let Some(until) = self.down_until {
            return Some(until);
        }
        if self.crash_due.is_some() {
            return Some(Millis(0));
        }
        let membership = self.membership.as_ref().and_then(Membership::poll_timeout);
        [membership, self.migration.poll_timeout(), self.next_io, self.rejoin_at]
            .into_iter()
            .flatten()
            .min()
    }
}

impl Actor for ClusterNode {
    /// The frame header and the message's postcard encoding (plus its one-byte kind).
    fn wire_size(w: &Wire) -> usize {
        fn size<T: serde::Serialize>(t: &T) -> usize {
            postcard::serialize_with_flavor::<_, _, usize>(
                t,
                postcard::ser_flavors::Size::default(),
            )
            .expect("messages serialize")
        }
        let body = match w {
            Wire::Membership(e) => size(e),
            Wire::Migration(m) => size(m),
        };
        luciole_proto::limits::FRAME_HEADER_BYTES + 1 + body
    }
}
