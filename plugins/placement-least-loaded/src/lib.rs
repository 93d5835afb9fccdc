//! Placement `least-loaded`: capacity-aware, with bounded movement.
//!
//! 1. A bubble whose current host is still a member (with capacity) stays there.
//! 2. Bubbles without a live host are placed heaviest first, each on the member whose
//!    load/capacity ratio after taking it is lowest (ties to the lower id).
//! 3. Then at most [`moves_max`] bubbles move from the most loaded member (by ratio) to the
//!    least loaded, and only while a move strictly lowers the highest ratio.
//!
//! A bubble's weight is `load + 1` (so bubbles of unknown load still count). Integer arithmetic
//! only: ratios are compared by cross-multiplication, so every node agrees bit for bit.

use luciole_guest_sdk::{Bubble, PlacementPolicy, PolicyError, Uid, View};

/// The policy.
#[derive(Debug)]
pub struct LeastLoaded;

/// Most rebalancing moves per view: 5 % of the bubbles, at least 1.
pub fn moves_max(bubbles: usize) -> usize {
    (bubbles / 20).max(1)
}

fn weight(b: &Bubble) -> u64 {
    u64::from(b.load) + 1
}

struct Host {
    id: Uid,
    index: u32,
    capacity: u64,
    load: u64,
}

/// `(a + extra_a) / cap_a < (b + extra_b) / cap_b`, exactly.
fn lighter(a: &Host, extra_a: u64, b: &Host, extra_b: u64) -> bool {
    let left = u128::from(a.load + extra_a) * u128::from(b.capacity);
    let right = u128::from(b.load + extra_b) * u128::from(a.capacity);
    left < right || (left == right && a.id < b.id)
}

impl PlacementPolicy for LeastLoaded {
    fn place(view: &View, bubbles: &[Bubble]) -> Result<Vec<u32>, PolicyError> {
        let all_zero = view.members.iter().all(|m| m.capacity == 0);
        // Eligible members, with their index in the view.
        let mut hosts: Vec<Host> = Vec::new();
        let mut slot_of = vec![usize::MAX; view.members.len()];
        for (i, m) in view.members.iter().enumerate() {
            if all_zero || m.capacity > 0 {
                slot_of[i] = hosts.len();
                let capacity = if all_zero { 1 } else { m.capacity.into() };
                hosts.push(Host { id: m.id, index: i as u32, capacity, load: 0 });
            }
        }
        if hosts.is_empty() {
            return Err(PolicyError { message: "no members".into() });
        }
        // Host slot per bubble: kept where it is when its host is eligible.
        let mut placed: Vec<Option<usize>> = bubbles
            .iter()
            .map(|b| {
                b.current
                    .and_then(|c| slot_of.get(c as usize).copied())
                    .filter(|&h| h != usize::MAX)
            })
            .collect();
        for (b, h) in bubbles.iter().zip(&placed) {
            if let Some(h) = h {
                hosts[*h].load += weight(b);
            }
        }
        let mut orphans: Vec<usize> = (0..bubbles.len()).filter(|&i| placed[i].is_none()).collect();
        orphans.sort_by(|&a, &b| weight(&bubbles[b]).cmp(&weight(&bubbles[a])).then(a.cmp(&b)));
        for i in orphans {
            let w = weight(&bubbles[i]);
            let best = (1..hosts.len())
                .fold(0, |best, h| if lighter(&hosts[h], w, &hosts[best], w) { h } else { best });
            hosts[best].load += w;
            placed[i] = Some(best);
        }
        for _ in 0..moves_max(bubbles.len()) {
            if !rebalance_once(bubbles, &mut placed, &mut hosts) {
                break;
            }
        }
        Ok(placed.into_iter().map(|h| hosts[h.expect("all placed")].index).collect())
    }
}

/// Moves the heaviest bubble that helps from the most to the least loaded host. Returns whether
/// it moved one.
fn rebalance_once(bubbles: &[Bubble], placed: &mut [Option<usize>], hosts: &mut [Host]) -> bool {
    let order = |a: usize, b: usize| lighter(&hosts[a], 0, &hosts[b], 0);
    let (mut low, mut high) = (0, 0);
    for h in 1..hosts.len() {
        if order(h, low) {
            low = h;
        }
        if order(high, h) {
            high = h;
        }
    }
    if low == high {
        return false;
    }
    // The move helps when the receiver stays strictly below the giver's current ratio.
    let candidate = (0..bubbles.len())
        .filter(|&i| placed[i] == Some(high))
        .filter(|&i| {
            let w = weight(&bubbles[i]);
            u128::from(hosts[low].load + w) * u128::from(hosts[high].capacity)
                < u128::from(hosts[high].load) * u128::from(hosts[low].capacity)
        })
        .max_by(|&a, &b| weight(&bubbles[a]).cmp(&weight(&bubbles[b])).then(b.cmp(&a)));
    let Some(i) = candidate else { return false };
    let w = weight(&bubbles[i]);
    hosts[high].load -= w;
    hosts[low].load += w;
    placed[i] = Some(low);
    true
}

luciole_guest_sdk::export_placement!(
    LeastLoaded,
    name = "least-loaded",
    version = env!("CARGO_PKG_VERSION")
);

#[cfg(test)]
mod tests {
    use super::*;
    use luciole_guest_sdk::Member;

    fn view(members: &[(u128, u32)]) -> View {
        let m = members.iter().map(|&(i, capacity)| Member { id: Uid::from_u128(i), capacity });
        View::of(1, m.collect())
    }

    fn bubbles(loads: &[u32], current: &[Option<u32>]) -> Vec<Bubble> {
        loads
            .iter()
            .enumerate()
            .map(|(i, &load)| Bubble {
                id: i as u64,
                entity_count: 0,
                load,
                bounds: None,
                current: current.get(i).copied().flatten(),
            })
            .collect()
    }

    fn load_of(placed: &[u32], b: &[Bubble], member: u32) -> u64 {
        placed.iter().zip(b).filter(|(m, _)| **m == member).map(|(_, b)| weight(b)).sum()
    }

    #[test]
    fn load_follows_capacity() {
        let b = bubbles(&[9; 30], &[]);
        let placed = LeastLoaded::place(&view(&[(1, 100), (2, 200)]), &b).unwrap();
        assert_eq!(placed.len(), 30);
        assert_eq!((load_of(&placed, &b, 0), load_of(&placed, &b, 1)), (100, 200));
    }

    #[test]
    fn a_departed_members_bubbles_move_and_other_moves_are_bounded() {
        let first =
            LeastLoaded::place(&view(&[(1, 1), (2, 1), (3, 1)]), &bubbles(&[0; 100], &[])).unwrap();
        // Member 3 (index 2) leaves: its bubbles have no current host.
        let current: Vec<Option<u32>> = first.iter().map(|&m| (m != 2).then_some(m)).collect();
        let second =
            LeastLoaded::place(&view(&[(1, 1), (2, 1)]), &bubbles(&[0; 100], &current)).unwrap();
        let orphaned = current.iter().filter(|c| c.is_none()).count();
        let moved = first.iter().zip(&second).filter(|(x, y)| x != y).count();
        assert!(moved >= orphaned && moved <= orphaned + moves_max(100), "{moved} vs {orphaned}");
        assert!(second.iter().all(|&m| m < 2));
        // A newcomer (index 2 again, id 4) gets bubbles only through bounded rebalancing.
        let current: Vec<Option<u32>> = second.iter().map(|&m| Some(m)).collect();
        let third =
            LeastLoaded::place(&view(&[(1, 1), (2, 1), (4, 1)]), &bubbles(&[0; 100], &current))
                .unwrap();
        let moved = second.iter().zip(&third).filter(|(x, y)| x != y).count();
        assert_eq!(moved, moves_max(100));
    }
}
