//! Coordinator `sticky`: keep the current coordinator while it is still in the view; otherwise
//! the member with the lowest id. Fewer coordinator changes than `lowest-id` when members with
//! lower ids join.

use luciole_guest_sdk::{CoordinatorPolicy, MemberId, PolicyError, View};

/// The policy.
#[derive(Debug)]
pub struct Sticky;

impl CoordinatorPolicy for Sticky {
    fn choose(view: &View, current: Option<MemberId>) -> Result<MemberId, PolicyError> {
        if let Some(current) = current {
            // Members are sorted by id: binary search.
            if view.members.binary_search_by(|m| m.id.cmp(&current)).is_ok() {
                return Ok(current);
            }
        }
        view.members
            .iter()
            .map(|m| m.id)
            .min()
            .ok_or_else(|| PolicyError { message: "empty view".into() })
    }
}

luciole_guest_sdk::export_coordinator!(
    Sticky,
    name = "sticky",
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
    fn the_current_coordinator_stays_while_it_is_a_member() {
        let got = Sticky::choose(&view(&[1, 5, 9]), Some(Uid::from_u128(9))).unwrap();
        assert_eq!(got, Uid::from_u128(9), "a lower id joining does not move the coordinator");
    }

    #[test]
    fn a_departed_coordinator_is_replaced_by_the_lowest_id() {
        let got = Sticky::choose(&view(&[5, 9]), Some(Uid::from_u128(1))).unwrap();
        assert_eq!(got, Uid::from_u128(5));
        assert_eq!(Sticky::choose(&view(&[9, 5]), None).unwrap(), Uid::from_u128(5));
    }
}
