//! Verifying a view learned from others. A member that fell behind, and a joiner, learn a view
//! they did not see decided from `Welcome` messages. Without signed notes one member's word
//! cannot be checked, so a welcome counts only from a sender the receiver already trusts for
//! this (a member of its current view; for a joiner, its seeds and the observers a seed named),
//! only if the sender is itself in the view it sends, and the view is installed once
//! [`WELCOME_CONFIRMATIONS`] distinct such senders sent the same epoch and view (fewer only
//! when fewer trusted senders exist at all: a view of two, a one-member seed cluster). One
//! lying member therefore cannot move anyone to a view of its making.

use std::collections::BTreeMap;

use super::node::ViewChange;
use crate::ids::{Epoch, MemberId};

/// Distinct senders that must send the same view before it is installed: one more than the
/// members that may lie together.
pub const WELCOME_CONFIRMATIONS: usize = 2;

/// Most senders whose welcomes are held at once; a new sender beyond that replaces the one
/// whose welcome is the oldest epoch.
pub const WELCOME_SENDERS_MAX: usize = 8;

/// Welcomes received and not yet confirmed, the newest per sender.
#[derive(Clone, Debug, Default)]
pub struct Welcomes {
    by_sender: BTreeMap<MemberId, (Epoch, ViewChange)>,
}

impl Welcomes {
    /// Records `from`'s welcome to `view` at `epoch` (the caller checked that `from` is one of
    /// the `trusted` senders it trusts). Returns the view once [`WELCOME_CONFIRMATIONS`]
    /// distinct senders sent the same, or all `trusted` ones if there are fewer (at least 1).
    pub fn offer(
        &mut self,
        from: MemberId,
        epoch: Epoch,
        view: ViewChange,
        trusted: usize,
    ) -> Option<(Epoch, ViewChange)> {
        let needed = WELCOME_CONFIRMATIONS.min(trusted).max(1);
        if !view.is_valid() || view.members.binary_search(&from).is_err() {
            return None;
        }
        if !self.by_sender.contains_key(&from) && self.by_sender.len() >= WELCOME_SENDERS_MAX {
            let oldest = self.by_sender.iter().min_by_key(|(_, (e, _))| *e).map(|(m, _)| *m);
            self.by_sender.remove(&oldest.expect("full, so not empty"));
        }
        self.by_sender.insert(from, (epoch, view));
        let (epoch, view) = &self.by_sender[&from];
        let same = self.by_sender.values().filter(|(e, v)| e == epoch && v == view).count();
        (same >= needed).then(|| (*epoch, view.clone()))
    }

    /// Forgets everything (a view was installed).
    pub fn clear(&mut self) {
        self.by_sender.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(ids: &[u128]) -> ViewChange {
        crate::membership::testing::first(ids.iter().map(|&i| MemberId(i)).collect())
    }

    #[test]
    fn a_view_is_installed_once_enough_distinct_senders_in_it_agree() {
        let mut w = Welcomes::default();
        let v = view(&[1, 2, 3]);
        assert_eq!(w.offer(MemberId(1), Epoch(4), v.clone(), 5), None, "one of five trusted");
        assert_eq!(w.offer(MemberId(1), Epoch(4), v.clone(), 2), None, "the same sender again");
        // A sender outside the view it sends does not count.
        assert_eq!(w.offer(MemberId(9), Epoch(4), v.clone(), 2), None);
        // A different view or epoch is not a confirmation.
        assert_eq!(w.offer(MemberId(2), Epoch(5), v.clone(), 2), None);
        assert_eq!(w.offer(MemberId(3), Epoch(4), view(&[1, 3]), 2), None);
        assert_eq!(w.offer(MemberId(2), Epoch(4), v.clone(), 2), Some((Epoch(4), v.clone())));
        assert_eq!(w.offer(MemberId(2), Epoch(4), v.clone(), 1), Some((Epoch(4), v)));
    }

    #[test]
    fn held_welcomes_are_bounded() {
        let mut w = Welcomes::default();
        let all: Vec<u128> = (1..=100).collect();
        for i in 1..=100u128 {
            let _ = w.offer(MemberId(i), Epoch(i as u64), view(&all), 2);
        }
        assert_eq!(w.by_sender.len(), WELCOME_SENDERS_MAX);
        assert!(w.by_sender.values().all(|(e, _)| e.0 > 92), "the newest kept");
    }
}
