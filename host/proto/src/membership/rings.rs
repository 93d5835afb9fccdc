//! The monitoring topology: K pseudo-random rings over the members of a view.
//!
//! On ring `r` members are ordered by `hash(r, id)`; each member *monitors* its successor, so a
//! subject's **observers** are its predecessors, one per ring. Every node computes the same
//! rings from the same view, with no messages: who monitors whom is a function of the view.
//! A joiner's expected observers are the members that would precede it if it were in the view.

use crate::ids::MemberId;
use crate::rand::{GOLDEN, mix};

/// Most rings: enough that a member is watched by many independent observers, few enough that
/// monitoring traffic stays small.
pub const RINGS_MAX: usize = 10;

/// The rings for a view of `members` members by default: `min(10, members - 1)`, at least 1.
pub fn rings_for(members: usize) -> usize {
    members.saturating_sub(1).clamp(1, RINGS_MAX)
}

/// K rings over a set of members.
#[derive(Clone, Debug)]
pub struct Rings {
    /// Per ring, the members in ring order with their position key.
    rings: Vec<Vec<(u64, MemberId)>>,
}

impl Rings {
    /// The `k` rings (1..=[`RINGS_MAX`]) over `members` (any order; duplicates ignored).
    pub fn new(members: &[MemberId], k: usize) -> Self {
        assert!((1..=RINGS_MAX).contains(&k), "ring count {k} outside 1..={RINGS_MAX}");
        let mut sorted = members.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        let rings = (0..k)
            .map(|r| {
                let mut ring: Vec<(u64, MemberId)> =
                    sorted.iter().map(|&m| (position(r, m), m)).collect();
                ring.sort_unstable();
                ring
            })
            .collect();
        Self { rings }
    }

    /// How many rings.
    pub fn len(&self) -> usize {
        self.rings.len()
    }

    /// Whether `m` is on the rings.
    pub fn contains(&self, m: MemberId) -> bool {
        self.rings.first().is_some_and(|ring| ring.binary_search(&(position(0, m), m)).is_ok())
    }

    /// The members on the rings, in the first ring's order.
    pub fn members(&self) -> impl Iterator<Item = MemberId> + '_ {
        self.rings.first().into_iter().flatten().map(|(_, m)| *m)
    }

    /// Whether there are no members.
    pub fn is_empty(&self) -> bool {
        self.rings.first().is_none_or(Vec::is_empty)
    }

    /// The observers of `subject`: its predecessor on each ring, as `(ring, observer)`. For a
    /// member of the rings. A member alone on the rings has no observers.
    pub fn observers_of(&self, subject: MemberId) -> Vec<(usize, MemberId)> {
        self.neighbours(subject, true)
    }

    /// The first `n` members after `m` on the first ring (fewer if the ring is smaller), `m`
    /// a member: who welcomes a joiner besides the members that vouched for it, so that it
    /// hears its first view from enough distinct members even when its observers coincide.
    pub fn followers(&self, m: MemberId, n: usize) -> Vec<MemberId> {
        let Some(ring) = self.rings.first() else { return Vec::new() };
        let Ok(at) = ring.binary_search(&(position(0, m), m)) else { return Vec::new() };
        (1..ring.len()).take(n).map(|i| ring[(at + i) % ring.len()].1).collect()
    }

    /// The subjects `observer` monitors: its successor on each ring.
    pub fn subjects_of(&self, observer: MemberId) -> Vec<(usize, MemberId)> {
        self.neighbours(observer, false)
    }

    /// The members that would observe `joiner` were it on the rings (its would-be
    /// predecessors): who vouches for a join.
    pub fn expected_observers_of(&self, joiner: MemberId) -> Vec<(usize, MemberId)> {
        let mut out = Vec::with_capacity(self.rings.len());
        for (r, ring) in self.rings.iter().enumerate() {
            if ring.is_empty() {
                continue;
            }
            let key = (position(r, joiner), joiner);
            let at = ring.partition_point(|e| *e < key);
            let pred = if at == 0 { ring[ring.len() - 1] } else { ring[at - 1] };
            if pred.1 != joiner {
                out.push((r, pred.1));
            }
        }
        out
    }

    fn neighbours(&self, m: MemberId, predecessors: bool) -> Vec<(usize, MemberId)> {
        let mut out = Vec::with_capacity(self.rings.len());
        for (r, ring) in self.rings.iter().enumerate() {
            let key = (position(r, m), m);
            let Ok(at) = ring.binary_search(&key) else { continue };
            if ring.len() < 2 {
                continue;
            }
            let n = ring.len();
            let other = if predecessors { ring[(at + n - 1) % n] } else { ring[(at + 1) % n] };
            out.push((r, other.1));
        }
        out
    }
}

/// The position of `m` on ring `r`: the splitmix64 finaliser of the id mixed with the ring.
fn position(r: usize, m: MemberId) -> u64 {
    let hi = (m.0 >> 64) as u64;
    let lo = m.0 as u64;
    mix(mix(lo ^ (r as u64).wrapping_mul(GOLDEN)) ^ hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: u128) -> Vec<MemberId> {
        (1..=n).map(|i| MemberId(i * 0x1_0000_0001)).collect()
    }

    #[test]
    fn every_member_is_observed_once_per_ring_by_its_predecessor() {
        let members = ids(50);
        let rings = Rings::new(&members, 10);
        for &m in &members {
            let obs = rings.observers_of(m);
            assert_eq!(obs.len(), 10);
            for &(r, o) in &obs {
                assert_ne!(o, m);
                assert!(rings.subjects_of(o).contains(&(r, m)), "observer {o} of {m} on ring {r}");
            }
        }
    }

    #[test]
    fn rings_do_not_depend_on_input_order() {
        let members = ids(30);
        let mut shuffled = members.clone();
        shuffled.reverse();
        shuffled.swap(3, 17);
        let (a, b) = (Rings::new(&members, 7), Rings::new(&shuffled, 7));
        for &m in &members {
            assert_eq!(a.observers_of(m), b.observers_of(m));
        }
    }

    #[test]
    fn rings_differ_so_observers_are_spread() {
        let members = ids(100);
        let rings = Rings::new(&members, 10);
        let distinct = |m| {
            let mut o: Vec<MemberId> = rings.observers_of(m).into_iter().map(|(_, o)| o).collect();
            o.sort();
            o.dedup();
            o.len()
        };
        let mean = members.iter().map(|&m| distinct(m)).sum::<usize>() as f64 / 100.0;
        assert!(mean > 9.0, "observers per member should be mostly distinct: {mean}");
    }

    #[test]
    fn a_joiner_is_expected_to_be_observed_by_its_future_predecessors() {
        let members = ids(20);
        let joiner = MemberId(0xdead_beef);
        let before = Rings::new(&members, 5).expected_observers_of(joiner);
        let mut with = members.clone();
        with.push(joiner);
        let after = Rings::new(&with, 5).observers_of(joiner);
        assert_eq!(before, after);
    }

    #[test]
    fn tiny_views_have_few_or_no_observers() {
        assert!(Rings::new(&ids(1), 1).observers_of(ids(1)[0]).is_empty());
        let two = ids(2);
        assert_eq!(Rings::new(&two, 1).observers_of(two[0]), vec![(0, two[1])]);
        assert_eq!(rings_for(1), 1);
        assert_eq!(rings_for(4), 3);
        assert_eq!(rings_for(1000), 10);
    }
}
