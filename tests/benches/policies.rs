//! Policy call latency: each reference policy as a wasm component through the real host path
//! (convert, lower, run under fuel, lift, safety check) beside the same Rust source compiled
//! natively, and the host's built-in copy. Coordinator and placement calls run on a fresh
//! instantiation each: `wasm` is the call on one made ahead (`PolicySlot::prepare`, as the node
//! does after each decision), `wasm, instantiating` calls back to back, each instantiating
//! first.
//!
//! Needs the components: `cargo xtask plugins`, then `cargo bench -p luciole-tests --bench policies`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, BenchmarkId, Criterion, criterion_group, criterion_main};
use luciole_guest_sdk as sdk;
use luciole_guest_sdk::{CoordinatorPolicy, MigrationPolicy, PlacementPolicy};
use luciole_proto::migration::{Load, Migration};
use luciole_proto::{BubbleId, EntityId, Epoch, MemberId, MigrationId, View, builtin};
use luciole_tests::{bubbles, engine, load, view};
use luciole_wasm::{AnsweredBy, Coordinator, Placement, PolicySlot, PolicyView};

fn sdk_view(v: &View) -> sdk::View {
    let members = v
        .members()
        .iter()
        .map(|m| sdk::Member { id: sdk::Uid::from_u128(m.id.0), capacity: m.capacity })
        .collect();
    sdk::View::of(v.epoch().0, members)
}

fn assert_active<T>(a: &luciole_wasm::Answer<T>) {
    assert!(matches!(a.by, AnsweredBy::Active(_)), "the component must answer: {:?}", a.faults);
}

fn coordinator(c: &mut Criterion) {
    let engine = engine();
    let slot = PolicySlot::<Coordinator>::new();
    slot.swap(&load(&engine, "coordinator-lowest-id")).unwrap();
    let mut group = c.benchmark_group("coordinator lowest-id");
    for n in [10usize, 100, 1000] {
        let v = view(7, n);
        assert_active(&slot.choose(&v, None));
        // The call as the node makes it: on the fresh instantiation made ahead of it.
        group.bench_with_input(BenchmarkId::new("wasm", n), &v, |b, v| {
            b.iter_batched(
                || slot.prepare(),
                |()| slot.choose(black_box(v), None).value,
                BatchSize::PerIteration,
            )
        });
        // Calls back to back: each one instantiates first.
        group.bench_with_input(BenchmarkId::new("wasm, instantiating", n), &v, |b, v| {
            b.iter(|| slot.choose(black_box(v), None).value)
        });
        // What installing a view costs on top, once per view for all policy kinds.
        group.bench_with_input(BenchmarkId::new("prepare view + wasm", n), &v, |b, v| {
            b.iter_batched(
                || slot.prepare(),
                |()| slot.choose(&PolicyView::new(black_box(v.view().clone())), None).value,
                BatchSize::PerIteration,
            )
        });
        let sv = sdk_view(&v);
        group.bench_with_input(BenchmarkId::new("native", n), &sv, |b, sv| {
            b.iter(|| coordinator_lowest_id::LowestId::choose(black_box(sv), None))
        });
        group.bench_with_input(BenchmarkId::new("builtin", n), &v, |b, v| {
            b.iter(|| builtin::coordinator(black_box(v)))
        });
    }
    group.finish();
}

fn placement(c: &mut Criterion) {
    let engine = engine();
    let slot = PolicySlot::<Placement>::new();
    slot.swap(&load(&engine, "placement-rendezvous")).unwrap();
    let v = view(7, 100);
    let b = bubbles(1000);
    assert_active(&slot.place(&v, &b, &[]));
    let mut group = c.benchmark_group("placement rendezvous 1000 bubbles on 100 members");
    group.bench_function("wasm", |bench| {
        bench.iter_batched(
            || slot.prepare(),
            |()| slot.place(black_box(&v), black_box(&b), &[]).value,
            BatchSize::PerIteration,
        )
    });
    group.bench_function("wasm, instantiating", |bench| {
        bench.iter(|| slot.place(black_box(&v), black_box(&b), &[]).value)
    });
    let sv = sdk_view(&v);
    let sb: Vec<sdk::Bubble> = b
        .iter()
        .map(|b| sdk::Bubble {
            id: b.id.0,
            entity_count: b.entity_count,
            load: b.load,
            bounds: None,
            current: None,
        })
        .collect();
    group.bench_function("native", |bench| {
        bench.iter(|| placement_rendezvous::Rendezvous::place(black_box(&sv), black_box(&sb)))
    });
    group.bench_function("builtin", |bench| {
        bench.iter(|| builtin::placement(black_box(&v), black_box(&b)))
    });
    group.finish();
}

fn migration(c: &mut Criterion) {
    let engine = engine();
    let slot = PolicySlot::<luciole_wasm::Migration>::new();
    slot.swap(&load(&engine, "migration-standard")).unwrap();
    let m = Migration {
        id: MigrationId(0x1234),
        entity: EntityId(0x5678),
        source: MemberId(1),
        target: MemberId(2),
        source_bubble: BubbleId(3),
        target_bubble: BubbleId(4),
        epoch: Epoch(9),
    };
    let load = Load { entities: 10, entities_max: 1000, in_flight: 2, in_flight_max: 64 };
    assert_active(&slot.on_prepare(&m, &load));
    let mut group = c.benchmark_group("migration standard on-prepare");
    group.bench_function("wasm", |b| {
        b.iter(|| slot.on_prepare(black_box(&m), black_box(&load)).value)
    });
    let sm = sdk::migration::Migration {
        id: sdk::Uid::from_u128(m.id.0),
        entity: sdk::Uid::from_u128(m.entity.0),
        source: sdk::Uid::from_u128(1),
        target: sdk::Uid::from_u128(2),
        source_bubble: 3,
        target_bubble: 4,
        epoch: 9,
    };
    let sl =
        sdk::migration::Load { entities: 10, entities_max: 1000, in_flight: 2, in_flight_max: 64 };
    group.bench_function("native", |b| {
        b.iter(|| migration_standard::Standard::on_prepare(black_box(sm), black_box(sl)))
    });
    group.bench_function("builtin", |b| b.iter(|| builtin::on_prepare(black_box(&load))));
    group.finish();
}

/// The longest calls the sandbox lets through: each hostile policy runs one call on a fresh
/// slot until it faults (and is quarantined), the builtin answering in the same call.
fn worst_case(c: &mut Criterion) {
    let mut group = c.benchmark_group("worst-case call");
    group.sample_size(10);
    for (name, members, what) in [
        ("hostile-loop", 5, "guest loop, out of fuel"),
        ("hostile-log", 3, "30,000 logs of 64 KiB, out of fuel"),
        ("hostile-log", 5, "a 32 MiB log message, refused"),
        ("hostile-memory", 5, "growing to the memory cap"),
    ] {
        // An engine per row: a quarantined version is refused at its next load.
        let policy = load(&engine(), name);
        let v = view(7, members);
        group.bench_function(what, |b| {
            b.iter_batched(
                || {
                    let slot = PolicySlot::<Coordinator>::new();
                    slot.swap(&policy).expect("passes the smoke call");
                    slot
                },
                |slot| {
                    let answer = slot.choose(black_box(&v), None);
                    assert_eq!(answer.by, AnsweredBy::Builtin, "{name} must fault");
                    slot
                },
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(40)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = coordinator, placement, migration, worst_case
}
criterion_main!(benches);
