//! Hostile test policy: never deploy. Exists so the tests can show the host survives it and
//! answers from the fallback within the same call.

use luciole_guest_sdk::{CoordinatorPolicy, MemberId, PolicyError, View};

/// Panics on every call.
#[derive(Debug)]
pub struct Panic;

impl CoordinatorPolicy for Panic {
    fn choose(view: &View, _current: Option<MemberId>) -> Result<MemberId, PolicyError> {
        // Behaves on tiny views (such as the host's smoke call) and goes bad on real ones: a bug
        // that shows only on larger inputs.
        if view.members.len() > 2 {
            panic!("hostile-trap panics on purpose");
        }
        Ok(view.members[0].id)
    }
}

luciole_guest_sdk::export_coordinator!(Panic, name = "hostile-trap", version = "0.1.0");
