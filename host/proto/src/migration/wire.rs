//! What the migration core sends, logs and tells its node.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{Migration, Outcome, Refusal, Role};
use crate::ids::{BubbleId, EntityId, Epoch, MemberId, MigrationId};

/// An entity's ownership epoch: a fencing token that rises by one with every committed move
/// of the entity. The owner holds the entity at its current epoch; a move commits it at the
/// next one. Every migration message and log record carries it.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Ownership(pub u64);

impl Ownership {
    /// The epoch the entity is owned at after one more move.
    pub fn next(self) -> Ownership {
        Ownership(self.0.saturating_add(1))
    }
}

impl fmt::Display for Ownership {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "o{}", self.0)
    }
}

/// Why the host, not the policy, turned a migration down or ended it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Fence {
    /// This member cannot reach a quorum of its view (or is not in the view).
    NoQuorum,
    /// The prepare was sent in an older view than the target's.
    StaleView,
    /// The other side is not a member of this member's view.
    NotMember,
    /// The target holds the entity already, or another migration of it is in flight there.
    Conflict,
    /// The target has seen the entity at this ownership epoch or a later one: the prepare is
    /// an old copy.
    Stale,
    /// The entity is not owned here (or is already moving).
    NotOwner,
    /// Source and target are the same member.
    SameMember,
}

/// The target's answer to a prepare.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Vote {
    /// Admitted, and the entity is logged: the target is in doubt until the source decides.
    Admit,
    /// The target's policy refused.
    Refuse(Refusal),
    /// The host refused before asking the policy.
    Fenced(Fence),
}

/// A migration message. The sender is the authenticated connection, never a field; a message
/// names its migration by id, and the receiver pairs it with the sender.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Message {
    /// Source → target: take the entity, owned at `ownership` once committed, if you admit.
    Prepare {
        /// The migration.
        migration: Migration,
        /// The ownership epoch the target will hold the entity at.
        ownership: Ownership,
        /// The view epoch the source sent this in: a target in a newer view refuses it.
        view: Epoch,
        /// The entity's state.
        state: Vec<u8>,
    },
    /// Target → source: the vote. Repeated while the target is in doubt, as a question.
    Vote {
        /// The migration.
        id: MigrationId,
        /// As in the prepare.
        ownership: Ownership,
        /// The answer.
        vote: Vote,
    },
    /// Source → target: the decision is commit (logged at the source).
    Commit {
        /// The migration.
        id: MigrationId,
        /// As in the prepare.
        ownership: Ownership,
    },
    /// Source → target: the decision is abort (or the source knows nothing of the migration,
    /// which means the same: presumed abort).
    Abort {
        /// The migration.
        id: MigrationId,
        /// As in the message it answers.
        ownership: Ownership,
    },
    /// Target → source: the commit is applied and logged; the source may forget it.
    Done {
        /// The migration.
        id: MigrationId,
        /// As in the commit.
        ownership: Ownership,
    },
}

/// A record of the migration core's log: what it must find again after a crash. The driver
/// appends them in order and reports which are durable ([`super::MigrationCore::handle_persisted`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Record {
    /// The core started (again): migration ids from here on carry this number.
    Boot {
        /// Starts counted by this log, from 1.
        boot: u64,
    },
    /// An entity was created here.
    Spawn {
        /// The entity.
        entity: EntityId,
        /// Its bubble.
        bubble: BubbleId,
        /// Its ownership epoch.
        ownership: Ownership,
        /// Its state.
        state: Vec<u8>,
    },
    /// An entity owned here has a new state.
    Update {
        /// The entity.
        entity: EntityId,
        /// The epoch it is owned at.
        ownership: Ownership,
        /// Its state.
        state: Vec<u8>,
    },
    /// Source: the decision is commit. From here the entity is not owned here.
    Commit {
        /// The migration.
        migration: Migration,
        /// The epoch the target owns the entity at.
        ownership: Ownership,
    },
    /// Source: the target confirmed the commit; nothing is left to deliver.
    Delivered {
        /// The migration.
        id: MigrationId,
        /// As in the commit.
        ownership: Ownership,
    },
    /// Target: admitted. The entity's state is here, in doubt until the source decides.
    Prepared {
        /// The migration.
        migration: Migration,
        /// The epoch this member owns the entity at if the source commits.
        ownership: Ownership,
        /// The entity's state.
        state: Vec<u8>,
    },
    /// Target: the commit arrived; the entity is owned here.
    Committed {
        /// The source.
        source: MemberId,
        /// The migration.
        id: MigrationId,
        /// The epoch it is owned at.
        ownership: Ownership,
    },
    /// Target: the abort arrived; the prepared entity is dropped.
    Aborted {
        /// The source.
        source: MemberId,
        /// The migration.
        id: MigrationId,
        /// As in the prepare.
        ownership: Ownership,
    },
    /// An entity this member held or gave away, at this ownership epoch or later: written by
    /// a snapshot ([`super::MigrationCore::snapshot`]) so that a log cut there still refuses
    /// old prepares of entities it no longer holds, and never creates them again.
    Known {
        /// The entity.
        entity: EntityId,
        /// The highest ownership epoch it was held or given away at.
        ownership: Ownership,
    },
}

/// Why a migration ended the way it did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Reason {
    /// Committed, or aborted by the policy's decision after an admitting vote.
    Decided,
    /// The target's policy refused.
    Refused(Refusal),
    /// The host refused or ended it (see [`Fence`]).
    Fenced(Fence),
    /// The policy gave up on a timer while nothing could be committed.
    TimedOut,
    /// Aborted on a view change: the other side left the view, this member did, or the
    /// policy chose to.
    ViewChanged,
    /// The source decided abort (or knew nothing of it: presumed abort).
    SourceAborted,
}

/// What the migration core tells its node.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Event {
    /// An entity is owned here from now on: created, arrived by a commit, or recovered.
    Acquired {
        /// The entity.
        entity: EntityId,
        /// Its bubble.
        bubble: BubbleId,
        /// The epoch it is owned at.
        ownership: Ownership,
    },
    /// An entity is no longer owned here: its move to `to` is committed.
    Released {
        /// The entity.
        entity: EntityId,
        /// The new owner.
        to: MemberId,
        /// The migration.
        id: MigrationId,
    },
    /// A migration ended on this side.
    Ended {
        /// The migration.
        migration: Migration,
        /// This side.
        role: Role,
        /// How.
        outcome: Outcome,
        /// Why.
        reason: Reason,
    },
    /// The policy answered something unsafe; the built-in policy answered instead.
    Overruled {
        /// The policy call.
        call: &'static str,
        /// What was wrong with the answer.
        violation: String,
    },
}
