//! Placement `rendezvous`, the default: every bubble goes to the member with the highest
//! pseudo-random weight for that (member, bubble) pair; ties go to the lower id. When a member
//! leaves, only its bubbles move; when one joins, it takes about `1/n` of the bubbles and
//! nothing else moves.
//!
//! Members with capacity zero host nothing, unless all members have capacity zero. The weight is
//! `mix(key ^ bubble * 0x9e3779b97f4a7c15)` with `key = mix(hi ^ mix(lo))` and `mix` the
//! splitmix64 finaliser: integer arithmetic only, so every node and the host's built-in copy
//! agree bit for bit.

use luciole_guest_sdk::{Assignment, Bubble, PlacementPolicy, PolicyError, Uid, View};

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
    fn place(
        view: View,
        bubbles: Vec<Bubble>,
        _current: Vec<Assignment>,
    ) -> Result<Vec<Assignment>, PolicyError> {
        let all_zero = view.members.iter().all(|m| m.capacity == 0);
        let hosts: Vec<Uid> =
            view.members.iter().filter(|m| all_zero || m.capacity > 0).map(|m| m.id).collect();
        let keys: Vec<u64> = hosts.iter().map(|&id| member_key(id)).collect();
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
                Assignment { bubble: b.id, member: hosts[best] }
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
    use luciole_guest_sdk::{Bounds, Member, Point};

    fn view(ids: &[u128]) -> View {
        View {
            epoch: 1,
            id: Uid { hi: 0, lo: 0 },
            members: ids.iter().map(|&i| Member { id: Uid::from_u128(i), capacity: 1 }).collect(),
            labels: vec![],
            joined: vec![],
            left: vec![],
            stable: true,
            seed: 0,
        }
    }

    fn bubbles(n: u64) -> Vec<Bubble> {
        let p = Point { x: 0.0, y: 0.0, z: 0.0 };
        (0..n)
            .map(|id| Bubble { id, bounds: Bounds { min: p, max: p }, entity_count: 0, load: 0 })
            .collect()
    }

    #[test]
    fn a_joining_member_only_takes_bubbles_and_nothing_else_moves() {
        let before = Rendezvous::place(view(&[10, 20, 30]), bubbles(300), vec![]).unwrap();
        let after = Rendezvous::place(view(&[10, 20, 30, 40]), bubbles(300), vec![]).unwrap();
        for (b, a) in before.iter().zip(&after) {
            assert!(a.member == b.member || a.member == Uid::from_u128(40), "{b:?} -> {a:?}");
        }
        let taken = after.iter().filter(|a| a.member == Uid::from_u128(40)).count();
        assert!((40..=110).contains(&taken), "the newcomer takes about a quarter: {taken}");
    }
}
