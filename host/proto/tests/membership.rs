//! Membership members wired together in one process on virtual time, from a seed: a first
//! harness (the full simulator with faults is `host/sim`, not built yet). Messages take 1–5 ms,
//! none are lost.

use std::collections::{BTreeMap, BTreeSet};

use luciole_proto::membership::monitor::MonitorConfig;
use luciole_proto::membership::node::{Envelope, Event, MemberNode};
use luciole_proto::{Epoch, MemberId};

struct Cluster {
    nodes: BTreeMap<MemberId, MemberNode>,
    crashed: BTreeSet<MemberId>,
    /// (due ms, sequence) → (to, envelope)
    wire: BTreeMap<(u64, u64), (MemberId, Envelope)>,
    seq: u64,
    rng: u64,
    now: u64,
    /// Per member, the views it installed: (time, epoch, members).
    installed: BTreeMap<MemberId, Vec<(u64, Epoch, Vec<MemberId>)>>,
}

impl Cluster {
    fn new(n: u128, seed: u64) -> Self {
        let ids: Vec<MemberId> = (1..=n)
            .map(|i| MemberId(i.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835)))
            .collect();
        let mut sorted = ids.clone();
        sorted.sort();
        let nodes = sorted
            .iter()
            .map(|&m| {
                (m, MemberNode::new(m, Epoch(1), sorted.clone(), MonitorConfig::default(), 0))
            })
            .collect();
        Self {
            nodes,
            crashed: BTreeSet::new(),
            wire: BTreeMap::new(),
            seq: 0,
            rng: seed,
            now: 0,
            installed: BTreeMap::new(),
        }
    }

    fn rand(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn members(&self) -> Vec<MemberId> {
        self.nodes.keys().copied().collect()
    }

    /// Runs until `until_ms`, one millisecond at a time.
    fn run(&mut self, until_ms: u64) {
        while self.now < until_ms {
            self.now += 1;
            let now = self.now;
            let due: Vec<(u64, u64)> =
                self.wire.range(..=(now, u64::MAX)).map(|(k, _)| *k).collect();
            for k in due {
                let (to, env) = self.wire.remove(&k).unwrap();
                if self.crashed.contains(&to) || self.crashed.contains(&env.from) {
                    continue;
                }
                self.nodes.get_mut(&to).unwrap().handle_message(now, env);
                self.flush(to);
            }
            for m in self.members() {
                if self.crashed.contains(&m) {
                    continue;
                }
                let node = self.nodes.get_mut(&m).unwrap();
                if node.poll_timeout().is_some_and(|t| t <= now) {
                    node.handle_timeout(now);
                    self.flush(m);
                }
            }
        }
    }

    fn flush(&mut self, m: MemberId) {
        let mut out = Vec::new();
        let node = self.nodes.get_mut(&m).unwrap();
        while let Some(t) = node.poll_transmit() {
            out.push(t);
        }
        let mut events = Vec::new();
        while let Some(e) = node.poll_event() {
            events.push(e);
        }
        for (to, env) in out {
            let delay = 1 + self.rand() % 5;
            self.seq += 1;
            self.wire.insert((self.now + delay, self.seq), (to, env));
        }
        for e in events {
            if let Event::ViewInstalled { epoch, members } = e {
                self.installed.entry(m).or_default().push((self.now, epoch, members));
            }
        }
    }

    fn live(&self) -> Vec<MemberId> {
        self.members().into_iter().filter(|m| !self.crashed.contains(m)).collect()
    }
}

#[test]
fn a_crash_becomes_the_same_new_view_at_every_survivor() {
    for seed in 0..5 {
        let mut c = Cluster::new(8, seed);
        c.run(1000);
        assert!(c.installed.is_empty(), "seed {seed}: no view change without a fault");
        let victim = c.members()[3];
        c.crashed.insert(victim);
        c.run(3000);
        let want: Vec<MemberId> = c.live();
        for m in c.live() {
            let views =
                c.installed.get(&m).unwrap_or_else(|| panic!("seed {seed}: {m} installed nothing"));
            assert_eq!(views.len(), 1, "seed {seed}: one view change");
            let (at, epoch, members) = &views[0];
            assert_eq!((*epoch, members), (Epoch(2), &want), "seed {seed}");
            assert!(*at - 1000 <= 1000, "seed {seed}: installed {} ms after the crash", at - 1000);
        }
    }
}

#[test]
fn simultaneous_crashes_become_one_view_change() {
    let mut c = Cluster::new(30, 7);
    c.run(500);
    let members = c.members();
    for &v in &[members[2], members[11], members[25]] {
        c.crashed.insert(v);
    }
    c.run(4000);
    let want = c.live();
    for m in c.live() {
        let views = &c.installed[&m];
        assert_eq!(views.len(), 1, "{m}: {views:?}");
        assert_eq!((views[0].1, &views[0].2), (Epoch(2), &want));
    }
}

#[test]
fn a_run_replays_exactly_from_its_seed() {
    let run = |seed| {
        let mut c = Cluster::new(10, seed);
        c.run(300);
        let v = c.members()[0];
        c.crashed.insert(v);
        c.run(2000);
        c.installed
    };
    assert_eq!(run(42), run(42));
}

#[test]
fn time_from_crash_to_installed_view_is_reported() {
    // Not a benchmark: the virtual-time figure that the simulator report will grow from.
    let mut worst = 0;
    for seed in 0..10 {
        let mut c = Cluster::new(20, seed);
        c.run(500);
        let v = c.members()[seed as usize % 20];
        c.crashed.insert(v);
        c.run(3000);
        for m in c.live() {
            worst = worst.max(c.installed[&m][0].0 - 500);
        }
    }
    eprintln!("crash to installed view, 20 members, 10 seeds: worst {worst} ms (virtual)");
    // 300–400 ms from the crash to four probe periods of silence (the last answer came up to
    // one period before it), a 200 ms rebut window, then alerts and votes at 1–5 ms a hop.
    assert!((500..=800).contains(&worst), "{worst} ms");
}
