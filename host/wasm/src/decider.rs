//! The policy slot as the migration core asks it: [`MigrationDecider`] implements the core's
//! [`MigrationPolicy`] trait over a shared [`PolicySlot`], so the same core runs with a wasm
//! policy (falling back, quarantining and hot-swapping as every slot does) or the built-in one.

use std::sync::Arc;

use luciole_proto::View;
use luciole_proto::migration::{
    Admission, Load, Migration as M, MigrationPolicy, Outcome, PendingAction, Status, TimeoutAction,
};

use crate::kinds::{Migration, PolicyView};
use crate::slot::PolicySlot;

/// A migration policy slot, shared with whoever swaps it. Every answer is already checked and
/// safe (the slot falls back within the call); faults are counted in the slot's stats.
#[derive(Clone, Debug)]
pub struct MigrationDecider(pub Arc<PolicySlot<Migration>>);

impl MigrationPolicy for MigrationDecider {
    fn on_request(&mut self, migration: &M, load: &Load) -> Admission {
        self.0.on_request(migration, load).value
    }

    fn on_prepare(&mut self, migration: &M, load: &Load) -> Admission {
        self.0.on_prepare(migration, load).value
    }

    fn on_vote(&mut self, status: &Status, vote: Admission) -> Outcome {
        self.0.on_vote(status, vote).value
    }

    fn on_timeout(&mut self, status: &Status) -> TimeoutAction {
        self.0.on_timeout(status).value
    }

    fn on_view_change(&mut self, view: &View, pending: &[Status]) -> Vec<PendingAction> {
        self.0.on_view_change(&PolicyView::new(view.clone()), pending).value
    }
}
