//! Node-local hot swap: atomic between calls, no failed call while another thread keeps calling,
//! state carried over because the host owns it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

use luciole_proto::check;
use luciole_tests::{engine, load, view};
use luciole_wasm::{AnsweredBy, Coordinator, Placement, PolicySlot, SwapError};

#[test]
fn swapping_while_another_thread_calls_never_fails_a_call() {
    let engine = engine();
    let lowest = load(&engine, "coordinator-lowest-id");
    let sticky = load(&engine, "coordinator-sticky");
    let slot = Arc::new(PolicySlot::<Coordinator>::new());
    slot.swap(&lowest).unwrap();
    let v = Arc::new(view(3, 50));
    let stop = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicU64::new(0));
    let caller = {
        let (slot, v, stop, calls) = (slot.clone(), v.clone(), stop.clone(), calls.clone());
        std::thread::spawn(move || {
            let current = v.members()[17].id;
            let mut by = std::collections::HashMap::<String, u64>::new();
            while !stop.load(Relaxed) {
                let answer = slot.choose(&v, Some(current));
                assert!(answer.faults.is_empty() && answer.declined.is_empty(), "{answer:?}");
                let AnsweredBy::Active(meta) = &answer.by else { panic!("{:?}", answer.by) };
                // Each version gives its own answer: never a mix.
                let want = if meta.name == "sticky" { current } else { v.members()[0].id };
                assert_eq!(answer.value, want, "{}", meta.name);
                *by.entry(meta.name.clone()).or_default() += 1;
                calls.fetch_add(1, Relaxed);
            }
            by
        })
    };
    for i in 0..200 {
        while calls.load(Relaxed) < i * 5 {
            std::thread::yield_now();
        }
        slot.swap(if i % 2 == 0 { &sticky } else { &lowest }).unwrap();
    }
    stop.store(true, Relaxed);
    let by = caller.join().expect("no call failed");
    assert!(
        by.get("sticky").is_some_and(|&n| n > 0) && by.get("lowest-id").is_some_and(|&n| n > 0),
        "{by:?}"
    );
    assert_eq!(slot.stats().faults.load(Relaxed), 0);
    assert_eq!(slot.stats().by_builtin.load(Relaxed), 0);
    assert_eq!(slot.stats().swaps.load(Relaxed), 201);
}

#[test]
fn the_host_owned_coordinator_survives_a_swap_to_a_sticky_policy() {
    let engine = engine();
    let slot = PolicySlot::<Coordinator>::new();
    slot.swap(&load(&engine, "coordinator-lowest-id")).unwrap();
    let v1 = view(1, 4);
    let first = slot.choose(&v1, None).value;
    // A member with a lower id joins: lowest-id would move the coordinator, sticky keeps it.
    let mut members = v1.members().to_vec();
    members.push(luciole_proto::Member::new(luciole_proto::MemberId(1), 100));
    let v2 = v1.next(luciole_proto::Epoch(2), members).unwrap().into();
    slot.swap(&load(&engine, "coordinator-sticky")).unwrap();
    let second = slot.choose(&v2, Some(first));
    assert_eq!(second.value, first, "state came from the host, not the old instance");
}

#[test]
fn a_swap_to_the_wrong_kind_is_refused_and_the_old_version_stays() {
    let engine = engine();
    let slot = PolicySlot::<Placement>::new();
    slot.swap(&load(&engine, "placement-rendezvous")).unwrap();
    let err = slot.swap(&load(&engine, "coordinator-lowest-id")).unwrap_err();
    assert!(matches!(err, SwapError::WrongKind { .. }), "{err}");
    assert_eq!(slot.active().unwrap().name, "rendezvous");
    let v = view(1, 3);
    let b = luciole_tests::bubbles(10);
    check::placement(&v, &b, slot.place(&v, &b, &[]).value).unwrap();
}

#[test]
fn clearing_a_slot_hands_every_call_to_the_builtin() {
    let engine = engine();
    let slot = PolicySlot::<Coordinator>::new();
    slot.swap(&load(&engine, "coordinator-sticky")).unwrap();
    slot.clear();
    assert!(slot.active().is_none() && slot.last_good().is_none());
    let v = view(1, 3);
    assert_eq!(slot.choose(&v, Some(v.members()[2].id)).by, AnsweredBy::Builtin);
}
