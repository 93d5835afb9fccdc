//! Entities on real node processes: thousands of moving entities migrating between five
//! nodes over QUIC, logged in each node's write-ahead log, while nodes are SIGKILLed and
//! restarted or cut off from the others; `luciole check conservation` afterwards.
//!
//! `LUCIOLE_CHAOS_SECS` sets how long the kills go on (default 60; 600 for the long run) and
//! `LUCIOLE_CHAOS_SEED` their schedule (printed, so a run can be repeated).

mod common;

use std::time::{Duration, Instant};

use common::{Cluster, members};
use serde_json::Value;

const NODES: usize = 5;
const ENTITIES: u64 = 10_000;

/// The tests of this file take turns: each runs up to five node processes with thousands of
/// entities, and on two cores they would starve each other's timing.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A small seeded generator for the fault schedule.
struct Schedule(u64);

impl Schedule {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lo + self.next() % (hi - lo + 1))
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// Waits (at most `limit`) until conservation holds with every entity created; the report.
fn conserved(c: &Cluster, what: &str, limit: Duration) -> Value {
    let started = Instant::now();
    loop {
        let (code, report) = c.conservation(5);
        if code == 0 {
            let report = report.expect("a report");
            eprintln!("{what}: {report}");
            return report;
        }
        if started.elapsed() > limit {
            panic!("{what}: conservation does not hold (exit {code}): {report:#?}\n{}", c.logs());
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn total(c: &Cluster, field: &str) -> u64 {
    c.running()
        .iter()
        .filter_map(|&i| c.status(i))
        .map(|s| s["world"]["stats"][field].as_u64().unwrap_or(0))
        .sum()
}

#[test]
fn entities_migrate_exactly_once_while_nodes_are_killed_and_restarted() {
    let _turn = one_at_a_time();
    let secs = env_u64("LUCIOLE_CHAOS_SECS").unwrap_or(60);
    let seed = env_u64("LUCIOLE_CHAOS_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
            as u64
    });
    eprintln!("chaos: {secs} s of kills, LUCIOLE_CHAOS_SEED={seed}");
    let mut rng = Schedule(seed);
    // A snapshot every MiB of log (64 by default): the kills strike around checkpoints too.
    let entities = ENTITIES.to_string();
    let flags = ["--entities", &entities, "--checkpoint-mib", "1"];
    let mut c = Cluster::init_with(NODES, NODES, &flags);
    c.agreed("the founding view", |v| members(v).len() == NODES);
    let before = conserved(&c, "created", Duration::from_secs(60));
    assert_eq!(before["expected"], ENTITIES);

    let started = Instant::now();
    let mut kills = 0;
    while started.elapsed() < Duration::from_secs(secs) {
        std::thread::sleep(rng.millis(1_500, 4_000));
        let running = c.running();
        let victim = running[(rng.next() % running.len() as u64) as usize];
        c.kill(victim);
        kills += 1;
        eprintln!("{:>5.1} s: SIGKILL node {}", started.elapsed().as_secs_f64(), victim + 1);
        std::thread::sleep(rng.millis(300, 2_500));
        c.start(victim);
    }
    let committed_during = total(&c, "commits");
    c.agreed("every node back in one view", |v| members(v).len() == NODES);
    let after = conserved(&c, "after the kills", Duration::from_secs(60));
    eprintln!("{kills} kills in {secs} s");
    assert_eq!(after["expected"], ENTITIES);
    assert_eq!(after["lost_count"], 0);
    assert_eq!(after["duplicated_count"], 0);
    assert_eq!(after["commits_logged"], after["moves_counted"]);
    let moved =
        after["moves_counted"].as_u64().unwrap() - before["moves_counted"].as_u64().unwrap();
    assert!(moved > 1_000 * secs / 60, "only {moved} migrations in {secs} s");
    assert!(committed_during > 0);
    assert!(kills >= secs / 5, "{kills} kills");
    // As an operator would ask, by the cluster's directory, in words.
    let out = common::luciole()
        .args(["check", "conservation", "--cluster"])
        .arg(c.dir.path().join("c"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.starts_with("conservation holds (5 node(s)"), "{text}");
    let checkpoints = total(&c, "checkpoints");
    eprintln!("{checkpoints} checkpoints since the nodes' last starts");
    assert!(checkpoints > 0, "no node checkpointed its log");
    // Every restart recovered its log and went on.
    for i in 0..NODES {
        let log = c.log(i);
        assert!(!log.contains("error:"), "node {} failed:\n{log}", i + 1);
    }
}

#[test]
fn a_cut_off_member_stops_committing_the_majority_goes_on_and_conservation_holds_after_the_heal() {
    let _turn = one_at_a_time();
    let c = Cluster::init_with(NODES, NODES, &["--entities", "3000"]);
    c.agreed("the founding view", |v| members(v).len() == NODES);
    conserved(&c, "created", Duration::from_secs(60));
    let minority = 4;
    c.toggle_partition(minority);
    // The majority removes it and goes on committing.
    let started = Instant::now();
    loop {
        let s = c.status(0).expect("node 1 answers");
        if members(&s["view"]).len() == NODES - 1 {
            break;
        }
        assert!(started.elapsed() < common::STEP_DEADLINE, "no view without the minority");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The minority loses its quorum (it cannot tell its view is current) and commits nothing.
    let started = Instant::now();
    while c.status(minority).expect("the minority answers")["quorum"] == true {
        assert!(started.elapsed() < common::STEP_DEADLINE, "the minority keeps its quorum");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    let commits =
        |c: &Cluster, i: usize| c.status(i).unwrap()["world"]["stats"]["commits"].as_u64().unwrap();
    let majority = |c: &Cluster| (0..NODES - 1).map(|i| commits(c, i)).sum::<u64>();
    let (minority_then, majority_then) = (commits(&c, minority), majority(&c));
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(commits(&c, minority), minority_then, "the cut-off member committed");
    assert!(majority(&c) > majority_then + 100, "the majority did not go on");
    // Heal: it learns it was removed, joins again, and its entities are placed again.
    c.toggle_partition(minority);
    c.agreed("all five again", |v| members(v).len() == NODES);
    let after = conserved(&c, "after the heal", Duration::from_secs(60));
    assert_eq!(after["lost_count"], 0);
    assert_eq!(after["duplicated_count"], 0);
    let log = c.log(minority);
    assert!(log.contains("evicted from the view; asking to join again"), "{log}");
}

/// Loads `url` in headless Chromium, lets its scripts run for a few seconds, and returns the
/// page as rendered. Chromium is Debian's `chromium` (`.ci/run` installs it), or the binary
/// `LUCIOLE_CHROMIUM` names.
fn rendered(url: &str) -> String {
    let browser = std::env::var("LUCIOLE_CHROMIUM").unwrap_or_else(|_| "chromium".into());
    let out = std::process::Command::new(&browser)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=3000"])
        .args(["--dump-dom", url])
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {browser} ({e}): install Debian's chromium (apt-get install \
                 chromium) or set LUCIOLE_CHROMIUM to a Chromium binary"
            )
        });
    assert!(out.status.success(), "{browser}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The text of the element with id `id` in a rendered page.
fn field(dom: &str, id: &str) -> String {
    let start = dom.find(&format!("id=\"{id}\"")).unwrap_or_else(|| panic!("no #{id} in\n{dom}"));
    let rest = &dom[start..];
    let open = rest.find('>').unwrap() + 1;
    let close = rest[open..].find('<').unwrap();
    rest[open..open + close].to_string()
}

#[test]
fn each_node_serves_a_live_page_of_the_world_that_a_browser_renders_also_when_cut_off() {
    let _turn = one_at_a_time();
    let c = Cluster::init_with(3, 3, &["--entities", "1500"]);
    let view = c.agreed("the founding view", |v| members(v).len() == 3);
    conserved(&c, "created", Duration::from_secs(60));
    let url = |i: usize| format!("http://{}/", c.status[i]);
    // Entities start where they were created and migrate once they cross a border, and
    // peers' counts come with their pings (every second): wait for the page to show
    // migrations and every member's entities (a loaded machine may take a few seconds).
    // Peers' counts are up to a second old, so the sum is near the total, not exact.
    let started = Instant::now();
    let dom = loop {
        let dom = rendered(&url(0));
        let total: u64 = field(&dom, "entities-total").parse().unwrap();
        let rate: u64 = field(&dom, "rate").parse().unwrap();
        if rate > 0 && (1_300..=1_700).contains(&total) {
            break dom;
        }
        assert!(
            started.elapsed() < common::STEP_DEADLINE,
            "{total} entities, {rate} migrations/s shown:\n{dom}"
        );
    };
    assert_eq!(field(&dom, "epoch"), view["epoch"].to_string());
    assert_eq!(field(&dom, "members"), "3");
    assert_eq!(field(&dom, "quorum"), "yes");
    assert_eq!(dom.matches("data-bubble=").count(), 64, "a 4×4×4 grid");
    let rows = dom.split("id=\"nodes\"").nth(1).unwrap().split("</table>").next().unwrap();
    assert_eq!(rows.matches("<tr>").count(), 4, "a header and 3 members: {rows}");
    assert!(dom.contains("<ul id=\"faults\"><li>none</li></ul>"), "faults shown:\n{dom}");

    // Cut node 3 off: its page still renders, from its own state, and says what is wrong.
    c.toggle_partition(2);
    let started = Instant::now();
    while c.status(2).unwrap()["quorum"] == true {
        assert!(started.elapsed() < common::STEP_DEADLINE, "node 3 keeps its quorum");
        std::thread::sleep(Duration::from_millis(50));
    }
    let dom = rendered(&url(2));
    assert_eq!(field(&dom, "quorum"), "no");
    assert!(dom.contains("this node has no quorum"), "{dom}");
    // Peers go quiet on its page once their last word is 3 s old.
    let started = Instant::now();
    while !rendered(&url(2)).contains("not heard from") {
        assert!(started.elapsed() < common::STEP_DEADLINE, "its peers never show as silent");
    }
}

#[test]
fn a_member_whose_clock_is_off_is_reported_by_the_others_as_skewed() {
    let _turn = one_at_a_time();
    let mut c = Cluster::init_with(3, 2, &["--entities", "300"]);
    c.start_with_env(2, &[("LUCIOLE_FAULT_CLOCK_OFFSET_MS", "250")]);
    c.agreed("the founding view", |v| members(v).len() == 3);
    let skewed = common::node_id(&c, 2);
    let started = Instant::now();
    let peer = loop {
        let s = c.status(0).expect("node 1 answers");
        let peers = s["world"]["peers"].as_array().cloned().unwrap_or_default();
        if let Some(p) = peers.iter().find(|p| p["skewed"] == true) {
            assert!(s["world"]["stats"]["skew_events"].as_u64().unwrap() >= 1);
            break p.clone();
        }
        assert!(started.elapsed() < common::STEP_DEADLINE, "no skew seen: {s:#}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(peer["id"], skewed.as_str());
    let offset = peer["offset_ms"].as_i64().unwrap();
    assert!((200..=300).contains(&offset), "offset {offset} ms for a 250 ms skew");
    // The unskewed pair agree; the log and the metrics say so.
    let s = c.status(0).unwrap();
    let fine =
        s["world"]["peers"].as_array().unwrap().iter().filter(|p| p["skewed"] == false).count();
    assert_eq!(fine, 1);
    assert!(c.log(0).contains("ms off this node's"), "{}", c.log(0));
    let metrics = common::get(c.status[0], "/metrics").unwrap();
    assert!(metrics.contains("luciole_peers_skewed 1"), "{metrics}");
}

#[test]
fn sigusr2_pauses_the_workload_so_a_still_world_can_be_checked_and_resumes_it() {
    let _turn = one_at_a_time();
    let c = Cluster::init_with(3, 3, &["--entities", "600", "--motion", "shuttle"]);
    c.agreed("the founding view", |v| members(v).len() == 3);
    let commits = |c: &Cluster| total(c, "commits");
    let started = Instant::now();
    while commits(&c) < 1_000 {
        assert!(started.elapsed() < Duration::from_secs(60), "the shuttle does not run");
        std::thread::sleep(Duration::from_millis(100));
    }
    for i in 0..3 {
        c.toggle_pause(i);
    }
    std::thread::sleep(Duration::from_millis(500)); // moves under way finish
    let still = commits(&c);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(commits(&c), still, "moves went on while paused");
    let (code, report) = c.conservation(0);
    let report = report.expect("a report");
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["paused"], 3);
    assert_eq!(report["in_transit"], 0);
    for i in 0..3 {
        c.toggle_pause(i);
    }
    std::thread::sleep(Duration::from_secs(1));
    assert!(commits(&c) > still, "resumed, nothing moves");
}
