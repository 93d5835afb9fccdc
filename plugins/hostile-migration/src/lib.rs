//! Hostile test policy: never deploy. Exists so the tests can show the host survives it and
//! answers from the fallback within the same call.

use luciole_guest_sdk::MigrationPolicy;
use luciole_guest_sdk::migration::{Admission, Load, Migration, Outcome, Status, TimeoutAction};

/// Decides whatever is unsafe in the state it is asked about.
#[derive(Debug)]
pub struct Reckless;

impl MigrationPolicy for Reckless {
    fn on_prepare(_migration: Migration, _load: Load) -> Admission {
        Admission::Admit
    }
    fn on_vote(_status: Status, _vote: Admission) -> Outcome {
        Outcome::Commit
    }
    fn on_timeout(_status: Status) -> TimeoutAction {
        TimeoutAction::Abort
    }
}

luciole_guest_sdk::export_migration!(Reckless, name = "hostile-migration", version = "0.1.0");
