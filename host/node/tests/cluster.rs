//! Five real `luciole node run` processes on loopback: they agree on views, a SIGKILLed node is
//! removed by one agreed view change, a restarted one rejoins, two stopped at once go in one
//! change, and every node hands its policies the same view.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const NODES: usize = 5;
/// Longest any step may take before the test fails.
const STEP_DEADLINE: Duration = Duration::from_secs(20);

/// The cluster's processes; killed when the test ends, however it ends.
struct Cluster {
    dir: tempfile::TempDir,
    children: Vec<Option<Child>>,
    status: Vec<SocketAddr>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for child in self.children.iter_mut().flatten() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn luciole() -> Command {
    Command::new(env!("CARGO_BIN_EXE_luciole"))
}

/// A base port whose next `n` UDP and TCP ports (and the status range above) look free.
fn free_ports(n: u16) -> (u16, u16) {
    let start = 20_000 + (std::process::id() % 2_000) as u16 * 10;
    for base in (start..60_000).step_by(50) {
        let status = base + 20;
        let free = (0..n).all(|i| {
            std::net::UdpSocket::bind(("127.0.0.1", base + i)).is_ok()
                && std::net::TcpListener::bind(("127.0.0.1", status + i)).is_ok()
        });
        if free {
            return (base, status);
        }
    }
    panic!("no free ports");
}

impl Cluster {
    fn init() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (base, status) = free_ports(NODES as u16);
        let out = luciole()
            .args(["cluster", "init", "--nodes", &NODES.to_string()])
            .arg("--dir")
            .arg(dir.path().join("c"))
            .args(["--base-port", &base.to_string(), "--status-port", &status.to_string()])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let status =
            (0..NODES as u16).map(|i| SocketAddr::from(([127, 0, 0, 1], status + i))).collect();
        let mut cluster = Self { dir, children: (0..NODES).map(|_| None).collect(), status };
        for i in 0..NODES {
            cluster.start(i);
        }
        cluster
    }

    fn config(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("c/node-{}/node.toml", i + 1))
    }

    fn start(&mut self, i: usize) {
        let log =
            std::fs::File::create(self.dir.path().join(format!("node-{}.log", i + 1))).unwrap();
        let child = luciole()
            .args(["node", "run", "--config"])
            .arg(self.config(i))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.children[i] = Some(child);
    }

    fn kill(&mut self, i: usize) {
        let mut child = self.children[i].take().expect("running");
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }

    fn running(&self) -> Vec<usize> {
        (0..NODES).filter(|i| self.children[*i].is_some()).collect()
    }

    fn status(&self, i: usize) -> Option<Value> {
        get(self.status[i], "/status").and_then(|body| serde_json::from_str(&body).ok())
    }

    /// Waits until every running node reports a view satisfying `ok`, all the same view;
    /// returns it.
    fn agreed(&self, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
        let started = Instant::now();
        loop {
            let views: Vec<Option<Value>> =
                self.running().iter().map(|&i| self.status(i).map(|s| s["view"].clone())).collect();
            if let Some(Some(first)) = views.first()
                && views.iter().all(|v| v.as_ref() == Some(first))
                && ok(first)
            {
                return first.clone();
            }
            if started.elapsed() > STEP_DEADLINE {
                panic!(
                    "{what}: no agreement within {STEP_DEADLINE:?}: {views:#?}\n{}",
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn logs(&self) -> String {
        (1..=NODES)
            .map(|i| {
                let p = self.dir.path().join(format!("node-{i}.log"));
                format!("--- node {i}\n{}", std::fs::read_to_string(p).unwrap_or_default())
            })
            .collect()
    }
}

/// A tiny HTTP GET.
fn get(addr: SocketAddr, path: &str) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nconnection: close\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_string())
}

fn epoch(v: &Value) -> u64 {
    v["epoch"].as_u64().unwrap()
}

fn members(v: &Value) -> BTreeSet<String> {
    v["members"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap().to_string()).collect()
}

fn node_id(c: &Cluster, i: usize) -> String {
    let path = c.dir.path().join(format!("c/node-{}/data/member", i + 1));
    std::fs::read_to_string(path).unwrap().trim().to_string()
}

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
    let mut c = Cluster::init();
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
}
