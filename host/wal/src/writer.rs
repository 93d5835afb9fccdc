//! Writing: whoever holds the [`Core`] takes queued writes in order, writes and syncs each,
//! then acknowledges its records. The background thread does it for [`Wal::append`]; a
//! blocking [`Wal::append_wait`] caller does it itself when the core is free, which saves the
//! two thread hand-offs of a lone appender.
//!
//! Lock order: core, then state. Queued writes are taken only by the core's holder, so they
//! are written in LSN order, and each is synced before the next is written — the property
//! recovery relies on to tell a torn write from corruption.
//!
//! [`Wal::append`]: crate::Wal::append
//! [`Wal::append_wait`]: crate::Wal::append_wait

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use luciole_proto::wal::Lsn;
use luciole_proto::wal::format::{SegmentHeader, TAIL_FILE, TAIL_MARKER_BYTES, TailMarker};

use crate::log::{Inner, segment_name, spare_name};
use crate::logcore::Write;
use crate::storage::{SegmentFile, Storage};
use crate::{WalConfig, WalError};

/// How long a writer that is gathering lets woken tasks wake the others before it wakes them.
const WAKE_BACKSTOP: Duration = Duration::from_micros(50);

/// The writing end of the log.
pub(crate) struct Core<S: Storage> {
    file: S::File,
    /// Segments in the log, oldest first: sequence number and first LSN.
    segments: VecDeque<(u64, Lsn)>,
    /// The next segment, being preallocated in the background.
    spare: Option<(u64, JoinHandle<std::io::Result<S::File>>)>,
    /// Records in the last write: how many appenders are likely to be back soon.
    last_records: u64,
}

impl<S: Storage> Core<S> {
    pub(crate) fn new(file: S::File, segments: VecDeque<(u64, Lsn)>) -> Self {
        Self { file, segments, spare: None, last_records: 0 }
    }
}

/// The background writer: writes whatever is queued and nobody else writes.
pub(crate) fn background<S: Storage>(inner: Arc<Inner<S>>) {
    loop {
        inner.durability.wake_ready();
        {
            let mut st = inner.lock();
            while st.core.queue.is_empty() && !st.closing && st.core.failed.is_none() {
                st.writer_idle = true;
                st = inner.work.wait(st).unwrap_or_else(|e| e.into_inner());
            }
            st.writer_idle = false;
            if st.core.queue.is_empty() || st.core.failed.is_some() {
                break;
            }
        }
        let mut core = inner.core_lock();
        while let Some(write) = inner.next_write(&core, true) {
            if inner.publish(&mut core, write).is_err() {
                break;
            }
        }
    }
    inner.core_lock().finish();
}

impl<S: Storage> Inner<S> {
    /// The core. A panic while it was held left a write half done: the log stops.
    pub(crate) fn core_lock(&self) -> MutexGuard<'_, Core<S>> {
        self.core.lock().unwrap_or_else(|poisoned| {
            self.stop_for(WalError::Poisoned("the writer"));
            poisoned.into_inner()
        })
    }

    /// Blocks until record `lsn` is durable, writing queued records itself whenever nobody
    /// else is.
    pub(crate) fn lead(&self, lsn: Lsn) -> Result<Lsn, WalError> {
        loop {
            let durable = self.durability.durable();
            if durable >= lsn {
                return Ok(lsn);
            }
            if let Some(e) = self.lock().core.failed.clone() {
                return Err(e);
            }
            let core = match self.core.try_lock() {
                Ok(core) => Some(core),
                Err(std::sync::TryLockError::Poisoned(_)) => Some(self.core_lock()),
                Err(std::sync::TryLockError::WouldBlock) => None,
            };
            if let Some(mut core) = core {
                while self.durability.durable() < lsn {
                    let Some(write) = self.next_write(&core, true) else { break };
                    self.publish(&mut core, write)?;
                }
                drop(core);
                self.durability.wake_ready();
                // Records queued behind ours: the background writer takes them.
                let st = self.lock();
                if !st.core.queue.is_empty() && st.writer_idle {
                    drop(st);
                    self.work.notify_one();
                }
                continue;
            }
            self.durability.wait_past(durable)?;
        }
    }

    /// The next write to perform, or `None` when nothing is queued.
    ///
    /// With `gather`, when the last write carried more records than are queued now, the
    /// appenders it acknowledged are probably about to append again: wait up to
    /// [`WalConfig::gather_us_max`] for them, so that they share the next sync instead of each
    /// waiting a full sync longer.
    fn next_write(&self, core: &Core<S>, gather: bool) -> Option<Write> {
        let budget = Duration::from_micros(u64::from(self.config.gather_us_max));
        let mut until: Option<Instant> = None;
        let mut st = self.lock();
        loop {
            // After a failed write or sync nothing more is written, whoever holds the core:
            // what reached the disk is unknown, and a later sync must not make it look durable.
            let front = st.core.queue.front().filter(|_| st.core.failed.is_none())?;
            let wanted = gather
                && st.core.queue.len() == 1
                && front.records < core.last_records
                && front.bytes.len() < self.config.write_bytes_max
                && !st.closing;
            let until = *until.get_or_insert_with(|| Instant::now() + budget);
            let now = Instant::now();
            if !wanted || now >= until {
                return st.core.take_write();
            }
            // Tasks left to wake by the first one woken: wake them after a short wait if it
            // has not (it may not poll its record).
            let leftovers = self.durability.has_ready();
            let wait = if leftovers { (until - now).min(WAKE_BACKSTOP) } else { until - now };
            st.gatherers += 1;
            st.gather_records = core.last_records;
            st = self.arrivals.wait_timeout(st, wait).unwrap_or_else(|e| e.into_inner()).0;
            st.gatherers -= 1;
            let waited = now.elapsed().as_micros() as u64;
            self.stats.gather_us.fetch_add(waited, Ordering::Relaxed);
            if leftovers {
                drop(st);
                self.durability.wake_ready();
                st = self.lock();
            }
        }
    }

    /// Writes and syncs `write`, then acknowledges its records. A failure stops the log.
    fn publish(&self, core: &mut Core<S>, write: Write) -> Result<(), WalError> {
        self.durability.wake_ready();
        let bytes = write.bytes.len();
        let started = Instant::now();
        let done = core.perform(self, &write);
        let io = started.elapsed().as_micros() as u64;
        self.stats.io_us.fetch_add(io, Ordering::Relaxed);
        if let Err(e) = done {
            self.stop_for(e.clone());
            return Err(e);
        }
        self.stats.writes.fetch_add(1, Ordering::Relaxed);
        self.stats.records.fetch_add(write.records, Ordering::Relaxed);
        self.stats.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        // Before acknowledging: once a checkpoint completes, its segments are gone, and the
        // tail marker says the log holds at least this far.
        if let Some(live_from) = write.checkpoint {
            let marker = TailMarker { seq: write.seq, durable: write.last_lsn };
            if let Err(e) = write_tail(&*self.storage, marker) {
                self.stop_for(e.clone());
                return Err(e);
            }
            core.remove_superseded(self, live_from);
        }
        let (durable, waiting) = {
            let mut st = self.lock();
            let durable = st.core.acknowledge(&write);
            (durable, std::mem::take(&mut st.space_wakers))
        };
        self.space.notify_all();
        waiting.into_iter().for_each(std::task::Waker::wake);
        self.durability.advance(durable);
        core.last_records = write.records;
        // Preallocate the next segment once this one is half full: not at once, where it
        // would compete with the first syncs for the disk, and not at the last moment.
        if write.offset + bytes as u64 > self.config.segment_bytes / 2 {
            core.prepare_spare(self);
        }
        Ok(())
    }
}

impl<S: Storage> Core<S> {
    fn perform(&mut self, inner: &Inner<S>, write: &Write) -> Result<(), WalError> {
        let storage = &*inner.storage;
        if let Some(header) = write.open_segment {
            let spare = self.take_spare(header.seq);
            self.file = create_segment(storage, &inner.config, header, spare)?;
            self.segments.push_back((header.seq, header.first_lsn));
            inner.stats.segments_created.fetch_add(1, Ordering::Relaxed);
        }
        // The segment's name only for an error: no formatting on every write.
        let fail = |op| move |e| WalError::io(op, storage.describe(&segment_name(write.seq)), e);
        self.file.write_at(write.offset, &write.bytes).map_err(fail("write"))?;
        self.file.sync().map_err(fail("sync"))
    }

    /// Starts preallocating the segment after the newest one.
    fn prepare_spare(&mut self, inner: &Inner<S>) {
        let Some(&(seq, _)) = self.segments.back() else { return };
        let next = seq + 1;
        if self.spare.as_ref().is_some_and(|(s, _)| *s == next) {
            return;
        }
        let storage = inner.storage.clone();
        let len = inner.config.segment_bytes;
        let spawned = std::thread::Builder::new()
            .name("luciole-wal-prealloc".into())
            .spawn(move || storage.create(&spare_name(next), len));
        // Without a thread, the segment is created when needed instead.
        self.spare = spawned.ok().map(|h| (next, h));
    }

    /// The preallocated file for segment `seq`, if it was prepared without error.
    fn take_spare(&mut self, seq: u64) -> Option<S::File> {
        let (s, handle) = self.spare.take()?;
        match handle.join() {
            Ok(Ok(file)) if s == seq => Some(file),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "preallocating the next segment failed; creating it now");
                None
            }
            _ => None,
        }
    }

    /// Waits for a preallocation in flight, so none outlives the log.
    fn finish(&mut self) {
        if let Some((_, handle)) = self.spare.take() {
            let _ = handle.join();
        }
    }

    /// Removes segments that hold only records below `live_from`.
    fn remove_superseded(&mut self, inner: &Inner<S>, live_from: Lsn) {
        let (removed, failures) = remove_superseded(&*inner.storage, &mut self.segments, live_from);
        inner.stats.segments_removed.fetch_add(removed, Ordering::Relaxed);
        inner.stats.cleanup_failures.fetch_add(failures, Ordering::Relaxed);
    }
}

/// Removes the segments of `segments` that hold only records below `live_from`, oldest first,
/// then syncs the directory. Returns how many were removed and how many operations failed (a
/// failure is not a durability problem — the records are superseded — so it is counted, logged,
/// and the rest left for the next checkpoint).
pub(crate) fn remove_superseded<S: Storage>(
    storage: &S,
    segments: &mut VecDeque<(u64, Lsn)>,
    live_from: Lsn,
) -> (u64, u64) {
    let (mut removed, mut failures) = (0, 0);
    while segments.len() >= 2 && segments[1].1 <= live_from {
        let name = segment_name(segments[0].0);
        if let Err(e) = storage.remove(&name) {
            failures += 1;
            tracing::warn!(segment = %storage.describe(&name), error = %e,
                "removing a superseded segment failed; kept until the next checkpoint");
            break;
        }
        segments.pop_front();
        removed += 1;
    }
    if removed > 0
        && let Err(e) = storage.sync_dir()
    {
        failures += 1;
        tracing::warn!(error = %e, "syncing the log directory after removing segments failed");
    }
    (removed, failures)
}

/// Creates segment `header.seq`: from the prepared spare if there is one, else a new file;
/// header written and synced, then renamed into the log and the directory synced.
pub(crate) fn create_segment<S: Storage>(
    storage: &S,
    config: &WalConfig,
    header: SegmentHeader,
    spare: Option<S::File>,
) -> Result<S::File, WalError> {
    let tmp = spare_name(header.seq);
    let name = segment_name(header.seq);
    let io = |op: &'static str, n: &str| {
        let path = storage.describe(n);
        move |source| WalError::io(op, path, source)
    };
    let mut file = match spare {
        Some(f) => f,
        None => {
            // A spare prepared for another turn (or left by a failed one) is ours to replace.
            if storage.list().is_ok_and(|names| names.contains(&tmp)) {
                storage.remove(&tmp).map_err(io("remove", &tmp))?;
            }
            storage.create(&tmp, config.segment_bytes).map_err(io("create", &tmp))?
        }
    };
    file.write_at(0, &header.encode()).map_err(io("write header", &tmp))?;
    file.sync().map_err(io("sync", &tmp))?;
    storage.rename(&tmp, &name).map_err(io("rename", &tmp))?;
    storage.sync_dir().map_err(io("sync directory", ""))?;
    // Every record before this segment's first is synced: writes go out in order, each
    // synced before the next.
    let durable = Lsn(header.first_lsn.0 - 1);
    write_tail(storage, TailMarker { seq: header.seq, durable })?;
    Ok(file)
}

/// Replaces the tail marker: written to a temporary file, synced, renamed over the old one,
/// and the directory synced.
pub(crate) fn write_tail<S: Storage>(storage: &S, marker: TailMarker) -> Result<(), WalError> {
    let tmp = format!("{TAIL_FILE}.tmp");
    let io = |op: &'static str| {
        let path = storage.describe(&tmp);
        move |source| WalError::io(op, path, source)
    };
    if storage.list().is_ok_and(|names| names.contains(&tmp)) {
        storage.remove(&tmp).map_err(io("remove"))?;
    }
    let mut file = storage.create(&tmp, TAIL_MARKER_BYTES as u64).map_err(io("create"))?;
    file.write_at(0, &marker.encode()).map_err(io("write"))?;
    file.sync().map_err(io("sync"))?;
    storage.rename(&tmp, TAIL_FILE).map_err(io("rename"))?;
    storage.sync_dir().map_err(io("sync directory"))
}
