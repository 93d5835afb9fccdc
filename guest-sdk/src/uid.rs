//! Ordering and conversions for 128-bit identifiers.

use std::cmp::Ordering;
use std::hash::{Hash, Hasher};

use crate::Uid;

/// A member (node) id.
pub type MemberId = Uid;
/// An entity id.
pub type EntityId = Uid;
/// A migration id.
pub type MigrationId = Uid;
/// A bubble id.
pub type BubbleId = u64;

impl Uid {
    /// The id as one unsigned 128-bit number (`hi` is the most significant half).
    pub const fn as_u128(self) -> u128 {
        ((self.hi as u128) << 64) | self.lo as u128
    }

    /// The id of an unsigned 128-bit number.
    pub const fn from_u128(v: u128) -> Self {
        Self { hi: (v >> 64) as u64, lo: v as u64 }
    }
}

impl Eq for Uid {}

impl Ord for Uid {
    /// Unsigned big-endian order: `hi` first, then `lo`.
    fn cmp(&self, other: &Self) -> Ordering {
        self.as_u128().cmp(&other.as_u128())
    }
}

impl PartialOrd for Uid {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Hash for Uid {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_u128().hash(state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_order_as_unsigned_big_endian() {
        let high_bit = Uid { hi: 1 << 63, lo: 0 };
        let small = Uid { hi: 1, lo: u64::MAX };
        assert!(small < high_bit);
        assert_eq!(Uid::from_u128(small.as_u128()), small);
    }
}
