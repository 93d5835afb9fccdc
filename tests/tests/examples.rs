//! The JavaScript and Python example policies (`examples/`, built by `cargo xtask examples`):
//! the same shared vectors as the Rust references, hot swap in a running slot, and the sandbox
//! limits that hold for every policy.

use luciole_proto::BubbleId;
use luciole_proto::placement::Bubble;
use luciole_tests::vectors::{self, CoordinatorCase, PlacementCase};
use luciole_tests::{active, cached_engine, example, load, view};
use luciole_wasm::{
    AnsweredBy, Coordinator, EngineConfig, FaultReason, Placement, PolicyEngine, PolicySlot,
};

fn load_example(engine: &PolicyEngine, name: &str) -> std::sync::Arc<luciole_wasm::LoadedPolicy> {
    engine.load(&example(name)).unwrap_or_else(|e| panic!("loading {name}: {e}"))
}

/// The interpreters' components are compiled by Winch by default, by Cranelift without it:
/// the vectors must hold under both.
fn both_compilers() -> [(&'static str, PolicyEngine); 2] {
    let cranelift = EngineConfig { baseline_from_bytes: None, ..EngineConfig::default() };
    [("baseline", cached_engine(EngineConfig::default())), ("cranelift", cached_engine(cranelift))]
}

#[test]
fn js_and_python_coordinators_match_the_shared_vectors() {
    let cases: Vec<CoordinatorCase> = vectors::read("coordinator");
    let components = [
        ("js-coordinator-lowest-id", "js-lowest-id"),
        ("py-coordinator-lowest-id", "py-lowest-id"),
    ];
    for (compiler, engine) in both_compilers() {
        for (component, policy) in components {
            let slot = PolicySlot::<Coordinator>::new();
            slot.swap(&load_example(&engine, component)).unwrap();
            let mut checked = 0;
            for case in &cases {
                let Some(want) = case.expect("lowest-id") else { continue };
                let got =
                    active(slot.choose(&case.view().into(), case.current()), policy, &case.name);
                assert_eq!(got, want, "{component} ({compiler}): {}", case.name);
                checked += 1;
            }
            assert!(checked >= 3, "{component}: only {checked} cases");
        }
    }
}

#[test]
fn js_and_python_placements_match_the_shared_vectors() {
    let cases: Vec<PlacementCase> = vectors::read("placement");
    let components = [
        ("js-placement-rendezvous", "js-rendezvous"),
        ("py-placement-rendezvous", "py-rendezvous"),
    ];
    for (compiler, engine) in both_compilers() {
        for (component, policy) in components {
            let slot = PolicySlot::<Placement>::new();
            slot.swap(&load_example(&engine, component)).unwrap();
            let mut checked = 0;
            for case in &cases {
                let Some(want) = case.expect("rendezvous") else { continue };
                let placed = slot.place(&case.view().into(), &case.bubbles(), &case.current());
                let got = active(placed, policy, &case.name);
                assert_eq!(got, want, "{component} ({compiler}): {}", case.name);
                checked += 1;
            }
            assert!(checked >= 3, "{component}: only {checked} cases");
        }
    }
}

#[test]
fn rust_js_and_python_placements_agree_and_swap_while_the_slot_serves() {
    let engine = cached_engine(EngineConfig::default());
    let v = view(3, 12);
    let bubbles: Vec<Bubble> = (0..200).map(|i| Bubble::new(BubbleId(i * 7 + 1))).collect();
    let slot = PolicySlot::<Placement>::new();
    let mut answers = Vec::new();
    for name in ["rust", "js-placement-rendezvous", "py-placement-rendezvous", "rust"] {
        let loaded = match name {
            "rust" => load(&engine, "placement-rendezvous"),
            _ => load_example(&engine, name),
        };
        let report = slot.swap(&loaded).unwrap_or_else(|e| panic!("swap to {name}: {e}"));
        assert_eq!(report.active.name, loaded.meta().name);
        let answer = slot.place(&v, &bubbles, &[]);
        assert!(matches!(answer.by, AnsweredBy::Active(_)), "{name}: {:?}", answer.faults);
        answers.push(answer.value);
    }
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "every language places alike");
    assert_eq!(slot.stats().faults.load(std::sync::atomic::Ordering::Relaxed), 0);
}

#[test]
fn js_and_python_policies_run_out_of_fuel_and_are_answered_in_the_same_call() {
    // Little fuel, a large placement: the interpreters cannot finish.
    let engine =
        cached_engine(EngineConfig { fuel_per_call: 2_000_000, ..EngineConfig::default() });
    let v = view(5, 100);
    let bubbles: Vec<Bubble> = (0..1000).map(|i| Bubble::new(BubbleId(i))).collect();
    for name in ["js-placement-rendezvous", "py-placement-rendezvous"] {
        let slot = PolicySlot::<Placement>::new();
        slot.swap(&load_example(&engine, name)).unwrap();
        let answer = slot.place(&v, &bubbles, &[]);
        assert_eq!(answer.by, AnsweredBy::Builtin, "{name}");
        assert_eq!(answer.value.len(), 1000, "{name}: the builtin placed every bubble");
        assert_eq!(answer.faults.len(), 1, "{name}");
        assert_eq!(answer.faults[0].reason, FaultReason::OutOfFuel, "{name}");
        assert_eq!(slot.stats().faults.load(std::sync::atomic::Ordering::Relaxed), 1, "{name}");
    }
}

#[test]
fn a_memory_cap_below_what_a_runtime_needs_is_a_clean_refusal() {
    let engine =
        cached_engine(EngineConfig { memory_bytes_max: 2 << 20, ..EngineConfig::default() });
    for name in ["js-coordinator-lowest-id", "py-coordinator-lowest-id"] {
        // `LoadError::Memory` comes from inspection, before anything is compiled.
        let err =
            engine.load(&example(name)).expect_err("a 2 MiB cap is too small for an interpreter");
        assert!(matches!(err, luciole_wasm::LoadError::Memory { .. }), "{name}: {err}");
        assert!(err.to_string().contains("memory cap is 2 MiB"), "{name}: {err}");
    }
}
