//! Real `luciole` processes on loopback, for the node's integration tests.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Longest any step may take before the test fails.
pub const STEP_DEADLINE: Duration = Duration::from_secs(20);

/// The cluster's processes; killed when the test ends, however it ends.
pub struct Cluster {
    pub dir: tempfile::TempDir,
    children: Vec<Option<Child>>,
    pub status: Vec<SocketAddr>,
    pub quic: Vec<SocketAddr>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for child in self.children.iter_mut().flatten() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn luciole() -> Command {
    Command::new(env!("CARGO_BIN_EXE_luciole"))
}

/// A base port whose next `n` UDP and TCP ports (and the status range above) look free.
/// Tests of one binary run at once: each call starts its search at its own range, so two
/// clusters never pick the same free ports between checking and binding them.
fn free_ports(n: u16) -> (u16, u16) {
    let base = free_base(n, 20);
    (base, base + 20)
}

/// A base port whose next `n` UDP ports, and `n` TCP ports from `base + status_offset`, look
/// free.
pub fn free_base(n: u16, status_offset: u16) -> u16 {
    static CALLS: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let start = 20_000 + (std::process::id() % 500) as u16 * 50 + (call % 16) * 2_500;
    for base in (start..60_000).chain(20_000..start).step_by(50) {
        let status = base + status_offset;
        let free = (0..n).all(|i| {
            std::net::UdpSocket::bind(("127.0.0.1", base + i)).is_ok()
                && std::net::TcpListener::bind(("127.0.0.1", status + i)).is_ok()
        });
        if free {
            return base;
        }
    }
    panic!("no free ports");
}

impl Cluster {
    /// A cluster of `nodes` written by `luciole cluster init`, the first `start` of them
    /// started.
    /// (No entities: these clusters test membership.)
    pub fn init(nodes: usize, start: usize) -> Self {
        Self::init_with(nodes, start, &["--entities", "0"])
    }

    /// [`Cluster::init`] with more `cluster init` arguments.
    pub fn init_with(nodes: usize, start: usize, extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (base, status) = free_ports(nodes as u16);
        let out = luciole()
            .args(["cluster", "init", "--nodes", &nodes.to_string()])
            .arg("--dir")
            .arg(dir.path().join("c"))
            .args(["--base-port", &base.to_string(), "--status-port", &status.to_string()])
            .args(extra)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let addr = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
        let status = (0..nodes as u16).map(|i| addr(status + i)).collect();
        let quic = (0..nodes as u16).map(|i| addr(base + i)).collect();
        let children = (0..nodes).map(|_| None).collect();
        let mut cluster = Self { dir, children, status, quic };
        for i in 0..start {
            cluster.start(i);
        }
        cluster
    }

    pub fn config(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("c/node-{}/node.toml", i + 1))
    }

    /// Starts node `i`; its log goes on in `node-I.log` (every life, in order). SIGUSR1 cuts
    /// it off from its peers and reconnects it (`LUCIOLE_FAULT_SIGNALS`).
    pub fn start(&mut self, i: usize) {
        self.start_with_env(i, &[]);
    }

    /// [`Cluster::start`] with more environment variables.
    pub fn start_with_env(&mut self, i: usize, env: &[(&str, &str)]) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("node-{}.log", i + 1)))
            .unwrap();
        let child = luciole()
            .env("LUCIOLE_FAULT_SIGNALS", "1")
            .envs(env.iter().copied())
            .args(["node", "run", "--config"])
            .arg(self.config(i))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.children[i] = Some(child);
    }

    pub fn kill(&mut self, i: usize) {
        let mut child = self.children[i].take().expect("running");
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }

    /// Sends node `i` SIGTERM and waits (at most 10 s) for it to exit; its exit status.
    pub fn terminate(&mut self, i: usize) -> std::process::ExitStatus {
        let mut child = self.children[i].take().expect("running");
        // SAFETY: kill(2) on the pid of a child this test started and has not reaped.
        assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if started.elapsed() > Duration::from_secs(10) {
                let _ = child.kill();
                panic!("node {} did not stop within 10 s of SIGTERM\n{}", i + 1, self.logs());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends node `i` SIGUSR1: cuts it off from every peer, or reconnects it.
    pub fn toggle_partition(&self, i: usize) {
        let child = self.children[i].as_ref().expect("running");
        // SAFETY: kill(2) on the pid of a child this test started and has not reaped.
        assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGUSR1) }, 0);
    }

    /// Sends node `i` SIGUSR2: pauses its workload, or resumes it.
    pub fn toggle_pause(&self, i: usize) {
        let child = self.children[i].as_ref().expect("running");
        // SAFETY: kill(2) on the pid of a child this test started and has not reaped.
        assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGUSR2) }, 0);
    }

    /// Runs `luciole check conservation` on the running nodes; its exit code and JSON report.
    pub fn conservation(&self, settle_s: u64) -> (i32, Option<Value>) {
        let mut cmd = luciole();
        cmd.args(["check", "conservation", "--json", "--settle", &settle_s.to_string()]);
        for i in self.running() {
            cmd.arg("--addr").arg(self.status[i].to_string());
        }
        let out = cmd.output().unwrap();
        let report = serde_json::from_slice(&out.stdout).ok();
        eprint!("{}", String::from_utf8_lossy(&out.stderr));
        (out.status.code().unwrap_or(-1), report)
    }

    /// Node `i`'s log.
    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("node-{}.log", i + 1)))
            .unwrap_or_default()
    }

    /// The process id of node `i`, if it runs.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.children[i].as_ref().map(Child::id)
    }

    pub fn running(&self) -> Vec<usize> {
        (0..self.children.len()).filter(|i| self.children[*i].is_some()).collect()
    }

    pub fn status(&self, i: usize) -> Option<Value> {
        get(self.status[i], "/status").and_then(|body| serde_json::from_str(&body).ok())
    }

    /// Waits until every running node reports a view satisfying `ok`, all the same view;
    /// returns it.
    pub fn agreed(&self, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
        let started = Instant::now();
        loop {
            let views: Vec<Option<Value>> =
                self.running().iter().map(|&i| self.status(i).map(|s| s["view"].clone())).collect();
            // Before its first view a node reports none (null): nothing to agree on yet.
            if let Some(Some(first)) = views.first()
                && !first.is_null()
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
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn logs(&self) -> String {
        (0..self.children.len()).map(|i| format!("--- node {}\n{}", i + 1, self.log(i))).collect()
    }
}

/// A tiny HTTP GET.
pub fn get(addr: SocketAddr, path: &str) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nconnection: close\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_string())
}

pub fn epoch(v: &Value) -> u64 {
    v["epoch"].as_u64().unwrap()
}

pub fn members(v: &Value) -> BTreeSet<String> {
    v["members"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap().to_string()).collect()
}

pub fn node_id(c: &Cluster, i: usize) -> String {
    let path = c.dir.path().join(format!("c/node-{}/data/member", i + 1));
    // The member marker: the id, then `epoch N` (the newest view installed).
    std::fs::read_to_string(path).unwrap().lines().next().unwrap_or_default().trim().to_string()
}
