//! The whole cluster on the simulator: membership, migration and the write-ahead log on every
//! node, under each fault class, for a fixed list of seeds (`luciole-sim --cluster` runs
//! sweeps). A failure prints the seed's replay command.

use luciole_sim::cluster::{ClusterSettings, Fault, replay, run};

fn seeds(fault: Fault, seeds: std::ops::Range<u64>) {
    let settings = ClusterSettings::new(5);
    for seed in seeds {
        match run(fault, seed, &settings) {
            Ok(o) => {
                assert!(o.commits > 0, "{fault:?} seed {seed}: nothing committed: {o:?}");
                eprintln!("{fault:?} seed {seed}: {o:?}");
            }
            Err(e) => panic!(
                "{fault:?} seed {seed}: INVARIANT BROKEN: {e}\nreplay: {}",
                replay(fault, seed, &settings)
            ),
        }
    }
}

#[test]
fn a_healthy_cluster_moves_an_entity_back_and_forth_and_others_at_random() {
    let settings = ClusterSettings::new(5);
    let o = run(Fault::None, 1, &settings).unwrap_or_else(|e| panic!("{e}"));
    // A→B→A→B…: the entity goes back as soon as it arrives; each move is a new migration.
    assert!(o.ping_pongs > 300, "{o:?}");
    assert!(o.commits > o.ping_pongs, "{o:?}");
    assert_eq!(o.aborts, 0, "{o:?}");
}

#[test]
fn slow_prepares_and_slow_commits_succeed_or_abort_whole() {
    seeds(Fault::SlowPrepare, 1..3);
    seeds(Fault::SlowCommit, 1..3);
}

#[test]
fn duplicated_reordered_and_lost_messages_change_nothing() {
    seeds(Fault::Duplicates, 1..3);
    seeds(Fault::Loss, 1..3);
}

/// Loss seed 189: in a view of four, only one member heard the votes that decided the next
/// view; its welcome alone could not move the others, so the view lost its quorum for good.
/// Members now send their own acceptances again, and the others learn the decision.
#[test]
fn a_decision_only_one_member_heard_reaches_the_others() {
    seeds(Fault::Loss, 189..190);
}

#[test]
fn a_participant_evicted_mid_migration_and_a_minority_source() {
    seeds(Fault::Evict, 1..3);
    seeds(Fault::Minority, 1..3);
}

#[test]
fn crashes_between_log_and_send_and_between_send_and_log() {
    seeds(Fault::Crashes, 1..4);
}

/// Several fault classes at once.
#[test]
fn everything_at_once() {
    for seed in [1, 2, 3, 4, 5] {
        seeds(Fault::Chaos, seed..seed + 1);
    }
}

/// Seeds that stalled for good before restarted members resumed as the acceptors they were:
/// 193 and 234 (a value bound to the vote of a member that came back as a stranger), 43 (a
/// resumed member with an empty tally refused the cut it had voted for), 137 and 238 (a
/// classic acceptance bound every later round although it could not have been decided),
/// 2713 (the one member that learned a decision restarted in the new view: it accepts the
/// deciding cut again when the others propose it, and kept its old acceptances on disk).
#[test]
fn a_restarted_member_answers_for_its_votes_and_nothing_stays_bound_for_ever() {
    for seed in [193, 234, 43, 137, 238, 2713] {
        seeds(Fault::Chaos, seed..seed + 1);
    }
}

/// Chaos seed 559: a member's snapshot listed an entity it owned again before the
/// undelivered commit of its earlier move; after a crash that replayed them, the commit
/// removed the entity and nobody held it.
#[test]
fn a_snapshot_of_an_entity_back_before_its_move_away_was_confirmed_keeps_it() {
    seeds(Fault::Chaos, 559..560);
}

/// Seeds 904 and 1116: a member that crashed and restarted was welcomed back, with the same
/// id, into a view whose agreement it had voted in before the crash, by members that had
/// missed the change it voted for; with them it made a second majority of that view and a
/// second, different view at the next epoch. A restarted node now takes only a view newer
/// than any it installed (`Joiner::after`), or resumes as the acceptor it was, with what it
/// promised and accepted kept on disk (`MemberNode::resume`). They must not break an
/// invariant.
#[test]
fn a_restarted_member_cannot_vote_twice_in_one_view() {
    let settings = ClusterSettings::new(5);
    for seed in [904, 1116] {
        if let Err(e) = run(Fault::Chaos, seed, &settings) {
            assert!(e.starts_with("not settled"), "chaos seed {seed}: {e}");
        }
    }
}

/// `FAULT=chaos SEED=3 cargo test -p luciole-sim --test cluster one -- --ignored --nocapture`
/// (with `LUCIOLE_SIM_TRACE=1` to follow the faults and the nodes' lives).
#[test]
#[ignore]
fn one() {
    let fault = std::env::var("FAULT").expect("FAULT");
    let fault = <Fault as clap::ValueEnum>::from_str(&fault, true).expect("a fault class");
    let seed: u64 = std::env::var("SEED").expect("SEED").parse().expect("a seed");
    seeds(fault, seed..seed + 1);
}
