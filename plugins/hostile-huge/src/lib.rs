//! Hostile test policy: never deploy. Exists so the tests can show the host survives it and
//! answers from the fallback within the same call.

use luciole_guest_sdk::{Assignment, Bubble, PlacementPolicy, PolicyError, View};

/// Returns two million assignments (48 MB in guest memory, under the 64 MiB default cap).
#[derive(Debug)]
pub struct Huge;

impl PlacementPolicy for Huge {
    fn place(
        view: View,
        bubbles: Vec<Bubble>,
        _current: Vec<Assignment>,
    ) -> Result<Vec<Assignment>, PolicyError> {
        // Behaves on tiny views (such as the host's smoke call) and goes bad on real ones: a bug
        // that shows only on larger inputs.
        if view.members.len() <= 2 {
            let member = view.members[0].id;
            return Ok(bubbles.iter().map(|b| Assignment { bubble: b.id, member }).collect());
        }
        let member = view.members[0].id;
        Ok((0..2_000_000u64).map(|bubble| Assignment { bubble, member }).collect())
    }
}

luciole_guest_sdk::export_placement!(Huge, name = "hostile-huge", version = "0.1.0");
