//! The sandboxed policy host.
//!
//! Policies are WebAssembly components implementing one world of the `luciole:policy` WIT
//! package. This crate loads them ([`PolicyEngine`]), checks what they are before compiling
//! ([`inspect`]), caches compiled artifacts ([`ArtifactCache`]), and runs them behind a
//! [`PolicySlot`]: one slot per policy kind, holding the active version, the last good version
//! and the built-in native default.
//!
//! Every call is metered with fuel and capped in memory; every answer is checked by
//! [`luciole_proto::check`]. A trap, exhausted fuel or memory, or an unsafe answer quarantines
//! that version and the same call is answered by the next in line. A policy can make the cluster
//! slower, never wrong.

mod bindings;
mod cache;
pub mod componentize;
mod engine;
pub mod inspect;
mod instance;
mod kinds;
mod slot;

pub use cache::ArtifactCache;
pub use engine::{
    EngineConfig, FUEL_PER_CALL_DEFAULT, LoadError, LoadedPolicy, MEMORY_BYTES_MAX_DEFAULT,
    PolicyEngine, PolicyMeta,
};
pub use inspect::{ApiVersion, InspectError, Inspection, PolicyKind};
pub use instance::{Fault, FaultReason};
pub use kinds::{Coordinator, Migration, Placement, PolicyView};
pub use slot::{Answer, AnsweredBy, PolicySlot, SlotStats, SwapError, SwapReport};
