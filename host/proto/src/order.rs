//! Message order between two members: every sender numbers what it sends to each peer from 1,
//! within a *session* (a random number the sender picks when its process starts), and every
//! receiver keeps, per peer, the session and the highest number seen. An arriving number tells
//! the receiver whether it is the next one, whether some were lost on the way (a gap, counted),
//! or whether it is a duplicate or older than one already taken (dropped). A new session from
//! a peer (it restarted) starts its numbering again.
//!
//! Sans-IO: the caller puts the [`Stamp`] next to each message it sends on an ordered channel
//! and asks [`Receipts::check`] about each one it receives; which channel is ordered is the
//! caller's business (a channel that may reorder should not be numbered with one that does
//! not: a later number overtaking an earlier one would drop the earlier one as old).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ids::MemberId;

/// What a sender attaches to a message for one peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    /// The sender's session: chosen at its start, never reused.
    pub session: u64,
    /// The message's number for this peer in this session, from 1.
    pub seq: u64,
}

/// Numbers messages per peer.
#[derive(Clone, Debug)]
pub struct Numbering {
    session: u64,
    next: BTreeMap<MemberId, u64>,
}

impl Numbering {
    /// Numbering for a sender whose session is `session` (random, fresh at each start).
    pub fn new(session: u64) -> Self {
        Self { session, next: BTreeMap::new() }
    }

    /// The stamp of the next message to `to`.
    pub fn stamp(&mut self, to: MemberId) -> Stamp {
        let next = self.next.entry(to).or_insert(1);
        let seq = *next;
        *next += 1;
        Stamp { session: self.session, seq }
    }

    /// Forgets `peer` (it left the view): its numbering starts from 1 if it comes back.
    pub fn forget(&mut self, peer: MemberId) {
        self.next.remove(&peer);
    }
}

/// What a receiver makes of an arriving stamp.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arrival {
    /// The next message from this peer (or its first): take it.
    Next,
    /// Take it, but `missed` messages before it never arrived (counted as a gap).
    After {
        /// How many numbers were skipped.
        missed: u64,
    },
    /// A number already taken, or older than the newest taken: drop it.
    Old,
    /// The first message of a new session of the peer (it restarted): take it, and count what
    /// before it in that session never arrived (`missed`, 0 if it is number 1).
    Restarted {
        /// Numbers of the new session before this one that never arrived.
        missed: u64,
    },
}

/// Per-peer order of what arrived, with totals.
#[derive(Clone, Debug, Default)]
pub struct Receipts {
    peers: BTreeMap<MemberId, (u64, u64)>,
    /// Messages found missing (numbers skipped), over all peers.
    pub missed: u64,
    /// Messages dropped as duplicates or older than one taken, over all peers.
    pub dropped: u64,
}

impl Receipts {
    /// Checks a message `from` stamped `stamp` and records it if it is taken.
    pub fn check(&mut self, from: MemberId, stamp: Stamp) -> Arrival {
        if stamp.seq == 0 {
            // Numbers start at 1: a 0 is not a message any sender of ours stamped.
            self.dropped += 1;
            return Arrival::Old;
        }
        let arrival = match self.peers.get(&from) {
            None => Arrival::Restarted { missed: stamp.seq - 1 },
            Some(&(session, _)) if session != stamp.session => {
                Arrival::Restarted { missed: stamp.seq - 1 }
            }
            Some(&(_, last)) if stamp.seq <= last => Arrival::Old,
            Some(&(_, last)) if stamp.seq == last + 1 => Arrival::Next,
            Some(&(_, last)) => Arrival::After { missed: stamp.seq - last - 1 },
        };
        match arrival {
            Arrival::Old => self.dropped += 1,
            Arrival::Next => {}
            Arrival::After { missed } | Arrival::Restarted { missed } => self.missed += missed,
        }
        if arrival != Arrival::Old {
            self.peers.insert(from, (stamp.session, stamp.seq));
        }
        arrival
    }

    /// Forgets `peer` (it left the view).
    pub fn forget(&mut self, peer: MemberId) {
        self.peers.remove(&peer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const A: MemberId = MemberId(1);
    const B: MemberId = MemberId(2);

    #[test]
    fn numbers_run_per_peer_from_one() {
        let mut n = Numbering::new(7);
        assert_eq!(n.stamp(A), Stamp { session: 7, seq: 1 });
        assert_eq!(n.stamp(A), Stamp { session: 7, seq: 2 });
        assert_eq!(n.stamp(B), Stamp { session: 7, seq: 1 });
        n.forget(A);
        assert_eq!(n.stamp(A).seq, 1);
    }

    #[test]
    fn gaps_are_counted_and_old_numbers_dropped() {
        let mut r = Receipts::default();
        let s = |seq| Stamp { session: 9, seq };
        assert_eq!(r.check(A, s(1)), Arrival::Restarted { missed: 0 }, "first contact");
        assert_eq!(r.check(A, s(2)), Arrival::Next);
        assert_eq!(r.check(A, s(2)), Arrival::Old, "a duplicate");
        assert_eq!(r.check(A, s(5)), Arrival::After { missed: 2 });
        assert_eq!(r.check(A, s(4)), Arrival::Old, "late, after a newer one was taken");
        assert_eq!(r.check(B, s(3)), Arrival::Restarted { missed: 2 }, "B's first two lost");
        assert_eq!(r.check(A, Stamp { session: 10, seq: 1 }), Arrival::Restarted { missed: 0 });
        assert_eq!(r.check(A, s(6)), Arrival::Restarted { missed: 5 }, "the old session again");
        assert_eq!(r.check(A, Stamp { session: 9, seq: 0 }), Arrival::Old);
        assert_eq!((r.missed, r.dropped), (2 + 2 + 5, 3));
    }

    proptest! {
        /// Whatever the network does to one session's messages (loss, duplication,
        /// reordering), the receiver takes each number at most once, in increasing order, and
        /// taken + missed = the highest number taken.
        #[test]
        fn each_number_is_taken_at_most_once_in_order(
            arrivals in proptest::collection::vec(1u64..50, 0..200),
        ) {
            let mut r = Receipts::default();
            let mut taken = Vec::new();
            for seq in arrivals {
                match r.check(A, Stamp { session: 1, seq }) {
                    Arrival::Old => {}
                    _ => taken.push(seq),
                }
            }
            prop_assert!(taken.windows(2).all(|w| w[0] < w[1]));
            let highest = taken.last().copied().unwrap_or(0);
            prop_assert_eq!(taken.len() as u64 + r.missed, highest);
        }
    }
}
