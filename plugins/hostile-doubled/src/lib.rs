//! Hostile test policy: never deploy. Exists so the tests can show the host survives it and
//! answers from the fallback within the same call.

use luciole_guest_sdk::{Assignment, Bubble, PlacementPolicy, PolicyError, View};

/// Places every bubble, and the first one a second time on another member.
#[derive(Debug)]
pub struct Doubled;

impl PlacementPolicy for Doubled {
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
        let first = view.members[0].id;
        let last = view.members[view.members.len() - 1].id;
        let mut placed: Vec<_> =
            bubbles.iter().map(|b| Assignment { bubble: b.id, member: first }).collect();
        placed.push(Assignment { bubble: bubbles[0].id, member: last });
        Ok(placed)
    }
}

luciole_guest_sdk::export_placement!(Doubled, name = "hostile-doubled", version = "0.1.0");
