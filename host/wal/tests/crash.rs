//! Kill -9 while appending: the test re-runs its own binary as a child that appends from
//! several threads and prints each acknowledged record, kills it with SIGKILL at a random
//! moment, recovers the log, and checks that every acknowledged record is there, in order,
//! and that nothing returned is corrupted. Then the next child continues the same log.
//!
//! A short run by default; a long one with `LUCIOLE_WAL_CRASH_ROUNDS=500 cargo test -p
//! luciole-wal --release --test crash -- --nocapture`. `LUCIOLE_WAL_CRASH_SEED` replays a run.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use luciole_wal::{FileStorage, Lsn, RecordType, Wal, WalConfig};

const CHILD_ENV: &str = "LUCIOLE_WAL_CRASH_CHILD";
const THREADS: u32 = 4;

fn config() -> WalConfig {
    WalConfig {
        segment_bytes: 64 << 10,
        record_bytes_max: 4096,
        write_bytes_max: 16 << 10,
        ..WalConfig::default()
    }
}

/// Record `i` of `thread` in child `round`: a header, then bytes derived from it.
fn payload(round: u32, thread: u32, i: u32) -> Vec<u8> {
    let len = 12
        + (splitmix(u64::from(round) << 40 | u64::from(thread) << 32 | u64::from(i)) % 600)
            as usize;
    let mut p = Vec::with_capacity(len);
    p.extend_from_slice(&round.to_le_bytes());
    p.extend_from_slice(&thread.to_le_bytes());
    p.extend_from_slice(&i.to_le_bytes());
    let mut x = u64::from(round) * 31 + u64::from(thread) * 7 + u64::from(i);
    while p.len() < len {
        x = splitmix(x);
        p.push(x as u8);
    }
    p
}

/// The (round, thread, i) a payload claims to be, if it is exactly what they produce.
fn parse(p: &[u8]) -> Option<(u32, u32, u32)> {
    let word = |at: usize| Some(u32::from_le_bytes(p.get(at..at + 4)?.try_into().ok()?));
    let key = (word(0)?, word(4)?, word(8)?);
    (payload(key.0, key.1, key.2) == p).then_some(key)
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The child: appends until killed, printing `ack LSN ROUND THREAD I` for each synced record.
/// A no-op when run as an ordinary test.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else { return };
    let round: u32 = std::env::var("LUCIOLE_WAL_CRASH_ROUND").unwrap().parse().unwrap();
    let opened =
        Wal::open(FileStorage::new(&dir).unwrap(), config()).expect("child recovers the log");
    let wal = Arc::new(opened.wal);
    let kind = RecordType::user(16).unwrap();
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let wal = wal.clone();
            std::thread::spawn(move || {
                for i in 0.. {
                    let p = payload(round, t, i);
                    let lsn = match t % 2 {
                        0 => wal.append_wait(kind, &p).unwrap(),
                        _ => wal.append(kind, &p).unwrap().wait().unwrap(),
                    };
                    // One write per line: the parent sees whole lines or none.
                    let line = format!("ack {} {round} {t} {i}\n", lsn.0);
                    std::io::stdout().lock().write_all(line.as_bytes()).unwrap();
                    if t == 0 && i % 500 == 499 {
                        // Keep the log bounded: everything but the last 2,000 records is
                        // superseded.
                        let live = Lsn(wal.next_lsn().0.saturating_sub(2000).max(1));
                        wal.checkpoint(live).unwrap().wait().unwrap();
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

fn rounds() -> u32 {
    std::env::var("LUCIOLE_WAL_CRASH_ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(6)
}

#[test]
fn acknowledged_records_survive_sigkill() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let seed: u64 = std::env::var("LUCIOLE_WAL_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
            now.as_nanos() as u64 ^ u64::from(std::process::id())
        });
    let dir = tempfile::tempdir().unwrap();
    let mut acked_total = 0usize;
    let started = Instant::now();
    for round in 0..rounds() {
        let wait_ms = 30 + splitmix(seed ^ u64::from(round)) % 400;
        let acked = run_child(dir.path(), round, Duration::from_millis(wait_ms));
        acked_total += acked.len();
        if let Err(why) = verify(dir.path(), &acked) {
            panic!(
                "round {round}: {why}\nreplay with LUCIOLE_WAL_CRASH_SEED={seed} \
                 LUCIOLE_WAL_CRASH_ROUNDS={} cargo test -p luciole-wal --test crash",
                rounds()
            );
        }
    }
    eprintln!(
        "crash test: {} rounds, {acked_total} acknowledged records checked, seed {seed}, {:.1} s",
        rounds(),
        started.elapsed().as_secs_f64()
    );
    assert!(acked_total > 0, "the children acknowledged nothing: the test tested nothing");
}

/// Runs one child for `wait`, kills it, and returns what it acknowledged: LSN → (round, thread, i).
fn run_child(dir: &Path, round: u32, wait: Duration) -> BTreeMap<u64, (u32, u32, u32)> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, dir)
        .env("LUCIOLE_WAL_CRASH_ROUND", round.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut acked = BTreeMap::new();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let f: Vec<&str> = line.split(' ').collect();
            if f.len() == 5 && f[0] == "ack" {
                let n = |i: usize| f[i].parse::<u64>().unwrap();
                acked.insert(n(1), (n(2) as u32, n(3) as u32, n(4) as u32));
            }
        }
        acked
    });
    std::thread::sleep(wait);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    reader.join().unwrap()
}

/// Recovers the log and checks it against what the children acknowledged.
fn verify(dir: &Path, acked: &BTreeMap<u64, (u32, u32, u32)>) -> Result<(), String> {
    let opened = Wal::open(FileStorage::new(dir).unwrap(), config())
        .map_err(|e| format!("recovery failed: {e}"))?;
    let live = opened.report.live_from.0;
    let mut by_lsn = BTreeMap::new();
    let mut expect = live;
    for r in &opened.records {
        if r.lsn.0 < expect {
            return Err(format!("LSN {} out of order", r.lsn));
        }
        expect = r.lsn.0 + 1;
        let key = parse(&r.payload).ok_or_else(|| format!("record {} is corrupted", r.lsn))?;
        by_lsn.insert(r.lsn.0, key);
    }
    for (&lsn, key) in acked.range(live..) {
        match by_lsn.get(&lsn) {
            Some(k) if k == key => {}
            Some(k) => return Err(format!("LSN {lsn} holds {k:?}, acknowledged as {key:?}")),
            None => return Err(format!("acknowledged LSN {lsn} {key:?} is missing")),
        }
    }
    // Per thread, a record's index follows the previous one's (in LSN order).
    let mut last: BTreeMap<(u32, u32), u32> = BTreeMap::new();
    for &(round, thread, i) in by_lsn.values() {
        if let Some(&prev) = last.get(&(round, thread))
            && i != prev + 1
        {
            return Err(format!("round {round} thread {thread}: record {i} follows {prev}"));
        }
        last.insert((round, thread), i);
    }
    opened.wal.close().map_err(|e| e.to_string())
}
