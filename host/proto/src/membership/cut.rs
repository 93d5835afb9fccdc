//! Multi-node cut detection (after Rapid, USENIX ATC 2018): alerts about many subjects are
//! tallied until they settle, so that many simultaneous failures or joins become **one**
//! proposed view change instead of one per subject.
//!
//! Each alert says "observer `o`, on ring `r`, saw subject `s` go down (or ask to join), or
//! heard it rebut after all". A subject with standing alerts from at least `high` distinct
//! rings is *stable*; with at least `low` but fewer than `high` it is *unstable*. A cut is
//! ready when some subject is stable and no subject *blocks*: everything stable, as one set.
//! Unstable subjects whose observers are themselves reported get those rings counted
//! implicitly ("invalidating failing edges"), so a cut does not wait for observers that died
//! too.
//!
//! Liveness: every subject's status resolves within a bound. An observer whose alert was
//! followed by a rebuttal (the subject is alive and reachable again) withdraws it with a
//! [`Change::Rebutted`] alert at the raised incarnation, so a healed link or partition leaves no
//! alert standing. An unstable subject blocks the cut for at most
//! [`Timing::unstable_ms_max`] from the moment it became unstable; after that it neither blocks
//! nor joins the cut until enough alerts make it stable (a one-way fault to a few observers
//! that never heals then costs that delay, not progress). A join that has not become stable
//! within [`Timing::join_ms_max`] is forgotten, and at most [`JOINERS_PENDING_MAX`] joiners are
//! tallied at once. Every member applies the same rules to the alerts it received.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::monitor::Incarnation;
use super::rings::Rings;
use crate::ids::MemberId;
use crate::view::MemberInfo;

/// Most joiners one view's tally follows at once; further join alerts are refused until some
/// are admitted or forgotten.
pub const JOINERS_PENDING_MAX: usize = 2_048;

/// What an alert reports about its subject.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Change {
    /// A member stopped answering its observer.
    Down,
    /// A node asked to join, through the members that will observe it.
    Join,
    /// The observer withdraws its `Down` alert: the subject rebutted (it is alive and reaches
    /// the observer again), at the alert's incarnation.
    Rebutted,
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
    /// The subject's incarnation: the one it was accused at (`Down`), or the one it rebutted
    /// with (`Rebutted`); 0 for `Join`. Per ring, a report replaces an older one only when it
    /// is newer: a higher incarnation, or at the same incarnation a `Down` after a `Rebutted`.
    pub incarnation: Incarnation,
}

impl Alert {
    /// The alert each of `subject`'s observers (for a `Join`, its expected observers) would
    /// send, one per ring, at `incarnation`.
    pub fn from_every_observer(
        rings: &Rings,
        subject: MemberId,
        change: Change,
        incarnation: Incarnation,
    ) -> Vec<Alert> {
        let observers = match change {
            Change::Join => rings.expected_observers_of(subject),
            Change::Down | Change::Rebutted => rings.observers_of(subject),
        };
        observers
            .into_iter()
            .map(|(ring, observer)| Alert { observer, subject, ring, change, incarnation })
            .collect()
    }

    /// Whether it stands against its subject (it is not a withdrawal).
    fn stands(&self) -> bool {
        self.change != Change::Rebutted
    }

    /// The order of reports on one ring: the newest stands.
    fn order(&self) -> (Incarnation, bool) {
        (self.incarnation, self.stands())
    }
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

/// How long the tally waits on a subject, ms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// Longest an unstable subject holds the cut back, from the moment it became unstable.
    pub unstable_ms_max: u64,
    /// Longest a joiner stays in the tally without becoming stable.
    pub join_ms_max: u64,
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
    /// The tally already follows [`JOINERS_PENDING_MAX`] joiners.
    #[error("{0}: too many joiners pending in one view's tally")]
    Full(MemberId),
    /// A `Down` or `Rebutted` about a non-member, or a `Join` about a member.
    #[error("{subject}: a {change:?} alert does not fit its membership")]
    Mismatch {
        /// The subject.
        subject: MemberId,
        /// The claimed change.
        change: Change,
    },
    /// A `Join` alert without what the joiner brings (or with it out of limits), or another
    /// alert with it.
    #[error("{0}: a join alert must carry the joiner's info, within limits, and no other alert")]
    Info(MemberId),
}

/// Whether `alert` fits the view of `rings`: a `Down` or `Rebutted` about a member from one of
/// its observers, or a `Join` about a non-member from one of its expected observers, on that
/// ring.
pub fn fits(rings: &Rings, alert: &Alert) -> Result<(), AlertError> {
    let observers = match (alert.change, rings.contains(alert.subject)) {
        (Change::Down | Change::Rebutted, true) => rings.observers_of(alert.subject),
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

/// A proposed cut: the subjects to remove and to add, each sorted, with what each node admitted
/// brings into the view.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Cut {
    /// Members to remove.
    pub down: Vec<MemberId>,
    /// Nodes to admit.
    pub join: Vec<MemberId>,
    /// What each node admitted brings: `info[i]` is `join[i]`'s.
    pub info: Vec<MemberInfo>,
}

/// What the tally says now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tally {
    /// Every stable subject, as one cut; nothing blocks it.
    Ready(Cut),
    /// Some subject is unstable: ask again at this time (ms) at the latest, when the first of
    /// them stops blocking.
    Blocked(u64),
    /// Nothing to propose.
    Empty,
}

/// One subject's reports.
#[derive(Clone, Debug)]
struct Subject {
    join: bool,
    /// For a joiner: what its observers relayed of it (the first report's), and whether two
    /// reports disagreed: a joiner that told its observers different things is not admitted.
    info: Option<MemberInfo>,
    conflicted: bool,
    /// Per ring, the newest report.
    rings: BTreeMap<usize, Alert>,
    /// When its first report arrived, ms.
    since_ms: u64,
    /// When it last became unstable, ms.
    unstable_since_ms: Option<u64>,
}

impl Subject {
    /// Rings whose newest report stands against the subject.
    fn standing(&self) -> BTreeSet<usize> {
        self.rings.iter().filter(|(_, a)| a.stands()).map(|(r, _)| *r).collect()
    }
}

/// The tally of one view's alerts; a new view starts a new tally.
#[derive(Clone, Debug)]
pub struct CutDetector {
    marks: Watermarks,
    timing: Timing,
    subjects: BTreeMap<MemberId, Subject>,
    joiners: usize,
}

impl CutDetector {
    /// An empty tally with these watermarks and waits.
    pub fn new(marks: Watermarks, timing: Timing) -> Self {
        assert!(marks.low >= 1 && marks.low <= marks.high, "watermarks {marks:?}");
        Self { marks, timing, subjects: BTreeMap::new(), joiners: 0 }
    }

    /// Counts `alert`, received at `now_ms`, checked against the view's `rings` and
    /// membership; a `Join` alert comes with what the joiner told its observer (`info`).
    /// Returns whether the tally changed (a repeat or an older report does not).
    /// A batch of alerts is recorded whole, then [`CutDetector::tally`] says whether a cut is
    /// ready, so that a batch naming several subjects proposes them together.
    pub fn record(
        &mut self,
        rings: &Rings,
        alert: Alert,
        info: Option<&MemberInfo>,
        now_ms: u64,
    ) -> Result<bool, AlertError> {
        fits(rings, &alert)?;
        let join = alert.change == Change::Join;
        let info = match info {
            Some(i) if join && i.check().is_ok() => Some(i),
            None if !join => None,
            _ => return Err(AlertError::Info(alert.subject)),
        };
        if !self.subjects.contains_key(&alert.subject) {
            if alert.change == Change::Rebutted {
                // Nothing stands to withdraw.
                return Ok(false);
            }
            if join && self.joiners >= JOINERS_PENDING_MAX {
                return Err(AlertError::Full(alert.subject));
            }
            self.joiners += usize::from(join);
            let s = Subject {
                join,
                info: info.cloned(),
                conflicted: false,
                rings: BTreeMap::new(),
                since_ms: now_ms,
                unstable_since_ms: None,
            };
            self.subjects.insert(alert.subject, s);
        }
        let subject = self.subjects.get_mut(&alert.subject).expect("inserted above");
        if info.is_some() && subject.info.as_ref() != info {
            subject.conflicted = true;
        }
        match subject.rings.get(&alert.ring) {
            Some(old) if old.order() >= alert.order() => Ok(false),
            _ => {
                subject.rings.insert(alert.ring, alert);
                Ok(true)
            }
        }
    }

    /// The tally at `now_ms`: counts implicit alerts for unstable subjects whose observers are
    /// reported too, forgets joiners that waited too long, and says whether a cut is ready.
    pub fn tally(&mut self, rings: &Rings, now_ms: u64) -> Tally {
        self.forget_joiners(now_ms);
        let counts = self.counts(rings);
        let (high, low) = (self.marks.high, self.marks.low);
        let mut cut = Cut::default();
        let mut blocked_until: Option<u64> = None;
        for (id, s) in &mut self.subjects {
            let n = counts.get(id).map_or(0, BTreeSet::len);
            if n >= high {
                s.unstable_since_ms = None;
                match (&s.info, s.join) {
                    (_, false) => cut.down.push(*id),
                    (Some(info), true) if !s.conflicted => {
                        cut.join.push(*id);
                        cut.info.push(info.clone());
                    }
                    _ => {}
                }
            } else if n >= low {
                let since = *s.unstable_since_ms.get_or_insert(now_ms);
                let until = since + self.timing.unstable_ms_max;
                if now_ms < until {
                    blocked_until = Some(blocked_until.map_or(until, |b| b.min(until)));
                }
            } else {
                s.unstable_since_ms = None;
            }
        }
        // A member reported by fewer than `low` observers outside this cut stays: after a
        // split heals just as one side decides, the other side's alerts about the members it
        // could not reach arrive with the alerts that remove it, and a member whose observers
        // were nearly all over there would go with them.
        let removed: BTreeSet<MemberId> = cut.down.iter().copied().collect();
        cut.down.retain(|id| {
            let outside = |a: &&Alert| a.stands() && !removed.contains(&a.observer);
            self.subjects[id].rings.values().filter(outside).count() >= low
        });
        match blocked_until {
            Some(until) => Tally::Blocked(until),
            None if cut.down.is_empty() && cut.join.is_empty() => Tally::Empty,
            None => Tally::Ready(cut),
        }
    }

    /// Whether `subject` was reported to this tally (its alerts may since be withdrawn): a
    /// member accepts a cut from a coordinator only about subjects it has heard of, so that
    /// no coordinator can remove a member nobody reported.
    pub fn reported(&self, subject: MemberId) -> bool {
        self.subjects.contains_key(&subject)
    }

    /// What this tally was told of a joiner: `None` unless it was reported joining with one
    /// story only. A member accepts a cut admitting a node only with that story.
    pub fn joiner_info(&self, subject: MemberId) -> Option<&MemberInfo> {
        self.subjects
            .get(&subject)
            .filter(|s| s.join && !s.conflicted)
            .and_then(|s| s.info.as_ref())
    }

    /// How many members this tally vouches for, `me` included: `me`, and every member that a
    /// member it vouches for observes on a ring where no alert about it stands (that observer
    /// would have alerted had it gone silent). Each ring is a cycle through the whole view, so
    /// with no alerts every member is vouched for; on one side of a partition the alerts of
    /// this side cut the rings at the border, and the count is this side (or less: never
    /// more).
    pub fn vouched(&self, rings: &Rings, me: MemberId) -> usize {
        let mut vouched: BTreeSet<MemberId> = BTreeSet::from([me]);
        let mut queue = vec![me];
        while let Some(observer) = queue.pop() {
            for (ring, subject) in rings.subjects_of(observer) {
                let alerted = self
                    .subjects
                    .get(&subject)
                    .is_some_and(|s| s.rings.get(&ring).is_some_and(Alert::stands));
                if !alerted && vouched.insert(subject) {
                    queue.push(subject);
                }
            }
        }
        vouched.len()
    }

    /// Subjects with standing alerts from at least the low watermark of rings but fewer than
    /// the high one (implicit alerts included).
    #[cfg(test)]
    fn unstable(&self, rings: &Rings) -> Vec<MemberId> {
        let counts = self.counts(rings);
        counts
            .iter()
            .filter(|(_, c)| c.len() >= self.marks.low && c.len() < self.marks.high)
            .map(|(id, _)| *id)
            .collect()
    }

    /// Per subject, the rings counted against it: its standing alerts and, for subjects
    /// between the watermarks, the rings whose observer is itself at or above the low one
    /// (repeated until nothing changes: a subject made stable here can be the failing observer
    /// of another).
    fn counts(&self, rings: &Rings) -> BTreeMap<MemberId, BTreeSet<usize>> {
        let mut counts: BTreeMap<MemberId, BTreeSet<usize>> =
            self.subjects.iter().map(|(id, s)| (*id, s.standing())).collect();
        let (high, low) = (self.marks.high, self.marks.low);
        let mut changed = true;
        while changed {
            changed = false;
            let failing: BTreeSet<MemberId> =
                counts.iter().filter(|(_, c)| c.len() >= low).map(|(id, _)| *id).collect();
            for (id, s) in &self.subjects {
                let c = counts.get_mut(id).expect("every subject counted");
                if c.len() < low || c.len() >= high {
                    continue;
                }
                let observers =
                    if s.join { rings.expected_observers_of(*id) } else { rings.observers_of(*id) };
                for (ring, observer) in observers {
                    if failing.contains(&observer) {
                        changed |= c.insert(ring);
                    }
                }
            }
        }
        counts
    }

    /// Forgets joiners that did not become stable within [`Timing::join_ms_max`].
    fn forget_joiners(&mut self, now_ms: u64) {
        let (high, max) = (self.marks.high, self.timing.join_ms_max);
        let before = self.subjects.len();
        self.subjects
            .retain(|_, s| !s.join || s.standing().len() >= high || now_ms < s.since_ms + max);
        let gone = before - self.subjects.len();
        self.joiners -= gone;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records `alert`, a join with the test joiner's info.
    fn record_one(
        d: &mut CutDetector,
        rings: &Rings,
        alert: Alert,
        now_ms: u64,
    ) -> Result<bool, AlertError> {
        let info = crate::membership::testing::info();
        let info = (alert.change == Change::Join).then_some(&info);
        d.record(rings, alert, info, now_ms)
    }

    const TIMING: Timing = Timing { unstable_ms_max: 1_000, join_ms_max: 5_000 };

    fn ids(n: u128) -> Vec<MemberId> {
        (1..=n).map(|i| MemberId(i << 70 | i)).collect()
    }

    fn detector(marks: Watermarks) -> CutDetector {
        CutDetector::new(marks, TIMING)
    }

    fn down(rings: &Rings, subject: MemberId, how_many: usize) -> Vec<Alert> {
        let mut all = Alert::from_every_observer(rings, subject, Change::Down, Incarnation(0));
        all.truncate(how_many);
        all
    }

    fn record(d: &mut CutDetector, rings: &Rings, alerts: &[Alert]) {
        for a in alerts {
            record_one(d, rings, *a, 0).expect("fits");
        }
    }

    fn cut(down: &[MemberId], join: &[MemberId]) -> Tally {
        let (mut down, mut join) = (down.to_vec(), join.to_vec());
        down.sort();
        join.sort();
        let info = vec![crate::membership::testing::info(); join.len()];
        Tally::Ready(Cut { down, join, info })
    }

    #[test]
    fn one_failure_becomes_a_cut_at_the_high_watermark() {
        let members = ids(30);
        let rings = Rings::new(&members, 10);
        let mut d = detector(Watermarks { high: 9, low: 3 });
        let alerts = down(&rings, members[4], 10);
        record(&mut d, &rings, &alerts[..8]);
        assert_eq!(d.tally(&rings, 0), Tally::Blocked(1_000), "8 of 9 rings: not yet");
        record(&mut d, &rings, &alerts[8..]);
        assert_eq!(d.tally(&rings, 0), cut(&[members[4]], &[]));
    }

    #[test]
    fn simultaneous_failures_become_one_cut() {
        let members = ids(100);
        let rings = Rings::new(&members, 10);
        let mut d = detector(Watermarks { high: 9, low: 3 });
        let failed = [members[3], members[40], members[77]];
        // Alerts interleave: every subject passes the low watermark before any reaches high.
        let per: Vec<Vec<Alert>> = failed.iter().map(|&s| down(&rings, s, 10)).collect();
        for i in 0..10 {
            for p in &per {
                record(&mut d, &rings, &p[i..=i]);
                let t = d.tally(&rings, 0);
                assert!(
                    !matches!(&t, Tally::Ready(c) if c.down.len() < 3),
                    "no partial cut: {t:?}"
                );
            }
        }
        assert_eq!(d.tally(&rings, 0), cut(&failed, &[]));
    }

    #[test]
    fn duplicates_and_alerts_from_non_observers_change_nothing() {
        let members = ids(20);
        let rings = Rings::new(&members, 5);
        let mut d = detector(Watermarks::for_rings(5));
        let a = down(&rings, members[0], 1)[0];
        assert_eq!(record_one(&mut d, &rings, a, 0), Ok(true));
        assert_eq!(record_one(&mut d, &rings, a, 0), Ok(false));
        let liar = members.iter().copied().find(|&m| m != a.observer && m != a.subject).unwrap();
        let forged = Alert { observer: liar, ..a };
        assert!(matches!(
            record_one(&mut d, &rings, forged, 0),
            Err(AlertError::NotObserver { .. })
        ));
        let join_of_member = Alert { change: Change::Join, ..a };
        assert!(matches!(
            record_one(&mut d, &rings, join_of_member, 0),
            Err(AlertError::Mismatch { .. })
        ));
    }

    #[test]
    fn a_member_reported_only_by_the_side_being_removed_stays() {
        // A healed split: the large side reports every member of the small side; the small
        // side, which could not reach them either, reports every member it observes on the
        // large side. The small side is `x`'s observers, so `x` is reported on every ring.
        let members = ids(40);
        let rings = Rings::new(&members, 10);
        let x = members[11];
        let small: BTreeSet<MemberId> = rings.observers_of(x).into_iter().map(|(_, o)| o).collect();
        assert!(small.len() * 2 < members.len() && !small.contains(&x));
        let mut d = detector(Watermarks { high: 9, low: 3 });
        for a in small
            .iter()
            .flat_map(|&s| Alert::from_every_observer(&rings, s, Change::Down, Incarnation(0)))
        {
            if !small.contains(&a.observer) {
                record(&mut d, &rings, &[a]);
            }
        }
        for &o in &small {
            for (ring, subject) in rings.subjects_of(o) {
                if !small.contains(&subject) {
                    let a = Alert {
                        observer: o,
                        subject,
                        ring,
                        change: Change::Down,
                        incarnation: Incarnation(0),
                    };
                    record(&mut d, &rings, &[a]);
                }
            }
        }
        let small: Vec<MemberId> = small.into_iter().collect();
        // Members of the large side reported by a few of those observers are unstable for a
        // while; then the cut is the small side, and only it.
        assert_eq!(d.tally(&rings, 0), Tally::Blocked(1_000));
        assert_eq!(d.tally(&rings, 1_000), cut(&small, &[]), "the small side, and only it");
    }

    #[test]
    fn failing_observers_are_counted_implicitly_so_the_cut_does_not_stall() {
        let members = ids(40);
        let rings = Rings::new(&members, 10);
        let mut d = detector(Watermarks { high: 9, low: 3 });
        let a = members[7];
        // `b` is an observer of `a` and fails too; `a` gets every alert but `b`'s.
        let (b_ring, b) = rings.observers_of(a)[0];
        let a_alerts: Vec<Alert> =
            down(&rings, a, 10).into_iter().filter(|x| x.ring != b_ring).take(7).collect();
        record(&mut d, &rings, &a_alerts);
        assert_eq!(d.unstable(&rings), vec![a]);
        // `b` becomes stable; counting b's edge to a implicitly (7 + 1 = 8) is still short of
        // 9: `a` blocks the cut.
        record(&mut d, &rings, &down(&rings, b, 9));
        assert!(matches!(d.tally(&rings, 0), Tally::Blocked(_)));
        // One more real alert about `a` makes the single cut of both.
        let last = down(&rings, a, 10)
            .into_iter()
            .find(|x| x.ring != b_ring && !a_alerts.contains(x))
            .unwrap();
        record(&mut d, &rings, &[last]);
        assert_eq!(d.tally(&rings, 0), cut(&[a, b], &[]));
    }

    #[test]
    fn joins_and_failures_can_share_a_cut() {
        let members = ids(30);
        let rings = Rings::new(&members, 10);
        let mut d = detector(Watermarks { high: 9, low: 3 });
        let joiner = MemberId(0xabcdef);
        let join = Alert::from_every_observer(&rings, joiner, Change::Join, Incarnation(0));
        let leave = down(&rings, members[2], 10);
        for i in 0..10 {
            record(&mut d, &rings, &[join[i], leave[i]]);
        }
        assert_eq!(d.tally(&rings, 0), cut(&[members[2]], &[joiner]));
    }

    #[test]
    fn a_rebutted_alert_is_withdrawn_and_an_older_report_does_not_bring_it_back() {
        let members = ids(30);
        let rings = Rings::new(&members, 10);
        let mut d = detector(Watermarks { high: 9, low: 3 });
        let s = members[5];
        let alerts = down(&rings, s, 5);
        record(&mut d, &rings, &alerts);
        assert_eq!(d.unstable(&rings), vec![s]);
        let rebut =
            |a: &Alert| Alert { change: Change::Rebutted, incarnation: Incarnation(1), ..*a };
        for a in &alerts {
            assert_eq!(record_one(&mut d, &rings, rebut(a), 10), Ok(true));
        }
        assert!(d.unstable(&rings).is_empty());
        assert_eq!(d.tally(&rings, 10), Tally::Empty);
        // The original alert, delivered late, is older than the withdrawal.
        assert_eq!(record_one(&mut d, &rings, alerts[0], 20), Ok(false));
        // A new accusation, at the raised incarnation, stands again.
        let again = Alert { incarnation: Incarnation(1), ..alerts[0] };
        assert_eq!(record_one(&mut d, &rings, again, 30), Ok(true));
        // A withdrawal about a subject nobody alerted is not remembered.
        let other = down(&rings, members[9], 1)[0];
        assert_eq!(record_one(&mut d, &rings, rebut(&other), 40), Ok(false));
    }

    #[test]
    fn an_unstable_subject_blocks_the_cut_for_a_bounded_time() {
        let members = ids(30);
        let rings = Rings::new(&members, 10);
        let mut d = detector(Watermarks { high: 9, low: 3 });
        let (stuck, dead) = (members[1], members[2]);
        // `stuck` cannot reach four of its observers; nobody else reports it.
        let partial: Vec<Alert> =
            down(&rings, stuck, 10).into_iter().filter(|a| a.observer != dead).take(4).collect();
        record(&mut d, &rings, &partial);
        assert_eq!(d.tally(&rings, 100), Tally::Blocked(1_100));
        record(&mut d, &rings, &down(&rings, dead, 10));
        assert_eq!(d.tally(&rings, 600), Tally::Blocked(1_100), "unstable since 100 ms");
        assert_eq!(d.tally(&rings, 1_100), cut(&[dead], &[]), "no longer blocks");
        // Enough alerts later still make it stable.
        record(&mut d, &rings, &down(&rings, stuck, 10));
        assert_eq!(d.tally(&rings, 1_200), cut(&[stuck, dead], &[]));
    }

    #[test]
    fn a_joiner_is_admitted_with_what_its_observers_relayed_and_not_if_they_disagree() {
        let members = ids(30);
        let rings = Rings::new(&members, 10);
        let mut d = detector(Watermarks { high: 9, low: 3 });
        let (honest, liar) = (MemberId(0xabc), MemberId(0xdef));
        let told = MemberInfo { capacity: 7, labels: vec![], addr: "10.0.0.9:7400".into() };
        let other = MemberInfo { capacity: 9000, ..told.clone() };
        let alerts = |j| Alert::from_every_observer(&rings, j, Change::Join, Incarnation(0));
        for a in alerts(honest) {
            d.record(&rings, a, Some(&told), 0).unwrap();
        }
        for (k, a) in alerts(liar).into_iter().enumerate() {
            d.record(&rings, a, Some(if k == 5 { &other } else { &told }), 0).unwrap();
        }
        assert_eq!(
            d.tally(&rings, 0),
            Tally::Ready(Cut { down: vec![], join: vec![honest], info: vec![told.clone()] }),
            "the joiner that told one observer another story is left out"
        );
        assert_eq!(d.joiner_info(honest), Some(&told));
        assert_eq!(d.joiner_info(liar), None);
        // A join alert must carry the joiner's story, within limits; no other alert may.
        let a = alerts(MemberId(0x123))[0];
        assert_eq!(d.record(&rings, a, None, 0), Err(AlertError::Info(a.subject)));
        let huge = MemberInfo { addr: "x".repeat(300), ..told.clone() };
        assert_eq!(d.record(&rings, a, Some(&huge), 0), Err(AlertError::Info(a.subject)));
        let down = down(&rings, members[0], 1)[0];
        assert_eq!(d.record(&rings, down, Some(&told), 0), Err(AlertError::Info(members[0])));
    }

    #[test]
    fn joiners_that_do_not_complete_are_forgotten_and_their_number_is_capped() {
        let members = ids(30);
        let rings = Rings::new(&members, 10);
        let mut d = detector(Watermarks { high: 9, low: 3 });
        let join = |j: MemberId, k: usize| -> Vec<Alert> {
            let mut all = Alert::from_every_observer(&rings, j, Change::Join, Incarnation(0));
            all.truncate(k);
            all
        };
        let half = MemberId(0x5151);
        record(&mut d, &rings, &join(half, 4));
        assert!(matches!(d.tally(&rings, 4_999), Tally::Blocked(_)), "not forgotten yet");
        assert_eq!(d.unstable(&rings), vec![half]);
        assert_eq!(d.tally(&rings, 5_000), Tally::Empty);
        assert!(d.unstable(&rings).is_empty(), "forgotten");
        for j in 0..JOINERS_PENDING_MAX as u128 {
            record_one(&mut d, &rings, join(MemberId(1 << 100 | j), 1)[0], 6_000).expect("room");
        }
        let one_more = join(MemberId(0x7777), 1)[0];
        assert_eq!(
            record_one(&mut d, &rings, one_more, 6_000),
            Err(AlertError::Full(MemberId(0x7777)))
        );
        // Once they are forgotten there is room again.
        assert_eq!(d.tally(&rings, 11_000), Tally::Empty);
        assert_eq!(record_one(&mut d, &rings, one_more, 11_000), Ok(true));
    }

    #[test]
    fn the_tally_vouches_for_the_whole_view_or_for_this_side_of_a_partition() {
        let members = ids(30);
        let rings = Rings::new(&members, 10);
        let mut d = detector(Watermarks { high: 9, low: 3 });
        assert_eq!(d.vouched(&rings, members[0]), 30, "no alerts: the rings reach everyone");
        // One side of a split: this side's observers alert about every member across.
        let (near, far) = members.split_at(18);
        for &s in far {
            let across: Vec<Alert> =
                down(&rings, s, 10).into_iter().filter(|a| near.contains(&a.observer)).collect();
            record(&mut d, &rings, &across);
        }
        let seen = d.vouched(&rings, near[0]);
        assert!(seen <= 18, "never vouches across: {seen}");
        assert!(seen * 2 > 30, "a majority side still vouches for a majority: {seen}");
        let mut small = detector(Watermarks { high: 9, low: 3 });
        for &s in near {
            let across: Vec<Alert> =
                down(&rings, s, 10).into_iter().filter(|a| far.contains(&a.observer)).collect();
            record(&mut small, &rings, &across);
        }
        assert!(
            small.vouched(&rings, far[0]) <= 12,
            "the minority side vouches for itself at most"
        );
    }

    #[test]
    fn watermarks_scale_with_the_rings() {
        assert_eq!(Watermarks::for_rings(10), Watermarks { high: 9, low: 3 });
        assert_eq!(Watermarks::for_rings(3), Watermarks { high: 2, low: 1 });
        assert_eq!(Watermarks::for_rings(1), Watermarks { high: 1, low: 1 });
    }
}
