//! One member's membership protocol, tying monitoring, cut detection and fast-path agreement
//! together: `handle_message(now, …)` and `handle_timeout(now)` in; `poll_transmit`,
//! `poll_event` and `poll_timeout` out. Poll all three after each `handle_*` call.
//!
//! Joins go through a seed ([`super::join::Joiner`]). A member that sees a newer epoch asks the
//! sender for its view and installs it (views are agreed, so any member's copy is the one).
//! Other messages for another epoch are dropped.
//!
//! Agreement: every member that proposes a cut broadcasts it as its fast-round vote; a cut
//! with ⌈3n/4⌉ votes is decided. A member that has seen any vote arms a timer; when it fires
//! (soon, if the fast round is visibly stuck), the member coordinates a classic round
//! ([`super::classic::Classic`]), and again with a higher rank while no view is decided. The
//! delays carry a per-member jitter so that coordinators seldom compete.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::classic::{Accepted, Classic, Rank};
use super::cut::{Alert, Change, Cut, CutDetector, Watermarks, fits};
use super::fast::FastRound;
use super::monitor::{Incarnation, Monitor, MonitorConfig, MonitorOutput};
use super::rings::{Rings, rings_for};
use super::sorted_ids;
use crate::ids::{Epoch, MemberId, ViewId};
use crate::limits::MEMBERS_MAX;
use crate::rand::{GOLDEN, mix};

/// A member behind asks for a newer view again after this long without it, ms.
pub const VIEW_REASK_MS: u64 = 500;

/// Most alerts in one `Alerts` message; a longer batch is split.
pub const ALERTS_PER_MESSAGE_MAX: usize = 1024;

/// What members send each other.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// Are you there?
    Probe,
    /// Yes, at this incarnation.
    Ack(Incarnation),
    /// The sender accuses `subject`.
    Accuse {
        /// The silent member.
        subject: MemberId,
        /// Its incarnation as the accuser knows it.
        incarnation: Incarnation,
    },
    /// The sender is alive, at this incarnation.
    Rebut(Incarnation),
    /// Accusations that stood and joins vouched for, gathered for a while and sent together
    /// (at most [`ALERTS_PER_MESSAGE_MAX`]).
    Alerts(Vec<Alert>),
    /// The sender proposes this cut for the next view.
    Vote(Cut),
    /// A node outside the view asks a member (its seed) how to join.
    JoinRequest,
    /// The seed's answer: the joiner's expected observers, `(ring, member)`.
    JoinObservers(Vec<(usize, MemberId)>),
    /// The joiner asks one of its expected observers to vouch for it on this ring.
    JoinAsk(usize),
    /// The view that admitted the joiner, from a member that vouched for it, or the current
    /// view for a member that asked (the envelope's epoch is the view's).
    Welcome(ViewChange),
    /// The sender saw a newer epoch from the receiver: send me your view.
    ViewRequest,
    /// The receiver's message was for an older view that no longer has it (the envelope
    /// carries the newer epoch, so the receiver asks for that view).
    Stale,
    /// Classic round, phase 1: the sender coordinates at this rank; promise to ignore lower.
    Prepare(Rank),
    /// The answer to `Prepare`: what the sender accepted so far in this epoch.
    Promise {
        /// The coordinator's rank.
        rank: Rank,
        /// The sender's acceptance, if any (its fast vote counts, at [`Rank::FAST`]).
        accepted: Accepted,
    },
    /// Classic round, phase 2: the coordinator proposes `cut`.
    Accept {
        /// The coordinator's rank.
        rank: Rank,
        /// The cut.
        cut: Cut,
    },
    /// The sender accepted `cut` at `rank` (to everyone: a majority decides).
    Accepted {
        /// The rank.
        rank: Rank,
        /// The cut.
        cut: Cut,
    },
}

/// A view as every member learns it: its members, and who joined and who left in the change
/// that made it (the agreed cut). A member that catches up, or joins, learns it whole, so it
/// sees the same view for the epoch as the members that took part.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewChange {
    /// The members, sorted.
    pub members: Vec<MemberId>,
    /// Members new in this view, sorted.
    pub joined: Vec<MemberId>,
    /// Members gone since the previous view, sorted.
    pub left: Vec<MemberId>,
}

impl ViewChange {
    /// A first view: every member counts as joined.
    pub fn first(members: Vec<MemberId>) -> Self {
        Self { joined: members.clone(), members, left: Vec::new() }
    }

    /// Whether it can be a view: members not empty, every list sorted and within
    /// [`MEMBERS_MAX`], the joined among the members and the left not.
    pub fn is_valid(&self) -> bool {
        !self.members.is_empty()
            && [&self.members, &self.joined, &self.left].into_iter().all(|l| sorted_ids(l))
            && self.joined.iter().all(|j| self.members.binary_search(j).is_ok())
            && self.left.iter().all(|l| self.members.binary_search(l).is_err())
    }

    /// The view id: the hash of the member set, as [`crate::view::View::id`] gives it.
    pub fn id(&self) -> ViewId {
        crate::view::view_id_of(self.members.iter().copied())
    }
}

/// A message with the epoch of the view it belongs to and its sender.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// The view the sender is in.
    pub epoch: Epoch,
    /// The sender.
    pub from: MemberId,
    /// The message.
    pub message: Message,
}

/// What happened, for the driver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A new view is installed.
    ViewInstalled {
        /// Its epoch.
        epoch: Epoch,
        /// The hash of its member set.
        id: ViewId,
        /// Its members, and who joined and left.
        view: ViewChange,
    },
    /// This member is not in the new view: it was evicted and stops.
    Evicted(Epoch),
}

/// One member's protocol state.
#[derive(Clone, Debug)]
pub struct MemberNode {
    me: MemberId,
    epoch: Epoch,
    /// The installed view: its members, and who joined and left in the change that made it.
    view: ViewChange,
    rings: Rings,
    monitor: Monitor,
    detector: CutDetector,
    round: FastRound,
    classic: Classic,
    /// When to coordinate a classic round, if no view is decided by then.
    classic_at: Option<u64>,
    /// When to take the cut, if the tally stays quiet until then, and the latest that may be.
    propose_at: Option<(u64, u64)>,
    /// Alerts waiting for the next batch, and when it goes.
    pending: Vec<Alert>,
    flush_at: Option<u64>,
    config: MonitorConfig,
    evicted: bool,
    /// Joiners this member vouched for in this view: welcomed once a view admits them.
    vouched: Vec<MemberId>,
    /// The newest epoch this member asked a peer's view for.
    asked_epoch: Epoch,
    /// When it asked (a lost request or answer is asked again after [`VIEW_REASK_MS`]).
    asked_at_ms: u64,
    transmits: VecDeque<(MemberId, Envelope)>,
    events: VecDeque<Event>,
}

impl MemberNode {
    /// `me` in the view `epoch` (valid, containing `me`), from `now_ms`.
    pub fn new(
        me: MemberId,
        epoch: Epoch,
        view: ViewChange,
        config: MonitorConfig,
        now_ms: u64,
    ) -> Self {
        assert!(view.is_valid(), "a first view must be valid");
        let members = &view.members;
        assert!(members.binary_search(&me).is_ok(), "{me} is a member of its first view");
        let rings = Rings::new(members, rings_for(members.len()));
        let monitor = Monitor::new(me, Incarnation(0), config, &rings, now_ms);
        Self {
            me,
            epoch,
            detector: CutDetector::new(Watermarks::for_rings(rings.len())),
            round: FastRound::new(epoch, members.clone()),
            classic: Classic::new(members.clone(), me),
            classic_at: None,
            propose_at: None,
            pending: Vec::new(),
            flush_at: None,
            config,
            view,
            rings,
            monitor,
            evicted: false,
            vouched: Vec::new(),
            asked_epoch: epoch,
            asked_at_ms: 0,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// The installed view: epoch and members.
    pub fn view(&self) -> (Epoch, &[MemberId]) {
        (self.epoch, &self.view.members)
    }

    /// The installed view whole, as a joiner or a member catching up learns it.
    pub fn view_change(&self) -> &ViewChange {
        &self.view
    }

    /// A message arrived.
    pub fn handle_message(&mut self, now_ms: u64, envelope: Envelope) {
        if self.evicted {
            return;
        }
        let from = envelope.from;
        // Joiners have no view yet: their messages carry no epoch worth checking.
        match envelope.message {
            Message::JoinRequest => {
                let observers = self.rings.expected_observers_of(from);
                if !self.rings.contains(from) {
                    self.send(from, Message::JoinObservers(observers));
                }
                return;
            }
            Message::JoinAsk(ring) => {
                // Only an expected observer of a non-member vouches.
                let alert = Alert { observer: self.me, subject: from, ring, change: Change::Join };
                if fits(&self.rings, &alert).is_ok() && self.vouched.len() < MEMBERS_MAX {
                    self.queue_alert(now_ms, alert);
                    if !self.vouched.contains(&from) {
                        self.vouched.push(from);
                    }
                } else if !self.is_member(from) && !self.vouched.contains(&from) {
                    // The view changed since the joiner was told whom to ask: tell it again
                    // rather than let it wait for its retry.
                    self.send(from, Message::JoinObservers(self.rings.expected_observers_of(from)));
                }
                return;
            }
            Message::ViewRequest => {
                if self.view.members.binary_search(&from).is_ok() || envelope.epoch < self.epoch {
                    self.send(from, Message::Welcome(self.view.clone()));
                }
                return;
            }
            Message::Welcome(view) => {
                // A member that fell behind catches up: every member installs the same view
                // for an epoch, so any member's copy is the agreed one.
                if envelope.epoch > self.epoch && view.is_valid() {
                    self.install(now_ms, envelope.epoch, view);
                }
                return;
            }
            _ if envelope.epoch > self.epoch => {
                if self.asked_epoch < envelope.epoch || now_ms >= self.asked_at_ms + VIEW_REASK_MS {
                    self.asked_epoch = envelope.epoch;
                    self.asked_at_ms = now_ms;
                    self.send(from, Message::ViewRequest);
                }
                return;
            }
            _ if envelope.epoch < self.epoch => {
                // A node removed while it could not hear (partitioned, paused) still talks in
                // its old view: show it the newer epoch, so it asks for the view and learns.
                if !self.is_member(from) {
                    self.send(from, Message::Stale);
                }
                return;
            }
            _ => {}
        }
        match envelope.message {
            Message::Probe => self.send(from, Message::Ack(self.monitor.incarnation())),
            Message::Ack(inc) => self.monitor.handle_ack(now_ms, from, inc),
            Message::Accuse { subject, incarnation } => {
                self.monitor.handle_accusation(subject, incarnation)
            }
            Message::Rebut(inc) => self.monitor.handle_rebut(now_ms, from, inc),
            Message::Alerts(alerts) => {
                if alerts.len() <= ALERTS_PER_MESSAGE_MAX {
                    self.alerts(now_ms, &alerts);
                }
            }
            Message::Vote(cut) => {
                if self.valid(&cut) {
                    self.vote(now_ms, from, cut)
                }
            }
            Message::Prepare(rank) => {
                if self.is_member(from)
                    && let Some(accepted) = self.classic.handle_prepare(rank)
                {
                    self.send(from, Message::Promise { rank, accepted });
                    // Someone coordinates: give it time before trying ourselves.
                    self.arm_classic(now_ms, true);
                }
            }
            Message::Promise { rank, accepted } => {
                if accepted.as_ref().is_none_or(|(_, c)| self.valid(c))
                    && let Some(cut) = self.classic.handle_promise(from, rank, accepted)
                {
                    self.broadcast(Message::Accept { rank, cut: cut.clone() });
                    self.accept(now_ms, rank, cut);
                }
            }
            Message::Accept { rank, cut } => {
                if self.is_member(from) && self.valid(&cut) {
                    self.accept(now_ms, rank, cut);
                }
            }
            Message::Accepted { rank, cut } => {
                if self.valid(&cut) {
                    self.learn(now_ms, from, rank, cut);
                }
            }
            Message::JoinRequest
            | Message::JoinObservers(_)
            | Message::JoinAsk(_)
            | Message::Welcome(_)
            | Message::ViewRequest
            | Message::Stale => {}
        }
        self.drain_monitor(now_ms);
    }

    /// Time passed.
    pub fn handle_timeout(&mut self, now_ms: u64) {
        if self.evicted {
            return;
        }
        self.monitor.handle_timeout(now_ms);
        self.drain_monitor(now_ms);
        if self.flush_at.is_some_and(|t| t <= now_ms) {
            self.flush_alerts(now_ms);
        }
        if self.propose_at.is_some_and(|(t, _)| t <= now_ms) {
            self.propose_at = None;
            self.propose(now_ms);
        }
        if self.classic_at.is_some_and(|t| t <= now_ms) {
            let (rank, proposal) = self.classic.start();
            self.broadcast(Message::Prepare(rank));
            self.arm_classic(now_ms, true);
            if let Some(cut) = proposal {
                self.broadcast(Message::Accept { rank, cut: cut.clone() });
                self.accept(now_ms, rank, cut);
            }
        }
    }

    /// The next message to send, and to whom.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<(MemberId, Envelope)> {
        self.transmits.pop_front()
    }

    /// The next event.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`MemberNode::handle_timeout`] must next be called.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<u64> {
        if self.evicted {
            return None;
        }
        [self.monitor.poll_timeout(), self.classic_at, self.flush_at, self.propose_at.map(|p| p.0)]
            .into_iter()
            .flatten()
            .min()
    }

    fn is_member(&self, m: MemberId) -> bool {
        self.view.members.binary_search(&m).is_ok()
    }

    /// Whether `cut` can follow this view: removes members, admits non-members, each list
    /// sorted and unique, not empty.
    fn valid(&self, cut: &Cut) -> bool {
        (!cut.down.is_empty() || !cut.join.is_empty())
            && self.view.members.len() + cut.join.len() <= MEMBERS_MAX
            && sorted_ids(&cut.down)
            && sorted_ids(&cut.join)
            && cut.down.iter().all(|m| self.is_member(*m))
            && cut.join.iter().all(|m| !self.is_member(*m))
    }

    /// Arms the classic-round timer: `retry` pushes it a full delay ahead (a round is under
    /// way); otherwise it is set once, at the first vote seen, and pulled in when the fast
    /// round is stuck.
    fn arm_classic(&mut self, now_ms: u64, retry: bool) {
        let c = &self.config;
        let jitter = mix(self.me.lo()
            ^ self.epoch.0.wrapping_mul(GOLDEN)
            ^ u64::from(self.classic.highest_round()))
            % (c.classic_jitter_ms + 1);
        let full = now_ms + c.classic_after_ms + jitter;
        if retry {
            self.classic_at = Some(full);
            return;
        }
        let at = if self.round.stuck() { now_ms + jitter / 5 } else { full };
        self.classic_at = Some(self.classic_at.map_or(at, |t| t.min(at)));
    }

    /// A classic proposal: accept it if the promises allow, and tell everyone.
    fn accept(&mut self, now_ms: u64, rank: Rank, cut: Cut) {
        if self.classic.handle_accept(rank, &cut) {
            self.broadcast(Message::Accepted { rank, cut: cut.clone() });
            self.learn(now_ms, self.me, rank, cut);
        }
    }

    fn learn(&mut self, now_ms: u64, from: MemberId, rank: Rank, cut: Cut) {
        if let Some(decided) = self.classic.handle_accepted(from, rank, cut) {
            let decided = decided.clone();
            self.decide(now_ms, decided);
        }
    }

    fn drain_monitor(&mut self, now_ms: u64) {
        while let Some(out) = self.monitor.poll_output() {
            match out {
                MonitorOutput::Probe(to) => self.send(to, Message::Probe),
                // Only the accused can rebut, and only its observers accuse it.
                MonitorOutput::Accuse { subject, incarnation } => {
                    self.send(subject, Message::Accuse { subject, incarnation })
                }
                MonitorOutput::Rebut(inc) => {
                    let mut observers: Vec<MemberId> =
                        self.rings.observers_of(self.me).into_iter().map(|(_, o)| o).collect();
                    observers.sort_unstable();
                    observers.dedup();
                    for o in observers {
                        self.send(o, Message::Rebut(inc));
                    }
                }
                MonitorOutput::Alert(alert) => self.queue_alert(now_ms, alert),
            }
        }
    }

    /// Holds `alert` for the next batch.
    fn queue_alert(&mut self, now_ms: u64, alert: Alert) {
        if !self.pending.contains(&alert) {
            self.pending.push(alert);
        }
        self.flush_at.get_or_insert(now_ms + self.config.alert_batch_ms);
    }

    /// Sends the batch of alerts and counts it here.
    fn flush_alerts(&mut self, now_ms: u64) {
        self.flush_at = None;
        let pending = std::mem::take(&mut self.pending);
        for chunk in pending.chunks(ALERTS_PER_MESSAGE_MAX) {
            self.broadcast(Message::Alerts(chunk.to_vec()));
        }
        self.alerts(now_ms, &pending);
    }

    /// Counts a batch of alerts, then proposes a cut if one is ready.
    fn alerts(&mut self, now_ms: u64, alerts: &[Alert]) {
        // Alerts that do not fit the view are dropped: a member cannot make another look dead.
        let mut changed = false;
        for &alert in alerts {
            changed |= self.detector.record(&self.rings, alert).unwrap_or(false);
        }
        // Propose once the tally has been quiet for a while (or has kept changing for too
        // long): subjects that failed together then land in one cut.
        if changed {
            let quiet = self.config.cut_quiet_ms;
            let latest = self.propose_at.map_or(now_ms + 5 * quiet, |(_, l)| l);
            self.propose_at = Some(((now_ms + quiet).min(latest), latest));
        }
    }

    /// Counts implicit alerts for unstable subjects whose observers are failing too, then
    /// votes for the cut, if one is ready.
    fn propose(&mut self, now_ms: u64) {
        let cut = self.detector.invalidate_failing_edges(&self.rings);
        // One fast vote per view, and none after promising a classic coordinator.
        if let Some(cut) = cut
            && self.classic.vote_fast(&cut)
        {
            self.broadcast(Message::Vote(cut.clone()));
            self.vote(now_ms, self.me, cut);
        }
    }

    fn vote(&mut self, now_ms: u64, from: MemberId, cut: Cut) {
        self.classic.saw(&cut);
        let decided = match self.round.vote(self.epoch, from, cut) {
            Ok(Some(cut)) => cut.clone(),
            Ok(None) => {
                self.arm_classic(now_ms, false);
                return;
            }
            Err(_) => return,
        };
        self.decide(now_ms, decided);
    }

    /// `decided` is the agreed cut: install the next view.
    fn decide(&mut self, now_ms: u64, decided: Cut) {
        let mut members: Vec<MemberId> = self
            .view
            .members
            .iter()
            .copied()
            .filter(|m| decided.down.binary_search(m).is_err())
            .collect();
        let joined: Vec<MemberId> =
            decided.join.iter().copied().filter(|j| !self.is_member(*j)).collect();
        let left: Vec<MemberId> =
            decided.down.iter().copied().filter(|d| self.is_member(*d)).collect();
        members.extend(joined.iter().copied());
        members.sort_unstable();
        members.dedup();
        let epoch = Epoch(self.epoch.0 + 1);
        let vouched = std::mem::take(&mut self.vouched);
        if !self.install(now_ms, epoch, ViewChange { members, joined, left }) {
            return;
        }
        // The joiners this member vouched for and the view admitted learn their first view;
        // the others learn whom to ask in the new view, rather than wait for their retry.
        for joiner in vouched {
            if decided.join.contains(&joiner) {
                self.send(joiner, Message::Welcome(self.view.clone()));
            } else {
                let observers = self.rings.expected_observers_of(joiner);
                self.send(joiner, Message::JoinObservers(observers));
            }
        }
    }

    /// Installs the view `epoch` of `members`; false when this member is not in it (evicted).
    fn install(&mut self, now_ms: u64, epoch: Epoch, view: ViewChange) -> bool {
        self.epoch = epoch;
        if view.members.binary_search(&self.me).is_err() {
            self.evicted = true;
            self.transmits.clear();
            self.events.push_back(Event::Evicted(self.epoch));
            return false;
        }
        self.view = view;
        let members = &self.view.members;
        self.rings = Rings::new(members, rings_for(members.len()));
        self.monitor.install(&self.rings, now_ms);
        self.detector = CutDetector::new(Watermarks::for_rings(self.rings.len()));
        self.round = FastRound::new(self.epoch, self.view.members.clone());
        self.classic = Classic::new(self.view.members.clone(), self.me);
        self.classic_at = None;
        self.propose_at = None;
        self.pending.clear();
        self.flush_at = None;
        self.vouched.clear();
        let (id, view) = (self.view.id(), self.view.clone());
        self.events.push_back(Event::ViewInstalled { epoch: self.epoch, id, view });
        true
    }

    fn send(&mut self, to: MemberId, message: Message) {
        let envelope = Envelope { epoch: self.epoch, from: self.me, message };
        self.transmits.push_back((to, envelope));
    }

    fn broadcast(&mut self, message: Message) {
        for i in 0..self.view.members.len() {
            let to = self.view.members[i];
            if to != self.me {
                self.send(to, message.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> Vec<MemberId> {
        vec![MemberId(11), MemberId(22), MemberId(33)]
    }

    fn node(me: MemberId) -> MemberNode {
        MemberNode::new(me, Epoch(1), ViewChange::first(ids()), MonitorConfig::default(), 0)
    }

    fn sent(n: &mut MemberNode) -> Vec<(MemberId, Envelope)> {
        std::iter::from_fn(|| n.poll_transmit()).collect()
    }

    #[test]
    fn a_member_behind_asks_for_the_view_once_and_installs_it() {
        let [a, b, c] = ids()[..] else { unreachable!() };
        let mut n = node(a);
        let newer = |message| Envelope { epoch: Epoch(3), from: b, message };
        n.handle_message(10, newer(Message::Probe));
        n.handle_message(11, newer(Message::Probe));
        assert_eq!(
            sent(&mut n),
            vec![(b, Envelope { epoch: Epoch(1), from: a, message: Message::ViewRequest })]
        );
        let view = ViewChange { members: vec![a, b], joined: vec![], left: vec![c] };
        n.handle_message(12, newer(Message::Welcome(view.clone())));
        assert_eq!(n.view(), (Epoch(3), &[a, b][..]));
        assert_eq!(n.view_change(), &view);
        let id = crate::view::View::new(
            Epoch(3),
            vec![crate::view::Member::new(a, 1), crate::view::Member::new(b, 1)],
        )
        .unwrap()
        .id();
        assert_eq!(n.poll_event(), Some(Event::ViewInstalled { epoch: Epoch(3), id, view }));
        // A stale view, an unsorted one, or one whose joined or left lists contradict its
        // members is not installed.
        let welcome = |epoch, members, joined, left| Envelope {
            epoch: Epoch(epoch),
            from: b,
            message: Message::Welcome(ViewChange { members, joined, left }),
        };
        n.handle_message(13, welcome(2, vec![a, c], vec![c], vec![b]));
        n.handle_message(14, welcome(4, vec![b, a], vec![], vec![]));
        n.handle_message(15, welcome(4, vec![a, b], vec![c], vec![]));
        n.handle_message(16, welcome(4, vec![a], vec![], vec![a]));
        n.handle_message(17, welcome(4, vec![], vec![], vec![]));
        assert_eq!(n.view().0, Epoch(3));
        n.handle_message(18, welcome(4, vec![a], vec![], vec![b]));
        assert_eq!(n.view(), (Epoch(4), &[a][..]));
    }

    #[test]
    fn a_member_answers_a_view_request_with_its_view() {
        let [a, b, _] = ids()[..] else { unreachable!() };
        let mut n = node(b);
        n.handle_message(5, Envelope { epoch: Epoch(1), from: a, message: Message::ViewRequest });
        assert_eq!(
            sent(&mut n),
            vec![(
                a,
                Envelope {
                    epoch: Epoch(1),
                    from: b,
                    message: Message::Welcome(ViewChange::first(ids()))
                }
            )]
        );
    }

    #[test]
    fn a_join_ask_from_a_non_observer_is_not_vouched() {
        let [a, b, c] = ids()[..] else { unreachable!() };
        let joiner = MemberId(99);
        let rings = Rings::new(&ids(), rings_for(3));
        let observers = rings.expected_observers_of(joiner);
        // Two rings over three members: at least one member observes the joiner on neither.
        let me = [a, b, c]
            .into_iter()
            .find(|m| !observers.iter().any(|(_, o)| o == m))
            .expect("a member that is not an expected observer");
        let mut n = node(me);
        let ask = Envelope { epoch: Epoch(0), from: joiner, message: Message::JoinAsk(0) };
        n.handle_message(1, ask);
        n.handle_timeout(60);
        assert!(
            !sent(&mut n).iter().any(|(_, e)| matches!(e.message, Message::Alerts(_))),
            "no alert broadcast"
        );
        let (ring, observer) = observers[0];
        let mut n = node(observer);
        n.handle_message(
            1,
            Envelope { epoch: Epoch(0), from: joiner, message: Message::JoinAsk(ring) },
        );
        assert!(sent(&mut n).is_empty(), "alerts wait for their batch");
        n.handle_timeout(50);
        assert!(sent(&mut n).iter().all(|(_, e)| !matches!(e.message, Message::Alerts(_))));
        n.handle_timeout(51);
        assert!(
            sent(&mut n)
                .iter()
                .any(|(_, e)| matches!(&e.message, Message::Alerts(al) if al[0].subject == joiner))
        );
    }

    #[test]
    fn a_cut_is_proposed_once_the_tally_has_been_quiet() {
        let [a, b, c] = ids()[..] else { unreachable!() };
        let rings = Rings::new(&ids(), rings_for(3));
        let alerts: Vec<Alert> = rings
            .observers_of(c)
            .into_iter()
            .map(|(ring, observer)| Alert { observer, subject: c, ring, change: Change::Down })
            .collect();
        let quiet = MonitorConfig::default().cut_quiet_ms;
        let votes = |n: &mut MemberNode| {
            sent(n).into_iter().filter(|(_, e)| matches!(e.message, Message::Vote(_))).count()
        };
        let mut n = node(a);
        let batch = |alerts: &[Alert]| Envelope {
            epoch: Epoch(1),
            from: b,
            message: Message::Alerts(alerts.to_vec()),
        };
        n.handle_message(10, batch(&alerts[..1]));
        n.handle_message(60, batch(&alerts[1..]));
        // The second batch restarts the wait.
        n.handle_timeout(10 + quiet);
        assert_eq!(votes(&mut n), 0, "the tally changed at 60");
        n.handle_timeout(60 + quiet - 1);
        assert_eq!(votes(&mut n), 0);
        n.handle_timeout(60 + quiet);
        assert_eq!(votes(&mut n), 2, "a vote for the cut to each other member");
        // The same alerts again change nothing and propose nothing.
        n.handle_message(70 + quiet, batch(&alerts));
        n.handle_timeout(70 + 2 * quiet);
        assert_eq!(votes(&mut n), 0);
    }

    #[test]
    fn a_tally_that_keeps_changing_proposes_within_five_quiet_periods() {
        let [a, b, _] = ids()[..] else { unreachable!() };
        let quiet = MonitorConfig::default().cut_quiet_ms;
        let mut n = node(a);
        // Joiners vouched for one ring at a time, every half quiet period: the tally never
        // rests, yet the member proposes by five quiet periods after the first change.
        let rings = Rings::new(&ids(), rings_for(3));
        let mut now = 0;
        let mut proposed_at = None;
        for j in 100..140u128 {
            let joiner = MemberId(j);
            let alerts: Vec<Alert> = rings
                .expected_observers_of(joiner)
                .into_iter()
                .map(|(ring, observer)| Alert {
                    observer,
                    subject: joiner,
                    ring,
                    change: Change::Join,
                })
                .collect();
            n.handle_message(
                now,
                Envelope { epoch: Epoch(1), from: b, message: Message::Alerts(alerts) },
            );
            now += quiet / 2;
            n.handle_timeout(now);
            if proposed_at.is_none()
                && sent(&mut n).iter().any(|(_, e)| matches!(e.message, Message::Vote(_)))
            {
                proposed_at = Some(now);
            }
        }
        let at = proposed_at.expect("a proposal");
        assert!(at <= 5 * quiet, "proposed at {at} ms");
    }
}
