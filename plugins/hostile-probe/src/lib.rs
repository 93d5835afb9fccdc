//! Hostile test policy: never deploy. Grows its memory one 64 KiB page at a time until the
//! node refuses, then answers the member at `pages % members`: its answer depends on the
//! node's memory cap, which is why the cap is a cluster setting every node shares.

use luciole_guest_sdk::{CoordinatorPolicy, MemberId, PolicyError, View};

/// Measures the sandbox.
#[derive(Debug)]
pub struct Probe;

#[cfg(target_arch = "wasm32")]
fn pages_granted() -> usize {
    let mut pages = 0;
    while core::arch::wasm32::memory_grow(0, 1) != usize::MAX {
        pages += 1;
    }
    pages
}

#[cfg(not(target_arch = "wasm32"))]
fn pages_granted() -> usize {
    0
}

impl CoordinatorPolicy for Probe {
    fn choose(view: &View, _current: Option<MemberId>) -> Result<MemberId, PolicyError> {
        Ok(view.members[pages_granted() % view.members.len()].id)
    }
}

luciole_guest_sdk::export_coordinator!(Probe, name = "hostile-probe", version = "0.1.0");
