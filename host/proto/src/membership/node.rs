//! One member's membership protocol, tying monitoring, cut detection and agreement together:
//! `handle_message(now, from, …)` and `handle_timeout(now)` in; `poll_transmit`, `poll_event`
//! and `poll_timeout` out. Poll all three after each `handle_*` call.
//!
//! **Authentication.** A message carries no sender: `from` is an argument, which the driver
//! takes from the authenticated connection (the simulator passes the true sender). Every rule
//! below that names a sender relies on that: an alert counts only from the observer it names;
//! a classic proposal only from the coordinator of its rank; a vote, promise or acceptance only
//! from a member, once.
//!
//! **Catching up.** A member that sees a newer epoch asks the senders for their view, and
//! installs a view it did not see decided only once [`WELCOME_CONFIRMATIONS`] distinct members
//! of its view that are in that view sent it ([`super::welcome`]). Other messages for another
//! epoch are dropped.
//!
//! **Agreement.** Every member that proposes a cut broadcasts it as its fast-round vote; a cut
//! with ⌈3n/4⌉ votes is decided. A member that has seen any vote arms a timer; when it fires
//! (soon, if the fast round is visibly stuck), the member coordinates a classic round
//! ([`super::classic::Classic`]) with the cut its own tally supports, and again with a higher
//! rank while no view is decided and it still has one. The delays carry a per-member jitter so
//! that coordinators seldom compete.
//!
//! **Guards.** No cut that removes half or more of the view is proposed, voted for, accepted
//! or installed; a member never votes for or accepts a cut that removes itself, nor accepts a
//! classic proposal naming a subject that no observer reported to its own tally in this view
//! (so a coordinator, even a lying one, proposes only what members detected).
//!
//! **Quorum.** A member *has quorum* while it hears, within the accusation silence, from more
//! than half of its monitoring peers (the distinct members it observes and that observe it on
//! the rings, a pseudo-random sample of the view), and its tally vouches for more than half of
//! the view ([`CutDetector::vouched`]). It says when that changes ([`Event::QuorumLost`], [`Event::QuorumRegained`];
//! [`MemberNode::has_quorum`]): layers above stop acting on a view that may be stale.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::classic::{Accepted, Classic, Rank};
use super::cut::{
    Alert, Change, Cut, CutDetector, JOINERS_PENDING_MAX, Tally, Timing, Watermarks, fits,
};
use super::fast::FastRound;
pub use super::message::{Envelope, Message, ViewChange};
use super::monitor::{Incarnation, Monitor, MonitorConfig, MonitorOutput};
use super::rings::{Rings, rings_for};
use super::sorted_ids;
use super::welcome::{WELCOME_CONFIRMATIONS, Welcomes};
use crate::ids::{Epoch, MemberId, ViewId};
use crate::limits::MEMBERS_MAX;
use crate::rand::{GOLDEN, mix};
use crate::view::MemberInfo;

/// A member behind asks for a newer view again after this long without it, ms.
pub const VIEW_REASK_MS: u64 = 500;

/// Most alerts in one `Alerts` message; a longer batch is split.
pub const ALERTS_PER_MESSAGE_MAX: usize = 1024;

/// Most members a member behind asks for their view in one [`VIEW_REASK_MS`].
pub const VIEW_ASKS_MAX: usize = 2 * WELCOME_CONFIRMATIONS;

/// What happened, for the driver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A new view is installed.
    ViewInstalled {
        /// Its epoch.
        epoch: Epoch,
        /// The hash of its members with their capacities and labels ([`ViewChange::id`]).
        id: ViewId,
        /// Its members, and who joined and left.
        view: ViewChange,
    },
    /// This member is not in the new view: it was evicted and stops.
    Evicted(Epoch),
    /// This member can no longer tell that its view is current: it hears from no more than
    /// half of its monitoring peers, or its tally vouches for no more than half of the view.
    QuorumLost,
    /// It can again.
    QuorumRegained,
}

/// What a member keeps on stable storage to stay a Paxos acceptor across a restart: the
/// newest view it installed, or learned it is not in, and what it promised and accepted for
/// the change after it. An acceptor that forgot them after a restart could accept against a
/// promise, or hide a vote a coordinator must count, so a restarted member either resumes
/// with them ([`MemberNode::resume`]) or joins again into a newer view only.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Durable {
    /// The view's epoch.
    pub epoch: Epoch,
    /// The view this member last installed (when `evicted`, the one before `epoch`).
    pub view: ViewChange,
    /// The view `epoch` does not contain this member: it may only join again.
    pub evicted: bool,
    /// The highest rank it promised in `epoch` ([`Rank::FAST`] once it voted).
    pub promised: Rank,
    /// What it accepted there: its fast vote, or a classic acceptance.
    pub accepted: Accepted,
    /// The members it reported down in `epoch` (sorted): after a restart its tally is empty,
    /// and these still count as reported when it is asked to accept a cut removing them
    /// (its alerts may have been the only ones about them).
    pub reported: Vec<MemberId>,
    /// Its own acceptances in the epoch before `epoch` (its fast vote, its classic
    /// acceptance), to send again to members still there: a decision only this member
    /// learned, before a restart, reaches the others only through them.
    pub previous: Vec<Message>,
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
    /// The settings as given (the monitor runs them as fits the view:
    /// [`MonitorConfig::for_view`]).
    config: MonitorConfig,
    evicted: bool,
    /// This member leaves: when it next tells the members so (it answers no probe and rebuts
    /// no accusation meanwhile).
    leaving_at: Option<u64>,
    /// Joiners this member vouched for in this view: welcomed once a view admits them.
    /// With what each told it it brings.
    vouched: BTreeMap<MemberId, MemberInfo>,
    /// Welcomes to views newer than this one, waiting for confirmation.
    welcomes: Welcomes,
    /// This member's own acceptances in the previous epoch (its fast vote, its classic
    /// acceptance), sent again to a member of this view still speaking in that epoch: a member
    /// that missed them cannot learn the decision from one welcome alone.
    previous: (Epoch, Vec<Message>),
    /// When each member was last sent `previous`.
    previous_sent: BTreeMap<MemberId, u64>,
    /// The newest alert this member sent in this epoch about each (subject, ring) it observes.
    sent_alerts: BTreeMap<(MemberId, usize), Alert>,
    /// The members it reported down in this epoch (kept across a restart: [`Durable`]).
    reported: BTreeSet<MemberId>,
    /// The newest epoch this member asked peers' views for, when, and whom.
    asked_epoch: Epoch,
    asked_at_ms: u64,
    asked: BTreeSet<MemberId>,
    /// Monitoring peers (subjects and observers) and when each was last heard from, ms.
    contact: BTreeMap<MemberId, u64>,
    /// Whether the last tally vouched for no more than half of the view.
    vouched_minority: bool,
    quorum: bool,
    /// Messages refused because their content did not fit their authenticated sender or the
    /// view (forged alerts, proposals from a non-coordinator, invalid cuts, unconfirmable
    /// welcomes count once each).
    refused: u64,
    transmits: VecDeque<(MemberId, Envelope)>,
    events: VecDeque<Event>,
    /// What [`MemberNode::poll_persist`] last handed out: epoch, evicted, promise, acceptance,
    /// how many members it had reported down (a set that only grows within an epoch).
    persisted: Option<(Epoch, bool, Rank, Accepted, usize)>,
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
        let mut node = Self {
            me,
            epoch,
            detector: detector(&rings, &config),
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
            leaving_at: None,
            vouched: BTreeMap::new(),
            welcomes: Welcomes::default(),
            previous: (Epoch(0), Vec::new()),
            previous_sent: BTreeMap::new(),
            sent_alerts: BTreeMap::new(),
            reported: BTreeSet::new(),
            asked_epoch: epoch,
            asked_at_ms: 0,
            asked: BTreeSet::new(),
            contact: BTreeMap::new(),
            vouched_minority: false,
            quorum: true,
            refused: 0,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            persisted: None,
        };
        node.reset_contact(now_ms);
        node
    }

    /// `me` restarted and takes up its place in the view it kept on stable storage, with what
    /// it promised and accepted there, from `now_ms`. `None` when it cannot: it was evicted,
    /// or the view is not valid or does not contain it (it must join again, into a newer
    /// view). Its monitoring, tally and the others' votes start empty: the members send their
    /// standing alerts and acceptances again while nothing is decided, and a member that moved
    /// on shows it the newer view, which it installs as any member behind does (learning it
    /// was removed, if it was).
    pub fn resume(
        me: MemberId,
        durable: Durable,
        config: MonitorConfig,
        now_ms: u64,
    ) -> Option<Self> {
        let Durable { epoch, view, evicted, promised, accepted, reported, previous } = durable;
        if evicted || !view.is_valid() || view.members.binary_search(&me).is_err() {
            return None;
        }
        let mut node = Self::new(me, epoch, view, config, now_ms);
        let members = node.view.members.clone();
        node.classic = Classic::restored(members, me, promised, accepted.clone());
        node.reported = reported.into_iter().collect();
        node.previous = (Epoch(epoch.0.saturating_sub(1)), previous);
        node.persisted = Some((epoch, false, promised, accepted.clone(), node.reported.len()));
        if let Some((Rank::FAST, cut)) = accepted {
            // Its fast vote counts as it did before (in a view of one, it decides).
            match node.round.vote(epoch, me, cut) {
                Ok(Some(decided)) => {
                    let decided = decided.clone();
                    node.decide(now_ms, decided);
                }
                Ok(None) => node.arm_classic(now_ms, false),
                Err(_) => {}
            }
        }
        Some(node)
    }

    /// What must be on stable storage before anything this member says next leaves: its view
    /// and acceptor state, when they changed since the last call. Call it after every
    /// `handle_*`, and write what it returns (durably) before sending what
    /// [`MemberNode::poll_transmit`] gives: a promise, vote or acceptance must not be seen
    /// by anyone before it would survive a crash.
    pub fn poll_persist(&mut self) -> Option<Durable> {
        let (promised, accepted) = (self.classic.promised(), self.classic.accepted());
        let reported = self.reported.len();
        let same = self.persisted.as_ref().is_some_and(|(e, ev, p, a, r)| {
            (*e, *ev, *p, *r) == (self.epoch, self.evicted, promised, reported)
                && a.as_ref() == accepted
        });
        if same {
            return None;
        }
        let accepted = accepted.cloned();
        self.persisted = Some((self.epoch, self.evicted, promised, accepted.clone(), reported));
        Some(Durable {
            epoch: self.epoch,
            view: self.view.clone(),
            evicted: self.evicted,
            promised,
            accepted,
            reported: self.reported.iter().copied().collect(),
            previous: self.previous.1.clone(),
        })
    }

    /// This node's id.
    pub fn me(&self) -> MemberId {
        self.me
    }

    /// The installed view: epoch and members.
    pub fn view(&self) -> (Epoch, &[MemberId]) {
        (self.epoch, &self.view.members)
    }

    /// The installed view whole, as a joiner or a member catching up learns it.
    pub fn view_change(&self) -> &ViewChange {
        &self.view
    }

    /// Whether this member can tell that its view is current (see the module docs). Layers
    /// above act on the view only while it does.
    pub fn has_quorum(&self) -> bool {
        self.quorum
    }

    /// Messages refused so far because their content did not fit their sender or the view.
    pub fn refused(&self) -> u64 {
        self.refused
    }

    /// A message arrived from `from`, as the authenticated connection names it.
    pub fn handle_message(&mut self, now_ms: u64, from: MemberId, envelope: Envelope) {
        if self.evicted {
            return;
        }
        if self.handle_outside_epoch(now_ms, from, &envelope) {
            return;
        }
        if let Some(heard) = self.contact.get_mut(&from) {
            *heard = now_ms;
        }
        let member = self.is_member(from);
        match envelope.message {
            Message::Probe if member && self.leaving_at.is_none() => {
                self.send(from, Message::Ack(self.monitor.incarnation()))
            }
            Message::Leave if member => self.monitor.handle_leave(now_ms, from),
            Message::Ack(inc) => self.monitor.handle_ack(now_ms, from, inc),
            Message::Accuse { subject, incarnation } if member => {
                self.monitor.handle_accusation(subject, incarnation)
            }
            Message::Rebut(inc) => self.monitor.handle_rebut(now_ms, from, inc),
            Message::Suspect(subject) if member => self.monitor.handle_suspect(now_ms, subject),
            Message::Alerts { alerts, joiners } => {
                // Only the observer an alert names may send it, with one story per joiner.
                if alerts.len() <= ALERTS_PER_MESSAGE_MAX
                    && joiners.len() <= alerts.len()
                    && alerts.iter().all(|a| a.observer == from)
                    && joiners.windows(2).all(|w| w[0].0 < w[1].0)
                {
                    let joiners: BTreeMap<MemberId, MemberInfo> = joiners.into_iter().collect();
                    self.alerts(now_ms, &alerts, &joiners);
                } else {
                    self.refused += 1;
                }
            }
            Message::Vote(cut) if self.valid(&cut) => self.vote(now_ms, from, cut),
            Message::Prepare(rank) if self.classic.coordinator_of(rank) == Some(from) => {
                if let Some(accepted) = self.classic.handle_prepare(rank) {
                    self.send(from, Message::Promise { rank, accepted });
                    // Someone coordinates: give it time before trying ourselves.
                    self.arm_classic(now_ms, true);
                }
            }
            Message::Promise { rank, accepted }
                if accepted.as_ref().is_none_or(|(_, c)| self.valid(c)) =>
            {
                if let Some(cut) = self.classic.handle_promise(from, rank, accepted) {
                    self.broadcast(Message::Accept { rank, cut: cut.clone() });
                    self.accept(now_ms, rank, cut);
                }
            }
            Message::Accept { rank, cut }
                if self.classic.coordinator_of(rank) == Some(from) && self.valid(&cut) =>
            {
                self.accept(now_ms, rank, cut);
            }
            Message::Accepted { rank, cut } if self.valid(&cut) => {
                self.learn(now_ms, from, rank, cut)
            }
            Message::Probe
            | Message::Leave
            | Message::Accuse { .. }
            | Message::Suspect(_)
            | Message::Vote(_)
            | Message::Prepare(_)
            | Message::Promise { .. }
            | Message::Accept { .. }
            | Message::Accepted { .. } => self.refused += 1,
            Message::JoinRequest
            | Message::JoinObservers(_)
            | Message::JoinAsk { .. }
            | Message::Welcome(_)
            | Message::ViewRequest
            | Message::Stale => {}
        }
        self.drain_monitor(now_ms);
    }

    /// Handles what does not belong to this epoch's protocol: joins, view requests and
    /// welcomes, and messages for another epoch. True when the message was handled here.
    fn handle_outside_epoch(&mut self, now_ms: u64, from: MemberId, envelope: &Envelope) -> bool {
        // Joiners have no view yet: their messages carry no epoch worth checking.
        match &envelope.message {
            Message::JoinRequest => {
                if self.is_member(from) {
                    // A joiner that got in but is still confirming its first view.
                    self.send(from, Message::Welcome(self.view.clone()));
                } else {
                    self.send(from, Message::JoinObservers(self.observers_for(from)));
                }
            }
            Message::JoinAsk { ring, info } => self.join_ask(now_ms, from, *ring, info),
            Message::ViewRequest => {
                if self.is_member(from) || envelope.epoch < self.epoch {
                    self.send(from, Message::Welcome(self.view.clone()));
                }
            }
            Message::Welcome(view) => self.welcome(now_ms, from, envelope.epoch, view.clone()),
            _ if envelope.epoch > self.epoch => self.ask_view(now_ms, from, envelope.epoch),
            _ if envelope.epoch < self.epoch => {
                // A node removed while it could not hear (partitioned, paused) still talks in
                // its old view: show it the newer epoch, so it asks for the view and learns.
                if !self.is_member(from) {
                    self.send(from, Message::Stale);
                } else if envelope.epoch == self.previous.0 {
                    self.accept_decided(from, envelope);
                    self.resend_previous(now_ms, from);
                }
            }
            _ => return false,
        }
        true
    }

    /// A joiner asks this member to vouch for it on `ring`.
    fn join_ask(&mut self, now_ms: u64, from: MemberId, ring: usize, info: &MemberInfo) {
        if self.is_member(from) {
            // Admitted already: a confirmation of its first view.
            self.send(from, Message::Welcome(self.view.clone()));
            return;
        }
        // Only an expected observer of a non-member vouches, for a bounded number of joiners.
        let alert = Alert {
            observer: self.me,
            subject: from,
            ring,
            change: Change::Join,
            incarnation: Incarnation(0),
        };
        let room = self.vouched.len() < JOINERS_PENDING_MAX || self.vouched.contains_key(&from);
        // A joiner has one story: the first one it told this member is the one vouched for.
        let same = self.vouched.get(&from).is_none_or(|told| told == info);
        if fits(&self.rings, &alert).is_ok() && room && same && info.check().is_ok() {
            self.queue_alert(now_ms, alert);
            self.vouched.insert(from, info.clone());
        } else if !self.vouched.contains_key(&from) {
            // The view changed since the joiner was told whom to ask: tell it again rather
            // than let it wait for its retry.
            self.send(from, Message::JoinObservers(self.observers_for(from)));
        }
    }

    /// A member of a newer view (`epoch`) spoke: ask it for its view, and a few others as they
    /// speak, so that enough of them confirm it.
    fn ask_view(&mut self, now_ms: u64, from: MemberId, epoch: Epoch) {
        if epoch > self.asked_epoch || now_ms >= self.asked_at_ms + VIEW_REASK_MS {
            self.asked_epoch = self.asked_epoch.max(epoch);
            self.asked_at_ms = now_ms;
            self.asked.clear();
        }
        if self.asked.len() < VIEW_ASKS_MAX && self.asked.insert(from) {
            self.send(from, Message::ViewRequest);
        }
    }

    /// `to`, a member of this view, still speaks in the previous epoch: it may have missed the
    /// acceptances that decided this view, and a welcome from this member alone does not
    /// convince it. Sends it this member's own acceptances of that epoch again (at most once
    /// per [`VIEW_REASK_MS`]), for its learner to count as it would have: duplicates of what
    /// this member sent then, so nothing a correct member could not have received.
    fn resend_previous(&mut self, now_ms: u64, to: MemberId) {
        if self.previous.1.is_empty()
            || self.previous_sent.get(&to).is_some_and(|t| now_ms < t + VIEW_REASK_MS)
        {
            return;
        }
        self.previous_sent.insert(to, now_ms);
        let epoch = self.previous.0;
        for message in self.previous.1.clone() {
            self.transmits.push_back((to, Envelope { epoch, message }));
        }
    }

    /// A coordinator of the previous epoch proposes the cut that made this view: accept it
    /// there, at that rank, and tell the coordinator. The cut was chosen, so every proposal
    /// at a later rank is that cut, and accepting it again cannot choose anything else. It
    /// lets members that missed the decision reach it without this member's old
    /// acceptances, which they may no longer count (they keep only the newest ranks, and a
    /// member that restarted after deciding may be the only one that learned it).
    fn accept_decided(&mut self, from: MemberId, envelope: &Envelope) {
        let Message::Accept { rank, cut } = &envelope.message else { return };
        let made = cut.down == self.view.left
            && cut.join == self.view.joined
            && cut.join.iter().zip(&cut.info).all(|(j, i)| self.view.info_of(*j) == Some(i));
        if made {
            let message = Message::Accepted { rank: *rank, cut: cut.clone() };
            self.transmits.push_back((from, Envelope { epoch: envelope.epoch, message }));
        }
    }

    /// This member's own acceptances in this epoch: its fast vote, and its acceptance at a
    /// classic rank.
    fn own_acceptances(&self) -> Vec<Message> {
        let vote = self.round.vote_of(self.me).map(|cut| Message::Vote(cut.clone()));
        let accepted = self.classic.accepted().filter(|(rank, _)| rank.round >= 2);
        let accepted =
            accepted.map(|(rank, cut)| Message::Accepted { rank: *rank, cut: cut.clone() });
        vote.into_iter().chain(accepted).collect()
    }

    /// A welcome to a newer view: installed once enough members confirm it.
    fn welcome(&mut self, now_ms: u64, from: MemberId, epoch: Epoch, view: ViewChange) {
        if epoch <= self.epoch {
            return;
        }
        if !self.is_member(from) || from == self.me {
            self.refused += 1;
            return;
        }
        let trusted = self.view.members.len() - 1;
        if let Some((epoch, view)) = self.welcomes.offer(from, epoch, view, trusted) {
            self.install(now_ms, epoch, view);
        }
    }

    /// This member leaves the view (its process is stopping): it tells every member, again
    /// every [`VIEW_REASK_MS`] until a view without it is installed, and from now on answers
    /// no probe and rebuts no accusation, so its observers alert at once and the next view
    /// removes it without waiting for the silence that accuses. The driver waits for
    /// [`Event::Evicted`] (or gives up after a while: with no quorum nothing is decided).
    pub fn leave(&mut self, now_ms: u64) {
        if !self.evicted && self.leaving_at.is_none() {
            self.leaving_at = Some(now_ms);
            self.handle_timeout(now_ms);
        }
    }

    /// Whether [`MemberNode::leave`] was called.
    pub fn is_leaving(&self) -> bool {
        self.leaving_at.is_some()
    }

    /// Time passed.
    pub fn handle_timeout(&mut self, now_ms: u64) {
        if self.evicted {
            return;
        }
        if self.leaving_at.is_some_and(|t| t <= now_ms) {
            self.leaving_at = Some(now_ms + VIEW_REASK_MS);
            self.broadcast(Message::Leave);
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
            self.coordinate(now_ms);
        }
        self.update_quorum(now_ms);
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
        let propose = self.propose_at.map(|p| p.0);
        [self.monitor.poll_timeout(), self.classic_at, self.flush_at, propose, self.leaving_at]
            .into_iter()
            .flatten()
            .min()
    }

    /// `joiner`'s expected observers in this view, with their addresses.
    fn observers_for(&self, joiner: MemberId) -> Vec<(usize, MemberId, String)> {
        let addr = |m| self.view.info_of(m).map(|i| i.addr.clone()).unwrap_or_default();
        let observers = self.rings.expected_observers_of(joiner).into_iter();
        observers.map(|(ring, m)| (ring, m, addr(m))).collect()
    }

    fn is_member(&self, m: MemberId) -> bool {
        self.view.members.binary_search(&m).is_ok()
    }

    /// Whether `cut` can follow this view: removes members, admits non-members, each list
    /// sorted and unique, not empty, and leaves more than half of the view.
    fn valid(&self, cut: &Cut) -> bool {
        (!cut.down.is_empty() || !cut.join.is_empty())
            && self.view.members.len() + cut.join.len() <= MEMBERS_MAX
            && sorted_ids(&cut.down)
            && sorted_ids(&cut.join)
            && cut.down.len() * 2 < self.view.members.len()
            && cut.down.iter().all(|m| self.is_member(*m))
            && cut.join.iter().all(|m| !self.is_member(*m))
            && cut.info.len() == cut.join.len()
            && cut.info.iter().all(|i| i.check().is_ok())
    }

    /// Whether this member may vote for or accept `cut`: valid, it stays, and either it
    /// accepted this very cut before in this epoch (a restarted member resumes with its vote
    /// and an empty tally: the vote is its evidence, and without it a value bound to that
    /// vote could never gather a majority) or every subject was reported to its own tally in
    /// this view (a coordinator cannot remove or admit anyone whom no observer reported) and
    /// every node admitted brings what its observers relayed.
    fn acceptable(&self, cut: &Cut) -> bool {
        let own = self.classic.accepted().is_some_and(|(_, c)| c == cut);
        self.valid(cut)
            && cut.down.binary_search(&self.me).is_err()
            && (own
                || cut.down.iter().all(|s| self.detector.reported(*s) || self.reported.contains(s))
                    && cut
                        .join
                        .iter()
                        .zip(&cut.info)
                        .all(|(s, i)| self.detector.joiner_info(*s) == Some(i)))
    }

    /// The cut this member's tally supports now, if it may propose it; notes whether the tally
    /// vouches for no more than half of the view, and when to look again if it is blocked.
    fn candidate(&mut self, now_ms: u64) -> Option<Cut> {
        self.vouched_minority =
            self.detector.vouched(&self.rings, self.me) * 2 <= self.view.members.len();
        match self.detector.tally(&self.rings, now_ms) {
            Tally::Ready(cut) => self.acceptable(&cut).then_some(cut),
            Tally::Blocked(until) => {
                let latest = self.propose_at.map_or(until, |(_, l)| l.max(until));
                self.propose_at = Some((until.min(latest), latest));
                None
            }
            Tally::Empty => None,
        }
    }

    /// Coordinates a classic round: with the cut this member's tally supports, or to learn a
    /// value the fast round may have decided (when it voted). Tries again later only while it
    /// has a cut of its own to propose.
    fn coordinate(&mut self, now_ms: u64) {
        self.classic_at = None;
        // Nothing decided yet: the acceptances and alerts this member sent may have been
        // lost, and nothing else sends them again.
        for message in self.own_acceptances() {
            self.broadcast(message);
        }
        let standing = self.standing_alerts(now_ms);
        self.broadcast_alerts(&standing);
        let candidate = self.candidate(now_ms);
        if candidate.is_none() && !self.classic.has_accepted() {
            return;
        }
        let retry = candidate.is_some();
        let (rank, proposal) = self.classic.start(candidate);
        self.broadcast(Message::Prepare(rank));
        if retry {
            self.arm_classic(now_ms, true);
        }
        if let Some(cut) = proposal {
            self.broadcast(Message::Accept { rank, cut: cut.clone() });
            self.accept(now_ms, rank, cut);
        }
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

    /// A classic proposal: accept it if the promises allow and this member stays, and tell
    /// everyone.
    fn accept(&mut self, now_ms: u64, rank: Rank, cut: Cut) {
        if self.acceptable(&cut) && self.classic.handle_accept(rank, &cut) {
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
                // A member that leaves lets its observers' alerts stand.
                MonitorOutput::Rebut(_) if self.leaving_at.is_some() => {}
                MonitorOutput::Rebut(inc) => {
                    let observers: BTreeSet<MemberId> =
                        self.rings.observers_of(self.me).into_iter().map(|(_, o)| o).collect();
                    for o in observers {
                        self.send(o, Message::Rebut(inc));
                    }
                }
                MonitorOutput::Alert(alert) => self.queue_alert(now_ms, alert),
                MonitorOutput::Suspect(subject) => {
                    let observers: BTreeSet<MemberId> =
                        self.rings.observers_of(subject).into_iter().map(|(_, o)| o).collect();
                    let me = self.me;
                    for o in observers.into_iter().filter(|o| *o != me) {
                        self.send(o, Message::Suspect(subject));
                    }
                }
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
        self.broadcast_alerts(&pending);
        for alert in pending.iter().filter(|a| a.change != Change::Join) {
            self.sent_alerts.insert((alert.subject, alert.ring), *alert);
            if alert.change == Change::Down {
                self.reported.insert(alert.subject);
            }
        }
        let vouched = self.vouched.clone();
        self.alerts(now_ms, &pending, &vouched);
    }

    /// Sends `alerts` (this member's own) to every member, with what each joiner brings.
    fn broadcast_alerts(&mut self, alerts: &[Alert]) {
        for chunk in alerts.chunks(ALERTS_PER_MESSAGE_MAX) {
            let joiners: BTreeMap<MemberId, MemberInfo> = chunk
                .iter()
                .filter_map(|a| Some((a.subject, self.vouched.get(&a.subject)?.clone())))
                .collect();
            let alerts = chunk.to_vec();
            self.broadcast(Message::Alerts { alerts, joiners: joiners.into_iter().collect() });
        }
    }

    /// This member's `Down` alerts that still stand: not withdrawn, about a subject it has not
    /// heard from for the silence that accuses. An alert lost on the way leaves a member
    /// without the report it needs to accept a cut, so these go again while nothing is
    /// decided; an alert whose subject answers again (a healed partition) does not, or it
    /// would hand the other side reports that its own observers never had.
    fn standing_alerts(&self, now_ms: u64) -> Vec<Alert> {
        let silence = self.monitor.config().contact_ms();
        let silent =
            |s: &MemberId| self.contact.get(s).is_none_or(|&t| now_ms.saturating_sub(t) >= silence);
        let standing = self.sent_alerts.values().filter(|a| a.change == Change::Down);
        standing.filter(|a| silent(&a.subject)).copied().collect()
    }

    /// Counts a batch of alerts, then proposes a cut once the tally is quiet.
    fn alerts(&mut self, now_ms: u64, alerts: &[Alert], joiners: &BTreeMap<MemberId, MemberInfo>) {
        // Alerts that do not fit the view are dropped: a member cannot make another look dead.
        let mut changed = false;
        for &alert in alerts {
            let info = joiners.get(&alert.subject).filter(|_| alert.change == Change::Join);
            changed |= self.detector.record(&self.rings, alert, info, now_ms).unwrap_or(false);
        }
        // Propose once the tally has been quiet for a while (or has kept changing for too
        // long): subjects that failed together then land in one cut.
        if changed {
            let quiet = self.config.cut_quiet_ms;
            let latest = self.propose_at.map_or(now_ms + 5 * quiet, |(_, l)| l);
            self.propose_at = Some(((now_ms + quiet).min(latest), latest));
        }
    }

    /// Votes for the cut the tally supports, if there is one: in the fast round if this member
    /// has not voted yet, otherwise through a classic round.
    fn propose(&mut self, now_ms: u64) {
        let Some(cut) = self.candidate(now_ms) else { return };
        // One fast vote per view, and none after promising a classic coordinator.
        if self.classic.vote_fast(&cut) {
            self.broadcast(Message::Vote(cut.clone()));
            self.vote(now_ms, self.me, cut);
        } else {
            self.arm_classic(now_ms, false);
        }
    }

    fn vote(&mut self, now_ms: u64, from: MemberId, cut: Cut) {
        let decided = match self.round.vote(self.epoch, from, cut) {
            Ok(Some(cut)) => cut.clone(),
            Ok(None) => {
                self.arm_classic(now_ms, false);
                return;
            }
            Err(_) => {
                self.refused += 1;
                return;
            }
        };
        self.decide(now_ms, decided);
    }

    /// `decided` is the agreed cut: install the next view.
    fn decide(&mut self, now_ms: u64, decided: Cut) {
        // Agreement only decides what members accepted, and members accept only valid cuts;
        // checked again here all the same.
        if !self.valid(&decided) {
            self.refused += 1;
            return;
        }
        let mut members: Vec<(MemberId, MemberInfo)> = self
            .view
            .members
            .iter()
            .zip(&self.view.info)
            .filter(|(m, _)| decided.down.binary_search(m).is_err())
            .map(|(m, i)| (*m, i.clone()))
            .collect();
        members.extend(decided.join.iter().copied().zip(decided.info.iter().cloned()));
        members.sort_unstable_by_key(|(m, _)| *m);
        let (members, info) = members.into_iter().unzip();
        let (joined, left) = (decided.join.clone(), decided.down.clone());
        let epoch = Epoch(self.epoch.0 + 1);
        let vouched = std::mem::take(&mut self.vouched);
        if !self.install(now_ms, epoch, ViewChange { members, info, joined, left }) {
            return;
        }
        // The joiners this member vouched for and the view admitted learn their first view;
        // the others learn whom to ask in the new view, rather than wait for their retry.
        // Its first followers welcome each joiner too: a joiner installs its first view only
        // once two members sent it, and its observers may all be one member.
        for &joiner in &decided.join {
            let follower = self.rings.followers(joiner, WELCOME_CONFIRMATIONS).contains(&self.me);
            if follower && !vouched.contains_key(&joiner) {
                self.send(joiner, Message::Welcome(self.view.clone()));
            }
        }
        for joiner in vouched.into_keys() {
            if decided.join.binary_search(&joiner).is_ok() {
                self.send(joiner, Message::Welcome(self.view.clone()));
            } else {
                let observers = self.observers_for(joiner);
                self.send(joiner, Message::JoinObservers(observers));
            }
        }
    }

    /// Installs the view `epoch` of `members`; false when this member is not in it (evicted).
    fn install(&mut self, now_ms: u64, epoch: Epoch, view: ViewChange) -> bool {
        self.previous = (self.epoch, self.own_acceptances());
        self.previous_sent.clear();
        self.sent_alerts.clear();
        self.reported.clear();
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
        self.detector = detector(&self.rings, &self.config);
        self.round = FastRound::new(self.epoch, self.view.members.clone());
        self.classic = Classic::new(self.view.members.clone(), self.me);
        self.classic_at = None;
        self.propose_at = None;
        self.pending.clear();
        self.flush_at = None;
        self.vouched.clear();
        self.welcomes.clear();
        self.vouched_minority = false;
        self.reset_contact(now_ms);
        let (id, view) = (self.view.id(), self.view.clone());
        self.events.push_back(Event::ViewInstalled { epoch: self.epoch, id, view });
        self.update_quorum(now_ms);
        true
    }

    /// The monitoring peers of the installed view, each heard from now.
    fn reset_contact(&mut self, now_ms: u64) {
        let peers =
            self.rings.subjects_of(self.me).into_iter().chain(self.rings.observers_of(self.me));
        self.contact = peers.map(|(_, m)| (m, now_ms)).filter(|(m, _)| *m != self.me).collect();
    }

    /// Re-evaluates [`MemberNode::has_quorum`] and says when it changes.
    fn update_quorum(&mut self, now_ms: u64) {
        let window = self.monitor.config().contact_ms();
        let heard = self.contact.values().filter(|&&t| now_ms.saturating_sub(t) < window).count();
        let quorum = heard * 2 > self.contact.len() || self.contact.is_empty();
        let quorum = quorum && !self.vouched_minority;
        if quorum != self.quorum {
            self.quorum = quorum;
            self.events.push_back(if quorum { Event::QuorumRegained } else { Event::QuorumLost });
        }
    }

    fn send(&mut self, to: MemberId, message: Message) {
        let envelope = Envelope { epoch: self.epoch, message };
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

/// A new tally for the view of `rings`.
fn detector(rings: &Rings, config: &MonitorConfig) -> CutDetector {
    let timing =
        Timing { unstable_ms_max: config.unstable_ms_max, join_ms_max: config.join_ms_max };
    CutDetector::new(Watermarks::for_rings(rings.len()), timing)
}

#[cfg(test)]
#[path = "node_tests.rs"]
mod tests;
