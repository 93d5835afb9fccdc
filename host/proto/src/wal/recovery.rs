//! The recovery scan: segment bytes in, records and the point to continue from out, or an error
//! that names the segment and offset (see the [module docs](super) for the rules).

use super::format::{
    Decoded, FrameError, HeaderError, Lsn, Record, RecordType, SEGMENT_HEADER_BYTES, SegmentHeader,
    decode_frame, end_of_nonzero, find_later_write,
};

/// Why a log cannot be recovered. Each names the segment (by sequence number) and, where there
/// is one, the byte offset in it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RecoveryError {
    /// The segment's header is not intact.
    #[error("segment {seq}: bad header: {error}")]
    Header {
        /// Segment.
        seq: u64,
        /// What is wrong.
        error: HeaderError,
    },
    /// The header's sequence number is not the one in the file name.
    #[error("segment {seq}: header says it is segment {found}")]
    Misnamed {
        /// Segment, by its name.
        seq: u64,
        /// Sequence number in its header.
        found: u64,
    },
    /// Segments between two present ones are missing.
    #[error("segments {}..{} are missing (after segment {after})", after + 1, next)]
    MissingSegment {
        /// The last segment before the hole.
        after: u64,
        /// The first segment after it.
        next: u64,
    },
    /// A segment's first LSN does not continue the previous segment's records.
    #[error("segment {seq}: starts at LSN {found}, but the log continues at LSN {expected}")]
    LsnGap {
        /// Segment.
        seq: u64,
        /// The LSN the previous segment ended before.
        expected: Lsn,
        /// The LSN this one starts at.
        found: Lsn,
    },
    /// A bad frame with a valid record after it: corruption in the middle of the log.
    #[error(
        "segment {seq} offset {offset}: {error}, and a valid record (LSN {later_lsn}) follows in \
         segment {later_seq}: the log is corrupt in the middle"
    )]
    Corrupt {
        /// Segment of the bad frame.
        seq: u64,
        /// Its offset.
        offset: usize,
        /// What is wrong with it.
        error: FrameError,
        /// Segment of the valid record after it.
        later_seq: u64,
        /// That record's LSN.
        later_lsn: Lsn,
    },
    /// The oldest segment starts after the oldest live record: live records were deleted.
    #[error("segment {seq} starts at LSN {first_lsn}, but records from LSN {live_from} are live")]
    MissingRecords {
        /// The oldest segment.
        seq: u64,
        /// Its first LSN.
        first_lsn: Lsn,
        /// The oldest live LSN.
        live_from: Lsn,
    },
}

impl RecoveryError {
    /// The segment at fault, where one is.
    pub fn segment(&self) -> Option<u64> {
        match *self {
            Self::Header { seq, .. }
            | Self::Misnamed { seq, .. }
            | Self::LsnGap { seq, .. }
            | Self::Corrupt { seq, .. }
            | Self::MissingRecords { seq, .. } => Some(seq),
            Self::MissingSegment { .. } => None,
        }
    }
}

/// Where the valid part of a segment ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentEnd {
    /// Offset just after the last valid record (or after the header): where the next record
    /// goes.
    pub offset: usize,
    /// Offset just after the last nonzero byte of the segment, if that is past `offset`: the
    /// torn tail (a write the crash interrupted), to be zeroed before appending. Equal to
    /// `offset` when the segment ends cleanly.
    pub junk_end: usize,
    /// Why the valid part ended, when it ended on something other than zeros.
    pub bad: Option<FrameError>,
}

impl SegmentEnd {
    /// Whether the segment ends on a torn tail.
    pub fn torn(&self) -> bool {
        self.junk_end > self.offset
    }
}

/// What recovery found, once every segment was read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Recovered {
    /// The oldest live LSN: records below it are superseded and were not returned.
    pub live_from: Lsn,
    /// The LSN the next appended record gets.
    pub next_lsn: Lsn,
}

/// The recovery scan, fed one segment at a time in ascending sequence order.
#[derive(Debug)]
pub struct Recovery {
    record_bytes_max: usize,
    live_from: Lsn,
    next_lsn: Lsn,
    first: Option<(u64, Lsn)>,
    prev: Option<Prev>,
}

#[derive(Debug)]
struct Prev {
    seq: u64,
    bad: Option<(usize, FrameError)>,
}

impl Recovery {
    /// A scan for a log whose records are at most `record_bytes_max` bytes.
    pub fn new(record_bytes_max: usize) -> Self {
        Self {
            record_bytes_max,
            live_from: Lsn::FIRST,
            next_lsn: Lsn::FIRST,
            first: None,
            prev: None,
        }
    }

    /// Reads segment `seq`, calling `on_record` with each user record in LSN order.
    ///
    /// Records below the final `live_from` may be passed too (a later checkpoint can supersede
    /// them); the caller drops them once [`Recovery::finish`] gives `live_from`. After an error
    /// the caller must discard everything it was given.
    pub fn segment<'a>(
        &mut self,
        seq: u64,
        bytes: &'a [u8],
        mut on_record: impl FnMut(Record<'a>),
    ) -> Result<SegmentEnd, RecoveryError> {
        let header =
            SegmentHeader::decode(bytes).map_err(|error| RecoveryError::Header { seq, error })?;
        if header.seq != seq {
            return Err(RecoveryError::Misnamed { seq, found: header.seq });
        }
        self.continue_from(seq, header)?;
        let mut offset = SEGMENT_HEADER_BYTES;
        let bad = loop {
            match decode_frame(&bytes[offset..], self.record_bytes_max) {
                Decoded::Record(r, n) => {
                    if r.lsn != self.next_lsn {
                        break Some(FrameError::Lsn { expected: self.next_lsn, found: r.lsn });
                    }
                    if r.kind == RecordType::CHECKPOINT {
                        // A checkpoint with a valid checksum and a nonsense payload is not a torn
                        // write, so not a tail to cut.
                        let live_from = checkpoint_live_from(&r).ok_or(RecoveryError::Corrupt {
                            seq,
                            offset,
                            error: FrameError::Checkpoint,
                            later_seq: seq,
                            later_lsn: r.lsn,
                        })?;
                        self.live_from = self.live_from.max(live_from);
                    } else {
                        on_record(r);
                    }
                    self.next_lsn = r.lsn.next();
                    offset += n;
                }
                Decoded::End => break None,
                Decoded::Bad(e) => break Some(e),
            }
        };
        if let Some((_, later_lsn)) =
            find_later_write(bytes, offset, self.next_lsn, self.record_bytes_max)
        {
            let error = bad.unwrap_or(FrameError::Zeros);
            return Err(RecoveryError::Corrupt { seq, offset, error, later_seq: seq, later_lsn });
        }
        let junk_end = end_of_nonzero(bytes).max(offset);
        self.prev = Some(Prev { seq, bad: bad.map(|e| (offset, e)) });
        Ok(SegmentEnd { offset, junk_end, bad })
    }

    /// Checks that segment `seq` continues the one before it.
    fn continue_from(&mut self, seq: u64, header: SegmentHeader) -> Result<(), RecoveryError> {
        let Some(prev) = &self.prev else {
            self.first = Some((seq, header.first_lsn));
            self.live_from = header.live_from;
            self.next_lsn = header.first_lsn;
            return Ok(());
        };
        if seq != prev.seq + 1 {
            return Err(RecoveryError::MissingSegment { after: prev.seq, next: seq });
        }
        if header.first_lsn != self.next_lsn {
            // Records the previous segment should have ended with are not there. If it ended on
            // a bad frame, that frame was one of them: report the corruption where it is.
            if let Some((offset, error)) = prev.bad
                && header.first_lsn > self.next_lsn
            {
                let prev_seq = prev.seq;
                return Err(RecoveryError::Corrupt {
                    seq: prev_seq,
                    offset,
                    error,
                    later_seq: seq,
                    later_lsn: header.first_lsn,
                });
            }
            return Err(RecoveryError::LsnGap {
                seq,
                expected: self.next_lsn,
                found: header.first_lsn,
            });
        }
        self.live_from = self.live_from.max(header.live_from);
        Ok(())
    }

    /// Ends the scan.
    pub fn finish(self) -> Result<Recovered, RecoveryError> {
        if let Some((seq, first_lsn)) = self.first
            && first_lsn > self.live_from
        {
            return Err(RecoveryError::MissingRecords {
                seq,
                first_lsn,
                live_from: self.live_from,
            });
        }
        Ok(Recovered { live_from: self.live_from, next_lsn: self.next_lsn })
    }
}

/// The `live_from` a checkpoint record carries, if its payload is valid.
fn checkpoint_live_from(r: &Record<'_>) -> Option<Lsn> {
    let live_from = Lsn(u64::from_le_bytes(r.payload.try_into().ok()?));
    (live_from.0 >= 1 && live_from <= r.lsn).then_some(live_from)
}

#[cfg(test)]
mod tests {
    use super::super::format::{FRAME_HEADER_BYTES, checkpoint_payload, encode_frame};
    use super::*;

    const MAX: usize = 1024;
    const F: usize = FRAME_HEADER_BYTES;

    type Outcome = (Vec<(u64, Vec<u8>)>, Recovered, SegmentEnd);

    fn segment(
        seq: u64,
        first: u64,
        live_from: u64,
        records: &[(u64, &[u8])],
        size: usize,
    ) -> Vec<u8> {
        let h = SegmentHeader { seq, first_lsn: Lsn(first), live_from: Lsn(live_from) };
        let mut b = h.encode().to_vec();
        for &(lsn, p) in records {
            encode_frame(&mut b, Lsn(lsn), Lsn(lsn), RecordType::user(16).unwrap(), p);
        }
        b.resize(size.max(b.len()), 0);
        b
    }

    fn recover(segs: &[(u64, &[u8])]) -> Result<Outcome, RecoveryError> {
        let mut r = Recovery::new(MAX);
        let mut out = Vec::new();
        let mut end = None;
        for &(seq, b) in segs {
            end = Some(r.segment(seq, b, |rec| out.push((rec.lsn.0, rec.payload.to_vec())))?);
        }
        let done = r.finish()?;
        out.retain(|(l, _)| *l >= done.live_from.0);
        Ok((out, done, end.expect("a segment")))
    }

    #[test]
    fn records_come_back_in_order_across_segments() {
        let a = segment(1, 1, 1, &[(1, b"a"), (2, b"bb")], 200);
        let b = segment(2, 3, 1, &[(3, b"ccc")], 200);
        let (recs, done, end) = recover(&[(1, &a), (2, &b)]).unwrap();
        assert_eq!(recs, vec![(1, b"a".to_vec()), (2, b"bb".to_vec()), (3, b"ccc".to_vec())]);
        assert_eq!(done, Recovered { live_from: Lsn(1), next_lsn: Lsn(4) });
        assert_eq!(end.offset, SEGMENT_HEADER_BYTES + F + 3);
        assert!(!end.torn());
    }

    #[test]
    fn a_torn_last_record_is_cut_and_reported() {
        let mut a = segment(1, 1, 1, &[(1, b"a"), (2, b"0123456789")], 200);
        let cut = SEGMENT_HEADER_BYTES + F + 1 + F + 5;
        a[cut..].fill(0);
        let (recs, done, end) = recover(&[(1, &a)]).unwrap();
        assert_eq!(recs.len(), 1);
        assert_eq!(done.next_lsn, Lsn(2));
        assert_eq!((end.offset, end.junk_end), (SEGMENT_HEADER_BYTES + F + 1, cut));
        assert_eq!(end.bad, Some(FrameError::Checksum));
    }

    #[test]
    fn a_bad_record_with_a_good_one_after_it_is_refused() {
        let mut a = segment(1, 1, 1, &[(1, b"a"), (2, b"b"), (3, b"c")], 200);
        a[SEGMENT_HEADER_BYTES + F + 1 + F] ^= 1; // payload of record 2
        let err = recover(&[(1, &a)]).unwrap_err();
        assert!(
            matches!(err, RecoveryError::Corrupt { seq: 1, offset: 70, later_lsn: Lsn(3), .. }),
            "{err:?}"
        );
    }

    #[test]
    fn a_bad_last_record_with_records_in_the_next_segment_is_refused() {
        let mut a = segment(1, 1, 1, &[(1, b"a"), (2, b"b")], 200);
        a[SEGMENT_HEADER_BYTES + F + 1 + F] ^= 1;
        let b = segment(2, 3, 1, &[(3, b"c")], 200);
        let err = recover(&[(1, &a), (2, &b)]).unwrap_err();
        assert!(matches!(err, RecoveryError::Corrupt { seq: 1, later_seq: 2, .. }), "{err:?}");
    }

    #[test]
    fn a_missing_segment_and_a_misnamed_one_are_refused() {
        let a = segment(1, 1, 1, &[(1, b"a")], 100);
        let c = segment(3, 2, 1, &[(2, b"c")], 100);
        assert_eq!(
            recover(&[(1, &a), (3, &c)]).unwrap_err(),
            RecoveryError::MissingSegment { after: 1, next: 3 }
        );
        assert_eq!(recover(&[(2, &a)]).unwrap_err(), RecoveryError::Misnamed { seq: 2, found: 1 });
    }

    #[test]
    fn a_checkpoint_hides_superseded_records_and_allows_deleting_old_segments() {
        let mut a = segment(1, 1, 1, &[(1, b"a"), (2, b"b")], 0);
        encode_frame(&mut a, Lsn(3), Lsn(3), RecordType::CHECKPOINT, &checkpoint_payload(Lsn(2)));
        a.resize(200, 0);
        let b = segment(2, 4, 2, &[(4, b"d")], 200);
        let (recs, done, _) = recover(&[(1, &a), (2, &b)]).unwrap();
        assert_eq!(recs, vec![(2, b"b".to_vec()), (4, b"d".to_vec())]);
        assert_eq!(done.live_from, Lsn(2));
        // Segment 1 still holds LSN 2, which is live: without it, recovery refuses.
        let err = recover(&[(2, &b)]).unwrap_err();
        assert_eq!(
            err,
            RecoveryError::MissingRecords { seq: 2, first_lsn: Lsn(4), live_from: Lsn(2) }
        );
    }

    #[test]
    fn zeros_with_a_record_after_them_are_refused() {
        let mut a = segment(1, 1, 1, &[(1, b"a"), (2, b"b"), (3, b"c")], 200);
        a[SEGMENT_HEADER_BYTES + F + 1..SEGMENT_HEADER_BYTES + 2 * (F + 1)].fill(0);
        let err = recover(&[(1, &a)]).unwrap_err();
        assert!(matches!(err, RecoveryError::Corrupt { error: FrameError::Zeros, .. }), "{err:?}");
    }

    #[test]
    fn an_empty_log_starts_at_lsn_one() {
        assert_eq!(
            Recovery::new(MAX).finish().unwrap(),
            Recovered { live_from: Lsn(1), next_lsn: Lsn(1) }
        );
    }

    #[test]
    fn records_of_the_torn_write_after_a_hole_are_part_of_the_tail() {
        // Records 2 and 3 went out in one write; the crash persisted 3 but not 2.
        let h = SegmentHeader { seq: 1, first_lsn: Lsn(1), live_from: Lsn(1) };
        let kind = RecordType::user(16).unwrap();
        let mut a = h.encode().to_vec();
        encode_frame(&mut a, Lsn(1), Lsn(1), kind, b"a");
        let hole = a.len();
        encode_frame(&mut a, Lsn(2), Lsn(2), kind, b"b");
        encode_frame(&mut a, Lsn(3), Lsn(2), kind, b"c");
        let end = a.len();
        a.resize(300, 0);
        a[hole..hole + F + 1].fill(0);
        let (recs, done, tail) = recover(&[(1, &a)]).unwrap();
        assert_eq!(recs, vec![(1, b"a".to_vec())]);
        assert_eq!(done.next_lsn, Lsn(2));
        assert_eq!((tail.offset, tail.junk_end), (hole, end));
    }
}
