//! The log's behaviour, on the file backend and on the memory backend alike.

mod common;

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::{Backend, block_on, payload, small, user};
use luciole_wal::{
    CrashMode, Lsn, MemFile, MemStorage, SegmentFile, Storage, Wal, WalConfig, WalError,
    segment_name,
};

on_both_backends!(
    records_come_back_after_reopening_in_order,
    records_cross_segments_and_come_back,
    appends_from_many_threads_get_distinct_lsns_and_all_come_back,
    a_record_over_the_limit_is_refused_and_the_log_goes_on,
    a_checkpoint_removes_superseded_segments_and_hides_their_records,
    values_round_trip_through_postcard,
    an_append_can_be_awaited,
    files_that_are_not_segments_are_left_alone_and_spares_removed,
    settings_out_of_range_are_refused,
    a_second_log_on_one_directory_is_refused_until_the_first_is_gone,
    reopening_with_a_smaller_record_limit_refuses_and_destroys_nothing,
    a_checkpoint_past_the_next_lsn_is_an_error_and_changes_nothing,
);

fn a_second_log_on_one_directory_is_refused_until_the_first_is_gone(b: &impl Backend) {
    let first = Wal::open(b.storage(), small()).unwrap().wal;
    first.append_wait(user(16), b"one").unwrap();
    let err = Wal::open(b.storage(), small()).unwrap_err();
    assert!(matches!(&err, WalError::InUse { .. }), "{err}");
    assert!(err.to_string().contains("in use by another log"), "{err}");
    // The first log goes on undisturbed.
    first.append_wait(user(16), b"two").unwrap();
    drop(first);
    let opened = Wal::open(b.storage(), small()).unwrap();
    assert_eq!(opened.records.len(), 2);
}

fn reopening_with_a_smaller_record_limit_refuses_and_destroys_nothing(b: &impl Backend) {
    let wal = Wal::open(b.storage(), small()).unwrap().wal;
    wal.append_wait(user(16), &[1; 100]).unwrap();
    let big = wal.append_wait(user(16), &[7; 1000]).unwrap(); // the last write of the log
    drop(wal);
    let smaller = WalConfig { record_bytes_max: 500, ..small() };
    let err = Wal::open(b.storage(), smaller).unwrap_err();
    assert!(
        matches!(err, WalError::RecordOverLimit { lsn, bytes: 1000, max: 500 } if lsn == big),
        "{err}"
    );
    let opened = Wal::open(b.storage(), small()).unwrap();
    assert_eq!(opened.report.torn_bytes, 0);
    assert_eq!(opened.records.last().unwrap().payload, vec![7; 1000], "nothing was cut");
}

fn a_checkpoint_past_the_next_lsn_is_an_error_and_changes_nothing(b: &impl Backend) {
    let wal = Wal::open(b.storage(), small()).unwrap().wal;
    wal.append_wait(user(16), b"one").unwrap();
    for bad in [Lsn(0), Lsn(3), Lsn(u64::MAX)] {
        let err = wal.checkpoint(bad).unwrap_err();
        assert!(matches!(err, WalError::Checkpoint { next: Lsn(2), .. }), "{err}");
    }
    assert_eq!(wal.next_lsn(), Lsn(2), "no LSN was taken");
    wal.append_wait(user(16), b"two").unwrap();
    drop(wal);
    let opened = Wal::open(b.storage(), small()).unwrap();
    assert_eq!(opened.records.len(), 2);
}

#[test]
fn a_checkpoint_that_cannot_remove_segments_counts_it_and_the_next_one_retries() {
    let storage = FailingSync::new();
    let wal = Wal::open(storage.clone(), small()).unwrap().wal;
    for i in 0..200 {
        wal.append_wait(user(16), &payload(2, i)).unwrap();
    }
    storage.removes_fail.store(true, Ordering::SeqCst);
    wal.checkpoint(wal.next_lsn()).unwrap().wait().unwrap();
    let stats = wal.stats();
    assert_eq!((stats.cleanup_failures, stats.segments_removed), (1, 0), "{stats:?}");
    storage.removes_fail.store(false, Ordering::SeqCst);
    wal.append_wait(user(16), b"more").unwrap();
    wal.checkpoint(wal.next_lsn()).unwrap().wait().unwrap();
    let stats = wal.stats();
    assert!(stats.segments_removed >= 3, "the next checkpoint removes them: {stats:?}");
    drop(wal);
    assert!(Wal::open(storage, small()).unwrap().records.is_empty());
}

/// An async appender never blocks its thread: with the queue full it waits as a future, and
/// completes once the writer frees space and syncs its record.
#[test]
fn an_async_append_waits_for_queue_space_without_blocking_the_thread() {
    use std::future::Future;
    use std::task::{Context, Waker};
    let storage = MemStorage::new();
    let config = WalConfig { queue_bytes_max: 1024, write_bytes_max: 512, ..small() };
    let wal = Wal::open(storage.clone(), config).unwrap().wal;
    storage.hold_syncs(true);
    // One write goes out and hangs in its sync; the queue behind it fills up: four frames of
    // 221 bytes are queued (the one in flight counts until it is synced), a fifth does not fit.
    let mut pending = vec![wal.append(user(16), &[1; 200]).unwrap()];
    wait_for(|| storage.unsynced_bytes() > 0);
    for _ in 0..3 {
        pending.push(wal.append(user(16), &[2; 200]).unwrap());
    }
    let payload = [3u8; 200];
    let mut fut = Box::pin(wal.append_async(user(16), &payload));
    let mut cx = Context::from_waker(Waker::noop());
    let started = std::time::Instant::now();
    assert!(fut.as_mut().poll(&mut cx).is_pending(), "the queue is full: it waits");
    assert!(started.elapsed() < std::time::Duration::from_millis(100), "without blocking");
    storage.hold_syncs(false);
    let lsn = block_on(fut).expect("completes once space is freed and it is synced");
    assert_eq!(lsn, Lsn(pending.len() as u64 + 1));
    for p in pending {
        p.wait().unwrap();
    }
    assert!(wal.durable_lsn() >= lsn);
}

/// A failed sync led by a blocking appender while a record of `append` waits behind it: the
/// queued record must not be written, synced or acknowledged afterwards, even though the next
/// sync would succeed.
#[test]
fn after_a_failed_sync_led_by_a_blocking_appender_nothing_queued_is_acknowledged() {
    let storage = FailingSync::new();
    let wal = Arc::new(Wal::open(storage.clone(), small()).unwrap().wal);
    wal.append_wait(user(16), b"before").unwrap();
    storage.inner.hold_syncs(true);
    let leader = {
        let wal = wal.clone();
        std::thread::spawn(move || wal.append_wait(user(16), b"led"))
    };
    wait_for(|| storage.inner.unsynced_bytes() > 0); // the leader's sync is in flight
    let queued = wal.append(user(16), b"queued").unwrap();
    storage.failing.store(true, Ordering::SeqCst);
    storage.inner.release_syncs(1);
    let err = leader.join().unwrap().unwrap_err();
    assert!(err.to_string().contains("injected EIO"), "{err}");
    // The disk works again; nothing may be written any more.
    storage.failing.store(false, Ordering::SeqCst);
    storage.inner.hold_syncs(false);
    let queued_lsn = queued.lsn();
    assert!(queued.wait().is_err(), "a record queued behind a failed sync is not acknowledged");
    assert!(wal.durable_lsn() < queued_lsn, "durable_lsn moved past the failure");
    assert!(wal.append(user(16), b"later").is_err());
    assert!(wal.append_wait(user(16), b"later").is_err());
    drop(wal);
    storage.inner.crash(CrashMode::LoseUnsynced);
    let opened = Wal::open(storage, small()).expect("the log reopens");
    assert!(opened.records.iter().all(|r| r.payload != b"queued"), "{:?}", opened.records);
}

fn records_come_back_after_reopening_in_order(b: &impl Backend) {
    let opened = Wal::open(b.storage(), small()).unwrap();
    assert!(opened.records.is_empty());
    assert_eq!(opened.report.next_lsn, Lsn(1));
    let wal = opened.wal;
    for i in 0..20 {
        let lsn = Lsn(u64::from(i) + 1);
        if i % 2 == 0 {
            let p = wal.append(user(16), &payload(0, i)).unwrap();
            assert_eq!(p.lsn(), lsn);
            assert_eq!(p.wait().unwrap(), lsn);
        } else {
            assert_eq!(wal.append_wait(user(16), &payload(0, i)).unwrap(), lsn);
        }
    }
    wal.close().unwrap();
    let opened = Wal::open(b.storage(), small()).unwrap();
    let got: Vec<_> = opened.records.iter().map(|r| (r.lsn.0, r.payload.clone())).collect();
    let want: Vec<_> = (0..20).map(|i| (u64::from(i) + 1, payload(0, i))).collect();
    assert_eq!(got, want);
    assert_eq!(opened.report.torn_bytes, 0);
    // And the log continues where it stopped.
    assert_eq!(opened.wal.append(user(17), b"next").unwrap().wait().unwrap(), Lsn(21));
}

fn records_cross_segments_and_come_back(b: &impl Backend) {
    let wal = Wal::open(b.storage(), small()).unwrap().wal;
    let pending: Vec<_> = (0..300).map(|i| wal.append(user(16), &payload(1, i)).unwrap()).collect();
    for p in pending {
        p.wait().unwrap();
    }
    let stats = wal.stats();
    assert!(stats.segments_created >= 5, "{stats:?}");
    assert!(stats.writes < 300, "appends share writes: {stats:?}");
    drop(wal);
    let segments = b.files().iter().filter(|f| f.ends_with(".wal")).count();
    assert!(segments >= 6, "{:?}", b.files());
    let opened = Wal::open(b.storage(), small()).unwrap();
    assert_eq!(opened.records.len(), 300);
    for (i, r) in opened.records.iter().enumerate() {
        assert_eq!(r.payload, payload(1, i as u32));
    }
    assert_eq!(opened.report.segments, segments);
}

fn appends_from_many_threads_get_distinct_lsns_and_all_come_back(b: &impl Backend) {
    let wal = Arc::new(Wal::open(b.storage(), small()).unwrap().wal);
    let threads: Vec<_> = (0..8u32)
        .map(|w| {
            let wal = wal.clone();
            std::thread::spawn(move || {
                // Half the threads lead writes themselves, half leave them to the writer.
                (0..100u32)
                    .map(|i| match w % 2 {
                        0 => wal.append_wait(user(16), &payload(w, i)).unwrap(),
                        _ => wal.append(user(16), &payload(w, i)).unwrap().wait().unwrap(),
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut lsns: Vec<_> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
    lsns.sort();
    assert_eq!(lsns, (1..=800).map(Lsn).collect::<Vec<_>>());
    Arc::into_inner(wal).unwrap().close().unwrap();
    let opened = Wal::open(b.storage(), small()).unwrap();
    assert_eq!(opened.records.len(), 800);
    // Each writer's records in its own order.
    let mut next = [0u32; 8];
    for r in &opened.records {
        let w = u32::from_le_bytes(r.payload[0..4].try_into().unwrap());
        let i = u32::from_le_bytes(r.payload[4..8].try_into().unwrap());
        assert_eq!(i, next[w as usize]);
        assert_eq!(r.payload, payload(w, i));
        next[w as usize] += 1;
    }
}

fn a_record_over_the_limit_is_refused_and_the_log_goes_on(b: &impl Backend) {
    let wal = Wal::open(b.storage(), small()).unwrap().wal;
    let err = wal.append(user(16), &[0; 1025]).unwrap_err();
    assert!(matches!(err, WalError::TooLarge { bytes: 1025, max: 1024 }), "{err}");
    // The largest record fits, even in a fresh segment.
    assert_eq!(wal.append(user(16), &[7; 1024]).unwrap().wait().unwrap(), Lsn(1));
    assert_eq!(wal.append(user(16), &[8; 1024]).unwrap().wait().unwrap(), Lsn(2));
}

fn a_checkpoint_removes_superseded_segments_and_hides_their_records(b: &impl Backend) {
    let wal = Wal::open(b.storage(), small()).unwrap().wal;
    let segments = || b.files().iter().filter(|f| f.ends_with(".wal")).count();
    let pending: Vec<_> = (0..200).map(|i| wal.append(user(16), &payload(2, i)).unwrap()).collect();
    for p in pending {
        p.wait().unwrap();
    }
    let before = segments();
    // Records 150.. stay live.
    let c = wal.checkpoint(Lsn(150)).unwrap().wait().unwrap();
    assert_eq!(c, Lsn(201));
    let stats = wal.stats();
    assert!(stats.segments_removed > 0, "{stats:?}");
    assert_eq!(segments(), before - stats.segments_removed as usize);
    assert!(segments() < before);
    wal.append(user(16), b"after").unwrap().wait().unwrap();
    drop(wal);
    let opened = Wal::open(b.storage(), small()).unwrap();
    let lsns: Vec<u64> = opened.records.iter().map(|r| r.lsn.0).collect();
    let mut want: Vec<u64> = (150..=200).collect();
    want.push(202);
    assert_eq!(lsns, want);
    assert_eq!(opened.report.live_from, Lsn(150));
    // Everything superseded: the log keeps only what it appends next.
    let c = opened.wal.checkpoint(Lsn(203)).unwrap().wait().unwrap();
    assert_eq!(c, Lsn(203));
    drop(opened);
    let opened = Wal::open(b.storage(), small()).unwrap();
    assert!(opened.records.is_empty());
    assert_eq!(opened.report.next_lsn, Lsn(204));
}

fn values_round_trip_through_postcard(b: &impl Backend) {
    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Moved {
        entity: u128,
        to: u64,
    }
    let wal = Wal::open(b.storage(), small()).unwrap().wal;
    let v = Moved { entity: u128::MAX - 3, to: 9 };
    wal.append_value(user(20), &v).unwrap().wait().unwrap();
    drop(wal);
    let r = &Wal::open(b.storage(), small()).unwrap().records[0];
    assert_eq!(r.kind, user(20));
    assert_eq!(r.decode::<Moved>().unwrap(), v);
    assert!(r.decode::<String>().is_err());
}

fn an_append_can_be_awaited(b: &impl Backend) {
    let wal = Wal::open(b.storage(), small()).unwrap().wal;
    let p = wal.append(user(16), b"awaited").unwrap();
    assert_eq!(block_on(p).unwrap(), Lsn(1));
    assert!(wal.durable_lsn() >= Lsn(1));
}

fn files_that_are_not_segments_are_left_alone_and_spares_removed(b: &impl Backend) {
    drop(Wal::open(b.storage(), small()).unwrap());
    b.write_file("README", b"operator notes");
    b.write_file("00000000000000000009.wal.tmp", &[1, 2, 3]);
    let opened = Wal::open(b.storage(), small()).unwrap();
    assert_eq!(opened.report.ignored, vec!["README".to_string()]);
    assert!(opened.report.removed_spares >= 1);
    drop(opened);
    assert!(b.files().contains(&"README".to_string()));
    assert!(!b.files().contains(&"00000000000000000009.wal.tmp".to_string()));
}

fn settings_out_of_range_are_refused(b: &impl Backend) {
    for config in [
        WalConfig { segment_bytes: 100, ..small() },
        WalConfig { record_bytes_max: 0, ..small() },
        WalConfig { record_bytes_max: 2 << 20, ..WalConfig::default() },
        WalConfig { queue_bytes_max: 10, ..small() },
    ] {
        let err = Wal::open(b.storage(), config).unwrap_err();
        assert!(matches!(err, WalError::Config(_)), "{err}");
    }
    assert!(b.files().is_empty(), "nothing created for a refused setting");
}

#[test]
fn acknowledged_records_survive_a_power_loss_and_the_log_goes_on() {
    for seed in 0..40 {
        let storage = MemStorage::new();
        power_loss_round(seed, storage.clone(), |mode| {
            storage.crash(mode);
        });
    }
}

/// The same on real files: `LossyFiles` rolls the directory back to what was synced, as a power
/// loss would (LazyFS-like). Seeds `0..LUCIOLE_WAL_POWER_SEEDS` (default 20).
#[test]
fn acknowledged_records_survive_a_power_loss_on_real_files() {
    let seeds: u64 =
        std::env::var("LUCIOLE_WAL_POWER_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(20);
    for seed in 0..seeds {
        let dir = tempfile::tempdir().unwrap();
        let storage = luciole_wal::LossyFiles::new(dir.path()).unwrap();
        power_loss_round(seed, storage.clone(), |mode| {
            storage.crash(mode).unwrap();
        });
    }
}

/// Appends 60 records (a checkpoint among them), waits for some, crashes with the rest in
/// flight, reopens: every acknowledged record is there, nothing else is corrupt or missing in
/// between, and the log goes on.
fn power_loss_round<S: Storage + Clone>(seed: u64, storage: S, crash: impl FnOnce(CrashMode)) {
    let wal = Wal::open(storage.clone(), small()).unwrap().wal;
    let mut acked = Vec::new();
    let mut user_records = Vec::new();
    for i in 0..60 {
        if i == 40 {
            // Keeps every record live; writes the tail marker when synced.
            let _not_awaited = wal.checkpoint(Lsn(1)).unwrap();
            continue;
        }
        let p = wal.append(user(16), &payload(3, i)).unwrap();
        user_records.push((p.lsn(), payload(3, i)));
        if i % 7 == 0 {
            acked.push((p.wait().unwrap(), payload(3, i)));
        }
    }
    // Crash with the later appends possibly in flight.
    let mode =
        if seed.is_multiple_of(2) { CrashMode::LoseUnsynced } else { CrashMode::Scramble { seed } };
    crash(mode);
    drop(wal);
    let opened = Wal::open(storage.clone(), small()).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
    for (lsn, p) in &acked {
        let r = opened.records.iter().find(|r| r.lsn == *lsn);
        assert_eq!(r.map(|r| &r.payload), Some(p), "seed {seed}: acknowledged LSN {lsn} lost");
    }
    for (r, (lsn, p)) in opened.records.iter().zip(&user_records) {
        assert_eq!((&r.lsn, &r.payload), (lsn, p), "seed {seed}: no gaps, nothing corrupted");
    }
    let next = opened.wal.append(user(16), b"after").unwrap().wait().unwrap();
    assert_eq!(next, opened.report.next_lsn, "seed {seed}");
}

/// A memory storage whose syncs fail once `failing` is set.
#[derive(Clone)]
struct FailingSync {
    inner: MemStorage,
    failing: Arc<AtomicBool>,
    /// While set, removing a file fails.
    removes_fail: Arc<AtomicBool>,
}

impl FailingSync {
    fn new() -> Self {
        Self {
            inner: MemStorage::new(),
            failing: Arc::new(AtomicBool::new(false)),
            removes_fail: Arc::new(AtomicBool::new(false)),
        }
    }
}

struct FailingFile {
    inner: MemFile,
    failing: Arc<AtomicBool>,
}

impl SegmentFile for FailingFile {
    fn write_at(&mut self, offset: u64, bytes: &[u8]) -> io::Result<()> {
        self.inner.write_at(offset, bytes)
    }
    fn sync(&mut self) -> io::Result<()> {
        // The flag is read once the sync returns, so that a held sync can be made to fail.
        self.inner.sync()?;
        if self.failing.load(Ordering::SeqCst) {
            return Err(io::Error::other("injected EIO"));
        }
        Ok(())
    }
}

impl Storage for FailingSync {
    type File = FailingFile;
    type Lock = luciole_wal::MemLock;
    fn lock(&self) -> io::Result<Self::Lock> {
        self.inner.lock()
    }
    fn list(&self) -> io::Result<Vec<String>> {
        self.inner.list()
    }
    fn read(&self, name: &str) -> io::Result<Vec<u8>> {
        self.inner.read(name)
    }
    fn create(&self, name: &str, len: u64) -> io::Result<FailingFile> {
        Ok(FailingFile { inner: self.inner.create(name, len)?, failing: self.failing.clone() })
    }
    fn open(&self, name: &str) -> io::Result<FailingFile> {
        Ok(FailingFile { inner: self.inner.open(name)?, failing: self.failing.clone() })
    }
    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        self.inner.rename(from, to)
    }
    fn remove(&self, name: &str) -> io::Result<()> {
        if self.removes_fail.load(Ordering::SeqCst) {
            return Err(io::Error::other("injected EACCES"));
        }
        self.inner.remove(name)
    }
    fn sync_dir(&self) -> io::Result<()> {
        self.inner.sync_dir()
    }
    fn describe(&self, name: &str) -> String {
        self.inner.describe(name)
    }
}

#[test]
fn a_failed_sync_stops_the_log_and_reopening_recovers_what_was_acknowledged() {
    let storage = FailingSync::new();
    let wal = Wal::open(storage.clone(), small()).unwrap().wal;
    for i in 0..10 {
        wal.append(user(16), &payload(4, i)).unwrap().wait().unwrap();
    }
    storage.failing.store(true, Ordering::SeqCst);
    let err = wal.append(user(16), b"doomed").unwrap().wait().unwrap_err();
    assert!(matches!(&err, WalError::Io { op: "sync", .. }), "{err}");
    assert!(err.to_string().contains("injected EIO"), "{err}");
    // No retry: the log stays stopped, even once the disk works again.
    storage.failing.store(false, Ordering::SeqCst);
    assert!(wal.append(user(16), b"later").is_err());
    assert!(wal.close().is_err());
    storage.inner.crash(CrashMode::LoseUnsynced);
    let opened = Wal::open(storage, small()).unwrap();
    // "doomed" reached the disk before its sync reported the error: it may come back too.
    assert!(matches!(opened.records.len(), 10 | 11), "{:?}", opened.records);
    assert_eq!(opened.records[9].payload, payload(4, 9));
}

#[test]
fn the_first_segment_is_named_for_sequence_one() {
    let storage = MemStorage::new();
    drop(Wal::open(storage.clone(), small()).unwrap());
    assert!(storage.list().unwrap().contains(&segment_name(1)));
}

#[test]
fn a_power_loss_in_the_middle_of_a_write_is_a_torn_tail_never_corruption() {
    // A write of many sectors is on its way when the power goes: any subset of its sectors may
    // persist, some cut short. Recovery must cut it as a torn tail — never call it corruption —
    // and keep everything acknowledged before it.
    let config = WalConfig {
        segment_bytes: 64 << 10,
        write_bytes_max: 32 << 10,
        queue_bytes_max: 64 << 10,
        ..small()
    };
    let mut holes_seen = 0;
    for seed in 0..300 {
        let storage = MemStorage::new();
        let wal = Wal::open(storage.clone(), config.clone()).unwrap().wal;
        for i in 0..20 {
            wal.append(user(16), &payload(5, i)).unwrap().wait().unwrap();
        }
        // Record 20 goes out alone and its sync is held; 21..80 queue up behind it as one
        // write. Let the first sync through: the big write goes out, and its sync is held.
        storage.hold_syncs(true);
        let first = wal.append(user(16), &payload(5, 20)).unwrap();
        wait_for(|| storage.unsynced_bytes() > 0);
        let mut in_flight: Vec<_> =
            (21..80).map(|i| wal.append(user(16), &payload(5, i)).unwrap()).collect();
        storage.release_syncs(1);
        first.wait().unwrap();
        wait_for(|| storage.unsynced_bytes() > 4 * 512);
        in_flight.retain(|p| !p.is_durable());
        assert_eq!(in_flight.len(), 59);
        storage.crash(CrashMode::Scramble { seed });
        drop(wal);
        assert!(in_flight.iter().all(|p| !p.is_durable()));
        let opened = Wal::open(storage.clone(), config.clone())
            .unwrap_or_else(|e| panic!("seed {seed}: a torn write was called corruption: {e}"));
        let n = opened.records.len();
        assert!(n >= 21, "seed {seed}: acknowledged records lost");
        for (i, r) in opened.records.iter().enumerate() {
            assert_eq!(r.payload, payload(5, i as u32), "seed {seed}");
        }
        if n < 80 && opened.report.torn_bytes > 0 {
            holes_seen += 1;
        }
        let next = opened.wal.append(user(16), b"after").unwrap().wait().unwrap();
        assert_eq!(next, Lsn(n as u64 + 1));
    }
    assert!(holes_seen > 50, "the crashes tore writes in only {holes_seen} of 300 runs");
}

/// Waits (bounded) until `cond` holds.
fn wait_for(cond: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !cond() {
        assert!(std::time::Instant::now() < deadline, "timed out waiting");
        std::thread::yield_now();
    }
}

/// The writer wakes one task per sync and leaves the others to it; a task that never polls
/// its record again must not keep the rest waiting.
#[test]
fn tasks_complete_when_the_task_woken_first_never_polls_again() {
    use std::future::Future;
    use std::time::Duration;

    /// Polls `p` once, so that it registers this task's waker.
    async fn poll_once(p: &mut luciole_wal::Pending) {
        let mut p = std::pin::Pin::new(p);
        std::future::poll_fn(|cx| {
            assert!(p.as_mut().poll(cx).is_pending(), "syncs are held");
            std::task::Poll::Ready(())
        })
        .await;
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    let storage = MemStorage::new();
    let wal = Arc::new(Wal::open(storage.clone(), small()).unwrap().wal);
    let (_never, parked) = tokio::sync::watch::channel(());
    for round in 0..20 {
        storage.hold_syncs(true);
        let (polled_tx, mut polled) = tokio::sync::mpsc::unbounded_channel();
        // Tasks that register their records, then wait for something else for good.
        for _ in 0..7 {
            let (wal, polled_tx, mut parked) = (wal.clone(), polled_tx.clone(), parked.clone());
            runtime.spawn(async move {
                let mut p = wal.append(user(16), b"stale").unwrap();
                poll_once(&mut p).await;
                polled_tx.send(()).unwrap();
                let _ = parked.changed().await;
                drop(p);
            });
        }
        let live = {
            let (wal, polled_tx) = (wal.clone(), polled_tx.clone());
            runtime.spawn(async move {
                let mut p = wal.append(user(16), b"live").unwrap();
                poll_once(&mut p).await;
                polled_tx.send(()).unwrap();
                p.await
            })
        };
        runtime.block_on(async {
            for _ in 0..8 {
                polled.recv().await.unwrap();
            }
        });
        storage.hold_syncs(false);
        let done =
            runtime.block_on(async { tokio::time::timeout(Duration::from_secs(5), live).await });
        assert!(done.is_ok(), "round {round}: an append stayed unacknowledged");
        done.unwrap().unwrap().unwrap();
    }
    drop(_never);
    runtime.shutdown_timeout(Duration::from_secs(5));
}
