//! Membership views as policies see them.

use serde::{Deserialize, Serialize};

use crate::ids::{Epoch, MemberId, ViewId};
use crate::limits::{
    ADDR_BYTES_MAX, LABEL_KEY_BYTES_MAX, LABEL_VALUE_BYTES_MAX, LABELS_PER_MEMBER_MAX, MEMBERS_MAX,
};

/// An operator label on a member.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Label {
    /// Label name, at most [`LABEL_KEY_BYTES_MAX`] bytes.
    pub key: String,
    /// Label value, at most [`LABEL_VALUE_BYTES_MAX`] bytes.
    pub value: String,
}

/// One member of a view.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The member's identity.
    pub id: MemberId,
    /// Relative hosting capacity (a weight); zero hosts nothing.
    pub capacity: u32,
    /// Operator labels, sorted by key, keys unique.
    #[serde(default)]
    pub labels: Vec<Label>,
}

impl Member {
    /// A member with the given capacity and no labels.
    pub fn new(id: MemberId, capacity: u32) -> Self {
        Self { id, capacity, labels: Vec::new() }
    }
}

/// A membership view. Constructed only through [`View::new`], [`View::next`] and [`View::agreed`], which enforce
/// its invariants: members sorted ascending by id, unique, not empty, within limits; `id` the
/// hash of the members with their capacities and labels; `joined`/`left` the difference from
/// the previous view (or the agreed change, for [`View::agreed`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct View {
    epoch: Epoch,
    id: ViewId,
    members: Vec<Member>,
    joined: Vec<MemberId>,
    left: Vec<MemberId>,
    stable: bool,
    seed: u64,
}

/// A member list that cannot form a view.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ViewError {
    /// No members.
    #[error("a view needs at least one member")]
    Empty,
    /// Too many members.
    #[error("{count} members exceed the limit of {max}")]
    TooManyMembers {
        /// Members given.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// The same member twice.
    #[error("member {0} appears twice")]
    Duplicate(MemberId),
    /// A label breaks a limit or is out of order.
    #[error("member {member}: {reason}")]
    Label {
        /// The member.
        member: MemberId,
        /// What is wrong.
        reason: &'static str,
    },
    /// The joined and left lists do not fit the members.
    #[error("joined and left must be sorted, the joined members, the left not")]
    Change,
    /// The next view's epoch does not increase.
    #[error("epoch {next} does not follow {previous}")]
    EpochNotIncreasing {
        /// The previous epoch.
        previous: Epoch,
        /// The proposed epoch.
        next: Epoch,
    },
}

impl View {
    /// The first view: every member counts as joined.
    pub fn new(epoch: Epoch, members: Vec<Member>) -> Result<Self, ViewError> {
        let members = normalize(members)?;
        let joined = members.iter().map(|m| m.id).collect();
        Ok(Self::build(epoch, members, joined, Vec::new()))
    }

    /// The view that follows `self` with `members`; `joined` and `left` are derived.
    pub fn next(&self, epoch: Epoch, members: Vec<Member>) -> Result<Self, ViewError> {
        if epoch <= self.epoch {
            return Err(ViewError::EpochNotIncreasing { previous: self.epoch, next: epoch });
        }
        let members = normalize(members)?;
        let joined = members.iter().map(|m| m.id).filter(|id| !self.contains(*id)).collect();
        let left = self
            .members
            .iter()
            .map(|m| m.id)
            .filter(|id| members.binary_search_by_key(id, |m| m.id).is_err())
            .collect();
        Ok(Self::build(epoch, members, joined, left))
    }

    /// A view as membership agreed it: `joined` and `left` are the agreed change that made it
    /// (sorted; the joined among the members, the left not), not a difference this node
    /// computes from whatever view it saw before, so every member builds the same view.
    pub fn agreed(
        epoch: Epoch,
        members: Vec<Member>,
        joined: Vec<MemberId>,
        left: Vec<MemberId>,
    ) -> Result<Self, ViewError> {
        let members = normalize(members)?;
        let has = |id: &MemberId| members.binary_search_by_key(id, |m| m.id).is_ok();
        let sorted = |l: &[MemberId]| l.windows(2).all(|w| w[0] < w[1]);
        if !sorted(&joined) || !sorted(&left) || !joined.iter().all(has) || left.iter().any(has) {
            return Err(ViewError::Change);
        }
        Ok(Self::build(epoch, members, joined, left))
    }

    /// Marks the view settled (or not).
    pub fn with_stable(mut self, stable: bool) -> Self {
        self.stable = stable;
        self
    }

    fn build(
        epoch: Epoch,
        members: Vec<Member>,
        joined: Vec<MemberId>,
        left: Vec<MemberId>,
    ) -> Self {
        let id = view_id(&members);
        let seed = xxhash_rust::xxh3::xxh3_64(&id.0.to_be_bytes());
        Self { epoch, id, members, joined, left, stable: false, seed }
    }

    /// The view epoch.
    pub fn epoch(&self) -> Epoch {
        self.epoch
    }
    /// The hash of the members with their capacities and labels.
    pub fn id(&self) -> ViewId {
        self.id
    }
    /// Members, sorted ascending by id, unique, never empty.
    pub fn members(&self) -> &[Member] {
        &self.members
    }
    /// Members new in this view, sorted.
    pub fn joined(&self) -> &[MemberId] {
        &self.joined
    }
    /// Members gone since the previous view, sorted.
    pub fn left(&self) -> &[MemberId] {
        &self.left
    }
    /// Whether membership considers the view settled.
    pub fn stable(&self) -> bool {
        self.stable
    }
    /// The seed derived from the view id: the only randomness a policy may use.
    pub fn seed(&self) -> u64 {
        self.seed
    }
    /// Whether `id` is a member.
    pub fn contains(&self, id: MemberId) -> bool {
        self.member(id).is_some()
    }
    /// The member with this id.
    pub fn member(&self, id: MemberId) -> Option<&Member> {
        self.members.binary_search_by_key(&id, |m| m.id).ok().map(|i| &self.members[i])
    }
}

/// The view id: xxh3-128 over the sorted members, each as its id (16 bytes, big-endian), its
/// capacity (4 bytes, big-endian) and its labels (count, then each key and value behind a
/// 2-byte length). Two views have the same id exactly when policies see the same members.
fn view_id(members: &[Member]) -> ViewId {
    view_id_of(members.iter().map(|m| (m.id, m.capacity, m.labels.as_slice())))
}

/// The view id of a view with these members `(id, capacity, labels)`, in ascending id order:
/// what [`View::id`] gives for it.
pub fn view_id_of<'a>(members: impl Iterator<Item = (MemberId, u32, &'a [Label])>) -> ViewId {
    let mut bytes = Vec::new();
    for (id, capacity, labels) in members {
        bytes.extend_from_slice(&id.0.to_be_bytes());
        bytes.extend_from_slice(&capacity.to_be_bytes());
        bytes.push(labels.len().min(u8::MAX as usize) as u8);
        for text in labels.iter().flat_map(|l| [&l.key, &l.value]) {
            bytes.extend_from_slice(&(text.len().min(u16::MAX as usize) as u16).to_be_bytes());
            bytes.extend_from_slice(text.as_bytes());
        }
    }
    ViewId(xxhash_rust::xxh3::xxh3_128(&bytes))
}

/// What a member brings into the view besides its id: agreed with the view, so every member
/// knows the same of every other. It travels in the join.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct MemberInfo {
    /// Relative hosting capacity (a weight); zero hosts nothing.
    pub capacity: u32,
    /// Operator labels, sorted by key, keys unique.
    pub labels: Vec<Label>,
    /// Where its transport listens (`host:port`), at most [`ADDR_BYTES_MAX`] bytes.
    pub addr: String,
}

impl MemberInfo {
    /// Whether it is within limits: labels as [`View`] requires them, the address not empty
    /// and not too long.
    pub fn check(&self) -> Result<(), &'static str> {
        if self.addr.is_empty() || self.addr.len() > ADDR_BYTES_MAX {
            return Err("address empty or longer than 256 bytes");
        }
        labels_fit(&self.labels)
    }

    /// The member as policies see it.
    pub fn member(&self, id: MemberId) -> Member {
        Member { id, capacity: self.capacity, labels: self.labels.clone() }
    }
}

fn normalize(mut members: Vec<Member>) -> Result<Vec<Member>, ViewError> {
    if members.is_empty() {
        return Err(ViewError::Empty);
    }
    if members.len() > MEMBERS_MAX {
        return Err(ViewError::TooManyMembers { count: members.len(), max: MEMBERS_MAX });
    }
    members.sort_by_key(|m| m.id);
    if let Some(w) = members.windows(2).find(|w| w[0].id == w[1].id) {
        return Err(ViewError::Duplicate(w[0].id));
    }
    for m in &members {
        check_labels(m)?;
    }
    Ok(members)
}

fn check_labels(m: &Member) -> Result<(), ViewError> {
    labels_fit(&m.labels).map_err(|reason| ViewError::Label { member: m.id, reason })
}

fn labels_fit(labels: &[Label]) -> Result<(), &'static str> {
    if labels.len() > LABELS_PER_MEMBER_MAX {
        return Err("more than 16 labels");
    }
    for l in labels {
        if l.key.is_empty() || l.key.len() > LABEL_KEY_BYTES_MAX {
            return Err("label key empty or longer than 64 bytes");
        }
        if l.value.len() > LABEL_VALUE_BYTES_MAX {
            return Err("label value longer than 256 bytes");
        }
    }
    if labels.windows(2).any(|w| w[0].key >= w[1].key) {
        return Err("labels not sorted by key or keys repeated");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(ids: &[u128]) -> Vec<Member> {
        ids.iter().map(|&i| Member::new(MemberId(i), 100)).collect()
    }

    #[test]
    fn a_view_sorts_its_members_and_rejects_duplicates_and_emptiness() {
        let v = View::new(Epoch(1), members(&[3, 1, 2])).unwrap();
        let ids: Vec<_> = v.members().iter().map(|m| m.id.0).collect();
        assert_eq!(ids, [1, 2, 3]);
        assert_eq!(View::new(Epoch(1), members(&[1, 1])), Err(ViewError::Duplicate(MemberId(1))));
        assert_eq!(View::new(Epoch(1), vec![]), Err(ViewError::Empty));
    }

    #[test]
    fn the_next_view_derives_joined_left_and_a_new_id() {
        let v1 = View::new(Epoch(1), members(&[1, 2, 3])).unwrap();
        let v2 = v1.next(Epoch(2), members(&[2, 3, 4])).unwrap();
        assert_eq!(v2.joined(), &[MemberId(4)]);
        assert_eq!(v2.left(), &[MemberId(1)]);
        assert_ne!(v1.id(), v2.id(), "the view id must change with the member set");
        assert_ne!(v1.seed(), v2.seed());
        let same_set = v2.next(Epoch(3), members(&[4, 3, 2])).unwrap();
        assert_eq!(same_set.id(), v2.id(), "the id does not depend on the epoch or the order");
        let mut heavier = members(&[2, 3, 4]);
        heavier[0].capacity += 1;
        assert_ne!(v2.next(Epoch(3), heavier).unwrap().id(), v2.id(), "capacity is in the id");
        let mut labelled = members(&[2, 3, 4]);
        labelled[2].labels.push(Label { key: "zone".into(), value: "a".into() });
        assert_ne!(v2.next(Epoch(3), labelled).unwrap().id(), v2.id(), "labels are in the id");
        assert!(v2.next(Epoch(2), members(&[2])).is_err(), "epochs must increase");
    }

    #[test]
    fn labels_are_bounded_and_sorted() {
        let mut m = Member::new(MemberId(1), 1);
        m.labels = vec![
            Label { key: "zone".into(), value: "a".into() },
            Label { key: "rack".into(), value: "b".into() },
        ];
        assert!(matches!(View::new(Epoch(1), vec![m]), Err(ViewError::Label { .. })));
    }
}
