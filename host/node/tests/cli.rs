//! The `luciole` binary as a user runs it.

use std::process::{Command, Output};

use luciole_tests::plugin_dir;

fn luciole(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_luciole")).args(args).output().expect("runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn plugin(name: &str) -> String {
    plugin_dir().join(format!("{name}.wasm")).to_string_lossy().into_owned()
}

#[test]
fn policy_check_describes_a_good_component() {
    let out = luciole(&["policy", "check", &plugin("placement-rendezvous")]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    for want in [
        "policy       rendezvous 0.1.0",
        "kind         placement",
        "api version  0.1.0",
        "imports      luciole:policy/types@0.1.0",
        "exports      luciole:policy/placement@0.1.0",
        "smoke call   ok",
    ] {
        assert!(stdout.contains(want), "missing {want:?} in:\n{stdout}");
    }
}

/// Runs `policy check` on `file`, expects failure with exactly one line naming `reason`.
fn refused(file: &str, reason: &str) {
    let out = luciole(&["policy", "check", file]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one line, got:\n{stderr}");
    assert!(stderr.contains(reason), "{reason:?} not in {stderr:?}");
}

#[test]
fn policy_check_refuses_bad_input_with_one_line_each() {
    let dir = std::env::temp_dir().join(format!("luciole-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let text_file = dir.join("notes.wasm");
    std::fs::write(&text_file, "not wasm at all").unwrap();
    refused(text_file.to_str().unwrap(), "not a WebAssembly file");
    refused(dir.join("missing.wasm").to_str().unwrap(), "reading");
    refused(&plugin("hostile-version"), "API version 9.0.0 is not supported");
    refused(&plugin("hostile-outsider"), "not a member of the view");
    let core = plugin_dir().join("../wasm32-unknown-unknown/plugin/coordinator_lowest_id.wasm");
    refused(core.to_str().unwrap(), "core wasm module, not a component");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn componentize_then_check_round_trips() {
    let dir = std::env::temp_dir().join(format!("luciole-cli-c-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let core = plugin_dir().join("../wasm32-unknown-unknown/plugin/coordinator_sticky.wasm");
    let out_file = dir.join("sticky.wasm");
    let out = luciole(&[
        "policy",
        "componentize",
        core.to_str().unwrap(),
        "-o",
        out_file.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = luciole(&["policy", "check", out_file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("policy       sticky"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_demo_runs_on_builtins_and_on_components_and_survives_the_hostile_swap() {
    let out = luciole(&["demo", "--local", "--views", "3"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("by builtin"));

    let cache = std::env::temp_dir().join(format!("luciole-cli-cache-{}", std::process::id()));
    let dir = plugin_dir();
    let args = [
        "demo",
        "--local",
        "--views",
        "6",
        "--plugins",
        dir.to_str().unwrap(),
        "--cache-dir",
        cache.to_str().unwrap(),
    ];
    let out = luciole(&args);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("by lowest-id@0.1.0"), "{stdout}");
    assert!(stdout.contains("ran out of fuel -> quarantined"), "{stdout}");
    assert!(stdout.contains("by sticky@0.1.0 (last good)"), "{stdout}");
    // A second run loads every policy from the artifact cache.
    let again = text(&luciole(&args).stdout);
    assert!(again.contains("precompiled artifact") && !again.contains("(compiled)"), "{again}");
    std::fs::remove_dir_all(&cache).unwrap();
}

#[test]
fn the_demo_keeps_the_old_version_when_a_load_or_swap_is_refused() {
    let missing = std::env::temp_dir().join("luciole-no-such-policy.wasm");
    let out = luciole(&[
        "demo",
        "--local",
        "--views",
        "4",
        "--swap-coordinator",
        &plugin("hostile-outsider"),
        "--swap-placement",
        missing.to_str().unwrap(),
    ]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    for want in [
        "swap   coordinator refused: policy hostile-outsider@0.1.0: unsafe answer",
        "coordinator keeps the builtin",
        "load   placement   refused: reading",
        "placement keeps the builtin",
    ] {
        assert!(stdout.contains(want), "missing {want:?} in:\n{stdout}");
    }
    // It went on deciding after the refusals.
    assert!(stdout.contains("epoch   4"), "{stdout}");
}

#[test]
fn bad_arguments_are_explained_not_panicked() {
    let out = luciole(&["demo", "--local", "--members", "1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--members"), "{}", text(&out.stderr));
    let out = luciole(&["--help"]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    assert!(help.contains("demo") && help.contains("policy"), "{help}");
}

#[test]
fn the_demo_hot_swaps_to_javascript_and_python_policies() {
    let examples = luciole_tests::example_dir();
    let cache = plugin_dir().with_file_name("artifact-cache");
    let path = |name: &str| examples.join(format!("{name}.wasm")).to_string_lossy().into_owned();
    let out = luciole(&[
        "demo",
        "--local",
        "--views",
        "4",
        "--swap-coordinator",
        &path("py-coordinator-lowest-id"),
        "--swap-placement",
        &path("js-placement-rendezvous"),
        "--cache-dir",
        cache.to_str().unwrap(),
    ]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("swap   coordinator -> py-lowest-id@0.1.0"), "{stdout}");
    assert!(stdout.contains("by py-lowest-id@0.1.0"), "{stdout}");
    assert!(stdout.contains("by js-rendezvous@0.1.0"), "{stdout}");
    assert!(!stdout.contains("faults 1"), "{stdout}");
}

#[test]
fn policy_check_passes_the_javascript_and_python_examples() {
    for name in ["js-placement-rendezvous", "py-coordinator-lowest-id"] {
        let path = luciole_tests::example_dir().join(format!("{name}.wasm"));
        let out = luciole(&["policy", "check", path.to_str().unwrap()]);
        let stdout = text(&out.stdout);
        assert!(out.status.success(), "{name}: {stdout}{}", text(&out.stderr));
        assert!(stdout.contains("smoke call   ok"), "{stdout}");
        // Nothing but luciole's own interfaces: no WASI.
        let imports = stdout.lines().find(|l| l.trim_start().starts_with("imports")).unwrap();
        assert!(!imports.contains("wasi"), "{imports}");
        assert!(imports.contains("luciole:policy/log@0.1.0"), "{imports}");
    }
}

/// Runs `args`, expects failure with one line on stderr containing each of `want`.
fn one_line_error(args: &[&str], want: &[&str]) {
    let out = luciole(args);
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "{args:?} succeeded");
    assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: one line, got:\n{stderr}");
    for w in want {
        assert!(stderr.contains(w), "{args:?}: missing {w:?} in {stderr}");
    }
}

#[test]
fn node_commands_explain_user_mistakes_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let c = dir.path().join("c");
    let c_str = c.to_str().unwrap();
    let out = luciole(&["cluster", "init", "--dir", c_str, "--nodes", "2", "--base-port", "1"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let node1 = c.join("node-1/node.toml");
    let node1 = node1.to_str().unwrap();
    // The directory is not overwritten; ports past 65535 and 0 nodes are refused.
    one_line_error(&["cluster", "init", "--dir", c_str], &["not empty"]);
    // A walkthrough option on the cluster demo is not silently ignored.
    one_line_error(&["demo", "--swap-coordinator", "x.wasm"], &["--swap-coordinator", "--local"]);
    let d = dir.path().join("d");
    let d = d.to_str().unwrap();
    one_line_error(
        &["cluster", "init", "--dir", d, "--base-port", "65535", "--nodes", "2"],
        &["65535"],
    );
    assert_eq!(luciole(&["cluster", "init", "--dir", d, "--nodes", "0"]).status.code(), Some(2));
    // A missing config, a config that is not TOML, an unknown setting, a bad port.
    one_line_error(
        &["node", "run", "--config", "/nonexistent/node.toml"],
        &["/nonexistent/node.toml"],
    );
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "listen = [").unwrap();
    one_line_error(&["node", "run", "--config", bad.to_str().unwrap()], &["bad.toml"]);
    let config = std::fs::read_to_string(node1).unwrap();
    let edited = |from: &str, to: &str| {
        let path = c.join("node-1/edited.toml");
        std::fs::write(&path, config.replace(from, to)).unwrap();
        path.to_str().unwrap().to_string()
    };
    one_line_error(
        &["node", "run", "--config", &edited("capacity = 1", "capcity = 1")],
        &["capcity"],
    );
    one_line_error(
        &["node", "run", "--config", &edited("127.0.0.1:1\"", "127.0.0.1:99999\"")],
        &["edited.toml"],
    );
    // Another node's key with this node's certificate; a certificate from another CA.
    one_line_error(
        &["node", "run", "--config", &edited("key = \"key.pem\"", "key = \"../node-2/key.pem\"")],
        &["the key does not belong to the member certificate"],
    );
    let other = dir.path().join("other");
    let out = luciole(&["cluster", "init", "--dir", other.to_str().unwrap(), "--nodes", "1"]);
    assert!(out.status.success());
    let foreign_cert = other.join("node-1/cert.pem");
    let foreign = format!("cert = \"{}\"", foreign_cert.display());
    one_line_error(
        &["node", "run", "--config", &edited("cert = \"cert.pem\"", &foreign)],
        &["does not check against the CA"],
    );
    // Status of a node that is not running.
    one_line_error(&["status", "--addr", "127.0.0.1:1"], &["127.0.0.1:1"]);
    assert_eq!(luciole(&["status"]).status.code(), Some(2), "--config or --addr is required");
    // World settings out of range, in the config and on the command line.
    one_line_error(
        &["node", "run", "--config", &edited("margin = 0.05", "margin = 2.0")],
        &["margin"],
    );
    one_line_error(
        &["cluster", "init", "--dir", d, "--cells", "4,0,4"],
        &["a grid has 1 to 64 bubbles along each axis"],
    );
    // Conservation: nothing named, a directory without nodes, nodes that do not answer
    // (exit 2: not checked, rather than a verdict).
    one_line_error(&["check", "conservation"], &["--cluster"]);
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    one_line_error(
        &["check", "conservation", "--cluster", empty.to_str().unwrap()],
        &["node.toml"],
    );
    one_line_error(&["check", "conservation", "--cluster", d], &["reading the cluster directory"]);
    let out = luciole(&["check", "conservation", "--cluster", c_str, "--settle", "0"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("conservation not checked"), "{}", text(&out.stderr));
}

#[test]
fn policy_test_runs_the_authors_cases_and_fails_on_an_answer_not_as_expected() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_string()
    };
    let good = write(
        "good.toml",
        r#"
[[case]]
name = "lowest id wins"
members = [{ id = 5 }, { id = 2, capacity = 3, labels = { zone = "a" } }, { id = 9 }]
current = 9
expect = 2

[[case]]
name = "one of the two"
members = [{ id = 7 }, { id = "000000000000000000000000000000ff" }]
expect_members = [7, 255]
"#,
    );
    let out = luciole(&["policy", "test", &plugin("coordinator-lowest-id"), "--cases", &good]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("yours: lowest id wins"), "{stdout}");
    assert!(stdout.contains("0 of your 2 case(s) not as expected"), "{stdout}");
    // Only the author's inputs, unless the built-in ones are asked for too.
    assert!(!stdout.contains("1 member, no previous"), "{stdout}");
    let coordinator = plugin("coordinator-lowest-id");
    let out = luciole(&["policy", "test", &coordinator, "--cases", &good, "--builtin"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("1 member, no previous") && stdout.contains("yours: lowest id wins"));

    // A wrong expectation fails, saying what was expected and what came.
    let wrong = write(
        "wrong.toml",
        "[[case]]\nname = \"x\"\nmembers = [{ id = 5 }, { id = 2 }]\nexpect = 5\n",
    );
    let out = luciole(&["policy", "test", &plugin("coordinator-lowest-id"), "--cases", &wrong]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("MISMATCH expected coordinator 00000000000000000000000000000005, got 00000000000000000000000000000002"), "{stdout}");
    assert!(text(&out.stderr).contains("1 answer(s) not as expected"), "{}", text(&out.stderr));

    // Placement: nothing on a member at capacity 0, a bubble where the author expects it.
    let placed = write(
        "placed.toml",
        "[[case]]\nname = \"zero\"\nmembers = [{ id = 1 }, { id = 2, capacity = 0 }]\nbubbles = 16\nexpect = { 3 = 1 }\nexpect_members = [1]\n",
    );
    let out = luciole(&["policy", "test", &plugin("placement-rendezvous"), "--cases", &placed]);
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    let placed_wrong = write(
        "placed-wrong.toml",
        "[[case]]\nname = \"zero\"\nmembers = [{ id = 1 }, { id = 2, capacity = 0 }]\nbubbles = 16\nexpect_members = [2]\n",
    );
    let out =
        luciole(&["policy", "test", &plugin("placement-rendezvous"), "--cases", &placed_wrong]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout).contains("not one of the expected members"), "{}", text(&out.stdout));

    // A bad file is one line naming it and the case.
    let bad = write("bad.toml", "[[case]]\nname = \"b\"\nmembers = [{ id = \"zz\" }]\n");
    let out = luciole(&["policy", "test", &plugin("coordinator-lowest-id"), "--cases", &bad]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("bad.toml: case \"b\"") && stderr.contains("\"zz\""), "{stderr}");
    let typo = write("typo.toml", "[[case]]\nname = \"t\"\nmembers = []\nexpected = 1\n");
    let out = luciole(&["policy", "test", &plugin("coordinator-lowest-id"), "--cases", &typo]);
    assert!(text(&out.stderr).contains("expected"), "{}", text(&out.stderr));
}

/// `demo --local --record` writes the views it asked about; `policy test --trace` replays them.
#[test]
fn a_recorded_demo_replays_through_policy_test() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace.toml");
    let trace = trace.to_str().unwrap();
    let out = luciole(&["demo", "--local", "--views", "5", "--seed", "7", "--record", trace]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("recorded 5 view(s)"), "{}", text(&out.stdout));
    let out = luciole(&["policy", "test", &plugin("coordinator-lowest-id"), "--trace", trace]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("yours: demo view 5"), "{stdout}");
    assert!(stdout.contains("0 of your 5 case(s) not as expected"), "{stdout}");
}

/// The sample cases in `examples/cases` hold for the reference policies, and the sample
/// trace in `examples/traces` replays.
#[test]
fn the_sample_cases_pass_with_the_reference_policies() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    for (policy, cases) in [
        ("coordinator-lowest-id", "cases/coordinator.toml"),
        ("placement-rendezvous", "cases/placement.toml"),
        ("placement-rendezvous", "traces/demo.toml"),
        ("coordinator-sticky", "traces/demo.toml"),
    ] {
        let file = root.join(cases);
        let out = luciole(&["policy", "test", &plugin(policy), "--cases", file.to_str().unwrap()]);
        let stdout = text(&out.stdout);
        assert!(out.status.success(), "{policy}: {stdout}{}", text(&out.stderr));
        assert!(stdout.contains("0 of your"), "{stdout}");
    }
}

/// `policy new --lang js|python` writes, for each kind, a project whose own tests pass (with
/// Node or Python, on the source), whose `build.sh` builds a component that passes
/// `policy check` and `policy test` (its cases, or the built-in inputs for migration), and
/// that hot-swaps into the demo. The pinned compilers `cargo xtask examples` installed are
/// linked in, instead of an install per project.
#[test]
fn policy_new_javascript_and_python_projects_pass_their_tests_and_swap_into_the_demo() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let root = root.canonicalize().unwrap();
    let node_modules = root.join("examples/js/node_modules");
    let venv = plugin_dir().with_file_name("tools").join("python");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    // The default artifact cache is under $HOME: one kept between runs.
    let home = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("policy-new-home");
    let bin = env!("CARGO_BIN_EXE_luciole");
    for (lang, tests, passed) in [("js", "npm test", "# pass "), ("python", "./test.sh", "OK")] {
        for kind in ["coordinator", "placement", "migration"] {
            let name = format!("my-{lang}-{kind}");
            let out =
                luciole(&["policy", "new", &name, "--kind", kind, "--lang", lang, "--dir", d]);
            assert!(out.status.success(), "{}", text(&out.stderr));
            let project = dir.path().join(&name);
            let (link, to) =
                if lang == "js" { ("node_modules", &node_modules) } else { (".venv", &venv) };
            std::os::unix::fs::symlink(to, project.join(link)).unwrap();
            let run = |cmd: &mut Command| {
                let out = cmd.current_dir(&project).env("HOME", &home).output().unwrap();
                let all = text(&out.stdout) + &text(&out.stderr);
                assert!(out.status.success(), "{lang} {kind}: {all}");
                all
            };
            let (program, args) = tests.split_once(' ').unwrap_or((tests, ""));
            let tested = run(Command::new(program).args(args.split_whitespace()));
            assert!(tested.contains(passed) && !tested.contains("# fail 1"), "{tested}");
            let built = run(Command::new("./build.sh").env("LUCIOLE", bin));
            assert!(built.contains("smoke call   ok"), "{lang} {kind}: {built}");
            assert!(built.contains("0 fault(s), 0 decline(s)"), "{lang} {kind}: {built}");
            if kind != "migration" {
                assert!(built.contains("0 of your"), "{lang} {kind}: {built}");
            }
            let wasm = project.join(format!("{name}.wasm"));
            let swap = format!("--swap-{kind}");
            let out = Command::new(bin)
                .args(["demo", "--local", "--views", "4", &swap, wasm.to_str().unwrap()])
                .env("HOME", &home)
                .output()
                .unwrap();
            let stdout = text(&out.stdout);
            assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
            assert!(stdout.contains(&format!("by {name}@0.1.0")), "{lang} {kind}: {stdout}");
        }
    }
}

/// `policy new` writes, for each kind, a Rust project whose tests pass, whose `build.sh`
/// builds a component that passes `policy check`, and that hot-swaps into the demo.
#[test]
fn policy_new_projects_pass_their_tests_and_policy_check_and_swap_into_the_demo() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    // Shared and kept between runs: the guest SDK is compiled once.
    let target = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("policy-new");
    let bin = env!("CARGO_BIN_EXE_luciole");
    for kind in ["coordinator", "placement", "migration"] {
        let name = format!("my-{kind}");
        let out = luciole(&["policy", "new", &name, "--kind", kind, "--dir", d]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let project = dir.path().join(&name);
        let run = |cmd: &mut Command| {
            let out = cmd.current_dir(&project).env("CARGO_TARGET_DIR", &target).output().unwrap();
            assert!(out.status.success(), "{kind}: {}{}", text(&out.stdout), text(&out.stderr));
            text(&out.stdout) + &text(&out.stderr)
        };
        let tests = run(Command::new("cargo").args(["test", "--quiet"]));
        assert!(tests.contains("2 passed"), "{kind}: {tests}");
        let built = run(Command::new("./build.sh").env("LUCIOLE", bin));
        assert!(built.contains("smoke call   ok"), "{kind}: {built}");
        let wasm = project.join(format!("{name}.wasm"));
        let swap = format!("--swap-{kind}");
        let out = luciole(&["demo", "--local", "--views", "4", &swap, wasm.to_str().unwrap()]);
        let stdout = text(&out.stdout);
        assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
        assert!(stdout.contains(&format!("by {name}@0.1.0")), "{kind}: {stdout}");
    }
    // Mistakes: one line each.
    one_line_error(
        &["policy", "new", "my-coordinator", "--kind", "coordinator", "--dir", d],
        &["exists already"],
    );
    one_line_error(
        &["policy", "new", "Bad_Name", "--kind", "placement", "--dir", d],
        &["not a policy name"],
    );
    one_line_error(
        &["policy", "new", "q", "--kind", "placement", "--dir", d, "--sdk", "/nonexistent"],
        &["--sdk"],
    );
}

#[test]
fn policy_check_fills_the_artifact_cache_and_loads_from_it_next_time() {
    let cache = tempfile::tempdir().unwrap();
    let dir = cache.path().to_str().unwrap();
    let file = plugin("coordinator-lowest-id");
    let first = text(&luciole(&["policy", "check", &file, "--cache-dir", dir]).stdout);
    assert!(first.contains("(compile, link, describe)"), "{first}");
    assert!(first.contains("compile      ") && first.contains("(compiled)"), "{first}");
    let again = text(&luciole(&["policy", "check", &file, "--cache-dir", dir]).stdout);
    assert!(again.contains("(load the precompiled artifact, link, describe)"), "{again}");
    let bypass = text(&luciole(&["policy", "check", &file, "--no-cache"]).stdout);
    assert!(bypass.contains("(compile, link, describe)"), "{bypass}");
}

#[test]
fn the_local_demo_swaps_a_migration_policy_and_names_who_decided() {
    let cache = tempfile::tempdir().unwrap();
    let out = luciole(&[
        "demo",
        "--local",
        "--views",
        "4",
        "--swap-migration",
        &plugin("migration-standard"),
        "--cache-dir",
        cache.path().to_str().unwrap(),
    ]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("swap   migration   -> standard@0.1.0"), "{stdout}");
    // Before the swap the built-in decides; after it, the component, and each line says so.
    assert!(stdout.contains(", by builtin"), "{stdout}");
    assert!(stdout.contains(", by standard@0.1.0"), "{stdout}");
    assert!(stdout.contains("capacities "), "{stdout}");
    // The summary counts declines per slot beside faults.
    let summary = stdout.lines().find(|l| l.starts_with("migration ") && l.contains("active"));
    assert!(summary.is_some_and(|l| l.contains("declines 0")), "{stdout}");
}

/// `policy test` runs a component against the built-in inputs and prints each call; a good
/// one passes and agrees with the built-in where it should, a declining one fails with its
/// message shown, a component that breaks the rules fails with the fault, and a migration
/// component is pointed elsewhere.
#[test]
fn policy_test_prints_every_call_and_fails_on_faults_and_declines() {
    let out = luciole(&["policy", "test", &plugin("placement-rendezvous"), "--compare-builtin"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    for want in
        ["3 members, one at capacity 0, 16 bubbles", "100 members with zone labels, 10000 bubbles"]
    {
        assert!(stdout.contains(want), "missing {want:?} in:\n{stdout}");
    }
    // The reference rendezvous placement is the built-in's twin.
    assert!(stdout.contains("5 calls, 0 fault(s), 0 decline(s), 0 differ from the built-in"));
    // Fuel per call, and the hungriest call against the budget: the reference placement
    // hashes every bubble for every member, 1,000 × 1,000 rendezvous weights, close to it.
    let fuel = |case: &str| -> u64 {
        let line = stdout.lines().find(|l| l.contains(case)).unwrap();
        let after = line.split("fuel").nth(1).unwrap();
        after.split_whitespace().next().unwrap().parse().unwrap()
    };
    assert!(fuel("1 member, 16 bubbles") < fuel("1,000 members, 1000 bubbles"));
    assert!(fuel("1,000 members, 1000 bubbles") > 10_000_000, "{stdout}");
    assert!(stdout.contains("most fuel: "), "{stdout}");
    assert!(stdout.contains("on 1,000 members, 1000 bubbles"), "{stdout}");

    // Against another version: where the answers differ, and a kind that cannot compare.
    let lowest = plugin("coordinator-lowest-id");
    let out = luciole(&["policy", "test", &lowest, "--compare", &plugin("coordinator-sticky")]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("previous = last member") && stdout.contains("[differs from sticky 0.1.0]")
    );
    assert!(!stdout.contains(" 0 differ from sticky"), "{stdout}");
    let out = luciole(&["policy", "test", &lowest, "--compare", &lowest]);
    assert!(
        text(&out.stdout)
            .contains("10 calls, 0 fault(s), 0 decline(s), 0 differ from lowest-id 0.1.0")
    );
    one_line_error(
        &["policy", "test", &lowest, "--compare", &plugin("placement-rendezvous")],
        &["cannot be compared"],
    );

    let out = luciole(&["policy", "test", &plugin("hostile-decline")]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("DECLINED no opinion on views this large"), "{stdout}");
    assert!(text(&out.stderr).contains("decline(s)"));

    let out = luciole(&["policy", "test", &plugin("hostile-bad-index")]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("FAULT"), "{stdout}");

    // Migration: the reference policy answers every question as the built-in does; the
    // reckless one is caught by the safety checks.
    let out = luciole(&["policy", "test", &plugin("migration-standard"), "--compare-builtin"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    for want in [
        "prepare, at the in-flight limit",
        "timer, Target Prepared, attempt 50 at 10000 ms",
        "view change, 256 pending",
        "25 calls, 0 fault(s), 0 decline(s), 0 differ from the built-in",
    ] {
        assert!(stdout.contains(want), "missing {want:?} in:\n{stdout}");
    }
    let out = luciole(&["policy", "test", &plugin("hostile-migration")]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("FAULT") && stdout.contains("unsafe answer"), "{stdout}");
}

/// A built JavaScript or Python component of `target/examples`, and the shared artifact cache.
fn example(name: &str) -> (String, String) {
    let path = luciole_tests::example_dir().join(format!("{name}.wasm"));
    let cache = plugin_dir().with_file_name("artifact-cache");
    (path.to_string_lossy().into_owned(), cache.to_string_lossy().into_owned())
}

/// The line of `file` (under the repository) that contains `marker`, counted from 1.
fn line_of(file: &str, marker: &str) -> usize {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    1 + text.lines().position(|l| l.contains(marker)).unwrap_or_else(|| panic!("{marker:?}"))
}

/// In each language, a policy that is right on small views and wrong on large ones passes
/// its small inputs and is caught on the 1,000-member one by the safety checks.
#[test]
fn policy_test_catches_a_wrong_answer_that_only_a_large_view_shows_in_each_language() {
    let rust = (plugin("buggy-large-view"), plugin_dir().to_string_lossy().into_owned());
    let js = example("js-buggy-coordinator");
    let python = example("py-buggy-placement");
    for (lang, (file, cache), name) in [
        ("Rust", rust, "buggy-large-view"),
        ("JavaScript", js, "buggy-coordinator"),
        ("Python", python, "buggy-placement"),
    ] {
        let out = luciole(&["policy", "test", &file, "--cache-dir", &cache]);
        let stdout = text(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{lang}: {stdout}{}", text(&out.stderr));
        let lines: Vec<&str> = stdout.lines().collect();
        let at = |input: &str| lines.iter().position(|l| l.starts_with(&format!("  {input}")));
        // Small views: the component answers.
        for small in ["1 member", "3 members, one at capacity 0", "12 members with zone labels"] {
            let i = at(small).unwrap_or_else(|| panic!("{lang}: no {small:?} in {stdout}"));
            assert!(lines[i].contains(&format!("by {name} 0.1.0")), "{lang}: {}", lines[i]);
        }
        // The large one: the answer is refused as unsafe, and the built-in answers.
        let i = at("1,000 members").unwrap_or_else(|| panic!("{lang}: {stdout}"));
        assert!(lines[i].contains("by the built-in"), "{lang}: {}", lines[i]);
        assert!(lines[i + 1].contains("FAULT") && lines[i + 1].contains("unsafe answer"));
    }
}

/// The JavaScript and Python helpers: an uncaught TypeError or AttributeError is logged with
/// its type, message, file and line, and counts as a fault (not a decline).
#[test]
fn an_uncaught_exception_is_a_fault_logged_with_its_type_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let cases = dir.path().join("epoch-999.toml");
    let trigger = "[[case]]\nname = \"the bug\"\nepoch = 999\nmembers = [{ id = 1 }, { id = 2 }]\n";
    std::fs::write(&cases, format!("{trigger}bubbles = 4\n")).unwrap();
    let cases = cases.to_str().unwrap();
    let js_line = line_of("tests/guests/js/buggy-coordinator/policy.js", "the TypeError");
    let py_line = line_of("tests/guests/python/buggy-placement/app.py", "the AttributeError");
    for (lang, (file, cache), exception, place, function) in [
        (
            "JavaScript",
            example("js-buggy-coordinator"),
            "TypeError",
            format!("policy.js:{js_line}"),
            "choose",
        ),
        (
            "Python",
            example("py-buggy-placement"),
            "AttributeError",
            format!("app.py:{py_line}"),
            "place",
        ),
    ] {
        let out = luciole(&["policy", "test", &file, "--cache-dir", &cache, "--cases", cases]);
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert_eq!(out.status.code(), Some(1), "{lang}: {stdout}{stderr}");
        // A fault, not a decline, and the fault says what the policy's code did.
        assert!(stdout.contains("1 calls, 1 fault(s), 0 decline(s)"), "{lang}: {stdout}");
        let fault = stdout.lines().find(|l| l.contains("FAULT")).unwrap_or_default();
        let said = format!("uncaught {exception} in {function}");
        assert!(fault.contains(&said) && fault.contains(&place), "{lang}: {fault}");
        // The node's log: one error line, with the exception, file and line as fields.
        let logged = stderr.lines().find(|l| l.contains("ERROR") && l.contains(&said));
        let logged = logged.unwrap_or_else(|| panic!("{lang}: no log line in {stderr}"));
        for field in [
            format!("exception={exception}"),
            format!("line={}", &place[place.find(':').unwrap() + 1..]),
        ] {
            assert!(logged.contains(&field), "{lang}: {field} missing in {logged}");
        }
        assert!(logged.contains(&format!("file={}", &place[..place.find(':').unwrap()])));
    }
}
