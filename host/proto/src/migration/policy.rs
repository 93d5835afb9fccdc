//! How the migration core asks for decisions: a trait that the built-in policy, a wasm policy
//! (the host's policy slot) or a test double implements. The core checks every answer
//! ([`crate::check`]) and takes the built-in answer instead of an unsafe one, so that whatever
//! a policy says, only safe transitions happen.

use super::{Admission, Load, Migration, Outcome, PendingAction, Status, TimeoutAction};
use crate::builtin;
use crate::view::View;

/// The decisions inside a migration, as the core asks for them. Calls are node-local and may
/// be made for every migration: they must be cheap.
pub trait MigrationPolicy {
    /// Source: whether to start a requested migration.
    fn on_request(&mut self, migration: &Migration, load: &Load) -> Admission;
    /// Target: whether to admit a prepare.
    fn on_prepare(&mut self, migration: &Migration, load: &Load) -> Admission;
    /// Source: commit or abort after an admitting vote.
    fn on_vote(&mut self, status: &Status, vote: Admission) -> Outcome;
    /// Either side: the phase timer fired.
    fn on_timeout(&mut self, status: &Status) -> TimeoutAction;
    /// Either side: one action per pending migration (both participants still in `view`).
    fn on_view_change(&mut self, view: &View, pending: &[Status]) -> Vec<PendingAction>;
}

/// The built-in `standard` policy ([`crate::builtin`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Standard;

impl MigrationPolicy for Standard {
    fn on_request(&mut self, _: &Migration, load: &Load) -> Admission {
        builtin::on_request(load)
    }

    fn on_prepare(&mut self, _: &Migration, load: &Load) -> Admission {
        builtin::on_prepare(load)
    }

    fn on_vote(&mut self, _: &Status, vote: Admission) -> Outcome {
        builtin::on_vote(vote)
    }

    fn on_timeout(&mut self, status: &Status) -> TimeoutAction {
        builtin::on_timeout(status)
    }

    fn on_view_change(&mut self, _: &View, pending: &[Status]) -> Vec<PendingAction> {
        builtin::on_view_change(pending)
    }
}

impl<P: MigrationPolicy + ?Sized> MigrationPolicy for Box<P> {
    fn on_request(&mut self, migration: &Migration, load: &Load) -> Admission {
        (**self).on_request(migration, load)
    }

    fn on_prepare(&mut self, migration: &Migration, load: &Load) -> Admission {
        (**self).on_prepare(migration, load)
    }

    fn on_vote(&mut self, status: &Status, vote: Admission) -> Outcome {
        (**self).on_vote(status, vote)
    }

    fn on_timeout(&mut self, status: &Status) -> TimeoutAction {
        (**self).on_timeout(status)
    }

    fn on_view_change(&mut self, view: &View, pending: &[Status]) -> Vec<PendingAction> {
        (**self).on_view_change(view, pending)
    }
}
