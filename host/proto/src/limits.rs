//! Named limits, units last. Every input from a peer, a disk or a policy is checked against one.

/// Most members in one view.
pub const MEMBERS_MAX: usize = 10_000;
/// Most labels on one member.
pub const LABELS_PER_MEMBER_MAX: usize = 16;
/// Longest label key.
pub const LABEL_KEY_BYTES_MAX: usize = 64;
/// Longest label value.
pub const LABEL_VALUE_BYTES_MAX: usize = 256;
/// Bytes of a transport frame's header (format version, then payload length): what every
/// message costs on a stream besides its postcard encoding. Counted by the transport and by the
/// simulator's traffic figures alike.
pub const FRAME_HEADER_BYTES: usize = 5;
/// Longest transport address of a member (`host:port`).
pub const ADDR_BYTES_MAX: usize = 256;
/// Most bubbles in the cluster.
pub const BUBBLES_MAX: usize = 100_000;
/// Longest policy name or policy version string.
pub const POLICY_NAME_BYTES_MAX: usize = 64;
/// Longest policy error message kept (longer ones are truncated).
pub const POLICY_MESSAGE_BYTES_MAX: usize = 1024;
/// Most log messages a policy may emit in one call; further ones are dropped and counted.
pub const POLICY_LOGS_PER_CALL_MAX: u32 = 64;
/// Longest log message kept from a policy (longer ones are truncated).
pub const POLICY_LOG_BYTES_MAX: usize = 1024;
/// Most bytes one host call of a policy, or one answer, may carry into the host: a lift beyond
/// it is refused before anything is copied and faults the call. Room for a placement of
/// [`BUBBLES_MAX`] bubbles (4 bytes each) and an error message.
pub const POLICY_LIFT_BYTES_MAX: usize = 512 << 10;
/// Most table elements (function references) of one policy instance, over all its tables.
pub const TABLE_ELEMENTS_PER_POLICY_MAX: usize = 100_000;
/// Shortest delay a migration policy may ask for.
pub const MIGRATION_DELAY_MS_MIN: u32 = 1;
/// Longest delay a migration policy may ask for.
pub const MIGRATION_DELAY_MS_MAX: u32 = 60_000;
/// Largest payload of one write-ahead log record.
pub const WAL_RECORD_BYTES_MAX: usize = 1 << 20;
/// Default size of a write-ahead log segment file (preallocated in full).
pub const WAL_SEGMENT_BYTES_DEFAULT: u64 = 64 << 20;
/// Largest write-ahead log segment file.
pub const WAL_SEGMENT_BYTES_MAX: u64 = 1 << 30;
