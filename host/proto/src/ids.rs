//! Identifier newtypes. Decoding yields a valid value or an error; ids are never aliases of
//! integers, so a bubble id cannot be passed where a member id is expected.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

macro_rules! id128 {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        ///
        /// Ordered as an unsigned big-endian 128-bit number; displayed as 32 lowercase hex digits
        /// (which sort the same way).
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub struct $name(pub u128);

        impl $name {
            /// The most significant 64 bits.
            pub const fn hi(self) -> u64 {
                (self.0 >> 64) as u64
            }

            /// The least significant 64 bits.
            pub const fn lo(self) -> u64 {
                self.0 as u64
            }

            /// Builds an id from its two halves.
            pub const fn from_parts(hi: u64, lo: u64) -> Self {
                Self(((hi as u128) << 64) | lo as u128)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:032x}", self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:032x})", stringify!($name), self.0)
            }
        }

        impl FromStr for $name {
            type Err = ParseIdError;

            /// Parses 32 hex digits, optionally with dashes in UUID layout.
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                parse_hex128(s).map(Self)
            }
        }
    };
}

id128!(
    /// A cluster member (a node), identified by its certificate.
    MemberId
);
id128!(
    /// An entity of the simulation.
    EntityId
);
id128!(
    /// One migration attempt.
    MigrationId
);
id128!(
    /// A view's identity: a hash of its members with their capacities and labels.
    ViewId
);

/// A bubble: a spatial region hosted by exactly one member.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
pub struct BubbleId(pub u64);

impl fmt::Display for BubbleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "b{}", self.0)
    }
}

/// A view epoch: monotone, one step or more per view change.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default, Serialize, Deserialize,
)]
pub struct Epoch(pub u64);

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A string that is not a 128-bit hex id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a 128-bit id (want 32 hex digits, dashes allowed): {0:?}")]
pub struct ParseIdError(String);

fn parse_hex128(s: &str) -> Result<u128, ParseIdError> {
    let digits: String = s.chars().filter(|c| *c != '-').collect();
    if digits.len() != 32 || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(ParseIdError(s.chars().take(64).collect()));
    }
    u128::from_str_radix(&digits, 16).map_err(|_| ParseIdError(s.chars().take(64).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_ids_order_as_unsigned_big_endian_numbers() {
        // A signed compare of the high half would put this one first.
        let high_bit = MemberId::from_parts(0x8000_0000_0000_0000, 0);
        let small = MemberId::from_parts(1, u64::MAX);
        assert!(small < high_bit);
        assert!(small.to_string() < high_bit.to_string(), "hex strings sort the same way");
    }

    #[test]
    fn ids_round_trip_through_hex_and_uuid_layout() {
        let id = MemberId::from_parts(0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210);
        assert_eq!(id.to_string().parse::<MemberId>(), Ok(id));
        let uuid = "01234567-89ab-cdef-fedc-ba9876543210";
        assert_eq!(uuid.parse::<MemberId>(), Ok(id));
        assert_eq!((id.hi(), id.lo()), (0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210));
    }

    #[test]
    fn malformed_ids_are_errors_not_panics() {
        for bad in ["", "xyz", "0123", &"f".repeat(33), "0123456789abcdef0123456789abcdeg"] {
            assert!(bad.parse::<MemberId>().is_err(), "{bad:?} parsed");
        }
    }
}
