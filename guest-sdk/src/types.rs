//! The SDK's view of the inputs: plain Rust structs built from the contract's columns.

use crate::bindings::coordinator_world::luciole::policy::types as wit;
pub use wit::MemberLabel;

use crate::{MemberId, Uid};

/// A membership view, as policies see it. Every node sees the same view for the same epoch.
#[derive(Clone, Debug, PartialEq)]
pub struct View {
    /// Monotone view number.
    pub epoch: u64,
    /// A hash of the members with their capacities and labels: it changes whenever the
    /// member set changes.
    pub id: Uid,
    /// The members, sorted ascending by id (unsigned big-endian), ids unique, never empty.
    pub members: Vec<Member>,
    /// Operator labels, sorted by member index then key; `member` indexes [`View::members`].
    pub labels: Vec<MemberLabel>,
    /// Indices (into [`View::members`]) of the members new in this view, ascending.
    pub joined: Vec<u32>,
    /// Members gone since the previous view, sorted by id.
    pub left: Vec<MemberId>,
    /// Whether membership considers the view settled.
    pub stable: bool,
    /// The only randomness a policy may use: the same on every node for the same view.
    pub seed: u64,
}

/// One member of a view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Member {
    /// Its identity.
    pub id: MemberId,
    /// Relative hosting capacity (a weight); zero hosts nothing.
    pub capacity: u32,
}

/// An axis-aligned box: `min` inclusive, `max` exclusive.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bounds {
    /// Lowest corner `[x, y, z]`.
    pub min: [f32; 3],
    /// Highest corner `[x, y, z]`.
    pub max: [f32; 3],
}

/// A bubble to place.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bubble {
    /// Its identity.
    pub id: u64,
    /// Entities in it now.
    pub entity_count: u32,
    /// Load in abstract units; zero when unknown.
    pub load: u32,
    /// The region it covers, when the simulation shares geometry.
    pub bounds: Option<Bounds>,
    /// Index (into [`View::members`]) of the member hosting it now, if that member is in the
    /// view.
    pub current: Option<u32>,
}

impl View {
    /// Builds the view from the contract's columns.
    #[doc(hidden)]
    pub fn from_wit(v: wit::View) -> Self {
        let members = v
            .ids
            .chunks_exact(2)
            .zip(&v.capacity)
            .map(|(id, &capacity)| Member { id: Uid { hi: id[0], lo: id[1] }, capacity })
            .collect();
        View {
            epoch: v.epoch,
            id: v.id,
            members,
            labels: v.labels,
            joined: v.joined,
            left: v.left,
            stable: v.stable,
            seed: v.seed,
        }
    }

    /// A view of these members (sorted here), as in a first view: every member joined. For
    /// native tests of a policy.
    pub fn of(epoch: u64, mut members: Vec<Member>) -> Self {
        members.sort_by_key(|m| m.id);
        let joined = (0..members.len() as u32).collect();
        View {
            epoch,
            id: Uid { hi: 0, lo: epoch },
            members,
            labels: Vec::new(),
            joined,
            left: Vec::new(),
            stable: true,
            seed: epoch,
        }
    }

    /// The index of member `id`, if it is in the view.
    pub fn index_of(&self, id: MemberId) -> Option<u32> {
        self.members.binary_search_by(|m| m.id.cmp(&id)).ok().map(|i| i as u32)
    }
}

/// Builds the bubbles from the contract's columns.
#[doc(hidden)]
pub fn bubbles_from_wit(b: wit::Bubbles) -> Vec<Bubble> {
    let with_bounds = b.bounds.len() == b.id.len() * 6;
    (0..b.id.len())
        .map(|i| Bubble {
            id: b.id[i],
            entity_count: b.entity_count.get(i).copied().unwrap_or(0),
            load: b.load.get(i).copied().unwrap_or(0),
            bounds: with_bounds.then(|| {
                let f = &b.bounds[i * 6..i * 6 + 6];
                Bounds { min: [f[0], f[1], f[2]], max: [f[3], f[4], f[5]] }
            }),
            current: b.current.get(i).copied().filter(|&c| c != u32::MAX),
        })
        .collect()
}
