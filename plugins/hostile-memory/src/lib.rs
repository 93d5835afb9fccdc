//! Hostile test policy: never deploy. Exists so the tests can show the host survives it and
//! answers from the fallback within the same call.

use luciole_guest_sdk::{CoordinatorPolicy, MemberId, PolicyError, View};

/// Allocates 16 MiB blocks until something gives.
#[derive(Debug)]
pub struct Bomb;

impl CoordinatorPolicy for Bomb {
    fn choose(view: &View, _current: Option<MemberId>) -> Result<MemberId, PolicyError> {
        // Behaves on tiny views (such as the host's smoke call) and goes bad on real ones: a bug
        // that shows only on larger inputs.
        if view.members.len() <= 2 {
            return Ok(view.members[0].id);
        }
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            // Reserve 16 MiB at a time, touching one byte: memory grows, fuel barely moves.
            let mut block: Vec<u8> = Vec::with_capacity(16 << 20);
            block.push(1);
            hoard.push(std::hint::black_box(block));
            if hoard.len() == usize::MAX {
                return Ok(view.members[0].id);
            }
        }
    }
}

luciole_guest_sdk::export_coordinator!(Bomb, name = "hostile-memory", version = "0.1.0");
