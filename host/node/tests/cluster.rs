//! Five real `luciole node run` processes on loopback: they agree on views, a SIGKILLed node is
//! removed by one agreed view change, a restarted one rejoins, two stopped at once go in one
//! change, and every node hands its policies the same view.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::{Cluster, STEP_DEADLINE, epoch, members, node_id};
use serde_json::Value;

const NODES: usize = 5;

/// Every running node reports the same coordinator, and it is in `view`.
fn same_coordinator(c: &Cluster, view: &Value) -> String {
    let started = Instant::now();
    loop {
        let chosen: BTreeSet<Option<String>> = c
            .running()
            .iter()
            .map(|&i| c.status(i).and_then(|s| s["coordinator"].as_str().map(String::from)))
            .collect();
        if chosen.len() == 1
            && let Some(Some(coordinator)) = chosen.first()
            && members(view).contains(coordinator)
        {
            return coordinator.clone();
        }
        assert!(started.elapsed() < STEP_DEADLINE, "coordinators {chosen:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn five_processes_agree_remove_a_killed_node_readmit_it_and_remove_two_in_one_change() {
    let mut c = Cluster::init(NODES, NODES);
    let first = c
        .agreed("the founding view", |v| v["members"].as_array().is_some_and(|m| m.len() == NODES));
    // Policies see the same view on every node: same id, capacities and labels (compared
    // whole above), and every label the node's config gave.
    let labels: BTreeSet<String> = first["members"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|m| {
            m["labels"].as_array().unwrap().iter().map(|l| l.as_str().unwrap().to_string())
        })
        .collect();
    assert_eq!(labels, (1..=NODES).map(|i| format!("node={i}")).collect());
    let coordinator = same_coordinator(&c, &first);

    // SIGKILL the coordinator: every survivor installs the same next view without it.
    let victim = (0..NODES).find(|&i| node_id(&c, i) == coordinator).expect("a node coordinates");
    c.kill(victim);
    let killed_at = Instant::now();
    let e0 = epoch(&first);
    let without = c.agreed("the view without the killed node", |v| {
        epoch(v) > e0 && !members(v).contains(&coordinator)
    });
    eprintln!("crash to agreed view: {:?}", killed_at.elapsed());
    assert_eq!(members(&without).len(), NODES - 1);
    assert_eq!(epoch(&without), e0 + 1, "one view change\n{}", c.logs());
    let next = same_coordinator(&c, &without);
    assert_ne!(next, coordinator, "the coordinator follows the policy to a live member");

    // Restart it: it rejoins.
    c.start(victim);
    let back = c.agreed("the view with the restarted node", |v| members(v).len() == NODES);
    assert!(members(&back).contains(&coordinator));
    // It came back as the acceptor it was, in the view it kept, learned that view was
    // over for it, and joined again.
    let log = c.log(victim);
    for line in ["resuming in view", "evicted from the view; asking to join again"] {
        assert!(log.contains(line), "{line:?} not in\n{log}");
    }

    // Stop two at once: exactly one view change removes both.
    let (a, b) = (victim, (victim + 2) % NODES);
    let gone = [node_id(&c, a), node_id(&c, b)];
    c.kill(a);
    c.kill(b);
    let e1 = epoch(&back);
    let after =
        c.agreed("the view without the two", |v| gone.iter().all(|g| !members(v).contains(g)));
    assert_eq!(epoch(&after), e1 + 1, "both removed in one view change");
    assert_eq!(members(&after).len(), NODES - 2);
    std::thread::sleep(Duration::from_secs(2));
    let later = c.agreed("the view stays", |_| true);
    assert_eq!(epoch(&later), epoch(&after), "no further change");
    same_coordinator(&c, &later);

    // Both back, then SIGTERM one: it leaves the view and exits cleanly; the others remove it
    // in one view change, without waiting to detect a silence.
    c.start(a);
    c.start(b);
    let all = c.agreed("all five again", |v| members(v).len() == NODES);
    let leaver = c.running()[0];
    let gone = node_id(&c, leaver);
    let asked = Instant::now();
    let status = c.terminate(leaver);
    assert!(status.success(), "exit {status:?}\n{}", c.logs());
    assert!(c.log(leaver).contains("left the view"), "{}", c.log(leaver));
    let left = c.agreed("the view without the node that left", |v| !members(v).contains(&gone));
    eprintln!("SIGTERM to agreed view: {:?}", asked.elapsed());
    assert_eq!(epoch(&left), epoch(&all) + 1, "one view change\n{}", c.logs());
    assert_eq!(members(&left).len(), NODES - 1);
}

/// `luciole demo` runs its processes, shows the view change of the node it kills and the
/// rejoin of the restarted one, and stops them all.
#[test]
fn the_cluster_demo_shows_a_kill_and_a_rejoin_and_stops_its_processes() {
    let base = common::free_base(3, 100);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_luciole"))
        // 18 s: the restart comes at 12 s, and a restarted member first resumes its old view,
        // is told it was removed and joins again — under a loaded CI machine 4 s were once
        // too few for that (evicted at 11 s of 12).
        .args(["demo", "--nodes", "3", "--duration", "18", "--base-port", &base.to_string()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    for want in ["SIGKILL node-", "2 members", "restarting node-", "epoch  3  3 members", "done"] {
        assert!(stdout.contains(want), "missing {want:?} in:\n{stdout}");
    }
    // Every node process is gone: the ports are free again.
    for i in 0..3 {
        assert!(std::net::UdpSocket::bind(("127.0.0.1", base + i)).is_ok(), "node {i} still runs");
    }
}

/// A node whose peers are gone has no quorum, keeps its view, and still answers `status`.
#[test]
fn status_answers_and_says_so_when_the_cluster_has_no_quorum() {
    let mut c = Cluster::init(3, 3);
    let view = c.agreed("the founding view", |v| members(v).len() == 3);
    let started = Instant::now();
    while !(0..3).all(|i| c.status(i).is_some_and(|s| s["quorum"] == Value::Bool(true))) {
        assert!(started.elapsed() < STEP_DEADLINE, "no quorum at start");
        std::thread::sleep(Duration::from_millis(20));
    }
    c.kill(1);
    c.kill(2);
    let started = Instant::now();
    loop {
        let s = c.status(0).expect("the survivor answers");
        if s["quorum"] == Value::Bool(false) {
            assert_eq!(s["view"]["epoch"], view["epoch"], "a minority installs no view");
            break;
        }
        assert!(started.elapsed() < STEP_DEADLINE, "quorum never lost: {s}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_luciole"))
        .args(["status", "--config"])
        .arg(c.config(0))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("quorum: no") && stdout.contains("3 member(s)"), "{stdout}");
}
