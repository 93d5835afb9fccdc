//! Hostile policies that would make two nodes disagree, or stall one: host calls that carry
//! tens of MiB, state kept between calls, hardware-dependent arithmetic, answers read off the
//! node's limits. Every node must give the same answer to the same input, and a bad call must
//! fault at the same point everywhere, answered by the fallback in the same call.

use std::time::{Duration, Instant};

use luciole_proto::builtin;
use luciole_tests::{cached_engine, engine, load, view};
use luciole_wasm::{AnsweredBy, Coordinator, EngineConfig, FaultReason, PolicyEngine, PolicySlot};

/// One `choose` on a view of `members` by `name` as the only version: the fault, after checking
/// that the builtin answered in the same call and the version is quarantined, and the time the
/// call took.
fn fault_of(engine: &PolicyEngine, name: &str, members: usize) -> (FaultReason, Duration) {
    let slot = PolicySlot::<Coordinator>::new();
    slot.swap(&load(engine, name)).expect("passes the smoke call");
    let v = view(1, members);
    let started = Instant::now();
    let answer = slot.choose(&v, None);
    let took = started.elapsed();
    assert_eq!(answer.value, builtin::coordinator(&v), "{name}: the fallback answers");
    assert_eq!(answer.by, AnsweredBy::Builtin);
    assert_eq!(slot.quarantined().len(), 1, "{name} must be quarantined");
    (answer.faults[0].reason.clone(), took)
}

#[test]
fn logging_is_paid_for_with_fuel_and_runs_out_at_the_same_point_everywhere() {
    // 30,000 messages of 64 KiB: 64 are read (4 MiB), all are charged for the host call.
    let (reason, took) = fault_of(&engine(), "hostile-log", 3);
    assert_eq!(reason, FaultReason::OutOfFuel);
    eprintln!("30,000 logs of 64 KiB: out of fuel after {took:?}");
    // Another node, other node-local settings: the same fault.
    let other = cached_engine(EngineConfig::default());
    assert_eq!(fault_of(&other, "hostile-log", 3).0, FaultReason::OutOfFuel);
}

#[test]
fn a_log_message_larger_than_a_host_call_may_carry_is_refused_before_it_is_copied() {
    // A 32 MiB message: refused at the first log, nothing copied.
    let (reason, took) = fault_of(&engine(), "hostile-log", 5);
    assert_eq!(reason, FaultReason::TooMuchData);
    eprintln!("a 32 MiB log message: refused after {took:?}");
}

#[test]
fn no_state_carries_from_one_cluster_wide_call_to_the_next() {
    let v = view(1, 7);
    let answers = |engine: &PolicyEngine, calls: usize| -> Vec<_> {
        let slot = PolicySlot::<Coordinator>::new();
        slot.swap(&load(engine, "hostile-counter")).unwrap();
        (0..calls)
            .map(|i| {
                if i % 2 == 0 {
                    slot.prepare(); // half the calls on a prepared instantiation
                }
                luciole_tests::active(slot.choose(&v, None), "hostile-counter", "7 members")
            })
            .collect()
    };
    let here = answers(&engine(), 6);
    assert!(here.iter().all(|a| *a == here[0]), "one answer per input: {here:?}");
    // A node that made other calls first gives the same answer.
    let there = answers(&cached_engine(EngineConfig::default()), 1);
    assert_eq!(there[0], here[0]);
}

#[test]
fn relaxed_simd_gives_the_same_result_on_every_machine() {
    let slot = PolicySlot::<Coordinator>::new();
    slot.swap(&load(&engine(), "hostile-relaxed")).unwrap();
    let v = view(1, 5);
    // Deterministic semantics truncate NaN to 0 (the answer is the first member); x86's
    // native instruction gives i32::MIN (the last member).
    let got = luciole_tests::active(slot.choose(&v, None), "hostile-relaxed", "5 members");
    assert_eq!(got, v.members()[0].id);
}

#[test]
fn node_local_settings_change_no_answer_and_the_cluster_settings_are_what_a_policy_sees() {
    let v = view(1, 97);
    let answer = |engine: &PolicyEngine| {
        let slot = PolicySlot::<Coordinator>::new();
        slot.swap(&load(engine, "hostile-probe")).unwrap();
        luciole_tests::active(slot.choose(&v, None), "hostile-probe", "97 members")
    };
    let plain = answer(&engine());
    let cached = answer(&cached_engine(EngineConfig {
        compile_deadline: Duration::from_secs(600),
        ..EngineConfig::default()
    }));
    assert_eq!(plain, cached, "node-local settings must not change an answer");
    // The memory cap is observable: a node with another cap answers otherwise, which is why
    // it is a cluster setting every node shares.
    let smaller = answer(&cached_engine(EngineConfig {
        memory_bytes_max: 32 << 20,
        ..EngineConfig::default()
    }));
    assert_ne!(plain, smaller);
}
