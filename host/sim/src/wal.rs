//! The write-ahead log on the simulator: the node's log core, recovery and segment code
//! ([`StepLog`]) over [`MemStorage`], one I/O per step of virtual time, with appends,
//! checkpoints and power losses drawn from one seed. After every power loss the log is reopened
//! and checked: every acknowledged record that is still live is back with its bytes, the live
//! records run without a gap, and nothing unacknowledged is corrupt.

use std::collections::BTreeMap;

use luciole_proto::rand::SplitMix64;
use luciole_wal::{CrashMode, Lsn, MemStorage, RecordType, Step, StepLog, WalConfig};

/// What a run did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WalOutcome {
    /// Steps of virtual time.
    pub steps: u64,
    /// Records appended.
    pub appended: u64,
    /// Records acknowledged (durable before a power loss could take them).
    pub acknowledged: u64,
    /// Power losses.
    pub crashes: u64,
    /// Records checked after reopening.
    pub checked: u64,
    /// Records appended but lost in a power loss before they were acknowledged.
    pub lost_unacknowledged: u64,
}

/// Small segments and writes, so a run crosses many segments and checkpoints remove some.
fn config() -> WalConfig {
    WalConfig {
        segment_bytes: 4096,
        record_bytes_max: 512,
        write_bytes_max: 1024,
        queue_bytes_max: 8 << 10,
        gather_us_max: 0,
    }
}

/// The payload of record `lsn`: its LSN, then bytes derived from it, of a length that varies.
fn payload(lsn: Lsn) -> Vec<u8> {
    let len = 8 + (lsn.0 as usize * 37) % 200;
    let mut p = lsn.0.to_le_bytes().to_vec();
    p.extend((8..len).map(|i| (i as u64 ^ lsn.0) as u8));
    p
}

/// Runs `steps` steps from `seed`. An error names what broke; the seed replays it.
pub fn run(seed: u64, steps: u64) -> Result<WalOutcome, String> {
    let mut rng = SplitMix64::new(seed);
    let storage = MemStorage::new();
    let kind = RecordType::user(16).expect("a user type");
    let (mut log, _, _) = StepLog::open(storage.clone(), config()).map_err(|e| e.to_string())?;
    let mut out = WalOutcome { steps, ..WalOutcome::default() };
    // Records appended since the last reopen and not yet known lost, by LSN.
    let mut appended: BTreeMap<Lsn, Vec<u8>> = BTreeMap::new();
    let mut live_from = Lsn(1);
    for _ in 0..steps {
        match rng.next_u64() % 100 {
            0..=44 => {
                let lsn =
                    Lsn(appended.last_key_value().map_or(0, |(l, _)| l.0).max(live_from.0 - 1) + 1);
                match log.append(kind, &payload(lsn)) {
                    Ok(got) if got == lsn => {
                        appended.insert(lsn, payload(lsn));
                        out.appended += 1;
                    }
                    Ok(got) => return Err(format!("append got LSN {got}, expected {lsn}")),
                    Err(_) => {} // the queue is full: the writer must catch up first
                }
            }
            45..=96 => match log.step().map_err(|e| e.to_string())? {
                Step::Durable(d) => out.acknowledged = out.acknowledged.max(d.0),
                Step::Idle | Step::Written => {}
            },
            97 => {
                let next = appended.last_key_value().map_or(live_from, |(l, _)| l.next());
                let to = Lsn(live_from.0 + rng.next_u64() % (next.0 - live_from.0 + 1));
                if let Ok(lsn) = log.checkpoint(to) {
                    appended.insert(lsn, Vec::new()); // the checkpoint record takes an LSN
                }
            }
            _ => {
                let mode = if rng.next_u64().is_multiple_of(2) {
                    CrashMode::LoseUnsynced
                } else {
                    CrashMode::Scramble { seed: rng.next_u64() }
                };
                let durable = log.durable();
                storage.crash(mode);
                drop(log);
                out.crashes += 1;
                let reopened = StepLog::open(storage.clone(), config())
                    .map_err(|e| format!("reopening after a power loss: {e}"))?;
                let (next_log, records, report) = reopened;
                check(&records, &appended, durable, report.live_from, &mut out)?;
                live_from = report.live_from;
                let next = report.next_lsn;
                out.lost_unacknowledged +=
                    appended.range(next..).filter(|(_, p)| !p.is_empty()).count() as u64;
                appended.retain(|l, _| *l < next);
                log = next_log;
            }
        }
    }
    Ok(out)
}

/// After reopening: every acknowledged live record is back, the live records run without a gap
/// from `live_from`, and every record returned is the one appended.
fn check(
    records: &[luciole_wal::LogRecord],
    appended: &BTreeMap<Lsn, Vec<u8>>,
    durable: Lsn,
    live_from: Lsn,
    out: &mut WalOutcome,
) -> Result<(), String> {
    let users: Vec<_> = appended.range(live_from..).filter(|(_, p)| !p.is_empty()).collect();
    let mut got = records.iter().peekable();
    for (lsn, payload) in users {
        match got.peek() {
            Some(r) if r.lsn == *lsn => {
                if &r.payload != payload {
                    return Err(format!("record {lsn} came back with other bytes"));
                }
                out.checked += 1;
                got.next();
            }
            _ if *lsn <= durable => {
                return Err(format!("acknowledged record {lsn} lost (durable up to {durable})"));
            }
            _ => break, // unacknowledged and lost: the rest must be lost too
        }
    }
    if let Some(r) = got.next() {
        return Err(format!("record {} returned after a gap or never appended", r.lsn));
    }
    Ok(())
}
