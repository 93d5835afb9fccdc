//! A node's configuration file (TOML). Paths in it are relative to the file's directory.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use luciole_proto::{Label, MemberId, MemberInfo};
use serde::{Deserialize, Serialize};

/// One node's settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// UDP address the QUIC endpoint binds.
    pub listen: SocketAddr,
    /// Address the other members reach this node at; `listen` when absent (it must then not
    /// be a wildcard address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advertise: Option<SocketAddr>,
    /// TCP address of the status and metrics endpoint (`GET /status`, `GET /metrics`); none
    /// when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<SocketAddr>,
    /// Directory for this node's state (created if missing): `member` (its id and the newest
    /// view it installed), `acceptor` (what it promised and accepted in its view, so that
    /// a restart resumes there) and `wal/` (the write-ahead log of the entities it owns and
    /// the migrations it takes part in). Keep it across restarts; a node whose directory is
    /// lost joins again as a new member would, and the entities it owned are lost with it.
    pub data_dir: PathBuf,
    /// Relative hosting capacity announced to the cluster; 0 hosts nothing.
    #[serde(default = "one")]
    pub capacity: u32,
    /// Operator labels announced to the cluster.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Members to join through (their QUIC addresses), asked in turn.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub seeds: Vec<SocketAddr>,
    /// The founding view (a file as `luciole cluster init` writes it): a node listed there
    /// that has never been a member (no state in `data_dir`) starts in that view; every other
    /// start joins through the seeds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub founders: Option<PathBuf>,
    /// The world: its grid of bubbles (placed on the members by the placement policy), the
    /// entities this node creates, how they move. A cluster setting except `entities` and
    /// `entity_base`.
    #[serde(default)]
    pub world: WorldConfig,
    /// Certificates.
    pub tls: TlsConfig,
    /// Policy components; the built-in defaults decide where none is given.
    #[serde(default)]
    pub policy: PolicyConfig,
    /// Membership settings: a cluster setting, the same in every node's file.
    #[serde(default, skip_serializing_if = "MembershipConfig::is_default")]
    pub membership: MembershipConfig,
}

/// Membership settings every member of a cluster must share.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MembershipConfig {
    /// Suspicion-triggered probing in views of at least `idle_from_members` members (0 is
    /// off): a member that answered is probed again only after this many ms, and a missed
    /// answer makes its observers probe it every 100 ms. Default 1,250: about a tenth of the
    /// steady traffic of probing every 100 ms, for ~0.1 s more from crash to view.
    pub idle_probe_ms: u64,
    /// The smallest view that probes idly; smaller views probe every subject every 100 ms.
    /// Default 20.
    pub idle_from_members: usize,
}

impl Default for MembershipConfig {
    fn default() -> Self {
        use luciole_proto::membership::monitor::{
            IDLE_FROM_MEMBERS_DEFAULT, IDLE_PROBE_MS_DEFAULT,
        };
        Self { idle_probe_ms: IDLE_PROBE_MS_DEFAULT, idle_from_members: IDLE_FROM_MEMBERS_DEFAULT }
    }
}

impl MembershipConfig {
    fn is_default(&self) -> bool {
        *self == Self::default()
    }

    /// The monitoring settings these give.
    pub fn monitor(&self) -> luciole_proto::membership::monitor::MonitorConfig {
        luciole_proto::membership::monitor::MonitorConfig {
            idle_probe_ms: self.idle_probe_ms,
            idle_from_members: self.idle_from_members,
            ..Default::default()
        }
    }
}

/// The world a cluster hosts, and this node's share of the entities it starts with.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorldConfig {
    /// Bubbles along x, y and z (each 1 to 64). Default 4 × 4 × 4.
    pub cells: [u32; 3],
    /// The side of one bubble. Default 1.
    pub cell_size: f64,
    /// Entities this node creates when it first is a member with a quorum (ids
    /// `entity_base .. entity_base + entities`; created once, whatever restarts follow).
    /// Default 0.
    pub entities: u64,
    /// The first id of this node's entities; the ranges of the nodes of a cluster must not
    /// overlap (`cluster init` gives node k the base k × 2³²).
    pub entity_base: u64,
    /// `walk` (random walk), `flock` (entities of a bubble steer together) or `shuttle` (no
    /// motion: each entity is migrated on to the next member as soon as it arrives, for
    /// benchmarks). Default `walk`.
    pub motion: MotionKind,
    /// Most distance an entity covers per second. Default 0.3.
    pub speed: f64,
    /// Bytes of opaque state each entity carries besides its motion. Default 256.
    pub payload_bytes: u32,
    /// The workload steps every entity every this many ms of wall-clock time. Default 100.
    pub bucket_ms: u64,
    /// An entity migrates once it is this far past its bubble's border (in units of the
    /// world). Default 0.05.
    pub margin: f64,
    /// A peer whose clock is off by more than this many ms is reported as skewed. Default 50.
    pub skew_tolerance_ms: u64,
    /// `shuttle` only: most migrations a node keeps in flight as their source. Default 96.
    pub shuttle_in_flight: u32,
    /// After this many MiB appended to its log, a node writes a snapshot of its entities and
    /// lets the log before it go (recovery then reads from the snapshot on). Default 64.
    pub checkpoint_mib: u32,
}

/// How the workload moves entities.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MotionKind {
    /// A random walk.
    #[default]
    Walk,
    /// Flocking per bubble.
    Flock,
    /// No motion: every entity is sent on to the next member as soon as it arrives, as many
    /// at once as the migration limits allow. A benchmark of the migration path, not a world.
    Shuttle,
}

impl Default for WorldConfig {
    fn default() -> Self {
        Self {
            cells: [4, 4, 4],
            cell_size: 1.0,
            entities: 0,
            entity_base: 0,
            motion: MotionKind::Walk,
            speed: 0.3,
            payload_bytes: 256,
            bucket_ms: 100,
            margin: 0.05,
            skew_tolerance_ms: luciole_proto::skew::TOLERANCE_MS_DEFAULT,
            shuttle_in_flight: 96,
            checkpoint_mib: 64,
        }
    }
}

/// Most bytes of opaque state an entity may carry.
pub const PAYLOAD_BYTES_MAX: u32 = 64 << 10;

impl WorldConfig {
    /// The grid, checked.
    pub fn grid(&self) -> anyhow::Result<luciole_proto::world::Grid> {
        luciole_proto::world::Grid::new(self.cells, self.cell_size)
            .map_err(|e| anyhow::anyhow!("[world]: {e}"))
    }

    /// The workload's motion.
    pub fn motion(&self) -> luciole_proto::world::Motion {
        use luciole_proto::world::Motion;
        match self.motion {
            MotionKind::Walk => Motion::RandomWalk { speed: self.speed },
            MotionKind::Flock => Motion::Flock { speed: self.speed },
            MotionKind::Shuttle => Motion::RandomWalk { speed: 0.0 },
        }
    }

    /// Checks every setting.
    pub fn check(&self) -> anyhow::Result<()> {
        self.grid()?;
        if !(self.speed.is_finite() && self.speed >= 0.0) {
            anyhow::bail!("[world] speed must be a finite number ≥ 0, not {}", self.speed);
        }
        if !(self.margin.is_finite() && self.margin >= 0.0 && self.margin < self.cell_size) {
            anyhow::bail!(
                "[world] margin must be ≥ 0 and below the bubble's side ({}), not {}",
                self.cell_size,
                self.margin
            );
        }
        if self.payload_bytes > PAYLOAD_BYTES_MAX {
            anyhow::bail!("[world] payload_bytes is at most {PAYLOAD_BYTES_MAX}");
        }
        if !(10..=10_000).contains(&self.bucket_ms) {
            anyhow::bail!("[world] bucket_ms must be 10 to 10000, not {}", self.bucket_ms);
        }
        if !(1..=120).contains(&self.shuttle_in_flight) {
            anyhow::bail!(
                "[world] shuttle_in_flight must be 1 to 120 (a node admits at most 256 migrations \
                 in flight, both roles), not {}",
                self.shuttle_in_flight
            );
        }
        if !(1..=4096).contains(&self.checkpoint_mib) {
            anyhow::bail!("[world] checkpoint_mib must be 1 to 4096, not {}", self.checkpoint_mib);
        }
        if self.entity_base.checked_add(self.entities).is_none() {
            anyhow::bail!("[world] entity_base + entities overflows");
        }
        Ok(())
    }
}

/// The node's certificates, PEM.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The cluster CA's certificate: the only root this node trusts.
    pub ca: PathBuf,
    /// This node's certificate, issued by the cluster CA; it names the node's member id.
    pub cert: PathBuf,
    /// This node's private key (PKCS#8).
    pub key: PathBuf,
}

/// Policy components to run instead of the built-in defaults.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// A coordinator component (.wasm).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coordinator: Option<PathBuf>,
    /// A placement component (.wasm).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<PathBuf>,
    /// A migration component (.wasm): the decisions of the migration two-phase commit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migration: Option<PathBuf>,
    /// Where compiled components are kept, so a restart loads them instead of compiling
    /// [default: ~/.cache/luciole/artifacts].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_dir: Option<PathBuf>,
}

fn one() -> u32 {
    1
}

impl NodeConfig {
    /// Reads `path`, resolves its relative paths against the file's directory and checks it.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the config {}", path.display()))?;
        let mut config: NodeConfig = toml::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.message()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        config.resolve(base);
        config.check().with_context(|| path.display().to_string())?;
        Ok(config)
    }

    fn resolve(&mut self, base: &Path) {
        for p in [&mut self.data_dir, &mut self.tls.ca, &mut self.tls.cert, &mut self.tls.key]
            .into_iter()
            .chain(self.founders.as_mut())
            .chain(self.policy.coordinator.as_mut())
            .chain(self.policy.placement.as_mut())
            .chain(self.policy.migration.as_mut())
            .chain(self.policy.cache_dir.as_mut())
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
    }

    /// The address the other members reach this node at.
    pub fn advertised(&self) -> SocketAddr {
        self.advertise.unwrap_or(self.listen)
    }

    /// What this node brings into the view.
    pub fn info(&self) -> MemberInfo {
        info_of(self.capacity, &self.labels, self.advertised())
    }

    fn check(&self) -> anyhow::Result<()> {
        if self.advertised().ip().is_unspecified() {
            anyhow::bail!(
                "listen = {} is a wildcard address: set `advertise` to the address the other \
                 members reach this node at",
                self.listen
            );
        }
        if self.advertised().port() == 0 {
            anyhow::bail!("the node's port must be set (not 0): the other members dial it");
        }
        if self.founders.is_none() && self.seeds.is_empty() {
            anyhow::bail!(
                "no seeds and no founders: give the addresses of members to join through, or \
                 the founding view of a new cluster"
            );
        }
        self.world.check()?;
        self.info().check().map_err(|e| anyhow::anyhow!("labels or address: {e}"))
    }
}

/// The members that start a cluster together, as `founders.toml` lists them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Founders {
    /// The members.
    pub member: Vec<Founder>,
}

/// One founding member.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Founder {
    /// Its member id, 32 hex digits (as its certificate carries it).
    pub id: String,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its capacity.
    #[serde(default = "one")]
    pub capacity: u32,
    /// Its labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

impl Founders {
    /// Reads and checks `path`: the founding view's members with what each brings.
    pub fn load(path: &Path) -> anyhow::Result<Vec<(MemberId, MemberInfo)>> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the founders {}", path.display()))?;
        let founders: Founders = toml::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.message()))?;
        let mut members = Vec::new();
        for f in founders.member {
            let id = u128::from_str_radix(&f.id, 16).ok().filter(|_| f.id.len() == 32).ok_or_else(
                || anyhow::anyhow!("{}: {:?} is not a member id", path.display(), f.id),
            )?;
            members.push((MemberId(id), info_of(f.capacity, &f.labels, f.addr)));
        }
        members.sort_by_key(|(id, _)| *id);
        if members.is_empty() || members.windows(2).any(|w| w[0].0 == w[1].0) {
            anyhow::bail!("{}: no members, or one listed twice", path.display());
        }
        Ok(members)
    }
}

fn info_of(capacity: u32, labels: &BTreeMap<String, String>, addr: SocketAddr) -> MemberInfo {
    let labels = labels.iter().map(|(k, v)| Label { key: k.clone(), value: v.clone() });
    MemberInfo { capacity, labels: labels.collect(), addr: addr.to_string() }
}
