//! `luciole cluster init`: a cluster CA, and per node a certificate, a key and a config, for a
//! cluster on loopback (or on the addresses given).

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::Context;
use luciole_proto::MemberId;
use luciole_transport::ClusterCa;

use crate::config::{
    Founder, Founders, MotionKind, NodeConfig, PolicyConfig, TlsConfig, WorldConfig,
};

/// Most nodes `cluster init` writes at once.
pub const INIT_NODES_MAX: u16 = 1_000;

/// Arguments of `luciole cluster init`.
#[derive(clap::Args, Debug, Clone)]
pub struct InitArgs {
    /// Directory to write into; created, and refused if it exists and is not empty.
    #[arg(long)]
    pub dir: PathBuf,
    /// How many nodes.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=INIT_NODES_MAX as i64))]
    pub nodes: u16,
    /// QUIC (UDP) port of node 1; node i listens on base-port + i - 1.
    #[arg(long, default_value_t = 7400)]
    pub base_port: u16,
    /// Status port of node 1 (TCP, `GET /status` and `/metrics`); node i on status-port + i - 1.
    #[arg(long, default_value_t = 9400)]
    pub status_port: u16,
    /// Address every node binds and advertises.
    #[arg(long, default_value = "127.0.0.1")]
    pub ip: IpAddr,
    /// A name for the cluster, written into its CA certificate.
    #[arg(long, default_value = "local")]
    pub name: String,
    /// A coordinator component (.wasm) every node runs instead of the built-in.
    #[arg(long, value_name = "FILE.wasm")]
    pub coordinator: Option<PathBuf>,
    /// A placement component (.wasm) every node runs instead of the built-in.
    #[arg(long, value_name = "FILE.wasm")]
    pub placement: Option<PathBuf>,
    /// A migration component (.wasm) every node runs instead of the built-in.
    #[arg(long, value_name = "FILE.wasm")]
    pub migration: Option<PathBuf>,
    /// Entities in the world, created evenly by the nodes when they first have a quorum
    /// (node k gets ids from k × 2³²).
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(0..=10_000_000))]
    pub entities: u64,
    /// Bubbles along x, y and z: the world's grid of unit cubes.
    #[arg(long, value_delimiter = ',', default_values_t = [4u32, 4, 4], value_name = "X,Y,Z")]
    pub cells: Vec<u32>,
    /// How entities move: `walk` (random walk), `flock`, or `shuttle` (no motion; every
    /// entity migrated on as soon as it arrives: a benchmark of the migration path).
    #[arg(long, value_enum, default_value_t = Motion::Walk)]
    pub motion: Motion,
    /// Most distance an entity covers per second (bubbles are 1 wide).
    #[arg(long, default_value_t = 0.3)]
    pub speed: f64,
    /// `--motion shuttle` only: most migrations each node keeps in flight as their source.
    #[arg(long, default_value_t = 96, value_parser = clap::value_parser!(u32).range(1..=120))]
    pub shuttle_in_flight: u32,
    /// MiB each node appends to its log between two snapshots (a snapshot lets the log
    /// before it go).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub checkpoint_mib: u32,
    /// Bytes of opaque state per entity besides its motion.
    #[arg(long, default_value_t = 256)]
    pub payload_bytes: u32,
    /// Suspicion-triggered probing's idle period in ms, written into every node's config
    /// (0 = off: every subject probed every 100 ms in views of any size).
    #[arg(
        long,
        default_value_t = luciole_proto::membership::monitor::IDLE_PROBE_MS_DEFAULT,
        value_parser = clap::value_parser!(u64).range(0..=60_000)
    )]
    pub idle_probe_ms: u64,
    /// The smallest view that probes idly (smaller views probe every 100 ms), written into
    /// every node's config.
    #[arg(
        long,
        default_value_t = luciole_proto::membership::monitor::IDLE_FROM_MEMBERS_DEFAULT,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_000_000)
    )]
    pub idle_from_members: usize,
}

/// How entities move (for `--motion`).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Motion {
    /// A random walk.
    Walk,
    /// Entities of a bubble steer together.
    Flock,
    /// No motion: each entity is migrated on as soon as it arrives (a benchmark).
    Shuttle,
}

/// What `init` wrote for one node.
#[derive(Debug, Clone)]
pub struct Written {
    /// The node's member id.
    pub id: MemberId,
    /// Its config file.
    pub config: PathBuf,
}

/// Writes the cluster; prints what it wrote.
pub fn init(args: &InitArgs) -> anyhow::Result<Vec<Written>> {
    let ports = |base: u16, what: &str| -> anyhow::Result<Vec<u16>> {
        (0..args.nodes)
            .map(|i| base.checked_add(i).filter(|p| *p != 0))
            .collect::<Option<Vec<u16>>>()
            .ok_or_else(|| anyhow::anyhow!("{what} {base} + {} nodes passes 65535", args.nodes))
    };
    let quic = ports(args.base_port, "--base-port")?;
    let status = ports(args.status_port, "--status-port")?;
    if quic.iter().any(|p| status.contains(p)) {
        anyhow::bail!("the QUIC and status port ranges overlap; move --status-port");
    }
    let policy = PolicyConfig {
        coordinator: args.coordinator.as_deref().map(absolute).transpose()?,
        placement: args.placement.as_deref().map(absolute).transpose()?,
        migration: args.migration.as_deref().map(absolute).transpose()?,
        cache_dir: None,
    };
    let cells: [u32; 3] = args
        .cells
        .as_slice()
        .try_into()
        .map_err(|_| anyhow::anyhow!("--cells takes three numbers: X,Y,Z"))?;
    let world = WorldConfig {
        cells,
        motion: match args.motion {
            Motion::Walk => MotionKind::Walk,
            Motion::Flock => MotionKind::Flock,
            Motion::Shuttle => MotionKind::Shuttle,
        },
        speed: args.speed,
        payload_bytes: args.payload_bytes,
        shuttle_in_flight: args.shuttle_in_flight,
        checkpoint_mib: args.checkpoint_mib,
        ..WorldConfig::default()
    };
    let share = |i: u64| {
        let n = u64::from(args.nodes);
        args.entities / n + u64::from(i < args.entities % n)
    };
    world.check()?;
    prepare_dir(&args.dir)?;
    let ca = ClusterCa::generate(&args.name)?;
    write_file(&args.dir.join("ca.pem"), ca.cert_pem().as_bytes(), false)?;
    write_file(&args.dir.join("ca.key"), ca.key_pem().as_bytes(), true)?;
    let addrs: Vec<SocketAddr> = quic.iter().map(|p| SocketAddr::new(args.ip, *p)).collect();
    let mut written = Vec::new();
    let mut founders = Founders { member: Vec::new() };
    for i in 0..usize::from(args.nodes) {
        let id = random_member_id()?;
        let identity = ca.issue(id)?;
        let dir = args.dir.join(format!("node-{}", i + 1));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        write_file(&dir.join("cert.pem"), identity.cert_pem().as_bytes(), false)?;
        write_file(&dir.join("key.pem"), identity.key_pem().as_bytes(), true)?;
        let config = NodeConfig {
            listen: addrs[i],
            advertise: None,
            status: Some(SocketAddr::new(args.ip, status[i])),
            data_dir: "data".into(),
            capacity: 1,
            labels: [("node".to_string(), format!("{}", i + 1))].into(),
            seeds: addrs.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, a)| *a).collect(),
            founders: Some("../founders.toml".into()),
            world: WorldConfig {
                entities: share(i as u64),
                entity_base: (i as u64 + 1) << 32,
                ..world.clone()
            },
            tls: TlsConfig {
                ca: "../ca.pem".into(),
                cert: "cert.pem".into(),
                key: "key.pem".into(),
            },
            policy: policy.clone(),
            membership: crate::config::MembershipConfig {
                idle_probe_ms: args.idle_probe_ms,
                idle_from_members: args.idle_from_members,
            },
        };
        let path = dir.join("node.toml");
        let text = format!(
            "# luciole node {} of the cluster {:?}, member {id}.\n\
             # Every setting is documented by `luciole node run --help`.\n{}",
            i + 1,
            args.name,
            toml::to_string(&config).context("writing the config")?
        );
        write_file(&path, text.as_bytes(), false)?;
        founders.member.push(Founder {
            id: format!("{:032x}", id.0),
            addr: config.advertised(),
            capacity: config.capacity,
            labels: config.labels.clone(),
        });
        written.push(Written { id, config: path });
    }
    let text = format!(
        "# The founding view of the cluster {:?}: these members start it together. A node\n\
         # listed here that has never been a member starts in this view; later starts join.\n{}",
        args.name,
        toml::to_string(&founders).context("writing the founders")?
    );
    write_file(&args.dir.join("founders.toml"), text.as_bytes(), false)?;
    Ok(written)
}

/// `path` made absolute, refused if it is not a file.
fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    let path = std::fs::canonicalize(path).with_context(|| format!("{}", path.display()))?;
    if !path.is_file() {
        anyhow::bail!("{} is not a file", path.display());
    }
    Ok(path)
}

fn prepare_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() {
        let mut entries =
            std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
        if entries.next().is_some() {
            anyhow::bail!("{} exists and is not empty: choose a new directory", dir.display());
        }
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))
}

/// Writes `bytes` to a new file at `path`; `secret` files are readable by their owner only.
fn write_file(path: &Path, bytes: &[u8], secret: bool) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let _ = secret;
    let mut file = options.open(path).with_context(|| format!("creating {}", path.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}

/// A member id from the system's random source.
fn random_member_id() -> anyhow::Result<MemberId> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no system randomness: {e}"))?;
    Ok(MemberId(u128::from_le_bytes(bytes)))
}
