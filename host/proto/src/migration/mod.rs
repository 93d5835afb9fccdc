//! The vocabulary of migration decisions, shared by the host's migration core, the policy
//! contract and the safety checks.

use serde::{Deserialize, Serialize};

mod engine;
mod policy;
mod wire;

pub use engine::{FlightKey, MigrationConfig, MigrationCore, Owned};
pub use policy::{MigrationPolicy, Standard};
pub use wire::{Event, Fence, Message, Ownership, Reason, Record, Vote};

use crate::ids::{BubbleId, EntityId, Epoch, MemberId, MigrationId};

/// This node's side of a migration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Role {
    /// Owns the entity and runs the commit.
    Source,
    /// Is asked to take the entity.
    Target,
}

/// Where a migration stands on this node. See the WIT contract for the meaning of each phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Phase {
    /// Source: asked to move, nothing sent.
    Requested,
    /// Source: prepare sent. Target: prepare received, not voted.
    Preparing,
    /// Target: voted to admit; in doubt until the source decides.
    Prepared,
    /// Source: commit decided and logged; being delivered.
    Committing,
    /// Commit complete on this side.
    Committed,
    /// Abort decided; being delivered.
    Aborting,
    /// Abort complete on this side.
    Aborted,
}

impl Phase {
    /// Whether this side may still decide to abort: nothing can have been committed yet.
    ///
    /// The source may abort until it decides to commit; the target only until it votes (after a
    /// yes vote it is in doubt and must learn the outcome from the source). Re-deciding an abort
    /// that is already under way is harmless.
    pub fn abort_allowed(self, role: Role) -> bool {
        matches!(
            (role, self),
            (Role::Source, Phase::Requested | Phase::Preparing)
                | (Role::Target, Phase::Preparing)
                | (_, Phase::Aborting | Phase::Aborted)
        )
    }
}

/// The fixed facts of a migration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Migration {
    /// Unique per attempt.
    pub id: MigrationId,
    /// The entity being moved.
    pub entity: EntityId,
    /// Current owner.
    pub source: MemberId,
    /// Prospective owner.
    pub target: MemberId,
    /// Bubble the entity leaves.
    pub source_bubble: BubbleId,
    /// Bubble the entity enters.
    pub target_bubble: BubbleId,
    /// View epoch the migration started in.
    pub epoch: Epoch,
}

/// A migration and where it stands on this node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// The migration.
    pub migration: Migration,
    /// This node's side.
    pub role: Role,
    /// This node's phase.
    pub phase: Phase,
    /// Attempts so far in this phase, from 1.
    pub attempt: u32,
    /// Milliseconds since the migration started here.
    pub elapsed_ms: u64,
}

/// This node's load as the host counts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Load {
    /// Entities owned now.
    pub entities: u32,
    /// Host limit on entities owned.
    pub entities_max: u32,
    /// Migrations in progress, both roles.
    pub in_flight: u32,
    /// Host limit on migrations in progress.
    pub in_flight_max: u32,
}

impl Load {
    /// Whether one more entity fits under the host limit.
    pub fn entity_fits(&self) -> bool {
        self.entities < self.entities_max
    }
    /// Whether one more migration fits under the host limit.
    pub fn migration_fits(&self) -> bool {
        self.in_flight < self.in_flight_max
    }
}

/// Why a migration is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Refusal {
    /// Too many entities.
    OverCapacity,
    /// Too many migrations in progress.
    TooBusy,
    /// Draining; takes nothing new.
    Draining,
    /// The policy's own reason.
    Declined,
}

/// Whether to go ahead.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Admission {
    /// Go ahead.
    Admit,
    /// Do not.
    Refuse(Refusal),
}

/// The source's decision after the vote.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Outcome {
    /// Make the move final.
    Commit,
    /// Abandon it.
    Abort,
}

/// What to do when a phase timer fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TimeoutAction {
    /// Resend after this many milliseconds.
    Retry(u32),
    /// Fire again after this many milliseconds.
    Wait(u32),
    /// Give up (only while nothing can have been committed).
    Abort,
}

/// What to do with a pending migration on a view change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PendingAction {
    /// Keep going.
    Keep,
    /// Abort (only while nothing can have been committed).
    Abort,
}

#[cfg(test)]
mod tests;
