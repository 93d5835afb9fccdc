//! Migration `standard`: the reference two-phase-commit decisions, identical to the host's
//! built-in default.
//!
//! * request (source): start unless the node runs too many migrations;
//! * prepare (target): admit while under the entity and in-flight limits;
//! * vote (source): commit exactly when the target admitted;
//! * timeout: resend every 100 ms; give up after 3 attempts or 300 ms, but only while nothing
//!   can have been committed (the source before its commit decision, the target before it
//!   votes). Past that point it never gives up: a slow peer is not a failed one;
//! * view change: presumed abort of everything not yet decided; the rest keeps going.
//!
//! Every decision is the SDK's default, so the whole policy is one line. Override a method of
//! [`MigrationPolicy`] to change one decision.

use luciole_guest_sdk::MigrationPolicy;

/// The policy.
#[derive(Debug)]
pub struct Standard;

impl MigrationPolicy for Standard {}

luciole_guest_sdk::export_migration!(
    Standard,
    name = "standard",
    version = env!("CARGO_PKG_VERSION")
);

#[cfg(test)]
mod tests {
    use super::*;
    use luciole_guest_sdk::Uid;
    use luciole_guest_sdk::migration::*;

    fn status(role: Role, phase: Phase, attempt: u32, elapsed_ms: u64) -> Status {
        let id = Uid { hi: 0, lo: 1 };
        let migration = Migration {
            id,
            entity: id,
            source: id,
            target: Uid { hi: 0, lo: 2 },
            source_bubble: 0,
            target_bubble: 1,
            epoch: 1,
        };
        Status { migration, role, phase, attempt, elapsed_ms }
    }

    #[test]
    fn a_slow_commit_is_retried_never_aborted() {
        let s = status(Role::Source, Phase::Committing, 50, 10_000);
        assert_eq!(Standard::on_timeout(s), TimeoutAction::Retry(100));
        let t = status(Role::Target, Phase::Prepared, 50, 10_000);
        assert_eq!(
            Standard::on_timeout(t),
            TimeoutAction::Retry(100),
            "in doubt: ask, never abort"
        );
    }

    #[test]
    fn an_undecided_migration_is_aborted_after_three_attempts_or_300_ms() {
        assert_eq!(
            Standard::on_timeout(status(Role::Source, Phase::Preparing, 1, 100)),
            TimeoutAction::Retry(100)
        );
        assert_eq!(
            Standard::on_timeout(status(Role::Source, Phase::Preparing, 3, 100)),
            TimeoutAction::Abort
        );
        assert_eq!(
            Standard::on_timeout(status(Role::Source, Phase::Preparing, 1, 300)),
            TimeoutAction::Abort
        );
    }

    #[test]
    fn a_refused_vote_aborts_and_an_admitted_one_commits() {
        let s = status(Role::Source, Phase::Preparing, 1, 0);
        assert_eq!(Standard::on_vote(s, Admission::Refuse(Refusal::TooBusy)), Outcome::Abort);
        assert_eq!(Standard::on_vote(s, Admission::Admit), Outcome::Commit);
    }
}
