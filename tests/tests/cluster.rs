//! The whole-cluster simulation with the wasm `migration-standard` component in every node's
//! policy slot (under fuel, with its fallback): the same run as with the built-in policy, to
//! the message, since both answer alike; and a hostile migration component changes nothing
//! the checker guards.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use luciole_proto::migration::MigrationPolicy;
use luciole_sim::cluster::{ClusterSettings, Fault, PolicyFactory, run, wasm_policy};
use luciole_tests::{engine, load};
use luciole_wasm::{Migration, MigrationDecider, PolicySlot};

fn wasm(name: &str) -> PolicyFactory {
    wasm_policy(load(&engine(), name)).expect("a migration component")
}

#[test]
fn the_wasm_standard_policy_runs_the_cluster_exactly_as_the_built_in_one() {
    for fault in [Fault::Crashes, Fault::Duplicates] {
        let builtin = ClusterSettings::new(5);
        let mut component = ClusterSettings::new(5);
        component.policy = wasm("migration-standard");
        let a = run(fault, 7, &builtin).unwrap_or_else(|e| panic!("built-in: {e}"));
        let b = run(fault, 7, &component).unwrap_or_else(|e| panic!("wasm: {e}"));
        assert!(a.commits > 100, "{a:?}");
        assert_eq!(format!("{a:?}"), format!("{b:?}"), "{fault:?}");
    }
}

#[test]
fn a_hostile_migration_policy_cannot_break_conservation() {
    let loaded = load(&engine(), "hostile-migration");
    let slots: Rc<RefCell<Vec<Arc<PolicySlot<Migration>>>>> = Rc::default();
    let mut settings = ClusterSettings::new(5);
    let made = Rc::clone(&slots);
    settings.policy = Rc::new(move |_| {
        let slot = Arc::new(PolicySlot::<Migration>::new());
        slot.swap(&loaded).expect("swapped in");
        made.borrow_mut().push(Arc::clone(&slot));
        Box::new(MigrationDecider(slot)) as Box<dyn MigrationPolicy>
    });
    for fault in [Fault::SlowCommit, Fault::Crashes] {
        let o = run(fault, 3, &settings).unwrap_or_else(|e| panic!("{fault:?}: {e}"));
        assert!(o.commits > 0, "{fault:?}: {o:?}");
    }
    // It aborts on every timer, even a committed migration's (slow disks, crashed targets):
    // the slot finds the answer unsafe and answers for it, or the core overrules it.
    let refused: u64 = slots
        .borrow()
        .iter()
        .map(|s| s.stats().faults.load(Relaxed) + s.stats().declined.load(Relaxed))
        .sum();
    assert!(refused > 0, "the hostile answers were refused");
}
