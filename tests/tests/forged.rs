//! Hand-made components that no SDK would build: many memories, compile bombs, wrong
//! signatures. Each is a generated module of a real policy world (its functions trap),
//! extended in text form before it is made a component.

use std::sync::Arc;
use std::time::{Duration, Instant};

use luciole_tests::{active, engine, view};
use luciole_wasm::inspect::{InspectError, inspect};
use luciole_wasm::{
    Coordinator, EngineConfig, FaultReason, LoadError, LoadedPolicy, Migration, Placement,
    PolicyEngine, PolicyKind, PolicySlot, SwapError,
};
use wit_component::{ComponentEncoder, StringEncoding, dummy_module, embed_component_metadata};
use wit_parser::{ManglingAndAbi, Resolve};

/// A component of `world` from the contract (with `wit_edit` applied to the coordinator
/// interface's text), its core module's text edited by `edits` and extended by `extra`
/// (module fields in text form).
fn forge_with(world: &str, wit_edit: (&str, &str), edits: &[(&str, &str)], extra: &str) -> Vec<u8> {
    let contract = concat!(env!("CARGO_MANIFEST_DIR"), "/../wit/since_v0.1.0");
    static FORGES: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = FORGES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("luciole-forge-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(contract).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let text =
            if wit_edit.0.is_empty() { text } else { text.replacen(wit_edit.0, wit_edit.1, 1) };
        std::fs::write(dir.join(path.file_name().unwrap()), text).unwrap();
    }
    let mut resolve = Resolve::default();
    let (pkg, _) = resolve.push_dir(&dir).expect("the contract parses");
    std::fs::remove_dir_all(&dir).ok();
    let world = resolve.select_world(&[pkg], Some(world)).expect("a world of the contract");
    let module = dummy_module(&resolve, world, ManglingAndAbi::Standard32);
    let mut text = wasmprinter::print_bytes(&module).expect("prints");
    for (from, to) in edits {
        assert!(text.contains(from), "{from:?} not in the generated module:\n{text}");
        text = text.replacen(from, to, 1);
    }
    let end = text.rfind(')').expect("a module");
    text.insert_str(end, extra);
    let mut module = wat::parse_str(&text).expect("extended module parses");
    embed_component_metadata(&mut module, &resolve, world, StringEncoding::UTF8).unwrap();
    ComponentEncoder::default().module(&module).unwrap().validate(true).encode().unwrap()
}

/// [`forge_with`] the contract as it is.
fn forge(world: &str, extra: &str, edits: &[(&str, &str)]) -> Vec<u8> {
    forge_with(world, ("", ""), edits, extra)
}

/// Edits that make the generated coordinator work: one page of memory with its name and
/// version, a bump allocator, `describe` answering `forged@0.1.0`, and `choose` answering the
/// first member after running `before` (instructions in text form).
fn working_coordinator(before: &str) -> Vec<(&'static str, String)> {
    vec![
        ("(memory (;0;) 0)", "(memory (;0;) 16) (global $heap (mut i32) (i32.const 4096)) (data (i32.const 16) \"\\40\\00\\00\\00\\06\\00\\00\\00\\46\\00\\00\\00\\05\\00\\00\\00\") (data (i32.const 64) \"forged0.1.0\")".to_string()),
        ("(func (;1;) (type 1) (result i32)\n    unreachable", "(func (;1;) (type 1) (result i32)\n    i32.const 16".to_string()),
        (
            "(result i32)\n    unreachable\n  )\n  (func (;4;)",
            format!("(result i32)\n {before} (i32.store8 (i32.const 128) (i32.const 0)) (i64.store (i32.const 136) (i64.load (local.get 3))) (i64.store (i32.const 144) (i64.load offset=8 (local.get 3))) i32.const 128\n  )\n  (func (;4;)"),
        ),
        (
            "(func (;5;) (type 4) (param i32 i32 i32 i32) (result i32)\n    unreachable",
            "(func (;5;) (type 4) (param i32 i32 i32 i32) (result i32)\n    (global.get $heap) (global.set $heap (i32.add (global.get $heap) (i32.and (i32.add (local.get 3) (i32.const 15)) (i32.const -16))))".to_string(),
        ),
    ]
}

/// One function whose body nests `depth` blocks.
fn nested(depth: usize) -> String {
    let mut f = String::from("\n(func ");
    f.push_str(&"(block ".repeat(depth));
    f.push_str(&")".repeat(depth));
    f.push_str(")\n");
    f
}

#[test]
#[ignore = "prints the generated module"]
fn print_module() {
    let mut resolve = Resolve::default();
    let wit = concat!(env!("CARGO_MANIFEST_DIR"), "/../wit/since_v0.1.0");
    let (pkg, _) = resolve.push_dir(wit).expect("the contract parses");
    let world = resolve.select_world(&[pkg], Some("coordinator-policy")).unwrap();
    let module = dummy_module(&resolve, world, ManglingAndAbi::Standard32);
    println!("{}", wasmprinter::print_bytes(&module).unwrap());
}

#[test]
fn forged_components_load_until_their_functions_trap() {
    // The baseline of every test below: a forged component compiles and links; its `describe`
    // traps (the generated functions are `unreachable`).
    let err = engine().load(&forge("coordinator-policy", "", &[])).unwrap_err();
    assert!(matches!(err, LoadError::Describe(_)), "{err}");
}

#[test]
fn deep_nesting_is_refused_before_compiling() {
    let bytes = forge("coordinator-policy", &nested(100_000), &[]);
    let started = Instant::now();
    let err = engine().load(&bytes).unwrap_err();
    assert!(
        matches!(err, LoadError::Inspect(InspectError::TooBig { what, found: 100_000, .. })
            if what.contains("nested")),
        "{err}"
    );
    eprintln!("100,000 nested blocks ({} bytes) refused in {:?}", bytes.len(), started.elapsed());
}

#[test]
fn too_many_functions_are_refused_before_compiling() {
    let many: String = (0..60_000).map(|i| format!("(func $f{i})")).collect();
    let err = inspect(&forge("coordinator-policy", &many, &[])).unwrap_err();
    assert!(
        matches!(err, InspectError::TooBig { what: "functions", found, limit: 50_000 }
            if found > 60_000),
        "{err}"
    );
}

#[test]
fn many_memories_are_refused_before_compiling() {
    let memories: String = (0..32).map(|i| format!("(memory $m{i} 1)")).collect();
    let err = inspect(&forge("coordinator-policy", &memories, &[])).unwrap_err();
    assert!(
        matches!(err, InspectError::TooBig { what: "linear memories", found: 33, limit: 2 }),
        "{err}"
    );
}

#[test]
fn the_memory_cap_counts_every_memory_of_a_policy() {
    // Two memories of 40 MiB each: each fits the 64 MiB cap alone, not together.
    let extra = "(memory $second 640)";
    let bytes = forge("coordinator-policy", extra, &[("(memory (;0;) 0)", "(memory (;0;) 640)")]);
    let err = engine().load(&bytes).unwrap_err();
    assert!(matches!(err, LoadError::Memory { needs, .. } if needs == 80 << 20), "{err}");
}

/// Compile time and peak memory of the worst shapes the limits admit, for BENCHMARKS.md:
/// `LUCIOLE_SHAPE=deep cargo test --release -p luciole-tests --test forged -- --ignored
/// --nocapture worst` (and `large`, `many`), one shape per process so that the peak
/// resident size (`VmHWM`) is that shape's.
#[test]
#[ignore = "a measurement, minutes long"]
fn worst_admitted_shapes_compile_time() {
    let engine = PolicyEngine::new(EngineConfig {
        compile_deadline: Duration::from_secs(600),
        ..EngineConfig::default()
    })
    .unwrap();
    let limits = luciole_wasm::inspect::Shape::LIMITS;
    let depth = limits.nesting_max as usize;
    let extra = match std::env::var("LUCIOLE_SHAPE").as_deref() {
        // Functions as deep as allowed, as many as the weight allows.
        Ok("deep") => {
            let per_function = nested(depth).len() as u64;
            let count = (limits.nesting_weight / (per_function * depth as u64)).min(40_000);
            // Binary bodies are smaller than their text: 3 bytes per level.
            let count = count * per_function / (3 * depth as u64);
            (0..count).map(|_| nested(depth)).collect::<String>()
        }
        // Straight-line code: functions as large as allowed, as many as the code limit allows.
        Ok("large") => {
            let per = (limits.function_bytes_max as usize - 64) / 4; // `i32.const 100 drop`
            let body = "i32.const 100 drop ".repeat(per);
            let count = limits.code_bytes as usize / (per * 4) - 1;
            (0..count).map(|_| format!("\n(func {body})")).collect()
        }
        // As many small functions as allowed.
        Ok("many") => (0..49_980).map(|i| format!("(func $t{i} i32.const {i} drop)")).collect(),
        _ => return eprintln!("set LUCIOLE_SHAPE to deep, large or many"),
    };
    let bytes = forge("coordinator-policy", &extra, &[]);
    let shape = inspect(&bytes).expect("admitted").shape;
    let started = Instant::now();
    let err = engine.load(&bytes).unwrap_err();
    let took = started.elapsed();
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let peak = status.lines().find(|l| l.starts_with("VmHWM")).unwrap_or("VmHWM: ?");
    eprintln!("{} bytes, {shape:?}: {took:?}, {peak} ({err})", bytes.len());
}

#[test]
fn a_compile_past_the_deadline_is_refused_and_remembered() {
    let engine = PolicyEngine::new(EngineConfig {
        compile_deadline: Duration::ZERO,
        ..EngineConfig::default()
    })
    .unwrap();
    let many: String = (0..2_000).map(|i| format!("(func $f{i} i32.const {i} drop)")).collect();
    let bytes = forge("placement-policy", &many, &[]);
    let err = engine.load(&bytes).unwrap_err();
    assert!(matches!(err, LoadError::CompileDeadline { .. }), "{err}");
    let started = Instant::now();
    let again = engine.load(&bytes).unwrap_err();
    assert!(matches!(again, LoadError::RefusedBefore(_)), "{again}");
    assert!(started.elapsed() < Duration::from_secs(1), "not compiled again");
}

#[test]
fn a_forged_coordinator_works() {
    let edits = working_coordinator("");
    let edits: Vec<(&str, &str)> = edits.iter().map(|(a, b)| (*a, b.as_str())).collect();
    let policy = engine().load(&forge("coordinator-policy", "", &edits)).expect("loads");
    assert_eq!(policy.meta().label(), "forged@0.1.0");
    let slot = PolicySlot::<Coordinator>::new();
    slot.swap(&policy).unwrap();
    let v = view(1, 5);
    assert_eq!(active(slot.choose(&v, None), "forged", "5 members"), v.members()[0].id);
}

#[test]
fn a_signature_that_does_not_match_the_contract_names_the_function() {
    let bytes = forge_with("coordinator-policy", ("current: u32", "current: u64"), &[], "");
    let err = engine().load(&bytes).unwrap_err();
    assert!(
        matches!(err, LoadError::Instantiate(ref e) if e.contains("choose") && e.contains("u64")),
        "{err}"
    );
}

#[test]
fn bulk_memory_is_weighed_by_fuel_per_byte() {
    let engine = engine();
    // 16 MiB filled a million times: a millisecond of work per round, for one instruction.
    // wasmtime charges bulk memory instructions by their length, so fuel runs out in a few.
    let policy = forged_coordinator(
        &engine,
        "(global $round (mut i32) (i32.const 0))",
        "(drop (memory.grow 0 (i32.const 256))) \
         (if (i32.gt_u (local.get 4) (i32.const 4)) (then \
           (loop $again \
             (memory.fill (i32.const 0) (i32.const 7) (i32.const 0x1000000)) \
             (global.set $round (i32.add (global.get $round) (i32.const 1))) \
             (br_if $again (i32.lt_u (global.get $round) (i32.const 1000000))))))",
    );
    let slot = PolicySlot::<Coordinator>::new();
    slot.swap(&policy).expect("passes the smoke call (2 members)");
    let v = view(1, 5);
    let started = Instant::now();
    let answer = slot.choose(&v, None);
    let took = started.elapsed();
    assert_eq!(answer.by, luciole_wasm::AnsweredBy::Builtin);
    assert_eq!(answer.faults[0].reason, FaultReason::OutOfFuel);
    assert!(took < Duration::from_secs(1), "stopped after {took:?}");
}

#[test]
fn an_error_line_quotes_only_the_start_of_a_long_string() {
    // `describe` answers a name of 10,000 bytes (the record's length field edited).
    let mut edits = working_coordinator("");
    edits.push(("\\06\\00\\00\\00\\46", "\\10\\27\\00\\00\\46".to_string()));
    let edits: Vec<(&str, &str)> = edits.iter().map(|(a, b)| (*a, b.as_str())).collect();
    let err = engine().load(&forge("coordinator-policy", "", &edits)).unwrap_err();
    let line = err.to_string();
    assert!(line.contains("… (10000 bytes)"), "{line}");
    assert!(line.len() < 300, "{} bytes: {line}", line.len());
}

/// The forged coordinator, running `before` in `choose`, as a loaded policy of `engine`.
fn forged_coordinator(engine: &PolicyEngine, extra: &str, before: &str) -> Arc<LoadedPolicy> {
    let edits = working_coordinator(before);
    let edits: Vec<(&str, &str)> = edits.iter().map(|(a, b)| (*a, b.as_str())).collect();
    engine.load(&forge("coordinator-policy", extra, &edits)).expect("loads")
}

#[test]
fn memory_grown_at_run_time_counts_against_one_cap_for_all_memories() {
    let engine = engine();
    // 1 MiB + 40 MiB in the first memory, then 30 MiB in the second: each memory alone stays
    // under the 64 MiB cap, together they do not. The policy traps if refused.
    let policy = forged_coordinator(
        &engine,
        "(memory $second 0)",
        "(drop (memory.grow 0 (i32.const 640))) \
         (if (i32.lt_s (memory.grow $second (i32.const 480)) (i32.const 0)) (then unreachable))",
    );
    let slot = PolicySlot::<Coordinator>::new();
    let err = slot.swap(&policy).unwrap_err();
    assert!(matches!(&err, SwapError::Smoke(f) if f.reason == FaultReason::MemoryLimit), "{err}");
    assert_eq!(slot.quarantined().len(), 1, "a failed smoke call quarantines");
    let again = engine.load(&forge("coordinator-policy", "", &[])).unwrap_err();
    assert!(matches!(again, LoadError::Describe(_)), "another component still loads: {again}");
}

#[test]
fn one_kind_using_its_whole_share_of_the_pool_leaves_the_other_kinds_loading() {
    let engine = engine();
    let policy = forged_coordinator(&engine, "", "");
    let slots: Vec<PolicySlot<Coordinator>> = (0..20).map(|_| PolicySlot::new()).collect();
    let mut refused = None;
    for (i, slot) in slots.iter().enumerate() {
        if let Err(e) = slot.swap(&policy) {
            refused = Some((i, e));
            break;
        }
    }
    let (at, err) = refused.expect("a kind's share is bounded");
    assert_eq!(at, 16, "{err}");
    assert!(err.to_string().contains("share of the instance pool"), "{err}");
    assert_eq!(engine.live_instances(PolicyKind::Coordinator), 16);
    // Placement and migration policies still load and swap.
    let placement = luciole_tests::load(&engine, "placement-rendezvous");
    PolicySlot::<Placement>::new().swap(&placement).expect("placement unaffected");
    let migration = luciole_tests::load(&engine, "migration-standard");
    PolicySlot::<Migration>::new().swap(&migration).expect("migration unaffected");
    // The failed swap did not quarantine a good policy: a slot freed, it swaps in again.
    drop(slots);
    PolicySlot::<Coordinator>::new().swap(&policy).expect("the share is given back");
}
