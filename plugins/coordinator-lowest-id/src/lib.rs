//! Coordinator `lowest-id`, the default: the member with the lowest id, compared as unsigned
//! big-endian 128-bit numbers. The coordinator changes only when the lowest member leaves or a
//! lower one joins.

use luciole_guest_sdk::{CoordinatorPolicy, MemberId, PolicyError, View};

/// The policy.
#[derive(Debug)]
pub struct LowestId;

impl CoordinatorPolicy for LowestId {
    fn choose(view: &View, _current: Option<MemberId>) -> Result<MemberId, PolicyError> {
        // The contract gives members sorted ascending by id (unsigned big-endian), so the
        // lowest is the first; no scan of the view.
        view.members
            .first()
            .map(|m| m.id)
            .ok_or_else(|| PolicyError { message: "empty view".into() })
    }
}

luciole_guest_sdk::export_coordinator!(
    LowestId,
    name = "lowest-id",
    version = env!("CARGO_PKG_VERSION")
);

#[cfg(test)]
mod tests {
    use super::*;
    use luciole_guest_sdk::{Member, Uid};

    fn view(ids: &[u128]) -> View {
        View::of(1, ids.iter().map(|&i| Member { id: Uid::from_u128(i), capacity: 1 }).collect())
    }

    #[test]
    fn the_lowest_unsigned_id_wins_even_with_the_high_bit_set() {
        let v = view(&[1 << 127, 7, 1 << 64]);
        assert_eq!(LowestId::choose(&v, None).unwrap(), Uid::from_u128(7));
    }

    #[test]
    fn an_empty_view_is_declined_not_a_panic() {
        assert!(LowestId::choose(&view(&[]), None).is_err());
    }
}
