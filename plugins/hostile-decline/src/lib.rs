//! Test policy that declines every real call: a policy may decline, the host then answers from
//! its fallback without quarantining anyone. Never deploy.

use luciole_guest_sdk::{CoordinatorPolicy, MemberId, PolicyError, View};

/// Declines.
#[derive(Debug)]
pub struct Decline;

impl CoordinatorPolicy for Decline {
    fn choose(view: &View, _current: Option<MemberId>) -> Result<MemberId, PolicyError> {
        if view.members.len() <= 2 {
            return Ok(view.members[0].id);
        }
        Err(PolicyError { message: "no opinion on views this large".into() })
    }
}

luciole_guest_sdk::export_coordinator!(Decline, name = "hostile-decline", version = "0.1.0");
