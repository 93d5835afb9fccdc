//! What the node tells of its entities and migrations: the counters and the `/status` part,
//! the holdings `luciole check conservation` asks for, and the latency histogram.

use std::collections::BTreeMap;

use luciole_proto::migration::{Fence, Reason};
use serde::{Deserialize, Serialize};

use crate::wire::Summary;

/// Latency histogram buckets: bucket k holds latencies of 2^(k/8) - 1 to 2^((k+1)/8) - 1 µs.
pub const LATENCY_BUCKETS: usize = 200;

/// Counters of the node's entities and migrations, since the process started unless said.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WorldStats {
    /// Entities created by this node (this life).
    pub spawned: u64,
    /// Migrations ended as their source, committed.
    pub commits: u64,
    /// Migrations ended as their source, aborted.
    pub aborts: u64,
    /// Migrations ended as their target, committed (the entity arrived).
    pub arrivals: u64,
    /// Migrations ended as their target, aborted.
    pub target_aborts: u64,
    /// Migrations ended (either side), by reason: `decided`, `refused`, `fenced:<why>`,
    /// `timed-out`, `view-changed`, `source-aborted`.
    pub by_reason: BTreeMap<String, u64>,
    /// Moves the core refused to start, by reason.
    pub not_started: BTreeMap<String, u64>,
    /// Entities that crossed into another bubble hosted here (no migration needed).
    pub relocations: u64,
    /// Commit decisions durable in this node's log, over its whole log (every life).
    pub commits_logged: u64,
    /// Arrivals durable in this node's log, over its whole log.
    pub arrivals_logged: u64,
    /// Checkpoints: a snapshot of the table written and the log before it let go (this life).
    pub checkpoints: u64,
    /// Arrived entities whose payload was not the pattern of their id.
    pub payload_mismatches: u64,
    /// Records appended to the log (this life).
    pub wal_records: u64,
    /// Log writes, each followed by one sync (this life).
    pub wal_syncs: u64,
    /// Bytes written to the log (this life).
    pub wal_bytes: u64,
    /// Migration messages sent and received.
    pub messages_out: u64,
    /// Migration messages received and taken.
    pub messages_in: u64,
    /// Migration frames the transport could not queue (dropped; the protocol resends).
    pub frames_dropped: u64,
    /// Migration messages found missing by their numbers (gaps).
    pub gaps: u64,
    /// Migration messages dropped as duplicates or older than one taken.
    pub duplicates: u64,
    /// Times a peer's clock was found off by more than the tolerance.
    pub skew_events: u64,
    /// Latency of the migrations this node started and saw committed (from its request to
    /// the target's confirmation that the entity is applied and logged): counts per bucket,
    /// bucket k covering 2^(k/8) - 1 to 2^((k+1)/8) - 1 µs ([`latency_bucket`]).
    pub latency_us_log8: Vec<u64>,
}

/// The latency bucket of `us` microseconds.
pub fn latency_bucket(us: u64) -> usize {
    (((us + 1) as f64).log2() * 8.0) as usize
}

/// The latency at quantile `q` (0..=1) of a histogram of [`latency_bucket`]s, µs (the upper
/// edge of its bucket: at most 9 % above the true value); `None` when empty.
pub fn latency_quantile(counts: &[u64], q: f64) -> Option<u64> {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = ((total as f64 * q).ceil() as u64).clamp(1, total);
    let mut seen = 0;
    for (k, n) in counts.iter().enumerate() {
        seen += n;
        if seen >= rank {
            return Some((2f64.powf((k + 1) as f64 / 8.0) - 1.0).round() as u64);
        }
    }
    None
}

/// One peer as this node last heard of it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PeerWorld {
    /// Its member id.
    pub id: String,
    /// Its summary.
    pub summary: Summary,
    /// Milliseconds since the summary arrived.
    pub age_ms: u64,
    /// Its clock's estimated offset from this node's, ms (ahead if positive).
    pub offset_ms: Option<i64>,
    /// Whether the offset is beyond the tolerance.
    pub skewed: bool,
}

/// The entities part of `/status`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WorldStatus {
    /// Bubbles along x, y, z.
    pub cells: [u32; 3],
    /// Entities owned here.
    pub entities: u64,
    /// Of them, frozen by a migration out.
    pub moving_out: u64,
    /// Migrations in which this node is the target and waits for the decision.
    pub in_doubt: u64,
    /// Entities owned here per bubble: (bubble, count).
    pub per_bubble: Vec<(u64, u32)>,
    /// Where each bubble is hosted (member id), by bubble id, as placed for the view the
    /// migration core knows; empty before the first placement.
    pub homes: Vec<String>,
    /// Commits as source per second over the last second.
    pub commits_per_s: f64,
    /// Median latency of this node's committed migrations since it started, µs.
    pub latency_p50_us: Option<u64>,
    /// 99th percentile of the same, µs.
    pub latency_p99_us: Option<u64>,
    /// The other members, as they last told this node.
    pub peers: Vec<PeerWorld>,
    /// Counters.
    pub stats: WorldStats,
}

/// Every entity a node holds, for `luciole check conservation`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holdings {
    /// The node's member id.
    pub node: String,
    /// The view epoch its migration core knows.
    pub epoch: u64,
    /// The first id of the entities it creates, and how many it creates.
    pub spawn_range: (u64, u64),
    /// Entities it owns: (id, ownership epoch).
    pub owned: Vec<(u128, u64)>,
    /// Entities whose move out it committed and whose target has not confirmed it yet:
    /// (id, the ownership epoch the target holds it at).
    pub in_transit: Vec<(u128, u64)>,
    /// Commit decisions durable in its log, over the whole log.
    pub commits_logged: u64,
    /// Arrivals whose payload was damaged.
    pub payload_mismatches: u64,
    /// Whether its workload is paused.
    #[serde(default)]
    pub paused: bool,
}

/// A reason as the status shows it.
pub(super) fn reason_name(r: Reason) -> String {
    match r {
        Reason::Decided => "decided".into(),
        Reason::Refused(_) => "refused".into(),
        Reason::Fenced(f) => format!("fenced:{}", fence_name(f)),
        Reason::TimedOut => "timed-out".into(),
        Reason::ViewChanged => "view-changed".into(),
        Reason::SourceAborted => "source-aborted".into(),
    }
}

fn fence_name(f: Fence) -> &'static str {
    match f {
        Fence::NoQuorum => "no-quorum",
        Fence::StaleView => "stale-view",
        Fence::NotMember => "not-member",
        Fence::Conflict => "conflict",
        Fence::Stale => "stale",
        Fence::NotOwner => "not-owner",
        Fence::SameMember => "same-member",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_quantiles_are_within_a_bucket_of_the_truth() {
        let mut h = vec![0u64; LATENCY_BUCKETS];
        assert_eq!(latency_quantile(&h, 0.5), None);
        // 1..=1000 µs, once each.
        for us in 1..=1000u64 {
            h[latency_bucket(us)] += 1;
        }
        for (q, truth) in [(0.5, 500.0), (0.99, 990.0), (1.0, 1000.0)] {
            let got = latency_quantile(&h, q).unwrap() as f64;
            assert!(got >= truth && got <= truth * 1.1, "q{q}: {got} for {truth}");
        }
        assert_eq!(latency_bucket(0), 0);
        assert!(latency_bucket(33_000_000) < LATENCY_BUCKETS, "33 s fits");
    }
}
