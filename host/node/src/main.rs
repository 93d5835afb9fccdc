//! `luciole`: the node binary.
//!
//! For now it hosts the policy platform on one node: `luciole demo` shows the default policies
//! deciding on a changing synthetic view (and a hot swap), `luciole policy …` checks and builds
//! policy components. Membership, transport and the WAL arrive with their issues.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod demo;
mod policy;

/// luciole: a cluster node that hosts coordination policies as sandboxed WebAssembly components.
#[derive(Parser, Debug)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run one node on a synthetic, changing membership and print every policy decision.
    ///
    /// Loads the reference policies from --plugins if given (else uses the built-in native
    /// defaults), installs a sequence of views with members joining and leaving, and prints
    /// the coordinator, the placement and sample migration decisions of each view. Halfway it
    /// hot-swaps the coordinator and placement policies while the node keeps deciding.
    Demo(demo::Args),
    /// Inspect, check, and build policy components.
    #[command(subcommand)]
    Policy(PolicyCommand),
}

#[derive(Subcommand, Debug)]
enum PolicyCommand {
    /// Check a policy component: kind, API version, imports, size, compile time, and a smoke
    /// call. Exits non-zero with a one-line reason if the node would refuse it.
    Check {
        /// The component (.wasm).
        file: PathBuf,
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

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LUCIOLE_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo(args) => demo::run(args),
        Command::Policy(PolicyCommand::Check { file }) => policy::check(&file),
        Command::Policy(PolicyCommand::Componentize { input, output }) => {
            policy::componentize(&input, &output)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
