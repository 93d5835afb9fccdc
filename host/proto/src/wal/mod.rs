//! The write-ahead log's on-disk format and its recovery scan, as pure code over bytes.
//!
//! The host crate `luciole-wal` owns files, `fdatasync`, threads and group commit; this module
//! owns what the bytes mean. Nothing here touches a file: recovery is a function of the segment
//! bytes, which is what lets the simulator and the property tests run it on memory.
//!
//! # The log
//!
//! A log is a directory of **segment files**, named `{seq:020}.wal` after their sequence
//! number (`00000000000000000001.wal`, …), each preallocated to the configured segment size and
//! filled with zeros before use. Records get a **log sequence number** ([`Lsn`]) from 1 up, with
//! no gaps across the whole log; a segment holds a contiguous run of them. Files ending in
//! `.tmp` are segments being prepared and are not part of the log.
//!
//! # Segment header: 48 bytes at offset 0
//!
//! | offset | size | field |
//! |---:|---:|---|
//! | 0 | 8 | magic `LUCIOWAL` (ASCII) |
//! | 8 | 2 | format version, `u16` little-endian; this is version 1 |
//! | 10 | 6 | zero |
//! | 16 | 8 | segment sequence number, `u64` LE; equals the number in the file name |
//! | 24 | 8 | LSN of the segment's first record (the next LSN when it was created), `u64` LE |
//! | 32 | 8 | `live_from` when it was created: the oldest LSN still live, `u64` LE |
//! | 40 | 4 | zero |
//! | 44 | 4 | CRC32C (Castagnoli) of bytes 0..44, `u32` LE |
//!
//! # Record frame: 21 bytes, then the payload
//!
//! Frames follow the header back to back; a frame never spans two segments.
//!
//! | offset | size | field |
//! |---:|---:|---|
//! | 0 | 4 | CRC32C of bytes 4..21+N (everything after it, payload included), `u32` LE |
//! | 4 | 4 | payload length N, `u32` LE, at most [`WAL_RECORD_BYTES_MAX`] |
//! | 8 | 8 | LSN, `u64` LE, at least 1 |
//! | 16 | 4 | records before this one in the same *write*, `u32` LE (see below) |
//! | 20 | 1 | record type: 1 is a checkpoint, 16–255 belong to the log's user, the rest are invalid |
//! | 21 | N | payload: for the user's records, whatever they encode (luciole uses postcard) |
//!
//! A **write** is what the host writes and syncs in one go (a group commit). The host never
//! starts a write before the previous one is synced, so a record of a later write proves that
//! every earlier write reached the disk. Within the last write, a crash may persist pages out of
//! order; the field at offset 16 lets recovery tell those (never acknowledged) from a record
//! that was synced and then damaged.
//!
//! A checkpoint's payload is 8 bytes: the new `live_from`, `u64` LE. It says that every record
//! below `live_from` is superseded; segments holding only such records may be deleted.
//!
//! The end of the written part of a segment is a frame header of 21 zero bytes (or fewer than
//! 21 bytes left, all zero): preallocation left zeros there.
//!
//! # Recovery
//!
//! [`recovery::Recovery`] reads the segments in sequence order and:
//!
//! - refuses a segment whose header is not intact, whose sequence number skips one, or whose
//!   first LSN does not continue the previous segment's records;
//! - at the first frame that is not a valid record (checksum, length, type or LSN wrong, or
//!   zeros where a record is due), looks for a valid record of a *later write* after it, in the
//!   same segment or a later one. If there is one, the bad record had been synced: the log is
//!   corrupt *in the middle*, and recovery stops with an error naming the segment and offset.
//!   If there is none, it is a **torn tail** — the last write, interrupted by the crash and
//!   never acknowledged — and recovery reports where it starts and ends, so that the host zeroes
//!   it before appending. Valid records of that same write after the bad one are part of the
//!   torn tail and are not returned;
//! - cannot tell a synced last write that was later damaged from a torn one: the tail of the
//!   log is where a disk that loses synced data loses it unnoticed;
//! - never returns a record whose checksum fails;
//! - returns the user's records from the last checkpoint's `live_from` on, in LSN order.

pub mod format;
pub mod recovery;

pub use format::{Lsn, RecordType};

#[cfg(doc)]
use crate::limits::WAL_RECORD_BYTES_MAX;
