//! Membership: who is in the view, agreed by every member.
//!
//! The pieces: the monitoring topology ([`rings::Rings`], K pseudo-random rings, each member
//! observed by its predecessors); monitoring ([`monitor::Monitor`]: probe, accuse after silence,
//! rebut with a higher incarnation, alert when an accusation stands); multi-node cut detection
//! ([`cut::CutDetector`], Rapid's high/low watermarks, so that many simultaneous failures or
//! joins become one proposed view change); agreement on the cut, by a fast round
//! ([`fast::FastRound`], ⌈3n/4⌉ identical proposals) with a classic Paxos round as fallback
//! ([`classic::Classic`]); joins through a seed ([`join::Joiner`]); all tied together by
//! [`node::MemberNode`] in the `handle_*` / `poll_*` shape. `host/sim` runs members together on
//! virtual time from a seed, with faults.

use crate::ids::MemberId;
use crate::limits::MEMBERS_MAX;

/// Whether `ids` can be a view's member list, or a cut's list: strictly increasing (sorted,
/// no duplicates) and no longer than [`MEMBERS_MAX`].
pub fn sorted_ids(ids: &[MemberId]) -> bool {
    ids.len() <= MEMBERS_MAX && ids.windows(2).all(|w| w[0] < w[1])
}

#[cfg(test)]
mod testing {
    use super::cut::Cut;
    use super::message::ViewChange;
    use crate::ids::MemberId;
    use crate::view::MemberInfo;

    /// What every test member brings.
    pub fn info() -> MemberInfo {
        MemberInfo { capacity: 1, labels: vec![], addr: "127.0.0.1:7400".into() }
    }

    /// A view change of `members` (sorted), each with [`info`].
    pub fn change(
        members: Vec<MemberId>,
        joined: Vec<MemberId>,
        left: Vec<MemberId>,
    ) -> ViewChange {
        let info = vec![info(); members.len()];
        ViewChange { members, info, joined, left }
    }

    /// A first view of `members`, each with [`info`].
    pub fn first(members: Vec<MemberId>) -> ViewChange {
        ViewChange::first(members.into_iter().map(|m| (m, info())).collect())
    }

    /// Members 1..=n.
    pub fn members(n: u128) -> Vec<MemberId> {
        (1..=n).map(MemberId).collect()
    }

    /// A cut removing `down`.
    pub fn cut(down: &[u128]) -> Cut {
        Cut { down: down.iter().map(|&d| MemberId(d)).collect(), ..Cut::default() }
    }
}

pub mod classic;
pub mod cut;
pub mod fast;
pub mod join;
pub mod lifecycle;
pub mod message;
pub mod monitor;
pub mod node;
pub mod rings;
pub mod welcome;
