//! `cargo xtask <command>`: the project's chores, in Rust so they run the same everywhere.
//!
//! * `plugins` — build every crate in `plugins/` for `wasm32-unknown-unknown` and wrap each into
//!   a component in `target/plugins/NAME.wasm`;
//! * `examples` — install the pinned JavaScript and Python toolchains (into `examples/js` and
//!   `target/tools/python`) and build the policies in `examples/` into `target/examples/`;
//! * `ci` — what CI runs: formatting, clippy with warnings denied, docs, plugins, examples, all
//!   tests;
//! * `demo` — build the plugins and run `luciole demo` (a local cluster) with them; extra
//!   arguments go to `luciole demo` (`cargo xtask demo --local` for the one-node walkthrough).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};

const WASM_TARGET: &str = "wasm32-unknown-unknown";

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = workspace_root();
    std::env::set_current_dir(&root)?;
    match args.first().map(String::as_str) {
        Some("plugins") => plugins(&root).map(|_| ()),
        Some("examples") => examples(&root),
        Some("ci") => ci(&root),
        Some("demo") => demo(&root, &args[1..]),
        _ => {
            eprintln!("usage: cargo xtask <plugins|examples|ci|demo [ARGS…]>");
            eprintln!("  plugins  build plugins/* into components in target/plugins/");
            eprintln!("  examples build the JavaScript and Python policies into target/examples/");
            eprintln!("  ci       fmt check, clippy -D warnings, docs, plugins, all tests");
            eprintln!("  demo     build the plugins and run `luciole demo` with them");
            std::process::exit(2);
        }
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().nth(2).expect("host/xtask is two deep").into()
}

fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target"))
}

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

fn run(step: &str, cmd: &mut Command) -> anyhow::Result<()> {
    let started = Instant::now();
    eprintln!("==> {step}");
    let status = cmd.status().with_context(|| format!("starting {step}"))?;
    if !status.success() {
        bail!("{step} failed ({status})");
    }
    eprintln!("    {step}: ok in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

fn ensure_wasm_target() -> anyhow::Result<()> {
    let out = Command::new("rustup").args(["target", "list", "--installed"]).output();
    match out {
        Ok(out)
            if String::from_utf8_lossy(&out.stdout).lines().any(|l| l.trim() == WASM_TARGET) =>
        {
            Ok(())
        }
        Ok(_) => {
            run("rustup target add", Command::new("rustup").args(["target", "add", WASM_TARGET]))
        }
        Err(e) => {
            bail!("rustup not found ({e}); install the {WASM_TARGET} target for this toolchain")
        }
    }
}

/// Builds every plugin and wraps it into a component. Returns the component paths.
fn plugins(root: &Path) -> anyhow::Result<Vec<PathBuf>> {
    ensure_wasm_target()?;
    let mut names: Vec<String> = std::fs::read_dir(root.join("plugins"))?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("Cargo.toml").exists())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut cmd = cargo();
    cmd.args(["build", "--target", WASM_TARGET, "--profile", "plugin"]);
    for n in &names {
        cmd.args(["-p", n]);
    }
    run(&format!("build {} plugins for {WASM_TARGET}", names.len()), &mut cmd)?;
    let target = target_dir(root);
    let out_dir = target.join("plugins");
    std::fs::create_dir_all(&out_dir)?;
    let mut out = Vec::new();
    for n in &names {
        let core_path =
            target.join(WASM_TARGET).join("plugin").join(format!("{}.wasm", n.replace('-', "_")));
        let core = std::fs::read(&core_path)
            .with_context(|| format!("reading {}", core_path.display()))?;
        let component = componentize(&core).with_context(|| format!("componentizing {n}"))?;
        let path = out_dir.join(format!("{n}.wasm"));
        std::fs::write(&path, &component)?;
        eprintln!("    {:<28} {:>7} bytes  {}", n, component.len(), path.display());
        out.push(path);
    }
    Ok(out)
}

/// Wraps a core module into a component from the metadata wit-bindgen embedded (what
/// `luciole policy componentize` does, without linking the whole policy host into xtask).
fn componentize(core: &[u8]) -> anyhow::Result<Vec<u8>> {
    wit_component::ComponentEncoder::default().validate(true).module(core)?.encode()
}

fn ci(root: &Path) -> anyhow::Result<()> {
    let started = Instant::now();
    run("cargo fmt --check", cargo().args(["fmt", "--all", "--", "--check"]))?;
    run(
        "cargo clippy -D warnings",
        cargo().args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]),
    )?;
    run(
        "cargo doc -D warnings",
        cargo().args(["doc", "--workspace", "--no-deps"]).env("RUSTDOCFLAGS", "-D warnings"),
    )?;
    plugins(root)?;
    examples(root)?;
    let (mut passed, failed, ignored) = test_counted(cargo().args(["test", "--workspace"]))?;
    passed += mutants()?;
    eprintln!("==> ci passed in {:.0} s", started.elapsed().as_secs_f64());
    println!("tests: {passed} passed, {failed} failed, {ignored} skipped");
    Ok(())
}

/// The model checks must catch deliberately broken cores: each `mutant-*` feature of
/// luciole-proto builds one, and its test passes only if the checker finds a broken property
/// (with the bounds that reach the bug). Returns the tests passed.
fn mutants() -> anyhow::Result<u64> {
    let unfenced = [
        ("LUCIOLE_MODEL_MOVING", "1"),
        ("LUCIOLE_MODEL_REQUESTS", "2"),
        ("LUCIOLE_MODEL_CRASHES", "0"),
        ("LUCIOLE_MODEL_LOSSES", "0"),
    ];
    let mut passed = 0;
    for (feature, env) in [("mutant-early-commit", &[][..]), ("mutant-unfenced-prepare", &unfenced)]
    {
        eprintln!("==> migration model check against {feature}");
        let mut cmd = cargo();
        cmd.args(["test", "-p", "luciole-proto", "--features", feature]);
        cmd.args(["--test", "migration_model", "--", "--nocapture"]);
        cmd.envs(env.iter().copied());
        passed += test_counted(&mut cmd)?.0;
    }
    eprintln!("==> agreement model check against mutant-classic-binding");
    let mut cmd = cargo();
    cmd.args(["test", "-p", "luciole-proto", "--features", "mutant-classic-binding"]);
    cmd.args(["--test", "agreement_model", "--", "--nocapture"]);
    passed += test_counted(&mut cmd)?.0;
    Ok(passed)
}

/// Runs `cargo test`, passing its output through, and adds up its `test result:` lines.
fn test_counted(cmd: &mut Command) -> anyhow::Result<(u64, u64, u64)> {
    use std::io::{BufRead, BufReader, Write};
    let started = Instant::now();
    eprintln!("==> cargo test");
    let mut child =
        cmd.stdout(std::process::Stdio::piped()).spawn().context("starting cargo test")?;
    let (mut passed, mut failed, mut ignored) = (0, 0, 0);
    let stdout = child.stdout.take().expect("piped");
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        println!("{line}");
        if let Some(rest) = line.strip_prefix("test result: ") {
            for part in rest.split(['.', ';']) {
                let mut words = part.split_whitespace();
                if let (Some(n), Some(what)) = (words.next(), words.next()) {
                    let n: u64 = n.parse().unwrap_or(0);
                    match what {
                        "passed" => passed += n,
                        "failed" => failed += n,
                        "ignored" => ignored += n,
                        _ => {}
                    }
                }
            }
        }
    }
    std::io::stdout().flush()?;
    let status = child.wait()?;
    if !status.success() {
        println!("tests: {passed} passed, {failed} failed, {ignored} skipped");
        bail!("cargo test failed ({status})");
    }
    eprintln!("    cargo test: ok in {:.1} s", started.elapsed().as_secs_f64());
    Ok((passed, failed, ignored))
}

/// The JavaScript and Python policies built to `target/examples/`: the examples, and the
/// test guests with deliberate bugs (language, directory, world). A component is named after
/// its directory, `js-…` or `py-…`.
const EXAMPLES: [(&str, &str, &str); 6] = [
    ("js", "examples/js/coordinator-lowest-id", "coordinator-policy"),
    ("js", "examples/js/placement-rendezvous", "placement-policy"),
    ("python", "examples/python/coordinator-lowest-id", "coordinator-policy"),
    ("python", "examples/python/placement-rendezvous", "placement-policy"),
    ("js", "tests/guests/js/buggy-coordinator", "coordinator-policy"),
    ("python", "tests/guests/python/buggy-placement", "placement-policy"),
];

/// Installs the pinned toolchains if needed and builds every example that changed.
fn examples(root: &Path) -> anyhow::Result<()> {
    let target = target_dir(root);
    let out_dir = target.join("examples");
    std::fs::create_dir_all(&out_dir)?;
    let wit = root.join("wit/since_v0.1.0");
    // Python: componentize-py in a virtual environment of its own.
    let venv = target.join("tools/python");
    if !venv.join("bin/pip").exists() {
        run("python venv", Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    }
    run(
        "pip install componentize-py (pinned)",
        Command::new(venv.join("bin/pip"))
            .args(["install", "-q", "--disable-pip-version-check", "-r"])
            .arg(root.join("examples/python/requirements.txt")),
    )?;
    // JavaScript: componentize-js from npm, pinned in examples/js/package.json.
    let js = root.join("examples/js");
    // Reinstall when the pins changed since the last install (npm writes
    // node_modules/.package-lock.json on every install).
    let installed = js.join("node_modules/.package-lock.json");
    if !up_to_date(&installed, &[&js.join("package.json"), &js.join("package-lock.json")])? {
        run(
            "npm install componentize-js (pinned)",
            Command::new("npm").args(["install", "--no-audit", "--no-fund"]).current_dir(&js),
        )?;
    }
    // The helpers every policy may import (guest-sdk/js, guest-sdk/python).
    let helpers = root.join("guest-sdk");
    for (lang, dir, world) in EXAMPLES {
        let src = root.join(dir);
        let name = dir.rsplit('/').next().unwrap_or(dir);
        let prefix = if lang == "js" { "js" } else { "py" };
        let out = out_dir.join(format!("{prefix}-{name}.wasm"));
        let sdk = helpers.join(lang);
        if up_to_date(&out, &[&src, &wit, &sdk])? {
            eprintln!("    {prefix}-{name}: up to date");
            continue;
        }
        let mut cmd = if lang == "js" {
            let mut c = Command::new(js.join("node_modules/.bin/componentize-js"));
            // componentize-js resolves imports inside its working directory only: the
            // repository, so a policy can import ../../../guest-sdk/js.
            c.current_dir(root)
                .arg(Path::new(dir).join("policy.js"))
                .arg("--wit")
                .arg(&wit)
                .args(["--world-name", world])
                // No WASI: no stdio, randomness, clocks or HTTP in the component.
                .args(["-d", "stdio", "-d", "random", "-d", "clocks", "-d", "http"])
                .args(["-d", "fetch-event", "-o"])
                .arg(&out);
            c
        } else {
            let mut c = Command::new(venv.join("bin/componentize-py"));
            c.arg("-d")
                .arg(&wit)
                .args(["-w", world, "componentize", "--stub-wasi", "app", "-p"])
                .arg(&src)
                .arg("-p")
                .arg(&sdk)
                .arg("-o")
                .arg(&out);
            c
        };
        run(&format!("build example {prefix}-{name}"), &mut cmd)?;
    }
    Ok(())
}

/// Whether `out` is newer than every file under `inputs`.
fn up_to_date(out: &Path, inputs: &[&Path]) -> anyhow::Result<bool> {
    let Ok(built) = std::fs::metadata(out).and_then(|m| m.modified()) else { return Ok(false) };
    fn newest(dir: &Path) -> std::io::Result<std::time::SystemTime> {
        let mut t = std::fs::metadata(dir)?.modified()?;
        if dir.is_dir() {
            for e in std::fs::read_dir(dir)? {
                t = t.max(newest(&e?.path())?);
            }
        }
        Ok(t)
    }
    for dir in inputs {
        if newest(dir)? > built {
            return Ok(false);
        }
    }
    Ok(true)
}

fn demo(root: &Path, args: &[String]) -> anyhow::Result<()> {
    plugins(root)?;
    let dir = target_dir(root).join("plugins");
    run(
        "luciole demo",
        cargo()
            // The dev profile: dependencies are optimised (see Cargo.toml), and it shares the
            // build with the tests instead of compiling wasmtime a second time.
            .args(["run", "-q", "-p", "luciole-node", "--", "demo", "--plugins"])
            .arg(&dir)
            .args(args),
    )
}
