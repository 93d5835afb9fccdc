//! Hostile test policy: never deploy. Exists so the tests can show the host survives it and
//! answers from the fallback within the same call.

use luciole_guest_sdk::{CoordinatorPolicy, MemberId, PolicyError, Uid, View};

/// Names a member that is not in the view.
#[derive(Debug)]
pub struct Outsider;

impl CoordinatorPolicy for Outsider {
    fn choose(_view: &View, _current: Option<MemberId>) -> Result<MemberId, PolicyError> {
        Ok(Uid { hi: 0xdead, lo: 0xbeef })
    }
}

luciole_guest_sdk::export_coordinator!(Outsider, name = "hostile-outsider", version = "0.1.0");
