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

use luciole_guest_sdk::{Assignment, Bubble, PlacementPolicy, PolicyError, Uid, View};

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
    fn place(
        view: View,
        bubbles: Vec<Bubble>,
        current: Vec<Assignment>,
    ) -> Result<Vec<Assignment>, PolicyError> {
        let all_zero = view.members.iter().all(|m| m.capacity == 0);
        let mut hosts: Vec<Host> = view
            .members
            .iter()
            .filter(|m| all_zero || m.capacity > 0)
            .map(|m| Host {
                id: m.id,
                capacity: if all_zero { 1 } else { m.capacity.into() },
                load: 0,
            })
            .collect();
        if hosts.is_empty() {
            return Err(PolicyError { message: "no members".into() });
        }
        // Host index per bubble, in `bubbles` order.
        let mut placed: Vec<Option<usize>> = bubbles
            .iter()
            .map(|b| {
                let at = current.binary_search_by(|a| a.bubble.cmp(&b.id)).ok()?;
                hosts.binary_search_by(|h| h.id.cmp(&current[at].member)).ok()
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
            if !rebalance_once(&bubbles, &mut placed, &mut hosts) {
                break;
            }
        }
        Ok(bubbles
            .iter()
            .zip(placed)
            .map(|(b, h)| Assignment { bubble: b.id, member: hosts[h.expect("all placed")].id })
            .collect())
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
    use luciole_guest_sdk::{Bounds, Member, Point};

    fn view(members: &[(u128, u32)]) -> View {
        View {
            epoch: 1,
            id: Uid { hi: 0, lo: 0 },
            members: members
                .iter()
                .map(|&(i, capacity)| Member { id: Uid::from_u128(i), capacity })
                .collect(),
            labels: vec![],
            joined: vec![],
            left: vec![],
            stable: true,
            seed: 0,
        }
    }

    fn bubbles(loads: &[u32]) -> Vec<Bubble> {
        let p = Point { x: 0.0, y: 0.0, z: 0.0 };
        let bounds = Bounds { min: p, max: p };
        loads
            .iter()
            .enumerate()
            .map(|(id, &load)| Bubble { id: id as u64, bounds, entity_count: 0, load })
            .collect()
    }

    fn load_of(placed: &[Assignment], b: &[Bubble], member: u128) -> u64 {
        placed
            .iter()
            .filter(|a| a.member == Uid::from_u128(member))
            .map(|a| weight(&b[a.bubble as usize]))
            .sum()
    }

    #[test]
    fn load_follows_capacity() {
        let b = bubbles(&[9; 30]);
        let placed = LeastLoaded::place(view(&[(1, 100), (2, 200)]), b.clone(), vec![]).unwrap();
        assert_eq!(placed.len(), 30);
        assert_eq!((load_of(&placed, &b, 1), load_of(&placed, &b, 2)), (100, 200));
    }

    #[test]
    fn a_departed_members_bubbles_move_and_other_moves_are_bounded() {
        let b = bubbles(&[0; 100]);
        let first = LeastLoaded::place(view(&[(1, 1), (2, 1), (3, 1)]), b.clone(), vec![]).unwrap();
        let second = LeastLoaded::place(view(&[(1, 1), (2, 1)]), b.clone(), first.clone()).unwrap();
        let orphaned = first.iter().filter(|a| a.member == Uid::from_u128(3)).count();
        let moved = first.iter().zip(&second).filter(|(x, y)| x.member != y.member).count();
        assert!(moved >= orphaned && moved <= orphaned + moves_max(100), "{moved} vs {orphaned}");
        assert!(second.iter().all(|a| a.member != Uid::from_u128(3)));
        // A newcomer gets bubbles only through bounded rebalancing.
        let third = LeastLoaded::place(view(&[(1, 1), (2, 1), (4, 1)]), b, second.clone()).unwrap();
        let moved = second.iter().zip(&third).filter(|(x, y)| x.member != y.member).count();
        assert_eq!(moved, moves_max(100));
    }
}
