//! Write luciole coordination policies in Rust.
//!
//! A policy is a WebAssembly component that a luciole node loads and calls at its decision
//! points. With this crate you implement one trait for the kind of policy you write and call one
//! macro:
//!
//! | kind        | trait                    | macro                    |
//! |-------------|--------------------------|--------------------------|
//! | coordinator | [`CoordinatorPolicy`]    | [`export_coordinator!`]  |
//! | placement   | [`PlacementPolicy`]      | [`export_placement!`]    |
//! | migration   | [`MigrationPolicy`]      | [`export_migration!`]    |
//!
//! ```ignore
//! use luciole_guest_sdk::{CoordinatorPolicy, MemberId, PolicyError, View};
//!
//! struct LowestId;
//!
//! impl CoordinatorPolicy for LowestId {
//!     fn choose(view: &View, _current: Option<MemberId>) -> Result<MemberId, PolicyError> {
//!         Ok(view.members[0].id)
//!     }
//! }
//!
//! luciole_guest_sdk::export_coordinator!(LowestId);
//! ```
//!
//! The trait methods are plain Rust functions: test them natively with `cargo test`. Build the
//! component with `cargo build --target wasm32-unknown-unknown --release` and
//! `luciole policy componentize`, then check it with `luciole policy check`.
//!
//! # The rules a policy lives by
//!
//! * **Deterministic.** Every node must reach the same answer from the same inputs. There is no
//!   clock, no file, no network and no randomness except [`View::seed`]. Floating-point results
//!   are deterministic too (the host canonicalises NaNs and gives relaxed SIMD one semantics).
//! * **Stateless.** Everything you need is passed in. The host owns the state (the current
//!   coordinator, the current placement, each migration's phase), so a policy can be swapped
//!   between two calls without losing anything. Coordinator and placement calls each run on a
//!   fresh instance: statics and caches start over at every call.
//! * **Checked.** The host checks every answer. An unsafe answer, a trap, running out of fuel or
//!   memory (64 MiB over all memories by default), handing the host more than 512 KiB at once:
//!   the host answers from its fallback within the same call and quarantines the policy
//!   version. Returning a [`PolicyError`] is the polite way to decline.
//!
//! The API version this crate writes into the component is [`API_VERSION`].

#[allow(unused_extern_crates, reason = "the generated bindings name this crate by its path")]
extern crate self as luciole_guest_sdk;

pub mod arena;
mod bindings;
mod log_api;
mod types;
mod uid;

pub use bindings::{PolicyError, PolicyInfo, Uid};
pub use log_api::{Field, Level, log};
pub use types::{Bounds, Bubble, Member, MemberLabel, View};
pub use uid::{BubbleId, EntityId, MemberId, MigrationId};

#[cfg(all(target_arch = "wasm32", feature = "arena"))]
#[global_allocator]
static ALLOCATOR: arena::Arena = arena::Arena::new();

/// The migration vocabulary (phases, decisions, load).
pub mod migration {
    pub use crate::bindings::migration_types::{
        Admission, Load, Migration, Outcome, PendingAction, Phase, Refusal, Role, Status,
        TimeoutAction,
    };
}

/// The version of the `luciole:policy` WIT package this SDK implements. Written into every
/// component the export macros build, in the custom section `luciole:api-version`.
pub const API_VERSION: &str = "0.1.0";

#[doc(hidden)]
pub mod __private {
    pub use crate::bindings::{coordinator_world, migration_world, placement_world};
    pub use crate::types::bubbles_from_wit;
    pub use wit_bindgen;
}

/// Coordinator choice. Implement it on a unit struct and export it with [`export_coordinator!`].
pub trait CoordinatorPolicy {
    /// Chooses the coordinator of `view`; `current` is the coordinator of the previous view
    /// when it is still a member of `view` (`None` on the first view or after it left). The
    /// answer must be a member of `view`.
    fn choose(view: &View, current: Option<MemberId>) -> Result<MemberId, PolicyError>;
}

/// Bubble placement. Implement it on a unit struct and export it with [`export_placement!`].
pub trait PlacementPolicy {
    /// Places every bubble on a member of `view`: returns, for each bubble in order, the index
    /// of its member in `view.members`. Each bubble's `current` says where it is now.
    fn place(view: &View, bubbles: &[Bubble]) -> Result<Vec<u32>, PolicyError>;
}

/// Migration decisions. Every method has a default that mirrors the host's built-in `standard`
/// policy, so override only the decisions you want to change.
pub trait MigrationPolicy {
    /// Source: should a requested migration start?
    fn on_request(_migration: migration::Migration, load: migration::Load) -> migration::Admission {
        use migration::{Admission, Refusal};
        if load.in_flight < load.in_flight_max {
            Admission::Admit
        } else {
            Admission::Refuse(Refusal::TooBusy)
        }
    }

    /// Target: a prepare arrived; admit or refuse.
    fn on_prepare(_migration: migration::Migration, load: migration::Load) -> migration::Admission {
        use migration::{Admission, Refusal};
        if load.entities >= load.entities_max {
            Admission::Refuse(Refusal::OverCapacity)
        } else if load.in_flight >= load.in_flight_max {
            Admission::Refuse(Refusal::TooBusy)
        } else {
            Admission::Admit
        }
    }

    /// Source: the target voted. After a refusal only `Abort` is allowed.
    fn on_vote(_status: migration::Status, vote: migration::Admission) -> migration::Outcome {
        match vote {
            migration::Admission::Admit => migration::Outcome::Commit,
            migration::Admission::Refuse(_) => migration::Outcome::Abort,
        }
    }

    /// Either side: the current phase's timer fired.
    fn on_timeout(status: migration::Status) -> migration::TimeoutAction {
        use migration::{Phase, TimeoutAction};
        let exhausted = status.attempt >= 3 || status.elapsed_ms >= 300;
        match status.phase {
            Phase::Committed | Phase::Aborted => TimeoutAction::Wait(1_000),
            phase if abort_allowed(status.role, phase) && exhausted && phase != Phase::Aborting => {
                TimeoutAction::Abort
            }
            _ => TimeoutAction::Retry(100),
        }
    }

    /// Either side: a view change; one action per pending migration, in order.
    fn on_view_change(
        _view: &View,
        pending: Vec<migration::Status>,
    ) -> Vec<migration::PendingAction> {
        use migration::{PendingAction, Phase};
        pending
            .iter()
            .map(|s| {
                let undecided = matches!(s.phase, Phase::Requested | Phase::Preparing);
                if undecided && abort_allowed(s.role, s.phase) {
                    PendingAction::Abort
                } else {
                    PendingAction::Keep
                }
            })
            .collect()
    }
}

/// Whether `role` may still abort in `phase`: the source until it decides to commit, the target
/// until it votes. The host refuses an abort anywhere else.
pub fn abort_allowed(role: migration::Role, phase: migration::Phase) -> bool {
    use migration::{Phase, Role};
    matches!(
        (role, phase),
        (Role::Source, Phase::Requested | Phase::Preparing)
            | (Role::Target, Phase::Preparing)
            | (_, Phase::Aborting | Phase::Aborted)
    )
}

/// Exports a [`CoordinatorPolicy`] as the component's coordinator.
///
/// The policy's name and version default to the crate's (`CARGO_PKG_NAME`, `CARGO_PKG_VERSION`);
/// give them explicitly with `export_coordinator!(Type, name = "…", version = "…")`.
#[macro_export]
macro_rules! export_coordinator {
    ($ty:ident) => {
        $crate::export_coordinator!($ty, name = env!("CARGO_PKG_NAME"), version = env!("CARGO_PKG_VERSION"));
    };
    ($ty:ident, name = $name:expr, version = $version:expr) => {
        const _: () = {
            use $crate::__private::coordinator_world as w;
            $crate::__api_version_section!();
            impl w::exports::luciole::policy::coordinator::Guest for $ty {
                fn describe() -> $crate::PolicyInfo {
                    $crate::PolicyInfo { name: $name.into(), version: $version.into() }
                }
                fn choose(
                    view: w::luciole::policy::types::View,
                    current: u32,
                ) -> ::std::result::Result<$crate::MemberId, $crate::PolicyError> {
                    let view = $crate::View::from_wit(view);
                    let current = view.members.get(current as usize).map(|m| m.id);
                    <$ty as $crate::CoordinatorPolicy>::choose(&view, current)
                }
            }
            #[cfg(target_arch = "wasm32")]
            $crate::__private::coordinator_world::__export_coordinator_world!($ty with_types_in $crate::__private::coordinator_world);
        };
    };
}

/// Exports a [`PlacementPolicy`] as the component's placement. Name and version as for
/// [`export_coordinator!`].
#[macro_export]
macro_rules! export_placement {
    ($ty:ident) => {
        $crate::export_placement!($ty, name = env!("CARGO_PKG_NAME"), version = env!("CARGO_PKG_VERSION"));
    };
    ($ty:ident, name = $name:expr, version = $version:expr) => {
        const _: () = {
            use $crate::__private::placement_world as w;
            $crate::__api_version_section!();
            impl w::exports::luciole::policy::placement::Guest for $ty {
                fn describe() -> $crate::PolicyInfo {
                    $crate::PolicyInfo { name: $name.into(), version: $version.into() }
                }
                fn place(
                    view: $crate::__private::coordinator_world::luciole::policy::types::View,
                    bubbles: $crate::__private::coordinator_world::luciole::policy::types::Bubbles,
                ) -> ::std::result::Result<::std::vec::Vec<u32>, $crate::PolicyError> {
                    let view = $crate::View::from_wit(view);
                    let bubbles = $crate::__private::bubbles_from_wit(bubbles);
                    <$ty as $crate::PlacementPolicy>::place(&view, &bubbles)
                }
            }
            #[cfg(target_arch = "wasm32")]
            $crate::__private::placement_world::__export_placement_world!($ty with_types_in $crate::__private::placement_world);
        };
    };
}

/// Exports a [`MigrationPolicy`] as the component's migration policy. Name and version as for
/// [`export_coordinator!`].
#[macro_export]
macro_rules! export_migration {
    ($ty:ident) => {
        $crate::export_migration!($ty, name = env!("CARGO_PKG_NAME"), version = env!("CARGO_PKG_VERSION"));
    };
    ($ty:ident, name = $name:expr, version = $version:expr) => {
        const _: () = {
            use $crate::__private::migration_world as w;
            use $crate::migration as m;
            $crate::__api_version_section!();
            impl w::exports::luciole::policy::migration::Guest for $ty {
                fn describe() -> $crate::PolicyInfo {
                    $crate::PolicyInfo { name: $name.into(), version: $version.into() }
                }
                fn on_request(migration: m::Migration, load: m::Load) -> m::Admission {
                    <$ty as $crate::MigrationPolicy>::on_request(migration, load)
                }
                fn on_prepare(migration: m::Migration, load: m::Load) -> m::Admission {
                    <$ty as $crate::MigrationPolicy>::on_prepare(migration, load)
                }
                fn on_vote(status: m::Status, vote: m::Admission) -> m::Outcome {
                    <$ty as $crate::MigrationPolicy>::on_vote(status, vote)
                }
                fn on_timeout(status: m::Status) -> m::TimeoutAction {
                    <$ty as $crate::MigrationPolicy>::on_timeout(status)
                }
                fn on_view_change(
                    view: $crate::__private::coordinator_world::luciole::policy::types::View,
                    pending: ::std::vec::Vec<m::Status>,
                ) -> ::std::vec::Vec<m::PendingAction> {
                    <$ty as $crate::MigrationPolicy>::on_view_change(&$crate::View::from_wit(view), pending)
                }
            }
            #[cfg(target_arch = "wasm32")]
            $crate::__private::migration_world::__export_migration_world!($ty with_types_in $crate::__private::migration_world);
        };
    };
}

/// Writes the API version into the custom section `luciole:api-version`, which the host reads
/// before compiling. (The policy kind needs no section: the export names carry it.)
#[doc(hidden)]
#[macro_export]
macro_rules! __api_version_section {
    () => {
        #[cfg(target_arch = "wasm32")]
        #[unsafe(link_section = "luciole:api-version")]
        #[used]
        static __LUCIOLE_API_VERSION: [u8; 5] = *b"0.1.0";
    };
}
