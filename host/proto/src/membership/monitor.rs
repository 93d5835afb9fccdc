//! Monitoring (after Fireflies): each member probes the subjects it observes on the rings; a
//! subject silent for `misses_max` probe periods is **accused**; the accused, if alive, hears
//! the accusation and **rebuts** it with a higher incarnation; an accusation not rebutted within
//! `rebut_window_ms` becomes an [`Alert`] for the cut detectors — one per ring on which this
//! member observes the subject. The accusation goes on after the alert, once a period: if the
//! subject was alive all along (a link that lost messages one way, a partition that healed) it
//! hears it and rebuts, and once it has then answered every probe for as long as the silence
//! that accuses, this member **withdraws** its alert ([`Change::Rebutted`]), so that no alert
//! about a member that is steadily reachable again stands (and a flaky one is still removed).
//!
//! Sans-IO in the calling shape of the other cores: `handle_*(now_ms, …)` in, `poll_output` and
//! `poll_timeout` out. Time is milliseconds from any origin, given by the caller.

use std::collections::{BTreeMap, VecDeque};

use super::cut::{Alert, Change};
use super::rings::Rings;
use crate::ids::MemberId;

/// A member's incarnation: raised to refute an accusation; a member evicted from the view must
/// rejoin with a higher one.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct Incarnation(pub u64);

/// The default idle period of suspicion-triggered probing, ms: at 1,000 members steady traffic
/// is about a tenth of probing every 100 ms (BENCHMARKS.md, *Suspicion-triggered probing*).
pub const IDLE_PROBE_MS_DEFAULT: u64 = 1_250;

/// The smallest view that probes idly by default. With the idle period above, the simulator's
/// crash → view median is 1,139 ms at 5 members, 920 ms at 8 and 855–915 ms from 11 to 100
/// (20 seeds each); below 20 members fast probing costs at most ~3 KB/s per member, and the
/// fault-class sweeps ran both ways at 20.
pub const IDLE_FROM_MEMBERS_DEFAULT: usize = 20;

/// Monitoring settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MonitorConfig {
    /// Time between probes of one subject, in ms.
    pub probe_period_ms: u64,
    /// Probe periods without an answer before the subject is accused.
    pub misses_max: u32,
    /// Time an accused member has to rebut before the accusation becomes an alert, in ms.
    pub rebut_window_ms: u64,
    /// After the first vote of a view change, how long the fast round has before a member
    /// coordinates a classic round, in ms (plus jitter; a fifth of the jitter when the fast
    /// round is visibly stuck). Also the delay between classic attempts.
    pub classic_after_ms: u64,
    /// Per-member spread of that delay, in ms, so that coordinators seldom compete.
    pub classic_jitter_ms: u64,
    /// How long alerts are gathered before they are sent as one message, in ms: alerts about
    /// many subjects then arrive together and become one cut.
    pub alert_batch_ms: u64,
    /// How long the tally must stay unchanged before this member proposes a cut, in ms (at
    /// most five times this after a cut first becomes possible): alerts about subjects that
    /// failed together arrive spread over a probe period, and a cut taken at the first
    /// possible moment can leave one of them to a second view change.
    pub cut_quiet_ms: u64,
    /// Longest a subject with alerts from some but not enough of its observers holds the cut
    /// back, in ms, from the moment it became unstable ([`super::cut::Timing`]).
    pub unstable_ms_max: u64,
    /// Longest a joiner stays in a view's tally without being admitted, in ms.
    pub join_ms_max: u64,
    /// Suspicion-triggered probing in views of at least `idle_from_members` members, off
    /// when 0: a subject that answered is probed again only after this many ms; one that has
    /// not answered a probe within `probe_period_ms` is probed every period from then on,
    /// accused after `silence_ms` without an answer, and its other observers are told to
    /// probe it now ([`MonitorOutput::Suspect`]), so that they accuse it together. Steady
    /// traffic falls with the idle period; detection starts at the first observer to miss an
    /// answer, which comes later in the period the fewer observers a subject has.
    pub idle_probe_ms: u64,
    /// The smallest view that probes idly (when `idle_probe_ms` is set); smaller views probe
    /// every subject every period. Every member computes the same from the same view
    /// ([`MonitorConfig::for_view`]). Small views are where a subject has few observers (so a
    /// crash is first missed late in the idle period) and where fast probing costs little.
    pub idle_from_members: usize,
}

impl MonitorConfig {
    /// How long a subject may go unheard before it is accused, ms: `misses_max` probe periods.
    /// Also how long a rebutted subject must answer steadily before its alert is withdrawn,
    /// and how recently a peer must have been heard to count toward the quorum.
    pub fn silence_ms(&self) -> u64 {
        self.probe_period_ms * u64::from(self.misses_max)
    }

    /// How recently a monitoring peer must have been heard to count toward the quorum, ms:
    /// the silence that accuses, plus the idle period when probing is suspicion-triggered.
    pub fn contact_ms(&self) -> u64 {
        self.silence_ms() + self.idle_probe_ms
    }

    /// The settings a view of `members` members runs with: idle probing off below
    /// `idle_from_members`.
    #[must_use]
    pub fn for_view(self, members: usize) -> Self {
        if members < self.idle_from_members { Self { idle_probe_ms: 0, ..self } } else { self }
    }
}

impl Default for MonitorConfig {
    fn default() -> Self {
        Self {
            probe_period_ms: 100,
            misses_max: 4,
            rebut_window_ms: 200,
            classic_after_ms: 500,
            classic_jitter_ms: 500,
            alert_batch_ms: 50,
            cut_quiet_ms: 100,
            unstable_ms_max: 1_000,
            join_ms_max: 5_000,
            idle_probe_ms: IDLE_PROBE_MS_DEFAULT,
            idle_from_members: IDLE_FROM_MEMBERS_DEFAULT,
        }
    }
}

/// What the monitor asks its driver to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MonitorOutput {
    /// Send a probe to this subject; its answer comes back through [`Monitor::handle_ack`].
    Probe(MemberId),
    /// Tell `subject` that this member accuses it (known at `incarnation`); repeated each
    /// probe period until rebutted or alerted.
    Accuse {
        /// The silent subject.
        subject: MemberId,
        /// Its incarnation as this member knows it.
        incarnation: Incarnation,
    },
    /// Tell this member's observers: it is alive, at this (raised) incarnation.
    Rebut(Incarnation),
    /// An accusation stood: feed it to every member's cut detector.
    Alert(Alert),
    /// (Suspicion-triggered probing) this subject missed an answer: ask its other observers
    /// to probe it now.
    Suspect(MemberId),
}

#[derive(Clone, Debug)]
struct Watch {
    rings: Vec<usize>,
    last_heard_ms: u64,
    next_probe_ms: u64,
    accused: Option<Accusation>,
    /// (Suspicion-triggered probing) since when a probe has gone unanswered, and whether the
    /// other observers were told.
    awaiting_since: Option<u64>,
    suspected: bool,
}

#[derive(Clone, Copy, Debug)]
struct Accusation {
    since_ms: u64,
    incarnation: Incarnation,
    alerted: bool,
    /// Alerted, then rebutted: since when the subject has answered without a gap, and the
    /// incarnation it rebutted with.
    recovering: Option<(u64, Incarnation)>,
}

/// One member's monitoring of its subjects.
#[derive(Clone, Debug)]
pub struct Monitor {
    me: MemberId,
    incarnation: Incarnation,
    /// The settings as given, and as the installed view runs them (idle probing by its
    /// size: [`MonitorConfig::for_view`]), set at each install.
    given: MonitorConfig,
    config: MonitorConfig,
    watches: BTreeMap<MemberId, Watch>,
    known: BTreeMap<MemberId, Incarnation>,
    out: VecDeque<MonitorOutput>,
}

impl Monitor {
    /// Monitoring by `me` (at `incarnation`) of its subjects on `rings`, from `now_ms`.
    pub fn new(
        me: MemberId,
        incarnation: Incarnation,
        config: MonitorConfig,
        rings: &Rings,
        now_ms: u64,
    ) -> Self {
        let mut m = Self {
            me,
            incarnation,
            given: config,
            config,
            watches: BTreeMap::new(),
            known: BTreeMap::new(),
            out: VecDeque::new(),
        };
        m.install(rings, now_ms);
        m
    }

    /// This member's incarnation (raised by each rebuttal).
    pub fn incarnation(&self) -> Incarnation {
        self.incarnation
    }

    /// The settings the installed view runs: those given, as fits its size
    /// ([`MonitorConfig::for_view`]).
    pub fn config(&self) -> MonitorConfig {
        self.config
    }

    /// A new view: watch the subjects its rings give this member, each from `now_ms`.
    pub fn install(&mut self, rings: &Rings, now_ms: u64) {
        self.config = self.given.for_view(rings.members().count());
        let mut by_subject: BTreeMap<MemberId, Vec<usize>> = BTreeMap::new();
        for (ring, subject) in rings.subjects_of(self.me) {
            by_subject.entry(subject).or_default().push(ring);
        }
        let (me, idle) = (self.me, self.config.idle_probe_ms);
        self.watches = by_subject
            .into_iter()
            .map(|(s, rings)| {
                let w = Watch {
                    rings,
                    last_heard_ms: now_ms,
                    next_probe_ms: now_ms + phase(me, s, idle),
                    accused: None,
                    awaiting_since: None,
                    suspected: false,
                };
                (s, w)
            })
            .collect();
        self.known.retain(|m, _| rings.contains(*m));
    }

    /// Time passes: silences become accusations, unrebutted accusations become alerts,
    /// probations end (in a withdrawal, or a gap); then, when due, each subject is probed (not
    /// accused, or on probation) or accused again (the accusation or its rebuttal may be lost;
    /// after the alert too: a subject that was alive all along rebuts once it hears, and a
    /// member cut off from the rest still talks to them and learns of the view that removed it
    /// once the cut heals).
    pub fn handle_timeout(&mut self, now_ms: u64) {
        let c = self.config;
        let mut withdrawn = Vec::new();
        for (&subject, w) in &mut self.watches {
            let idle = c.idle_probe_ms > 0;
            let silent = match w.awaiting_since {
                _ if !idle => now_ms.saturating_sub(w.last_heard_ms) >= c.silence_ms(),
                Some(since) => now_ms.saturating_sub(since) >= c.silence_ms(),
                None => false,
            };
            let missed = w.awaiting_since.is_some_and(|s| now_ms >= s + c.probe_period_ms);
            if idle && w.accused.is_none() && !w.suspected && missed {
                w.suspected = true;
                self.out.push_back(MonitorOutput::Suspect(subject));
            }
            match &mut w.accused {
                None if silent => {
                    let incarnation = self.known.get(&subject).copied().unwrap_or_default();
                    w.accused = Some(Accusation {
                        since_ms: now_ms,
                        incarnation,
                        alerted: false,
                        recovering: None,
                    });
                    w.next_probe_ms = now_ms;
                }
                Some(a) if !a.alerted && now_ms.saturating_sub(a.since_ms) >= c.rebut_window_ms => {
                    a.alerted = true;
                    let alerts = alerts(self.me, subject, &w.rings, Change::Down, a.incarnation);
                    self.out.extend(alerts);
                }
                // Alerted and rebutted, on probation: withdrawn once the subject has answered
                // without a gap for the accusation silence; a gap means it is not steadily
                // back (a flaky member gets a message through now and then).
                Some(Accusation { recovering: Some((since, rebutted)), .. }) => {
                    if now_ms.saturating_sub(w.last_heard_ms) >= 2 * c.probe_period_ms {
                        w.accused.as_mut().expect("matched").recovering = None;
                    } else if now_ms.saturating_sub(*since) >= c.silence_ms() {
                        withdrawn.push((subject, *rebutted));
                        continue;
                    }
                }
                _ => {}
            }
            if now_ms >= w.next_probe_ms {
                w.next_probe_ms = now_ms + c.probe_period_ms;
                if idle && w.accused.is_none() && w.awaiting_since.is_none() {
                    w.awaiting_since = Some(now_ms);
                }
                self.out.push_back(match &w.accused {
                    Some(Accusation { incarnation, recovering: None, .. }) => {
                        MonitorOutput::Accuse { subject, incarnation: *incarnation }
                    }
                    _ => MonitorOutput::Probe(subject),
                });
            }
        }
        for (subject, rebutted) in withdrawn {
            self.withdraw(now_ms, subject, rebutted);
        }
    }

    /// Withdraws this member's alert about `subject`: one [`Change::Rebutted`] per ring, at
    /// the incarnation it rebutted with; it is watched as usual from now.
    fn withdraw(&mut self, now_ms: u64, subject: MemberId, rebutted: Incarnation) {
        let Some(w) = self.watches.get_mut(&subject) else { return };
        w.accused = None;
        w.awaiting_since = None;
        w.suspected = false;
        w.last_heard_ms = now_ms;
        w.next_probe_ms = now_ms + self.config.probe_period_ms;
        self.out.extend(alerts(self.me, subject, &w.rings, Change::Rebutted, rebutted));
    }

    /// A subject answered a probe. An answer at a raised incarnation is a rebuttal that came
    /// with the ack.
    pub fn handle_ack(&mut self, now_ms: u64, from: MemberId, incarnation: Incarnation) {
        self.learn(from, incarnation);
        let idle = self.config.idle_probe_ms;
        let Some(w) = self.watches.get_mut(&from) else { return };
        match w.accused {
            None if idle > 0 => {
                w.last_heard_ms = now_ms;
                if w.awaiting_since.take().is_some() {
                    w.next_probe_ms = now_ms + idle;
                }
                w.suspected = false;
            }
            None => w.last_heard_ms = now_ms,
            Some(Accusation { recovering: Some(_), .. }) => w.last_heard_ms = now_ms,
            Some(_) => self.handle_rebut(now_ms, from, incarnation),
        }
    }

    /// (Suspicion-triggered probing) another observer of `subject` missed an answer from it:
    /// probe it now, unless a probe is already out.
    pub fn handle_suspect(&mut self, now_ms: u64, subject: MemberId) {
        if self.config.idle_probe_ms == 0 {
            return;
        }
        let c = self.config;
        let Some(w) = self.watches.get_mut(&subject) else { return };
        if w.accused.is_none() && w.awaiting_since.is_none() {
            // The subject already missed an answer elsewhere: accuse after two periods of our
            // own unanswered probes, not the whole silence, so the observers accuse together.
            let head_start = c.silence_ms().saturating_sub(2 * c.probe_period_ms);
            w.awaiting_since = Some(now_ms.saturating_sub(head_start));
            w.suspected = true;
            w.next_probe_ms = now_ms + c.probe_period_ms;
            self.out.push_back(MonitorOutput::Probe(subject));
        }
    }

    /// `subject` said it leaves the view: alert now, as if its silence had stood and gone
    /// unrebutted (it will not rebut). It stays accused, so a node that changed its mind and
    /// rebuts at a raised incarnation is withdrawn as usual.
    pub fn handle_leave(&mut self, now_ms: u64, subject: MemberId) {
        let Some(w) = self.watches.get_mut(&subject) else { return };
        if w.accused.is_some_and(|a| a.alerted) {
            return;
        }
        let incarnation = self.known.get(&subject).copied().unwrap_or_default();
        w.accused =
            Some(Accusation { since_ms: now_ms, incarnation, alerted: true, recovering: None });
        self.out.extend(alerts(self.me, subject, &w.rings, Change::Down, incarnation));
    }

    /// Some member accused `subject`. If it is this member, and the accusation is not already
    /// refuted by a higher incarnation, rebut it.
    pub fn handle_accusation(&mut self, subject: MemberId, incarnation: Incarnation) {
        if subject != self.me {
            return;
        }
        // An accusation repeated because the rebuttal was lost is answered again.
        if incarnation >= self.incarnation {
            self.incarnation = Incarnation(incarnation.0 + 1);
        }
        self.out.push_back(MonitorOutput::Rebut(self.incarnation));
    }

    /// `member` rebutted at `incarnation`: withdraw this member's accusation of it. If the
    /// accusation already became an alert, the alert is withdrawn once the member has answered
    /// without a gap for as long as the silence that accuses (one [`Change::Rebutted`] per
    /// ring, at the raised incarnation): a member that is steadily back is not removed, a
    /// flaky one that gets a message through now and then still is. A view that removed the
    /// member meanwhile stands: it must rejoin.
    pub fn handle_rebut(&mut self, now_ms: u64, member: MemberId, incarnation: Incarnation) {
        self.learn(member, incarnation);
        let period = self.config.probe_period_ms;
        let Some(w) = self.watches.get_mut(&member) else { return };
        let Some(a) = &mut w.accused else { return };
        if incarnation <= a.incarnation {
            if a.recovering.is_some() {
                w.last_heard_ms = now_ms;
            }
            return;
        }
        w.last_heard_ms = now_ms;
        if !a.alerted {
            w.accused = None;
            w.awaiting_since = None;
            w.suspected = false;
            w.next_probe_ms = now_ms + period;
            return;
        }
        match &mut a.recovering {
            Some((_, rebutted)) => *rebutted = (*rebutted).max(incarnation),
            None => {
                a.recovering = Some((now_ms, incarnation));
                w.next_probe_ms = now_ms + period;
            }
        }
    }

    /// The next thing to do, if any.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<MonitorOutput> {
        self.out.pop_front()
    }

    /// When [`Monitor::handle_timeout`] must next be called.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<u64> {
        let c = self.config;
        let silence_ms = c.silence_ms();
        self.watches
            .values()
            .map(|w| match w.accused {
                None if c.idle_probe_ms > 0 => match w.awaiting_since {
                    Some(since) if !w.suspected => w.next_probe_ms.min(since + c.probe_period_ms),
                    Some(since) => w.next_probe_ms.min(since + silence_ms),
                    None => w.next_probe_ms,
                },
                None => w.next_probe_ms.min(w.last_heard_ms + silence_ms),
                Some(a) if !a.alerted => (a.since_ms + c.rebut_window_ms).min(w.next_probe_ms),
                Some(Accusation { recovering: Some((since, _)), .. }) => w
                    .next_probe_ms
                    .min(since + silence_ms)
                    .min(w.last_heard_ms + 2 * c.probe_period_ms),
                Some(_) => w.next_probe_ms,
            })
            .min()
    }

    fn learn(&mut self, member: MemberId, incarnation: Incarnation) {
        // Only subjects are remembered: the map stays as small as the watch list.
        if !self.watches.contains_key(&member) {
            return;
        }
        let k = self.known.entry(member).or_default();
        *k = (*k).max(incarnation);
    }
}

/// This member's alert about `subject` on each of `rings`.
/// (Suspicion-triggered probing) where in the idle period `observer` first probes `subject`: a
/// fixed spread per pair, so that a subject's observers do not all probe it at one moment and
/// the first to miss an answer comes early in the period. 0 when probing is not idle.
fn phase(observer: MemberId, subject: MemberId, idle_ms: u64) -> u64 {
    if idle_ms == 0 {
        return 0;
    }
    let pair = (observer.0 ^ subject.0.rotate_left(64)) as u64 ^ (observer.0 >> 64) as u64;
    crate::rand::mix(pair) % idle_ms
}

fn alerts(
    me: MemberId,
    subject: MemberId,
    rings: &[usize],
    change: Change,
    incarnation: Incarnation,
) -> impl Iterator<Item = MonitorOutput> + '_ {
    rings.iter().map(move |&ring| {
        MonitorOutput::Alert(Alert { observer: me, subject, ring, change, incarnation })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::membership::rings::rings_for;

    fn setup() -> (Vec<MemberId>, Rings, Monitor) {
        let members: Vec<MemberId> = (1..=12).map(|i| MemberId(i * 977)).collect();
        let rings = Rings::new(&members, 4);
        let m = Monitor::new(members[0], Incarnation(0), MonitorConfig::default(), &rings, 0);
        (members, rings, m)
    }

    fn drain(m: &mut Monitor) -> Vec<MonitorOutput> {
        std::iter::from_fn(|| m.poll_output()).collect()
    }

    #[test]
    fn subjects_are_probed_every_period() {
        let (_, rings, mut m) = setup();
        let subjects: std::collections::BTreeSet<MemberId> =
            rings.subjects_of(MemberId(977)).into_iter().map(|(_, s)| s).collect();
        m.handle_timeout(0);
        let probes: Vec<_> = drain(&mut m);
        assert_eq!(probes.len(), subjects.len());
        assert!(
            probes.iter().all(|o| matches!(o, MonitorOutput::Probe(s) if subjects.contains(s)))
        );
        m.handle_timeout(50);
        assert!(drain(&mut m).is_empty(), "not due yet");
        assert_eq!(m.poll_timeout(), Some(100));
    }

    #[test]
    fn a_silent_subject_is_accused_then_alerted_on_each_of_its_rings() {
        let (_, rings, mut m) = setup();
        let me = MemberId(977);
        let (_, silent) = rings.subjects_of(me)[0];
        let silent_rings: Vec<usize> = rings
            .subjects_of(me)
            .into_iter()
            .filter(|(_, s)| *s == silent)
            .map(|(r, _)| r)
            .collect();
        let mut now = 0;
        let mut accused_at = None;
        while now <= 1000 {
            m.handle_timeout(now);
            for o in drain(&mut m) {
                match o {
                    MonitorOutput::Probe(s) if s != silent => m.handle_ack(now, s, Incarnation(0)),
                    MonitorOutput::Accuse { subject, .. } => {
                        assert_eq!(subject, silent, "only the silent one is accused");
                        // Repeated each period until the alert.
                        let first = *accused_at.get_or_insert(now);
                        assert_eq!((now - first) % 100, 0);
                    }
                    MonitorOutput::Alert(a) => {
                        assert_eq!((a.observer, a.subject, a.change), (me, silent, Change::Down));
                        assert!(silent_rings.contains(&a.ring));
                        assert_eq!(now - accused_at.unwrap(), 200, "after the rebut window");
                    }
                    _ => {}
                }
            }
            now += 10;
        }
        assert_eq!(accused_at, Some(400), "four missed periods of 100 ms");
    }

    /// Lets the first subject go silent until it is accused at 400 ms, runs `answer` at
    /// 450 ms, and says whether the accusation became an alert by 700 ms.
    fn alert_stands(answer: impl FnOnce(&mut Monitor, MemberId)) -> bool {
        let (_, rings, mut m) = setup();
        let (_, subject) = rings.subjects_of(MemberId(977))[0];
        m.handle_timeout(400);
        assert!(
            drain(&mut m)
                .iter()
                .any(|o| matches!(o, MonitorOutput::Accuse { subject: s, .. } if *s == subject))
        );
        answer(&mut m, subject);
        m.handle_timeout(700);
        drain(&mut m).iter().any(|o| matches!(o, MonitorOutput::Alert(a) if a.subject == subject))
    }

    #[test]
    fn a_rebuttal_in_time_withdraws_the_accusation() {
        // A rebuttal or ack that does not raise the incarnation does not count.
        assert!(alert_stands(|m, s| {
            m.handle_rebut(450, s, Incarnation(0));
            m.handle_ack(450, s, Incarnation(0));
        }));
        // Raised, by a rebuttal or by an ack, it is withdrawn.
        assert!(!alert_stands(|m, s| m.handle_ack(450, s, Incarnation(1))));
        assert!(!alert_stands(|m, s| {
            m.handle_rebut(450, s, Incarnation(1));
            m.handle_ack(460, s, Incarnation(1));
        }));
    }

    #[test]
    fn the_accused_rebuts_with_a_higher_incarnation_once_per_accusation() {
        let (_, _, mut m) = setup();
        m.handle_accusation(MemberId(977), Incarnation(0));
        assert_eq!(drain(&mut m), vec![MonitorOutput::Rebut(Incarnation(1))]);
        // A repeated accusation (the rebuttal was lost) is answered at the same incarnation;
        // a newer one raises it again.
        m.handle_accusation(MemberId(977), Incarnation(0));
        assert_eq!(drain(&mut m), vec![MonitorOutput::Rebut(Incarnation(1))]);
        m.handle_accusation(MemberId(977), Incarnation(1));
        assert_eq!(drain(&mut m), vec![MonitorOutput::Rebut(Incarnation(2))]);
        assert_eq!(m.incarnation(), Incarnation(2));
        // Accusations of others are not this member's to rebut.
        m.handle_accusation(MemberId(5), Incarnation(9));
        assert!(drain(&mut m).is_empty());
    }

    #[test]
    fn an_alert_is_withdrawn_once_the_subject_is_steadily_back() {
        let (_, rings, mut m) = setup();
        let me = MemberId(977);
        let (_, subject) = rings.subjects_of(me)[0];
        let on_rings = rings.subjects_of(me).iter().filter(|(_, s)| *s == subject).count();
        let about = |out: Vec<MonitorOutput>| -> Vec<MonitorOutput> {
            out.into_iter()
                .filter(|o| match o {
                    MonitorOutput::Accuse { subject: s, .. } | MonitorOutput::Probe(s) => {
                        *s == subject
                    }
                    MonitorOutput::Alert(a) => a.subject == subject,
                    MonitorOutput::Suspect(s) => *s == subject,
                    MonitorOutput::Rebut(_) => false,
                })
                .collect()
        };
        m.handle_timeout(400);
        m.handle_timeout(600);
        let downs = about(drain(&mut m))
            .iter()
            .filter(|o| matches!(o, MonitorOutput::Alert(a) if a.change == Change::Down))
            .count();
        assert_eq!(downs, on_rings);
        // Alerted, it is still accused every period, so that it can hear and rebut.
        m.handle_timeout(700);
        let again = about(drain(&mut m));
        assert!(matches!(again[..], [MonitorOutput::Accuse { incarnation: Incarnation(0), .. }]));
        // A rebuttal that does not raise the incarnation changes nothing.
        m.handle_rebut(705, subject, Incarnation(0));
        // One that does starts a probation: probed, not accused; one missed answer (a flaky
        // member) ends it, and the accusations go on.
        m.handle_rebut(710, subject, Incarnation(1));
        m.handle_timeout(810);
        assert!(matches!(about(drain(&mut m))[..], [MonitorOutput::Probe(_)]));
        m.handle_timeout(910);
        assert!(matches!(about(drain(&mut m))[..], [MonitorOutput::Accuse { .. }]), "a gap");
        // Rebutted again, it answers every probe: withdrawn after 400 ms of that, on every
        // ring, at the raised incarnation.
        m.handle_rebut(920, subject, Incarnation(1));
        let mut withdrawn_at = None;
        let mut now = 920;
        while withdrawn_at.is_none() && now < 2_000 {
            now += 10;
            m.handle_timeout(now);
            for o in about(drain(&mut m)) {
                match o {
                    MonitorOutput::Probe(s) => m.handle_ack(now, s, Incarnation(1)),
                    MonitorOutput::Alert(a) => {
                        assert_eq!(
                            (a.change, a.incarnation, a.observer),
                            (Change::Rebutted, Incarnation(1), me)
                        );
                        withdrawn_at.get_or_insert(now);
                    }
                    other => panic!("unexpected {other:?}"),
                }
            }
        }
        assert_eq!(withdrawn_at, Some(1_320), "400 ms after the rebuttal");
        assert!(about(drain(&mut m)).is_empty());
        // Then it is probed as usual.
        m.handle_timeout(1_420);
        assert!(matches!(about(drain(&mut m))[..], [MonitorOutput::Probe(_)]));
    }

    /// A monitor with suspicion-triggered probing, idle period 1 s, watching one subject (idle
    /// in a view of two: the test's own threshold).
    fn idle_setup() -> (MemberId, Monitor) {
        let members: Vec<MemberId> = (1..=2).map(|i| MemberId(i * 977)).collect();
        let rings = Rings::new(&members, 1);
        let config = MonitorConfig {
            idle_probe_ms: 1_000,
            idle_from_members: 2,
            ..MonitorConfig::default()
        };
        let m = Monitor::new(members[0], Incarnation(0), config, &rings, 0);
        (members[1], m)
    }

    /// Runs `m` from `from` to `to` ms in 10 ms steps, answering every probe at once when
    /// `answer`; returns the outputs with their times.
    fn run(
        m: &mut Monitor,
        s: MemberId,
        from: u64,
        to: u64,
        answer: bool,
    ) -> Vec<(u64, MonitorOutput)> {
        let mut out = Vec::new();
        for now in (from..=to).step_by(10) {
            m.handle_timeout(now);
            for o in drain(m) {
                if answer && o == MonitorOutput::Probe(s) {
                    m.handle_ack(now, s, Incarnation(0));
                }
                out.push((now, o));
            }
        }
        out
    }

    #[test]
    fn idle_probing_probes_an_answering_subject_once_per_idle_period() {
        let (s, mut m) = idle_setup();
        let out = run(&mut m, s, 0, 10_000, true);
        let probes = out.iter().filter(|(_, o)| *o == MonitorOutput::Probe(s)).count();
        assert!((9..=11).contains(&probes), "{probes} probes in 10 s");
        assert!(out.iter().all(|(_, o)| matches!(o, MonitorOutput::Probe(_))), "{out:?}");
    }

    #[test]
    fn a_missed_answer_makes_idle_probing_fast_suspects_once_and_accuses_after_the_silence() {
        let (s, mut m) = idle_setup();
        run(&mut m, s, 0, 2_000, true);
        let out = run(&mut m, s, 2_010, 5_000, false);
        let first = out.iter().find(|(_, o)| *o == MonitorOutput::Probe(s)).expect("a probe").0;
        let suspects: Vec<u64> =
            out.iter().filter(|(_, o)| *o == MonitorOutput::Suspect(s)).map(|(t, _)| *t).collect();
        assert_eq!(suspects, vec![first + 100], "suspected once, a probe period after the miss");
        let accused = out
            .iter()
            .find(|(_, o)| matches!(o, MonitorOutput::Accuse { .. }))
            .expect("an accusation")
            .0;
        assert_eq!(accused, first + MonitorConfig::default().silence_ms());
        let fast =
            out.iter().filter(|(t, o)| *o == MonitorOutput::Probe(s) && *t < accused).count();
        assert_eq!(fast, 4, "probed every period while unanswered");
    }

    #[test]
    fn a_suspicion_from_another_observer_probes_now_and_accuses_after_two_periods() {
        let (s, mut m) = idle_setup();
        run(&mut m, s, 0, 1_500, true);
        m.handle_suspect(1_505, s);
        assert_eq!(drain(&mut m), vec![MonitorOutput::Probe(s)]);
        let out = run(&mut m, s, 1_510, 2_500, false);
        let accused = out.iter().find(|(_, o)| matches!(o, MonitorOutput::Accuse { .. }));
        assert_eq!(accused.map(|(t, _)| *t), Some(1_710), "two periods of its own silence");
        // Off in a view of 12 by default: a suspicion changes nothing.
        let (_, rings, mut plain) = setup();
        let (_, subject) = rings.subjects_of(MemberId(977))[0];
        plain.handle_suspect(5, subject);
        assert!(drain(&mut plain).is_empty());
    }

    #[test]
    fn views_from_the_threshold_on_probe_idly_and_smaller_ones_every_period() {
        let config = MonitorConfig::default();
        let probes_in_10_s = |n: u128| {
            let members: Vec<MemberId> = (1..=n).map(|i| MemberId(i * 977)).collect();
            let rings = Rings::new(&members, rings_for(members.len()));
            let mut m = Monitor::new(members[0], Incarnation(0), config, &rings, 0);
            let mut probes = 0;
            for now in (0..10_000).step_by(10) {
                m.handle_timeout(now);
                for o in drain(&mut m) {
                    if let MonitorOutput::Probe(s) = o {
                        probes += 1;
                        m.handle_ack(now, s, Incarnation(0));
                    }
                }
            }
            let subjects: std::collections::BTreeSet<MemberId> =
                rings.subjects_of(members[0]).into_iter().map(|(_, s)| s).collect();
            (probes / subjects.len(), m.config())
        };
        let n = config.idle_from_members as u128;
        let (small, small_config) = probes_in_10_s(n - 1);
        let (large, large_config) = probes_in_10_s(n);
        // Probes per subject in 10 s.
        assert_eq!(small, 100, "every subject every 100 ms below the threshold");
        assert!((7..=9).contains(&large), "{large}: every subject every 1,250 ms from it on");
        assert_eq!(small_config.idle_probe_ms, 0);
        assert_eq!(small_config.contact_ms(), config.silence_ms());
        assert_eq!(large_config.contact_ms(), config.silence_ms() + config.idle_probe_ms);
        // The view changes size: the monitor follows it.
        let members: Vec<MemberId> = (1..=n).map(|i| MemberId(i * 977)).collect();
        let mut m = Monitor::new(members[0], Incarnation(0), config, &Rings::new(&members, 10), 0);
        assert_eq!(m.config().idle_probe_ms, config.idle_probe_ms);
        m.install(&Rings::new(&members[..3], 2), 0);
        assert_eq!(m.config().idle_probe_ms, 0);
    }
}
