//! `luciole demo`: a real cluster of node processes on loopback, watched live.
//!
//! It writes a cluster into a temporary directory (`cluster init`), starts one
//! `luciole node run` process per node, prints every second what each node reports (its view,
//! the coordinator its policy chose, the bubbles placed on it), SIGKILLs one node a third of
//! the way through and restarts it at two thirds, so the view changes are visible, and stops
//! every process on Ctrl-C or after `--duration`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use std::io::Write as _;

use anyhow::Context;

use crate::cluster::{self, InitArgs};
use crate::status::{self, Status};

/// Options of the cluster demo.
#[derive(clap::Args, Debug, Clone)]
pub struct ClusterDemoArgs {
    /// Node processes to start.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=20))]
    pub nodes: u16,
    /// How long to run, in seconds (Ctrl-C stops earlier).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(3..=86_400))]
    pub duration: u64,
    /// QUIC port of node 1 (node i uses base-port + i - 1); status ports start 100 above.
    #[arg(long, default_value_t = 7400)]
    pub base_port: u16,
    /// Keep the cluster's directory (configs, certificates, logs) after the demo.
    #[arg(long)]
    pub keep: bool,
    /// Entities in the world, created evenly by the nodes.
    #[arg(long, default_value_t = 3_000, value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    pub entities: u64,
}

/// Node processes, stopped when dropped.
struct Processes {
    configs: Vec<PathBuf>,
    logs: PathBuf,
    children: Vec<Option<Child>>,
}

impl Drop for Processes {
    fn drop(&mut self) {
        for child in self.children.iter_mut().flatten() {
            // SIGTERM would be kinder; a demo's nodes have nothing to flush yet.
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Processes {
    fn start(&mut self, i: usize) -> anyhow::Result<()> {
        let log = std::fs::File::create(self.logs.join(format!("node-{}.log", i + 1)))?;
        let child = Command::new(std::env::current_exe().context("finding this program")?)
            .args(["node", "run", "--config"])
            .arg(&self.configs[i])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting a node process")?;
        self.children[i] = Some(child);
        Ok(())
    }

    fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.children[i].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs the demo; `policies` names coordinator and placement components for every node.
pub fn run(
    args: &ClusterDemoArgs,
    policies: (Option<PathBuf>, Option<PathBuf>),
) -> anyhow::Result<()> {
    let temp = tempfile::Builder::new().prefix("luciole-demo-").tempdir()?;
    let dir = temp.path().join("cluster");
    let init = InitArgs {
        dir: dir.clone(),
        nodes: args.nodes,
        base_port: args.base_port,
        status_port: args.base_port.checked_add(100).context("--base-port too high")?,
        ip: [127, 0, 0, 1].into(),
        name: "demo".into(),
        coordinator: policies.0,
        placement: policies.1,
        migration: None,
        entities: args.entities,
        cells: vec![4, 4, 4],
        motion: cluster::Motion::Walk,
        speed: 0.3,
        payload_bytes: 256,
        shuttle_in_flight: 96,
        checkpoint_mib: 64,
        idle_probe_ms: luciole_proto::membership::monitor::IDLE_PROBE_MS_DEFAULT,
        idle_from_members: luciole_proto::membership::monitor::IDLE_FROM_MEMBERS_DEFAULT,
    };
    for i in 0..args.nodes {
        let (quic, status) = (init.base_port + i, init.status_port + i);
        let free = std::net::UdpSocket::bind(("127.0.0.1", quic)).is_ok()
            && std::net::TcpListener::bind(("127.0.0.1", status)).is_ok();
        if !free {
            anyhow::bail!(
                "port {quic} (UDP) or {status} (TCP) is in use: choose another --base-port"
            );
        }
    }
    let written = cluster::init(&init)?;
    println!(
        "luciole demo: {} node processes on 127.0.0.1:{}.. (QUIC, mutual TLS), cluster in {}",
        args.nodes,
        args.base_port,
        dir.display()
    );
    let mut nodes = Processes {
        configs: written.iter().map(|w| w.config.clone()).collect(),
        logs: dir.clone(),
        children: (0..written.len()).map(|_| None).collect(),
    };
    for i in 0..written.len() {
        nodes.start(i)?;
    }
    let status: Vec<std::net::SocketAddr> = (0..args.nodes)
        .map(|i| std::net::SocketAddr::from(([127, 0, 0, 1], init.status_port + i)))
        .collect();
    let ids: Vec<String> = written.iter().map(|w| format!("{:032x}", w.id.0)).collect();
    println!(
        "{} entities move through a 4×4×4 grid of bubbles and migrate between the nodes. \
         Watch it live in a browser: http://{}/ (every node serves its own view: ports {}..{})",
        args.entities,
        status[0],
        init.status_port,
        init.status_port + args.nodes - 1
    );
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let outcome = runtime.block_on(watch(args, &mut nodes, &status, &ids));
    drop(nodes);
    if args.keep {
        let kept = temp.keep();
        println!("kept {} (configs, certificates, node logs)", kept.display());
    }
    outcome
}

/// Prints a line; when stdout is gone (a closed pipe), the demo stops — cleanly, so that its
/// node processes are stopped too — instead of panicking.
macro_rules! say {
    ($($arg:tt)*) => {
        if writeln!(std::io::stdout(), $($arg)*).is_err() {
            return Ok(());
        }
    };
}

async fn watch(
    args: &ClusterDemoArgs,
    nodes: &mut Processes,
    status: &[std::net::SocketAddr],
    ids: &[String],
) -> anyhow::Result<()> {
    let started = Instant::now();
    let total = Duration::from_secs(args.duration);
    let mut victim = nodes.children.len() - 1;
    let mut coordinator: Option<String> = None;
    let (kill_at, restart_at) = (total / 3, total * 2 / 3);
    let (mut killed, mut restarted) = (false, false);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {
                say!("Ctrl-C: stopping every node");
                return Ok(());
            }
            _ = tick.tick() => {}
        }
        let t = started.elapsed();
        if t >= total {
            match crate::conservation::round(status).await {
                Ok(all) => {
                    let r = crate::conservation::check(&all);
                    say!(
                        "{}s: conservation {}: {} entities, {} lost, {} duplicated, {} migrations \
                         committed, {} counted by ownership epochs{}",
                        t.as_secs(),
                        if r.clean() { "holds" } else { "not (yet) seen to hold" },
                        r.expected,
                        r.lost_count,
                        r.duplicated_count,
                        r.commits_logged,
                        r.moves_counted,
                        if r.clean() {
                            ""
                        } else {
                            " (entities in motion; `luciole check conservation` repeats until it settles)"
                        }
                    );
                }
                Err(failed) => {
                    say!("{}s: conservation not checked: {}", t.as_secs(), failed.join("; "))
                }
            }
            say!("{}s: done; stopping every node", t.as_secs());
            return Ok(());
        }
        if !killed && t >= kill_at && nodes.children.len() > 1 {
            killed = true;
            // The coordinator, if the nodes agree on one: its successor is chosen visibly.
            if let Some(i) = coordinator.as_ref().and_then(|c| ids.iter().position(|id| id == c)) {
                victim = i;
            }
            nodes.kill(victim);
            say!(
                "{}s: SIGKILL node-{} (the coordinator): the others agree on a view without it",
                t.as_secs(),
                victim + 1
            );
        }
        if killed && !restarted && t >= restart_at {
            restarted = true;
            nodes.start(victim)?;
            say!("{}s: restarting node-{}: it rejoins through the others", t.as_secs(), victim + 1);
        }
        for (i, child) in nodes.children.iter_mut().enumerate() {
            if let Some(Ok(Some(exit))) = child.as_mut().map(Child::try_wait) {
                *child = None;
                let log = nodes.logs.join(format!("node-{}.log", i + 1));
                let last = std::fs::read_to_string(&log).unwrap_or_default();
                let last = last.lines().last().unwrap_or("").to_string();
                say!("node-{} exited ({exit}): {last}", i + 1);
            }
        }
        for (i, addr) in status.iter().enumerate() {
            let line = match status::fetch(*addr, "/status").await {
                Ok(body) => match serde_json::from_str::<Status>(&body) {
                    Ok(s) => {
                        coordinator = s.coordinator.clone();
                        one_line(&s)
                    }
                    Err(e) => format!("unreadable status: {e}"),
                },
                Err(_) if nodes.children[i].is_none() => "down".to_string(),
                Err(_) => "starting…".to_string(),
            };
            say!("{:>3}s  node-{:<2} {line}", t.as_secs(), i + 1);
        }
    }
}

/// The first 8 characters of an id, or all of it if shorter (a node that has just started
/// reports an empty id for a moment).
fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

fn one_line(s: &Status) -> String {
    let view = s.view.as_ref().map_or("no view yet".to_string(), |v| {
        format!("epoch {:>2}  {} members  view {}", v.epoch, v.members.len(), short(&v.id))
    });
    let coordinator = s.coordinator.as_deref().map_or("-", short);
    let by = s.policies.first().map_or(String::new(), |p| format!(" by {}", p.active));
    let world = s.world.as_ref().map_or(String::new(), |w| {
        format!("  entities {:>5}  migrations {:>4}/s", w.entities, w.commits_per_s)
    });
    format!(
        "{}  {view}  coordinator {coordinator}{by}  bubbles here {:>2}/{}{world}  {}",
        short(&s.node),
        s.bubbles_here.len(),
        s.bubbles_total,
        if s.quorum { "quorum" } else { s.phase.as_str() }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_line_of_a_node_that_has_just_started_does_not_panic() {
        // For a moment after start a node reports no id; the demo printed `&id[..8]`.
        let line = one_line(&Status { coordinator: Some("ab".into()), ..Status::default() });
        assert!(line.contains("no view yet") && line.contains("coordinator ab"), "{line}");
    }
}
