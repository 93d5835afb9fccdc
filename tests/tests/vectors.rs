//! The shared test vectors against the reference components and the host's built-in defaults.
//! Every answer must come from the component itself (no fallback), and match the vector.

use luciole_proto::migration::{
    Admission, Load, Migration, Outcome, PendingAction, Status, TimeoutAction,
};
use luciole_proto::{View, builtin};
use luciole_tests::vectors::{
    self, CoordinatorCase, MigrationCase, MigrationDecider, PlacementCase,
};
use luciole_tests::{active, engine, load};
use luciole_wasm::{Coordinator, Placement, PolicySlot};

#[test]
fn coordinator_components_match_the_vectors() {
    let engine = engine();
    let cases: Vec<CoordinatorCase> = vectors::read("coordinator");
    for (component, policy) in
        [("coordinator-lowest-id", "lowest-id"), ("coordinator-sticky", "sticky")]
    {
        let slot = PolicySlot::<Coordinator>::new();
        slot.swap(&load(&engine, component)).unwrap();
        for case in &cases {
            let Some(want) = case.expect(policy) else { continue };
            let got = active(slot.choose(&case.view().into(), case.current()), policy, &case.name);
            assert_eq!(got, want, "{policy}: {}", case.name);
        }
    }
}

#[test]
fn placement_components_match_the_vectors() {
    let engine = engine();
    let cases: Vec<PlacementCase> = vectors::read("placement");
    for (component, policy) in
        [("placement-rendezvous", "rendezvous"), ("placement-least-loaded", "least-loaded")]
    {
        let slot = PolicySlot::<Placement>::new();
        slot.swap(&load(&engine, component)).unwrap();
        for case in &cases {
            let Some(want) = case.expect(policy) else { continue };
            let got = active(
                slot.place(&case.view().into(), &case.bubbles(), &case.current()),
                policy,
                &case.name,
            );
            assert_eq!(got, want, "{policy}: {}", case.name);
        }
    }
}

struct Component(PolicySlot<luciole_wasm::Migration>);

impl MigrationDecider for Component {
    fn request(&self, m: &Migration, load: &Load) -> Admission {
        active(self.0.on_request(m, load), "standard", "request")
    }
    fn prepare(&self, m: &Migration, load: &Load) -> Admission {
        active(self.0.on_prepare(m, load), "standard", "prepare")
    }
    fn vote(&self, status: &Status, vote: Admission) -> Outcome {
        active(self.0.on_vote(status, vote), "standard", "vote")
    }
    fn timeout(&self, status: &Status) -> TimeoutAction {
        active(self.0.on_timeout(status), "standard", "timeout")
    }
    fn view_change(&self, view: &View, pending: &[Status]) -> Vec<PendingAction> {
        active(self.0.on_view_change(&view.clone().into(), pending), "standard", "view change")
    }
}

struct Builtin;

impl MigrationDecider for Builtin {
    fn request(&self, _m: &Migration, load: &Load) -> Admission {
        builtin::on_request(load)
    }
    fn prepare(&self, _m: &Migration, load: &Load) -> Admission {
        builtin::on_prepare(load)
    }
    fn vote(&self, _status: &Status, vote: Admission) -> Outcome {
        builtin::on_vote(vote)
    }
    fn timeout(&self, status: &Status) -> TimeoutAction {
        builtin::on_timeout(status)
    }
    fn view_change(&self, _view: &View, pending: &[Status]) -> Vec<PendingAction> {
        builtin::on_view_change(pending)
    }
}

#[test]
fn the_standard_migration_component_and_the_builtin_match_the_vectors() {
    let slot = PolicySlot::<luciole_wasm::Migration>::new();
    slot.swap(&load(&engine(), "migration-standard")).unwrap();
    let component = Component(slot);
    let cases: Vec<MigrationCase> = vectors::read("migration");
    for case in &cases {
        let want = case.expect("standard").expect("every case covers standard");
        assert_eq!(&case.run(&component), want, "component: {}", case.name);
        assert_eq!(&case.run(&Builtin), want, "builtin: {}", case.name);
    }
}

#[test]
fn the_builtin_defaults_match_the_vectors_of_their_reference_policies() {
    for case in vectors::read::<CoordinatorCase>("coordinator") {
        assert_eq!(
            Some(builtin::coordinator(&case.view())),
            case.expect("lowest-id"),
            "{}",
            case.name
        );
    }
    for case in vectors::read::<PlacementCase>("placement") {
        let got = builtin::placement(&case.view(), &case.bubbles());
        assert_eq!(Some(got), case.expect("rendezvous"), "{}", case.name);
    }
}

mod random {
    use super::*;
    use luciole_proto::placement::Bubble;
    use luciole_proto::{BubbleId, Epoch, Member, MemberId};
    use proptest::prelude::*;

    fn members() -> impl Strategy<Value = Vec<Member>> {
        prop::collection::btree_map(any::<u128>(), 0u32..4, 1..40)
            .prop_map(|m| m.into_iter().map(|(id, c)| Member::new(MemberId(id), c)).collect())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// The components and the host's built-in copies are independent implementations of the
        /// same algorithms: they must agree on arbitrary inputs, not only on the vectors.
        #[test]
        fn reference_components_agree_with_the_builtins_on_random_views(
            members in members(),
            bubble_ids in prop::collection::btree_set(any::<u64>(), 1..300),
        ) {
            thread_local! {
                static SLOTS: (PolicySlot<Coordinator>, PolicySlot<Placement>) = {
                    let engine = engine();
                    let c = PolicySlot::new();
                    c.swap(&load(&engine, "coordinator-lowest-id")).unwrap();
                    let p = PolicySlot::new();
                    p.swap(&load(&engine, "placement-rendezvous")).unwrap();
                    (c, p)
                };
            }
            let view = luciole_wasm::PolicyView::new(View::new(Epoch(1), members).unwrap());
            let bubbles: Vec<Bubble> = bubble_ids.into_iter().map(|b| Bubble::new(BubbleId(b))).collect();
            SLOTS.with(|(c, p)| {
                let chosen = active(c.choose(&view, None), "lowest-id", "random");
                prop_assert_eq!(chosen, builtin::coordinator(&view));
                let placed = active(p.place(&view, &bubbles, &[]), "rendezvous", "random");
                prop_assert_eq!(placed, builtin::placement(&view, &bubbles));
                Ok(())
            })?;
        }
    }
}
