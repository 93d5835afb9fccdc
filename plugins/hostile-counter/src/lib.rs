//! Hostile test policy: never deploy. Counts its calls in a static and answers the member at
//! `count % members`: an instance that keeps its memory between calls gives a different
//! coordinator for the same view at every call, and two nodes that made different numbers of
//! calls disagree.

use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

use luciole_guest_sdk::{CoordinatorPolicy, MemberId, PolicyError, View};

static CALLS: AtomicU32 = AtomicU32::new(0);

/// Remembers.
#[derive(Debug)]
pub struct Counter;

impl CoordinatorPolicy for Counter {
    fn choose(view: &View, _current: Option<MemberId>) -> Result<MemberId, PolicyError> {
        let n = CALLS.fetch_add(1, Relaxed) as usize;
        Ok(view.members[n % view.members.len()].id)
    }
}

luciole_guest_sdk::export_coordinator!(Counter, name = "hostile-counter", version = "0.1.0");
