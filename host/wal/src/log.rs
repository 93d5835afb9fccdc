//! The log: appends with group commit, one writer thread, segment rotation and removal.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use luciole_proto::limits::WAL_RECORD_BYTES_MAX;
use luciole_proto::wal::format::{
    SEGMENT_HEADER_BYTES, SegmentHeader, TAIL_FILE, TailMarker, encode_checkpoint, encode_frame,
};
use luciole_proto::wal::recovery::Recovery;
use luciole_proto::wal::{Lsn, RecordType};
use serde::Serialize;

use crate::durable::{Durability, Pending};
use crate::logcore::{LogCore, Resume};
use crate::storage::{SegmentFile, Storage};
use crate::writer::{self, Core, create_segment};
use crate::{LogRecord, WalConfig, WalError};

/// A write-ahead log on a [`Storage`].
///
/// Appends from any number of threads are numbered in call order. Whoever writes — the
/// background writer thread, or a thread blocked in [`Wal::append_wait`] when no write is in
/// progress — takes everything queued since the last sync as one write, writes it and syncs it
/// (group commit): a write is at most [`WalConfig::write_bytes_max`] bytes, and a record waits
/// for at most the sync in progress, [`WalConfig::gather_us_max`] and its own sync. A failed write or sync stops the log
/// for good — after an `fdatasync` error, what reached the disk is unknown — and every pending
/// and later append fails; reopen to recover.
pub struct Wal<S: Storage> {
    inner: Arc<Inner<S>>,
    writer: Option<JoinHandle<()>>,
}

impl<S: Storage> std::fmt::Debug for Wal<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wal").field("config", &self.inner.config).finish_non_exhaustive()
    }
}

/// A log just opened: the live records found on the storage, and the log to append to.
pub struct Opened<S: Storage> {
    /// The log, ready for appends.
    pub wal: Wal<S>,
    /// The live records (from the last checkpoint's `live_from` on), in LSN order.
    pub records: Vec<LogRecord>,
    /// What recovery did.
    pub report: RecoveryReport,
}

impl<S: Storage> std::fmt::Debug for Opened<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opened")
            .field("records", &self.records.len())
            .field("report", &self.report)
            .finish_non_exhaustive()
    }
}

/// What opening a log found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Segments read.
    pub segments: usize,
    /// Bytes read.
    pub bytes: u64,
    /// Records returned (live user records).
    pub records: usize,
    /// The oldest live LSN.
    pub live_from: Lsn,
    /// The LSN the next append gets.
    pub next_lsn: Lsn,
    /// Bytes of a torn tail that were zeroed (0 after a clean shutdown or a crash between
    /// writes).
    pub torn_bytes: usize,
    /// Half-prepared segment files removed.
    pub removed_spares: usize,
    /// Files in the directory that are not part of the log and were left alone.
    pub ignored: Vec<String>,
    /// Time taken.
    pub elapsed: Duration,
}

/// Counters of a running log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WalStats {
    /// Writes (each one write call and one sync).
    pub writes: u64,
    /// Records written.
    pub records: u64,
    /// Bytes written, frames included.
    pub bytes: u64,
    /// Segments created.
    pub segments_created: u64,
    /// Segments removed after checkpoints.
    pub segments_removed: u64,
    /// Time spent writing and syncing, in microseconds.
    pub io_us: u64,
    /// Time writers spent gathering records for a write, in microseconds.
    pub gather_us: u64,
    /// Superseded segments a checkpoint could not remove (or whose removal it could not make
    /// durable); each is tried again at the next checkpoint.
    pub cleanup_failures: u64,
}

pub(crate) struct Inner<S: Storage> {
    pub(crate) storage: Arc<S>,
    pub(crate) config: WalConfig,
    pub(crate) state: Mutex<State>,
    /// The background writer waits here for work.
    pub(crate) work: Condvar,
    /// A writer gathering records for its next write waits here for more.
    pub(crate) arrivals: Condvar,
    /// Appenders wait here for queue space.
    pub(crate) space: Condvar,
    pub(crate) durability: Arc<Durability>,
    pub(crate) stats: Stats,
    /// Whoever holds it writes: the background writer, or a blocking appender leading.
    pub(crate) core: Mutex<Core<S>>,
    /// The directory, ours until the last reference (the writer thread's included) is gone.
    _lock: S::Lock,
}

#[derive(Default)]
pub(crate) struct Stats {
    pub(crate) writes: AtomicU64,
    pub(crate) records: AtomicU64,
    pub(crate) bytes: AtomicU64,
    pub(crate) segments_created: AtomicU64,
    pub(crate) segments_removed: AtomicU64,
    pub(crate) io_us: AtomicU64,
    pub(crate) gather_us: AtomicU64,
    pub(crate) cleanup_failures: AtomicU64,
}

pub(crate) struct State {
    /// Numbering, batching and durability, without I/O.
    pub(crate) core: LogCore,
    pub(crate) closing: bool,
    /// The background writer waits for work.
    pub(crate) writer_idle: bool,
    /// Writers waiting for more records to gather.
    pub(crate) gatherers: u32,
    /// How many records the gathering writer waits for in the first queued write.
    pub(crate) gather_records: u64,
    /// Tasks of [`Wal::append_async`] waiting for queue space.
    pub(crate) space_wakers: Vec<std::task::Waker>,
}

/// The file name of segment `seq`.
pub fn segment_name(seq: u64) -> String {
    format!("{seq:020}.wal")
}

pub(crate) fn spare_name(seq: u64) -> String {
    format!("{seq:020}.wal.tmp")
}

/// What recovery found on a storage, and the log's state to go on from.
pub(crate) struct Recovered<S: Storage> {
    pub(crate) lock: S::Lock,
    /// The newest segment, open for writing.
    pub(crate) file: S::File,
    /// Segments in the log, oldest first: sequence number and first LSN.
    pub(crate) segments: VecDeque<(u64, Lsn)>,
    pub(crate) resume: Resume,
    pub(crate) records: Vec<LogRecord>,
    pub(crate) report: RecoveryReport,
}

/// Recovers the log on `storage` (or creates it, if empty): takes the directory's lock, reads
/// every segment, refuses corruption, zeroes a torn tail. The same for every driver.
pub(crate) fn recover<S: Storage>(
    storage: &S,
    config: &WalConfig,
) -> Result<Recovered<S>, WalError> {
    let started = Instant::now();
    let io = |op: &'static str, name: &str| {
        let path = storage.describe(name);
        move |source| WalError::io(op, path, source)
    };
    let lock = storage
        .lock()
        .map_err(|e| WalError::InUse { path: storage.describe(""), why: e.to_string() })?;
    let mut report = RecoveryReport::default();
    let mut segs = list_segments(storage, &mut report)?;
    segs.sort_unstable();
    // The format's limit decides what is a frame, not this open's setting: a log written
    // with a larger `record_bytes_max` is read whole, and its large records refused below.
    let mut scan = Recovery::new(WAL_RECORD_BYTES_MAX);
    let mut records = Vec::new();
    let mut segments = VecDeque::new();
    let mut tail = None;
    // One buffer for every segment: no fresh 64 MiB to fault in per segment.
    let mut bytes = Vec::new();
    for &seq in &segs {
        let name = segment_name(seq);
        storage.read_into(&name, &mut bytes).map_err(io("read", &name))?;
        report.bytes += bytes.len() as u64;
        let header = SegmentHeader::decode(&bytes).ok();
        let end = scan
            .segment(seq, &bytes, |r| records.push(LogRecord::from(r)))
            .map_err(|e| WalError::corrupt(storage, e))?;
        let header = header.expect("recovery checked the header");
        segments.push_back((seq, header.first_lsn));
        tail = Some((seq, end));
    }
    let recovered = scan.finish().map_err(|e| WalError::corrupt(storage, e))?;
    // Before anything is changed: the log must reach as far as its tail marker says.
    check_tail(storage, segs.last().copied(), Lsn(recovered.next_lsn.0 - 1))?;
    records.retain(|r| r.lsn >= recovered.live_from);
    if let Some(r) = records.iter().find(|r| r.payload.len() > config.record_bytes_max) {
        return Err(WalError::RecordOverLimit {
            lsn: r.lsn,
            bytes: r.payload.len(),
            max: config.record_bytes_max,
        });
    }
    let (file, seq, offset) = writable_tail(storage, config, tail, &mut segments, &mut report)?;
    report.segments = segs.len();
    report.records = records.len();
    report.live_from = recovered.live_from;
    report.next_lsn = recovered.next_lsn;
    report.elapsed = started.elapsed();
    let resume =
        Resume { next_lsn: recovered.next_lsn, seq, offset, live_from: recovered.live_from };
    Ok(Recovered { lock, file, segments, resume, records, report })
}

/// The newest segment opened for writing, its torn tail zeroed; or, for an empty log, its first
/// segment created. Returns the file and where the next frame goes.
fn writable_tail<S: Storage>(
    storage: &S,
    config: &WalConfig,
    tail: Option<(u64, luciole_proto::wal::recovery::SegmentEnd)>,
    segments: &mut VecDeque<(u64, Lsn)>,
    report: &mut RecoveryReport,
) -> Result<(S::File, u64, u64), WalError> {
    let io = |op: &'static str, name: &str| {
        let path = storage.describe(name);
        move |source| WalError::io(op, path, source)
    };
    let mut file;
    let (seq, offset) = match tail {
        Some((seq, end)) => {
            let name = segment_name(seq);
            file = storage.open(&name).map_err(io("open", &name))?;
            if end.torn() {
                let zeros = vec![0u8; end.junk_end - end.offset];
                file.write_at(end.offset as u64, &zeros).map_err(io("zero torn tail", &name))?;
                file.sync().map_err(io("sync", &name))?;
                report.torn_bytes = zeros.len();
                tracing::warn!(segment = %storage.describe(&name), offset = end.offset,
                        bytes = zeros.len(), "torn tail of the log zeroed");
            }
            (seq, end.offset as u64)
        }
        None => {
            let header = SegmentHeader { seq: 1, first_lsn: Lsn::FIRST, live_from: Lsn::FIRST };
            file = create_segment(storage, config, header, None)?;
            segments.push_back((1, Lsn::FIRST));
            (1, SEGMENT_HEADER_BYTES as u64)
        }
    };
    Ok((file, seq, offset))
}

/// The segments' sequence numbers, unsorted; removes half-prepared files and lists others in
/// `report`.
fn list_segments<S: Storage>(
    storage: &S,
    report: &mut RecoveryReport,
) -> Result<Vec<u64>, WalError> {
    let io = |op: &'static str, name: &str| {
        let path = storage.describe(name);
        move |source| WalError::io(op, path, source)
    };
    let mut segs = Vec::new();
    for name in storage.list().map_err(io("list", ""))? {
        if name == crate::storage::LOCK_FILE || name == TAIL_FILE {
            continue;
        }
        if let Some(seq) = parse_segment_name(&name) {
            segs.push(seq);
        } else if name.ends_with(".wal.tmp") || name == format!("{TAIL_FILE}.tmp") {
            storage.remove(&name).map_err(io("remove", &name))?;
            report.removed_spares += 1;
        } else {
            report.ignored.push(name);
        }
    }
    Ok(segs)
}

/// Refuses a log that ends before its tail marker: its newest segment is gone, or records the
/// marker says were durable are missing or damaged.
fn check_tail<S: Storage>(storage: &S, newest: Option<u64>, last: Lsn) -> Result<(), WalError> {
    let path = storage.describe(TAIL_FILE);
    let bytes = match storage.read(TAIL_FILE) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(WalError::io("read", path, e)),
    };
    let Some(marker) = TailMarker::decode(&bytes) else {
        return Err(WalError::Tail { path, why: "the tail marker is damaged".into() });
    };
    if newest.is_none_or(|n| n < marker.seq) {
        let why = format!(
            "segment {} is missing: the tail marker says it was created",
            segment_name(marker.seq)
        );
        return Err(WalError::Tail { path, why });
    }
    if last < marker.durable {
        let why = format!(
            "records {}..={} were durable and are missing or damaged (the log ends at {last})",
            last.next(),
            marker.durable
        );
        return Err(WalError::Tail { path, why });
    }
    Ok(())
}

fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".wal")?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

impl<S: Storage> Wal<S> {
    /// Opens the log on `storage`: recovers it (or creates it, if empty) and starts the writer.
    ///
    /// Refuses a log with corruption in the middle, with an error naming the segment file and
    /// offset; zeroes a torn tail and reports it.
    pub fn open(storage: S, config: WalConfig) -> Result<Opened<S>, WalError> {
        config.validate()?;
        let storage = Arc::new(storage);
        let Recovered { lock, file, segments, resume, records, report } =
            recover(&*storage, &config)?;
        let durable = Lsn(resume.next_lsn.0 - 1);
        let core = LogCore::new(config.clone(), resume);
        let inner = Arc::new(Inner {
            storage,
            config,
            state: Mutex::new(State {
                core,
                closing: false,
                writer_idle: false,
                gatherers: 0,
                gather_records: 0,
                space_wakers: Vec::new(),
            }),
            work: Condvar::new(),
            arrivals: Condvar::new(),
            space: Condvar::new(),
            durability: Arc::new(Durability::new(durable)),
            stats: Stats::default(),
            core: Mutex::new(Core::new(file, segments)),
            _lock: lock,
        });
        let background = inner.clone();
        let writer = std::thread::Builder::new()
            .name("luciole-wal".into())
            .spawn(move || writer::background(background))
            .map_err(|e| WalError::io("spawn writer", String::new(), e))?;
        Ok(Opened { wal: Wal { inner, writer: Some(writer) }, records, report })
    }

    /// Appends a record of type `kind`. Returns at once with its LSN; the returned [`Pending`]
    /// completes once the record is synced.
    ///
    /// Blocks the thread while [`WalConfig::queue_bytes_max`] bytes wait for the disk: in async
    /// tasks use [`Wal::append_async`], which waits for space as a future.
    pub fn append(&self, kind: RecordType, payload: &[u8]) -> Result<Pending, WalError> {
        if payload.len() > self.inner.config.record_bytes_max {
            return Err(WalError::TooLarge {
                bytes: payload.len(),
                max: self.inner.config.record_bytes_max,
            });
        }
        self.push(payload.len(), true, |out, lsn, write_first| {
            encode_frame(out, lsn, write_first, kind, payload);
            None
        })
    }

    /// Appends a record and blocks until it is durable; returns its LSN. For blocking
    /// threads: when no write is in progress, the calling thread writes and syncs the queued
    /// records itself (others' with its own), which saves the two thread hand-offs that
    /// [`Wal::append`] followed by [`Pending::wait`] costs. Never call it from an async task.
    pub fn append_wait(&self, kind: RecordType, payload: &[u8]) -> Result<Lsn, WalError> {
        if payload.len() > self.inner.config.record_bytes_max {
            return Err(WalError::TooLarge {
                bytes: payload.len(),
                max: self.inner.config.record_bytes_max,
            });
        }
        let pending = self.push(payload.len(), false, |out, lsn, write_first| {
            encode_frame(out, lsn, write_first, kind, payload);
            None
        })?;
        self.inner.lead(pending.lsn())
    }

    /// Appends `value` encoded with postcard.
    pub fn append_value<T: Serialize>(
        &self,
        kind: RecordType,
        value: &T,
    ) -> Result<Pending, WalError> {
        let payload = postcard::to_stdvec(value).map_err(|e| WalError::Encode(e.to_string()))?;
        self.append(kind, &payload)
    }

    /// Declares every record below `live_from` superseded: appends a checkpoint record and,
    /// once it is synced, removes the segments that hold only superseded records. Recovery
    /// then returns records from `live_from` on.
    ///
    /// `live_from` may be at most the next LSN (everything so far superseded); a value below
    /// the current one changes nothing.
    pub fn checkpoint(&self, live_from: Lsn) -> Result<Pending, WalError> {
        // Checked before anything changes. LSNs only grow, so a `live_from` at most the next
        // LSN now is at most the checkpoint's own LSN when it is numbered.
        self.inner.lock().core.check_checkpoint(live_from)?;
        self.push(8, true, |out, lsn, write_first| {
            encode_checkpoint(out, lsn, write_first, live_from);
            Some(live_from)
        })
    }

    /// The LSN the next append gets.
    pub fn next_lsn(&self) -> Lsn {
        self.inner.lock().core.next_lsn
    }

    /// Every record at or below this LSN is synced.
    pub fn durable_lsn(&self) -> Lsn {
        self.inner.durability.durable()
    }

    /// Counters since the log was opened.
    pub fn stats(&self) -> WalStats {
        let s = &self.inner.stats;
        WalStats {
            writes: s.writes.load(Ordering::Relaxed),
            records: s.records.load(Ordering::Relaxed),
            bytes: s.bytes.load(Ordering::Relaxed),
            segments_created: s.segments_created.load(Ordering::Relaxed),
            segments_removed: s.segments_removed.load(Ordering::Relaxed),
            io_us: s.io_us.load(Ordering::Relaxed),
            gather_us: s.gather_us.load(Ordering::Relaxed),
            cleanup_failures: s.cleanup_failures.load(Ordering::Relaxed),
        }
    }

    /// Writes and syncs everything appended, then stops the writer. Returns the error that
    /// stopped the log, if one did.
    pub fn close(mut self) -> Result<(), WalError> {
        self.stop();
        match self.inner.lock().core.failed.clone() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn stop(&mut self) {
        self.inner.lock().closing = true;
        self.inner.work.notify_all();
        self.inner.arrivals.notify_all();
        self.inner.space_freed();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }

    /// Appends a record of type `kind` without ever blocking the calling thread: waits for
    /// queue space (beyond [`WalConfig::queue_bytes_max`]) as a future, then for the record to
    /// be synced. For async tasks; [`Wal::append`] blocks its thread while the queue is full.
    pub async fn append_async(&self, kind: RecordType, payload: &[u8]) -> Result<Lsn, WalError> {
        let max = self.inner.config.record_bytes_max;
        if payload.len() > max {
            return Err(WalError::TooLarge { bytes: payload.len(), max });
        }
        let pending = std::future::poll_fn(|cx| {
            let mut st = self.inner.lock();
            match self.inner.fits(&st, payload.len()) {
                Err(e) => std::task::Poll::Ready(Err(e)),
                Ok(true) => std::task::Poll::Ready(Ok(self.enqueue(
                    st,
                    payload.len(),
                    true,
                    |out, lsn, first| {
                        encode_frame(out, lsn, first, kind, payload);
                        None
                    },
                ))),
                Ok(false) => {
                    // Registered under the lock that frees space: no wake-up is lost.
                    st.space_wakers.push(cx.waker().clone());
                    std::task::Poll::Pending
                }
            }
        })
        .await?;
        pending.await
    }

    /// Numbers a frame of `payload_bytes` and has `encode` write it into the queue; blocks the
    /// thread while the queue is full.
    fn push(
        &self,
        payload_bytes: usize,
        wake_writer: bool,
        encode: impl FnOnce(&mut Vec<u8>, Lsn, Lsn) -> Option<Lsn>,
    ) -> Result<Pending, WalError> {
        let inner = &*self.inner;
        let mut st = inner.lock();
        while !inner.fits(&st, payload_bytes)? {
            st = inner.space.wait(st).unwrap_or_else(|e| e.into_inner());
        }
        Ok(self.enqueue(st, payload_bytes, wake_writer, encode))
    }

    /// Numbers a frame of `payload_bytes` that [`Inner::fits`], and has `encode` write it into
    /// the queue.
    fn enqueue(
        &self,
        mut st: MutexGuard<'_, State>,
        payload_bytes: usize,
        wake_writer: bool,
        encode: impl FnOnce(&mut Vec<u8>, Lsn, Lsn) -> Option<Lsn>,
    ) -> Pending {
        let inner = &*self.inner;
        let config = &inner.config;
        let lsn = st.core.enqueue(payload_bytes, encode);
        let wake = wake_writer && st.writer_idle;
        // Wake a gathering writer only once there is enough to write: on a two-core machine,
        // waking it for every arrival costs more than the gathering saves.
        let gathering = st.gatherers > 0
            && st.core.queue.front().is_some_and(|w| {
                w.records >= st.gather_records || w.bytes.len() >= config.write_bytes_max
            });
        drop(st);
        if wake {
            inner.work.notify_one();
        }
        if gathering {
            inner.arrivals.notify_all();
        }
        Pending::new(lsn, inner.durability.clone())
    }
}

impl<S: Storage> Drop for Wal<S> {
    fn drop(&mut self) {
        self.stop();
    }
}

impl<S: Storage> Inner<S> {
    /// The state. A panic while it was held may have left it half updated (an LSN taken, a
    /// write half queued): the log stops, and every pending and later append fails.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        match self.state.lock() {
            Ok(st) => st,
            Err(poisoned) => {
                let mut st = poisoned.into_inner();
                if st.core.failed.is_none() {
                    let e = WalError::Poisoned("the log's state");
                    tracing::error!(error = %e, "write-ahead log stopped");
                    st.core.fail(e.clone());
                    self.durability.fail(e);
                }
                st
            }
        }
    }

    /// Whether a frame of `frame` bytes may be queued now; an error once the log stopped.
    pub(crate) fn fits(&self, st: &State, payload_bytes: usize) -> Result<bool, WalError> {
        let fits = st.core.fits(payload_bytes)?;
        if st.closing {
            return Err(WalError::Closed);
        }
        Ok(fits)
    }

    /// Wakes whoever waits for queue space: blocked threads and waiting tasks.
    pub(crate) fn space_freed(&self) {
        let wakers = std::mem::take(&mut self.lock().space_wakers);
        self.space.notify_all();
        wakers.into_iter().for_each(std::task::Waker::wake);
    }

    /// Stops the log for good with `e`: every pending and later append fails with it.
    pub(crate) fn stop_for(&self, e: WalError) {
        tracing::error!(error = %e, "write-ahead log stopped");
        self.lock().core.fail(e.clone());
        self.durability.fail(e);
        self.space_freed();
        self.work.notify_all();
        self.arrivals.notify_all();
    }
}

impl From<luciole_proto::wal::format::Record<'_>> for LogRecord {
    fn from(r: luciole_proto::wal::format::Record<'_>) -> Self {
        LogRecord { lsn: r.lsn, kind: r.kind, payload: r.payload.to_vec() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemStorage;

    fn small() -> WalConfig {
        WalConfig { segment_bytes: 4096, record_bytes_max: 1024, ..WalConfig::default() }
    }

    /// Poisons `mutex` the way a panic inside the log would.
    fn poison<T: Send>(mutex: &Mutex<T>) {
        std::thread::scope(|s| {
            let _ = s
                .spawn(|| {
                    let _held = mutex.lock();
                    panic!("a panic while the lock is held (expected by this test)");
                })
                .join();
        });
        assert!(mutex.is_poisoned());
    }

    #[test]
    fn a_panic_that_poisons_the_state_stops_the_log() {
        let wal = Wal::open(MemStorage::new(), small()).unwrap().wal;
        let kind = RecordType::user(16).unwrap();
        wal.append_wait(kind, b"kept").unwrap();
        poison(&wal.inner.state);
        let err = wal.append(kind, b"after").unwrap_err();
        assert!(matches!(err, WalError::Poisoned(_)), "{err}");
        assert!(wal.append_wait(kind, b"after").is_err());
        assert!(wal.checkpoint(Lsn(1)).is_err());
    }

    #[test]
    fn a_panic_that_poisons_the_writer_stops_the_log_and_fails_what_waits() {
        let storage = MemStorage::new();
        let wal = Wal::open(storage.clone(), small()).unwrap().wal;
        let kind = RecordType::user(16).unwrap();
        wal.append_wait(kind, b"kept").unwrap();
        poison(&wal.inner.core);
        let pending = wal.append(kind, b"queued").unwrap();
        let err = pending.wait().unwrap_err();
        assert!(matches!(err, WalError::Poisoned(_)), "{err}");
        assert_eq!(wal.durable_lsn(), Lsn(1));
        assert!(wal.append(kind, b"later").is_err());
        drop(wal);
        let opened = Wal::open(storage, small()).unwrap();
        assert_eq!(opened.records.len(), 1);
    }

    #[test]
    fn segment_names_round_trip_and_others_are_not_segments() {
        assert_eq!(segment_name(7), "00000000000000000007.wal");
        assert_eq!(parse_segment_name(&segment_name(u64::MAX)), Some(u64::MAX));
        assert_eq!(parse_segment_name("7.wal"), None);
        assert_eq!(parse_segment_name(&spare_name(7)), None);
        assert_eq!(parse_segment_name("0000000000000000000x.wal"), None);
    }
}
