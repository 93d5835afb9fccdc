//! The migration core: the ownership table and the two-phase commit that moves entities
//! between members, sans-IO.
//!
//! The **source** owns the entity and coordinates; the **target** is asked to take it.
//! Presumed abort: the source logs nothing before its decision, and knows nothing of a
//! migration it did not decide to commit; the decision to commit is the one record that
//! moves ownership. In order:
//!
//! 1. Source: the entity is frozen (no updates, no other move) and a `Prepare` carrying its
//!    state goes out. Nothing is logged: a crash here leaves the entity owned, as the log says.
//! 2. Target: fenced checks, then the policy; an admission is logged (`Prepared`, with the
//!    state) and only once that record is durable does the `Vote` go out. From then on the
//!    target is in doubt and only the source's decision ends it.
//! 3. Source: on an admitting vote, with a quorum, the policy decides; commit is logged
//!    (`Commit`), the entity leaves the table, and once durable the `Commit` goes out (again
//!    on every timer until the target confirms). Abort releases the entity and tells the
//!    target (best effort: a target that asks again about a migration the source does not know
//!    is told abort).
//! 4. Target: `Committed` is logged, the entity is owned at the new ownership epoch, and once
//!    durable `Done` goes back; the source logs `Delivered` and forgets the migration.
//!
//! A timer, a view change or the policy may abort only on the source before its decision
//! ([`super::Phase::abort_allowed`]). Old copies of a prepare are refused by the ownership
//! epoch: a member takes an entity only at an epoch above every epoch it has held it at.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::hash::{Hash, Hasher};

use super::policy::MigrationPolicy;
use super::wire::{Event, Fence, Message, Ownership, Reason, Record, Vote};
use super::{
    Admission, Load, Migration, Outcome, PendingAction, Phase, Role, Status, TimeoutAction,
};
use crate::builtin;
use crate::check::{self, Violation};
use crate::core::{Core, Millis};
use crate::ids::{BubbleId, EntityId, Epoch, MemberId, MigrationId};
use crate::view::View;

/// How many migrations a target remembers as ended, so that late copies of their prepares are
/// ignored rather than admitted again (and aborted again). Older ones are still refused by the
/// ownership epoch once committed; an old copy of an aborted one is admitted and told abort.
pub const ENDED_REMEMBERED: usize = 4_096;

/// Limits and timing of one member's migration core.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MigrationConfig {
    /// Most entities owned (and admitted) at once.
    pub entities_max: u32,
    /// Most migrations in flight at once, both roles.
    pub in_flight_max: u32,
    /// Most whole-bubble moves this member runs at once as their source.
    pub moves_max: u32,
    /// The first timer of a phase, ms; later ones are the policy's.
    pub first_timer_ms: u32,
}

impl Default for MigrationConfig {
    fn default() -> Self {
        Self { entities_max: 100_000, in_flight_max: 256, moves_max: 32, first_timer_ms: 100 }
    }
}

/// An entity owned here.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Owned {
    /// Its bubble.
    pub bubble: BubbleId,
    /// The ownership epoch it is held at.
    pub ownership: Ownership,
    /// Its state.
    pub state: Vec<u8>,
    /// The migration it is frozen for, if one is under way.
    pub moving: Option<MigrationId>,
}

/// Which migration a timer belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FlightKey {
    /// One this member is the source of.
    Out(MigrationId),
    /// One this member is the target of: (source, id).
    In(MemberId, MigrationId),
}

/// A migration under way on this member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flight {
    /// The migration.
    pub migration: Migration,
    /// The ownership epoch the target holds the entity at once committed.
    pub ownership: Ownership,
    /// The entity's state (source until its decision; target until applied).
    pub state: Vec<u8>,
    /// Where it stands: source `Preparing` or `Committing`; target `Prepared`.
    pub phase: Phase,
    /// The record that must be durable before this phase's message goes out.
    seq: u64,
    attempt: u32,
    started: Millis,
    timer: Millis,
}

/// One member's migration core. See the module documentation for the protocol.
#[derive(Clone, Debug)]
pub struct MigrationCore<P> {
    me: MemberId,
    config: MigrationConfig,
    policy: P,
    boot: u64,
    next_id: u64,
    epoch: Epoch,
    members: BTreeSet<MemberId>,
    quorum: bool,
    owned: BTreeMap<EntityId, Owned>,
    /// Per entity, the highest ownership epoch this member has held it at or given it away at.
    known: BTreeMap<EntityId, Ownership>,
    outgoing: BTreeMap<MigrationId, Flight>,
    incoming: BTreeMap<(MemberId, MigrationId), Flight>,
    homes: BTreeMap<BubbleId, MemberId>,
    /// Migrations ended here as their target, newest last (at most [`ENDED_REMEMBERED`]).
    ended: VecDeque<(MemberId, MigrationId)>,
    ended_set: BTreeSet<(MemberId, MigrationId)>,
    pump_at: Option<Millis>,
    /// A migration ended since the last entry point: misplaced entities are looked for again
    /// (an aborted move is retried, an arrival in a bubble hosted elsewhere goes on).
    repump: bool,
    logged: u64,
    persisted: u64,
    boot_seq: u64,
    persist: VecDeque<(u64, Record)>,
    gated: VecDeque<(u64, MemberId, Message)>,
    transmit: VecDeque<(MemberId, Message)>,
    events: VecDeque<Event>,
    overruled: u64,
}

impl<P: MigrationPolicy> MigrationCore<P> {
    /// A member with an empty log.
    pub fn new(me: MemberId, config: MigrationConfig, policy: P, now: Millis) -> Self {
        Self::recover(me, config, policy, now, [])
    }

    /// A member restarted from its log's records, in order: the table is rebuilt exactly as
    /// they say (an entity frozen by a prepare that was never committed is owned; an entity
    /// whose commit was logged is not, and its commit is delivered again; an admission in
    /// doubt stays in doubt and asks its source). Logs a new `Boot`; nothing is sent for a new
    /// migration before that record is durable.
    pub fn recover(
        me: MemberId,
        config: MigrationConfig,
        policy: P,
        now: Millis,
        records: impl IntoIterator<Item = Record>,
    ) -> Self {
        let mut c = Self {
            me,
            config,
            policy,
            boot: 0,
            next_id: 0,
            epoch: Epoch(0),
            members: BTreeSet::new(),
            quorum: false,
            owned: BTreeMap::new(),
            known: BTreeMap::new(),
            outgoing: BTreeMap::new(),
            incoming: BTreeMap::new(),
            homes: BTreeMap::new(),
            ended: VecDeque::new(),
            ended_set: BTreeSet::new(),
            pump_at: None,
            repump: false,
            logged: 0,
            persisted: 0,
            boot_seq: 0,
            persist: VecDeque::new(),
            gated: VecDeque::new(),
            transmit: VecDeque::new(),
            events: VecDeque::new(),
            overruled: 0,
        };
        for r in records {
            c.replay(r, now);
        }
        c.boot += 1;
        c.boot_seq = c.log(Record::Boot { boot: c.boot });
        let timer = now.plus(config.first_timer_ms.into());
        for f in c.outgoing.values_mut().chain(c.incoming.values_mut()) {
            (f.attempt, f.started, f.timer) = (1, now, timer);
        }
        for (&entity, o) in &c.owned {
            let (bubble, ownership) = (o.bubble, o.ownership);
            c.events.push_back(Event::Acquired { entity, bubble, ownership });
        }
        c
    }

    fn replay(&mut self, record: Record, now: Millis) {
        let flight = |migration: Migration, ownership, state, phase| Flight {
            migration,
            ownership,
            state,
            phase,
            seq: 0,
            attempt: 1,
            started: now,
            timer: now,
        };
        match record {
            Record::Boot { boot } => self.boot = self.boot.max(boot),
            Record::Spawn { entity, bubble, ownership, state } => {
                self.owned.insert(entity, Owned { bubble, ownership, state, moving: None });
                self.saw(entity, ownership);
            }
            Record::Update { entity, ownership, state } => {
                if let Some(o) = self.owned.get_mut(&entity).filter(|o| o.ownership == ownership) {
                    o.state = state;
                }
            }
            Record::Commit { migration, ownership } => {
                self.owned.remove(&migration.entity);
                self.saw(migration.entity, ownership);
                let f = flight(migration, ownership, Vec::new(), Phase::Committing);
                self.outgoing.insert(migration.id, f);
            }
            Record::Delivered { id, .. } => {
                self.outgoing.remove(&id);
            }
            Record::Prepared { migration, ownership, state } => {
                let f = flight(migration, ownership, state, Phase::Prepared);
                self.incoming.insert((migration.source, migration.id), f);
            }
            Record::Committed { source, id, ownership } => {
                if let Some(f) = self.incoming.remove(&(source, id)) {
                    self.take(f, ownership);
                }
                self.remember(source, id);
            }
            Record::Aborted { source, id, .. } => {
                self.incoming.remove(&(source, id));
                self.remember(source, id);
            }
            Record::Known { entity, ownership } => self.saw(entity, ownership),
        }
    }

    /// Records that rebuild this core's durable state as it is now, for a checkpoint: replayed
    /// by [`Self::recover`] alone, or after any part of the log that led here, they give the
    /// same table, so once they are durable the log before them may go. They are: the boot
    /// number; the highest ownership epoch of every entity ever held or given away (which
    /// refuses old prepares and keeps [`Self::spawn`] from creating an entity twice); every
    /// decided commit not yet delivered; every owned entity with its current state and bubble
    /// (what [`Self::relocate`] set included: a snapshot makes it durable), after the commits
    /// (an entity may be back before its move away is confirmed); every admission in doubt.
    /// Not kept: which migrations ended here lately (a late copy of the prepare of an aborted
    /// one is then admitted and told abort again, as happens anyway past the last 4,096).
    /// Append them after everything the core logged before the call.
    pub fn snapshot(&self) -> Vec<Record> {
        let mut out = Vec::with_capacity(
            1 + self.known.len() + self.owned.len() + self.outgoing.len() + self.incoming.len(),
        );
        out.push(Record::Boot { boot: self.boot });
        for (&entity, &ownership) in &self.known {
            out.push(Record::Known { entity, ownership });
        }
        // Undelivered commits before the owned entities: an entity can be owned here again
        // (it came back) while its move away is still unconfirmed, and replaying that commit
        // removes the entity from the table, as it did when it was logged.
        for f in self.outgoing.values().filter(|f| f.phase == Phase::Committing) {
            out.push(Record::Commit { migration: f.migration, ownership: f.ownership });
        }
        for (&entity, o) in &self.owned {
            let (bubble, ownership, state) = (o.bubble, o.ownership, o.state.clone());
            out.push(Record::Spawn { entity, bubble, ownership, state });
        }
        for f in self.incoming.values().filter(|f| f.phase == Phase::Prepared) {
            let (migration, ownership, state) = (f.migration, f.ownership, f.state.clone());
            out.push(Record::Prepared { migration, ownership, state });
        }
        out
    }

    /// This member's id.
    pub fn me(&self) -> MemberId {
        self.me
    }

    /// The policy (a test double may be steered through it).
    pub fn policy_mut(&mut self) -> &mut P {
        &mut self.policy
    }

    /// Whether this member may act: it is in its newest view and reaches a quorum.
    pub fn active(&self) -> bool {
        self.quorum && self.members.contains(&self.me)
    }

    /// Whether this member may act on `entity` now: active, owns it, and it is not frozen by
    /// a migration.
    pub fn acting(&self, entity: EntityId) -> bool {
        self.active() && self.owned.get(&entity).is_some_and(|o| o.moving.is_none())
    }

    /// The entities owned here (frozen ones included).
    pub fn owned(&self) -> &BTreeMap<EntityId, Owned> {
        &self.owned
    }

    /// Migrations this member is the source of, by id.
    pub fn outgoing(&self) -> &BTreeMap<MigrationId, Flight> {
        &self.outgoing
    }

    /// Migrations this member is the target of, by (source, id).
    pub fn incoming(&self) -> &BTreeMap<(MemberId, MigrationId), Flight> {
        &self.incoming
    }

    /// Policy answers refused as unsafe so far.
    pub fn overruled(&self) -> u64 {
        self.overruled
    }

    /// This member's load as the policies see it.
    pub fn load(&self) -> Load {
        let in_flight = self.outgoing.len() + self.incoming.len();
        Load {
            entities: u32::try_from(self.owned.len() + self.incoming.len()).unwrap_or(u32::MAX),
            entities_max: self.config.entities_max,
            in_flight: u32::try_from(in_flight).unwrap_or(u32::MAX),
            in_flight_max: self.config.in_flight_max,
        }
    }

    /// Creates `entity` here, in `bubble`, at ownership epoch 1. Refused unless this member
    /// is active and has never held the entity.
    pub fn spawn(
        &mut self,
        entity: EntityId,
        bubble: BubbleId,
        state: Vec<u8>,
    ) -> Result<(), Fence> {
        if !self.active() {
            return Err(Fence::NoQuorum);
        }
        if self.known.contains_key(&entity)
            || self.incoming.values().any(|f| f.migration.entity == entity)
        {
            return Err(Fence::Conflict);
        }
        let ownership = Ownership(1);
        self.log(Record::Spawn { entity, bubble, ownership, state: state.clone() });
        self.owned.insert(entity, Owned { bubble, ownership, state, moving: None });
        self.saw(entity, ownership);
        self.events.push_back(Event::Acquired { entity, bubble, ownership });
        Ok(())
    }

    /// Sets the state of `entity`, which this member must be [acting](Self::acting) on.
    pub fn update(&mut self, entity: EntityId, state: Vec<u8>) -> Result<(), Fence> {
        if !self.acting(entity) {
            return Err(if self.active() { Fence::NotOwner } else { Fence::NoQuorum });
        }
        let o = self.owned.get_mut(&entity).expect("acting on it");
        o.state = state.clone();
        let ownership = o.ownership;
        self.log(Record::Update { entity, ownership, state });
        Ok(())
    }

    /// Sets the bubble and state of `entity`, which this member must be
    /// [acting](Self::acting) on, **without logging them**: for what changes too often to log
    /// and may be lost (a moving entity's position as it crosses into another bubble hosted
    /// here). Ownership is untouched; a restart finds the state and bubble last logged (by
    /// its spawn, arrival or [`Self::update`]), and a later [`Self::request`] carries what was
    /// set here.
    pub fn relocate(
        &mut self,
        entity: EntityId,
        bubble: BubbleId,
        state: Vec<u8>,
    ) -> Result<(), Fence> {
        if !self.acting(entity) {
            return Err(if self.active() { Fence::NotOwner } else { Fence::NoQuorum });
        }
        let o = self.owned.get_mut(&entity).expect("acting on it");
        o.bubble = bubble;
        o.state = state;
        Ok(())
    }

    /// Starts moving `entity` into `target_bubble` on `target`. Refused (with nothing
    /// changed) unless this member is active, owns the entity and it is not moving, the
    /// target is another member of the view, and the policy admits.
    pub fn request(
        &mut self,
        now: Millis,
        entity: EntityId,
        target: MemberId,
        target_bubble: BubbleId,
    ) -> Result<MigrationId, Reason> {
        let fenced = |f| Err(Reason::Fenced(f));
        if !self.active() {
            return fenced(Fence::NoQuorum);
        }
        if target == self.me {
            return fenced(Fence::SameMember);
        }
        if !self.members.contains(&target) {
            return fenced(Fence::NotMember);
        }
        let Some(owned) = self.owned.get(&entity).filter(|o| o.moving.is_none()) else {
            return fenced(Fence::NotOwner);
        };
        let id = MigrationId::from_parts(self.boot, self.next_id);
        let migration = Migration {
            id,
            entity,
            source: self.me,
            target,
            source_bubble: owned.bubble,
            target_bubble,
            epoch: self.epoch,
        };
        let load = self.load();
        let answer = self.policy.on_request(&migration, &load);
        let checked = check::request(&load, answer);
        if let Admission::Refuse(r) = self.ask("on-request", checked, || builtin::on_request(&load))
        {
            return Err(Reason::Refused(r));
        }
        self.next_id += 1;
        let owned = self.owned.get_mut(&entity).expect("checked above");
        owned.moving = Some(id);
        let flight = Flight {
            migration,
            ownership: owned.ownership.next(),
            state: owned.state.clone(),
            phase: Phase::Preparing,
            seq: self.boot_seq,
            attempt: 1,
            started: now,
            timer: now.plus(self.config.first_timer_ms.into()),
        };
        self.outgoing.insert(id, flight);
        self.resend(FlightKey::Out(id));
        Ok(id)
    }

    /// Where each bubble is hosted (from the placement policy, for the current view): entities
    /// of bubbles hosted elsewhere are moved there, at most [`MigrationConfig::moves_max`] at
    /// once.
    pub fn place(&mut self, now: Millis, homes: BTreeMap<BubbleId, MemberId>) {
        self.homes = homes;
        self.pump(now);
    }

    /// A view was installed. Undecided migrations of this member's whose target left (or
    /// when this member left) are aborted; the policy may abort other undecided ones; decided
    /// ones and admissions in doubt keep going whoever left.
    pub fn handle_view(&mut self, now: Millis, view: &View) {
        if view.epoch() <= self.epoch {
            return;
        }
        self.epoch = view.epoch();
        self.members = view.members().iter().map(|m| m.id).collect();
        let member = self.members.contains(&self.me);
        let left: Vec<MigrationId> = self
            .outgoing
            .iter()
            .filter(|(_, f)| f.phase == Phase::Preparing)
            .filter(|(_, f)| !member || !self.members.contains(&f.migration.target))
            .map(|(id, _)| *id)
            .collect();
        for id in left {
            self.abort_outgoing(id, Reason::ViewChanged);
        }
        let keys: Vec<(FlightKey, Status)> = self
            .flights()
            .filter(|(_, f, _)| {
                member
                    && self.members.contains(&f.migration.source)
                    && self.members.contains(&f.migration.target)
            })
            .map(|(k, f, role)| (k, status(f, role, now)))
            .collect();
        if !keys.is_empty() {
            let pending: Vec<Status> = keys.iter().map(|(_, s)| *s).collect();
            let answer = self.policy.on_view_change(view, &pending);
            let checked = check::pending(&pending, answer);
            let actions = self.ask("on-view-change", checked, || builtin::on_view_change(&pending));
            for ((key, _), action) in keys.iter().zip(actions) {
                if let (FlightKey::Out(id), PendingAction::Abort) = (key, action) {
                    self.abort_outgoing(*id, Reason::ViewChanged);
                }
            }
        }
        self.pump(now);
    }

    /// This member lost (false) or regained (true) its quorum. Without one it starts nothing,
    /// admits nothing and decides no commit.
    pub fn handle_quorum(&mut self, now: Millis, quorum: bool) {
        self.quorum = quorum;
        self.pump(now);
    }

    /// The driver made every record up to `seq` (from [`Self::poll_persist`]) durable.
    pub fn handle_persisted(&mut self, seq: u64) {
        self.persisted = self.persisted.max(seq.min(self.logged));
        let persisted = self.persisted;
        let mut keep = VecDeque::new();
        for (s, to, m) in self.gated.drain(..) {
            if s <= persisted {
                self.transmit.push_back((to, m));
            } else {
                keep.push_back((s, to, m));
            }
        }
        self.gated = keep;
    }

    /// The next record to append to the log, numbered from 1 in this core's life.
    pub fn poll_persist(&mut self) -> Option<(u64, Record)> {
        self.persist.pop_front()
    }

    /// The migrations with a timer, for a model checker that fires any of them at any time.
    pub fn timers(&self) -> Vec<FlightKey> {
        self.flights().map(|(k, _, _)| k).collect()
    }

    /// Fires the timer of `key` now, whenever it was due: what [`Core::handle_timeout`] does
    /// for each due timer.
    pub fn fire(&mut self, now: Millis, key: FlightKey) {
        let Some((flight, role)) = self.flight(key) else { return };
        let status = status(flight, role, now);
        let answer = self.policy.on_timeout(&status);
        let checked = check::timeout(&status, answer);
        let action = self.ask("on-timeout", checked, || builtin::on_timeout(&status));
        match action {
            TimeoutAction::Retry(ms) => {
                let f = self.flight_mut(key).expect("found above");
                f.attempt = f.attempt.saturating_add(1);
                f.timer = now.plus(ms.into());
                self.resend(key);
            }
            TimeoutAction::Wait(ms) => {
                self.flight_mut(key).expect("found above").timer = now.plus(ms.into())
            }
            TimeoutAction::Abort => {
                if let FlightKey::Out(id) = key {
                    self.abort_outgoing(id, Reason::TimedOut);
                }
            }
        }
        self.repump(now);
    }
}

impl<P: MigrationPolicy> MigrationCore<P> {
    fn on_prepare(&mut self, now: Millis, from: MemberId, prepare: Message) {
        let Message::Prepare { migration: m, ownership, view, state } = prepare else { return };
        if m.source != from || m.target != self.me {
            return;
        }
        if let Some(f) = self.incoming.get(&(from, m.id)) {
            // A copy: answer again, once the admission is durable.
            if f.ownership == ownership {
                self.resend(FlightKey::In(from, m.id));
            }
            return;
        }
        if self.ended_set.contains(&(from, m.id)) && !cfg!(feature = "mutant-unfenced-prepare") {
            // A late copy of a prepare whose migration already ended here.
            return;
        }
        if view > self.epoch {
            // Sent in a view this member has not installed yet: the source asks again.
            return;
        }
        let vote = match self.fence_of(&m, ownership, view) {
            Some(fence) => Vote::Fenced(fence),
            None => {
                let load = self.load();
                let answer = self.policy.on_prepare(&m, &load);
                let checked = check::prepare(&load, answer);
                match self.ask("on-prepare", checked, || builtin::on_prepare(&load)) {
                    Admission::Admit => Vote::Admit,
                    Admission::Refuse(r) => Vote::Refuse(r),
                }
            }
        };
        if vote != Vote::Admit {
            self.transmit.push_back((from, Message::Vote { id: m.id, ownership, vote }));
            return;
        }
        let seq = self.log(Record::Prepared { migration: m, ownership, state: state.clone() });
        let timer = now.plus(self.config.first_timer_ms.into());
        let flight = Flight {
            migration: m,
            ownership,
            state,
            phase: Phase::Prepared,
            seq,
            attempt: 1,
            started: now,
            timer,
        };
        self.incoming.insert((from, m.id), flight);
        self.resend(FlightKey::In(from, m.id));
    }

    /// Why the host refuses a prepare before asking the policy, if it does.
    fn fence_of(&self, m: &Migration, ownership: Ownership, view: Epoch) -> Option<Fence> {
        if !self.active() {
            Some(Fence::NoQuorum)
        } else if view < self.epoch {
            Some(Fence::StaleView)
        } else if !self.members.contains(&m.source) {
            Some(Fence::NotMember)
        } else if self.owned.contains_key(&m.entity)
            || self.incoming.values().any(|f| f.migration.entity == m.entity)
        {
            Some(Fence::Conflict)
        } else if self.known.get(&m.entity).is_some_and(|k| *k >= ownership)
            && !cfg!(feature = "mutant-unfenced-prepare")
        {
            Some(Fence::Stale)
        } else {
            None
        }
    }

    fn on_vote(
        &mut self,
        now: Millis,
        from: MemberId,
        id: MigrationId,
        ownership: Ownership,
        vote: Vote,
    ) {
        let Some(f) = self.outgoing.get(&id) else {
            // Presumed abort: a target in doubt about a migration this member does not know
            // (it never decided to commit it) is told abort.
            if vote == Vote::Admit {
                self.transmit.push_back((from, Message::Abort { id, ownership }));
            }
            return;
        };
        if f.migration.target != from || f.ownership != ownership {
            return;
        }
        if f.phase == Phase::Committing {
            self.resend(FlightKey::Out(id));
            return;
        }
        let admission = match vote {
            Vote::Fenced(fence) => return self.abort_outgoing(id, Reason::Fenced(fence)),
            Vote::Refuse(r) => Admission::Refuse(r),
            // No commit without a quorum: the target asks again.
            Vote::Admit if !self.active() => return,
            Vote::Admit => Admission::Admit,
        };
        let status = status(f, Role::Source, now);
        let answer = self.policy.on_vote(&status, admission);
        let checked = check::vote(admission, answer);
        match (self.ask("on-vote", checked, || builtin::on_vote(admission)), vote) {
            (Outcome::Commit, _) => self.commit(now, id),
            (Outcome::Abort, Vote::Refuse(r)) => self.abort_outgoing(id, Reason::Refused(r)),
            (Outcome::Abort, _) => self.abort_outgoing(id, Reason::Decided),
        }
    }

    /// The source's decision to commit: logged, the entity leaves the table, and the commit
    /// goes out once the record is durable.
    fn commit(&mut self, now: Millis, id: MigrationId) {
        let first = self.config.first_timer_ms.into();
        let Some(f) = self.outgoing.get(&id) else { return };
        let (m, ownership) = (f.migration, f.ownership);
        let seq = self.log(Record::Commit { migration: m, ownership });
        // Mutant: the commit is announced before its record is durable.
        let seq = if cfg!(feature = "mutant-early-commit") { 0 } else { seq };
        let f = self.outgoing.get_mut(&id).expect("found above");
        (f.phase, f.seq, f.attempt, f.timer) = (Phase::Committing, seq, 1, now.plus(first));
        f.state = Vec::new();
        self.owned.remove(&m.entity);
        self.saw(m.entity, ownership);
        self.events.push_back(Event::Released { entity: m.entity, to: m.target, id });
        self.resend(FlightKey::Out(id));
    }

    /// Ends an undecided migration of this member's: the entity is released here and the
    /// target told (best effort; if the message is lost, the target asks again).
    fn abort_outgoing(&mut self, id: MigrationId, reason: Reason) {
        if self.outgoing.get(&id).is_none_or(|f| f.phase != Phase::Preparing) {
            return;
        }
        let f = self.outgoing.remove(&id).expect("found above");
        if let Some(o) = self.owned.get_mut(&f.migration.entity).filter(|o| o.moving == Some(id)) {
            o.moving = None;
        }
        let abort = Message::Abort { id, ownership: f.ownership };
        self.transmit.push_back((f.migration.target, abort));
        self.ended(f.migration, Role::Source, Outcome::Abort, reason);
    }

    fn on_commit(&mut self, from: MemberId, id: MigrationId, ownership: Ownership) {
        let Some(f) = self.incoming.get(&(from, id)) else {
            // Applied before (a member admits only with its admission durable, and a source
            // commits only after that vote): confirm once everything logged is durable.
            self.send_after(self.logged, from, Message::Done { id, ownership });
            return;
        };
        if f.ownership != ownership {
            return;
        }
        let f = self.incoming.remove(&(from, id)).expect("found above");
        let seq = self.log(Record::Committed { source: from, id, ownership });
        let m = f.migration;
        self.take(f, ownership);
        self.remember(from, id);
        let entity = m.entity;
        self.events.push_back(Event::Acquired { entity, bubble: m.target_bubble, ownership });
        self.ended(m, Role::Target, Outcome::Commit, Reason::Decided);
        self.send_after(seq, from, Message::Done { id, ownership });
    }

    fn on_abort(&mut self, from: MemberId, id: MigrationId, ownership: Ownership) {
        if self.incoming.get(&(from, id)).is_none_or(|f| f.ownership != ownership) {
            return;
        }
        let f = self.incoming.remove(&(from, id)).expect("found above");
        self.log(Record::Aborted { source: from, id, ownership });
        self.remember(from, id);
        self.ended(f.migration, Role::Target, Outcome::Abort, Reason::SourceAborted);
    }

    fn on_done(&mut self, from: MemberId, id: MigrationId, ownership: Ownership) {
        let done = |f: &Flight| {
            f.phase == Phase::Committing && f.migration.target == from && f.ownership == ownership
        };
        if !self.outgoing.get(&id).is_some_and(done) {
            return;
        }
        let f = self.outgoing.remove(&id).expect("found above");
        self.log(Record::Delivered { id, ownership });
        self.ended(f.migration, Role::Source, Outcome::Commit, Reason::Decided);
    }

    /// Sends the message of `key`'s phase, once the record it depends on is durable.
    fn resend(&mut self, key: FlightKey) {
        let Some((f, _)) = self.flight(key) else { return };
        let (m, ownership) = (f.migration, f.ownership);
        let (to, message) = match (key, f.phase) {
            (FlightKey::Out(_), Phase::Preparing) => {
                let view = self.epoch;
                let state = f.state.clone();
                (m.target, Message::Prepare { migration: m, ownership, view, state })
            }
            (FlightKey::Out(id), _) => (m.target, Message::Commit { id, ownership }),
            (FlightKey::In(source, id), _) => {
                (source, Message::Vote { id, ownership, vote: Vote::Admit })
            }
        };
        self.send_after(f.seq, to, message);
    }

    /// Sends `message` once record `seq` is durable; a copy already waiting is not queued
    /// twice (a timer firing while the disk is slow).
    fn send_after(&mut self, seq: u64, to: MemberId, message: Message) {
        if seq <= self.persisted {
            self.transmit.push_back((to, message));
        } else if !self.gated.iter().any(|(s, t, m)| *s == seq && *t == to && *m == message) {
            self.gated.push_back((seq, to, message));
        }
    }

    /// Moves entities of bubbles hosted elsewhere, within [`MigrationConfig::moves_max`].
    fn pump(&mut self, now: Millis) {
        self.pump_at = None;
        self.repump = false;
        if !self.active() || self.homes.is_empty() {
            return;
        }
        let moving = self
            .outgoing
            .values()
            .filter(|f| {
                f.phase == Phase::Preparing
                    && f.migration.source_bubble == f.migration.target_bubble
            })
            .count();
        let room = (self.config.moves_max as usize).saturating_sub(moving);
        let due: Vec<(EntityId, BubbleId, MemberId)> = self
            .owned
            .iter()
            .filter(|(_, o)| o.moving.is_none())
            .filter_map(|(e, o)| {
                let home = *self.homes.get(&o.bubble)?;
                (home != self.me && self.members.contains(&home)).then_some((*e, o.bubble, home))
            })
            .take(room + 1)
            .collect();
        let more = due.len() > room;
        let mut refused = false;
        for (entity, bubble, home) in due.into_iter().take(room) {
            refused |= self.request(now, entity, home, bubble).is_err();
        }
        if more || moving > 0 || refused {
            self.pump_at = Some(now.plus(self.config.first_timer_ms.into()));
        }
    }

    /// A checked policy answer, or the built-in one (counted, and told as an event).
    fn ask<T>(
        &mut self,
        call: &'static str,
        checked: Result<T, Violation>,
        builtin: impl FnOnce() -> T,
    ) -> T {
        match checked {
            Ok(answer) => answer,
            Err(v) => {
                self.overruled += 1;
                self.events.push_back(Event::Overruled { call, violation: v.to_string() });
                builtin()
            }
        }
    }

    fn log(&mut self, record: Record) -> u64 {
        self.logged += 1;
        self.persist.push_back((self.logged, record));
        self.logged
    }

    fn remember(&mut self, source: MemberId, id: MigrationId) {
        if self.ended_set.insert((source, id)) {
            self.ended.push_back((source, id));
        }
        if self.ended.len() > ENDED_REMEMBERED
            && let Some(old) = self.ended.pop_front()
        {
            self.ended_set.remove(&old);
        }
    }

    fn saw(&mut self, entity: EntityId, ownership: Ownership) {
        let k = self.known.entry(entity).or_default();
        *k = (*k).max(ownership);
    }

    /// The target applies a commit: the admitted entity is owned here.
    fn take(&mut self, f: Flight, ownership: Ownership) {
        let m = f.migration;
        let owned = Owned { bubble: m.target_bubble, ownership, state: f.state, moving: None };
        self.owned.insert(m.entity, owned);
        self.saw(m.entity, ownership);
    }

    fn ended(&mut self, migration: Migration, role: Role, outcome: Outcome, reason: Reason) {
        self.events.push_back(Event::Ended { migration, role, outcome, reason });
        self.repump = !self.homes.is_empty();
    }

    /// After a migration ended: look for misplaced entities again one first timer from now.
    fn repump(&mut self, now: Millis) {
        if std::mem::take(&mut self.repump) {
            let at = now.plus(self.config.first_timer_ms.into());
            self.pump_at = Some(self.pump_at.map_or(at, |t| t.min(at)));
        }
    }
}

impl<P> MigrationCore<P> {
    fn flights(&self) -> impl Iterator<Item = (FlightKey, &Flight, Role)> {
        let out = self.outgoing.iter().map(|(id, f)| (FlightKey::Out(*id), f, Role::Source));
        let inc =
            self.incoming.iter().map(|((s, id), f)| (FlightKey::In(*s, *id), f, Role::Target));
        out.chain(inc)
    }

    fn flight(&self, key: FlightKey) -> Option<(&Flight, Role)> {
        match key {
            FlightKey::Out(id) => self.outgoing.get(&id).map(|f| (f, Role::Source)),
            FlightKey::In(s, id) => self.incoming.get(&(s, id)).map(|f| (f, Role::Target)),
        }
    }

    fn flight_mut(&mut self, key: FlightKey) -> Option<&mut Flight> {
        match key {
            FlightKey::Out(id) => self.outgoing.get_mut(&id),
            FlightKey::In(s, id) => self.incoming.get_mut(&(s, id)),
        }
    }
}

impl<P: MigrationPolicy> Core for MigrationCore<P> {
    type Message = Message;
    type Event = Event;

    fn handle_message(&mut self, now: Millis, from: MemberId, message: Message) {
        match message {
            prepare @ Message::Prepare { .. } => self.on_prepare(now, from, prepare),
            Message::Vote { id, ownership, vote } => self.on_vote(now, from, id, ownership, vote),
            Message::Commit { id, ownership } => self.on_commit(from, id, ownership),
            Message::Abort { id, ownership } => self.on_abort(from, id, ownership),
            Message::Done { id, ownership } => self.on_done(from, id, ownership),
        }
        self.repump(now);
    }

    fn handle_timeout(&mut self, now: Millis) {
        let due: Vec<FlightKey> =
            self.flights().filter(|(_, f, _)| f.timer <= now).map(|(k, _, _)| k).collect();
        for key in due {
            self.fire(now, key);
        }
        if self.pump_at.is_some_and(|t| t <= now) {
            self.pump(now);
        }
    }

    fn poll_transmit(&mut self) -> Option<(MemberId, Message)> {
        self.transmit.pop_front()
    }

    fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    fn poll_timeout(&self) -> Option<Millis> {
        self.flights().map(|(_, f, _)| f.timer).chain(self.pump_at).min()
    }
}

/// Hashes what the protocol's behaviour depends on: everything but attempt counts, start
/// times and timer deadlines, which only the policy reads. A model checker that drives a
/// policy ignoring them merges states that differ only there.
impl<P: Hash> Hash for MigrationCore<P> {
    fn hash<H: Hasher>(&self, h: &mut H) {
        (self.me, self.config, &self.policy, self.boot, self.next_id, self.epoch).hash(h);
        (&self.members, self.quorum, &self.owned, &self.known, &self.homes, &self.ended).hash(h);
        for (k, f, _) in self.flights() {
            (k, f.migration, f.ownership, &f.state, f.phase, f.seq).hash(h);
        }
        (self.logged, self.persisted, self.boot_seq, &self.persist, &self.gated).hash(h);
        (&self.transmit, &self.events, self.overruled, self.pump_at.is_some()).hash(h);
    }
}

pub(super) fn status(f: &Flight, role: Role, now: Millis) -> Status {
    Status {
        migration: f.migration,
        role,
        phase: f.phase,
        attempt: f.attempt,
        elapsed_ms: now.0.saturating_sub(f.started.0),
    }
}
