//! `luciole`: the node binary.
//!
//! `luciole cluster init` writes a cluster's certificates and configs, `luciole node run` runs
//! one node (membership over QUIC, the policies on every installed view, status and metrics),
//! `luciole status` asks a running node. `luciole demo` shows the default policies deciding on
//! a changing synthetic view (and a hot swap) in one process; `luciole policy …` checks and
//! builds policy components.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod acceptor;
mod cluster;
mod cluster_demo;
mod config;
mod conservation;
mod decide;
mod demo;
mod page;
mod policy;
mod policy_cases;
mod policy_new;
mod policy_test;
mod run;
mod status;
mod traffic;
mod wire;
mod world;

/// luciole: a cluster node that hosts coordination policies as sandboxed WebAssembly components.
#[derive(Parser, Debug)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a local cluster of node processes and watch it: views, coordinator, placement.
    ///
    /// Writes a cluster into a temporary directory, starts --nodes `luciole node run`
    /// processes on loopback (QUIC with mutual TLS), prints every second what each node
    /// reports, SIGKILLs one a third of the way through and restarts it at two thirds, and
    /// stops every process on Ctrl-C or after --duration. With --plugins DIR the nodes run the
    /// reference coordinator and placement components from DIR instead of the built-ins.
    ///
    /// With --local: one node on a synthetic, changing membership instead, printing every
    /// policy decision, and halfway hot-swapping the coordinator and placement policies
    /// (the options from --plugins on apply to it).
    Demo(DemoArgs),
    /// Inspect, check, and build policy components.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Set up a cluster: a CA, and per node a certificate, a key and a config file.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Run a node.
    #[command(subcommand)]
    Node(NodeCommand),
    /// Ask a running node for its state: id, view, quorum, coordinator, bubbles, policies.
    ///
    /// Reads the node's status address from its config (--config) or takes it (--addr), and
    /// asks `GET /status`. Answers also while the cluster has no quorum.
    Status(StatusArgs),
    /// Check a running cluster.
    #[command(subcommand)]
    Check(CheckCommand),
}

#[derive(Subcommand, Debug)]
enum CheckCommand {
    /// Ask every node for the entities it holds (`GET /entities`) and report the lost and
    /// the duplicated ones, and whether the commits in the nodes' logs match the moves the
    /// entities' ownership epochs count (every committed migration applied once). Rounds
    /// that see entities in motion are repeated until one is clean or --settle runs out.
    /// Exit status: 0 conservation holds, 1 it does not, 2 a node did not answer.
    Conservation(conservation::ConservationArgs),
}

#[derive(clap::Args, Debug)]
struct DemoArgs {
    /// The single-process policy walkthrough instead of the cluster.
    #[arg(long)]
    local: bool,
    #[command(flatten)]
    cluster: cluster_demo::ClusterDemoArgs,
    #[command(flatten)]
    walkthrough: demo::Args,
}

#[derive(Subcommand, Debug)]
enum ClusterCommand {
    /// Write a CA, N certificates and keys, and N node configs for a cluster (on loopback
    /// unless --ip says otherwise), and the founding view (`founders.toml`): the nodes start
    /// it together, and a node that restarts rejoins through the others. Start each with
    /// `luciole node run --config DIR/node-I/node.toml`.
    Init(cluster::InitArgs),
}

#[derive(Subcommand, Debug)]
enum NodeCommand {
    /// Run one node until Ctrl-C or SIGTERM: membership over QUIC with mutual TLS, every
    /// installed view handed to the coordinator and placement policies, the entities it
    /// hosts moving and migrating (each migration logged in its write-ahead log), and on the
    /// status address `GET /status`, `/metrics`, `/entities` and the live page `/`. On Ctrl-C or SIGTERM a member leaves the view first (its
    /// observers remove it at once instead of detecting a silence; at most 3 s); SIGKILL is a
    /// crash. Log level: LUCIOLE_LOG (e.g. `info`, `luciole=debug`).
    Run(run::RunArgs),
}

#[derive(clap::Args, Debug)]
struct StatusArgs {
    /// The node's config file: its `status` address is asked.
    #[arg(long, conflicts_with = "addr", required_unless_present = "addr")]
    config: Option<PathBuf>,
    /// The node's status address (host:port).
    #[arg(long)]
    addr: Option<std::net::SocketAddr>,
    /// Print the JSON the node answers instead of a summary.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand, Debug)]
enum PolicyCommand {
    /// Create a policy project that builds and passes its tests out of the box: the kind's
    /// function filled with a working default, tests, `build.sh` (build for wasm, wrap into a
    /// component, `policy check`) and a README. Rust so far.
    New(policy_new::NewArgs),
    /// Check a policy component: kind, API version, imports, size, load time, and a smoke
    /// call. Exits non-zero with a one-line reason if the node would refuse it. The compiled
    /// artifact is kept in the artifact cache, so the next check, demo or node loads it in
    /// milliseconds instead of compiling again.
    Check {
        /// The component (.wasm).
        file: PathBuf,
        /// Where compiled artifacts are kept [default: ~/.cache/luciole/artifacts].
        #[arg(long, conflicts_with = "no_cache")]
        cache_dir: Option<PathBuf>,
        /// Compile without reading or filling the artifact cache.
        #[arg(long)]
        no_cache: bool,
    },
    /// Run a component against built-in inputs — coordinator and placement: 1 to 1,000
    /// members, zero capacities, labels, up to 10,000 bubbles; migration: loads at and below
    /// the limits, votes, timers of each role and phase, view changes with up to 256 pending
    /// migrations — and print every call: its answer, who
    /// answered, faults, declines (with the policy's message), time and fuel used (and the
    /// hungriest call against the per-call budget, 50,000,000: a call past it is stopped and
    /// counts as a fault). Exits non-zero on any fault or decline; a violation of the safety
    /// checks is a fault.
    Test {
        /// The component (.wasm).
        file: PathBuf,
        /// Also run the built-in policy on each input and mark where the answers differ.
        #[arg(long, conflicts_with = "compare")]
        compare_builtin: bool,
        /// Also run this component (of the same kind) on each input and mark where the
        /// answers differ: a new version against the one in production.
        #[arg(long, value_name = "OTHER.wasm")]
        compare: Option<PathBuf>,
        /// Your own inputs with the answers you expect (TOML: `[[case]]` with `name`,
        /// `members = [{ id, capacity, labels }]`, for placement `bubbles = N`, for a
        /// coordinator `current`; `expect` (a member id, or `{ bubble = member }`) and/or
        /// `expect_members = [ids]`, optional `epoch`). Only these are run, unless
        /// `--builtin` is given too; an answer not as expected fails the test.
        /// `--trace` is the same: a trace `luciole demo --local --record FILE.toml` wrote is a
        /// cases file without expectations.
        #[arg(long, value_name = "FILE.toml", alias = "trace")]
        cases: Option<PathBuf>,
        /// With `--cases`: run the built-in inputs as well, before yours.
        #[arg(long, requires = "cases")]
        builtin: bool,
        /// Where compiled artifacts are kept [default: ~/.cache/luciole/artifacts].
        #[arg(long, conflicts_with = "no_cache")]
        cache_dir: Option<PathBuf>,
        /// Compile without reading or filling the artifact cache.
        #[arg(long)]
        no_cache: bool,
    },
    /// Wrap a core module built with the guest SDK for wasm32-unknown-unknown into a component.
    Componentize {
        /// The core module (target/wasm32-unknown-unknown/…/NAME.wasm).
        input: PathBuf,
        /// Where to write the component.
        #[arg(short, long)]
        output: PathBuf,
    },
}

fn status_command(args: &StatusArgs) -> anyhow::Result<()> {
    let addr = match (&args.addr, &args.config) {
        (Some(addr), _) => *addr,
        (None, Some(path)) => config::NodeConfig::load(path)?
            .status
            .ok_or_else(|| anyhow::anyhow!("{} sets no `status` address", path.display()))?,
        (None, None) => anyhow::bail!("give --config or --addr"),
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let body = runtime.block_on(status::fetch(addr, "/status"))?;
    if args.json {
        println!("{body}");
        return Ok(());
    }
    let s: status::Status = serde_json::from_str(&body)
        .map_err(|e| anyhow::anyhow!("{addr} answered something that is not a status: {e}"))?;
    print!("{}", status::summary(&s));
    Ok(())
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LUCIOLE_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        // Colours only for a person at a terminal, not in log files or pipes.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Demo(_)) {
        // Like other command-line tools, end quietly when the reader of our output goes away
        // (`luciole status | head -1`) instead of panicking on the write. The demo handles it
        // itself: it must stop its node processes first.
        #[cfg(unix)]
        // SAFETY: called before any thread is started; SIG_DFL is a valid disposition.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    let result = match cli.command {
        Command::Demo(args) if args.local => demo::run(args.walkthrough),
        Command::Demo(args) => match args.walkthrough.walkthrough_only() {
            Some(flag) => Err(anyhow::anyhow!(
                "{flag} is for the single-node walkthrough: add --local (the cluster demo runs \
                 the reference components of --plugins, or the built-ins)"
            )),
            None => {
                let dir = args.walkthrough.plugins();
                let policies = (
                    dir.map(|d| d.join("coordinator-lowest-id.wasm")),
                    dir.map(|d| d.join("placement-rendezvous.wasm")),
                );
                cluster_demo::run(&args.cluster, policies)
            }
        },
        Command::Policy(PolicyCommand::Check { file, cache_dir, no_cache }) => {
            policy::check(&file, policy::Cache::from_flags(cache_dir.as_deref(), no_cache))
        }
        Command::Policy(PolicyCommand::Test {
            file,
            compare_builtin,
            compare,
            cases,
            builtin,
            cache_dir,
            no_cache,
        }) => {
            let cache = policy::Cache::from_flags(cache_dir.as_deref(), no_cache);
            let builtin = builtin || cases.is_none();
            let compare = match (&compare, compare_builtin) {
                (Some(other), _) => policy_test::Compare::Component(other),
                (None, true) => policy_test::Compare::Builtin,
                (None, false) => policy_test::Compare::None,
            };
            policy_test::test(&file, cache, compare, cases.as_deref(), builtin)
        }
        Command::Policy(PolicyCommand::New(args)) => policy_new::new(&args).map(|dir| {
            let test = match args.lang {
                policy_new::Lang::Rust => "cargo test",
                policy_new::Lang::Js => "npm install && npm test",
                policy_new::Lang::Python => "./test.sh",
            };
            println!("created {}: cd there, then `{test}` and `./build.sh`", dir.display());
        }),
        Command::Policy(PolicyCommand::Componentize { input, output }) => {
            policy::componentize(&input, &output)
        }
        Command::Cluster(ClusterCommand::Init(args)) => cluster::init(&args).map(|written| {
            println!("wrote a cluster of {} node(s) into {}", written.len(), args.dir.display());
            for w in &written {
                println!("  {:032x}  luciole node run --config {}", w.id.0, w.config.display());
            }
        }),
        Command::Node(NodeCommand::Run(args)) => run::run(&args),
        Command::Status(args) => status_command(&args),
        Command::Check(CheckCommand::Conservation(args)) => match conservation::run(&args) {
            Ok(code) => return ExitCode::from(code),
            Err(e) => Err(e),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
