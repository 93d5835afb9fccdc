//! The sandboxed policy host.
//!
//! Policies are WebAssembly components implementing one world of the `luciole:policy` WIT
//! package. This crate loads them ([`PolicyEngine`]), checks what they are before compiling
//! ([`inspect`]), caches compiled artifacts ([`ArtifactCache`]), and runs them behind a
//! [`PolicySlot`]: one slot per policy kind, holding the active version, the last good version
//! and the built-in native default.
//!
//! Every call is metered with fuel (host calls included, per byte handed over) and capped in
//! memory over all of a policy's memories; every answer is checked by
//! [`luciole_proto::check`]. A trap, exhausted fuel or memory, an oversized hand-over, or an
//! unsafe answer quarantines that version and the same call is answered by the next in line. A
//! policy can make the cluster slower, never wrong. Components are measured before they are
//! compiled ([`Shape::LIMITS`]) and compiled off the caller's thread with a deadline;
//! cluster-wide kinds (coordinator, placement) run every call on a fresh instantiation, so two
//! nodes give the same answer to the same input.

mod bindings;
mod cache;
pub mod componentize;
mod decider;
mod engine;
pub mod inspect;
mod instance;
mod kinds;
mod signature;
mod slot;

pub use cache::ArtifactCache;
pub use decider::MigrationDecider;
pub use engine::{
    BASELINE_FROM_BYTES_DEFAULT, COMPILE_DEADLINE_DEFAULT, EngineConfig, FUEL_PER_CALL_DEFAULT,
    LoadError, LoadedPolicy, MEMORY_BYTES_MAX_DEFAULT, POOL_INSTANCES_PER_KIND, PolicyEngine,
    PolicyMeta,
};
pub use inspect::{ApiVersion, InspectError, Inspection, PolicyKind, Shape, ShapeLimits};
pub use instance::{Fault, FaultReason};
pub use kinds::{Coordinator, Kind, Migration, Placement, PolicyView};
pub use slot::{Answer, AnsweredBy, PolicySlot, SlotStats, SwapError, SwapReport};
