//! The migration core's decisions: whole migrations (request, prepare, vote, commit, done)
//! between two cores through the real handlers, messages handed over directly and every
//! record durable at once (no disk, no network, no encoding), with the built-in `standard`
//! policy and with the wasm `migration-standard` component in a policy slot (3 policy calls
//! per migration: on-request at the source, on-prepare at the target, on-vote at the source).
//! One iteration moves an entity A→B and back.
//!
//! Needs the components: `cargo xtask plugins`, then `cargo bench -p luciole-tests --bench migration`.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use luciole_proto::core::{Core, Millis};
use luciole_proto::migration::{MigrationConfig, MigrationCore, MigrationPolicy, Standard};
use luciole_proto::{BubbleId, EntityId, Epoch, Member, MemberId, View};
use luciole_tests::{engine, load};
use luciole_wasm::{MigrationDecider, PolicySlot};

const NOW: Millis = Millis(0);

fn pair<P: MigrationPolicy>(policy: impl Fn() -> P) -> [MigrationCore<P>; 2] {
    let view = View::new(Epoch(1), vec![Member::new(MemberId(1), 1), Member::new(MemberId(2), 1)])
        .expect("view");
    let config = MigrationConfig::default();
    let mut cores = [1, 2].map(|i| MigrationCore::new(MemberId(i), config, policy(), NOW));
    for c in &mut cores {
        c.handle_view(NOW, &view);
        c.handle_quorum(NOW, true);
    }
    cores[0].spawn(EntityId(1), BubbleId(0), vec![0; 64]).expect("spawned");
    cores
}

/// Makes everything logged durable and hands every message over, until quiet.
fn settle<P: MigrationPolicy>(cores: &mut [MigrationCore<P>; 2]) {
    loop {
        let mut moved = false;
        for i in 0..2 {
            while let Some((seq, _)) = cores[i].poll_persist() {
                cores[i].handle_persisted(seq);
            }
            while cores[i].poll_event().is_some() {}
            while let Some((to, m)) = cores[i].poll_transmit() {
                let j = usize::from(to == MemberId(2));
                cores[j].handle_message(NOW, cores[i].me(), m);
                moved = true;
            }
        }
        if !moved {
            return;
        }
    }
}

/// A→B, then B→A.
fn round_trip<P: MigrationPolicy>(cores: &mut [MigrationCore<P>; 2]) {
    for (from, to) in [(0, 1), (1, 0)] {
        let target = cores[to].me();
        cores[from].request(NOW, EntityId(1), target, BubbleId(to as u64)).expect("started");
        settle(cores);
        assert!(cores[to].owned().contains_key(&EntityId(1)));
    }
}

fn migrations(c: &mut Criterion) {
    let mut group = c.benchmark_group("migration core, two migrations");
    let mut builtin = pair(|| Standard);
    group.bench_function("built-in standard", |b| b.iter(|| round_trip(black_box(&mut builtin))));
    let engine = engine();
    let slot = Arc::new(PolicySlot::<luciole_wasm::Migration>::new());
    slot.swap(&load(&engine, "migration-standard")).expect("swapped in");
    let mut wasm = pair(|| MigrationDecider(Arc::clone(&slot)));
    round_trip(&mut wasm);
    let by_active = slot.stats().by_active.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(by_active, 6, "the component answered every decision");
    group
        .bench_function("wasm migration-standard", |b| b.iter(|| round_trip(black_box(&mut wasm))));
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50);
    targets = migrations
}
criterion_main!(benches);
