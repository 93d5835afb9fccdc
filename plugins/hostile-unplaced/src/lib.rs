//! Hostile test policy: never deploy. Exists so the tests can show the host survives it and
//! answers from the fallback within the same call.

use luciole_guest_sdk::{Bubble, PlacementPolicy, PolicyError, View};

/// Places every bubble but the last.
#[derive(Debug)]
pub struct Unplaced;

impl PlacementPolicy for Unplaced {
    fn place(view: &View, bubbles: &[Bubble]) -> Result<Vec<u32>, PolicyError> {
        // Behaves on tiny views (such as the host's smoke call) and goes bad on real ones: a bug
        // that shows only on larger inputs.
        if view.members.len() <= 2 {
            return Ok(vec![0; bubbles.len()]);
        }
        Ok(vec![0; bubbles.len() - 1])
    }
}

luciole_guest_sdk::export_placement!(Unplaced, name = "hostile-unplaced", version = "0.1.0");
