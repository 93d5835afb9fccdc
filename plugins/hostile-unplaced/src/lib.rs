//! Hostile test policy: never deploy. Exists so the tests can show the host survives it and
//! answers from the fallback within the same call.

use luciole_guest_sdk::{Assignment, Bubble, PlacementPolicy, PolicyError, View};

/// Places every bubble but the last.
#[derive(Debug)]
pub struct Unplaced;

impl PlacementPolicy for Unplaced {
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
        let n = bubbles.len().saturating_sub(1);
        Ok(bubbles[..n].iter().map(|b| Assignment { bubble: b.id, member }).collect())
    }
}

luciole_guest_sdk::export_placement!(Unplaced, name = "hostile-unplaced", version = "0.1.0");
