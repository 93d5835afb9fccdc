//! Hostile test policy: never deploy. Exists so the tests can show the host survives it and
//! answers from the fallback within the same call.

use luciole_guest_sdk::{Bubble, PlacementPolicy, PolicyError, View};

/// Places the last bubble on a member index one past the end of the view. (Placing a bubble
/// twice cannot even be written: the contract answers one member per bubble.)
#[derive(Debug)]
pub struct BadIndex;

impl PlacementPolicy for BadIndex {
    fn place(view: &View, bubbles: &[Bubble]) -> Result<Vec<u32>, PolicyError> {
        // Behaves on tiny views (such as the host's smoke call) and goes bad on real ones: a bug
        // that shows only on larger inputs.
        if view.members.len() <= 2 {
            return Ok(vec![0; bubbles.len()]);
        }
        let mut placed = vec![0; bubbles.len()];
        placed[bubbles.len() - 1] = view.members.len() as u32;
        Ok(placed)
    }
}

luciole_guest_sdk::export_placement!(BadIndex, name = "hostile-bad-index", version = "0.1.0");
