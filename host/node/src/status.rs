//! What a running node reports: `GET /status` (JSON) and `GET /metrics` (Prometheus text) on
//! its status address, and `luciole status`, which asks for them.
//!
//! The HTTP side is deliberately tiny — two read-only GET endpoints, no request bodies, one
//! request per connection, bounded reads and a bounded number of clients — so it is written
//! here on tokio rather than pulling an HTTP framework into the node.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use luciole_transport::{Mesh, MeshStats};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::traffic::Traffic;
use crate::wire::Wire;
use crate::world::{Holdings, WorldStatus};

/// Longest the driver may take to answer a request for its holdings.
const HOLDINGS_TIMEOUT: Duration = Duration::from_secs(1);

/// Longest a status client may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest request head read.
const REQUEST_BYTES_MAX: usize = 4_096;
/// Status clients served at once; more wait for the listener.
const CLIENTS_MAX: usize = 16;

/// A node's state, as `/status` gives it.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Status {
    /// The node's member id (32 hex digits).
    pub node: String,
    /// Where its QUIC endpoint listens, as announced.
    pub addr: String,
    /// `joining`, `member` or `evicted` (then rejoining).
    pub phase: String,
    /// Whether it can tell that its view is current.
    pub quorum: bool,
    /// The installed view, once there is one.
    pub view: Option<ViewStatus>,
    /// The coordinator the coordinator policy chose for the view.
    pub coordinator: Option<String>,
    /// Bubbles the placement policy put on this node.
    pub bubbles_here: Vec<u64>,
    /// Bubbles placed in all.
    pub bubbles_total: u64,
    /// The policy slots.
    pub policies: Vec<PolicyStatus>,
    /// Views installed since the process started.
    pub views_installed: u64,
    /// Membership messages refused in the current membership life because their content
    /// did not fit their authenticated sender or the view (forged alerts, proposals from a
    /// non-coordinator, invalid cuts, unconfirmable welcomes).
    pub membership_refused: u64,
    /// Seconds since the process started.
    pub uptime_s: u64,
    /// The entities this node holds and its migrations (refreshed every 200 ms).
    #[serde(default)]
    pub world: Option<WorldStatus>,
}

/// An installed view.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ViewStatus {
    /// Its epoch.
    pub epoch: u64,
    /// Its id (32 hex digits).
    pub id: String,
    /// Its members.
    pub members: Vec<MemberStatus>,
}

/// A member of the view.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct MemberStatus {
    /// Its id.
    pub id: String,
    /// Its capacity.
    pub capacity: u32,
    /// Its labels, `key=value`.
    pub labels: Vec<String>,
    /// Its address.
    pub addr: String,
}

/// One policy slot.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct PolicyStatus {
    /// `coordinator` or `placement`.
    pub kind: String,
    /// The active component, `name@version`, or `builtin`.
    pub active: String,
    /// Its digest (first 12 hex digits), if a component.
    pub digest: Option<String>,
    /// Calls made.
    pub calls: u64,
    /// Faults (each quarantines a version).
    pub faults: u64,
    /// Calls answered by the built-in default.
    pub by_builtin: u64,
    /// Latency of the last call, µs.
    pub last_call_us: u64,
    /// Latency of every call this node made through the slot, summed, µs.
    pub call_us_total: u64,
}

/// What the status endpoint serves from: the state the driver keeps current, and counters.
#[derive(Debug)]
pub struct Shared {
    /// The node's state.
    pub status: Mutex<Status>,
    /// Membership traffic by message kind.
    pub traffic: Traffic,
    /// The transport, whose counters are read on demand.
    pub mesh: OnceLock<Mesh<Wire>>,
    /// Asks the driver for what only it can read.
    pub requests: OnceLock<tokio::sync::mpsc::Sender<Request>>,
}

/// A question for the driver loop, answered on the channel it carries.
#[derive(Debug)]
pub enum Request {
    /// Every entity held, for the conservation check.
    Holdings(tokio::sync::oneshot::Sender<Holdings>),
}

impl Shared {
    /// Empty state.
    pub fn new() -> Self {
        Self {
            status: Mutex::default(),
            traffic: Traffic::default(),
            mesh: OnceLock::new(),
            requests: OnceLock::new(),
        }
    }

    fn status(&self) -> Status {
        self.status.lock().map(|s| s.clone()).unwrap_or_default()
    }

    fn mesh_stats(&self) -> MeshStats {
        self.mesh.get().map(Mesh::stats).unwrap_or_default()
    }

    async fn holdings(&self) -> Option<Holdings> {
        let requests = self.requests.get()?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        requests.send(Request::Holdings(tx)).await.ok()?;
        tokio::time::timeout(HOLDINGS_TIMEOUT, rx).await.ok()?.ok()
    }
}

/// Serves `/status` and `/metrics` on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(CLIENTS_MAX));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else { return };
        let Ok((stream, _)) = listener.accept().await else { continue };
        let shared = shared.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(REQUEST_TIMEOUT, answer(stream, &shared)).await;
            drop(permit);
        });
    }
}

async fn answer(mut stream: TcpStream, shared: &Shared) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 512];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < REQUEST_BYTES_MAX {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = head.split(|b| *b == b'\r').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (code, kind, body) = match (parts.next(), parts.next()) {
        (Some("GET"), Some("/status")) => {
            let json = serde_json::to_string_pretty(&shared.status()).unwrap_or_default();
            ("200 OK", "application/json", json)
        }
        (Some("GET"), Some("/metrics")) => ("200 OK", "text/plain; version=0.0.4", metrics(shared)),
        (Some("GET"), Some("/entities")) => match shared.holdings().await {
            Some(h) => {
                ("200 OK", "application/json", serde_json::to_string(&h).unwrap_or_default())
            }
            None => ("503 Service Unavailable", "text/plain", "the node is not answering\n".into()),
        },
        (Some("GET"), Some("/" | "/index.html")) => {
            ("200 OK", "text/html; charset=utf-8", crate::page::PAGE.to_string())
        }
        (Some("GET"), _) => {
            ("404 Not Found", "text/plain", "try /, /status, /metrics or /entities\n".into())
        }
        _ => ("405 Method Not Allowed", "text/plain", "GET only\n".into()),
    };
    let response = format!(
        "HTTP/1.1 {code}\r\ncontent-type: {kind}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

/// The Prometheus text exposition of the node's state and counters.
pub fn metrics(shared: &Shared) -> String {
    let s = shared.status();
    let m = shared.mesh_stats();
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, value: u64| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}");
    };
    gauge(
        "luciole_view_epoch",
        "Epoch of the installed view.",
        s.view.as_ref().map_or(0, |v| v.epoch),
    );
    gauge(
        "luciole_view_members",
        "Members of the installed view.",
        s.view.as_ref().map_or(0, |v| v.members.len() as u64),
    );
    gauge("luciole_quorum", "1 when the node can tell its view is current.", u64::from(s.quorum));
    gauge("luciole_bubbles_here", "Bubbles placed on this node.", s.bubbles_here.len() as u64);
    gauge("luciole_connections_open", "QUIC connections open.", m.connections_open);
    if let Some(w) = &s.world {
        gauge("luciole_entities", "Entities owned by this node.", w.entities);
        gauge(
            "luciole_entities_in_doubt",
            "Arrivals waiting for their source's decision.",
            w.in_doubt,
        );
        gauge(
            "luciole_peers_skewed",
            "Peers whose clock is off by more than the tolerance.",
            w.peers.iter().filter(|p| p.skewed).count() as u64,
        );
    }
    gauge("luciole_uptime_seconds", "Seconds since the process started.", s.uptime_s);
    let _ = writeln!(
        out,
        "# HELP luciole_build_info The build.\n# TYPE luciole_build_info gauge\n\
         luciole_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    counters(&mut out, &s, &m);
    shared.traffic.render(&mut out);
    out
}

fn counters(out: &mut String, s: &Status, m: &MeshStats) {
    let mut counter = |name: &str, help: &str, rows: &[(&str, u64)]| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for (labels, value) in rows {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    counter("luciole_views_installed_total", "Views installed.", &[("", s.views_installed)]);
    if let Some(w) = &s.world {
        let st = &w.stats;
        counter(
            "luciole_migrations_total",
            "Migrations ended, by this node's role and outcome.",
            &[
                ("{role=\"source\",outcome=\"commit\"}", st.commits),
                ("{role=\"source\",outcome=\"abort\"}", st.aborts),
                ("{role=\"target\",outcome=\"commit\"}", st.arrivals),
                ("{role=\"target\",outcome=\"abort\"}", st.target_aborts),
            ],
        );
        let reasons: Vec<(String, u64)> =
            st.by_reason.iter().map(|(k, v)| (format!("{{reason=\"{k}\"}}"), *v)).collect();
        let reasons: Vec<(&str, u64)> = reasons.iter().map(|(l, v)| (l.as_str(), *v)).collect();
        counter("luciole_migrations_ended_total", "Migrations ended, by reason.", &reasons);
        counter(
            "luciole_wal_syncs_total",
            "Write-ahead log writes, each synced.",
            &[("", st.wal_syncs)],
        );
        counter(
            "luciole_wal_records_total",
            "Write-ahead log records appended.",
            &[("", st.wal_records)],
        );
        counter("luciole_wal_bytes_total", "Write-ahead log bytes written.", &[("", st.wal_bytes)]);
        counter(
            "luciole_migration_messages_total",
            "Migration messages by direction; gaps found by numbers, duplicates dropped.",
            &[
                ("{kind=\"out\"}", st.messages_out),
                ("{kind=\"in\"}", st.messages_in),
                ("{kind=\"gap\"}", st.gaps),
                ("{kind=\"duplicate\"}", st.duplicates),
            ],
        );
        counter(
            "luciole_clock_skew_events_total",
            "Times a peer's clock was found off by more than the tolerance.",
            &[("", st.skew_events)],
        );
    }
    counter(
        "luciole_connections_total",
        "Connections by outcome.",
        &[
            ("{outcome=\"accepted\"}", m.endpoint.accepted),
            ("{outcome=\"refused\"}", m.endpoint.refused),
            ("{outcome=\"dial_failed\"}", m.dial_failures),
            ("{outcome=\"over_limit\"}", m.connections_over_limit),
        ],
    );
    counter("luciole_frames_refused_total", "Frames refused.", &[("", m.frames_refused)]);
    counter(
        "luciole_membership_refused_total",
        "Membership messages refused: content that did not fit the sender or the view.",
        &[("", s.membership_refused)],
    );
    counter(
        "luciole_messages_dropped_total",
        "Messages dropped before sending, by reason.",
        &[
            ("{reason=\"outbox_full\"}", m.dropped_full),
            ("{reason=\"unreachable\"}", m.dropped_unreachable),
            ("{reason=\"failed\"}", m.dropped_failed),
        ],
    );
    counter("luciole_transport_sent_bytes_total", "Frame bytes written.", &[("", m.bytes_out)]);
    counter("luciole_transport_received_bytes_total", "Frame bytes read.", &[("", m.bytes_in)]);
    counter(
        "luciole_transport_udp_sent_bytes_total",
        "UDP payload bytes sent: QUIC headers, acknowledgements and keep-alives included.",
        &[("", m.udp_sent_bytes)],
    );
    counter(
        "luciole_transport_udp_received_bytes_total",
        "UDP payload bytes received.",
        &[("", m.udp_received_bytes)],
    );
    let kinds = |f: fn(&PolicyStatus) -> u64| -> Vec<(String, u64)> {
        s.policies.iter().map(|p| (format!("{{kind=\"{}\"}}", p.kind), f(p))).collect()
    };
    for (name, help, f) in [
        (
            "luciole_policy_calls_total",
            "Policy calls.",
            (|p: &PolicyStatus| p.calls) as fn(&PolicyStatus) -> u64,
        ),
        ("luciole_policy_faults_total", "Policy faults.", |p| p.faults),
        ("luciole_policy_builtin_answers_total", "Calls answered by the built-in.", |p| {
            p.by_builtin
        }),
    ] {
        let rows = kinds(f);
        let rows: Vec<(&str, u64)> = rows.iter().map(|(l, v)| (l.as_str(), *v)).collect();
        counter(name, help, &rows);
    }
    let _ = writeln!(
        out,
        "# HELP luciole_policy_call_duration_seconds Policy calls per view, wall time (fallbacks \
         included).\n# TYPE luciole_policy_call_duration_seconds summary"
    );
    for p in &s.policies {
        let _ = writeln!(
            out,
            "luciole_policy_call_duration_seconds_sum{{kind=\"{}\"}} {:.6}\n\
             luciole_policy_call_duration_seconds_count{{kind=\"{}\"}} {}",
            p.kind,
            p.call_us_total as f64 / 1e6,
            p.kind,
            p.calls
        );
    }
}

/// Fetches `path` from a node's status address.
pub async fn fetch(addr: SocketAddr, path: &str) -> anyhow::Result<String> {
    let work = async {
        let mut stream = TcpStream::connect(addr).await?;
        let request = format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut response = Vec::new();
        stream.take(16 << 20).read_to_end(&mut response).await?;
        Ok::<_, std::io::Error>(response)
    };
    let response = tokio::time::timeout(REQUEST_TIMEOUT, work)
        .await
        .map_err(|_| anyhow::anyhow!("{addr} did not answer within {REQUEST_TIMEOUT:?}"))?
        .map_err(|e| anyhow::anyhow!("asking {addr}: {e}"))?;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    if !head.starts_with("HTTP/1.1 200") {
        anyhow::bail!("{addr} answered: {}", head.lines().next().unwrap_or("nothing"));
    }
    Ok(body.to_string())
}

/// A status as a few lines for people.
pub fn summary(s: &Status) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "node        {} at {}", s.node, s.addr);
    let _ =
        writeln!(out, "phase       {} (quorum: {})", s.phase, if s.quorum { "yes" } else { "no" });
    match &s.view {
        Some(v) => {
            let _ = writeln!(
                out,
                "view        epoch {}, id {}, {} member(s)",
                v.epoch,
                &v.id[..16],
                v.members.len()
            );
            for m in &v.members {
                let _ = writeln!(
                    out,
                    "  member    {} capacity {} at {} {}",
                    &m.id[..16],
                    m.capacity,
                    m.addr,
                    m.labels.join(",")
                );
            }
        }
        None => {
            let _ = writeln!(out, "view        none yet");
        }
    }
    let coordinator = s.coordinator.as_deref().map_or("none yet", |c| &c[..16]);
    let _ = writeln!(out, "coordinator {coordinator}");
    let _ = writeln!(
        out,
        "bubbles     {} of {} here: {:?}",
        s.bubbles_here.len(),
        s.bubbles_total,
        s.bubbles_here
    );
    for p in &s.policies {
        let digest = p.digest.as_deref().map(|d| format!(" sha256:{d}")).unwrap_or_default();
        let _ = writeln!(
            out,
            "policy      {:<11} {}{digest}  calls {} faults {} builtin answers {}",
            p.kind, p.active, p.calls, p.faults, p.by_builtin
        );
    }
    if let Some(w) = &s.world {
        let st = &w.stats;
        let _ = writeln!(
            out,
            "entities    {} here ({} moving out, {} arriving in doubt); {} created by this node",
            w.entities, w.moving_out, w.in_doubt, st.spawned
        );
        let latency = match (w.latency_p50_us, w.latency_p99_us) {
            (Some(p50), Some(p99)) => format!("; latency p50 {p50} µs, p99 {p99} µs"),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "migrations  as source {} committed, {} aborted; as target {} arrived, {} aborted; \
             {:.0}/s{latency}",
            st.commits, st.aborts, st.arrivals, st.target_aborts, w.commits_per_s
        );
        let reasons: Vec<String> = st.by_reason.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let _ = writeln!(
            out,
            "  ended     {}",
            if reasons.is_empty() { "-".into() } else { reasons.join(", ") }
        );
        if !st.not_started.is_empty() {
            let n: Vec<String> = st.not_started.iter().map(|(k, v)| format!("{k} {v}")).collect();
            let _ = writeln!(out, "  refused   {}", n.join(", "));
        }
        let _ = writeln!(
            out,
            "log         {} syncs, {} records, {} bytes, {} checkpoints since start; {} commits \
             in the whole log",
            st.wal_syncs, st.wal_records, st.wal_bytes, st.checkpoints, st.commits_logged
        );
        let skewed: Vec<String> = w
            .peers
            .iter()
            .filter(|p| p.skewed)
            .map(|p| format!("{} {:+} ms", &p.id[..8], p.offset_ms.unwrap_or(0)))
            .collect();
        let _ = writeln!(
            out,
            "order       {} gaps, {} duplicates dropped; clocks {}",
            st.gaps,
            st.duplicates,
            if skewed.is_empty() {
                "agree".to_string()
            } else {
                format!("off: {}", skewed.join(", "))
            }
        );
    }
    out
}
