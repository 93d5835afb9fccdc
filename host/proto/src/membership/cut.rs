//! Multi-node cut detection (after Rapid, USENIX ATC 2018): alerts about many subjects are
//! tallied until they settle, so that many simultaneous failures or joins become **one**
//! proposed view change instead of one per subject.
//!
//! Each alert says "observer `o`, on ring `r`, saw subject `s` go down (or ask to join)". A
//! subject with alerts from at least `high` distinct rings is *stable*; with at least `low` but
//! fewer than `high` it is *unstable*. A cut is proposed when some subject just became stable
//! and no subject is unstable: everything stable so far, as one set. Unstable subjects whose
//! observers are themselves being reported get those rings counted implicitly ("invalidating
//! failing edges"), so a cut does not wait forever for observers that died too.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::rings::Rings;
use crate::ids::MemberId;

/// What an alert reports about its subject.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Change {
    /// A member stopped answering its observer.
    Down,
    /// A node asked to join, through the members that will observe it.
    Join,
}

/// One observer's report about one subject, on one ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    /// Who reports.
    pub observer: MemberId,
    /// About whom.
    pub subject: MemberId,
    /// On which ring `observer` is `subject`'s (expected) observer.
    pub ring: usize,
    /// What it saw.
    pub change: Change,
}

/// The watermarks: `1 <= low <= high <= rings`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Watermarks {
    /// Alerts from this many rings make a subject stable (part of the next cut).
    pub high: usize,
    /// Alerts from this many rings (and fewer than `high`) make it unstable: the cut waits.
    pub low: usize,
}

impl Watermarks {
    /// Rapid's proportions (9 and 3 of 10 rings), scaled to `rings`.
    pub fn for_rings(rings: usize) -> Self {
        let high = (rings * 9 / 10).max(1);
        let low = (rings * 3 / 10).clamp(1, high);
        Self { high, low }
    }
}

/// Why an alert was not counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AlertError {
    /// The observer is not the subject's (expected) observer on that ring.
    #[error("{observer} does not observe {subject} on ring {ring}")]
    NotObserver {
        /// Who claimed to.
        observer: MemberId,
        /// About whom.
        subject: MemberId,
        /// Ring.
        ring: usize,
    },
    /// The tally already follows as many subjects as a view may hold members.
    #[error("{0}: too many subjects in one view's tally")]
    Full(MemberId),
    /// A `Down` about a non-member, or a `Join` about a member.
    #[error("{subject}: a {change:?} alert does not fit its membership")]
    Mismatch {
        /// The subject.
        subject: MemberId,
        /// The claimed change.
        change: Change,
    },
}

/// Whether `alert` fits the view of `rings`: a `Down` about a member from one of its
/// observers, or a `Join` about a non-member from one of its expected observers, on that ring.
pub fn fits(rings: &Rings, alert: &Alert) -> Result<(), AlertError> {
    let observers = match (alert.change, rings.contains(alert.subject)) {
        (Change::Down, true) => rings.observers_of(alert.subject),
        (Change::Join, false) => rings.expected_observers_of(alert.subject),
        _ => return Err(AlertError::Mismatch { subject: alert.subject, change: alert.change }),
    };
    if !observers.contains(&(alert.ring, alert.observer)) {
        return Err(AlertError::NotObserver {
            observer: alert.observer,
            subject: alert.subject,
            ring: alert.ring,
        });
    }
    Ok(())
}

/// The tally of one view's alerts; a new view starts a new tally.
#[derive(Clone, Debug)]
pub struct CutDetector {
    marks: Watermarks,
    /// Per subject: its change and, per ring, the observer that reported it.
    reports: BTreeMap<MemberId, (Change, BTreeMap<usize, MemberId>)>,
    unstable: BTreeSet<MemberId>,
    stable: BTreeSet<MemberId>,
    /// Subjects already proposed in an earlier cut of this view.
    proposed: BTreeSet<MemberId>,
}

/// A proposed cut: the subjects to remove and to add, each sorted.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Cut {
    /// Members to remove.
    pub down: Vec<MemberId>,
    /// Nodes to admit.
    pub join: Vec<MemberId>,
}

impl CutDetector {
    /// An empty tally with these watermarks.
    pub fn new(marks: Watermarks) -> Self {
        assert!(marks.low >= 1 && marks.low <= marks.high, "watermarks {marks:?}");
        Self {
            marks,
            reports: BTreeMap::new(),
            unstable: BTreeSet::new(),
            stable: BTreeSet::new(),
            proposed: BTreeSet::new(),
        }
    }

    /// Counts `alert`, checked against the view's `rings` and membership. Returns a cut when
    /// one is ready. A repeated alert (same subject and ring) changes nothing. (The node records
    /// whole batches and takes the cut later; the tests feed alerts one at a time.)
    #[cfg(test)]
    fn alert(&mut self, rings: &Rings, alert: Alert) -> Result<Option<Cut>, AlertError> {
        self.record(rings, alert)?;
        Ok(self.take_cut())
    }

    /// Counts `alert` without proposing: a batch of alerts is recorded whole, then
    /// [`CutDetector::take_cut`] says whether a cut is ready, so that a batch naming several
    /// subjects proposes them together. Returns whether the tally changed (a repeat does not).
    pub fn record(&mut self, rings: &Rings, alert: Alert) -> Result<bool, AlertError> {
        fits(rings, &alert)?;
        if self.reports.len() >= crate::limits::MEMBERS_MAX
            && !self.reports.contains_key(&alert.subject)
        {
            return Err(AlertError::Full(alert.subject));
        }
        Ok(self.count(alert.subject, alert.ring, alert.observer, alert.change))
    }

    /// The cut, when one is ready: some subject is stable and none is unstable. Everything
    /// stable so far is in it, and none of it is proposed again in this view.
    pub fn take_cut(&mut self) -> Option<Cut> {
        if self.stable.is_empty() || !self.unstable.is_empty() {
            return None;
        }
        let mut cut = Cut::default();
        for s in std::mem::take(&mut self.stable) {
            match self.reports[&s].0 {
                Change::Down => cut.down.push(s),
                Change::Join => cut.join.push(s),
            }
            self.proposed.insert(s);
        }
        Some(cut)
    }

    /// Counts, for every unstable subject, the rings whose observer is itself stable or
    /// unstable (failing or leaving too) as implicit alerts. Call after each batch of alerts;
    /// with no unstable subject it only takes the cut. Returns a cut when one is ready.
    pub fn invalidate_failing_edges(&mut self, rings: &Rings) -> Option<Cut> {
        // Until nothing changes: a subject made stable here can be the failing observer of
        // another.
        let mut changed = true;
        while changed {
            changed = false;
            let unstable: Vec<MemberId> = self.unstable.iter().copied().collect();
            for subject in unstable {
                let Some(&(change, _)) = self.reports.get(&subject) else { continue };
                let observers = match change {
                    Change::Down => rings.observers_of(subject),
                    Change::Join => rings.expected_observers_of(subject),
                };
                for (ring, observer) in observers {
                    let failing = self.stable.contains(&observer)
                        || self.unstable.contains(&observer)
                        || self.proposed.contains(&observer);
                    if failing {
                        changed |= self.count(subject, ring, observer, change);
                    }
                }
            }
        }
        self.take_cut()
    }

    /// Subjects that hold the cut back (unstable).
    pub fn unstable(&self) -> impl Iterator<Item = MemberId> + '_ {
        self.unstable.iter().copied()
    }

    /// Counts one ring's report; false when it changes nothing.
    fn count(
        &mut self,
        subject: MemberId,
        ring: usize,
        observer: MemberId,
        change: Change,
    ) -> bool {
        if self.proposed.contains(&subject) {
            return false;
        }
        let (_, by_ring) = self.reports.entry(subject).or_insert_with(|| (change, BTreeMap::new()));
        if by_ring.insert(ring, observer).is_some() {
            // Already counted: duplicates and retransmissions change nothing.
            return false;
        }
        let n = by_ring.len();
        if n == self.marks.low && n < self.marks.high {
            self.unstable.insert(subject);
        }
        if n == self.marks.high {
            self.unstable.remove(&subject);
            self.stable.insert(subject);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: u128) -> Vec<MemberId> {
        (1..=n).map(|i| MemberId(i << 70 | i)).collect()
    }

    fn down(rings: &Rings, subject: MemberId, how_many: usize) -> Vec<Alert> {
        rings
            .observers_of(subject)
            .into_iter()
            .take(how_many)
            .map(|(ring, observer)| Alert { observer, subject, ring, change: Change::Down })
            .collect()
    }

    fn feed(d: &mut CutDetector, rings: &Rings, alerts: &[Alert]) -> Vec<Cut> {
        alerts.iter().filter_map(|a| d.alert(rings, *a).unwrap()).collect()
    }

    #[test]
    fn one_failure_becomes_a_cut_at_the_high_watermark() {
        let members = ids(30);
        let rings = Rings::new(&members, 10);
        let mut d = CutDetector::new(Watermarks { high: 9, low: 3 });
        let alerts = down(&rings, members[4], 10);
        let cuts = feed(&mut d, &rings, &alerts[..8]);
        assert!(cuts.is_empty(), "8 of 9 rings: not yet");
        let cuts = feed(&mut d, &rings, &alerts[8..]);
        assert_eq!(cuts, vec![Cut { down: vec![members[4]], join: vec![] }]);
    }

    #[test]
    fn simultaneous_failures_become_one_cut() {
        let members = ids(100);
        let rings = Rings::new(&members, 10);
        let mut d = CutDetector::new(Watermarks { high: 9, low: 3 });
        let failed = [members[3], members[40], members[77]];
        // Alerts interleave: every subject passes the low watermark before any reaches high.
        let per: Vec<Vec<Alert>> = failed.iter().map(|&s| down(&rings, s, 10)).collect();
        let mut cuts = Vec::new();
        for i in 0..10 {
            for p in &per {
                cuts.extend(d.alert(&rings, p[i]).unwrap());
            }
        }
        let mut want = failed.to_vec();
        want.sort();
        assert_eq!(cuts, vec![Cut { down: want, join: vec![] }]);
    }

    #[test]
    fn duplicates_and_alerts_from_non_observers_change_nothing() {
        let members = ids(20);
        let rings = Rings::new(&members, 5);
        let mut d = CutDetector::new(Watermarks::for_rings(5));
        let a = down(&rings, members[0], 1)[0];
        assert_eq!(d.alert(&rings, a), Ok(None));
        assert_eq!(d.alert(&rings, a), Ok(None));
        let liar = members.iter().copied().find(|&m| m != a.observer && m != a.subject).unwrap();
        let forged = Alert { observer: liar, ..a };
        assert!(matches!(d.alert(&rings, forged), Err(AlertError::NotObserver { .. })));
        let join_of_member = Alert { change: Change::Join, ..a };
        assert!(matches!(d.alert(&rings, join_of_member), Err(AlertError::Mismatch { .. })));
    }

    #[test]
    fn failing_observers_are_counted_implicitly_so_the_cut_does_not_stall() {
        let members = ids(40);
        let rings = Rings::new(&members, 10);
        let mut d = CutDetector::new(Watermarks { high: 9, low: 3 });
        let a = members[7];
        // `b` is an observer of `a` and fails too; `a` gets every alert but `b`'s.
        let (b_ring, b) = rings.observers_of(a)[0];
        let a_alerts: Vec<Alert> =
            down(&rings, a, 10).into_iter().filter(|x| x.ring != b_ring).take(7).collect();
        assert!(feed(&mut d, &rings, &a_alerts).is_empty());
        assert_eq!(d.unstable().collect::<Vec<_>>(), vec![a]);
        // `b` becomes stable but `a` is unstable: no cut yet.
        assert!(feed(&mut d, &rings, &down(&rings, b, 9)).is_empty());
        // Counting b's edge to a implicitly (7 + 1 = 8) is still short of 9: no cut.
        assert_eq!(d.invalidate_failing_edges(&rings), None);
        // One more real alert about `a` makes the single cut of both.
        let last = down(&rings, a, 10)
            .into_iter()
            .find(|x| x.ring != b_ring && !a_alerts.contains(x))
            .unwrap();
        let cut = d.alert(&rings, last).unwrap().expect("a cut");
        let mut want = vec![a, b];
        want.sort();
        assert_eq!(cut.down, want);
    }

    #[test]
    fn joins_and_failures_can_share_a_cut() {
        let members = ids(30);
        let rings = Rings::new(&members, 10);
        let mut d = CutDetector::new(Watermarks { high: 9, low: 3 });
        let joiner = MemberId(0xabcdef);
        let join: Vec<Alert> = rings
            .expected_observers_of(joiner)
            .into_iter()
            .map(|(ring, observer)| Alert { observer, subject: joiner, ring, change: Change::Join })
            .collect();
        let leave = down(&rings, members[2], 10);
        let mut cuts = Vec::new();
        for i in 0..10 {
            cuts.extend(d.alert(&rings, join[i]).unwrap());
            cuts.extend(d.alert(&rings, leave[i]).unwrap());
        }
        assert_eq!(cuts, vec![Cut { down: vec![members[2]], join: vec![joiner] }]);
    }

    #[test]
    fn watermarks_scale_with_the_rings() {
        assert_eq!(Watermarks::for_rings(10), Watermarks { high: 9, low: 3 });
        assert_eq!(Watermarks::for_rings(3), Watermarks { high: 2, low: 1 });
        assert_eq!(Watermarks::for_rings(1), Watermarks { high: 1, low: 1 });
    }
}
