//! Sans-IO cores of luciole.
//!
//! This crate decides; it never performs. It holds the identifiers and time newtypes, the named
//! limits, the membership view, the safety checks that every policy output goes through, and the
//! built-in policies the host falls back to. It has no dependency on tokio, sockets, files,
//! clocks, wasm runtimes or thread-local randomness: time and seeds are parameters. That is what
//! lets the deterministic simulator run the same code the node runs.
//!
//! The trust boundary: everything a policy component returns is checked here
//! ([`check`]) before the host acts on it; a policy can make the cluster slower, never wrong.

pub mod builtin;
pub mod check;
pub mod core;
pub mod ids;
pub mod limits;
pub mod membership;
pub mod migration;
pub mod order;
pub mod placement;
pub mod rand;
pub mod skew;
pub mod view;
pub mod wal;
pub mod wire;
pub mod world;

pub use ids::{BubbleId, EntityId, Epoch, MemberId, MigrationId, ViewId};
pub use view::{Label, Member, MemberInfo, View, ViewError};
