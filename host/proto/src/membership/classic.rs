//! The classic round of view-change agreement: Paxos among the members of a view, for when the
//! fast round ([`super::fast::FastRound`]) cannot decide (proposals split, or too many members
//! silent). Any member may coordinate; ranks order the attempts.
//!
//! The fast round is Paxos's round at [`Rank::FAST`] where every member accepts its own
//! proposal: a member's fast vote is its acceptance at that rank. A coordinator gathers
//! promises from a majority. If some of them accepted at a classic rank, the value of the
//! highest such rank is the only one it may propose. If they accepted only in the fast round, a
//! value that may have been decided there — one that reached a fast quorum — has at least
//! `⌈3n/4⌉ - (n - q)` votes among the `q` promises, and (with `q > n/2`) at most one value can;
//! the coordinator proposes it. Tighter: a silent member that the cut removes cannot have voted
//! for it (no member votes for its own removal), so a value whose votes and non-subject silent
//! members together fall short of the fast quorum was not decided and binds nobody — without
//! this, the survivors' vote to remove two members cut off by a partition bound every later
//! round to a cut those two refuse, while a fifth member had died (whole-cluster chaos seed
//! 193; with this rule seeds 198 and 685 settle). The same reasoning holds for the value of
//! the highest classic rank: it binds only if the promises reporting it and the silent
//! members it does not remove make a majority (a decided value is the value of every later
//! rank, so if it is not this one, nothing was decided). Otherwise it is free, and proposes the cut
//! its own detector supports now, if any; it never invents a value (a union of the promised
//! cuts could remove members that no member's tally holds down together, such as both halves
//! of a healed partition). With nothing to propose it waits for the next attempt. A value
//! accepted by a majority at one rank is decided.
//!
//! This is pure state for one epoch; [`super::node::MemberNode`] sends what it returns.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::cut::Cut;
use super::fast::fast_quorum;
use crate::ids::MemberId;

/// The order of attempts: a round number, then the coordinator's index in the view, so two
/// coordinators never share a rank.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Rank {
    /// 1 is the fast round; classic rounds count from 2.
    pub round: u32,
    /// The coordinator's index in the view (0 for the fast round).
    pub node: u32,
}

impl Rank {
    /// The fast round's rank.
    pub const FAST: Rank = Rank { round: 1, node: 0 };
    /// Below every round: nothing promised yet.
    pub const NONE: Rank = Rank { round: 0, node: 0 };
}

/// What an acceptor accepted: the rank and the cut.
pub type Accepted = Option<(Rank, Cut)>;

/// Ranks of `Accepted` messages remembered at once (older ranks are forgotten; a later round
/// decides the same value).
const RANKS_KEPT: usize = 4;

/// One member's classic-round state for one epoch: acceptor, coordinator and learner.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Classic {
    members: Vec<MemberId>,
    me: u32,
    promised: Rank,
    accepted: Accepted,
    /// The coordinator's attempt: its rank, the promises so far, whether it proposed.
    leading: Option<(Rank, BTreeMap<MemberId, Accepted>, bool)>,
    /// What the coordinator proposes if the promises leave it free: the cut its detector
    /// supports.
    candidate: Option<Cut>,
    /// Per rank, the cut accepted there and who accepted it. A rank has one coordinator,
    /// which proposes one cut, so a different cut at a known rank is not a correct member's.
    learned: BTreeMap<Rank, (Cut, BTreeSet<MemberId>)>,
    highest_round: u32,
    decided: Option<Cut>,
}

impl Classic {
    /// The round state of member `me` in a view of `members` (sorted, containing `me`).
    pub fn new(members: Vec<MemberId>, me: MemberId) -> Self {
        let me = members.binary_search(&me).expect("a member of its view") as u32;
        Self {
            members,
            me,
            promised: Rank::NONE,
            accepted: None,
            leading: None,
            candidate: None,
            learned: BTreeMap::new(),
            highest_round: 1,
            decided: None,
        }
    }

    /// The round state of a member that restarted in the view of `members` with what it had
    /// promised and accepted there (read back from stable storage: an acceptor that forgot
    /// them could promise or accept against what it told a coordinator before).
    pub fn restored(
        members: Vec<MemberId>,
        me: MemberId,
        promised: Rank,
        accepted: Accepted,
    ) -> Self {
        let mut c = Self::new(members, me);
        c.highest_round = promised.round.max(1);
        c.promised = promised;
        c.accepted = accepted;
        c
    }

    /// The highest rank this member promised (or accepted at): [`Rank::FAST`] once it voted
    /// in the fast round.
    pub fn promised(&self) -> Rank {
        self.promised
    }

    /// This member proposes `cut` in the fast round. False when it may not any more: it
    /// promised a classic coordinator, or already accepted a value (its fast vote must then
    /// not be sent).
    pub fn vote_fast(&mut self, cut: &Cut) -> bool {
        if self.promised > Rank::FAST || self.accepted.is_some() {
            return false;
        }
        self.promised = Rank::FAST;
        self.accepted = Some((Rank::FAST, cut.clone()));
        true
    }

    /// Whether this member has accepted a value (in the fast round or a classic one).
    pub fn has_accepted(&self) -> bool {
        self.accepted.is_some()
    }

    /// What this member accepted, if anything (at [`Rank::FAST`]: its fast vote).
    pub fn accepted(&self) -> Option<&(Rank, Cut)> {
        self.accepted.as_ref()
    }

    /// The member that coordinates `rank` (classic ranks only).
    pub fn coordinator_of(&self, rank: Rank) -> Option<MemberId> {
        (rank.round >= 2).then(|| self.members.get(rank.node as usize).copied()).flatten()
    }

    /// The decided cut, once one is.
    pub fn decided(&self) -> Option<&Cut> {
        self.decided.as_ref()
    }

    /// Starts coordinating a new classic round above every round seen: broadcast
    /// `Prepare(rank)`. `candidate` is what this member proposes if the promises leave it
    /// free (the cut its own detector supports, checked by the caller). This member's own
    /// promise, with what it accepted, is counted here; in a view of one it is the majority,
    /// and the cut to propose comes back at once (as from [`Classic::handle_promise`]).
    pub fn start(&mut self, candidate: Option<Cut>) -> (Rank, Option<Cut>) {
        self.candidate = candidate;
        self.highest_round = self.highest_round.max(1) + 1;
        let rank = Rank { round: self.highest_round, node: self.me };
        self.promised = rank;
        let mut promises = BTreeMap::new();
        promises.insert(self.members[self.me as usize], self.accepted.clone());
        self.leading = Some((rank, promises, false));
        (rank, self.proposal())
    }

    /// A coordinator asks for a promise. Returns what to answer it, if anything.
    pub fn handle_prepare(&mut self, rank: Rank) -> Option<Accepted> {
        self.highest_round = self.highest_round.max(rank.round);
        if rank < self.promised || rank.round < 2 {
            return None;
        }
        self.promised = rank;
        Some(self.accepted.clone())
    }

    /// A promise for the round this member coordinates. Returns the cut to propose once a
    /// majority promised: broadcast `Accept`, and accept it here too
    /// ([`Classic::handle_accept`]).
    pub fn handle_promise(
        &mut self,
        from: MemberId,
        rank: Rank,
        accepted: Accepted,
    ) -> Option<Cut> {
        // Its own promise was counted by `start`, with what it accepted; never replaced.
        let other = self.members.binary_search(&from).is_ok_and(|i| i as u32 != self.me);
        let (lead, promises, proposed) = self.leading.as_mut()?;
        if *lead != rank || *proposed || !other {
            return None;
        }
        promises.insert(from, accepted);
        self.proposal()
    }

    /// The cut to propose, once (the first time a majority has promised).
    fn proposal(&mut self) -> Option<Cut> {
        let n = self.members.len();
        let (_, promises, proposed) = self.leading.as_mut()?;
        if *proposed || promises.len() * 2 <= n {
            return None;
        }
        let value = choose(&self.members, promises).or_else(|| self.candidate.clone());
        *proposed = value.is_some();
        value
    }

    /// A coordinator proposes `cut` at `rank`. True when this member accepted it: broadcast
    /// `Accepted(rank, cut)` (and count it here with [`Classic::handle_accepted`]).
    pub fn handle_accept(&mut self, rank: Rank, cut: &Cut) -> bool {
        self.highest_round = self.highest_round.max(rank.round);
        if rank < self.promised || rank.round < 2 {
            return false;
        }
        self.promised = rank;
        self.accepted = Some((rank, cut.clone()));
        true
    }

    /// A member accepted `cut` at `rank`. Returns the decided cut once a majority accepted one
    /// value at one rank.
    pub fn handle_accepted(&mut self, from: MemberId, rank: Rank, cut: Cut) -> Option<&Cut> {
        if self.decided.is_none() && rank.round >= 2 && self.members.binary_search(&from).is_ok() {
            self.highest_round = self.highest_round.max(rank.round);
            let (value, by) =
                self.learned.entry(rank).or_insert_with(|| (cut.clone(), BTreeSet::new()));
            if *value == cut {
                by.insert(from);
                if by.len() * 2 > self.members.len() {
                    self.decided = Some(cut);
                }
            }
            while self.learned.len() > RANKS_KEPT {
                self.learned.pop_first();
            }
        }
        self.decided.as_ref()
    }

    /// The highest round number seen (for choosing the next attempt's rank).
    pub fn highest_round(&self) -> u32 {
        self.highest_round
    }
}

/// The value a coordinator must propose, given a majority of promises from a view of `n`;
/// `None` when it is free (no value may have been decided).
fn choose(members: &[MemberId], promises: &BTreeMap<MemberId, Accepted>) -> Option<Cut> {
    let highest = promises.values().flatten().map(|(r, _)| *r).max()?;
    let silent: Vec<MemberId> =
        members.iter().copied().filter(|m| !promises.contains_key(m)).collect();
    if highest > Rank::FAST {
        // The value of the highest classic rank binds, unless it cannot have been decided at
        // any rank: if some value was decided, every proposal at a later rank is that value,
        // so it is this one, and a majority accepted it at one rank. Of the promises, only
        // those that report this value can be among them (one that reports another, or
        // nothing, accepted nothing of it that counted); of the silent members, only those it
        // does not remove (no member accepts its own removal). Short of a majority, nothing
        // was decided and the coordinator is free. Without this, a value two members of a
        // view of four accepted while a third was away bound every later round once its
        // subject was back: it refuses its own removal and the third had no report of it
        // (whole-cluster chaos seeds 137 and 238, after restarts began to resume).
        let value = promises.values().flatten().find(|(r, _)| *r == highest).map(|(_, c)| c)?;
        let reporting = promises.values().flatten().filter(|(_, c)| c == value).count();
        let could = silent.iter().filter(|m| value.down.binary_search(m).is_err()).count();
        let could = if cfg!(feature = "mutant-classic-binding") { 0 } else { could };
        return (reporting + could > members.len() / 2).then(|| value.clone());
    }
    let mut tally: BTreeMap<&Cut, usize> = BTreeMap::new();
    for (_, c) in promises.values().flatten() {
        *tally.entry(c).or_default() += 1;
    }
    let quorum = fast_quorum(members.len());
    // A value may have been decided in the fast round if its votes among the promises and
    // every silent member's could make a fast quorum; a silent member the cut removes does not
    // count, as no member votes for its own removal. At most one value can (see the module
    // docs), and it must be kept. Otherwise any value is safe.
    let possible = |cut: &Cut, votes: usize| {
        let could = silent.iter().filter(|m| cut.down.binary_search(m).is_err()).count();
        votes + could >= quorum
    };
    tally.iter().find(|(cut, k)| possible(cut, **k)).map(|(cut, _)| (*cut).clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::membership::testing::{cut, members};

    fn promises(entries: &[(u128, Accepted)]) -> BTreeMap<MemberId, Accepted> {
        entries.iter().map(|(m, a)| (MemberId(*m), a.clone())).collect()
    }

    #[test]
    fn a_value_that_may_have_won_the_fast_round_is_kept() {
        // n = 8, fast quorum 6. Five promises, four for {8}: with the three silent members
        // {8} could have had 7 ≥ 6 fast votes, so it must be chosen, not the union.
        let f = |c: &[u128]| Some((Rank::FAST, cut(c)));
        let p = promises(&[(1, f(&[8])), (2, f(&[8])), (3, f(&[8])), (4, f(&[8])), (5, f(&[7]))]);
        assert_eq!(choose(&members(8), &p), Some(cut(&[8])), "4 + 6 and 7 (8 never votes for it)");
        // Three of five for {7}, one for {8}, and 7 itself promised: {7} could have had
        // 3 + 3 (5, 6, 8) = 6, {8} 1 + 2 (5, 6; 8 never votes for its own removal) = 3.
        let p = promises(&[(1, f(&[7])), (2, f(&[7])), (3, f(&[7])), (4, f(&[8])), (7, None)]);
        assert_eq!(choose(&members(8), &p), Some(cut(&[7])));
        // Three for {8} and two for {7} from 1–5: {8} 3 + 2 (6, 7) = 5, {7} 2 + 2 (6, 8) = 4.
        let p = promises(&[(1, f(&[8])), (2, f(&[8])), (3, f(&[8])), (4, f(&[7])), (5, f(&[7]))]);
        assert_eq!(choose(&members(8), &p), None, "neither could have been decided");
    }

    #[test]
    fn a_cut_whose_silent_subjects_were_needed_for_a_fast_quorum_is_not_forced() {
        // n = 5, fast quorum 4. The two survivors of a partition voted to remove the two
        // members cut off; a fifth member is dead. Promises from the survivors and one of the
        // two: {4, 5} has 2 votes, and of the silent members only 3 could have voted for it
        // (5 never votes for its own removal): 3 < 4, so it was not decided and does not bind
        // the coordinator, which may then remove the dead member instead.
        let f = |c: &[u128]| Some((Rank::FAST, cut(c)));
        let p = promises(&[(1, f(&[4, 5])), (2, f(&[4, 5])), (4, None)]);
        assert_eq!(choose(&members(5), &p), None);
        // {4} alone with the same votes: the silent 3 and 5 could have voted for it, 2 + 2 =
        // 4 = the fast quorum, so it is kept.
        let p = promises(&[(1, f(&[4])), (2, f(&[4])), (4, None)]);
        assert_eq!(choose(&members(5), &p), Some(cut(&[4])));
    }

    #[test]
    fn the_highest_classic_acceptance_wins_over_fast_votes_when_it_may_have_been_decided() {
        let f = |c: &[u128]| Some((Rank::FAST, cut(c)));
        let (r1, r2) = (Rank { round: 2, node: 1 }, Rank { round: 3, node: 2 });
        let c = |r: Rank, d: &[u128]| Some((r, cut(d)));
        // n = 5, majority 3. {4} reported by two promises, and the silent 5 could have
        // accepted it (4 never accepts its own removal): 3, so it binds.
        let p = promises(&[(1, f(&[5])), (2, c(r2, &[4])), (3, c(r2, &[4]))]);
        assert_eq!(choose(&members(5), &p), Some(cut(&[4])));
        // At different ranks too: a value decided at one rank is proposed at every later one.
        let p = promises(&[(1, c(r1, &[4])), (2, c(r2, &[4])), (3, None)]);
        assert_eq!(choose(&members(5), &p), Some(cut(&[4])));
        let none = promises(&[(1, None), (2, None), (3, None)]);
        assert_eq!(choose(&members(5), &none), None);
    }

    #[test]
    fn a_classic_acceptance_that_cannot_have_been_decided_binds_nobody() {
        // n = 5. {4} accepted at a classic rank by one promise only; the others report
        // something else; of the silent 4 and 5 only 5 could have accepted it: 1 + 1 < 3.
        // Nothing was decided (a decided value would be the highest rank's), so the
        // coordinator is free, even though fast votes for {5} are among the promises.
        let f = |c: &[u128]| Some((Rank::FAST, cut(c)));
        let r = Rank { round: 3, node: 2 };
        let p = promises(&[(1, f(&[5])), (2, f(&[5])), (3, Some((r, cut(&[4]))))]);
        assert_eq!(choose(&members(5), &p), None);
        // View of four, the chaos pattern: 1 and 2 accepted {3} at a classic rank while 4 was
        // away; 3 is back and refuses its own removal, 4 promised without having accepted it.
        // 2 + 0 (the silent 3 is its subject) < 3: free.
        let p = promises(&[(1, Some((r, cut(&[3])))), (2, Some((r, cut(&[3])))), (4, None)]);
        assert_eq!(choose(&members(4), &p), None);
        // Had 4 been silent instead (and 3 promised), 4 might have accepted it: it binds.
        let p = promises(&[(1, Some((r, cut(&[3])))), (2, Some((r, cut(&[3])))), (3, None)]);
        assert_eq!(choose(&members(4), &p), Some(cut(&[3])), "4 silent: it may have");
    }

    #[test]
    fn a_free_coordinator_proposes_only_what_its_own_detector_supports() {
        let f = |c: &[u128]| Some((Rank::FAST, cut(c)));
        // n = 8, five promises: {9} has 2 + 3 silent = 5 < 6, {8} likewise: free.
        let p = promises(&[(1, f(&[9])), (2, f(&[9])), (3, f(&[8])), (4, f(&[8])), (5, None)]);
        assert_eq!(choose(&members(8), &p), None, "no union, no pick among the promised cuts");
        // Driven through a coordinator: with no candidate it proposes nothing; with one, that.
        let m = members(3);
        for candidate in [None, Some(cut(&[3]))] {
            let mut c = Classic::new(m.clone(), m[0]);
            let (rank, early) = c.start(candidate.clone());
            assert_eq!(early, None);
            let proposal = c.handle_promise(m[1], rank, Some((Rank::FAST, cut(&[2]))));
            assert_eq!(proposal, candidate);
        }
    }

    /// Drives one classic round among `n` members where member 0 coordinates, delivering
    /// everything.
    #[test]
    fn a_split_fast_round_is_decided_by_one_classic_round() {
        let m = members(4);
        let mut nodes: Vec<Classic> = m.iter().map(|&me| Classic::new(m.clone(), me)).collect();
        // Two vote {4} + {3}, two vote {3, 4}... none reaches 3 of 4.
        assert!(nodes[0].vote_fast(&cut(&[4])));
        assert!(nodes[1].vote_fast(&cut(&[4])));
        assert!(nodes[2].vote_fast(&cut(&[3, 4])));
        assert!(nodes[3].vote_fast(&cut(&[3, 4])));
        let (rank, early) = nodes[0].start(Some(cut(&[3, 4])));
        assert_eq!(rank, Rank { round: 2, node: 0 });
        assert_eq!(early, None, "one promise of four is no majority");
        let mut proposal = None;
        for i in 1..4 {
            let answer = nodes[i].handle_prepare(rank).expect("promises");
            if let Some(c) = nodes[0].handle_promise(m[i], rank, answer) {
                assert!(proposal.is_none(), "proposes once");
                proposal = Some(c);
            }
        }
        let proposal = proposal.expect("a majority promised");
        // After promising rank 2 nobody may still cast a fast vote.
        assert!(!nodes[1].vote_fast(&cut(&[1])));
        let mut decided = None;
        for i in 0..4 {
            assert!(nodes[i].handle_accept(rank, &proposal));
            for node in nodes.iter_mut() {
                if let Some(c) = node.handle_accepted(m[i], rank, proposal.clone()) {
                    decided.get_or_insert(c.clone());
                }
            }
        }
        assert_eq!(decided, Some(proposal.clone()));
        assert!(nodes.iter().all(|n| n.decided() == Some(&proposal)));
    }

    #[test]
    fn the_coordinators_own_fast_vote_counts_among_the_promises() {
        // n = 4, fast quorum 3. The coordinator and one other voted {4}, member 4 voted {3}:
        // with the silent third, {4} may have had 3 votes, so it is forced, not the union.
        let m = members(4);
        let mut c = Classic::new(m.clone(), m[0]);
        assert!(c.vote_fast(&cut(&[4])));
        let (rank, early) = c.start(Some(cut(&[2])));
        assert_eq!(early, None);
        // An empty promise in its own name does not replace the one `start` counted.
        assert_eq!(c.handle_promise(m[0], rank, None), None);
        assert_eq!(c.handle_promise(m[1], rank, Some((Rank::FAST, cut(&[4])))), None);
        assert_eq!(c.handle_promise(m[3], rank, Some((Rank::FAST, cut(&[3])))), Some(cut(&[4])));
        // A view of one: its own promise is the majority.
        let mut alone = Classic::new(vec![m[0]], m[0]);
        assert!(alone.vote_fast(&cut(&[9])));
        assert_eq!(alone.start(None).1, Some(cut(&[9])));
    }

    #[test]
    fn a_lower_rank_is_refused_after_a_higher_promise() {
        let m = members(3);
        let mut a = Classic::new(m.clone(), m[0]);
        assert!(a.handle_prepare(Rank { round: 3, node: 1 }).is_some());
        assert!(a.handle_prepare(Rank { round: 2, node: 2 }).is_none());
        assert!(!a.handle_accept(Rank { round: 2, node: 2 }, &cut(&[1])));
        assert!(a.handle_accept(Rank { round: 3, node: 1 }, &cut(&[1])));
        // The next attempt of this member ranks above everything it saw.
        assert_eq!(a.start(None).0.round, 4);
        // A fast-round rank is never a classic one.
        assert!(a.handle_prepare(Rank::FAST).is_none());
    }

    #[test]
    fn accepted_messages_need_a_majority_at_one_rank() {
        let m = members(5);
        let mut a = Classic::new(m.clone(), m[0]);
        let r2 = Rank { round: 2, node: 0 };
        let r3 = Rank { round: 3, node: 1 };
        assert!(a.handle_accepted(m[1], r2, cut(&[5])).is_none());
        assert!(a.handle_accepted(m[2], r2, cut(&[5])).is_none());
        assert!(a.handle_accepted(m[3], r3, cut(&[5])).is_none(), "2 + 1 across ranks");
        assert!(a.handle_accepted(MemberId(99), r2, cut(&[5])).is_none(), "not a member");
        assert_eq!(a.handle_accepted(m[4], r2, cut(&[5])), Some(&cut(&[5])));
    }
}
