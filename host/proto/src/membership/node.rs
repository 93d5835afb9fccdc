//! One member's membership protocol, tying monitoring, cut detection and fast-path agreement
//! together: `handle_message(now, …)` and `handle_timeout(now)` in; `poll_transmit`,
//! `poll_event` and `poll_timeout` out. Poll all three after each `handle_*` call.
//!
//! Joins go through a seed ([`super::join::Joiner`]). A member that sees a newer epoch asks the
//! sender for its view and installs it (views are agreed, so any member's copy is the one).
//! In progress: no classic consensus fallback (a fast round that gets stuck stays stuck).
//! Other messages for another epoch are dropped.

use std::collections::VecDeque;

use super::cut::{Alert, Change, Cut, CutDetector, Watermarks};
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
    /// A node outside the view asks a member (its seed) how to join.
    JoinRequest,
    /// The seed's answer: the joiner's expected observers, `(ring, member)`.
    JoinObservers(Vec<(usize, MemberId)>),
    /// The joiner asks one of its expected observers to vouch for it on this ring.
    JoinAsk(usize),
    /// The view that admitted the joiner, from a member that vouched for it, or the current
    /// view for a member that asked (the envelope's epoch is the view's).
    Welcome(Vec<MemberId>),
    /// The sender saw a newer epoch from the receiver: send me your view.
    ViewRequest,
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
    /// Joiners this member vouched for in this view: welcomed once a view admits them.
    vouched: Vec<MemberId>,
    /// The newest epoch this member asked a peer's view for (one request per epoch).
    asked_epoch: Epoch,
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
            vouched: Vec::new(),
            asked_epoch: epoch,
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
                let alert = Alert { observer: self.me, subject: from, ring, change: Change::Join };
                // Only an expected observer of a non-member vouches (the detector checks).
                if self.alert(now_ms, alert) {
                    self.broadcast(Message::Alert(alert));
                    if !self.vouched.contains(&from) {
                        self.vouched.push(from);
                    }
                }
                return;
            }
            Message::ViewRequest => {
                if self.members.binary_search(&from).is_ok() || envelope.epoch < self.epoch {
                    self.send(from, Message::Welcome(self.members.clone()));
                }
                return;
            }
            Message::Welcome(members) => {
                // A member that fell behind catches up: every member installs the same view
                // for an epoch, so any member's copy is the agreed one.
                if envelope.epoch > self.epoch && members.windows(2).all(|w| w[0] < w[1]) {
                    self.install(now_ms, envelope.epoch, members);
                }
                return;
            }
            _ if envelope.epoch > self.epoch => {
                if self.asked_epoch < envelope.epoch {
                    self.asked_epoch = envelope.epoch;
                    self.send(from, Message::ViewRequest);
                }
                return;
            }
            _ if envelope.epoch != self.epoch => return,
            _ => {}
        }
        match envelope.message {
            Message::Probe => self.send(from, Message::Ack(self.monitor.incarnation())),
            Message::Ack(inc) => self.monitor.handle_ack(now_ms, from, inc),
            Message::Accuse { subject, incarnation } => {
                self.monitor.handle_accusation(subject, incarnation)
            }
            Message::Rebut(inc) => self.monitor.handle_rebut(now_ms, from, inc),
            Message::Alert(alert) => {
                self.alert(now_ms, alert);
            }
            Message::Vote(cut) => self.vote(now_ms, from, cut),
            Message::JoinRequest
            | Message::JoinObservers(_)
            | Message::JoinAsk(_)
            | Message::Welcome(_)
            | Message::ViewRequest => {}
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

    /// Counts `alert`; whether it fit the view.
    fn alert(&mut self, now_ms: u64, alert: Alert) -> bool {
        // Alerts that do not fit the view are dropped: a member cannot make another look dead.
        let Ok(cut) = self.detector.alert(&self.rings, alert) else { return false };
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
        true
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
        let epoch = Epoch(self.epoch.0 + 1);
        let vouched = std::mem::take(&mut self.vouched);
        if !self.install(now_ms, epoch, members) {
            return;
        }
        // The joiners this member vouched for and the view admitted learn their first view;
        // the others ask again.
        for joiner in vouched {
            if decided.join.contains(&joiner) {
                self.send(joiner, Message::Welcome(self.members.clone()));
            }
        }
    }

    /// Installs the view `epoch` of `members`; false when this member is not in it (evicted).
    fn install(&mut self, now_ms: u64, epoch: Epoch, members: Vec<MemberId>) -> bool {
        self.epoch = epoch;
        if members.binary_search(&self.me).is_err() {
            self.evicted = true;
            self.transmits.clear();
            self.events.push_back(Event::Evicted(self.epoch));
            return false;
        }
        self.members = members;
        self.rings = Rings::new(&self.members, rings_for(self.members.len()));
        self.monitor.install(&self.rings, now_ms);
        self.detector = CutDetector::new(Watermarks::for_rings(self.rings.len()));
        self.round = FastRound::new(self.epoch, self.members.clone());
        self.voted = false;
        self.vouched.clear();
        self.events
            .push_back(Event::ViewInstalled { epoch: self.epoch, members: self.members.clone() });
        true
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> Vec<MemberId> {
        vec![MemberId(11), MemberId(22), MemberId(33)]
    }

    fn node(me: MemberId) -> MemberNode {
        MemberNode::new(me, Epoch(1), ids(), MonitorConfig::default(), 0)
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
        n.handle_message(12, newer(Message::Welcome(vec![a, b])));
        assert_eq!(n.view(), (Epoch(3), &[a, b][..]));
        assert_eq!(
            n.poll_event(),
            Some(Event::ViewInstalled { epoch: Epoch(3), members: vec![a, b] })
        );
        // A stale or unsorted view is not installed.
        n.handle_message(
            13,
            Envelope { epoch: Epoch(2), from: c, message: Message::Welcome(vec![a, c]) },
        );
        n.handle_message(
            14,
            Envelope { epoch: Epoch(4), from: b, message: Message::Welcome(vec![b, a]) },
        );
        assert_eq!(n.view().0, Epoch(3));
    }

    #[test]
    fn a_member_answers_a_view_request_with_its_view() {
        let [a, b, _] = ids()[..] else { unreachable!() };
        let mut n = node(b);
        n.handle_message(5, Envelope { epoch: Epoch(1), from: a, message: Message::ViewRequest });
        assert_eq!(
            sent(&mut n),
            vec![(a, Envelope { epoch: Epoch(1), from: b, message: Message::Welcome(ids()) })]
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
        assert!(sent(&mut n).is_empty(), "no alert broadcast");
        let (ring, observer) = observers[0];
        let mut n = node(observer);
        n.handle_message(
            1,
            Envelope { epoch: Epoch(0), from: joiner, message: Message::JoinAsk(ring) },
        );
        assert!(
            sent(&mut n)
                .iter()
                .any(|(_, e)| matches!(e.message, Message::Alert(al) if al.subject == joiner))
        );
    }
}
