//! Exhaustive model check of view-change agreement with stateright: the real `Classic` of four
//! members (acceptor and coordinator) deciding the change after one view, with every
//! interleaving of fast votes, classic rounds started by any member (with any candidate),
//! message delivery in any order and any number of times (or never: loss), and crashes after
//! which a member resumes with the acceptor state it kept on disk (its promise and its
//! acceptance, as `MemberNode::resume` does) and forgets everything else.
//!
//! Learning is global, as in the textbook statement of Paxos's safety: a cut is *chosen* once
//! a quorum of members accepted it at one rank (at [`Rank::FAST`], their fast votes: ⌈3n/4⌉;
//! at a classic rank a majority), whether or not any member heard of it. Votes and
//! acceptances are therefore not sent here (they only feed learners), which keeps the state
//! space small enough to search whole.
//!
//! Members are more free here than in the node: a member fast-votes for any cut that does not
//! remove it (the node votes only for what its own tally supports) and accepts any proposal
//! that does not remove it (the node also wants its subjects reported to its tally), and a
//! coordinator proposes any cut when free. The one rule kept is the one the classic round's
//! choice relies on: no member votes for, or accepts, its own removal. Safety here is safety
//! with the node's extra guards.
//!
//! Properties: at most one cut is ever chosen, across restarts; and both a fast choice and a
//! classic one happen somewhere (the check is not vacuous). A member that
//! forgets its acceptor state when it restarts (`forget`) must break agreement: the check
//! catches that.
//!
//! Bounds, per test: the view's size, classic rounds started in all, and crashes. Four
//! members with two classic rounds is beyond this machine's memory (tens of millions of
//! states); three members with two rounds is the `--ignored` test.

use std::collections::BTreeSet;

use luciole_proto::MemberId;
use luciole_proto::membership::classic::{Accepted, Classic, Rank};
use luciole_proto::membership::cut::Cut;
use luciole_proto::membership::fast::fast_quorum;
use stateright::{Checker, Model, Property};

fn id(i: usize) -> MemberId {
    MemberId(i as u128 + 1)
}

fn members(n: usize) -> Vec<MemberId> {
    (0..n).map(id).collect()
}

/// The cuts members may propose: each removes one of the last two members.
fn cuts(n: usize) -> Vec<Cut> {
    [n - 1, n - 2].iter().map(|&i| Cut { down: vec![id(i)], ..Cut::default() }).collect()
}

fn removes(cut: &Cut, i: usize) -> bool {
    cut.down.contains(&id(i))
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Msg {
    Prepare(Rank),
    Promise(Rank, Accepted),
    Accept(Rank, Cut),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct State {
    /// The view's size.
    n: usize,
    members: Vec<Classic>,
    /// Every message ever sent, (to, from, message): one can arrive at any time, again, or
    /// never.
    net: BTreeSet<(usize, usize, Msg)>,
    /// Every acceptance ever made: (rank, cut, member).
    history: BTreeSet<(Rank, Cut, usize)>,
    starts: u8,
    crashes: u8,
}

#[derive(Clone, Debug, PartialEq)]
enum Action {
    FastVote { i: usize, cut: Cut },
    Start { i: usize, candidate: Option<Cut> },
    Deliver { to: usize, from: usize, msg: Msg },
    Crash { i: usize },
}

struct Agreement {
    /// The view's size.
    n: usize,
    starts: u8,
    crashes: u8,
    /// A restarted member forgets what it promised and accepted (no stable storage).
    forget: bool,
}

impl State {
    fn broadcast(&mut self, from: usize, msg: Msg) {
        for to in (0..self.n).filter(|&to| to != from) {
            self.net.insert((to, from, msg.clone()));
        }
    }

    /// Member `i` accepts `cut` at `rank` if it may (the node's `accept`).
    fn accept(&mut self, i: usize, rank: Rank, cut: Cut) {
        if !removes(&cut, i) && self.members[i].handle_accept(rank, &cut) {
            self.history.insert((rank, cut, i));
        }
    }

    /// The cuts chosen so far: accepted by a quorum at one rank; with whether at the fast one.
    fn chosen(&self) -> BTreeSet<(Cut, bool)> {
        let mut counts: std::collections::BTreeMap<(Rank, &Cut), usize> = Default::default();
        for (rank, cut, _) in &self.history {
            *counts.entry((*rank, cut)).or_default() += 1;
        }
        counts
            .into_iter()
            .filter(|((rank, _), k)| {
                let quorum = if *rank == Rank::FAST { fast_quorum(self.n) } else { self.n / 2 + 1 };
                *k >= quorum
            })
            .map(|((rank, cut), _)| (cut.clone(), rank == Rank::FAST))
            .collect()
    }

    fn deliver(&mut self, to: usize, from: usize, msg: Msg) {
        match msg {
            Msg::Prepare(rank) => {
                let c = &mut self.members[to];
                if c.coordinator_of(rank) == Some(id(from))
                    && let Some(accepted) = c.handle_prepare(rank)
                {
                    self.net.insert((from, to, Msg::Promise(rank, accepted)));
                }
            }
            Msg::Promise(rank, accepted) => {
                if let Some(cut) = self.members[to].handle_promise(id(from), rank, accepted) {
                    self.broadcast(to, Msg::Accept(rank, cut.clone()));
                    self.accept(to, rank, cut);
                }
            }
            Msg::Accept(rank, cut) => {
                if self.members[to].coordinator_of(rank) == Some(id(from)) {
                    self.accept(to, rank, cut);
                }
            }
        }
    }
}

impl Model for Agreement {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        vec![State {
            n: self.n,
            members: (0..self.n).map(|i| Classic::new(members(self.n), id(i))).collect(),
            net: BTreeSet::new(),
            history: BTreeSet::new(),
            starts: 0,
            crashes: 0,
        }]
    }

    fn actions(&self, s: &State, actions: &mut Vec<Action>) {
        for i in 0..self.n {
            let c = &s.members[i];
            if !c.has_accepted() && c.promised() < Rank::FAST {
                for cut in cuts(self.n).into_iter().filter(|cut| !removes(cut, i)) {
                    actions.push(Action::FastVote { i, cut });
                }
            }
            if s.starts < self.starts {
                actions.push(Action::Start { i, candidate: None });
                for cut in cuts(self.n) {
                    actions.push(Action::Start { i, candidate: Some(cut) });
                }
            }
            if s.crashes < self.crashes {
                actions.push(Action::Crash { i });
            }
        }
        for (to, from, msg) in &s.net {
            actions.push(Action::Deliver { to: *to, from: *from, msg: msg.clone() });
        }
    }

    fn next_state(&self, s: &State, action: Action) -> Option<State> {
        let mut s = s.clone();
        match action {
            Action::FastVote { i, cut } => {
                if !s.members[i].vote_fast(&cut) {
                    return None;
                }
                s.history.insert((Rank::FAST, cut, i));
            }
            Action::Start { i, candidate } => {
                s.starts += 1;
                let (rank, proposal) = s.members[i].start(candidate);
                s.broadcast(i, Msg::Prepare(rank));
                if let Some(cut) = proposal {
                    s.broadcast(i, Msg::Accept(rank, cut.clone()));
                    s.accept(i, rank, cut);
                }
            }
            Action::Deliver { to, from, msg } => {
                let before = s.members[to].clone();
                let sent = s.net.len();
                let accepted = s.history.len();
                s.deliver(to, from, msg);
                if s.members[to] == before && s.net.len() == sent && s.history.len() == accepted {
                    return None;
                }
            }
            Action::Crash { i } => {
                s.crashes += 1;
                let c = &s.members[i];
                let (promised, accepted) = (c.promised(), c.accepted().cloned());
                s.members[i] = if self.forget {
                    Classic::new(members(self.n), id(i))
                } else {
                    Classic::restored(members(self.n), id(i), promised, accepted)
                };
            }
        }
        Some(s)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        let mut p = vec![
            Property::always("one cut chosen", |_, s: &State| {
                s.chosen().iter().map(|(c, _)| c).collect::<BTreeSet<_>>().len() <= 1
            }),
            Property::sometimes("a classic choice", |_, s: &State| {
                s.chosen().iter().any(|(_, fast)| !*fast)
            }),
        ];
        // In a view of three the fast quorum is everyone, and a cut's subject never votes
        // for it.
        if self.n >= 4 {
            p.push(Property::sometimes("a fast choice", |_, s: &State| {
                s.chosen().iter().any(|(_, fast)| *fast)
            }));
        }
        p
    }
}

#[cfg(not(feature = "mutant-classic-binding"))]
fn check(n: usize, starts: u8, crashes: u8) {
    let model = Agreement { n, starts, crashes, forget: false };
    // The checker's own wall time, for the report; the cores never see a clock.
    #[allow(clippy::disallowed_methods)]
    let start = std::time::Instant::now();
    let checker = model.checker().threads(2).spawn_bfs().join();
    eprintln!(
        "agreement model, {n} members, {starts} classic round(s), {crashes} crash(es): {} unique \
         states, {} generated, depth {}, {:.1} s",
        checker.unique_state_count(),
        checker.state_count(),
        checker.max_depth(),
        start.elapsed().as_secs_f64()
    );
    if let Some(path) = checker.discovery("one cut chosen") {
        eprintln!("{:#?}", path.into_actions());
    }
    checker.assert_properties();
}

/// Four members: a fast round, one classic round, one restart (87,052 states).
#[cfg(not(feature = "mutant-classic-binding"))]
#[test]
fn four_members_choose_one_cut_whatever_the_order_losses_and_a_restart() {
    check(4, 1, 1);
}

/// Three members, two competing classic rounds and a restart: where a classic acceptance
/// binds the next coordinator or not (about a million states: 45 s in a release build).
/// `cargo test --release -p luciole-proto --test agreement_model -- --ignored`
#[cfg(not(feature = "mutant-classic-binding"))]
#[test]
#[ignore = "about a minute in a release build; run with --ignored"]
fn three_members_choose_one_cut_across_two_classic_rounds_and_a_restart() {
    check(3, 2, 1);
}

/// The steps to the first state where two cuts are chosen; panics if there is none.
fn counterexample(model: Agreement) -> usize {
    let checker = model
        .checker()
        .threads(2)
        .finish_when(stateright::HasDiscoveries::AnyFailures)
        .spawn_bfs()
        .join();
    let path = checker.discovery("one cut chosen").expect("the broken model went unnoticed");
    path.into_actions().len()
}

#[cfg(not(feature = "mutant-classic-binding"))]
#[test]
fn a_member_that_forgets_its_votes_when_it_restarts_breaks_agreement() {
    let steps = counterexample(Agreement { n: 4, starts: 1, crashes: 1, forget: true });
    eprintln!("forgetting caught in {steps} steps");
}

/// Built with `--features mutant-classic-binding` (the classic binding rule counts no silent
/// member), the check must find two cuts chosen: two classic rounds in a view of three
/// suffice.
#[cfg(feature = "mutant-classic-binding")]
#[test]
fn a_broken_binding_rule_is_caught() {
    let steps = counterexample(Agreement { n: 3, starts: 2, crashes: 0, forget: false });
    eprintln!("broken binding rule caught in {steps} steps");
}
