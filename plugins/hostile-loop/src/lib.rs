//! Hostile test policy: never deploy. Exists so the tests can show the host survives it and
//! answers from the fallback within the same call.

use luciole_guest_sdk::{CoordinatorPolicy, MemberId, PolicyError, View};

/// Loops forever.
#[derive(Debug)]
pub struct Spin;

impl CoordinatorPolicy for Spin {
    fn choose(view: &View, _current: Option<MemberId>) -> Result<MemberId, PolicyError> {
        // Behaves on tiny views (such as the host's smoke call) and goes bad on real ones: a bug
        // that shows only on larger inputs.
        if view.members.len() <= 2 {
            return Ok(view.members[0].id);
        }
        let mut x = 0u64;
        loop {
            x = std::hint::black_box(x.wrapping_add(1));
        }
    }
}

luciole_guest_sdk::export_coordinator!(Spin, name = "hostile-loop", version = "0.1.0");
