//! Joining through a seed: a node outside the view asks a seed member for its expected
//! observers, asks each of them to vouch for it (each broadcasts a `Join` alert, which the cut
//! detectors count like failures), and becomes a member when they welcome it with the view that
//! admitted it. It asks again every `retry_ms` until then, each time the next of its seeds: a
//! seed that is down, or that answers from a view it has since been removed from, costs one
//! retry, not the join.
//!
//! A joiner trusts only its seeds and the observers they (or those observers) named: a list of
//! observers from anyone else is ignored, and a welcome counts only from a trusted sender that
//! is in the view it sends, confirmed by [`super::welcome::WELCOME_CONFIRMATIONS`] of them
//! ([`super::welcome`]). A seed or observer asked again after the joiner got in answers with
//! its current view, so a lost welcome costs a retry.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::node::{Envelope, Message, ViewChange};
use super::welcome::Welcomes;
use crate::ids::{Epoch, MemberId};
use crate::limits::ADDR_BYTES_MAX;
use crate::view::MemberInfo;

/// Epoch a joiner puts on its messages: it has no view yet.
pub const NO_VIEW: Epoch = Epoch(0);

/// Most seeds a joiner rotates through.
pub const SEEDS_MAX: usize = 64;

/// Most members a joiner trusts (its seeds and the observers named to it).
pub const TRUSTED_MAX: usize = 256;

/// Members an admitted but unconfirmed joiner asks for their view at each retry.
const WELCOME_ASKS: usize = 2 * super::welcome::WELCOME_CONFIRMATIONS;

/// A node on its way into the view.
#[derive(Clone, Debug)]
pub struct Joiner {
    me: MemberId,
    /// What it brings into the view.
    info: MemberInfo,
    /// Where to ask, in turn.
    seeds: Vec<MemberId>,
    /// How many requests went out: the next goes to `seeds[asked % seeds.len()]`.
    asked: usize,
    retry_ms: u64,
    next_request_ms: u64,
    admitted: Option<(Epoch, ViewChange)>,
    /// Who may name observers and welcome this joiner: its seeds and the observers named.
    trusted: BTreeSet<MemberId>,
    /// The addresses of the observers named (trusted ones only).
    addrs: BTreeMap<MemberId, String>,
    welcomes: Welcomes,
    /// The newest view whose observers were asked (answers about older views are ignored, so
    /// that several answers about one view cost one round of asks).
    asked_epoch: Option<Epoch>,
    /// The newest view this node installed in an earlier life (see [`Joiner::after`]).
    after: Epoch,
    /// The trusted members of the newest view a welcome said admitted this node, while it
    /// waits for confirmations: each retry asks some of them for their view.
    welcomed: Option<(Epoch, Vec<MemberId>)>,
    out: VecDeque<(MemberId, Envelope)>,
}

impl Joiner {
    /// `me` joining through `seeds` (members to ask, in turn; the first [`SEEDS_MAX`] are
    /// used) with `info`, asking first at `now_ms` and again every `retry_ms`.
    ///
    /// # Panics
    ///
    /// With no seeds: there would be nobody to ask.
    pub fn new(
        me: MemberId,
        info: MemberInfo,
        mut seeds: Vec<MemberId>,
        retry_ms: u64,
        now_ms: u64,
    ) -> Self {
        assert!(!seeds.is_empty(), "a joiner needs at least one seed");
        seeds.truncate(SEEDS_MAX);
        Self {
            me,
            info,
            trusted: seeds.iter().copied().collect(),
            addrs: BTreeMap::new(),
            welcomes: Welcomes::default(),
            seeds,
            asked: 0,
            retry_ms,
            next_request_ms: now_ms,
            admitted: None,
            asked_epoch: None,
            after: Epoch(0),
            welcomed: None,
            out: VecDeque::new(),
        }
    }

    /// A node that was a member up to view `epoch` (it may have voted in that view's
    /// agreement, and forgot its votes when it restarted or left) takes no view up to that
    /// epoch: it is welcomed only into a newer view, and asks only observers of a view at
    /// least that new (whose change admitting it is newer still). Welcomed back into a view
    /// it had voted in, it could vote again, differently, and a member that missed the
    /// change could form a second majority for the same epoch with it.
    pub fn after(mut self, epoch: Epoch) -> Self {
        self.after = epoch;
        self
    }

    /// A message arrived from `from`, as the authenticated connection names it.
    pub fn handle_message(&mut self, from: MemberId, envelope: Envelope) {
        if self.admitted.is_some() {
            return;
        }
        // A view may have admitted this node before it has the welcomes to confirm it: its
        // observers probe it meanwhile, and silence would get it removed again (one of 21
        // nodes joining through one seed was, in 12 of 200 seeds). It answers in the probe's
        // epoch (a member drops a message from an older one); an answer says only that it is
        // alive.
        if envelope.message == Message::Probe {
            let ack = Message::Ack(super::monitor::Incarnation(0));
            self.out.push_back((from, Envelope { epoch: envelope.epoch, message: ack }));
            return;
        }
        if !self.trusted.contains(&from) {
            return;
        }
        match envelope.message {
            Message::JoinObservers(observers)
                if observers.len() <= super::rings::RINGS_MAX
                    && envelope.epoch >= self.after
                    && self.asked_epoch.is_none_or(|e| e < envelope.epoch) =>
            {
                self.asked_epoch = Some(envelope.epoch);
                for (ring, observer, addr) in observers {
                    if self.trusted.len() < TRUSTED_MAX {
                        self.trusted.insert(observer);
                    }
                    if self.trusted.contains(&observer) && addr.len() <= ADDR_BYTES_MAX {
                        self.addrs.insert(observer, addr);
                    }
                    let info = self.info.clone();
                    self.send(observer, Message::JoinAsk { ring, info });
                }
            }
            Message::Welcome(view)
                if envelope.epoch > self.after && view.members.binary_search(&self.me).is_ok() =>
            {
                if self.welcomed.as_ref().is_none_or(|(e, _)| *e < envelope.epoch) {
                    let members = view.members.iter().copied();
                    let asked = members.filter(|m| self.trusted.contains(m) && *m != self.me);
                    self.welcomed = Some((envelope.epoch, asked.collect()));
                }
                let trusted = self.trusted.len();
                self.admitted = self.welcomes.offer(from, envelope.epoch, view, trusted);
            }
            _ => {}
        }
    }

    /// Time passed: ask the seed (again) if not admitted yet.
    pub fn handle_timeout(&mut self, now_ms: u64) {
        if self.admitted.is_none() && now_ms >= self.next_request_ms {
            self.next_request_ms = now_ms + self.retry_ms;
            // A retry asks the observers of whatever view the seed has now, even the same one.
            self.asked_epoch = None;
            let seed = self.seeds[self.asked % self.seeds.len()];
            self.asked += 1;
            self.send(seed, Message::JoinRequest);
            // Admitted, as far as one welcome says, but not confirmed: more views may have
            // followed, so welcomes from different members name different epochs and the
            // seed's alone never confirms. Members asked for their view answer with their
            // current one, and most members are at the same epoch.
            if let Some((_, members)) = &self.welcomed {
                let n = members.len();
                let asked: Vec<MemberId> = (0..n.min(WELCOME_ASKS))
                    .map(|i| members[(self.asked * WELCOME_ASKS + i) % n])
                    .filter(|m| *m != seed)
                    .collect();
                for m in asked {
                    self.send(m, Message::ViewRequest);
                }
            }
        }
    }

    /// The view that admitted this node, once one did: build its
    /// [`MemberNode`](super::node::MemberNode) from it.
    pub fn admitted(&self) -> Option<(Epoch, &ViewChange)> {
        self.admitted.as_ref().map(|(e, v)| (*e, v))
    }

    /// The next message to send.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<(MemberId, Envelope)> {
        self.out.pop_front()
    }

    /// The address a seed gave for `member` (one of the observers it named), if any.
    pub fn addr_of(&self, member: MemberId) -> Option<&str> {
        self.addrs.get(&member).map(String::as_str)
    }

    /// When [`Joiner::handle_timeout`] must next be called.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<u64> {
        self.admitted.is_none().then_some(self.next_request_ms)
    }

    fn send(&mut self, to: MemberId, message: Message) {
        self.out.push_back((to, Envelope { epoch: NO_VIEW, message }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::membership::monitor::Incarnation;
    use crate::membership::testing::{change, info};

    fn requests(j: &mut Joiner) -> Vec<MemberId> {
        std::iter::from_fn(|| j.poll_transmit())
            .filter(|(_, e)| e.message == Message::JoinRequest)
            .map(|(to, _)| to)
            .collect()
    }

    #[test]
    fn each_retry_asks_the_next_seed() {
        let seeds = vec![MemberId(1), MemberId(2), MemberId(3)];
        let mut j = Joiner::new(MemberId(9), info(), seeds, 1_000, 0);
        let mut asked = Vec::new();
        for now in [0, 500, 1_000, 2_000, 3_000] {
            j.handle_timeout(now);
            asked.extend(requests(&mut j));
        }
        assert_eq!(asked, [1, 2, 3, 1].map(MemberId), "one request per second, in turn");
    }

    #[test]
    fn an_admitted_joiner_asks_no_more() {
        let mut j = Joiner::new(MemberId(9), info(), vec![MemberId(1)], 1_000, 0);
        j.handle_timeout(0);
        let view = change(vec![MemberId(1), MemberId(9)], vec![MemberId(9)], vec![]);
        // Its one seed is all it trusts: one welcome from it is enough.
        j.handle_message(
            MemberId(1),
            Envelope { epoch: Epoch(2), message: Message::Welcome(view.clone()) },
        );
        assert_eq!(j.admitted(), Some((Epoch(2), &view)));
        assert_eq!(j.poll_timeout(), None);
    }

    #[test]
    fn a_node_that_was_a_member_takes_no_view_it_may_have_voted_in() {
        let mut j = Joiner::new(MemberId(9), info(), vec![MemberId(1)], 1_000, 0).after(Epoch(2));
        j.handle_timeout(0);
        let _ = requests(&mut j);
        let view = change(vec![MemberId(1), MemberId(9)], vec![], vec![]);
        let welcome =
            |epoch| Envelope { epoch: Epoch(epoch), message: Message::Welcome(view.clone()) };
        // A stale member still in view 1, then one in view 2, welcome it back: refused.
        j.handle_message(MemberId(1), welcome(1));
        j.handle_message(MemberId(1), welcome(2));
        assert_eq!(j.admitted(), None);
        // Observers of view 1 are not asked to vouch (the change would be epoch 2 again).
        let observers = |epoch| Envelope {
            epoch: Epoch(epoch),
            message: Message::JoinObservers(vec![(0, MemberId(1), "10.0.0.1:1".into())]),
        };
        j.handle_message(MemberId(1), observers(1));
        assert_eq!(j.poll_transmit(), None);
        j.handle_message(MemberId(1), observers(2));
        assert!(j.poll_transmit().is_some(), "view 2's observers are asked: the change is 3");
        j.handle_message(MemberId(1), welcome(3));
        assert_eq!(j.admitted().map(|(e, _)| e), Some(Epoch(3)));
    }

    #[test]
    fn a_joiner_trusts_only_its_seeds_and_the_observers_they_named() {
        let (seed, a, b, liar) = (MemberId(1), MemberId(2), MemberId(3), MemberId(66));
        let mut j = Joiner::new(MemberId(9), info(), vec![seed], 1_000, 0);
        j.handle_timeout(0);
        let observers = |list: Vec<(usize, MemberId)>| Envelope {
            epoch: Epoch(1),
            message: Message::JoinObservers(
                list.into_iter().map(|(r, m)| (r, m, format!("10.0.0.{}:1", m.0))).collect(),
            ),
        };
        // Observers named by a stranger are not asked.
        j.handle_message(liar, observers(vec![(0, liar)]));
        assert!(std::iter::from_fn(|| j.poll_transmit()).all(|(to, _)| to == seed));
        j.handle_message(seed, observers(vec![(0, a), (1, b)]));
        let asked: Vec<MemberId> =
            std::iter::from_fn(|| j.poll_transmit()).map(|(to, _)| to).collect();
        assert_eq!(asked, vec![a, b]);
        assert_eq!(j.addr_of(a), Some("10.0.0.2:1"), "it learns where the observers are");
        assert_eq!(j.addr_of(liar), None, "and not from a stranger");
        let mut members = vec![seed, a, b, MemberId(9), liar];
        members.sort();
        let view = change(members, vec![MemberId(9)], vec![]);
        let welcome =
            |v: &ViewChange| Envelope { epoch: Epoch(2), message: Message::Welcome(v.clone()) };
        // A stranger's welcome, even to a view it is in, does not count; one trusted sender
        // is not enough when it trusts three.
        j.handle_message(liar, welcome(&view));
        j.handle_message(a, welcome(&view));
        assert_eq!(j.admitted(), None);
        j.handle_message(b, welcome(&view));
        assert_eq!(j.admitted(), Some((Epoch(2), &view)));
    }

    #[test]
    fn a_joiner_admitted_but_not_confirmed_answers_probes_and_asks_the_view_for_it() {
        let (seed, a, b, c) = (MemberId(1), MemberId(2), MemberId(3), MemberId(4));
        let me = MemberId(9);
        let mut j = Joiner::new(me, info(), vec![seed], 1_000, 0);
        j.handle_timeout(0);
        let named = vec![(0, a, "a:1".into()), (1, b, "b:1".into()), (2, c, "c:1".into())];
        let message = Message::JoinObservers(named);
        j.handle_message(seed, Envelope { epoch: Epoch(1), message });
        let _ = std::iter::from_fn(|| j.poll_transmit()).count();
        // Its observers in the view that admitted it probe it: it answers in their epoch,
        // whoever asks.
        j.handle_message(a, Envelope { epoch: Epoch(2), message: Message::Probe });
        let ack = Envelope { epoch: Epoch(2), message: Message::Ack(Incarnation(0)) };
        assert_eq!(j.poll_transmit(), Some((a, ack)));
        // One welcome to view 2, and the seed's answer to a retry is view 3 (another join
        // followed): no two agree, so nothing is confirmed.
        let view = change(vec![seed, a, b, c, me], vec![me], vec![]);
        j.handle_message(a, Envelope { epoch: Epoch(2), message: Message::Welcome(view.clone()) });
        let mut three = view.clone();
        three.joined.clear();
        j.handle_message(
            seed,
            Envelope { epoch: Epoch(3), message: Message::Welcome(three.clone()) },
        );
        assert_eq!(j.admitted(), None);
        // Each retry asks members of the newest view it was welcomed to for their view, as well
        // as the seed; two of them answering with view 3 confirm it.
        j.handle_timeout(1_000);
        let sent: Vec<(MemberId, Message)> =
            std::iter::from_fn(|| j.poll_transmit()).map(|(to, e)| (to, e.message)).collect();
        assert!(sent.contains(&(seed, Message::JoinRequest)), "{sent:?}");
        let asked: Vec<MemberId> =
            sent.iter().filter(|(_, m)| *m == Message::ViewRequest).map(|(to, _)| *to).collect();
        assert!(asked.len() >= 2 && asked.iter().all(|m| [a, b, c].contains(m)), "{asked:?}");
        j.handle_message(
            asked[0],
            Envelope { epoch: Epoch(3), message: Message::Welcome(three.clone()) },
        );
        assert_eq!(j.admitted().map(|(e, _)| e), Some(Epoch(3)));
    }
}
