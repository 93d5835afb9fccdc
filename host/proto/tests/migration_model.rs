//! Exhaustive model check of the migration core with stateright: 3 members, 2 entities, the
//! real `MigrationCore` handlers, and every interleaving of requests, message delivery (any
//! order, any number of times), message loss, log syncs, crashes that lose what was not
//! synced, timers firing at any moment (retry or give up), and one view change that removes a
//! member (installed by each member at its own moment).
//!
//! Properties: every entity has exactly one owner, counting a committed move whose target
//! holds the entity in doubt as that one; at most one member acts on an entity, at its newest
//! ownership epoch; a committed migration is applied once; from every state, once faults stop,
//! every migration resolves; and both a commit and an abort happen somewhere.
//!
//! Each run is bounded: `LUCIOLE_MODEL_REQUESTS` migrations requested (default 1),
//! `LUCIOLE_MODEL_CRASHES` crashes, `LUCIOLE_MODEL_LOSSES` lost messages and
//! `LUCIOLE_MODEL_DUPLICATES` duplicated ones (default 1 each). Timers retrying resend, so
//! a message can arrive many times anyway.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::Instant;

use luciole_proto::core::{Core, Millis};
use luciole_proto::migration::{
    Admission, Event, FlightKey, Load, Message, Migration, MigrationConfig, MigrationCore,
    MigrationPolicy, Outcome, PendingAction, Phase, Record, Standard, Status, TimeoutAction,
};
use luciole_proto::{BubbleId, EntityId, Epoch, Member, MemberId, View};
use stateright::{Checker, Model, Property};

const MEMBERS: usize = 3;
const ENTITIES: u128 = 2;
const NOW: Millis = Millis(0);

/// The policy double: the standard answers, except that a timer's answer is chosen by the
/// model (retry, or give up where allowed) and a view change keeps everything it may.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
struct Scripted {
    give_up: bool,
}

impl MigrationPolicy for Scripted {
    fn on_request(&mut self, m: &Migration, load: &Load) -> Admission {
        Standard.on_request(m, load)
    }
    fn on_prepare(&mut self, m: &Migration, load: &Load) -> Admission {
        Standard.on_prepare(m, load)
    }
    fn on_vote(&mut self, s: &Status, vote: Admission) -> Outcome {
        Standard.on_vote(s, vote)
    }
    fn on_timeout(&mut self, _: &Status) -> TimeoutAction {
        if self.give_up { TimeoutAction::Abort } else { TimeoutAction::Retry(100) }
    }
    fn on_view_change(&mut self, _: &View, pending: &[Status]) -> Vec<PendingAction> {
        vec![PendingAction::Keep; pending.len()]
    }
}

#[derive(Clone, Debug)]
struct Node {
    core: MigrationCore<Scripted>,
    durable: Vec<Record>,
    volatile: Vec<(u64, Record)>,
}

#[derive(Clone, Debug)]
struct State {
    nodes: Vec<Node>,
    /// Messages sent and not yet arrived or lost, in no order.
    net: BTreeSet<(usize, usize, Message)>,
    /// Per member, whether it installed the second view.
    second_view: Vec<bool>,
    requests: u8,
    crashes: u8,
    losses: u8,
    duplicates: u8,
    committed: bool,
    aborted: bool,
}

impl Hash for State {
    fn hash<H: Hasher>(&self, h: &mut H) {
        for n in &self.nodes {
            (&n.core, &n.durable, &n.volatile).hash(h);
        }
        (&self.net, &self.second_view, self.requests, self.crashes).hash(h);
        (self.losses, self.duplicates).hash(h);
        (self.committed, self.aborted).hash(h);
    }
}

impl PartialEq for State {
    fn eq(&self, other: &Self) -> bool {
        fingerprint(self) == fingerprint(other)
    }
}

fn fingerprint(s: &State) -> u64 {
    let mut h = DefaultHasher::new();
    s.hash(&mut h);
    h.finish()
}

#[derive(Clone, Debug, PartialEq)]
enum Action {
    Request {
        node: usize,
        entity: EntityId,
        target: usize,
    },
    /// A message arrives; with `keep`, a copy stays in the network (a duplicate).
    Deliver {
        from: usize,
        to: usize,
        message: Message,
        keep: bool,
    },
    Lose {
        from: usize,
        to: usize,
        message: Message,
    },
    Sync {
        node: usize,
    },
    Fire {
        node: usize,
        key: FlightKey,
        give_up: bool,
    },
    Crash {
        node: usize,
    },
    InstallSecondView {
        node: usize,
    },
}

fn id(i: usize) -> MemberId {
    MemberId(i as u128 + 1)
}

fn index(m: MemberId) -> usize {
    (m.0 - 1) as usize
}

fn view(epoch: u64, members: usize) -> View {
    View::new(Epoch(epoch), (0..members).map(|i| Member::new(id(i), 1)).collect()).unwrap()
}

/// The view a member is in: the first, or the second without the last member.
fn view_of(s: &State, node: usize) -> View {
    if s.second_view[node] { view(2, MEMBERS - 1) } else { view(1, MEMBERS) }
}

/// Bounds on one run's faults and requests.
struct MigrationModel {
    /// Whether to check that migrations resolve and that commits and aborts happen (off when
    /// looking for the shortest safety violation of a broken core).
    liveness: bool,
    /// Entities that may be asked to move (1 or 2).
    moving: u128,
    requests: u8,
    crashes: u8,
    losses: u8,
    duplicates: u8,
}

impl MigrationModel {
    /// Moves what a core sent, logged and told into the model's network, logs and flags.
    fn drain(s: &mut State, node: usize) {
        let n = &mut s.nodes[node];
        while let Some((to, message)) = n.core.poll_transmit() {
            s.net.insert((node, index(to), message));
        }
        while let Some(r) = n.core.poll_persist() {
            n.volatile.push(r);
        }
        while let Some(e) = n.core.poll_event() {
            match e {
                Event::Ended { outcome: Outcome::Commit, .. } => s.committed = true,
                Event::Ended { outcome: Outcome::Abort, .. } => s.aborted = true,
                Event::Overruled { call, violation } => panic!("{call} overruled: {violation}"),
                _ => {}
            }
        }
    }

    fn sync(s: &mut State, node: usize) {
        Self::drain(s, node);
        let n = &mut s.nodes[node];
        if let Some(&(last, _)) = n.volatile.last() {
            n.durable.extend(n.volatile.drain(..).map(|(_, r)| r));
            n.core.handle_persisted(last);
        }
        Self::drain(s, node);
    }

    fn crash(s: &mut State, node: usize) {
        let v = view_of(s, node);
        let n = &mut s.nodes[node];
        n.volatile.clear();
        let records = n.durable.clone();
        n.core = MigrationCore::recover(id(node), config(), Scripted::default(), NOW, records);
        n.core.handle_view(NOW, &v);
        n.core.handle_quorum(NOW, v.contains(id(node)));
        Self::drain(s, node);
    }
}

fn config() -> MigrationConfig {
    MigrationConfig { entities_max: 10, in_flight_max: 4, moves_max: 1, first_timer_ms: 100 }
}

impl Model for MigrationModel {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        let mut s = State {
            nodes: Vec::new(),
            net: BTreeSet::new(),
            second_view: vec![false; MEMBERS],
            requests: 0,
            crashes: 0,
            losses: 0,
            duplicates: 0,
            committed: false,
            aborted: false,
        };
        for i in 0..MEMBERS {
            let mut core = MigrationCore::new(id(i), config(), Scripted::default(), NOW);
            core.handle_view(NOW, &view(1, MEMBERS));
            core.handle_quorum(NOW, true);
            if (i as u128) < ENTITIES {
                core.spawn(EntityId(i as u128 + 1), BubbleId(i as u64), vec![i as u8]).unwrap();
            }
            s.nodes.push(Node { core, durable: Vec::new(), volatile: Vec::new() });
            Self::sync(&mut s, i);
        }
        vec![s]
    }

    fn actions(&self, s: &State, actions: &mut Vec<Action>) {
        for (node, n) in s.nodes.iter().enumerate() {
            if s.requests < self.requests {
                // Entity 1 moves; entity 2 stays where it is, a bystander whose ownership
                // must not change (both are checked).
                for e in 1..=self.moving {
                    let entity = EntityId(e);
                    if n.core.acting(entity) {
                        for target in (0..MEMBERS).filter(|&t| t != node) {
                            actions.push(Action::Request { node, entity, target });
                        }
                    }
                }
            }
            if !n.volatile.is_empty() {
                actions.push(Action::Sync { node });
            }
            for key in n.core.timers() {
                actions.push(Action::Fire { node, key, give_up: false });
                let undecided = match key {
                    FlightKey::Out(m) => n.core.outgoing()[&m].phase == Phase::Preparing,
                    FlightKey::In(..) => false,
                };
                if undecided {
                    actions.push(Action::Fire { node, key, give_up: true });
                }
            }
            if s.crashes < self.crashes {
                actions.push(Action::Crash { node });
            }
            if !s.second_view[node] {
                actions.push(Action::InstallSecondView { node });
            }
        }
        for (from, to, message) in &s.net {
            let (from, to, message) = (*from, *to, message.clone());
            actions.push(Action::Deliver { from, to, message: message.clone(), keep: false });
            if s.duplicates < self.duplicates {
                actions.push(Action::Deliver { from, to, message: message.clone(), keep: true });
            }
            if s.losses < self.losses {
                actions.push(Action::Lose { from, to, message });
            }
        }
    }

    fn next_state(&self, last: &State, action: Action) -> Option<State> {
        let mut s = last.clone();
        match action {
            Action::Request { node, entity, target } => {
                s.requests += 1;
                let bubble = BubbleId(target as u64);
                let _ = s.nodes[node].core.request(NOW, entity, id(target), bubble);
                Self::drain(&mut s, node);
            }
            Action::Deliver { from, to, message, keep } => {
                if keep {
                    s.duplicates += 1;
                } else {
                    s.net.remove(&(from, to, message.clone()));
                }
                s.nodes[to].core.handle_message(NOW, id(from), message);
                Self::drain(&mut s, to);
            }
            Action::Lose { from, to, message } => {
                s.losses += 1;
                s.net.remove(&(from, to, message));
            }
            Action::Sync { node } => Self::sync(&mut s, node),
            Action::Fire { node, key, give_up } => {
                s.nodes[node].core.policy_mut().give_up = give_up;
                s.nodes[node].core.fire(NOW, key);
                s.nodes[node].core.policy_mut().give_up = false;
                Self::drain(&mut s, node);
            }
            Action::Crash { node } => {
                s.crashes += 1;
                Self::crash(&mut s, node);
            }
            Action::InstallSecondView { node } => {
                s.second_view[node] = true;
                let v = view_of(&s, node);
                s.nodes[node].core.handle_view(NOW, &v);
                s.nodes[node].core.handle_quorum(NOW, v.contains(id(node)));
                Self::drain(&mut s, node);
            }
        }
        Some(s)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        let mut p = vec![
            Property::always("one owner per entity", |_, s: &State| owners_ok(s).is_ok()),
            Property::always("one actor, at the newest epoch", |_, s: &State| actors_ok(s)),
            Property::always("a commit applied once", |_, s: &State| applied_once(s)),
        ];
        if self.liveness {
            p.extend([
                Property::always("resolves once faults stop", |_, s: &State| resolves(s).is_ok()),
                Property::sometimes("a commit", |_, s: &State| s.committed),
                Property::sometimes("an abort", |_, s: &State| s.aborted),
            ]);
        }
        p
    }
}

/// Per entity: members owning it, plus committed moves whose target holds it in doubt. Must
/// be exactly one.
fn owners_ok(s: &State) -> Result<(), String> {
    for e in 1..=ENTITIES {
        let entity = EntityId(e);
        let owners = s.nodes.iter().filter(|n| n.core.owned().contains_key(&entity)).count();
        let in_flight = s
            .nodes
            .iter()
            .flat_map(|n| n.core.outgoing().iter().map(move |(m, f)| (n.core.me(), *m, f)))
            .filter(|(_, _, f)| f.phase == Phase::Committing && f.migration.entity == entity)
            .filter(|(src, m, f)| {
                s.nodes[index(f.migration.target)]
                    .core
                    .incoming()
                    .get(&(*src, *m))
                    .is_some_and(|g| g.ownership == f.ownership)
            })
            .count();
        if owners + in_flight != 1 {
            return Err(format!("{entity}: {owners} owners, {in_flight} committed in flight"));
        }
    }
    Ok(())
}

/// At most one member acts on an entity, and only at the newest epoch it was committed at
/// (owned, or given away by a decided commit).
fn actors_ok(s: &State) -> bool {
    (1..=ENTITIES).map(EntityId).all(|entity| {
        let newest =
            s.nodes
                .iter()
                .flat_map(|n| {
                    let owned = n.core.owned().get(&entity).map(|o| o.ownership);
                    let given = n.core.outgoing().values().filter(move |f| {
                        f.migration.entity == entity && f.phase == Phase::Committing
                    });
                    owned.into_iter().chain(given.map(|f| f.ownership))
                })
                .max();
        let actors: Vec<_> = s
            .nodes
            .iter()
            .filter(|n| n.core.acting(entity))
            .map(|n| n.core.owned()[&entity].ownership)
            .collect();
        actors.len() <= 1 && actors.iter().all(|o| Some(*o) == newest)
    })
}

fn applied_once(s: &State) -> bool {
    let mut seen = BTreeMap::new();
    for n in &s.nodes {
        let all = n.durable.iter().chain(n.volatile.iter().map(|(_, r)| r));
        for r in all {
            if let Record::Committed { source, id, .. } = r {
                *seen.entry((*source, *id)).or_insert(0) += 1;
            }
        }
    }
    seen.values().all(|&c| c == 1)
}

/// Faults stop: a view change some member installed reaches every member, every message
/// still out is delivered, logs sync, timers retry; within a bound every migration has ended
/// and every entity has one owner.
fn resolves(s: &State) -> Result<(), String> {
    let mut s = s.clone();
    if s.second_view.contains(&true) {
        for node in 0..MEMBERS {
            if !s.second_view[node] {
                let model = MigrationModel {
                    liveness: false,
                    moving: 0,
                    requests: 0,
                    crashes: 0,
                    losses: 0,
                    duplicates: 0,
                };
                s = model.next_state(&s, Action::InstallSecondView { node }).unwrap();
            }
        }
    }
    for _ in 0..8 {
        for node in 0..MEMBERS {
            MigrationModel::sync(&mut s, node);
        }
        let net = std::mem::take(&mut s.net);
        for (from, to, message) in net {
            s.nodes[to].core.handle_message(NOW, id(from), message);
            MigrationModel::drain(&mut s, to);
        }
        if s.net.is_empty() && s.nodes.iter().all(|n| n.core.timers().is_empty()) {
            return owners_ok(&s);
        }
        for node in 0..MEMBERS {
            for key in s.nodes[node].core.timers() {
                s.nodes[node].core.fire(NOW, key);
            }
            MigrationModel::drain(&mut s, node);
        }
    }
    Err("migrations still in flight after faults stopped".into())
}

fn env(name: &str, default: u8) -> u8 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn model() -> MigrationModel {
    MigrationModel {
        liveness: !cfg!(any(feature = "mutant-early-commit", feature = "mutant-unfenced-prepare")),
        moving: env("LUCIOLE_MODEL_MOVING", 2).into(),
        requests: env("LUCIOLE_MODEL_REQUESTS", 1),
        crashes: env("LUCIOLE_MODEL_CRASHES", 1),
        losses: env("LUCIOLE_MODEL_LOSSES", 1),
        duplicates: env("LUCIOLE_MODEL_DUPLICATES", 1),
    }
}

#[cfg(not(any(feature = "mutant-early-commit", feature = "mutant-unfenced-prepare")))]
#[test]
fn the_migration_core_keeps_every_entity_exactly_once() {
    let model = model();
    // The checker's own wall time, for the report; the cores never see a clock.
    #[allow(clippy::disallowed_methods)]
    let start = Instant::now();
    let checker = model.checker().threads(1).spawn_dfs().join();
    eprintln!(
        "migration model: {} unique states, {} generated, depth {}, {:.1} s",
        checker.unique_state_count(),
        checker.state_count(),
        checker.max_depth(),
        start.elapsed().as_secs_f64()
    );
    if let Some(path) = checker.discovery("one owner per entity") {
        let last = path.last_state();
        eprintln!("owners: {:?}", owners_ok(last));
        for n in &last.nodes {
            eprintln!(
                "{}: owned {:?}\n  out {:?}\n  in {:?}\n  durable {:?}\n  volatile {:?}",
                n.core.me(),
                n.core.owned(),
                n.core.outgoing(),
                n.core.incoming(),
                n.durable,
                n.volatile
            );
        }
    }
    checker.assert_properties();
}

/// Built with a `mutant-*` feature of luciole-proto (a deliberately broken core), the check
/// must find a broken property (an entity owned twice, or a commit applied twice): `cargo test --release -p luciole-proto --features
/// mutant-early-commit --test migration_model` (one request and one crash suffice), or
/// `--features mutant-unfenced-prepare` with `LUCIOLE_MODEL_REQUESTS=2`.
#[cfg(any(feature = "mutant-early-commit", feature = "mutant-unfenced-prepare"))]
const SAFETY: [&str; 3] =
    ["one owner per entity", "one actor, at the newest epoch", "a commit applied once"];

#[cfg(any(feature = "mutant-early-commit", feature = "mutant-unfenced-prepare"))]
#[test]
fn a_broken_core_is_caught() {
    #[allow(clippy::disallowed_methods)]
    let start = Instant::now();
    let checker = model()
        .checker()
        .threads(2)
        .finish_when(stateright::HasDiscoveries::AnyFailures)
        .spawn_bfs()
        .join();
    let failures: Vec<(&str, usize)> = checker
        .discoveries()
        .into_iter()
        .filter(|(name, _)| SAFETY.contains(name))
        .map(|(name, path)| (name, path.into_actions().len()))
        .collect();
    eprintln!(
        "mutant caught after {} unique states in {:.1} s: {failures:?} (property, steps)",
        checker.unique_state_count(),
        start.elapsed().as_secs_f64(),
    );
    assert!(!failures.is_empty(), "the mutant went unnoticed");
}
