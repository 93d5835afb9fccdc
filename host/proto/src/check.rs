//! Safety checks on policy outputs. The host is the only trusted party: every answer a policy
//! gives passes through one of these before it is used, whatever language the policy is in.
//!
//! A failed check is a [`Violation`]; the host quarantines the policy version that gave it and
//! answers from its fallback instead.

use std::collections::HashMap;

use crate::ids::{BubbleId, MemberId};
use crate::limits::{MIGRATION_DELAY_MS_MAX, MIGRATION_DELAY_MS_MIN};
use crate::migration::{
    Admission, Load, Outcome, PendingAction, Phase, Role, Status, TimeoutAction,
};
use crate::placement::{Assignment, Bubble};
use crate::view::View;

/// A policy output that breaks a safety invariant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    /// The chosen coordinator is not in the view.
    #[error("coordinator {0} is not a member of the view")]
    CoordinatorNotInView(MemberId),
    /// A bubble is placed on a member outside the view.
    #[error("bubble {bubble} placed on {member}, which is not a member of the view")]
    PlacedOutsideView {
        /// The bubble.
        bubble: BubbleId,
        /// The member it was placed on.
        member: MemberId,
    },
    /// A bubble is placed twice.
    #[error("bubble {0} placed more than once")]
    PlacedTwice(BubbleId),
    /// A bubble that does not exist is placed.
    #[error("bubble {0} placed but does not exist")]
    UnknownBubble(BubbleId),
    /// A bubble is not placed.
    #[error("{missing} bubble(s) left unplaced, first {first}")]
    Unplaced {
        /// How many.
        missing: usize,
        /// The lowest id among them.
        first: BubbleId,
    },
    /// Admitting would break a host limit.
    #[error("admitted past a host limit ({what})")]
    AdmittedPastLimit {
        /// Which limit.
        what: &'static str,
    },
    /// Commit after the target refused.
    #[error("commit after the target refused")]
    CommitAfterRefusal,
    /// Abort in a phase where the migration may already be committed.
    #[error("abort is not allowed for the {role:?} in phase {phase:?}")]
    AbortNotAllowed {
        /// This node's side.
        role: Role,
        /// The phase.
        phase: Phase,
    },
    /// A delay outside the allowed range.
    #[error("delay of {0} ms is outside 1..=60000 ms")]
    DelayOutOfRange(u32),
    /// Not one member index per bubble.
    #[error("{got} member indices for {want} bubbles")]
    WrongPlacementLength {
        /// Indices given.
        got: usize,
        /// Bubbles.
        want: usize,
    },
    /// A member index past the end of the view.
    #[error("bubble {bubble} placed on member index {index}, the view has {members} members")]
    NoSuchMember {
        /// The bubble.
        bubble: BubbleId,
        /// The index given.
        index: u32,
        /// Members in the view.
        members: usize,
    },
    /// A bubble placed on a member of capacity zero while some member has capacity: zero
    /// hosts nothing (unless every member has zero, when capacity says nothing).
    #[error("bubble {bubble} placed on {member}, which has capacity 0")]
    PlacedOnZeroCapacity {
        /// The bubble.
        bubble: BubbleId,
        /// The member it was placed on.
        member: MemberId,
    },
    /// Not one answer per pending migration.
    #[error("{got} actions for {want} pending migrations")]
    WrongActionCount {
        /// Answers given.
        got: usize,
        /// Answers wanted.
        want: usize,
    },
}

/// The coordinator must be a member of the view.
pub fn coordinator(view: &View, chosen: MemberId) -> Result<MemberId, Violation> {
    if view.contains(chosen) { Ok(chosen) } else { Err(Violation::CoordinatorNotInView(chosen)) }
}

/// Every bubble exactly once, each on a member of the view, nothing else. Returns the placement
/// sorted by bubble id.
///
/// `bubbles` must be sorted by id and unique (the host builds it that way).
pub fn placement(
    view: &View,
    bubbles: &[Bubble],
    mut placed: Vec<Assignment>,
) -> Result<Vec<Assignment>, Violation> {
    debug_assert!(bubbles.windows(2).all(|w| w[0].id < w[1].id), "bubbles must be sorted");
    placed.sort_unstable_by_key(|a| a.bubble);
    if let Some(w) = placed.windows(2).find(|w| w[0].bubble == w[1].bubble) {
        return Err(Violation::PlacedTwice(w[0].bubble));
    }
    for a in &placed {
        if bubbles.binary_search_by_key(&a.bubble, |b| b.id).is_err() {
            return Err(Violation::UnknownBubble(a.bubble));
        }
        match view.member(a.member) {
            None => {
                return Err(Violation::PlacedOutsideView { bubble: a.bubble, member: a.member });
            }
            Some(m) if m.capacity == 0 && hosts_by_capacity(view) => {
                return Err(Violation::PlacedOnZeroCapacity { bubble: a.bubble, member: a.member });
            }
            Some(_) => {}
        }
    }
    // Sorted, unique and each one known: equal lengths means every bubble is placed.
    if placed.len() != bubbles.len() {
        let first = bubbles
            .iter()
            .map(|b| b.id)
            .find(|id| placed.binary_search_by_key(id, |a| a.bubble).is_err())
            .expect("fewer placed than bubbles, all placed known: one is missing");
        return Err(Violation::Unplaced { missing: bubbles.len() - placed.len(), first });
    }
    Ok(placed)
}

/// A placement given as one member index per bubble (the policy contract's form): exactly one
/// entry per bubble, each naming a member of the view. Returns the assignments in bubble order.
/// Every bubble is placed exactly once by construction.
pub fn placement_indices(
    view: &View,
    bubbles: &[Bubble],
    indices: &[u32],
) -> Result<Vec<Assignment>, Violation> {
    if indices.len() != bubbles.len() {
        return Err(Violation::WrongPlacementLength { got: indices.len(), want: bubbles.len() });
    }
    let members = view.members();
    let by_capacity = hosts_by_capacity(view);
    bubbles
        .iter()
        .zip(indices)
        .map(|(b, &index)| match members.get(index as usize) {
            Some(m) if m.capacity == 0 && by_capacity => {
                Err(Violation::PlacedOnZeroCapacity { bubble: b.id, member: m.id })
            }
            Some(m) => Ok(Assignment { bubble: b.id, member: m.id }),
            None => Err(Violation::NoSuchMember { bubble: b.id, index, members: members.len() }),
        })
        .collect()
}

/// Whether capacity decides who may host: some member has capacity above zero, so members of
/// capacity zero host nothing. When every member has zero, any member may host.
fn hosts_by_capacity(view: &View) -> bool {
    view.members().iter().any(|m| m.capacity > 0)
}

/// Source, on a request: starting a migration past the in-flight limit is refused.
pub fn request(load: &Load, admission: Admission) -> Result<Admission, Violation> {
    if admission == Admission::Admit && !load.migration_fits() {
        return Err(Violation::AdmittedPastLimit { what: "in-flight migrations" });
    }
    Ok(admission)
}

/// Target, on a prepare: admitting past the entity or in-flight limit is refused.
pub fn prepare(load: &Load, admission: Admission) -> Result<Admission, Violation> {
    if admission == Admission::Admit {
        if !load.entity_fits() {
            return Err(Violation::AdmittedPastLimit { what: "entities" });
        }
        if !load.migration_fits() {
            return Err(Violation::AdmittedPastLimit { what: "in-flight migrations" });
        }
    }
    Ok(admission)
}

/// Source, after the vote: no commit after a refusal.
pub fn vote(vote: Admission, outcome: Outcome) -> Result<Outcome, Violation> {
    match (vote, outcome) {
        (Admission::Refuse(_), Outcome::Commit) => Err(Violation::CommitAfterRefusal),
        _ => Ok(outcome),
    }
}

/// Either side, on a timer: delays in range, abort only while nothing can be committed.
pub fn timeout(status: &Status, action: TimeoutAction) -> Result<TimeoutAction, Violation> {
    match action {
        TimeoutAction::Retry(ms) | TimeoutAction::Wait(ms) => {
            if (MIGRATION_DELAY_MS_MIN..=MIGRATION_DELAY_MS_MAX).contains(&ms) {
                Ok(action)
            } else {
                Err(Violation::DelayOutOfRange(ms))
            }
        }
        TimeoutAction::Abort => abort(status).map(|()| action),
    }
}

/// Either side, on a view change: one action per pending migration, aborts only where allowed.
pub fn pending(
    pending: &[Status],
    actions: Vec<PendingAction>,
) -> Result<Vec<PendingAction>, Violation> {
    if actions.len() != pending.len() {
        return Err(Violation::WrongActionCount { got: actions.len(), want: pending.len() });
    }
    for (status, action) in pending.iter().zip(&actions) {
        if *action == PendingAction::Abort {
            abort(status)?;
        }
    }
    Ok(actions)
}

fn abort(status: &Status) -> Result<(), Violation> {
    if status.phase.abort_allowed(status.role) {
        Ok(())
    } else {
        Err(Violation::AbortNotAllowed { role: status.role, phase: status.phase })
    }
}

/// Counts bubbles per member in a placement (used by status output and tests).
pub fn bubbles_per_member(placed: &[Assignment]) -> HashMap<MemberId, usize> {
    let mut counts = HashMap::new();
    for a in placed {
        *counts.entry(a.member).or_default() += 1;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{EntityId, Epoch, MigrationId};
    use crate::migration::{Migration, Refusal};
    use crate::view::Member;

    fn view(ids: &[u128]) -> View {
        View::new(Epoch(1), ids.iter().map(|&i| Member::new(MemberId(i), 1)).collect()).unwrap()
    }

    fn bubbles(n: u64) -> Vec<Bubble> {
        (0..n).map(|i| Bubble::new(BubbleId(i))).collect()
    }

    fn at(bubble: u64, member: u128) -> Assignment {
        Assignment { bubble: BubbleId(bubble), member: MemberId(member) }
    }

    #[test]
    fn a_coordinator_outside_the_view_is_a_violation() {
        let v = view(&[1, 2]);
        assert_eq!(coordinator(&v, MemberId(2)), Ok(MemberId(2)));
        assert_eq!(coordinator(&v, MemberId(3)), Err(Violation::CoordinatorNotInView(MemberId(3))));
    }

    #[test]
    fn placement_must_cover_every_bubble_exactly_once_inside_the_view() {
        let v = view(&[1, 2]);
        let b = bubbles(3);
        assert!(placement(&v, &b, vec![at(2, 1), at(0, 2), at(1, 1)]).is_ok());
        assert_eq!(
            placement(&v, &b, vec![at(0, 1), at(1, 1)]),
            Err(Violation::Unplaced { missing: 1, first: BubbleId(2) })
        );
        assert_eq!(
            placement(&v, &b, vec![at(0, 1), at(1, 1), at(1, 2), at(2, 2)]),
            Err(Violation::PlacedTwice(BubbleId(1)))
        );
        assert_eq!(
            placement(&v, &b, vec![at(0, 1), at(1, 1), at(2, 9)]),
            Err(Violation::PlacedOutsideView { bubble: BubbleId(2), member: MemberId(9) })
        );
        assert_eq!(
            placement(&v, &b, vec![at(0, 1), at(1, 1), at(2, 1), at(7, 1)]),
            Err(Violation::UnknownBubble(BubbleId(7)))
        );
    }

    #[test]
    fn members_of_capacity_zero_host_nothing_unless_every_member_has_zero() {
        let mixed =
            View::new(Epoch(1), vec![Member::new(MemberId(1), 0), Member::new(MemberId(2), 10)])
                .unwrap();
        let b = bubbles(2);
        let zero = Violation::PlacedOnZeroCapacity { bubble: BubbleId(1), member: MemberId(1) };
        assert_eq!(placement_indices(&mixed, &b, &[1, 0]), Err(zero.clone()));
        assert_eq!(placement(&mixed, &b, vec![at(0, 2), at(1, 1)]), Err(zero));
        assert!(placement_indices(&mixed, &b, &[1, 1]).is_ok());
        let all_zero =
            View::new(Epoch(1), vec![Member::new(MemberId(1), 0), Member::new(MemberId(2), 0)])
                .unwrap();
        assert!(placement_indices(&all_zero, &b, &[1, 0]).is_ok());
        // The builtin follows the same rule.
        assert!(placement(&mixed, &b, crate::builtin::placement(&mixed, &b)).is_ok());
    }

    #[test]
    fn placement_by_index_needs_one_valid_index_per_bubble() {
        let v = view(&[1, 2]);
        let b = bubbles(3);
        assert_eq!(
            placement_indices(&v, &b, &[1, 0, 1]).unwrap(),
            vec![at(0, 2), at(1, 1), at(2, 2)]
        );
        assert_eq!(
            placement_indices(&v, &b, &[0, 0]),
            Err(Violation::WrongPlacementLength { got: 2, want: 3 })
        );
        assert_eq!(
            placement_indices(&v, &b, &[0, 2, 0]),
            Err(Violation::NoSuchMember { bubble: BubbleId(1), index: 2, members: 2 })
        );
    }

    fn status(role: Role, phase: Phase) -> Status {
        let m = Migration {
            id: MigrationId(1),
            entity: EntityId(2),
            source: MemberId(1),
            target: MemberId(2),
            source_bubble: BubbleId(0),
            target_bubble: BubbleId(1),
            epoch: Epoch(1),
        };
        Status { migration: m, role, phase, attempt: 1, elapsed_ms: 0 }
    }

    #[test]
    fn abort_is_refused_once_the_migration_may_be_committed() {
        use Phase::*;
        for (role, phase, ok) in [
            (Role::Source, Requested, true),
            (Role::Source, Preparing, true),
            (Role::Source, Committing, false),
            (Role::Source, Committed, false),
            (Role::Target, Preparing, true),
            (Role::Target, Prepared, false),
            (Role::Target, Committed, false),
            (Role::Target, Aborting, true),
        ] {
            let got = timeout(&status(role, phase), TimeoutAction::Abort);
            assert_eq!(got.is_ok(), ok, "{role:?} {phase:?}");
            let got = pending(&[status(role, phase)], vec![PendingAction::Abort]);
            assert_eq!(got.is_ok(), ok, "{role:?} {phase:?} on view change");
        }
    }

    #[test]
    fn delays_and_action_counts_are_bounded() {
        let s = status(Role::Source, Phase::Preparing);
        assert!(timeout(&s, TimeoutAction::Retry(100)).is_ok());
        assert_eq!(timeout(&s, TimeoutAction::Wait(0)), Err(Violation::DelayOutOfRange(0)));
        assert!(timeout(&s, TimeoutAction::Retry(60_001)).is_err());
        assert!(pending(&[s, s], vec![PendingAction::Keep]).is_err());
    }

    #[test]
    fn admission_past_host_limits_and_commit_after_refusal_are_violations() {
        let full = Load { entities: 10, entities_max: 10, in_flight: 0, in_flight_max: 4 };
        assert!(prepare(&full, Admission::Admit).is_err());
        assert!(prepare(&full, Admission::Refuse(Refusal::OverCapacity)).is_ok());
        let busy = Load { entities: 0, entities_max: 10, in_flight: 4, in_flight_max: 4 };
        assert!(request(&busy, Admission::Admit).is_err());
        assert!(vote(Admission::Refuse(Refusal::TooBusy), Outcome::Commit).is_err());
        assert!(vote(Admission::Refuse(Refusal::TooBusy), Outcome::Abort).is_ok());
        assert!(
            vote(Admission::Admit, Outcome::Abort).is_ok(),
            "the source may always abort before commit"
        );
    }
}
