//! Clock skew between members. The workload advances in wall-clock buckets, so members whose
//! clocks disagree by more than a tolerance (default 50 ms) would step the world at different
//! moments; a member notices that from the wall-clock readings its peers put on their messages.
//!
//! For each message from a peer the caller gives the peer's reading when it sent it, its own
//! reading when it arrived, and the round-trip time to that peer (the transport measures it).
//! The peer's clock is then ahead by `sent + rtt/2 - received` (the message is assumed to take
//! half the round trip). One sample is noisy — a delayed message looks like a clock behind —
//! so the estimate is the median of the last [`SAMPLES`]; a peer is skewed while that median
//! is beyond the tolerance, and the change is an event for the driver to log and count.
//!
//! Pure: readings are numbers the caller passes, as in every protocol core.

use std::collections::{BTreeMap, VecDeque};

use crate::ids::MemberId;

/// Samples per peer the estimate is the median of.
pub const SAMPLES: usize = 5;

/// The default tolerance, ms.
pub const TOLERANCE_MS_DEFAULT: u64 = 50;

/// A change in a peer's skew.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SkewEvent {
    /// The peer's clock is `offset_ms` ahead of this member's (behind if negative), beyond
    /// the tolerance.
    Skewed {
        /// The peer.
        peer: MemberId,
        /// The estimated offset, ms.
        offset_ms: i64,
    },
    /// The peer's clock agrees with this member's again, within the tolerance.
    Agrees {
        /// The peer.
        peer: MemberId,
    },
}

/// The skew estimate of every peer heard from.
#[derive(Clone, Debug)]
pub struct SkewMonitor {
    tolerance_ms: u64,
    peers: BTreeMap<MemberId, (VecDeque<i64>, bool)>,
}

impl SkewMonitor {
    /// A monitor flagging peers whose clocks are off by more than `tolerance_ms`.
    pub fn new(tolerance_ms: u64) -> Self {
        Self { tolerance_ms, peers: BTreeMap::new() }
    }

    /// A message from `peer`, sent at its reading `sent_ms`, arrived at this member's reading
    /// `received_ms`; the round trip to `peer` is `rtt_ms`. Returns the change, if any.
    pub fn observe(
        &mut self,
        peer: MemberId,
        sent_ms: u64,
        received_ms: u64,
        rtt_ms: u64,
    ) -> Option<SkewEvent> {
        let offset = (i128::from(sent_ms) + i128::from(rtt_ms / 2) - i128::from(received_ms))
            .clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64;
        let tolerance = self.tolerance_ms;
        let (samples, skewed) = self.peers.entry(peer).or_default();
        if samples.len() == SAMPLES {
            samples.pop_front();
        }
        samples.push_back(offset);
        let median = median(samples);
        let now_skewed = median.unsigned_abs() > tolerance;
        if now_skewed == *skewed || samples.len() < SAMPLES.div_ceil(2) {
            return None;
        }
        *skewed = now_skewed;
        Some(if now_skewed {
            SkewEvent::Skewed { peer, offset_ms: median }
        } else {
            SkewEvent::Agrees { peer }
        })
    }

    /// The estimated offset of `peer`'s clock, ms (ahead if positive), once heard from.
    pub fn offset_ms(&self, peer: MemberId) -> Option<i64> {
        self.peers.get(&peer).map(|(s, _)| median(s))
    }

    /// The peers currently beyond the tolerance.
    pub fn skewed(&self) -> Vec<MemberId> {
        self.peers.iter().filter(|(_, (_, s))| *s).map(|(p, _)| *p).collect()
    }

    /// Forgets `peer` (it left the view).
    pub fn forget(&mut self, peer: MemberId) {
        self.peers.remove(&peer);
    }
}

/// The median of `samples` (the lower middle for an even count); 0 for none.
fn median(samples: &VecDeque<i64>) -> i64 {
    let mut v: Vec<i64> = samples.iter().copied().collect();
    v.sort_unstable();
    v.get(v.len().saturating_sub(1) / 2).copied().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: MemberId = MemberId(7);

    /// Feeds `n` messages from a peer whose clock is `offset` ahead, with round trip `rtt`
    /// and one-way delays of `delays` (cycled), and returns the events.
    fn feed(
        m: &mut SkewMonitor,
        offset: i64,
        rtt: u64,
        delays: &[u64],
        n: usize,
    ) -> Vec<SkewEvent> {
        let mut out = Vec::new();
        for i in 0..n {
            let local_sent = 1_000_000 + 100 * i as u64;
            let received = local_sent + delays[i % delays.len()];
            let sent = (local_sent as i64 + offset) as u64;
            out.extend(m.observe(P, sent, received, rtt));
        }
        out
    }

    #[test]
    fn a_clock_ahead_beyond_the_tolerance_is_flagged_and_cleared_when_it_agrees_again() {
        let mut m = SkewMonitor::new(TOLERANCE_MS_DEFAULT);
        assert_eq!(
            feed(&mut m, 80, 10, &[5], 5),
            vec![SkewEvent::Skewed { peer: P, offset_ms: 80 }]
        );
        assert_eq!(m.skewed(), vec![P]);
        // Corrected: once most of the recent samples agree, so does the estimate.
        assert_eq!(feed(&mut m, 0, 10, &[5], 5), vec![SkewEvent::Agrees { peer: P }]);
        assert!(m.skewed().is_empty());
        assert_eq!(m.offset_ms(P), Some(0));
    }

    #[test]
    fn small_offsets_and_single_delayed_messages_are_not_skew() {
        let mut m = SkewMonitor::new(50);
        assert!(feed(&mut m, 30, 10, &[5], 20).is_empty(), "30 ms is within 50");
        let mut m = SkewMonitor::new(50);
        // One message in five is held up 200 ms: it looks 195 ms behind, the median does not.
        assert!(feed(&mut m, 0, 10, &[5, 5, 205, 5, 5], 50).is_empty());
        // A clock behind is skew too.
        let mut m = SkewMonitor::new(50);
        assert_eq!(
            feed(&mut m, -120, 10, &[5], 3),
            vec![SkewEvent::Skewed { peer: P, offset_ms: -120 }]
        );
    }

    #[test]
    fn peers_are_judged_apart_and_forgotten() {
        let mut m = SkewMonitor::new(50);
        feed(&mut m, 90, 10, &[5], 5);
        let q = MemberId(8);
        for i in 0..5u64 {
            assert_eq!(m.observe(q, 1_000 + i, 1_005 + i, 10), None);
        }
        assert_eq!(m.skewed(), vec![P]);
        m.forget(P);
        assert_eq!(m.offset_ms(P), None);
        // Readings at the ends of u64 do not overflow.
        assert_eq!(m.observe(q, u64::MAX, 0, u64::MAX), None);
    }
}
