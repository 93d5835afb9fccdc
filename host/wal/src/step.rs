//! The log driven one I/O at a time on the caller's thread: the simulator's driver of the
//! sans-IO [`LogCore`]. Same recovery, same core and the same segment, tail-marker and removal
//! code as [`crate::Wal`]; no threads, no clock, so a seeded simulation that interleaves
//! appends, steps and crashes replays exactly.

use std::collections::VecDeque;

use luciole_proto::wal::format::TailMarker;
use luciole_proto::wal::{Lsn, RecordType};

use crate::log::{Recovered, recover, segment_name};
use crate::logcore::{LogCore, Write};
use crate::storage::{SegmentFile, Storage};
use crate::writer::{create_segment, remove_superseded, write_tail};
use crate::{LogRecord, RecoveryReport, WalConfig, WalError};

/// What a [`StepLog::step`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Nothing was queued.
    Idle,
    /// A write reached the file (creating the segment it opens); not synced yet.
    Written,
    /// The write in flight was synced (and a checkpoint's tail marker written and superseded
    /// segments removed): records up to this LSN are durable.
    Durable(Lsn),
}

/// A write-ahead log advanced explicitly, one I/O per [`StepLog::step`].
pub struct StepLog<S: Storage> {
    storage: S,
    core: LogCore,
    file: S::File,
    segments: VecDeque<(u64, Lsn)>,
    /// Written, not yet synced.
    in_flight: Option<Write>,
    _lock: S::Lock,
}

impl<S: Storage> std::fmt::Debug for StepLog<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StepLog").field("core", &self.core).finish_non_exhaustive()
    }
}

impl<S: Storage> StepLog<S> {
    /// Recovers the log on `storage` (or creates it) as [`crate::Wal::open`] does; returns the
    /// live records and the recovery report with it.
    pub fn open(
        storage: S,
        config: WalConfig,
    ) -> Result<(Self, Vec<LogRecord>, RecoveryReport), WalError> {
        config.validate()?;
        let Recovered { lock, file, segments, resume, records, report } =
            recover(&storage, &config)?;
        let core = LogCore::new(config, resume);
        let log = Self { storage, core, file, segments, in_flight: None, _lock: lock };
        Ok((log, records, report))
    }

    /// Queues a record; returns its LSN. Durable once a [`Step::Durable`] reaches it.
    pub fn append(&mut self, kind: RecordType, payload: &[u8]) -> Result<Lsn, WalError> {
        let max = self.core.config().record_bytes_max;
        if payload.len() > max {
            return Err(WalError::TooLarge { bytes: payload.len(), max });
        }
        self.core.fits(payload.len())?;
        Ok(self.core.append(kind, payload))
    }

    /// Queues a checkpoint record (see [`crate::Wal::checkpoint`]).
    pub fn checkpoint(&mut self, live_from: Lsn) -> Result<Lsn, WalError> {
        if let Some(e) = self.core.failed() {
            return Err(e.clone());
        }
        self.core.checkpoint(live_from)
    }

    /// Every record up to this LSN is durable.
    pub fn durable(&self) -> Lsn {
        self.core.durable()
    }

    /// Performs one I/O: the next queued write, or the sync of the write in flight. After a
    /// failure the log is stopped: this and every later call returns the error.
    pub fn step(&mut self) -> Result<Step, WalError> {
        if let Some(e) = self.core.failed() {
            return Err(e.clone());
        }
        let done = match self.in_flight.take() {
            None => self.write(),
            Some(write) => self.sync(write),
        };
        done.inspect_err(|e| self.core.fail(e.clone()))
    }

    fn write(&mut self) -> Result<Step, WalError> {
        let Some(write) = self.core.take_write() else { return Ok(Step::Idle) };
        let io = |op| {
            let path = self.storage.describe(&segment_name(write.seq));
            move |e| WalError::io(op, path, e)
        };
        if let Some(header) = write.open_segment {
            self.file = create_segment(&self.storage, self.core.config(), header, None)?;
            self.segments.push_back((header.seq, header.first_lsn));
        }
        self.file.write_at(write.offset, &write.bytes).map_err(io("write"))?;
        self.in_flight = Some(write);
        Ok(Step::Written)
    }

    fn sync(&mut self, write: Write) -> Result<Step, WalError> {
        let path = self.storage.describe(&segment_name(write.seq));
        self.file.sync().map_err(|e| WalError::io("sync", path, e))?;
        if let Some(live_from) = write.checkpoint {
            write_tail(&self.storage, TailMarker { seq: write.seq, durable: write.last_lsn })?;
            remove_superseded(&self.storage, &mut self.segments, live_from);
        }
        Ok(Step::Durable(self.core.acknowledge(&write)))
    }
}
