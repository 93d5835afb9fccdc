//! `luciole node run`: one node — the membership core driven over QUIC, every installed view
//! handed to the policies, the status endpoint.
//!
//! The driver owns the [`Membership`] core and is its only caller: messages from the mesh and
//! timeouts in, messages and events out, the time read from one monotonic clock. It never
//! waits on the network: sending queues a frame (or drops and counts it), and the policies run
//! on their own thread.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use luciole_proto::core::{Core, Millis};
use luciole_proto::membership::lifecycle::{Membership, MembershipEvent, Phase};
use luciole_proto::membership::node::{MemberNode, ViewChange};
use luciole_proto::{BubbleId, Epoch, MemberId, MemberInfo, View};
use luciole_transport::frame::FRAME_BYTES_MAX_DEFAULT;
use luciole_transport::{Endpoint, Inbound, MemberIdentity, Mesh};
use tokio::sync::mpsc;

use crate::config::NodeConfig;
use crate::decide::Policies;
use crate::status::{MemberStatus, Request, Shared, ViewStatus};
use crate::traffic;
use crate::wire::{Link, Wire};
use crate::world::World;

/// Where each bubble is hosted in a view, as the placement policy decided.
pub type Placed = (Epoch, BTreeMap<BubbleId, MemberId>);
/// How often the entities part of the status is refreshed.
const WORLD_STATUS_EVERY: Duration = Duration::from_millis(200);

/// How long an evicted node waits before it asks to join again.
pub const REJOIN_AFTER: Duration = Duration::from_secs(1);
/// How long a stopping member waits for a view without it before it stops anyway.
pub const LEAVE_GRACE: Duration = Duration::from_secs(3);
/// How often a node waiting for its seeds tries them again.
const SEED_RETRY: Duration = Duration::from_secs(1);
/// The file in the data directory that says this node has been a member.
const MEMBER_MARKER: &str = "member";

/// Arguments of `luciole node run`.
#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {
    /// The node's config file (TOML), as `luciole cluster init` writes it. Its settings:
    /// `listen` (UDP address of the QUIC endpoint), `advertise` (address the members reach
    /// it at; default `listen`), `status` (TCP address of `GET /status` and `/metrics`),
    /// `data_dir`, `capacity` (default 1), `labels` (a table), `seeds` (addresses of members
    /// to join through), `founders` (the founding view file: a node listed there that has never
    /// been a member starts in that view),
    /// `[tls]` `ca`/`cert`/`key` (PEM), `[policy]` `coordinator`/`placement`/`migration`
    /// (.wasm; default the built-ins) and `cache_dir` (compiled components; default
    /// ~/.cache/luciole/artifacts), `[membership]` `idle_probe_ms` (suspicion-triggered
    /// probing's idle period, default 1250, 0 = off) and `idle_from_members` (the smallest
    /// view that probes idly, default 20), the same on every node; `[world]` `cells` (bubbles
    /// along x, y, z; default [4, 4, 4]), `cell_size` (1), `motion` (`walk`, `flock` or
    /// `shuttle`), `speed` (0.3 per second), `payload_bytes` (256), `bucket_ms` (100),
    /// `margin` (0.05), `skew_tolerance_ms` (50), `shuttle_in_flight` (96), `checkpoint_mib`
    /// (64: MiB of log between two snapshots of the entities), the same on every
    /// node, and this node's `entities` (how many it creates; 0) and `entity_base` (their
    /// first id). The data directory keeps `member`, `acceptor` and the write-ahead log
    /// `wal/`. Relative paths are relative to the file.
    #[arg(long)]
    pub config: PathBuf,
}

/// Runs the node in `config` until Ctrl-C (or SIGTERM); a member then leaves the view before it
/// stops (at most [`LEAVE_GRACE`]).
pub fn run(args: &RunArgs) -> anyhow::Result<()> {
    let config = NodeConfig::load(&args.config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async {
        let node = Node::start(config).await?;
        let span = tracing::info_span!("node", id = %short(node.me));
        tracing::Instrument::instrument(node.run(shutdown_signal()), span).await
    })
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// A started node.
pub struct Node {
    me: MemberId,
    info: MemberInfo,
    config: NodeConfig,
    mesh: Mesh<Wire>,
    link: Link,
    inbox: mpsc::Receiver<Inbound<Wire>>,
    shared: Arc<Shared>,
    views: std::sync::mpsc::Sender<View>,
    placements: mpsc::UnboundedReceiver<Placed>,
    requests: mpsc::Receiver<Request>,
    /// The migration policy slot, if a component was configured.
    migration: Option<luciole_wasm::MigrationDecider>,
    /// A view installed that the entities have not been told of.
    world_view: Option<View>,
    clock: Instant,
    /// Where members are, from the seeds and every view installed.
    known: BTreeMap<MemberId, SocketAddr>,
    /// Messages refused by membership cores this process ran before the current one.
    refused_before: u64,
    /// The newest view this node installed, in this life or an earlier one (the member
    /// marker keeps it): it joins again only into a newer view.
    last_epoch: Epoch,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node").field("me", &self.me).finish_non_exhaustive()
    }
}

impl Node {
    /// Loads the certificates and policies, binds the endpoint and the status address.
    pub async fn start(config: NodeConfig) -> anyhow::Result<Self> {
        let identity = load_identity(&config)?;
        let me = identity.id;
        std::fs::create_dir_all(&config.data_dir).with_context(|| {
            format!("creating the data directory {}", config.data_dir.display())
        })?;
        let policies = Policies::load(&config.policy)?;
        let endpoint = Endpoint::bind(config.listen, &identity)?;
        let (mesh, inbox) = Mesh::start(endpoint, FRAME_BYTES_MAX_DEFAULT);
        let shared = Arc::new(Shared::new());
        let _ = shared.mesh.set(mesh.clone());
        if let Some(addr) = config.status {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding the status address {addr}"))?;
            tokio::spawn(crate::status::serve(listener, shared.clone()));
        }
        let (views, rx) = std::sync::mpsc::channel();
        let bubbles = u32::try_from(config.world.grid()?.len()).context("too many bubbles")?;
        let for_policies = shared.clone();
        let migration = policies.migration();
        let (placed, placements) = mpsc::unbounded_channel();
        std::thread::Builder::new()
            .name("policies".into())
            .spawn(move || policies.serve(rx, me, bubbles, for_policies, placed))
            .context("starting the policy thread")?;
        let (ask, requests) = mpsc::channel(16);
        let _ = shared.requests.set(ask);
        let info = config.info();
        {
            let mut s = shared.status.lock().expect("fresh");
            s.node = format!("{:032x}", me.0);
            s.addr = info.addr.clone();
            s.phase = "joining".into();
        }
        let link = Link::new(mesh.clone());
        if crate::wire::faults_enabled() {
            fault_signals(&link, me)?;
        }
        let clock = Instant::now();
        let known = BTreeMap::new();
        let last_epoch = Epoch(0);
        Ok(Self {
            me,
            info,
            config,
            mesh,
            link,
            inbox,
            shared,
            views,
            placements,
            requests,
            migration,
            world_view: None,
            clock,
            known,
            refused_before: 0,
            last_epoch,
        })
    }

    fn now(&self) -> Millis {
        Millis(self.clock.elapsed().as_millis() as u64)
    }

    /// Runs until `stop` completes.
    pub async fn run(mut self, stop: impl Future<Output = ()>) -> anyhow::Result<()> {
        tokio::pin!(stop);
        // The entities' log first: recovering it may take a while, and nothing the node says
        // as a member may wait behind it.
        let policy = self
            .migration
            .clone()
            .map(|d| Box::new(d) as Box<dyn luciole_proto::migration::MigrationPolicy + Send>);
        let mut world =
            World::open(self.me, &self.config.data_dir, &self.config.world, policy, self.now())?;
        pause_signal(world.pause_switch(), self.me)?;
        let marker = self.config.data_dir.join(MEMBER_MARKER);
        self.last_epoch = last_epoch(&marker)?;
        let founders = match (&self.config.founders, marker.exists()) {
            (Some(path), false) => Some(crate::config::Founders::load(path)?),
            _ => None,
        };
        let founding = founders.filter(|f| f.iter().any(|(id, _)| *id == self.me));
        let acceptor = self.config.data_dir.join(crate::acceptor::FILE);
        let first = if let Some(core) = self.resume(&acceptor) {
            core
        } else if let Some(founders) = founding {
            self.founder(founders)?
        } else {
            let seeds = tokio::select! {
                seeds = self.resolve_seeds(self.config.seeds.clone()) => seeds,
                _ = &mut stop => {
                    self.stop();
                    return Ok(());
                }
            };
            self.joiner(seeds)
        };
        let mut core = first;
        if let Some(node) = core.node() {
            let (epoch, view) = (node.view().0, node.view_change().clone());
            self.installed(epoch, &view, &marker);
        }
        let result = self.drive(&mut core, &mut world, &marker, &acceptor, &mut stop).await;
        self.stop();
        world.close()?;
        result
    }

    /// The loop: messages, timers, durable records, placements and requests in; what the
    /// cores want sent and made durable out.
    async fn drive(
        &mut self,
        core: &mut Membership,
        world: &mut World,
        marker: &Path,
        acceptor: &Path,
        stop: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
    ) -> anyhow::Result<()> {
        let mut rejoin_at: Option<tokio::time::Instant> = None;
        // Once stopping, a member leaves the view first: until a view without it is installed
        // or the grace runs out.
        let mut leaving: Option<tokio::time::Instant> = None;
        let mut status_at = tokio::time::Instant::now();
        loop {
            if self.flush(core, marker, acceptor)? {
                if leaving.is_some() {
                    eprintln!("{}: left the view", short(self.me));
                    break;
                }
                rejoin_at = Some(tokio::time::Instant::now() + REJOIN_AFTER);
            }
            let now = self.now();
            if let Some(view) = self.world_view.take() {
                world.handle_view(now, &view);
            }
            let quorum = matches!(core.phase(), Phase::Member(_))
                && !core.is_evicted()
                && core.node().is_some_and(MemberNode::has_quorum);
            world.handle_quorum(now, quorum);
            let known = &self.known;
            world.flush(
                &self.link,
                |to| {
                    core.addr_of(to)
                        .and_then(|a| a.parse().ok())
                        .or_else(|| known.get(&to).copied())
                },
                now,
            )?;
            if status_at <= tokio::time::Instant::now() {
                status_at = tokio::time::Instant::now() + WORLD_STATUS_EVERY;
                let status = world.status(now);
                if let Ok(mut s) = self.shared.status.lock() {
                    s.world = Some(status);
                }
            }
            let wake = core.poll_timeout().map(|t| self.instant_of(t));
            let world_wake = Some(self.instant_of(world.poll_timeout()));
            let wake = [wake, world_wake, rejoin_at].into_iter().flatten().min();
            let far = tokio::time::Instant::now() + Duration::from_secs(3600);
            let syncing = world.syncing();
            tokio::select! {
                _ = &mut *stop, if leaving.is_none() => {
                    if !core.leave(self.now()) {
                        break;
                    }
                    eprintln!("{}: stopping: leaving the view first", short(self.me));
                    self.set_phase("leaving");
                    leaving = Some(tokio::time::Instant::now() + LEAVE_GRACE);
                }
                _ = tokio::time::sleep_until(leaving.unwrap_or(far)), if leaving.is_some() => {
                    eprintln!(
                        "{}: no view without this node within {} s; stopping anyway",
                        short(self.me),
                        LEAVE_GRACE.as_secs()
                    );
                    break;
                }
                durable = world.durable(), if syncing => durable?,
                inbound = self.inbox.recv() => {
                    let Some(m) = inbound else { break };
                    if self.link.is_cut() {
                        continue;
                    }
                    match m.message {
                        Wire::Membership(envelope) => {
                            let kind = traffic::kind(&envelope.message);
                            self.shared.traffic.received(kind, m.bytes);
                            if kind > 1 {
                                tracing::debug!(from = %short(m.from), epoch = envelope.epoch.0, message = ?envelope.message, "in");
                            }
                            core.handle_message(self.now(), m.from, envelope);
                        }
                        other => world.handle_message(self.now(), m.from, other),
                    }
                }
                Some((epoch, homes)) = self.placements.recv() => {
                    world.place(self.now(), epoch, homes);
                }
                Some(request) = self.requests.recv() => match request {
                    Request::Holdings(answer) => {
                        let _ = answer.send(world.holdings());
                    }
                },
                _ = tokio::time::sleep_until(wake.unwrap_or(far)) => {
                    if rejoin_at.is_some_and(|t| t <= tokio::time::Instant::now()) {
                        rejoin_at = None;
                        *core = self.rejoiner(core);
                    }
                    let now = self.now();
                    core.handle_timeout(now);
                    world.handle_timeout(now);
                }
            }
        }
        Ok(())
    }

    fn stop(&self) {
        eprintln!("{}: stopping", short(self.me));
        self.mesh.close();
    }

    fn instant_of(&self, t: Millis) -> tokio::time::Instant {
        let at = self.clock + Duration::from_millis(t.0);
        tokio::time::Instant::from_std(at)
    }

    /// A node that restarted while a member: it takes up its place in the view it kept
    /// ([`crate::acceptor`]), with what it promised and accepted there, unless it learned it
    /// was removed, its own entry no longer matches its config, or the file is damaged (then
    /// it joins again, into a newer view only).
    fn resume(&mut self, path: &Path) -> Option<Membership> {
        let state = match crate::acceptor::read(path) {
            Ok(state) => state?,
            Err(e) => {
                eprintln!(
                    "{}: ignoring {}: {e:#}; joining again instead",
                    short(self.me),
                    path.display()
                );
                return None;
            }
        };
        if state.epoch < self.last_epoch {
            return None;
        }
        let mine = state.view.info_of(self.me);
        if mine.is_some_and(|i| *i != self.info) {
            eprintln!(
                "{}: this node's settings changed since view {}: joining again with them",
                short(self.me),
                state.epoch.0
            );
            return None;
        }
        let (epoch, n) = (state.epoch, state.view.members.len());
        let config = self.config.membership.monitor();
        let node = MemberNode::resume(self.me, state, config, self.now().0)?;
        eprintln!("{}: resuming in view {} ({n} member(s))", short(self.me), epoch.0);
        Some(Membership::member(node, config))
    }

    /// A member of the founding view; its own entry there must match its config.
    fn founder(&mut self, founders: Vec<(MemberId, MemberInfo)>) -> anyhow::Result<Membership> {
        let mine = founders.iter().find(|(id, _)| *id == self.me).map(|(_, i)| i);
        if mine != Some(&self.info) {
            anyhow::bail!(
                "the founders file lists this node with {mine:?}, its config says {:?}: they must \
                 agree, or every member would start from another view",
                self.info
            );
        }
        // (Their addresses are learned as the founding view is installed, like any view's.)
        eprintln!(
            "{}: starting in the founding view of {} member(s) at {}",
            short(self.me),
            founders.len(),
            self.info.addr
        );
        let first = ViewChange::first(founders);
        if !first.is_valid() {
            anyhow::bail!("the founding view is not valid (a label or address out of limits)");
        }
        let config = self.config.membership.monitor();
        let node = MemberNode::new(self.me, Epoch(1), first, config, self.now().0);
        Ok(Membership::member(node, config))
    }

    fn joiner(&mut self, seeds: Vec<MemberId>) -> Membership {
        eprintln!("{}: joining through {} seed(s)", short(self.me), seeds.len());
        Membership::rejoining(
            self.me,
            self.info.clone(),
            seeds,
            self.config.membership.monitor(),
            self.now(),
            self.last_epoch,
        )
    }

    /// A joiner that asks the members of `old`'s last view (and the seeds) to let it back in.
    fn rejoiner(&mut self, old: &Membership) -> Membership {
        self.refused_before += old.node().map_or(0, MemberNode::refused);
        let mut seeds: Vec<MemberId> = old
            .node()
            .map(|n| n.view().1.iter().copied().filter(|m| *m != self.me).collect())
            .unwrap_or_default();
        let known: Vec<MemberId> =
            self.known.keys().copied().filter(|m| *m != self.me && !seeds.contains(m)).collect();
        seeds.extend(known);
        if seeds.is_empty() {
            seeds.push(self.me); // nobody to ask: keep asking nobody, visibly
        }
        self.set_phase("joining");
        self.joiner(seeds)
    }

    /// Dials the seeds until at least one answers; their member ids, from their certificates.
    async fn resolve_seeds(&mut self, addrs: Vec<SocketAddr>) -> Vec<MemberId> {
        let mut attempt = 0u32;
        loop {
            let mut tries = tokio::task::JoinSet::new();
            for addr in addrs.iter().copied() {
                let mesh = self.mesh.clone();
                tries.spawn(async move { (addr, mesh.dial(addr).await) });
            }
            let mut ids = Vec::new();
            while let Some(Ok((addr, result))) = tries.join_next().await {
                if let Ok(id) = result
                    && id != self.me
                {
                    self.known.insert(id, addr);
                    ids.push(id);
                }
            }
            if !ids.is_empty() {
                ids.sort_unstable();
                return ids;
            }
            attempt += 1;
            if attempt == 1 || attempt.is_multiple_of(10) {
                eprintln!("{}: no seed answers yet; trying again every second", short(self.me));
            }
            tokio::time::sleep(SEED_RETRY).await;
        }
    }

    /// Makes the core's acceptor state durable, sends what the core wants sent and acts on
    /// its events; true when it was evicted. An error when the state cannot be written: the
    /// node must stop rather than send a promise or vote it could forget.
    fn flush(
        &mut self,
        core: &mut Membership,
        marker: &Path,
        acceptor: &Path,
    ) -> anyhow::Result<bool> {
        while let Some(state) = core.poll_persist() {
            crate::acceptor::write(acceptor, &state).with_context(|| {
                format!(
                    "writing {} (the membership state must be durable before the node speaks)",
                    acceptor.display()
                )
            })?;
        }
        while let Some((to, envelope)) = core.poll_transmit() {
            let addr = core
                .addr_of(to)
                .and_then(|a| a.parse().ok())
                .or_else(|| self.known.get(&to).copied());
            let kind = traffic::kind(&envelope.message);
            if kind > 1 {
                tracing::debug!(to = %short(to), epoch = envelope.epoch.0, message = ?envelope.message, "out");
            }
            // Probes and acks go as datagrams once a connection is open: a lost one is a missed
            // probe, which monitoring already counts on; everything else is ordered and reliable.
            let wire = Wire::Membership(envelope);
            let sent = if kind <= 1 {
                self.link.send_unreliable(to, addr, &wire)
            } else {
                self.link.send(to, addr, &wire)
            };
            if let Some(bytes) = sent {
                self.shared.traffic.sent(kind, bytes);
            }
        }
        let mut evicted = false;
        while let Some(event) = core.poll_event() {
            match event {
                MembershipEvent::ViewInstalled { epoch, view } => {
                    self.installed(epoch, &view, marker)
                }
                MembershipEvent::Evicted => {
                    if !core.node().is_some_and(MemberNode::is_leaving) {
                        eprintln!(
                            "{}: evicted from the view; asking to join again",
                            short(self.me)
                        );
                    }
                    self.set_phase("evicted");
                    evicted = true;
                }
                MembershipEvent::QuorumLost => self.set_quorum(false),
                MembershipEvent::QuorumRegained => self.set_quorum(true),
            }
        }
        if let Ok(mut s) = self.shared.status.lock() {
            s.uptime_s = self.clock.elapsed().as_secs();
            if matches!(core.phase(), Phase::Member(_)) && !core.is_evicted() {
                s.quorum = core.node().is_some_and(MemberNode::has_quorum);
            }
            s.membership_refused = self.refused_before + core.node().map_or(0, MemberNode::refused);
        }
        Ok(evicted)
    }

    fn installed(&mut self, epoch: Epoch, view: &ViewChange, marker: &Path) {
        for (m, info) in view.members.iter().zip(&view.info) {
            if let Ok(addr) = info.addr.parse() {
                self.known.insert(*m, addr);
            }
        }
        if epoch > self.last_epoch {
            self.last_epoch = epoch;
            if let Err(e) = write_marker(marker, self.me, epoch) {
                eprintln!("{}: cannot write {}: {e}", short(self.me), marker.display());
            }
        }
        eprintln!(
            "{}: view {} installed: {} member(s) (+{} -{})",
            short(self.me),
            epoch.0,
            view.members.len(),
            view.joined.len(),
            view.left.len()
        );
        match view.policy_view(epoch) {
            Ok(v) => {
                self.world_view = Some(v.clone());
                let _ = self.views.send(v);
            }
            Err(e) => eprintln!("{}: the view cannot go to the policies: {e}", short(self.me)),
        }
        if let Ok(mut s) = self.shared.status.lock() {
            s.phase = "member".into();
            s.quorum = true;
            s.views_installed += 1;
            s.view = Some(ViewStatus {
                epoch: epoch.0,
                id: format!("{:032x}", view.id().0),
                members: view.members.iter().zip(&view.info).map(member_status).collect(),
            });
        }
    }

    fn set_phase(&self, phase: &str) {
        if let Ok(mut s) = self.shared.status.lock() {
            s.phase = phase.into();
            s.quorum = false;
        }
    }

    fn set_quorum(&self, quorum: bool) {
        if let Ok(mut s) = self.shared.status.lock() {
            s.quorum = quorum;
        }
    }
}

/// Flips `flag` at each signal of `kind` and says so: `what` names the switch, `on` and `off`
/// what it does.
fn toggle_on_signal(
    #[cfg(unix)] kind: tokio::signal::unix::SignalKind,
    #[cfg(not(unix))] _kind: (),
    flag: Arc<std::sync::atomic::AtomicBool>,
    me: MemberId,
    (what, on, off): (&'static str, &'static str, &'static str),
) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        let mut signals = tokio::signal::unix::signal(kind)
            .with_context(|| format!("listening for the signal of the {what}"))?;
        tokio::spawn(async move {
            while signals.recv().await.is_some() {
                let now = !flag.fetch_xor(true, std::sync::atomic::Ordering::Relaxed);
                eprintln!("{}: {what}: {}", short(me), if now { on } else { off });
            }
        });
    }
    #[cfg(not(unix))]
    let _ = (flag, me, what, on, off);
    Ok(())
}

/// With `LUCIOLE_FAULT_SIGNALS=1` (tests): SIGUSR1 cuts the node off from every peer, or
/// reconnects it — a network partition with this node alone on its side.
fn fault_signals(link: &Link, me: MemberId) -> anyhow::Result<()> {
    let words = ("fault injection (SIGUSR1)", "cut off from every peer", "reconnected");
    #[cfg(unix)]
    let kind = tokio::signal::unix::SignalKind::user_defined1();
    #[cfg(not(unix))]
    let kind = ();
    toggle_on_signal(kind, link.switch(), me, words)
}

/// SIGUSR2 pauses the workload (no entity starts a move; moves under way finish, placement
/// changes still move bubbles) or resumes it: to look at a still world, or check it.
fn pause_signal(paused: Arc<std::sync::atomic::AtomicBool>, me: MemberId) -> anyhow::Result<()> {
    #[cfg(unix)]
    let kind = tokio::signal::unix::SignalKind::user_defined2();
    #[cfg(not(unix))]
    let kind = ();
    toggle_on_signal(kind, paused, me, ("SIGUSR2", "workload paused", "workload resumed"))
}

fn member_status((id, info): (&MemberId, &MemberInfo)) -> MemberStatus {
    MemberStatus {
        id: format!("{:032x}", id.0),
        capacity: info.capacity,
        labels: info.labels.iter().map(|l| format!("{}={}", l.key, l.value)).collect(),
        addr: info.addr.clone(),
    }
}

/// The first 8 hex digits of a member id, for log lines.
pub fn short(id: MemberId) -> String {
    format!("{:032x}", id.0)[..8].to_string()
}

fn load_identity(config: &NodeConfig) -> anyhow::Result<MemberIdentity> {
    let read = |p: &Path, what: &str| {
        std::fs::read(p).with_context(|| format!("reading the {what} {}", p.display()))
    };
    let ca = read(&config.tls.ca, "CA certificate")?;
    let cert = read(&config.tls.cert, "certificate")?;
    let key = read(&config.tls.key, "key")?;
    MemberIdentity::from_pem(&ca, &cert, &key).with_context(|| {
        format!(
            "{} and {} (CA {})",
            config.tls.cert.display(),
            config.tls.key.display(),
            config.tls.ca.display()
        )
    })
}

/// The newest view epoch the member marker records (0 without a marker; 1 for a marker of
/// the first format, which held only the id).
fn last_epoch(marker: &Path) -> anyhow::Result<Epoch> {
    let text = match std::fs::read_to_string(marker) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Epoch(0)),
        Err(e) => return Err(e).with_context(|| format!("reading {}", marker.display())),
    };
    match text.lines().nth(1) {
        None => Ok(Epoch(1)),
        Some(line) => line
            .trim()
            .strip_prefix("epoch ")
            .and_then(|n| n.parse().ok())
            .map(Epoch)
            .with_context(|| format!("{}: the second line is not `epoch N`", marker.display())),
    }
}

/// Records that this node installed view `epoch`, durably (written, synced and renamed into
/// place, the directory synced) before it acts in that view: a node that restarts must not be
/// welcomed back into a view whose agreement it may have voted in and forgotten.
fn write_marker(marker: &Path, me: MemberId, epoch: Epoch) -> std::io::Result<()> {
    let text = format!("{:032x}\nepoch {}\n", me.0, epoch.0);
    crate::acceptor::replace_durably(marker, text.as_bytes())
}
