//! Encoding and decoding of segment headers and record frames (see the [module docs](super)).

use std::fmt;

use serde::{Deserialize, Serialize};

/// A log sequence number: the position of a record in the log, from 1, without gaps.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Lsn(pub u64);

impl Lsn {
    /// The first record's LSN.
    pub const FIRST: Lsn = Lsn(1);

    /// The LSN after this one.
    pub fn next(self) -> Lsn {
        Lsn(self.0 + 1)
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The type of a record: 16–255 for the log's user; the log reserves the rest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RecordType(u8);

impl RecordType {
    /// The lowest type a user may give.
    pub const USER_MIN: u8 = 16;
    /// The log's own checkpoint record.
    pub(crate) const CHECKPOINT: RecordType = RecordType(1);

    /// A user record type; `None` below [`RecordType::USER_MIN`].
    pub const fn user(t: u8) -> Option<RecordType> {
        if t >= Self::USER_MIN { Some(RecordType(t)) } else { None }
    }

    /// The byte written to the frame.
    pub const fn get(self) -> u8 {
        self.0
    }

    /// Whether a frame may carry this byte.
    fn valid(t: u8) -> bool {
        t == Self::CHECKPOINT.0 || t >= Self::USER_MIN
    }
}

/// Bytes of the segment header.
pub const SEGMENT_HEADER_BYTES: usize = 48;
/// Bytes of a frame before its payload.
pub const FRAME_HEADER_BYTES: usize = 21;
/// The segment header's first bytes.
pub const SEGMENT_MAGIC: [u8; 8] = *b"LUCIOWAL";
/// The format version this code writes and reads.
pub const FORMAT_VERSION: u16 = 1;

/// Bytes a record with a payload of `payload_bytes` takes in a segment.
pub const fn frame_bytes(payload_bytes: usize) -> usize {
    FRAME_HEADER_BYTES + payload_bytes
}

/// The file that says where the log ends, so that recovery can tell a lost newest segment or
/// lost acknowledged records from a log that simply ends there.
pub const TAIL_FILE: &str = "TAIL";
/// Bytes of a [`TailMarker`].
pub const TAIL_MARKER_BYTES: usize = 32;
/// A tail marker's first bytes.
pub const TAIL_MAGIC: [u8; 8] = *b"LUCITAIL";

/// Where the log ended when the marker was written (at each new segment and each checkpoint,
/// after the data it names was synced): the newest segment, and an LSN every record up to
/// which was durable. 32 bytes: magic, `seq` and `durable` (u64 LE each), 4 zero bytes, and
/// the crc32c of the first 28 bytes. Written to a temporary name, synced and renamed over
/// [`TAIL_FILE`], so it is whole or the previous one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TailMarker {
    /// The newest segment's sequence number.
    pub seq: u64,
    /// Every record up to this LSN was durable (0: none yet).
    pub durable: Lsn,
}

impl TailMarker {
    /// The marker's bytes.
    pub fn encode(&self) -> [u8; TAIL_MARKER_BYTES] {
        let mut b = [0u8; TAIL_MARKER_BYTES];
        b[0..8].copy_from_slice(&TAIL_MAGIC);
        b[8..16].copy_from_slice(&self.seq.to_le_bytes());
        b[16..24].copy_from_slice(&self.durable.0.to_le_bytes());
        let crc = crc32c::crc32c(&b[0..28]);
        b[28..32].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Reads a marker; `None` unless it is whole and intact.
    pub fn decode(b: &[u8]) -> Option<TailMarker> {
        if b.len() != TAIL_MARKER_BYTES || b[0..8] != TAIL_MAGIC {
            return None;
        }
        if crc32c::crc32c(&b[0..28]) != u32_at(b, 28) {
            return None;
        }
        let seq = u64::from_le_bytes(b[8..16].try_into().expect("8 bytes"));
        let durable = Lsn(u64::from_le_bytes(b[16..24].try_into().expect("8 bytes")));
        Some(TailMarker { seq, durable })
    }
}

/// A segment's header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    /// Sequence number; the file is named after it.
    pub seq: u64,
    /// LSN of the first record the segment holds (or will hold).
    pub first_lsn: Lsn,
    /// The oldest live LSN when the segment was created.
    pub live_from: Lsn,
}

/// Why a segment header is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// Fewer than 48 bytes.
    #[error("shorter than a segment header")]
    Short,
    /// Not a luciole segment.
    #[error("no segment magic (not a luciole WAL segment)")]
    Magic,
    /// Written by another format version.
    #[error("format version {0}; this build reads version {FORMAT_VERSION}")]
    Version(u16),
    /// Checksum mismatch.
    #[error("header checksum mismatch")]
    Checksum,
    /// Checksum right, content impossible.
    #[error("header fields impossible: {0}")]
    Fields(&'static str),
}

impl SegmentHeader {
    /// The header's bytes.
    pub fn encode(&self) -> [u8; SEGMENT_HEADER_BYTES] {
        let mut b = [0u8; SEGMENT_HEADER_BYTES];
        b[0..8].copy_from_slice(&SEGMENT_MAGIC);
        b[8..10].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        b[16..24].copy_from_slice(&self.seq.to_le_bytes());
        b[24..32].copy_from_slice(&self.first_lsn.0.to_le_bytes());
        b[32..40].copy_from_slice(&self.live_from.0.to_le_bytes());
        let crc = crc32c::crc32c(&b[0..44]);
        b[44..48].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Reads a header from the start of `bytes`.
    pub fn decode(bytes: &[u8]) -> Result<SegmentHeader, HeaderError> {
        let b = bytes.get(..SEGMENT_HEADER_BYTES).ok_or(HeaderError::Short)?;
        if b[0..8] != SEGMENT_MAGIC {
            return Err(HeaderError::Magic);
        }
        if crc32c::crc32c(&b[0..44]) != u32_at(b, 44) {
            return Err(HeaderError::Checksum);
        }
        let version = u16::from_le_bytes([b[8], b[9]]);
        if version != FORMAT_VERSION {
            return Err(HeaderError::Version(version));
        }
        let h = SegmentHeader {
            seq: u64_at(b, 16),
            first_lsn: Lsn(u64_at(b, 24)),
            live_from: Lsn(u64_at(b, 32)),
        };
        if h.first_lsn.0 == 0 || h.live_from.0 == 0 || h.live_from > h.first_lsn {
            return Err(HeaderError::Fields("an LSN is zero or live_from is past first_lsn"));
        }
        Ok(h)
    }
}

/// Appends the frame of one record to `out`. `write_first` is the LSN of the first record of
/// the write this record goes out with (at most `lsn`, and fewer than 2³² records before it).
///
/// The caller keeps `payload` within its record limit; decoding refuses longer ones.
pub fn encode_frame(
    out: &mut Vec<u8>,
    lsn: Lsn,
    write_first: Lsn,
    kind: RecordType,
    payload: &[u8],
) {
    let start = out.len();
    let len = u32::try_from(payload.len()).expect("payload length checked by the caller");
    let back = u32::try_from(lsn.0 - write_first.0).expect("writes are bounded");
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&lsn.0.to_le_bytes());
    out.extend_from_slice(&back.to_le_bytes());
    out.push(kind.0);
    out.extend_from_slice(payload);
    let crc = crc32c::crc32c(&out[start + 4..]);
    out[start..start + 4].copy_from_slice(&crc.to_le_bytes());
}

/// Appends the frame of a checkpoint record at `lsn` saying that records from `live_from` on
/// are live; `live_from` is at most `lsn`.
pub fn encode_checkpoint(out: &mut Vec<u8>, lsn: Lsn, write_first: Lsn, live_from: Lsn) {
    debug_assert!(live_from.0 >= 1 && live_from <= lsn);
    encode_frame(out, lsn, write_first, RecordType::CHECKPOINT, &checkpoint_payload(live_from));
}

/// The payload of a checkpoint record.
pub(crate) fn checkpoint_payload(live_from: Lsn) -> [u8; 8] {
    live_from.0.to_le_bytes()
}

/// A record read from a segment, borrowing its payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    /// Its LSN.
    pub lsn: Lsn,
    /// The LSN of the first record of the write it was part of (the records written and
    /// synced together).
    pub write_first: Lsn,
    /// Its type.
    pub kind: RecordType,
    /// Its payload.
    pub payload: &'a [u8],
}

/// What the bytes at a frame position hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Decoded<'a> {
    /// A valid record, and the bytes its frame takes.
    Record(Record<'a>, usize),
    /// Zeros: the end of the written part.
    End,
    /// Not a valid frame.
    Bad(FrameError),
}

/// Why the bytes at a frame position are not a valid record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The frame's header or payload runs past the end of the segment.
    #[error("frame runs past the end of the segment")]
    Truncated,
    /// The length field exceeds the record limit.
    #[error("record length {0} exceeds the limit")]
    Length(u32),
    /// Checksum mismatch.
    #[error("record checksum mismatch")]
    Checksum,
    /// Checksum right, type byte not one the format knows.
    #[error("record type {0} is not valid")]
    Type(u8),
    /// Checksum right, LSN not the next one.
    #[error("record LSN {found} where {expected} was due")]
    Lsn {
        /// The LSN the log continues with.
        expected: Lsn,
        /// The LSN the frame carries.
        found: Lsn,
    },
    /// A checkpoint whose payload is not a valid `live_from`.
    #[error("checkpoint payload invalid")]
    Checkpoint,
    /// Zeros where a record was due.
    #[error("zeros where a record was due")]
    Zeros,
    /// Checksum right, LSN zero or the write's first LSN after the record's.
    #[error("record LSN fields impossible")]
    Fields,
}

/// Decodes the frame at the start of `bytes` (the rest of a segment).
pub(crate) fn decode_frame(bytes: &[u8], record_bytes_max: usize) -> Decoded<'_> {
    let Some(h) = bytes.get(..FRAME_HEADER_BYTES) else {
        return if bytes.iter().all(|&b| b == 0) {
            Decoded::End
        } else {
            Decoded::Bad(FrameError::Truncated)
        };
    };
    if h.iter().all(|&b| b == 0) {
        return Decoded::End;
    }
    let len = u32_at(h, 4);
    if len as usize > record_bytes_max {
        return Decoded::Bad(FrameError::Length(len));
    }
    let total = frame_bytes(len as usize);
    let Some(frame) = bytes.get(..total) else {
        return Decoded::Bad(FrameError::Truncated);
    };
    if crc32c::crc32c(&frame[4..]) != u32_at(h, 0) {
        return Decoded::Bad(FrameError::Checksum);
    }
    if !RecordType::valid(h[20]) {
        return Decoded::Bad(FrameError::Type(h[20]));
    }
    let lsn = u64_at(h, 8);
    let back = u64::from(u32_at(h, 16));
    if lsn == 0 || back >= lsn {
        return Decoded::Bad(FrameError::Fields);
    }
    let record = Record {
        lsn: Lsn(lsn),
        write_first: Lsn(lsn - back),
        kind: RecordType(h[20]),
        payload: &frame[FRAME_HEADER_BYTES..],
    };
    Decoded::Record(record, total)
}

/// The first valid record in `bytes` at or after `from` that went out in a write *after* the
/// one that held LSN `due`, with its offset.
///
/// Used after a bad frame (or zeros) where record `due` should be. The writer syncs each write
/// before it starts the next, so a record of a later write proves that record `due` was
/// synced, and its loss is corruption. Valid records of the *same* write may follow a bad one
/// after a crash (the disk persisted the write's pages out of order); they were never
/// acknowledged, so they are part of the torn tail.
pub(crate) fn find_later_write(
    bytes: &[u8],
    from: usize,
    due: Lsn,
    record_bytes_max: usize,
) -> Option<(usize, Lsn)> {
    // A frame at `s` has a nonzero byte in its LSN field, s+8..s+16; so when the next nonzero
    // byte at or after `p` is `q`, no frame starts before q - 15. Zeroed stretches are skipped
    // at memory speed.
    let mut p = from;
    while p + FRAME_HEADER_BYTES <= bytes.len() {
        let q = first_nonzero(bytes, p)?;
        let mut s = p.max(q.saturating_sub(15));
        while s <= q && s + FRAME_HEADER_BYTES <= bytes.len() {
            if let Decoded::Record(r, n) = decode_frame(&bytes[s..], record_bytes_max) {
                if r.lsn >= due && r.write_first > due {
                    return Some((s, r.lsn));
                }
                // A record of the torn write (or an older one): carry on after it.
                s += n;
                continue;
            }
            s += 1;
        }
        p = s.max(q + 1);
    }
    None
}

/// Index of the first nonzero byte at or after `from`. Eight bytes at a time: recovery skips
/// the zeroed (preallocated) rest of every segment with it.
pub(crate) fn first_nonzero(bytes: &[u8], from: usize) -> Option<usize> {
    let rest = bytes.get(from..)?;
    let chunks = rest.chunks_exact(64);
    let tail_at = from + rest.len() - chunks.remainder().len();
    for (i, c) in chunks.enumerate() {
        if c.iter().fold(0u8, |a, &b| a | b) != 0 {
            let at = from + i * 64;
            return c.iter().position(|&b| b != 0).map(|k| at + k);
        }
    }
    bytes[tail_at..].iter().position(|&b| b != 0).map(|k| tail_at + k)
}

/// Index just after the last nonzero byte (0 when all are zero), sixty-four bytes at a time.
pub(crate) fn end_of_nonzero(bytes: &[u8]) -> usize {
    let chunks = bytes.rchunks_exact(64);
    let head = chunks.remainder().len();
    for (i, c) in chunks.enumerate() {
        if c.iter().fold(0u8, |a, &b| a | b) != 0 {
            let start = bytes.len() - (i + 1) * 64;
            return start + c.iter().rposition(|&b| b != 0).expect("a nonzero byte") + 1;
        }
    }
    bytes[..head].iter().rposition(|&b| b != 0).map_or(0, |k| k + 1)
}

/// Little-endian `u32` at `at`; the caller checked the length.
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("length checked"))
}

/// Little-endian `u64` at `at`; the caller checked the length.
fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("length checked"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_round_trips_and_any_flipped_bit_is_refused() {
        let h = SegmentHeader { seq: 7, first_lsn: Lsn(1000), live_from: Lsn(900) };
        let b = h.encode();
        assert_eq!(SegmentHeader::decode(&b), Ok(h));
        for bit in 0..SEGMENT_HEADER_BYTES * 8 {
            let mut c = b;
            c[bit / 8] ^= 1 << (bit % 8);
            assert!(SegmentHeader::decode(&c).is_err(), "bit {bit}");
        }
    }

    #[test]
    fn a_frame_round_trips_and_any_flipped_bit_is_refused() {
        let mut out = Vec::new();
        encode_frame(&mut out, Lsn(42), Lsn(40), RecordType::user(20).unwrap(), b"hello");
        assert_eq!(out.len(), frame_bytes(5));
        let Decoded::Record(r, n) = decode_frame(&out, 1024) else { panic!("valid frame") };
        assert_eq!((r.lsn, r.write_first, r.kind.get()), (Lsn(42), Lsn(40), 20));
        assert_eq!((r.payload, n), (&b"hello"[..], out.len()));
        for bit in 0..out.len() * 8 {
            let mut c = out.clone();
            c[bit / 8] ^= 1 << (bit % 8);
            assert!(!matches!(decode_frame(&c, 1024), Decoded::Record(..)), "bit {bit}");
        }
    }

    #[test]
    fn zeros_are_the_end_and_a_cut_frame_is_truncated() {
        assert_eq!(decode_frame(&[0; 40], 1024), Decoded::End);
        assert_eq!(decode_frame(&[0; 5], 1024), Decoded::End);
        let mut out = Vec::new();
        encode_frame(&mut out, Lsn(1), Lsn(1), RecordType::user(16).unwrap(), &[9; 30]);
        assert_eq!(decode_frame(&out[..30], 1024), Decoded::Bad(FrameError::Truncated));
        assert_eq!(decode_frame(&out[..10], 1024), Decoded::Bad(FrameError::Truncated));
        assert_eq!(decode_frame(&out, 10), Decoded::Bad(FrameError::Length(30)));
    }

    #[test]
    fn nonzero_bytes_are_found_at_every_position() {
        for len in [0usize, 1, 63, 64, 65, 200] {
            let zeros = vec![0u8; len];
            assert_eq!(first_nonzero(&zeros, 0), None);
            assert_eq!(end_of_nonzero(&zeros), 0);
            for at in 0..len {
                let mut b = zeros.clone();
                b[at] = 3;
                assert_eq!(first_nonzero(&b, 0), Some(at), "len {len} at {at}");
                assert_eq!(first_nonzero(&b, at), Some(at));
                assert_eq!(first_nonzero(&b, at + 1), None);
                assert_eq!(end_of_nonzero(&b), at + 1, "len {len} at {at}");
            }
        }
    }

    #[test]
    fn user_types_start_at_sixteen() {
        assert!(RecordType::user(15).is_none());
        assert_eq!(RecordType::user(255).map(RecordType::get), Some(255));
    }

    #[test]
    fn a_record_of_a_later_write_is_found_past_junk_and_zeros() {
        let kind = RecordType::user(16).unwrap();
        let mut seg = vec![0xAB; 10];
        seg.extend_from_slice(&[0; 5000]);
        let same = seg.len();
        encode_frame(&mut seg, Lsn(7), Lsn(5), kind, b"same write as 5");
        let later = seg.len();
        encode_frame(&mut seg, Lsn(8), Lsn(8), kind, b"x");
        seg.extend_from_slice(&[0; 100]);
        assert_eq!(find_later_write(&seg, 0, Lsn(5), 1024), Some((later, Lsn(8))));
        assert_eq!(find_later_write(&seg, 0, Lsn(8), 1024), None);
        assert_eq!(find_later_write(&seg, later + 1, Lsn(5), 1024), None);
        assert!(same < later);
    }
}
