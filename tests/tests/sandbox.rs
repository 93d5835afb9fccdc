//! Hostile policies: each must be survived, answered from the fallback within the same call,
//! and quarantined. The hostile plugins behave on tiny views (so they pass the swap's smoke
//! call) and go bad on real ones, like a bug that shows only on larger inputs.

use std::sync::atomic::Ordering::Relaxed;

use luciole_proto::check::Violation;
use luciole_proto::{builtin, check};
use luciole_tests::{bubbles, engine, load, view};
use luciole_wasm::{AnsweredBy, Coordinator, FaultReason, LoadError, Placement, PolicySlot};

/// Swaps `name` in as the only version, makes one call on a 5-member view, and checks that the
/// builtin answered in the same call and `name` is quarantined. Returns the fault.
fn coordinator_fault(name: &str) -> FaultReason {
    let engine = engine();
    let slot = PolicySlot::<Coordinator>::new();
    slot.swap(&load(&engine, name)).expect("passes the smoke call");
    let v = view(1, 5);
    let answer = slot.choose(&v, None);
    assert_eq!(answer.value, builtin::coordinator(&v), "{name}: the fallback answers");
    assert_eq!(answer.by, AnsweredBy::Builtin);
    assert_eq!(answer.faults.len(), 1);
    assert!(slot.active().is_none(), "{name} must leave the lineup");
    assert_eq!(slot.quarantined().len(), 1, "{name} must be quarantined");
    assert_eq!(slot.stats().faults.load(Relaxed), 1);
    answer.faults[0].reason.clone()
}

#[test]
fn an_endless_loop_runs_out_of_fuel_and_the_builtin_answers() {
    assert_eq!(coordinator_fault("hostile-loop"), FaultReason::OutOfFuel);
}

#[test]
fn a_memory_bomb_hits_the_cap_and_the_builtin_answers() {
    assert_eq!(coordinator_fault("hostile-memory"), FaultReason::MemoryLimit);
}

#[test]
fn a_panic_traps_and_the_builtin_answers() {
    let reason = coordinator_fault("hostile-trap");
    assert!(matches!(reason, FaultReason::Trap(_)), "{reason:?}");
}

#[test]
fn a_coordinator_outside_the_view_fails_the_smoke_call_and_the_old_version_stays() {
    let engine = engine();
    let slot = PolicySlot::<Coordinator>::new();
    slot.swap(&load(&engine, "coordinator-lowest-id")).unwrap();
    let err = slot.swap(&load(&engine, "hostile-outsider")).expect_err("must be refused");
    assert!(
        matches!(&err, luciole_wasm::SwapError::Smoke(f)
            if matches!(f.reason, FaultReason::Violation(Violation::CoordinatorNotInView(_)))),
        "{err}"
    );
    assert_eq!(slot.active().unwrap().name, "lowest-id", "old version kept");
    let v = view(1, 5);
    assert!(matches!(slot.choose(&v, None).by, AnsweredBy::Active(_)));
}

#[test]
fn the_last_good_version_answers_when_the_active_one_faults_and_it_is_not_retried() {
    let engine = engine();
    let slot = PolicySlot::<Coordinator>::new();
    slot.swap(&load(&engine, "coordinator-sticky")).unwrap();
    slot.swap(&load(&engine, "hostile-loop")).unwrap();
    let v = view(1, 7);
    let current = v.members()[3].id;
    let answer = slot.choose(&v, Some(current));
    // `sticky` keeps the current coordinator; the builtin would have chosen the lowest id.
    assert_eq!(answer.value, current, "answered by the last good version, not the builtin");
    assert!(matches!(&answer.by, AnsweredBy::LastGood(m) if m.name == "sticky"));
    assert_eq!(answer.faults[0].reason, FaultReason::OutOfFuel);
    let again = slot.choose(&v, Some(current));
    assert!(again.faults.is_empty(), "a quarantined version is not retried");
    assert!(matches!(&again.by, AnsweredBy::Active(m) if m.name == "sticky"));
    assert_eq!(slot.stats().faults.load(Relaxed), 1);
    // The node remembers it: loading the same bytes again is refused before compiling.
    let err = engine.load(&luciole_tests::component("hostile-loop")).unwrap_err();
    assert!(matches!(err, LoadError::RefusedBefore(ref r) if r.contains("quarantined")), "{err}");
}

#[test]
fn a_policy_that_declines_is_answered_by_the_builtin_and_not_quarantined() {
    let engine = engine();
    let slot = PolicySlot::<Coordinator>::new();
    slot.swap(&load(&engine, "hostile-decline")).unwrap();
    let v = view(1, 5);
    for _ in 0..3 {
        let answer = slot.choose(&v, None);
        assert_eq!(answer.by, AnsweredBy::Builtin);
        assert!(answer.faults.is_empty());
        assert_eq!(answer.declined.len(), 1);
        assert!(answer.declined[0].1.contains("no opinion"), "{:?}", answer.declined);
    }
    assert_eq!(slot.active().unwrap().name, "hostile-decline", "declining is not a fault");
    assert!(slot.quarantined().is_empty());
    assert_eq!(slot.stats().declined.load(Relaxed), 3);
}

fn placement_fault(name: &str) -> FaultReason {
    let engine = engine();
    let slot = PolicySlot::<Placement>::new();
    slot.swap(&load(&engine, name)).expect("passes the smoke call");
    let v = view(1, 10);
    let b = bubbles(200);
    let answer = slot.place(&v, &b, &[]);
    assert_eq!(answer.by, AnsweredBy::Builtin, "{name}");
    assert_eq!(answer.value, builtin::placement(&v, &b));
    check::placement(&v, &b, answer.value).expect("the fallback answer is safe");
    assert!(slot.active().is_none(), "{name} must leave the lineup");
    answer.faults[0].reason.clone()
}

#[test]
fn a_placement_that_leaves_a_bubble_out_is_refused() {
    let reason = placement_fault("hostile-unplaced");
    let want = Violation::WrongPlacementLength { got: 199, want: 200 };
    assert_eq!(reason, FaultReason::Violation(want));
}

#[test]
fn a_placement_on_a_member_outside_the_view_is_refused() {
    // (Placing a bubble twice cannot be expressed: the contract answers one member per bubble.)
    let reason = placement_fault("hostile-bad-index");
    let want =
        Violation::NoSuchMember { bubble: luciole_proto::BubbleId(199), index: 10, members: 10 };
    assert_eq!(reason, FaultReason::Violation(want));
}

#[test]
fn a_huge_placement_is_refused_before_it_is_copied() {
    // 2,000,000 indices (8 MB) are more than one answer may carry into the host.
    let reason = placement_fault("hostile-huge");
    assert_eq!(reason, FaultReason::TooMuchData);
}

#[test]
fn unsafe_migration_decisions_are_refused_and_replaced_by_safe_ones() {
    use luciole_proto::migration::*;
    use luciole_proto::{BubbleId, EntityId, Epoch, MemberId, MigrationId};
    let engine = engine();
    let hostile = load(&engine, "hostile-migration");
    let m = Migration {
        id: MigrationId(7),
        entity: EntityId(8),
        source: MemberId(1),
        target: MemberId(2),
        source_bubble: BubbleId(0),
        target_bubble: BubbleId(1),
        epoch: Epoch(3),
    };
    let status =
        |phase| Status { migration: m, role: Role::Source, phase, attempt: 9, elapsed_ms: 9_000 };
    let fresh = || {
        let slot = PolicySlot::<luciole_wasm::Migration>::new();
        slot.swap(&hostile).expect("passes the smoke call");
        slot
    };

    // A commit after a refused vote would duplicate the entity.
    let answer = fresh().on_vote(&status(Phase::Preparing), Admission::Refuse(Refusal::TooBusy));
    assert_eq!((answer.value, &answer.by), (Outcome::Abort, &AnsweredBy::Builtin));
    assert_eq!(answer.faults[0].reason, FaultReason::Violation(Violation::CommitAfterRefusal));

    // An abort after the commit decision would lose it.
    let answer = fresh().on_timeout(&status(Phase::Committing));
    assert_eq!(answer.value, TimeoutAction::Retry(builtin::STANDARD_RETRY_MS));
    assert!(matches!(
        answer.faults[0].reason,
        FaultReason::Violation(Violation::AbortNotAllowed { .. })
    ));

    // Admitting into a full node breaks a host limit.
    let full = Load { entities: 5, entities_max: 5, in_flight: 0, in_flight_max: 8 };
    let answer = fresh().on_prepare(&m, &full);
    assert_eq!(answer.value, Admission::Refuse(Refusal::OverCapacity));
    assert!(matches!(answer.faults[0].reason, FaultReason::Violation(_)));
}
