//! Placement `rendezvous`, the default: every bubble goes to the member with the highest
//! pseudo-random weight for that (member, bubble) pair; ties go to the lower id. When a member
//! leaves, only its bubbles move; when one joins, it takes about `1/n` of the bubbles and
//! nothing else moves.
//!
//! Members with capacity zero host nothing, unless all members have capacity zero. The weight is
//! `mix(key ^ bubble * 0x9e3779b97f4a7c15)` with `key = mix(hi ^ mix(lo))` and `mix` the
//! splitmix64 finaliser: integer arithmetic only, so every node and the host's built-in copy
//! agree bit for bit.

use luciole_guest_sdk::{Bubble, PlacementPolicy, PolicyError, Uid, View};

/// The policy.
#[derive(Debug)]
pub struct Rendezvous;

/// The splitmix64 finaliser.
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The per-member half of the weight.
pub fn member_key(id: Uid) -> u64 {
    mix(id.hi ^ mix(id.lo))
}

impl PlacementPolicy for Rendezvous {
    fn place(view: &View, bubbles: &[Bubble]) -> Result<Vec<u32>, PolicyError> {
        let all_zero = view.members.iter().all(|m| m.capacity == 0);
        let (keys, index): (Vec<u64>, Vec<u32>) = (0..view.members.len() as u32)
            .filter(|&i| all_zero || view.members[i as usize].capacity > 0)
            .map(|i| (member_key(view.members[i as usize].id), i))
            .unzip();
        if keys.is_empty() {
            return Err(PolicyError { message: "no members".into() });
        }
        let placed = bubbles
            .iter()
            .map(|b| {
                let salt = b.id.wrapping_mul(0x9e37_79b9_7f4a_7c15);
                let (mut best_w, mut best) = (mix(keys[0] ^ salt), 0);
                // Branch-free: one basic block per member (cheaper under fuel metering too).
                // Members are in ascending id order, so `>` keeps the lower id on ties.
                for (i, &key) in keys.iter().enumerate().skip(1) {
                    let w = mix(key ^ salt);
                    let better = w > best_w;
                    best_w = if better { w } else { best_w };
                    best = if better { i } else { best };
                }
                index[best]
            })
            .collect();
        Ok(placed)
    }
}

luciole_guest_sdk::export_placement!(
    Rendezvous,
    name = "rendezvous",
    version = env!("CARGO_PKG_VERSION")
);

#[cfg(test)]
mod tests {
    use super::*;
    use luciole_guest_sdk::Member;

    fn view(ids: &[u128]) -> View {
        View::of(1, ids.iter().map(|&i| Member { id: Uid::from_u128(i), capacity: 1 }).collect())
    }

    fn bubbles(n: u64) -> Vec<Bubble> {
        let b = |id| Bubble { id, entity_count: 0, load: 0, bounds: None, current: None };
        (0..n).map(b).collect()
    }

    #[test]
    fn a_joining_member_only_takes_bubbles_and_nothing_else_moves() {
        let (v3, v4) = (view(&[10, 20, 30]), view(&[10, 20, 30, 40]));
        let before = Rendezvous::place(&v3, &bubbles(300)).unwrap();
        let after = Rendezvous::place(&v4, &bubbles(300)).unwrap();
        for (b, a) in before.iter().zip(&after) {
            // Indices of 10, 20, 30 are the same in both views; 40 is index 3.
            assert!(a == b || *a == 3, "{b} -> {a}");
        }
        let taken = after.iter().filter(|&&a| a == 3).count();
        assert!((40..=110).contains(&taken), "the newcomer takes about a quarter: {taken}");
    }
}
