//! The log's sans-IO core: numbering, framing and batching appends into writes, and keeping
//! account of what is durable. No file, thread or clock: a driver takes each [`Write`],
//! performs it (create the segment it opens, write, sync; for a checkpoint, the tail marker and
//! the removal of superseded segments) and reports back. The node's driver is the writer thread
//! of [`crate::Wal`]; the simulator's is [`crate::StepLog`], one I/O per step on virtual time.

use std::collections::VecDeque;

use luciole_proto::wal::format::{
    SEGMENT_HEADER_BYTES, SegmentHeader, encode_checkpoint, encode_frame, frame_bytes,
};
use luciole_proto::wal::{Lsn, RecordType};

use crate::{WalConfig, WalError};

/// Records written and synced together: one write call and one sync.
#[derive(Debug)]
pub struct Write {
    pub(crate) seq: u64,
    pub(crate) offset: u64,
    pub(crate) first_lsn: Lsn,
    pub(crate) last_lsn: Lsn,
    pub(crate) records: u64,
    pub(crate) bytes: Vec<u8>,
    /// The segment to create before writing (the write starts it).
    pub(crate) open_segment: Option<SegmentHeader>,
    /// A checkpoint in this write: `live_from` after it (the tail marker follows the write).
    pub(crate) checkpoint: Option<Lsn>,
}

impl Write {
    /// The last LSN it carries: durable once it is synced.
    pub fn last_lsn(&self) -> Lsn {
        self.last_lsn
    }

    /// Bytes it writes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether it writes nothing (never, for a queued write).
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

/// Where a recovered log goes on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resume {
    /// The LSN the next append gets.
    pub next_lsn: Lsn,
    /// The newest segment and the offset the next frame goes to in it.
    pub seq: u64,
    /// See `seq`.
    pub offset: u64,
    /// The oldest live LSN.
    pub live_from: Lsn,
}

/// The log's state, without I/O.
#[derive(Debug)]
pub struct LogCore {
    config: WalConfig,
    pub(crate) next_lsn: Lsn,
    /// Segment and offset where the next frame goes.
    seq: u64,
    offset: u64,
    /// Writes not yet taken; appends join the last one while it has room.
    pub(crate) queue: VecDeque<Write>,
    /// Bytes appended and not yet synced (taken writes count until they are).
    pub(crate) queued_bytes: usize,
    pub(crate) live_from: Lsn,
    /// Every record up to here is synced.
    durable: Lsn,
    /// Set by the first failed write or sync: nothing is taken or acknowledged after it.
    pub(crate) failed: Option<WalError>,
}

impl LogCore {
    /// A core going on from `resume` (what recovery found).
    pub fn new(config: WalConfig, resume: Resume) -> Self {
        Self {
            config,
            next_lsn: resume.next_lsn,
            seq: resume.seq,
            offset: resume.offset,
            queue: VecDeque::new(),
            queued_bytes: 0,
            live_from: resume.live_from,
            durable: Lsn(resume.next_lsn.0 - 1),
            failed: None,
        }
    }

    /// The settings.
    pub fn config(&self) -> &WalConfig {
        &self.config
    }

    /// Whether a record of `payload_bytes` may be queued now (the queue holds at most
    /// `queue_bytes_max`, or one record of any size); the error that stopped the log, if one
    /// did.
    pub fn fits(&self, payload_bytes: usize) -> Result<bool, WalError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let frame = frame_bytes(payload_bytes);
        Ok(self.queued_bytes == 0 || self.queued_bytes + frame <= self.config.queue_bytes_max)
    }

    /// Numbers and queues a record; returns its LSN. The caller checked [`LogCore::fits`] (or
    /// chose to go past the queue's bound) and the payload's size.
    pub fn append(&mut self, kind: RecordType, payload: &[u8]) -> Lsn {
        self.enqueue(payload.len(), |out, lsn, first| {
            encode_frame(out, lsn, first, kind, payload);
            None
        })
    }

    /// Queues a checkpoint record declaring everything below `live_from` superseded.
    pub fn checkpoint(&mut self, live_from: Lsn) -> Result<Lsn, WalError> {
        self.check_checkpoint(live_from)?;
        Ok(self.enqueue_checkpoint(live_from))
    }

    /// Refuses a `live_from` of 0 or past the next LSN, before anything changes.
    pub(crate) fn check_checkpoint(&self, live_from: Lsn) -> Result<(), WalError> {
        if live_from.0 == 0 || live_from > self.next_lsn {
            return Err(WalError::Checkpoint { live_from, next: self.next_lsn });
        }
        Ok(())
    }

    pub(crate) fn enqueue_checkpoint(&mut self, live_from: Lsn) -> Lsn {
        self.enqueue(8, |out, lsn, first| {
            encode_checkpoint(out, lsn, first, live_from);
            Some(live_from)
        })
    }

    /// Numbers a frame of `payload_bytes` and has `encode` write it into the queue.
    pub(crate) fn enqueue(
        &mut self,
        payload_bytes: usize,
        encode: impl FnOnce(&mut Vec<u8>, Lsn, Lsn) -> Option<Lsn>,
    ) -> Lsn {
        let config = &self.config;
        let frame = frame_bytes(payload_bytes);
        let lsn = self.next_lsn;
        self.next_lsn = lsn.next();
        let rotate = self.offset + frame as u64 > config.segment_bytes;
        if rotate {
            self.seq += 1;
            self.offset = SEGMENT_HEADER_BYTES as u64;
        }
        let (seq, offset, live_from) = (self.seq, self.offset, self.live_from);
        let joins = !rotate
            && self
                .queue
                .back()
                .is_some_and(|w| w.seq == seq && w.bytes.len() + frame <= config.write_bytes_max);
        if !joins {
            self.queue.push_back(Write {
                seq,
                offset,
                first_lsn: lsn,
                last_lsn: lsn,
                records: 0,
                bytes: Vec::with_capacity(frame.max(config.write_bytes_max.min(64 << 10))),
                open_segment: rotate.then_some(SegmentHeader { seq, first_lsn: lsn, live_from }),
                checkpoint: None,
            });
        }
        let write = self.queue.back_mut().expect("a write is queued");
        let first = write.first_lsn;
        let moved = encode(&mut write.bytes, lsn, first);
        write.last_lsn = lsn;
        write.records += 1;
        // Every checkpoint marks its write (the tail marker goes out with it); only a later
        // `live_from` moves the log's.
        if let Some(lf) = moved {
            let live_from = lf.max(self.live_from);
            write.checkpoint = Some(live_from);
            self.live_from = live_from;
        }
        self.offset += frame as u64;
        self.queued_bytes += frame;
        lsn
    }

    /// The next write to perform, oldest first; `None` when nothing is queued or the log
    /// stopped. Writes must be performed one at a time, each synced before the next is written:
    /// recovery relies on it to tell a torn write from corruption.
    pub fn take_write(&mut self) -> Option<Write> {
        if self.failed.is_some() {
            return None;
        }
        self.queue.pop_front()
    }

    /// `write` was written and synced (and, for a checkpoint, the tail marker written): its
    /// records are durable. Returns the durable LSN. After a failure, nothing becomes durable.
    pub fn acknowledge(&mut self, write: &Write) -> Lsn {
        self.queued_bytes -= write.bytes.len();
        if self.failed.is_none() {
            self.durable = self.durable.max(write.last_lsn);
        }
        self.durable
    }

    /// A write or sync failed: the log stops for good.
    pub fn fail(&mut self, error: WalError) {
        self.failed.get_or_insert(error);
    }

    /// Every record up to this LSN is synced.
    pub fn durable(&self) -> Lsn {
        self.durable
    }

    /// The LSN the next append gets.
    pub fn next_lsn(&self) -> Lsn {
        self.next_lsn
    }

    /// The error that stopped the log, if one did.
    pub fn failed(&self) -> Option<&WalError> {
        self.failed.as_ref()
    }
}
