//! Test policy with a deliberate bug, never deploy: the lowest id coordinates, except in views
//! of more than 500 members, where it names a member that is not in the view. Small tests miss
//! it; `luciole policy test` (whose built-in inputs go to 1,000 members) must not.

use luciole_guest_sdk::{CoordinatorPolicy, MemberId, PolicyError, Uid, View};

/// Right on small views, wrong on large ones.
#[derive(Debug)]
pub struct BuggyLargeView;

impl CoordinatorPolicy for BuggyLargeView {
    fn choose(view: &View, _current: Option<MemberId>) -> Result<MemberId, PolicyError> {
        if view.members.len() > 500 {
            // The bug: an id made up from the view's size.
            return Ok(Uid { hi: 0, lo: view.members.len() as u64 });
        }
        view.members
            .first()
            .map(|m| m.id)
            .ok_or_else(|| PolicyError { message: "an empty view".into() })
    }
}

luciole_guest_sdk::export_coordinator!(
    BuggyLargeView,
    name = "buggy-large-view",
    version = "0.1.0"
);
