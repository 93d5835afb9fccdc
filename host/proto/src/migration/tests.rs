//! The migration core on a few members driven by hand: scenarios named after the old system's
//! failures (a slow but successful prepare or commit; A→B→A→B), crashes around the log, quorum
//! and view fencing, unsafe policy answers and bounded bubble moves. The model check
//! (`tests/migration_model.rs`) explores every interleaving of a smaller system.

use std::collections::{BTreeMap, VecDeque};

use super::*;
use crate::core::{Core, Millis};
use crate::ids::{BubbleId, EntityId, Epoch, MemberId};
use crate::view::{Member, View};

/// Members with their cores, durable and volatile logs, and a network in order.
struct Cluster {
    cores: Vec<MigrationCore<Box<dyn MigrationPolicy>>>,
    durable: Vec<Vec<Record>>,
    volatile: Vec<Vec<(u64, Record)>>,
    net: VecDeque<(usize, usize, Message)>,
    events: Vec<Vec<Event>>,
    now: Millis,
}

fn id(i: usize) -> MemberId {
    MemberId(i as u128 + 1)
}

fn view(epoch: u64, members: &[usize]) -> View {
    View::new(Epoch(epoch), members.iter().map(|&i| Member::new(id(i), 1)).collect()).unwrap()
}

fn config() -> MigrationConfig {
    MigrationConfig { entities_max: 100, in_flight_max: 8, moves_max: 2, first_timer_ms: 100 }
}

const E: EntityId = EntityId(7);

impl Cluster {
    fn new(n: usize) -> Self {
        let mut c = Cluster {
            cores: Vec::new(),
            durable: vec![Vec::new(); n],
            volatile: vec![Vec::new(); n],
            net: VecDeque::new(),
            events: vec![Vec::new(); n],
            now: Millis(0),
        };
        let all: Vec<usize> = (0..n).collect();
        for i in 0..n {
            let mut core = MigrationCore::new(id(i), config(), Box::new(Standard) as _, c.now);
            core.handle_view(c.now, &view(1, &all));
            core.handle_quorum(c.now, true);
            c.cores.push(core);
        }
        c.cores[0].spawn(E, BubbleId(0), b"state".to_vec()).unwrap();
        c.settle();
        c
    }

    fn drain(&mut self, i: usize) {
        while let Some((to, m)) = self.cores[i].poll_transmit() {
            self.net.push_back((i, (to.0 - 1) as usize, m));
        }
        while let Some(r) = self.cores[i].poll_persist() {
            self.volatile[i].push(r);
        }
        while let Some(e) = self.cores[i].poll_event() {
            self.events[i].push(e);
        }
    }

    fn sync(&mut self, i: usize) {
        self.drain(i);
        if let Some(&(last, _)) = self.volatile[i].last() {
            let records: Vec<Record> = self.volatile[i].drain(..).map(|(_, r)| r).collect();
            self.durable[i].extend(records);
            self.cores[i].handle_persisted(last);
        }
        self.drain(i);
    }

    /// Delivers the next message (unless `lose`), after syncing every log.
    fn step(&mut self, lose: impl Fn(usize, usize, &Message) -> bool) -> bool {
        for i in 0..self.cores.len() {
            self.sync(i);
        }
        let Some((from, to, m)) = self.net.pop_front() else { return false };
        if !lose(from, to, &m) {
            self.cores[to].handle_message(self.now, id(from), m);
            self.drain(to);
        }
        true
    }

    fn settle(&mut self) {
        while self.step(|_, _, _| false) {}
    }

    /// Advances time by `ms`, firing due timers.
    fn advance(&mut self, ms: u64) {
        self.now = self.now.plus(ms);
        for i in 0..self.cores.len() {
            self.cores[i].handle_timeout(self.now);
            self.drain(i);
        }
    }

    fn crash(&mut self, i: usize, members: &[usize], epoch: u64) {
        self.volatile[i].clear();
        self.net.retain(|(_, to, _)| *to != i);
        let records = self.durable[i].clone();
        let policy = Box::new(Standard) as _;
        self.cores[i] = MigrationCore::recover(id(i), config(), policy, self.now, records);
        self.cores[i].handle_view(self.now, &view(epoch, members));
        self.cores[i].handle_quorum(self.now, true);
        self.drain(i);
    }

    /// Every member installs `view`.
    fn install(&mut self, view: &View) {
        for i in 0..self.cores.len() {
            self.cores[i].handle_view(self.now, view);
            self.drain(i);
        }
    }

    fn owners(&self, e: EntityId) -> Vec<(usize, Ownership)> {
        let owned = self.cores.iter().enumerate();
        owned.filter_map(|(i, c)| c.owned().get(&e).map(|o| (i, o.ownership))).collect()
    }

    fn ended(&self, i: usize) -> Vec<(Outcome, Reason)> {
        let ended = self.events[i].iter().filter_map(|e| match e {
            Event::Ended { outcome, reason, .. } => Some((*outcome, *reason)),
            _ => None,
        });
        ended.collect()
    }
}

#[test]
fn a_move_commits_once_and_the_entity_carries_its_state_and_next_epoch() {
    let mut c = Cluster::new(2);
    c.cores[0].request(c.now, E, id(1), BubbleId(1)).unwrap();
    c.settle();
    assert_eq!(c.owners(E), vec![(1, Ownership(2))]);
    assert_eq!(c.cores[1].owned()[&E].state, b"state");
    assert_eq!(c.cores[1].owned()[&E].bubble, BubbleId(1));
    assert!(c.cores.iter().all(|k| k.outgoing().is_empty() && k.incoming().is_empty()));
    assert_eq!(c.ended(0), vec![(Outcome::Commit, Reason::Decided)]);
    assert_eq!(c.ended(1), vec![(Outcome::Commit, Reason::Decided)]);
}

#[test]
fn a_relocation_is_carried_by_the_next_move_and_forgotten_by_a_restart() {
    let mut c = Cluster::new(2);
    let logged = c.durable[0].len();
    c.cores[0].relocate(E, BubbleId(2), b"moved".to_vec()).unwrap();
    c.settle();
    assert_eq!(c.durable[0].len(), logged, "a relocation logs nothing");
    assert_eq!(c.cores[0].owned()[&E].bubble, BubbleId(2));
    // A restart finds what was logged: the spawn's bubble and state.
    c.crash(0, &[0, 1], 1);
    assert_eq!(c.cores[0].owned()[&E].bubble, BubbleId(0));
    assert_eq!(c.cores[0].owned()[&E].state, b"state");
    // Relocated again, the next move carries the new state from the new bubble.
    c.cores[0].relocate(E, BubbleId(3), b"moved".to_vec()).unwrap();
    let id_ = c.cores[0].request(c.now, E, id(1), BubbleId(1)).unwrap();
    assert_eq!(c.cores[0].outgoing()[&id_].migration.source_bubble, BubbleId(3));
    c.settle();
    assert_eq!(c.cores[1].owned()[&E].state, b"moved");
    // Not owned (any more): refused, nothing changed.
    assert_eq!(c.cores[0].relocate(E, BubbleId(0), Vec::new()), Err(Fence::NotOwner));
    c.cores[1].handle_quorum(c.now, false);
    assert_eq!(c.cores[1].relocate(E, BubbleId(0), Vec::new()), Err(Fence::NoQuorum));
    assert_eq!(c.cores[1].owned()[&E].state, b"moved");
}

#[test]
fn a_snapshot_rebuilds_the_table_alone_or_after_the_log_it_replaces() {
    const F: EntityId = EntityId(8);
    let mut c = Cluster::new(3);
    c.cores[0].spawn(F, BubbleId(0), b"f".to_vec()).unwrap();
    c.cores[0].relocate(E, BubbleId(5), b"relocated".to_vec()).unwrap();
    // E: moved to 1 and back again, then to 1 for good; F: its commit decided and logged at
    // 0, the commit message lost, 2 in doubt.
    for (from, to) in [(0, 1), (1, 0), (0, 1)] {
        c.cores[from].request(c.now, E, id(to), BubbleId(to as u64)).unwrap();
        c.settle();
    }
    c.cores[0].spawn(EntityId(9), BubbleId(0), b"g".to_vec()).unwrap();
    c.cores[0].relocate(EntityId(9), BubbleId(6), b"g moved".to_vec()).unwrap();
    c.cores[0].request(c.now, F, id(2), BubbleId(2)).unwrap();
    while c.step(|_, _, m| matches!(m, Message::Commit { .. })) {}
    assert_eq!(c.cores[0].outgoing().values().next().unwrap().phase, Phase::Committing);
    assert_eq!(c.cores[2].incoming().values().next().unwrap().phase, Phase::Prepared);

    let config = config();
    let rebuild = |c: &Cluster, i: usize, records: Vec<Record>| {
        MigrationCore::recover(id(i), config, Box::new(Standard) as _, c.now, records)
    };
    let table = |k: &MigrationCore<Box<dyn MigrationPolicy>>| {
        let flights = |f: &engine::Flight| (f.migration, f.ownership, f.phase, f.state.clone());
        (
            k.owned().clone(),
            k.outgoing().values().map(flights).collect::<Vec<_>>(),
            k.incoming().values().map(flights).collect::<Vec<_>>(),
        )
    };
    for i in 0..3 {
        c.sync(i);
        let snapshot = c.cores[i].snapshot();
        let alone = rebuild(&c, i, snapshot.clone());
        let mut both = c.durable[i].clone();
        both.extend(snapshot.clone());
        let after_log = rebuild(&c, i, both);
        let now = table(&c.cores[i]);
        assert_eq!(table(&alone), now, "member {i} from its snapshot");
        assert_eq!(table(&after_log), now, "member {i} from its log and its snapshot");
        c.durable[i] = snapshot;
    }
    // Restarted from their snapshots alone: F is delivered once, E stays with 1, and 0
    // neither takes E back from an old prepare nor creates it again.
    for i in 0..3 {
        c.crash(i, &[0, 1, 2], 2);
    }
    assert_eq!(c.cores[0].spawn(E, BubbleId(0), Vec::new()), Err(Fence::Conflict));
    c.advance(100);
    c.settle();
    assert_eq!(c.owners(F), vec![(2, Ownership(2))]);
    assert_eq!(c.owners(E), vec![(1, Ownership(4))]);
    assert_eq!(c.cores[1].owned()[&E].state, b"relocated");
    // The snapshot made a relocation durable (the log alone would have lost it).
    assert_eq!(c.cores[0].owned()[&EntityId(9)].state, b"g moved");
    assert_eq!(c.cores[0].owned()[&EntityId(9)].bubble, BubbleId(6));
    assert!(c.cores.iter().all(|k| k.outgoing().is_empty() && k.incoming().is_empty()));
}

#[test]
fn a_snapshot_keeps_an_entity_that_came_back_before_its_move_away_was_confirmed() {
    // Found by the whole-cluster simulator (chaos seed 559): the snapshot listed the owned
    // entity before the undelivered commit of its earlier move, whose replay then removed it.
    let mut c = Cluster::new(2);
    let lose_done = |_: usize, _: usize, m: &Message| matches!(m, Message::Done { .. });
    c.cores[0].request(c.now, E, id(1), BubbleId(1)).unwrap();
    while c.step(lose_done) {}
    c.cores[1].request(c.now, E, id(0), BubbleId(0)).unwrap();
    while c.step(lose_done) {}
    assert_eq!(c.owners(E), vec![(0, Ownership(3))]);
    assert_eq!(c.cores[0].outgoing().len(), 1, "its move away is unconfirmed");
    c.sync(0);
    c.durable[0] = c.cores[0].snapshot();
    c.crash(0, &[0, 1], 1);
    assert_eq!(c.owners(E), vec![(0, Ownership(3))], "owned again after the restart");
    c.advance(100);
    c.settle();
    assert_eq!(c.owners(E), vec![(0, Ownership(3))]);
    assert!(c.cores.iter().all(|k| k.outgoing().is_empty() && k.incoming().is_empty()));
}

#[test]
fn a_to_b_to_a_to_b_in_quick_succession_works() {
    let mut c = Cluster::new(2);
    for (from, to) in [(0, 1), (1, 0), (0, 1)] {
        c.cores[from].request(c.now, E, id(to), BubbleId(to as u64)).unwrap();
        c.settle();
    }
    assert_eq!(c.owners(E), vec![(1, Ownership(4))]);
}

#[test]
fn a_slow_prepare_that_succeeds_after_the_source_gave_up_does_not_double_the_entity() {
    let mut c = Cluster::new(2);
    c.cores[0].request(c.now, E, id(1), BubbleId(1)).unwrap();
    c.drain(0);
    let prepare = c.net.pop_front().unwrap();
    // The standard policy gives up after 3 attempts or 300 ms; every resend is lost.
    for _ in 0..4 {
        c.advance(100);
        c.net.clear();
    }
    assert_eq!(c.ended(0), vec![(Outcome::Abort, Reason::TimedOut)]);
    assert!(c.cores[0].acting(E), "the source acts on it again");
    // The first prepare arrives now and is admitted; the target learns abort.
    c.net.push_back(prepare);
    c.settle();
    c.advance(100);
    c.settle();
    assert_eq!(c.owners(E), vec![(0, Ownership(1))]);
    assert!(c.cores[1].incoming().is_empty());
    assert_eq!(c.ended(1), vec![(Outcome::Abort, Reason::SourceAborted)]);
}

#[test]
fn a_slow_commit_is_never_aborted_and_arrives_once() {
    let mut c = Cluster::new(2);
    c.cores[0].request(c.now, E, id(1), BubbleId(1)).unwrap();
    // Prepare and vote get through; every commit is lost for 5 s.
    while c.step(|_, _, m| matches!(m, Message::Commit { .. })) {}
    for _ in 0..50 {
        c.advance(100);
        while c.step(|_, _, m| matches!(m, Message::Commit { .. })) {}
    }
    assert_eq!(
        c.owners(E),
        Vec::new(),
        "in flight: the source gave it away, the target holds it in doubt"
    );
    assert_eq!(c.cores[0].outgoing().values().next().unwrap().phase, Phase::Committing);
    assert_eq!(c.cores[1].incoming().values().next().unwrap().phase, Phase::Prepared);
    c.advance(100);
    c.settle();
    assert_eq!(c.owners(E), vec![(1, Ownership(2))]);
    assert!(c.ended(0).iter().all(|(o, _)| *o == Outcome::Commit));
}

#[test]
fn a_crash_before_the_commit_is_durable_keeps_the_entity_at_the_source() {
    let mut c = Cluster::new(2);
    c.cores[0].request(c.now, E, id(1), BubbleId(1)).unwrap();
    // Prepare, then the vote reaches the source, which logs commit but crashes before its
    // log syncs: nothing of the commit was sent.
    assert!(c.step(|_, _, _| false));
    c.sync(1);
    let (from, to, vote) = c.net.pop_front().unwrap();
    assert_eq!((from, to), (1, 0));
    c.cores[0].handle_message(c.now, id(1), vote);
    c.drain(0);
    assert!(c.net.is_empty(), "the commit waits for its record");
    c.crash(0, &[0, 1], 1);
    c.advance(100);
    c.settle();
    assert_eq!(c.owners(E), vec![(0, Ownership(1))]);
    assert!(c.cores[1].incoming().is_empty(), "the target asked and was told abort");
}

#[test]
fn a_crash_after_the_commit_is_durable_delivers_it_after_restart() {
    let mut c = Cluster::new(2);
    c.cores[0].request(c.now, E, id(1), BubbleId(1)).unwrap();
    assert!(c.step(|_, _, _| false));
    c.sync(1);
    let (_, _, vote) = c.net.pop_front().unwrap();
    c.cores[0].handle_message(c.now, id(1), vote);
    c.sync(0);
    c.net.clear();
    c.crash(0, &[0, 1], 1);
    assert_eq!(c.owners(E), Vec::new());
    c.advance(100);
    c.settle();
    assert_eq!(c.owners(E), vec![(1, Ownership(2))]);
    assert!(c.cores[0].outgoing().is_empty());
}

#[test]
fn a_target_that_crashes_in_doubt_asks_again_and_takes_the_entity() {
    let mut c = Cluster::new(2);
    c.cores[0].request(c.now, E, id(1), BubbleId(1)).unwrap();
    while c.step(|_, _, m| matches!(m, Message::Commit { .. })) {}
    c.crash(1, &[0, 1], 1);
    assert_eq!(c.cores[1].incoming().len(), 1, "the admission is in its log");
    c.advance(100);
    c.settle();
    assert_eq!(c.owners(E), vec![(1, Ownership(2))]);
}

#[test]
fn an_old_copy_of_a_prepare_is_refused_by_the_ownership_epoch() {
    let mut c = Cluster::new(3);
    c.cores[0].request(c.now, E, id(1), BubbleId(1)).unwrap();
    c.drain(0);
    let old = c.net.front().cloned().unwrap();
    c.settle();
    c.cores[1].request(c.now, E, id(2), BubbleId(2)).unwrap();
    c.settle();
    // Member 1 restarts (forgetting which migrations ended), then the copy arrives.
    c.crash(1, &[0, 1, 2], 1);
    c.net.push_back(old);
    c.settle();
    c.advance(100);
    c.settle();
    assert_eq!(c.owners(E), vec![(2, Ownership(3))]);
    assert!(c.cores[1].incoming().is_empty());
}

#[test]
fn without_a_quorum_nothing_starts_and_nothing_commits() {
    let mut c = Cluster::new(2);
    c.cores[0].handle_quorum(c.now, false);
    let refused = c.cores[0].request(c.now, E, id(1), BubbleId(1));
    assert_eq!(refused, Err(Reason::Fenced(Fence::NoQuorum)));
    c.cores[0].handle_quorum(c.now, true);
    c.cores[0].request(c.now, E, id(1), BubbleId(1)).unwrap();
    assert!(c.step(|_, _, _| false));
    c.sync(1);
    c.cores[0].handle_quorum(c.now, false);
    c.settle();
    assert_eq!(c.cores[0].outgoing().values().next().unwrap().phase, Phase::Preparing);
    c.cores[0].handle_quorum(c.now, true);
    c.advance(100);
    c.settle();
    assert_eq!(c.owners(E), vec![(1, Ownership(2))]);
}

#[test]
fn a_target_leaving_the_view_aborts_an_undecided_move_and_a_decided_one_completes() {
    let mut c = Cluster::new(3);
    c.cores[0].request(c.now, E, id(1), BubbleId(1)).unwrap();
    c.drain(0);
    c.install(&view(2, &[0, 2]));
    assert_eq!(c.ended(0), vec![(Outcome::Abort, Reason::ViewChanged)]);
    c.settle();
    assert_eq!(c.owners(E), vec![(0, Ownership(1))]);
    // Decided before the target left: the commit is delivered whoever left.
    c.cores[0].request(c.now, E, id(2), BubbleId(2)).unwrap();
    while c.step(|_, _, m| matches!(m, Message::Commit { .. })) {}
    c.install(&view(3, &[0, 1]));
    assert!(!c.cores[2].active());
    c.advance(100);
    c.settle();
    assert_eq!(c.owners(E), vec![(2, Ownership(2))]);
    assert!(!c.cores[2].acting(E), "owned, but not acted on outside the view");
}

/// A policy that answers unsafely wherever it can.
struct Hostile;

impl MigrationPolicy for Hostile {
    fn on_request(&mut self, _: &Migration, _: &Load) -> Admission {
        Admission::Admit
    }
    fn on_prepare(&mut self, _: &Migration, _: &Load) -> Admission {
        Admission::Admit
    }
    fn on_vote(&mut self, _: &Status, _: Admission) -> Outcome {
        Outcome::Commit
    }
    fn on_timeout(&mut self, _: &Status) -> TimeoutAction {
        TimeoutAction::Abort
    }
    fn on_view_change(&mut self, _: &View, pending: &[Status]) -> Vec<PendingAction> {
        vec![PendingAction::Abort; pending.len() + 1]
    }
}

#[test]
fn unsafe_policy_answers_are_overruled_and_the_entity_still_moves_once() {
    let mut c = Cluster::new(2);
    let tight = MigrationConfig { entities_max: 0, ..config() };
    c.cores[1] = MigrationCore::new(id(1), tight, Box::new(Hostile) as _, c.now);
    c.cores[1].handle_view(c.now, &view(1, &[0, 1]));
    c.cores[1].handle_quorum(c.now, true);
    c.cores[0] = MigrationCore::new(id(0), config(), Box::new(Hostile) as _, c.now);
    c.cores[0].handle_view(c.now, &view(1, &[0, 1]));
    c.cores[0].handle_quorum(c.now, true);
    c.cores[0].spawn(E, BubbleId(0), Vec::new()).unwrap();
    c.sync(0);
    // The target admits past its entity limit: overruled, refused.
    c.cores[0].request(c.now, E, id(1), BubbleId(1)).unwrap();
    c.settle();
    assert_eq!(c.cores[1].overruled(), 1);
    assert_eq!(c.ended(0), vec![(Outcome::Abort, Reason::Refused(Refusal::OverCapacity))]);
    assert_eq!(c.owners(E), vec![(0, Ownership(1))]);
}

#[test]
fn bubble_moves_run_at_most_moves_max_at_once_and_all_arrive() {
    let mut c = Cluster::new(2);
    for e in 100..110 {
        c.cores[0].spawn(EntityId(e), BubbleId(5), Vec::new()).unwrap();
    }
    c.sync(0);
    c.cores[0].place(c.now, BTreeMap::from([(BubbleId(5), id(1))]));
    assert_eq!(c.cores[0].outgoing().len(), 2);
    for _ in 0..20 {
        c.settle();
        c.advance(100);
        assert!(c.cores[0].outgoing().len() <= 2);
    }
    c.settle();
    assert!((100..110).all(|e| c.owners(EntityId(e)) == vec![(1, Ownership(2))]));
    assert_eq!(c.owners(E), vec![(0, Ownership(1))], "not in a moved bubble");
}
