//! Damaged logs: each kind of damage gives the outcome documented in the crate docs, on both
//! backends, and never a panic.

mod common;

use common::{Backend, payload, small, user};
use luciole_proto::wal::format::{FRAME_HEADER_BYTES, SEGMENT_HEADER_BYTES};
use luciole_proto::wal::recovery::RecoveryError;
use luciole_wal::{Lsn, Wal, WalError, segment_name};

on_both_backends!(
    a_flipped_bit_in_the_middle_is_refused_with_segment_and_offset,
    a_flipped_bit_in_any_byte_of_a_record_is_never_returned,
    a_damaged_last_record_is_cut_as_a_torn_tail,
    a_truncated_middle_segment_is_refused,
    a_truncated_last_segment_keeps_the_records_before_the_cut,
    a_zeroed_tail_of_the_last_segment_loses_only_what_it_covered,
    a_zeroed_tail_of_a_middle_segment_is_refused,
    a_missing_middle_segment_is_refused,
    a_missing_oldest_segment_with_live_records_is_refused,
    a_garbage_segment_header_is_refused,
    a_segment_shorter_than_its_header_is_refused,
    a_missing_newest_segment_is_refused,
    a_damaged_write_before_the_last_checkpoint_is_refused,
    a_damaged_tail_marker_is_refused,
);

fn a_missing_newest_segment_is_refused(b: &impl Backend) {
    let segs = log_of(b, 200);
    assert!(segs.len() >= 3, "{segs:?}");
    b.remove_file(segs.last().unwrap());
    let err = open_err(b);
    assert!(
        matches!(&err, WalError::Tail { why, .. } if why.contains(segs.last().unwrap())),
        "{err}"
    );
}

fn a_damaged_write_before_the_last_checkpoint_is_refused(b: &impl Backend) {
    let wal = Wal::open(b.storage(), small()).unwrap().wal;
    for i in 0..5 {
        wal.append_wait(user(16), &payload(9, i)).unwrap();
    }
    // The checkpoint (LSN 6) is the log's last write; it keeps every record live.
    wal.checkpoint(Lsn(1)).unwrap().wait().unwrap();
    wal.close().unwrap();
    let seg = segment_name(1);
    let mut s = b.read_file(&seg);
    let (at, len) = *frames(&s).last().unwrap();
    s[at + len - 1] ^= 0xFF;
    b.write_file(&seg, &s);
    let err = open_err(b);
    assert!(matches!(&err, WalError::Tail { why, .. } if why.contains("6..=6")), "{err}");
    // Nothing was cut: the damage is still there for whoever looks.
    assert_eq!(b.read_file(&seg), s);
}

fn a_damaged_tail_marker_is_refused(b: &impl Backend) {
    log_of(b, 3);
    let mut tail = b.read_file("TAIL");
    tail[20] ^= 1;
    b.write_file("TAIL", &tail);
    let err = open_err(b);
    assert!(matches!(&err, WalError::Tail { why, .. } if why.contains("damaged")), "{err}");
}

/// A log of `n` records, each synced on its own (one record per write), closed cleanly.
/// Returns the segment names in order.
fn log_of(b: &impl Backend, n: u32) -> Vec<String> {
    let wal = Wal::open(b.storage(), small()).unwrap().wal;
    for i in 0..n {
        wal.append(user(16), &payload(9, i)).unwrap().wait().unwrap();
    }
    wal.close().unwrap();
    b.files().into_iter().filter(|f| f.ends_with(".wal")).collect()
}

/// Offset of each record's frame in a segment, read from a clean copy.
fn frames(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut at = SEGMENT_HEADER_BYTES;
    while at + FRAME_HEADER_BYTES <= bytes.len() && bytes[at..at + FRAME_HEADER_BYTES] != [0; 21] {
        let len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
        out.push((at, FRAME_HEADER_BYTES + len));
        at += FRAME_HEADER_BYTES + len;
    }
    out
}

fn open_err(b: &impl Backend) -> WalError {
    Wal::open(b.storage(), small()).expect_err("recovery must refuse")
}

fn assert_records_prefix(b: &impl Backend, n: usize) -> luciole_wal::RecoveryReport {
    let opened = Wal::open(b.storage(), small()).expect("recovery succeeds");
    assert_eq!(opened.records.len(), n);
    for (i, r) in opened.records.iter().enumerate() {
        assert_eq!((r.lsn, &r.payload), (Lsn(i as u64 + 1), &payload(9, i as u32)));
    }
    opened.report
}

fn a_flipped_bit_in_the_middle_is_refused_with_segment_and_offset(b: &impl Backend) {
    let segs = log_of(b, 40);
    let mut s = b.read_file(&segs[0]);
    let (at, _) = frames(&s)[3];
    s[at + FRAME_HEADER_BYTES + 2] ^= 0x10;
    b.write_file(&segs[0], &s);
    let err = open_err(b);
    let WalError::Corrupt { path, source: RecoveryError::Corrupt { seq: 1, offset, .. } } = &err
    else {
        panic!("{err}")
    };
    assert_eq!(*offset, at);
    assert!(path.ends_with(&segment_name(1)), "{path}");
    let text = err.to_string();
    assert!(text.contains(&format!("segment 1 offset {at}")) && text.contains("corrupt"), "{text}");
}

fn a_flipped_bit_in_any_byte_of_a_record_is_never_returned(b: &impl Backend) {
    // Every byte of one record in the middle, and of the last record: refused, or cut as a
    // tail; never returned damaged.
    let segs = log_of(b, 12);
    let clean = b.read_file(&segs[0]);
    let fr = frames(&clean);
    for &(at, len) in [fr[5], *fr.last().unwrap()].iter() {
        for i in 0..len {
            let mut s = clean.clone();
            s[at + i] ^= 1 << (i % 8);
            b.write_file(&segs[0], &s);
            match Wal::open(b.storage(), small()) {
                Ok(opened) => {
                    assert_eq!(
                        at,
                        fr.last().unwrap().0,
                        "byte {i}: only the last record may be cut"
                    );
                    assert_eq!(opened.records.len(), fr.len() - 1);
                    assert!(
                        opened
                            .records
                            .iter()
                            .enumerate()
                            .all(|(k, r)| r.payload == payload(9, k as u32))
                    );
                }
                Err(e) => assert!(matches!(e, WalError::Corrupt { .. }), "byte {i}: {e}"),
            }
            b.write_file(&segs[0], &clean);
        }
    }
}

fn a_damaged_last_record_is_cut_as_a_torn_tail(b: &impl Backend) {
    let segs = log_of(b, 5);
    let mut s = b.read_file(&segs[0]);
    let (at, len) = *frames(&s).last().unwrap();
    s[at + len - 1] ^= 0xFF;
    b.write_file(&segs[0], &s);
    let report = assert_records_prefix(b, 4);
    assert_eq!(report.torn_bytes, len);
    // The tail was zeroed: the next append takes its place, and a reopen is clean.
    let opened = Wal::open(b.storage(), small()).unwrap();
    assert_eq!(opened.report.torn_bytes, 0);
    assert_eq!(opened.wal.append(user(16), b"x").unwrap().wait().unwrap(), Lsn(5));
}

fn a_truncated_middle_segment_is_refused(b: &impl Backend) {
    let segs = log_of(b, 120);
    assert!(segs.len() >= 3);
    let s = b.read_file(&segs[1]);
    let (at, _) = frames(&s)[2];
    b.write_file(&segs[1], &s[..at + 5]);
    let err = open_err(b);
    assert!(
        matches!(&err, WalError::Corrupt { source: RecoveryError::Corrupt { seq: 2, .. }, .. }),
        "{err}"
    );
}

fn a_truncated_last_segment_keeps_the_records_before_the_cut(b: &impl Backend) {
    let segs = log_of(b, 30);
    let last = segs.last().unwrap();
    let s = b.read_file(last);
    let fr = frames(&s);
    let (at, _) = fr[fr.len() - 2];
    b.write_file(last, &s[..at + 7]);
    let before_last: usize = 30 - fr.len();
    assert_records_prefix(b, before_last + fr.len() - 2);
    // The shortened segment grows again as the log appends.
    let opened = Wal::open(b.storage(), small()).unwrap();
    let n = opened.records.len() as u64;
    for _ in 0..20 {
        opened.wal.append(user(16), &[1; 100]).unwrap().wait().unwrap();
    }
    drop(opened);
    assert_eq!(Wal::open(b.storage(), small()).unwrap().records.len() as u64, n + 20);
}

fn a_zeroed_tail_of_the_last_segment_loses_only_what_it_covered(b: &impl Backend) {
    let segs = log_of(b, 10);
    let mut s = b.read_file(&segs[0]);
    let (at, _) = frames(&s)[7];
    let len = s.len();
    s[at..len].fill(0);
    b.write_file(&segs[0], &s);
    let report = assert_records_prefix(b, 7);
    assert_eq!(report.torn_bytes, 0, "zeros are not a torn tail");
}

fn a_zeroed_tail_of_a_middle_segment_is_refused(b: &impl Backend) {
    let segs = log_of(b, 120);
    let mut s = b.read_file(&segs[0]);
    let (at, _) = frames(&s)[10];
    let len = s.len();
    s[at..len].fill(0);
    b.write_file(&segs[0], &s);
    let err = open_err(b);
    assert!(
        matches!(&err, WalError::Corrupt { source: RecoveryError::LsnGap { seq: 2, .. }, .. }),
        "{err}"
    );
}

fn a_missing_middle_segment_is_refused(b: &impl Backend) {
    let segs = log_of(b, 120);
    b.remove_file(&segs[1]);
    let err = open_err(b);
    assert!(
        matches!(
            &err,
            WalError::Corrupt { source: RecoveryError::MissingSegment { after: 1, next: 3 }, .. }
        ),
        "{err}"
    );
}

fn a_missing_oldest_segment_with_live_records_is_refused(b: &impl Backend) {
    let segs = log_of(b, 120);
    b.remove_file(&segs[0]);
    let err = open_err(b);
    assert!(
        matches!(
            &err,
            WalError::Corrupt { source: RecoveryError::MissingRecords { seq: 2, .. }, .. }
        ),
        "{err}"
    );
}

fn a_garbage_segment_header_is_refused(b: &impl Backend) {
    let segs = log_of(b, 120);
    for (i, garbage) in [[0u8; 48], [0xAB; 48]].iter().enumerate() {
        let clean = b.read_file(&segs[1]);
        let mut s = clean.clone();
        s[..48].copy_from_slice(garbage);
        b.write_file(&segs[1], &s);
        let err = open_err(b);
        assert!(
            matches!(&err, WalError::Corrupt { source: RecoveryError::Header { seq: 2, .. }, .. }),
            "{i}: {err}"
        );
        assert!(err.to_string().contains(&segment_name(2)), "{err}");
        b.write_file(&segs[1], &clean);
    }
    // A garbage file that merely has a segment's name is refused the same way.
    b.write_file(
        &segment_name(99),
        b"not a segment at all, but long enough to hold a header........",
    );
    let err = open_err(b);
    assert!(matches!(&err, WalError::Corrupt { .. }), "{err}");
}

fn a_segment_shorter_than_its_header_is_refused(b: &impl Backend) {
    let segs = log_of(b, 3);
    b.write_file(&segs[0], &[0x4C; 10]);
    let err = open_err(b);
    assert!(
        matches!(&err, WalError::Corrupt { source: RecoveryError::Header { seq: 1, .. }, .. }),
        "{err}"
    );
}
