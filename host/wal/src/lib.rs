//! luciole's write-ahead log: *acknowledged means durable*.
//!
//! [`Wal::append`] numbers a record and returns a [`Pending`] that completes only once the
//! record is on disk (`fdatasync`); [`Wal::append_wait`] appends and blocks until then.
//! Appenders on many threads and tasks share syncs: one writer at a time — the background
//! thread, or a thread blocked in `append_wait` when no write is in progress — writes
//! everything queued since the last sync as one write (group commit). A failed write or sync
//! stops the log on every path — nothing more is written, whoever would have written it, every
//! pending and later append fails with that error, and `durable_lsn` stays where it was — and
//! so does a panic that left the log's state half updated (a poisoned lock); reopening
//! recovers it. One log at a time per directory: [`Wal::open`] takes an exclusive lock
//! (`flock` on `LOCK`, holding the owner's process id) for the life of the log, so a second
//! open, in this process or another, is refused with [`WalError::InUse`].
//!
//! [`Wal::open`] recovers a log: it returns the live records, cuts a torn tail (a write the
//! crash interrupted, never acknowledged), and refuses corruption in the middle of the log with
//! an error that names the segment file and offset. [`Wal::checkpoint`] lets the user say which
//! records are superseded, so old segments are removed and the log does not grow without bound.
//!
//! The on-disk format and the recovery rules are pure code in [`luciole_proto::wal`], written
//! down byte by byte there. What the log decides without I/O — numbering, batching, the queue
//! bound, what is durable, fail-stop — is the sans-IO [`LogCore`]; [`Wal`] drives it with
//! threads for the node, [`StepLog`] one I/O per step for the simulator. This crate adds files, syncs and threads, behind [`Storage`]:
//! [`FileStorage`] for the node, [`MemStorage`] for the simulator and tests, which loses
//! unsynced writes — in part and out of order — on a simulated power loss, and
//! [`LossyFiles`], real files that a simulated power loss rolls back to what was synced (in the
//! spirit of LazyFS), for the power-loss test on the file backend.
//!
//! # Damage, and what opening the log does
//!
//! Tested on both backends by `tests/corruption.rs`; nothing here panics.
//!
//! | damage | outcome |
//! |---|---|
//! | a write interrupted by a crash (torn, or its sectors persisted out of order) | cut: the valid records before it are returned, the rest of the segment is zeroed and reported as `torn_bytes` |
//! | any bit flipped in a record that a later write follows | refused: [`WalError::Corrupt`] naming the segment file and the record's offset |
//! | any bit flipped in the last write of the log, after the tail marker's LSN | cut like a torn write: a synced last write that the disk damaged afterwards cannot be told from one the crash tore — **not detectable** |
//! | a write at or before the tail marker's LSN damaged or lost (the marker is rewritten at every new segment and every checkpoint, after what it names is synced) | refused: [`WalError::Tail`] naming the missing LSNs; nothing is cut |
//! | a middle segment truncated, or its tail zeroed | refused: the next segment does not continue its LSNs |
//! | the last segment truncated, or its tail zeroed | the records before the damage are returned; the log continues after them |
//! | a middle segment missing | refused: [`RecoveryError::MissingSegment`] |
//! | the oldest segment missing while it held live records | refused: [`RecoveryError::MissingRecords`] |
//! | a segment header that is not intact (zeros, garbage, a foreign file named like a segment, shorter than a header) | refused: [`RecoveryError::Header`] naming the file |
//! | the newest segment missing | refused: [`WalError::Tail`] naming it (the marker records the newest segment) |
//! | the tail marker (`TAIL`) damaged | refused: [`WalError::Tail`] |
//! | the tail marker missing | not detectable (a log from before markers, or a marker lost with its directory entry): the segments decide |
//! | a live record larger than this open's `record_bytes_max` | refused: [`WalError::RecordOverLimit`] naming it; nothing is cut (frames are read up to the format's 1 MiB limit) |
//! | `*.wal.tmp` files (segments being prepared) | removed |
//! | other files in the directory | left alone, listed in the report |
//!
//! Why our own log rather than a crate: the log is part of the product's correctness argument
//! (exactly-once migration rests on it), its recovery must run inside the deterministic
//! simulator on the same code as the node, and the format must be ours to document and keep.

use std::fmt;
use std::io;
use std::sync::Arc;

use luciole_proto::limits::{
    WAL_RECORD_BYTES_MAX, WAL_SEGMENT_BYTES_DEFAULT, WAL_SEGMENT_BYTES_MAX,
};
use luciole_proto::wal::format::{SEGMENT_HEADER_BYTES, frame_bytes};
use luciole_proto::wal::recovery::RecoveryError;
use serde::de::DeserializeOwned;

mod durable;
mod log;
mod logcore;
mod lossy;
mod memory;
mod step;
mod storage;
mod writer;

pub use durable::Pending;
pub use log::{Opened, RecoveryReport, Wal, WalStats, segment_name};
pub use logcore::{LogCore, Resume, Write};
pub use lossy::{LossyFile, LossyFiles};
pub use luciole_proto::wal::{Lsn, RecordType};
pub use memory::{CrashMode, MemFile, MemLock, MemStorage, SECTOR_BYTES};
pub use step::{Step, StepLog};
pub use storage::{FileStorage, LOCK_FILE, SegmentFile, Storage};

/// Settings of a log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalConfig {
    /// Size of each segment file, preallocated in full. Default 64 MiB; at most 1 GiB, and
    /// enough for the header and one record of `record_bytes_max`.
    pub segment_bytes: u64,
    /// Largest record payload accepted. Default and maximum 1 MiB.
    pub record_bytes_max: usize,
    /// Most bytes one group-commit write gathers (a larger single record goes alone). Default
    /// 1 MiB.
    pub write_bytes_max: usize,
    /// Most bytes appended and not yet written; appenders wait beyond it. Default 16 MiB; at
    /// least `write_bytes_max`.
    pub queue_bytes_max: usize,
    /// Longest the writer waits to gather more records into a write, in microseconds, when
    /// fewer are queued than the last write carried (the appenders it acknowledged are
    /// probably appending again). 0 writes at once. Default 200.
    pub gather_us_max: u32,
}

impl Default for WalConfig {
    fn default() -> Self {
        Self {
            segment_bytes: WAL_SEGMENT_BYTES_DEFAULT,
            record_bytes_max: WAL_RECORD_BYTES_MAX,
            write_bytes_max: 1 << 20,
            queue_bytes_max: 16 << 20,
            gather_us_max: 200,
        }
    }
}

impl WalConfig {
    fn validate(&self) -> Result<(), WalError> {
        let bad = |why: String| Err(WalError::Config(why));
        if self.record_bytes_max == 0 || self.record_bytes_max > WAL_RECORD_BYTES_MAX {
            return bad(format!("record_bytes_max must be 1..={WAL_RECORD_BYTES_MAX}"));
        }
        let least = (SEGMENT_HEADER_BYTES + frame_bytes(self.record_bytes_max)) as u64;
        if self.segment_bytes < least || self.segment_bytes > WAL_SEGMENT_BYTES_MAX {
            return bad(format!(
                "segment_bytes must be {least}..={WAL_SEGMENT_BYTES_MAX} (a header and one largest record)"
            ));
        }
        if self.write_bytes_max == 0 || self.queue_bytes_max < self.write_bytes_max {
            return bad("write_bytes_max must be positive and at most queue_bytes_max".into());
        }
        Ok(())
    }
}

/// A record read back by recovery.
#[derive(Clone, PartialEq, Eq)]
pub struct LogRecord {
    /// Its LSN.
    pub lsn: Lsn,
    /// Its type.
    pub kind: RecordType,
    /// Its payload.
    pub payload: Vec<u8>,
}

impl fmt::Debug for LogRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogRecord")
            .field("lsn", &self.lsn)
            .field("kind", &self.kind.get())
            .field("payload_bytes", &self.payload.len())
            .finish()
    }
}

impl LogRecord {
    /// The payload decoded with postcard (as written by [`Wal::append_value`]).
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, WalError> {
        postcard::from_bytes(&self.payload)
            .map_err(|e| WalError::Decode { lsn: self.lsn, why: e.to_string() })
    }
}

/// What went wrong with a log. Cheap to clone: every waiter gets the error that stopped it.
#[derive(Clone, Debug, thiserror::Error)]
pub enum WalError {
    /// An operation on the storage failed. If it was a write or a sync, the log is stopped.
    #[error("{op} {path}: {source}")]
    Io {
        /// What the log was doing.
        op: &'static str,
        /// The file (or directory) concerned.
        path: String,
        /// The error.
        source: Arc<io::Error>,
    },
    /// The log ends before where its tail marker says it reached: the newest segment, or
    /// records that were durable, are gone. Nothing was changed.
    #[error("the write-ahead log ends too early ({path}): {why}")]
    Tail {
        /// The tail marker file.
        path: String,
        /// What is missing.
        why: String,
    },
    /// Another log holds the directory (in this process or another).
    #[error("the write-ahead log at {path} is {why}")]
    InUse {
        /// The log directory.
        path: String,
        /// Who holds it, where known.
        why: String,
    },
    /// The log on the storage is damaged in a way recovery must not paper over.
    #[error("the write-ahead log at {path} is corrupt: {source}")]
    Corrupt {
        /// The segment file (or the log, when no one segment is at fault).
        path: String,
        /// What recovery found.
        source: RecoveryError,
    },
    /// A record larger than the configured limit.
    #[error("record of {bytes} bytes exceeds the limit of {max}")]
    TooLarge {
        /// Its size.
        bytes: usize,
        /// The limit.
        max: usize,
    },
    /// The log holds a live record larger than this open's `record_bytes_max` (it was written
    /// with a larger one). Nothing was changed; open it with a limit of at least `bytes`.
    #[error(
        "record {lsn} holds {bytes} bytes, more than record_bytes_max {max}; open the log with a larger limit"
    )]
    RecordOverLimit {
        /// The record.
        lsn: Lsn,
        /// Its payload size.
        bytes: usize,
        /// The limit this open was given.
        max: usize,
    },
    /// Settings out of range.
    #[error("invalid log settings: {0}")]
    Config(String),
    /// A value could not be encoded.
    #[error("encoding a record: {0}")]
    Encode(String),
    /// A payload is not the value asked for.
    #[error("decoding record {lsn}: {why}")]
    Decode {
        /// The record.
        lsn: Lsn,
        /// Why.
        why: String,
    },
    /// The log was closed.
    #[error("the log is closed")]
    Closed,
    /// A panic inside the log left part of it half updated; the log stopped.
    #[error("the write-ahead log stopped: a panic left {0} half updated; reopen to recover")]
    Poisoned(&'static str),
    /// A checkpoint's `live_from` past the next LSN (or 0).
    #[error("checkpoint live_from {live_from} is not in 1..={next} (the next LSN)")]
    Checkpoint {
        /// What was asked.
        live_from: Lsn,
        /// The next LSN when it was asked.
        next: Lsn,
    },
}

impl WalError {
    pub(crate) fn io(op: &'static str, path: String, source: io::Error) -> Self {
        WalError::Io { op, path, source: Arc::new(source) }
    }

    fn corrupt<S: Storage>(storage: &S, source: RecoveryError) -> Self {
        let path = match source.segment() {
            Some(seq) => storage.describe(&segment_name(seq)),
            None => storage.describe(""),
        };
        WalError::Corrupt { path, source }
    }
}
