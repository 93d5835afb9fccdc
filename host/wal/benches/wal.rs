//! Log throughput and latency beside the raw disk, and recovery speed.
//!
//! `cargo bench -p luciole-wal --bench wal` (add `-- --quick` for a short run; `--sizes 256`,
//! `--appenders 1,64` and `--recovery 64` pick rows, `--recovery ''` none; `--runs 5` runs
//! every row five times, interleaved, and prints each figure's median — this machine's disk
//! varies from minute to minute; `--tasks-only` skips the thread rows, for profiling; `--gather`
//! and `--segment-mib` change the log's settings; `--raw-modes` prints only the raw loop's
//! variants: `O_DSYNC`, `O_DIRECT|O_DSYNC`, and 2 and 4 threads syncing one file). For each
//! record size, first the **raw baseline**: one thread writing records of that size into a
//! preallocated file and calling `fdatasync` after each (`pwrite` + `fdatasync`, nothing else).
//! Then the log with 1, 4, 16 and 64 appenders, each appending a record and waiting for it to
//! be durable, in a loop: as OS threads calling `append_wait`, and as tokio tasks (two worker
//! threads) awaiting `append_async`, each followed by its **floor**: the same tasks handing raw
//! records to one thread that waits for all of them, writes and syncs, and the same through
//! io_uring with no thread of ours in between (see `floors`; a row of zeros where io_uring is
//! unavailable).
//! Then recovery: a log of 1,000,000 records reopened.
//!
//! Everything runs in one directory on the same disk (`target/wal-bench` unless
//! `LUCIOLE_WAL_BENCH_DIR` says otherwise), removed afterwards.
//!
//! The first lines printed say how long this machine's idle vCPUs poll before halting (KVM
//! guests with the haltpoll cpuidle driver): waking a halted vCPU sits on the path of every
//! sync, so that setting moves every row, the raw one included (see BENCHMARKS.md).

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

#[path = "floors/mod.rs"]
mod floors;

use luciole_proto::wal::format::frame_bytes;
use luciole_wal::{FileStorage, RecordType, Wal, WalConfig};

/// `value` of `flag` as a number, or a one-line error and exit 2 (see --help).
fn number<T: std::str::FromStr>(value: &str, flag: &str) -> T {
    value.parse().unwrap_or_else(|_| {
        eprintln!("error: {flag} takes a number, got {value:?} (see --help)");
        std::process::exit(2)
    })
}

/// The log's settings: the defaults, but for `gather_us_max` and `segment_bytes` when
/// `--gather` (µs) and `--segment-mib` give them.
fn config() -> WalConfig {
    let args: Vec<String> = std::env::args().collect();
    let flag = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1));
    let mut config = WalConfig::default();
    if let Some(g) = flag("--gather") {
        config.gather_us_max = number(g, "--gather");
    }
    if let Some(m) = flag("--segment-mib") {
        config.segment_bytes = number::<u64>(m, "--segment-mib") << 20;
    }
    config
}

struct Run {
    ops: u64,
    elapsed: Duration,
    latencies_ns: Vec<u64>,
}

impl Run {
    fn rate(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64()
    }
    fn percentile_us(&mut self, p: f64) -> f64 {
        self.latencies_ns.sort_unstable();
        let i = ((self.latencies_ns.len() as f64 - 1.0) * p).round() as usize;
        self.latencies_ns.get(i).copied().unwrap_or(0) as f64 / 1000.0
    }
}

/// A row not run (`--tasks-only`): zeros.
fn skipped() -> (Run, f64) {
    (Run { ops: 0, elapsed: Duration::from_secs(1), latencies_ns: Vec::new() }, 0.0)
}

/// One row's figures from one run.
#[derive(Clone, Copy)]
struct Measured {
    rate: f64,
    p50_us: f64,
    p99_us: f64,
    per_write: f64,
}

impl Measured {
    fn of(mut run: Run, per_write: f64) -> Self {
        let (p50_us, p99_us) = (run.percentile_us(0.5), run.percentile_us(0.99));
        Self { rate: run.rate(), p50_us, p99_us, per_write }
    }

    /// Each figure's median over the runs (for an even count, the upper middle).
    fn median(runs: &[Measured]) -> Measured {
        let mid = |f: fn(&Measured) -> f64| {
            let mut v: Vec<f64> = runs.iter().map(f).collect();
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        Measured {
            rate: mid(|m| m.rate),
            p50_us: mid(|m| m.p50_us),
            p99_us: mid(|m| m.p99_us),
            per_write: mid(|m| m.per_write),
        }
    }
}

/// How long an idle vCPU of this (KVM) guest polls before it halts, where the kernel says.
/// Every wake-up of a halted vCPU costs tens of µs here, on the path of each sync, so this
/// setting moves every row; the numbers mean little without it.
fn halt_polling() -> String {
    let path = "/sys/module/haltpoll/parameters/guest_halt_poll_ns";
    match std::fs::read_to_string(path) {
        Ok(ns) => format!("{} ns ({path})", ns.trim()),
        Err(_) => "not reported (no haltpoll cpuidle driver)".into(),
    }
}

/// How the raw loop makes a write durable.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Raw {
    /// `pwrite`, then `fdatasync`: what the log does.
    Fdatasync,
    /// `pwrite` on a file opened `O_DSYNC`.
    Dsync,
    /// `pwrite` on a file opened `O_DIRECT | O_DSYNC`, of whole 4 KiB blocks from an aligned
    /// buffer (the size rounded up, as a log doing direct I/O would rewrite its last block).
    Direct,
}

impl Raw {
    fn name(self) -> &'static str {
        match self {
            Raw::Fdatasync => "pwrite+fdatasync",
            Raw::Dsync => "O_DSYNC pwrite",
            Raw::Direct => "O_DIRECT + O_DSYNC pwrite",
        }
    }
}

/// `pwrite` + `fdatasync` of `size` bytes at increasing offsets of a preallocated file: the
/// baseline every log row is compared with.
fn raw(dir: &Path, size: usize, duration: Duration) -> Run {
    raw_with(dir, size, duration, Raw::Fdatasync, 1)
}

/// `threads` threads, each making `size`-byte writes durable as `mode` says, in a loop, at
/// increasing offsets of its own part of one preallocated file.
fn raw_with(dir: &Path, size: usize, duration: Duration, mode: Raw, threads: usize) -> Run {
    use std::os::unix::fs::OpenOptionsExt;
    const BLOCK: usize = 4096;
    let path = dir.join("raw.bin");
    let len = preallocate(&path);
    let flags = match mode {
        Raw::Fdatasync => 0,
        Raw::Dsync => libc::O_DSYNC,
        Raw::Direct => libc::O_DIRECT | libc::O_DSYNC,
    };
    let f = Arc::new(OpenOptions::new().write(true).custom_flags(flags).open(&path).unwrap());
    let size = if mode == Raw::Direct { size.div_ceil(BLOCK) * BLOCK } else { size };
    let part = len / threads as u64;
    let started = Instant::now();
    let workers: Vec<_> = (0..threads as u64)
        .map(|i| {
            let f = f.clone();
            std::thread::spawn(move || {
                // Direct I/O wants the buffer aligned to the block too.
                let buffer = vec![0xA5u8; size + BLOCK];
                let skip = buffer.as_ptr().align_offset(BLOCK);
                let record = &buffer[skip..skip + size];
                let (base, mut offset) = (i * part, 0u64);
                let mut latencies_ns = Vec::new();
                while started.elapsed() < duration {
                    let t = Instant::now();
                    f.write_all_at(record, base + offset).unwrap();
                    if mode == Raw::Fdatasync {
                        f.sync_data().unwrap();
                    }
                    latencies_ns.push(t.elapsed().as_nanos() as u64);
                    offset = (offset + size as u64) % (part - size as u64);
                }
                latencies_ns
            })
        })
        .collect();
    let latencies_ns: Vec<u64> = workers.into_iter().flat_map(|w| w.join().unwrap()).collect();
    let run = Run { ops: latencies_ns.len() as u64, elapsed: started.elapsed(), latencies_ns };
    std::fs::remove_file(&path).unwrap();
    run
}

/// The floor rows after each task row (see `floors`): `uring` picks io_uring, otherwise the
/// sync thread. `None` where io_uring is unavailable.
fn floor(
    dir: &Path,
    size: usize,
    tasks: usize,
    duration: Duration,
    uring: bool,
) -> Option<(Run, f64)> {
    let path = dir.join("floor.bin");
    let len = preallocate(&path);
    let file = OpenOptions::new().write(true).open(&path).unwrap();
    let runtime = runtime();
    let floor = if uring {
        floors::uring(&runtime, (file, len), size, tasks, duration)
    } else {
        Some(floors::thread(&runtime, (file, len), size, tasks, duration))
    };
    std::fs::remove_file(&path).unwrap();
    let f = floor?;
    let per_write = f.latencies_ns.len() as f64 / f.writes.max(1) as f64;
    Some((
        Run { ops: f.latencies_ns.len() as u64, elapsed: f.elapsed, latencies_ns: f.latencies_ns },
        per_write,
    ))
}

/// Creates `path` as 256 MiB of synced zeros (so no write extends the file) and returns its
/// length.
fn preallocate(path: &Path) -> u64 {
    let len = 256u64 << 20;
    let mut f = OpenOptions::new().create(true).truncate(true).write(true).open(path).unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..(len >> 20) {
        f.write_all(&zeros).unwrap();
    }
    f.sync_all().unwrap();
    len
}

/// The raw loop's variants side by side (`--raw-modes`): other ways to make a write durable,
/// and several threads syncing one file at once. Rows of `size` and a 64-record write.
fn raw_modes(dir: &Path, sizes: &[usize], runs: usize, duration: Duration) {
    println!("| bytes per write | how | threads | writes/s | p50 µs | p99 µs | vs first row |");
    println!("|---:|---|---:|---:|---:|---:|---:|");
    let variants = [
        (Raw::Fdatasync, 1),
        (Raw::Dsync, 1),
        (Raw::Direct, 1),
        (Raw::Fdatasync, 2),
        (Raw::Fdatasync, 4),
    ];
    for &size in sizes {
        for bytes in [frame_bytes(size), 64 * frame_bytes(size)] {
            let mut rows: Vec<Vec<Measured>> = vec![Vec::new(); variants.len()];
            for _ in 0..runs {
                for (row, &(mode, threads)) in rows.iter_mut().zip(&variants) {
                    row.push(Measured::of(raw_with(dir, bytes, duration, mode, threads), 1.0));
                }
            }
            let rows: Vec<Measured> = rows.iter().map(|r| Measured::median(r)).collect();
            for (m, &(mode, threads)) in rows.iter().zip(&variants) {
                println!(
                    "| {bytes} | {} | {threads} | {:.0} | {:.0} | {:.0} | {:.2} |",
                    mode.name(),
                    m.rate,
                    m.p50_us,
                    m.p99_us,
                    m.rate / rows[0].rate
                );
            }
        }
    }
}

/// `appenders` threads appending `size`-byte records with `append_wait`.
fn wal(dir: &Path, size: usize, appenders: usize, duration: Duration) -> (Run, f64) {
    let log_dir = dir.join(format!("log-{size}-{appenders}"));
    let wal = Arc::new(Wal::open(FileStorage::new(&log_dir).unwrap(), config()).unwrap().wal);
    let stop = Arc::new(AtomicBool::new(false));
    let kind = RecordType::user(16).unwrap();
    let started = Instant::now();
    let threads: Vec<_> = (0..appenders)
        .map(|_| {
            let (wal, stop) = (wal.clone(), stop.clone());
            std::thread::spawn(move || {
                let record = vec![0x5Au8; size];
                let mut latencies = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    wal.append_wait(kind, &record).unwrap();
                    latencies.push(t.elapsed().as_nanos() as u64);
                }
                latencies
            })
        })
        .collect();
    std::thread::sleep(duration);
    stop.store(true, Ordering::Relaxed);
    let latencies_ns: Vec<u64> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
    finish(wal, &log_dir, latencies_ns, started)
}

/// Closes the log, removes it, and returns the run with the records per write it achieved.
fn finish(
    wal: Arc<Wal<FileStorage>>,
    log_dir: &Path,
    latencies_ns: Vec<u64>,
    started: Instant,
) -> (Run, f64) {
    let elapsed = started.elapsed();
    let stats = wal.stats();
    Arc::into_inner(wal).unwrap().close().unwrap();
    std::fs::remove_dir_all(log_dir).unwrap();
    let per_write = stats.records as f64 / stats.writes.max(1) as f64;
    if std::env::var_os("LUCIOLE_WAL_BENCH_DETAIL").is_some() {
        let writes = stats.writes.max(1);
        eprintln!(
            "    {} writes: write+sync {} µs and gathering {} µs per write",
            stats.writes,
            stats.io_us / writes,
            stats.gather_us / writes
        );
    }
    (Run { ops: latencies_ns.len() as u64, elapsed, latencies_ns }, per_write)
}

/// The tokio runtime of the task rows: `--workers` worker threads (default 2), with the I/O
/// and time drivers a node has (the io_uring floor needs the I/O driver).
fn runtime() -> tokio::runtime::Runtime {
    let args: Vec<String> = std::env::args().collect();
    let workers = args
        .iter()
        .position(|a| a == "--workers")
        .and_then(|i| args.get(i + 1))
        .map_or(2, |w| number(w, "--workers"));
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .unwrap()
}

/// `appenders` tokio tasks (on `--workers` worker threads) appending `size`-byte records and
/// awaiting each: how the node appends.
fn wal_tasks(dir: &Path, size: usize, appenders: usize, duration: Duration) -> (Run, f64) {
    let log_dir = dir.join(format!("tasks-{size}-{appenders}"));
    let wal = Arc::new(Wal::open(FileStorage::new(&log_dir).unwrap(), config()).unwrap().wal);
    let runtime = runtime();
    let stop = Arc::new(AtomicBool::new(false));
    let kind = RecordType::user(16).unwrap();
    let started = Instant::now();
    let tasks: Vec<_> = (0..appenders)
        .map(|_| {
            let (wal, stop) = (wal.clone(), stop.clone());
            runtime.spawn(async move {
                let record = vec![0x5Au8; size];
                let mut latencies = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    wal.append_async(kind, &record).await.unwrap();
                    latencies.push(t.elapsed().as_nanos() as u64);
                }
                latencies
            })
        })
        .collect();
    std::thread::sleep(duration);
    stop.store(true, Ordering::Relaxed);
    let latencies_ns: Vec<u64> =
        runtime.block_on(async { futures_join(tasks).await }).into_iter().flatten().collect();
    finish(wal, &log_dir, latencies_ns, started)
}

async fn futures_join(tasks: Vec<tokio::task::JoinHandle<Vec<u64>>>) -> Vec<Vec<u64>> {
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

/// Writes `n` records of `size` bytes (without waiting for each), then times reopening.
fn recovery(dir: &Path, size: usize, n: u64) -> (Duration, u64, u64) {
    let log_dir = dir.join(format!("recover-{size}"));
    let config = config();
    {
        let wal = Wal::open(FileStorage::new(&log_dir).unwrap(), config.clone()).unwrap().wal;
        let kind = RecordType::user(16).unwrap();
        let record = vec![0x3Cu8; size];
        let mut last = None;
        for _ in 0..n {
            last = Some(wal.append(kind, &record).unwrap());
        }
        last.unwrap().wait().unwrap();
        wal.close().unwrap();
    }
    let started = Instant::now();
    let opened = Wal::open(FileStorage::new(&log_dir).unwrap(), config).unwrap();
    let elapsed = started.elapsed();
    assert_eq!(opened.records.len() as u64, n);
    let bytes = opened.report.bytes;
    drop(opened);
    std::fs::remove_dir_all(&log_dir).unwrap();
    (elapsed, n, bytes)
}

const HELP: &str = "\
The write-ahead log beside the raw disk, and recovery speed.

usage: cargo bench -p luciole-wal --bench wal -- [OPTIONS]

Every figure is printed beside the raw baseline of the same run (one thread: pwrite +
fdatasync per record), as a ratio in the `vs raw` column.

options:
  --quick             0.5 s per row instead of 3 s, 100,000 records for recovery
  --sizes A,B         record sizes in bytes                      [default: 64,256,4096]
  --appenders A,B     appender counts, as threads and as tasks   [default: 1,4,16,64]
  --recovery A,B      record sizes of the recovery rows; '' for none [default: 64,256]
  --runs N            run every row N times, interleaved, and print medians [default: 1]
  --tasks-only        skip the thread rows (for profiling)
  --no-floors         skip the floor rows (after each task row: the same tasks handing raw
                      records to one sync thread that batches all of them, and the same
                      through io_uring; the least an async group commit with one write in
                      flight costs on this machine, with and without a thread hand-off)
  --workers N         tokio worker threads of the task rows      [default: 2]
  --gather US         the log's gather_us_max                    [default: the log's]
  --segment-mib N     the log's segment size in MiB              [default: the log's]
  --raw-modes         only the raw loop's variants: O_DSYNC, O_DIRECT|O_DSYNC, 2 and 4 threads
  -h, --help          this text

environment:
  LUCIOLE_WAL_BENCH_DIR   where to run (default target/wal-bench); removed afterwards
";

/// Flags that take a value, and flags that do not (`--bench` is what cargo passes).
const VALUED: [&str; 7] =
    ["--sizes", "--appenders", "--recovery", "--runs", "--gather", "--segment-mib", "--workers"];
const SWITCHES: [&str; 5] = ["--quick", "--tasks-only", "--no-floors", "--raw-modes", "--bench"];

/// Refuses what is not an option, with the help's pointer; exits for `--help`.
fn check_args(args: &[String]) {
    let mut i = 1;
    while i < args.len() {
        let a = args[i].as_str();
        if a == "-h" || a == "--help" {
            print!("{HELP}");
            std::process::exit(0);
        }
        if VALUED.contains(&a) {
            if i + 1 >= args.len() {
                eprintln!("error: {a} needs a value (see --help)");
                std::process::exit(2);
            }
            // The single numbers, checked before any row runs (the lists are checked as read).
            if ["--runs", "--gather", "--segment-mib", "--workers"].contains(&a) {
                number::<u64>(&args[i + 1], a);
            }
            i += 2;
            continue;
        }
        if !SWITCHES.contains(&a) {
            eprintln!("error: unknown option {a:?} (see --help)");
            std::process::exit(2);
        }
        i += 1;
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    check_args(&args);
    let quick = args.iter().any(|a| a == "--quick");
    let list = |flag: &str, default: &[usize]| -> Vec<usize> {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .map(|v| v.split(',').filter(|x| !x.is_empty()).map(|x| number(x, flag)).collect())
            .unwrap_or_else(|| default.to_vec())
    };
    let sizes = list("--sizes", &[64, 256, 4096]);
    let appender_counts = list("--appenders", &[1, 4, 16, 64]);
    let recovery_sizes = list("--recovery", &[64, 256]);
    let tasks_only = args.iter().any(|a| a == "--tasks-only");
    let floors = !args.iter().any(|a| a == "--no-floors");
    let runs = list("--runs", &[1]).first().copied().unwrap_or(1).max(1);
    let duration = Duration::from_millis(if quick { 500 } else { 3000 });
    let dir = std::env::var_os("LUCIOLE_WAL_BENCH_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/wal-bench"),
        PathBuf::from,
    );
    std::fs::create_dir_all(&dir).unwrap();
    println!(
        "wal bench in {} ({} s per row; each row's median of {runs} run(s), the runs interleaved)",
        dir.display(),
        duration.as_secs_f64()
    );
    println!("guest halt polling: {}\n", halt_polling());
    if args.iter().any(|a| a == "--raw-modes") {
        raw_modes(&dir, &sizes, runs, duration);
        let _ = std::fs::remove_dir(&dir);
        return;
    }
    println!("| record | writer | appends/s | p50 µs | p99 µs | vs raw | records per sync |");
    println!("|---:|---|---:|---:|---:|---:|---:|");
    for &size in &sizes {
        // Row 0 is the raw baseline; then threads and tasks for each appender count.
        let mut rows: Vec<Vec<Measured>> = Vec::new();
        for run in 0..runs {
            let mut measured = vec![Measured::of(raw(&dir, frame_bytes(size), duration), 1.0)];
            for &appenders in &appender_counts {
                let (r, w) =
                    if tasks_only { skipped() } else { wal(&dir, size, appenders, duration) };
                measured.push(Measured::of(r, w));
                let (r, w) = wal_tasks(&dir, size, appenders, duration);
                measured.push(Measured::of(r, w));
                if floors {
                    for uring in [false, true] {
                        let (r, w) = floor(&dir, frame_bytes(size), appenders, duration, uring)
                            .unwrap_or_else(skipped);
                        measured.push(Measured::of(r, w));
                    }
                }
            }
            if runs > 1 {
                eprintln!("  {size} B: run {} of {runs} done", run + 1);
            }
            rows.resize_with(measured.len(), Vec::new);
            for (row, m) in rows.iter_mut().zip(measured) {
                row.push(m);
            }
        }
        let rows: Vec<Measured> = rows.iter().map(|r| Measured::median(r)).collect();
        let base = rows[0].rate;
        let mut names = vec![format!("raw write+fdatasync ({} B)", frame_bytes(size))];
        for &appenders in &appender_counts {
            names.push(format!("log, {appenders} threads"));
            names.push(format!("log, {appenders} tokio tasks"));
            if floors {
                names.push(format!("floor: raw, {appenders} tokio tasks via a sync thread"));
                names.push(format!("floor: raw, {appenders} tokio tasks via io_uring"));
            }
        }
        for (name, m) in names.iter().zip(&rows) {
            println!(
                "| {size} B | {name} | {:.0} | {:.0} | {:.0} | {:.2} | {:.1} |",
                m.rate,
                m.p50_us,
                m.p99_us,
                m.rate / base,
                m.per_write
            );
        }
    }
    println!("\n| recovery | records | bytes read | time | records/s | MB/s |");
    println!("|---|---:|---:|---:|---:|---:|");
    let n = if quick { 100_000 } else { 1_000_000 };
    for &size in &recovery_sizes {
        let (elapsed, records, bytes) = recovery(&dir, size, n);
        println!(
            "| {size} B records | {records} | {bytes} | {:.0} ms | {:.0} | {:.0} |",
            elapsed.as_secs_f64() * 1000.0,
            records as f64 / elapsed.as_secs_f64(),
            bytes as f64 / elapsed.as_secs_f64() / 1e6
        );
    }
    let _ = std::fs::remove_dir(&dir);
}
