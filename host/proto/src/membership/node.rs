//! One member's membership protocol, tying monitoring, cut detection and fast-path agreement
//! together: `handle_message(now, …)` and `handle_timeout(now)` in; `poll_transmit`,
//! `poll_event` and `poll_timeout` out. Poll all three after each `handle_*` call.
//!
//! In progress: no classic consensus fallback (a fast round that gets stuck stays stuck), no
//! joins, and a member that falls behind a view change is not brought up to date. Messages
//! for another epoch are dropped.

use std::collections::VecDeque;

use super::cut::{Alert, Cut, CutDetector, Watermarks};
use super::fast::FastRound;
use super::monitor::{Incarnation, Monitor, MonitorConfig, MonitorOutput};
use super::rings::{Rings, rings_for};
use crate::ids::{Epoch, MemberId};

/// What members send each other.
#[derive(Clone, Debug, PartialEq, Eq)]
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
    /// An accusation stood.
    Alert(Alert),
    /// The sender proposes this cut for the next view.
    Vote(Cut),
}

/// A message with the epoch of the view it belongs to and its sender.
#[derive(Clone, Debug, PartialEq, Eq)]
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
        /// Its members, sorted.
        members: Vec<MemberId>,
    },
    /// This member is not in the new view: it was evicted and stops.
    Evicted(Epoch),
}

/// One member's protocol state.
#[derive(Clone, Debug)]
pub struct MemberNode {
    me: MemberId,
    epoch: Epoch,
    members: Vec<MemberId>,
    rings: Rings,
    monitor: Monitor,
    detector: CutDetector,
    round: FastRound,
    voted: bool,
    evicted: bool,
    transmits: VecDeque<(MemberId, Envelope)>,
    events: VecDeque<Event>,
}

impl MemberNode {
    /// `me` in the view `epoch` of `members` (sorted, unique, containing `me`), from `now_ms`.
    pub fn new(
        me: MemberId,
        epoch: Epoch,
        members: Vec<MemberId>,
        config: MonitorConfig,
        now_ms: u64,
    ) -> Self {
        assert!(members.binary_search(&me).is_ok(), "{me} is a member of its first view");
        let rings = Rings::new(&members, rings_for(members.len()));
        let monitor = Monitor::new(me, Incarnation(0), config, &rings, now_ms);
        Self {
            me,
            epoch,
            detector: CutDetector::new(Watermarks::for_rings(rings.len())),
            round: FastRound::new(epoch, members.clone()),
            members,
            rings,
            monitor,
            voted: false,
            evicted: false,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// The installed view: epoch and members.
    pub fn view(&self) -> (Epoch, &[MemberId]) {
        (self.epoch, &self.members)
    }

    /// A message arrived.
    pub fn handle_message(&mut self, now_ms: u64, envelope: Envelope) {
        if self.evicted || envelope.epoch != self.epoch {
            return;
        }
        let from = envelope.from;
        match envelope.message {
            Message::Probe => self.send(from, Message::Ack(self.monitor.incarnation())),
            Message::Ack(inc) => self.monitor.handle_ack(now_ms, from, inc),
            Message::Accuse { subject, incarnation } => {
                self.monitor.handle_accusation(subject, incarnation)
            }
            Message::Rebut(inc) => self.monitor.handle_rebut(now_ms, from, inc),
            Message::Alert(alert) => self.alert(now_ms, alert),
            Message::Vote(cut) => self.vote(now_ms, from, cut),
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
        if self.evicted { None } else { self.monitor.poll_timeout() }
    }

    fn drain_monitor(&mut self, now_ms: u64) {
        while let Some(out) = self.monitor.poll_output() {
            match out {
                MonitorOutput::Probe(to) => self.send(to, Message::Probe),
                MonitorOutput::Accuse { subject, incarnation } => {
                    self.broadcast(Message::Accuse { subject, incarnation })
                }
                MonitorOutput::Rebut(inc) => self.broadcast(Message::Rebut(inc)),
                MonitorOutput::Alert(alert) => {
                    self.broadcast(Message::Alert(alert));
                    self.alert(now_ms, alert);
                }
            }
        }
    }

    fn alert(&mut self, now_ms: u64, alert: Alert) {
        // Alerts that do not fit the view are dropped: a member cannot make another look dead.
        let Ok(cut) = self.detector.alert(&self.rings, alert) else { return };
        let cut = cut.or_else(|| {
            if self.detector.unstable().next().is_some() {
                self.detector.invalidate_failing_edges(&self.rings)
            } else {
                None
            }
        });
        if let Some(cut) = cut
            && !self.voted
        {
            self.voted = true;
            self.broadcast(Message::Vote(cut.clone()));
            self.vote(now_ms, self.me, cut);
        }
    }

    fn vote(&mut self, now_ms: u64, from: MemberId, cut: Cut) {
        let decided = match self.round.vote(self.epoch, from, cut) {
            Ok(Some(cut)) => cut.clone(),
            _ => return,
        };
        let mut members: Vec<MemberId> = self
            .members
            .iter()
            .copied()
            .filter(|m| decided.down.binary_search(m).is_err())
            .collect();
        members.extend(decided.join.iter().copied());
        members.sort_unstable();
        members.dedup();
        self.epoch = Epoch(self.epoch.0 + 1);
        if members.binary_search(&self.me).is_err() {
            self.evicted = true;
            self.transmits.clear();
            self.events.push_back(Event::Evicted(self.epoch));
            return;
        }
        self.members = members;
        self.rings = Rings::new(&self.members, rings_for(self.members.len()));
        self.monitor.install(&self.rings, now_ms);
        self.detector = CutDetector::new(Watermarks::for_rings(self.rings.len()));
        self.round = FastRound::new(self.epoch, self.members.clone());
        self.voted = false;
        self.events
            .push_back(Event::ViewInstalled { epoch: self.epoch, members: self.members.clone() });
    }

    fn send(&mut self, to: MemberId, message: Message) {
        let envelope = Envelope { epoch: self.epoch, from: self.me, message };
        self.transmits.push_back((to, envelope));
    }

    fn broadcast(&mut self, message: Message) {
        for i in 0..self.members.len() {
            let to = self.members[i];
            if to != self.me {
                self.send(to, message.clone());
            }
        }
    }
}
