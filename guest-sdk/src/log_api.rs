//! Structured logging into the node's log, the only capability a policy has.

use crate::bindings::coordinator_world::luciole::policy::log as wit;

pub use wit::{Field, Level};

/// Writes a message with structured fields to the node's log.
///
/// Logging is paid for from the call's fuel: 2,000 per message, kept or not, plus one per byte
/// of message and fields; one message may carry at most 512 KiB (more faults the call).
/// The node tags it with the policy's name and version. At most 64 messages per call are kept,
/// each at most 1 KiB. In native tests (not wasm) the message goes to standard error.
pub fn log(level: Level, message: &str, fields: &[(&str, &str)]) {
    let fields: Vec<Field> =
        fields.iter().map(|(k, v)| Field { key: (*k).into(), value: (*v).into() }).collect();
    #[cfg(target_arch = "wasm32")]
    wit::log(level, message, &fields);
    #[cfg(not(target_arch = "wasm32"))]
    eprintln!("[{level:?}] {message} {fields:?}");
}
