//! The fast path of view-change agreement (Rapid's Fast Paxos round): every member broadcasts
//! the cut its detector proposed; a cut that at least three quarters of the current view
//! proposed is decided, with no further round. Members that see no such quorum (proposals
//! split, or too many members silent) fall back to a classic consensus round
//! ([`super::classic`]).
//!
//! Why three quarters: with a fast quorum of ⌈3n/4⌉, any two fast quorums and any classic
//! majority intersect enough that the classic round can recover a value the fast path may
//! already have decided.

use std::collections::BTreeMap;

use super::cut::Cut;
use crate::ids::{Epoch, MemberId};

/// The smallest fast quorum of a view of `n` members: ⌈3n/4⌉.
pub fn fast_quorum(n: usize) -> usize {
    (3 * n).div_ceil(4)
}

/// Why a vote was not counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VoteError {
    /// The voter is not in the view.
    #[error("{0} is not a member of the view")]
    NotMember(MemberId),
    /// The vote is for another view.
    #[error("vote for epoch {found}, this round is for epoch {expected}")]
    WrongEpoch {
        /// The round's epoch.
        expected: Epoch,
        /// The vote's.
        found: Epoch,
    },
    /// The voter already voted for a different cut in this round.
    #[error("{0} already voted for another cut")]
    Changed(MemberId),
}

/// The votes of one fast round: the round that decides the view after `epoch`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FastRound {
    epoch: Epoch,
    members: Vec<MemberId>,
    votes: BTreeMap<MemberId, Cut>,
    /// Votes per distinct cut, and the largest count.
    tally: BTreeMap<Cut, usize>,
    best: usize,
    decided: Option<Cut>,
}

impl FastRound {
    /// A round among `members` (the view of `epoch`, sorted), deciding its successor.
    pub fn new(epoch: Epoch, members: Vec<MemberId>) -> Self {
        debug_assert!(super::sorted_ids(&members), "members sorted, unique");
        Self {
            epoch,
            members,
            votes: BTreeMap::new(),
            tally: BTreeMap::new(),
            best: 0,
            decided: None,
        }
    }

    /// Counts `voter`'s proposal. Returns the decided cut once one has a fast quorum (every
    /// later call returns it again). A repeated identical vote changes nothing; a voter that
    /// changes its vote is refused (a correct member proposes once per view).
    pub fn vote(
        &mut self,
        epoch: Epoch,
        voter: MemberId,
        cut: Cut,
    ) -> Result<Option<&Cut>, VoteError> {
        if epoch != self.epoch {
            return Err(VoteError::WrongEpoch { expected: self.epoch, found: epoch });
        }
        if self.members.binary_search(&voter).is_err() {
            return Err(VoteError::NotMember(voter));
        }
        match self.votes.get(&voter) {
            Some(previous) if *previous != cut => return Err(VoteError::Changed(voter)),
            Some(_) => {}
            None => {
                let count = self.tally.entry(cut.clone()).or_default();
                *count += 1;
                let count = *count;
                self.best = self.best.max(count);
                if self.decided.is_none() && count >= fast_quorum(self.members.len()) {
                    self.decided = Some(cut.clone());
                }
                self.votes.insert(voter, cut);
            }
        }
        Ok(self.decided.as_ref())
    }

    /// The cut `voter` voted for, if its vote was counted.
    pub fn vote_of(&self, voter: MemberId) -> Option<&Cut> {
        self.votes.get(&voter)
    }

    /// Whether no cut can reach a fast quorum any more, whatever the members not yet heard
    /// say: the round must fall back to classic consensus.
    pub fn stuck(&self) -> bool {
        if self.decided.is_some() {
            return false;
        }
        let quorum = fast_quorum(self.members.len());
        let silent = self.members.len() - self.votes.len();
        self.best + silent < quorum
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::membership::testing::{cut, members};

    #[test]
    fn the_fast_quorum_is_three_quarters_rounded_up() {
        assert_eq!(fast_quorum(4), 3);
        assert_eq!(fast_quorum(5), 4);
        assert_eq!(fast_quorum(100), 75);
        assert_eq!(fast_quorum(1), 1);
    }

    #[test]
    fn a_cut_proposed_by_three_quarters_is_decided() {
        let m = members(8);
        let mut round = FastRound::new(Epoch(4), m.clone());
        for &v in &m[..5] {
            assert_eq!(round.vote(Epoch(4), v, cut(&[8])).unwrap(), None);
        }
        assert_eq!(round.vote(Epoch(4), m[5], cut(&[8])).unwrap(), Some(&cut(&[8])));
        // A late, different vote does not undo the decision.
        assert_eq!(round.vote(Epoch(4), m[6], cut(&[7, 8])).unwrap(), Some(&cut(&[8])));
    }

    #[test]
    fn split_proposals_get_stuck_and_need_the_classic_round() {
        let m = members(8);
        let mut round = FastRound::new(Epoch(1), m.clone());
        for &v in &m[..3] {
            round.vote(Epoch(1), v, cut(&[8])).unwrap();
        }
        assert!(!round.stuck(), "the five silent members could still make a quorum");
        for &v in &m[3..6] {
            round.vote(Epoch(1), v, cut(&[7, 8])).unwrap();
        }
        assert!(round.stuck(), "3 + 2 silent < 6");
    }

    #[test]
    fn bad_votes_are_refused_and_repeats_are_harmless() {
        let m = members(4);
        let mut round = FastRound::new(Epoch(2), m.clone());
        assert_eq!(
            round.vote(Epoch(2), MemberId(99), cut(&[1])),
            Err(VoteError::NotMember(MemberId(99)))
        );
        assert!(matches!(round.vote(Epoch(3), m[0], cut(&[1])), Err(VoteError::WrongEpoch { .. })));
        assert_eq!(round.vote(Epoch(2), m[0], cut(&[1])), Ok(None));
        assert_eq!(round.vote(Epoch(2), m[0], cut(&[1])), Ok(None));
        assert_eq!(round.vote(Epoch(2), m[0], cut(&[2])), Err(VoteError::Changed(m[0])));
    }
}
