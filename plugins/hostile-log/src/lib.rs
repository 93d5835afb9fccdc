//! Hostile test policy: never deploy. Logs one large message 30,000 times per call: 64 KiB on a
//! 3-member view, 32 MiB on larger ones (logging 32 MiB 400 times once took 19.7 s of host time
//! for a single accepted call). The host must charge what crosses into it against the call's
//! budget and stop the call at the same point on every node.

use luciole_guest_sdk::{CoordinatorPolicy, Level, MemberId, PolicyError, View, log};

/// Logs without bound.
#[derive(Debug)]
pub struct Chatter;

impl CoordinatorPolicy for Chatter {
    fn choose(view: &View, _current: Option<MemberId>) -> Result<MemberId, PolicyError> {
        // Behaves on tiny views (such as the host's smoke call) and goes bad on real ones.
        if view.members.len() <= 2 {
            return Ok(view.members[0].id);
        }
        // Large enough to be refused whole; `LUCIOLE` so it is not all zero pages.
        let size = if view.members.len() == 3 { 64 << 10 } else { 32 << 20 };
        let message = "LUCIOLE ".repeat(size / 8);
        for _ in 0..30_000 {
            log(Level::Info, &message, &[("size", "32 MiB")]);
        }
        Ok(view.members[0].id)
    }
}

luciole_guest_sdk::export_coordinator!(Chatter, name = "hostile-log", version = "0.1.0");
