//! The log against a simple model, with reboots: clean ones, and power losses that drop or
//! scramble whatever was not synced (memory backend).
//!
//! The model is a map from LSN to payload plus what was acknowledged. After any reboot the log
//! must return exactly the model's records from its `live_from` up to some LSN, containing every
//! acknowledged one; after a clean reboot, all of them.

mod common;

use std::collections::BTreeMap;

use common::{small, user};
use luciole_wal::{CrashMode, Lsn, MemStorage, Pending, Wal};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    /// Append a record of this many bytes; wait for it if `wait`.
    Append { bytes: usize, wait: bool },
    /// Checkpoint at this fraction of the way from `live_from` to the next LSN.
    Checkpoint { percent: u64, wait: bool },
    /// Close and reopen.
    Reopen,
    /// Power loss, then reopen.
    Crash { scramble: bool, seed: u64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        10 => (0usize..300, any::<bool>()).prop_map(|(bytes, wait)| Op::Append { bytes, wait }),
        1 => (0u64..=100, any::<bool>()).prop_map(|(percent, wait)| Op::Checkpoint { percent, wait }),
        1 => Just(Op::Reopen),
        2 => (any::<bool>(), any::<u64>()).prop_map(|(scramble, seed)| Op::Crash { scramble, seed }),
    ]
}

#[derive(Default)]
struct Model {
    records: BTreeMap<u64, Vec<u8>>,
    acked: u64,
    /// `live_from` surely in force (acknowledged), and the latest asked for.
    live_acked: u64,
    live_asked: u64,
}

fn content(lsn: u64, bytes: usize) -> Vec<u8> {
    (0..bytes).map(|i| (lsn as usize * 7 + i) as u8).collect()
}

/// Opens the log and checks it against the model; `clean` when nothing may be missing.
fn reopen(storage: &MemStorage, m: &mut Model, clean: bool) -> Wal<MemStorage> {
    let opened =
        Wal::open(storage.clone(), small()).expect("recovery must succeed after any reboot");
    let live = opened.report.live_from.0;
    let next = opened.report.next_lsn.0;
    assert!(
        live >= m.live_acked && live <= m.live_asked.max(1),
        "live_from {live} outside [{}, {}]",
        m.live_acked,
        m.live_asked
    );
    let appended_next = m.records.keys().next_back().map_or(next, |l| l + 1);
    assert!(next > m.acked, "acknowledged LSN {} lost (log continues at {next})", m.acked);
    if clean {
        assert!(next >= appended_next, "a clean reboot lost records from {next} on");
    }
    let got: Vec<(u64, &[u8])> = opened.records.iter().map(|r| (r.lsn.0, &r.payload[..])).collect();
    let want: Vec<(u64, &[u8])> = m.records.range(live..next).map(|(l, p)| (*l, &p[..])).collect();
    assert_eq!(got, want, "records differ from the model");
    // What was lost is gone for good: the model forgets it, and live_from is what it is now.
    m.records.retain(|&l, _| l < next);
    m.live_acked = live;
    m.live_asked = live;
    m.acked = next - 1;
    opened.wal
}

fn run(ops: Vec<Op>) {
    let storage = MemStorage::new();
    let mut m = Model { live_acked: 1, live_asked: 1, ..Model::default() };
    let mut wal = reopen(&storage, &mut m, true);
    let mut pending: Vec<(Pending, Option<u64>)> = Vec::new();
    for op in ops {
        match op {
            Op::Append { bytes, wait } => {
                let lsn = wal.next_lsn().0;
                m.records.insert(lsn, content(lsn, bytes));
                if wait && bytes % 2 == 0 {
                    assert_eq!(wal.append_wait(user(16), &content(lsn, bytes)).unwrap(), Lsn(lsn));
                    m.acked = m.acked.max(lsn);
                    settle(&mut pending, &mut m);
                    continue;
                }
                let p = wal.append(user(16), &content(lsn, bytes)).unwrap();
                assert_eq!(p.lsn(), Lsn(lsn));
                if wait {
                    m.acked = m.acked.max(p.wait().unwrap().0);
                    settle(&mut pending, &mut m);
                } else {
                    pending.push((p, None));
                }
            }
            Op::Checkpoint { percent, wait } => {
                let next = wal.next_lsn().0;
                let live = m.live_asked + (next - m.live_asked) * percent / 100;
                let p = wal.checkpoint(Lsn(live)).unwrap();
                m.live_asked = m.live_asked.max(live);
                if wait {
                    m.acked = m.acked.max(p.wait().unwrap().0);
                    m.live_acked = m.live_acked.max(live);
                    settle(&mut pending, &mut m);
                } else {
                    pending.push((p, Some(live)));
                }
            }
            Op::Reopen => {
                wal.close().unwrap();
                settle(&mut pending, &mut m);
                wal = reopen(&storage, &mut m, true);
            }
            Op::Crash { scramble, seed } => {
                // What completed before the crash is acknowledged; the rest is in doubt.
                settle(&mut pending, &mut m);
                let mode =
                    if scramble { CrashMode::Scramble { seed } } else { CrashMode::LoseUnsynced };
                storage.crash(mode);
                drop(wal);
                pending.clear();
                wal = reopen(&storage, &mut m, false);
            }
        }
    }
}

/// Counts the pending appends that are already durable as acknowledged.
fn settle(pending: &mut Vec<(Pending, Option<u64>)>, m: &mut Model) {
    pending.retain(|(p, live)| {
        if !p.is_durable() {
            return true;
        }
        m.acked = m.acked.max(p.lsn().0);
        if let Some(l) = live {
            m.live_acked = m.live_acked.max(*l);
        }
        false
    });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn the_log_matches_the_model_across_reboots_and_power_losses(ops in proptest::collection::vec(op(), 1..120)) {
        run(ops);
    }
}
