//! What members send each other, and the view record they agree on. The sender is never a
//! field: the driver takes it from the authenticated connection.

use serde::{Deserialize, Serialize};

use super::classic::{Accepted, Rank};
use super::cut::{Alert, Cut};
use super::monitor::Incarnation;
use super::sorted_ids;
use crate::ids::{Epoch, MemberId, ViewId};
use crate::view::{MemberInfo, View, ViewError};

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
    /// (Suspicion-triggered probing) the sender, an observer of this subject, missed an
    /// answer from it: probe it now.
    Suspect(MemberId),
    /// Accusations that stood and joins vouched for, gathered for a while and sent together
    /// (at most [`super::node::ALERTS_PER_MESSAGE_MAX`]).
    Alerts {
        /// The alerts.
        alerts: Vec<Alert>,
        /// For each joiner these alerts vouch for, what it told the sender it brings, sorted
        /// by id, one entry per joiner.
        joiners: Vec<(MemberId, MemberInfo)>,
    },
    /// The sender proposes this cut for the next view.
    Vote(Cut),
    /// A node outside the view asks a member (its seed) how to join.
    JoinRequest,
    /// The seed's answer: the joiner's expected observers, `(ring, member, address)`, the
    /// address as the member brought it into the view.
    JoinObservers(Vec<(usize, MemberId, String)>),
    /// The joiner asks one of its expected observers to vouch for it on this ring, bringing
    /// what it will be in the view.
    JoinAsk {
        /// The ring.
        ring: usize,
        /// Its capacity, labels and address.
        info: MemberInfo,
    },
    /// The view that admitted the joiner, from a member that vouched for it, or the current
    /// view for a member that asked (the envelope's epoch is the view's). Installed once
    /// enough members confirm it ([`super::welcome`]).
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
    /// The sender leaves the view (its process is stopping): its observers alert at once
    /// rather than wait for its silence. It speaks only for itself.
    Leave,
}

/// A view as every member learns it: its members with what each brought into the view, and
/// who joined and who left in the change that made it (the agreed cut). A member that catches
/// up, or joins, learns it whole, so it sees the same view for the epoch as the members that
/// took part.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewChange {
    /// The members, sorted.
    pub members: Vec<MemberId>,
    /// What each member brought (capacity, labels, address): `info[i]` is `members[i]`'s.
    pub info: Vec<MemberInfo>,
    /// Members new in this view, sorted.
    pub joined: Vec<MemberId>,
    /// Members gone since the previous view, sorted.
    pub left: Vec<MemberId>,
}

impl ViewChange {
    /// A first view of `members` (in any order): every member counts as joined.
    pub fn first(mut members: Vec<(MemberId, MemberInfo)>) -> Self {
        members.sort_by_key(|(id, _)| *id);
        let (members, info): (Vec<MemberId>, Vec<MemberInfo>) = members.into_iter().unzip();
        Self { joined: members.clone(), members, info, left: Vec::new() }
    }

    /// Whether it can be a view: members not empty, every list sorted and within
    /// [`crate::limits::MEMBERS_MAX`], the joined among the members and the left not, one
    /// [`MemberInfo`] within limits per member.
    pub fn is_valid(&self) -> bool {
        !self.members.is_empty()
            && [&self.members, &self.joined, &self.left].into_iter().all(|l| sorted_ids(l))
            && self.joined.iter().all(|j| self.members.binary_search(j).is_ok())
            && self.left.iter().all(|l| self.members.binary_search(l).is_err())
            && self.info.len() == self.members.len()
            && self.info.iter().all(|i| i.check().is_ok())
    }

    /// The view id, as [`View::id`] gives it for [`ViewChange::policy_view`]: a hash of the
    /// members with their capacities and labels (not their addresses).
    pub fn id(&self) -> ViewId {
        crate::view::view_id_of(
            self.members.iter().zip(&self.info).map(|(m, i)| (*m, i.capacity, i.labels.as_slice())),
        )
    }

    /// What `member` brought into the view, if it is a member.
    pub fn info_of(&self, member: MemberId) -> Option<&MemberInfo> {
        self.members.binary_search(&member).ok().and_then(|i| self.info.get(i))
    }

    /// The view policies see for this agreed view at `epoch`: the one conversion every member
    /// makes, so all of them hand their policies the same view (same id, capacities, labels,
    /// joined and left).
    pub fn policy_view(&self, epoch: Epoch) -> Result<View, ViewError> {
        let members = self.members.iter().zip(&self.info).map(|(m, i)| i.member(*m)).collect();
        View::agreed(epoch, members, self.joined.clone(), self.left.clone())
    }
}

/// A message with the epoch of the view it belongs to. The sender is not in it: the
/// authenticated connection names it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// The view the sender is in.
    pub epoch: Epoch,
    /// The message.
    pub message: Message,
}
