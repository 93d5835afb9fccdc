//! `luciole policy new NAME --kind KIND --lang rust|js|python`: a policy project that builds,
//! passes its own tests and `luciole policy check` out of the box — the kind's function(s)
//! filled with a working default, a test file, a build script and a README. JavaScript and
//! Python projects carry the contract (`wit/`) and the helper that turns an uncaught exception
//! into a logged fault (`guest-sdk/js`, `guest-sdk/python`); their templates are the files in
//! `host/node/templates/`.

use std::path::{Path, PathBuf};

use anyhow::Context;

/// Arguments of `luciole policy new`.
#[derive(clap::Args, Debug, Clone)]
pub struct NewArgs {
    /// The policy's name: lowercase letters, digits and dashes (the project directory, the
    /// crate and the component are named after it).
    pub name: String,
    /// Which decision it makes.
    #[arg(long, value_enum)]
    pub kind: NewKind,
    /// Its language.
    #[arg(long, value_enum, default_value_t = Lang::Rust)]
    pub lang: Lang,
    /// Where to create the project directory [default: the current directory].
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// The luciole guest SDK (the repository's `guest-sdk`) [default: the one this binary was
    /// built from, if it is still there].
    #[arg(long, value_name = "DIR")]
    pub sdk: Option<PathBuf>,
}

/// A policy kind, for `--kind`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum NewKind {
    /// Chooses the coordinator of each view.
    Coordinator,
    /// Places bubbles on members.
    Placement,
    /// Decides the migration two-phase commit.
    Migration,
}

/// A language, for `--lang`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lang {
    /// Rust, with the guest SDK.
    Rust,
    /// JavaScript, built with componentize-js (needs Node.js ≥ 18 with npm).
    Js,
    /// Python, built with componentize-py (needs Python ≥ 3.10 with venv).
    Python,
}

/// Creates the project; returns its directory.
pub fn new(args: &NewArgs) -> anyhow::Result<PathBuf> {
    let name = &args.name;
    let valid = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !valid {
        anyhow::bail!(
            "{name:?} is not a policy name: use 1 to 64 lowercase letters, digits and dashes, \
             starting with a letter"
        );
    }
    if args.lang != Lang::Rust {
        return interpreted(args);
    }
    let sdk = match &args.sdk {
        Some(dir) => dir.clone(),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../guest-sdk"),
    };
    let sdk =
        sdk.canonicalize().ok().filter(|p| p.join("Cargo.toml").is_file()).with_context(|| {
            format!(
                "the guest SDK is not at {}: pass --sdk DIR (the guest-sdk directory of a \
                 luciole checkout)",
                sdk.display()
            )
        })?;
    let dir = args.dir.clone().unwrap_or_else(|| PathBuf::from(".")).join(name);
    if dir.exists() {
        anyhow::bail!("{} exists already: choose another name or --dir", dir.display());
    }
    std::fs::create_dir_all(dir.join("src"))
        .with_context(|| format!("creating {}", dir.display()))?;
    let krate = name.replace('-', "_");
    let files = [
        ("Cargo.toml", cargo_toml(name, &sdk)),
        ("src/lib.rs", lib_rs(args.kind, name)),
        ("build.sh", build_sh(name, &krate)),
        ("README.md", readme(args.kind, name)),
        (".gitignore", "/target\n*.wasm\n".to_string()),
    ];
    for (file, text) in files {
        let path = dir.join(file);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    executable(&dir.join("build.sh"))?;
    Ok(dir)
}

/// The contract, written into JavaScript and Python projects (their compilers read it).
const WIT: [(&str, &str); 4] = [
    ("types.wit", include_str!("../../../wit/since_v0.1.0/types.wit")),
    ("coordinator.wit", include_str!("../../../wit/since_v0.1.0/coordinator.wit")),
    ("placement.wit", include_str!("../../../wit/since_v0.1.0/placement.wit")),
    ("migration.wit", include_str!("../../../wit/since_v0.1.0/migration.wit")),
];

/// A JavaScript or Python project: the files of `templates/<lang>/`, with the kind's source
/// and test, the contract and the helper.
fn interpreted(args: &NewArgs) -> anyhow::Result<PathBuf> {
    let name = &args.name;
    let kind = match args.kind {
        NewKind::Coordinator => "coordinator",
        NewKind::Placement => "placement",
        NewKind::Migration => "migration",
    };
    let (cases_note, cases_flag) = match args.kind {
        NewKind::Migration => ("", ""),
        _ => (" and your cases (cases.toml)", " --cases cases.toml"),
    };
    let fill = |text: &str| {
        text.replace("{{name}}", name)
            .replace("{{kind}}", kind)
            .replace("{{world}}", &format!("{kind}-policy"))
            .replace("{{cases_note}}", cases_note)
            .replace("{{cases_flag}}", cases_flag)
    };
    let mut files: Vec<(String, String)> =
        WIT.iter().map(|(file, text)| (format!("wit/{file}"), text.to_string())).collect();
    let source = |js: &'static str, py: &'static str| if args.lang == Lang::Js { js } else { py };
    let cases = match args.kind {
        NewKind::Coordinator => Some(include_str!("../templates/coordinator.cases.toml")),
        NewKind::Placement => Some(include_str!("../templates/placement.cases.toml")),
        NewKind::Migration => None,
    };
    if let Some(cases) = cases {
        files.push(("cases.toml".into(), fill(cases)));
    }
    let (policy, test) = match (args.lang, args.kind) {
        (Lang::Js, NewKind::Coordinator) => (
            include_str!("../templates/js/coordinator.policy.js"),
            include_str!("../templates/js/coordinator.test.js"),
        ),
        (Lang::Js, NewKind::Placement) => (
            include_str!("../templates/js/placement.policy.js"),
            include_str!("../templates/js/placement.test.js"),
        ),
        (Lang::Js, NewKind::Migration) => (
            include_str!("../templates/js/migration.policy.js"),
            include_str!("../templates/js/migration.test.js"),
        ),
        (_, NewKind::Coordinator) => (
            include_str!("../templates/python/coordinator.app.py"),
            include_str!("../templates/python/coordinator.test_app.py"),
        ),
        (_, NewKind::Placement) => (
            include_str!("../templates/python/placement.app.py"),
            include_str!("../templates/python/placement.test_app.py"),
        ),
        (_, NewKind::Migration) => (
            include_str!("../templates/python/migration.app.py"),
            include_str!("../templates/python/migration.test_app.py"),
        ),
    };
    if args.lang == Lang::Js {
        files.extend([
            ("policy.js".into(), fill(policy)),
            ("test/policy.test.js".into(), fill(test)),
            ("component.js".into(), fill(include_str!("../templates/js/component.js"))),
            (
                "luciole-policy.js".into(),
                include_str!("../../../guest-sdk/js/luciole-policy.js").into(),
            ),
            ("package.json".into(), fill(include_str!("../templates/js/package.json"))),
            ("build.sh".into(), fill(include_str!("../templates/js/build.sh"))),
            (".gitignore".into(), include_str!("../templates/js/gitignore").into()),
        ]);
    } else {
        files.extend([
            ("app.py".into(), fill(policy)),
            ("test_app.py".into(), fill(test)),
            (
                "luciole_policy.py".into(),
                include_str!("../../../guest-sdk/python/luciole_policy.py").into(),
            ),
            (
                "requirements.txt".into(),
                include_str!("../templates/python/requirements.txt").into(),
            ),
            ("build.sh".into(), fill(include_str!("../templates/python/build.sh"))),
            ("test.sh".into(), fill(include_str!("../templates/python/test.sh"))),
            (".gitignore".into(), include_str!("../templates/python/gitignore").into()),
        ]);
    }
    files.push((
        "README.md".into(),
        fill(source(
            include_str!("../templates/js/README.md"),
            include_str!("../templates/python/README.md"),
        )),
    ));
    let dir = args.dir.clone().unwrap_or_else(|| PathBuf::from(".")).join(name);
    if dir.exists() {
        anyhow::bail!("{} exists already: choose another name or --dir", dir.display());
    }
    for (file, text) in &files {
        let path = dir.join(file);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    for script in ["build.sh", "test.sh"] {
        let path = dir.join(script);
        if path.exists() {
            executable(&path)?;
        }
    }
    Ok(dir)
}

/// Makes a script executable.
fn executable(path: &Path) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
            .with_context(|| format!("making {} executable", path.display()))?;
    }
    Ok(())
}

fn cargo_toml(name: &str, sdk: &Path) -> String {
    format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"

# A project of its own, not part of an enclosing workspace.
[workspace]

[lib]
crate-type = ["cdylib", "rlib"]

[dependencies]
luciole-guest-sdk = {{ path = "{sdk}" }}

# Small, fast components.
[profile.release]
opt-level = 3
lto = true
codegen-units = 1
panic = "abort"
"#,
        sdk = sdk.display()
    )
}

fn build_sh(name: &str, krate: &str) -> String {
    format!(
        r#"#!/bin/sh
# Builds {name}.wasm: the crate for wasm32-unknown-unknown, wrapped into a component, checked.
# `luciole` must be on PATH, or named by $LUCIOLE.
set -eu
cd "$(dirname "$0")"
LUCIOLE="${{LUCIOLE:-luciole}}"
rustup target add wasm32-unknown-unknown >/dev/null 2>&1 || true
cargo build --target wasm32-unknown-unknown --release
TARGET="${{CARGO_TARGET_DIR:-target}}"
"$LUCIOLE" policy componentize "$TARGET/wasm32-unknown-unknown/release/{krate}.wasm" -o {name}.wasm
"$LUCIOLE" policy check {name}.wasm
"#
    )
}

fn lib_rs(kind: NewKind, name: &str) -> String {
    match kind {
        NewKind::Coordinator => format!(
            r#"//! Coordinator policy `{name}`: the member with the lowest id among those with capacity
//! (any member if none has). Change `choose` to decide otherwise; return a `PolicyError` to
//! decline (the host's built-in then answers).

use luciole_guest_sdk::{{CoordinatorPolicy, MemberId, PolicyError, View}};

/// The policy.
pub struct Policy;

impl CoordinatorPolicy for Policy {{
    fn choose(view: &View, _current: Option<MemberId>) -> Result<MemberId, PolicyError> {{
        // Members arrive sorted by id.
        let pick = view.members.iter().find(|m| m.capacity > 0).or(view.members.first());
        pick.map(|m| m.id).ok_or_else(|| PolicyError {{ message: "an empty view".into() }})
    }}
}}

luciole_guest_sdk::export_coordinator!(Policy, name = "{name}", version = env!("CARGO_PKG_VERSION"));

#[cfg(test)]
mod tests {{
    use super::*;
    use luciole_guest_sdk::{{Member, Uid}};

    fn view(members: &[(u128, u32)]) -> View {{
        let members = members.iter().map(|&(id, capacity)| Member {{ id: Uid::from_u128(id), capacity }});
        View::of(1, members.collect())
    }}

    #[test]
    fn the_lowest_id_with_capacity_coordinates() {{
        let v = view(&[(3, 1), (1, 0), (2, 5)]);
        assert_eq!(Policy::choose(&v, None).unwrap(), Uid::from_u128(2));
    }}

    #[test]
    fn with_no_capacity_anywhere_the_lowest_id_does() {{
        let v = view(&[(3, 0), (1, 0)]);
        assert_eq!(Policy::choose(&v, None).unwrap(), Uid::from_u128(1));
    }}
}}
"#
        ),
        NewKind::Placement => format!(
            r#"//! Placement policy `{name}`: bubbles dealt in turn to the members with capacity (to
//! every member if none has). Change `place` to decide otherwise: it returns, for each bubble,
//! the index of its member in `view.members`.

use luciole_guest_sdk::{{Bubble, PlacementPolicy, PolicyError, View}};

/// The policy.
pub struct Policy;

impl PlacementPolicy for Policy {{
    fn place(view: &View, bubbles: &[Bubble]) -> Result<Vec<u32>, PolicyError> {{
        let mut hosts: Vec<u32> = (0..view.members.len() as u32)
            .filter(|&i| view.members[i as usize].capacity > 0)
            .collect();
        if hosts.is_empty() {{
            hosts = (0..view.members.len() as u32).collect();
        }}
        if hosts.is_empty() {{
            return Err(PolicyError {{ message: "an empty view".into() }});
        }}
        Ok(bubbles.iter().map(|b| hosts[(b.id % hosts.len() as u64) as usize]).collect())
    }}
}}

luciole_guest_sdk::export_placement!(Policy, name = "{name}", version = env!("CARGO_PKG_VERSION"));

#[cfg(test)]
mod tests {{
    use super::*;
    use luciole_guest_sdk::{{Member, Uid}};

    fn view(capacities: &[u32]) -> View {{
        let members = capacities.iter().enumerate().map(|(i, &capacity)| Member {{
            id: Uid::from_u128(i as u128 + 1),
            capacity,
        }});
        View::of(1, members.collect())
    }}

    fn bubbles(n: u64) -> Vec<Bubble> {{
        (0..n).map(|id| Bubble {{ id, entity_count: 0, load: 0, bounds: None, current: None }}).collect()
    }}

    #[test]
    fn every_bubble_goes_to_a_member_with_capacity_in_turn() {{
        let placed = Policy::place(&view(&[1, 0, 2]), &bubbles(4)).unwrap();
        assert_eq!(placed, vec![0, 2, 0, 2]);
    }}

    #[test]
    fn an_empty_view_is_declined() {{
        assert!(Policy::place(&view(&[]), &bubbles(1)).is_err());
    }}
}}
"#
        ),
        NewKind::Migration => format!(
            r#"//! Migration policy `{name}`: the reference decisions of the two-phase commit (the SDK's
//! defaults: start and admit while under the limits, commit exactly when the target admitted,
//! resend every 100 ms and give up only while nothing can have been committed, presumed
//! abort of what is undecided on a view change). Override a method of `MigrationPolicy` to
//! change one decision; the host overrules any answer that would break exactly-once.

use luciole_guest_sdk::MigrationPolicy;

/// The policy.
pub struct Policy;

impl MigrationPolicy for Policy {{}}

luciole_guest_sdk::export_migration!(Policy, name = "{name}", version = env!("CARGO_PKG_VERSION"));

#[cfg(test)]
mod tests {{
    use super::*;
    use luciole_guest_sdk::Uid;
    use luciole_guest_sdk::migration::*;

    fn status(role: Role, phase: Phase, attempt: u32) -> Status {{
        let id = Uid {{ hi: 0, lo: 1 }};
        let migration = Migration {{
            id,
            entity: id,
            source: id,
            target: Uid {{ hi: 0, lo: 2 }},
            source_bubble: 0,
            target_bubble: 1,
            epoch: 1,
        }};
        Status {{ migration, role, phase, attempt, elapsed_ms: 0 }}
    }}

    #[test]
    fn a_decided_commit_is_never_given_up() {{
        let s = status(Role::Source, Phase::Committing, 50);
        assert_ne!(Policy::on_timeout(s), TimeoutAction::Abort);
    }}

    #[test]
    fn an_admitted_vote_commits() {{
        let s = status(Role::Source, Phase::Preparing, 1);
        assert_eq!(Policy::on_vote(s, Admission::Admit), Outcome::Commit);
    }}
}}
"#
        ),
    }
}

fn readme(kind: NewKind, name: &str) -> String {
    let kind = match kind {
        NewKind::Coordinator => "coordinator",
        NewKind::Placement => "placement",
        NewKind::Migration => "migration",
    };
    let test_line = if kind == "migration" {
        format!(
            "luciole policy test {name}.wasm --compare-builtin   # every decision on built-in \
             states; then through the migration core under crashes, from a luciole checkout: \
             cargo run --release -p luciole-sim -- --cluster crashes --seeds 20 --policy {name}.wasm"
        )
    } else {
        format!("luciole policy test {name}.wasm [--compare-builtin] [--cases my-cases.toml]")
    };
    let swap = match kind {
        "coordinator" => format!("luciole demo --local --swap-coordinator {name}.wasm"),
        "placement" => format!("luciole demo --local --swap-placement {name}.wasm"),
        _ => format!("luciole demo --local --swap-migration {name}.wasm"),
    };
    format!(
        r#"# {name}: a luciole {kind} policy

```sh
cargo test          # the policy's logic, natively
./build.sh          # {name}.wasm: built for wasm32, wrapped into a component, `luciole policy check`ed
{test_line}
{swap}   # hot-swapped into a running node's slot
```

`src/lib.rs` holds the policy: one function per decision, filled with a working default.
Change it, add tests beside it, and run the three commands again. The contract — every type
and function, with its rules — is in the luciole repository, `wit/since_v0.1.0/`; what the
host checks and overrules is in its `docs/ARCHITECTURE.md` (*The trust boundary*).
"#
    )
}
