//! The floors under the log's task rows: the least an async group commit with one write in
//! flight costs on this machine, with nothing of the log in it (no framing, numbering,
//! segments, fail-stop). `tasks` tokio tasks each append a raw record to one shared queue and
//! await a oneshot; the queue is written and synced once every task's record is in it (perfect
//! batching, which no log can know). Two ways to do the write and the sync:
//!
//! - [`thread`]: a sync thread waits on a condition variable, writes with `pwrite`, calls
//!   `fdatasync` and completes the oneshots: the log's shape (two hand-offs between threads
//!   per record: task → sync thread, sync thread → tokio worker).
//! - [`uring`]: the task that completes the batch submits a linked write and `fdatasync` to an
//!   io_uring whose completions signal an eventfd the runtime polls; a task of the runtime
//!   completes the oneshots. No thread of ours between the task and the disk.

use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

/// What the append that fills a batch calls, under the queue's lock.
type Full<T> = Arc<dyn Fn(&mut Queue<T>) + Send + Sync>;

/// Records waiting for the next write, and whatever the way of writing keeps beside them.
struct Queue<T> {
    bytes: Vec<u8>,
    waiters: Vec<oneshot::Sender<()>>,
    io: T,
}

/// What a floor run gives back: every append's latency, the wall time, and the writes made.
pub struct Floor {
    pub latencies_ns: Vec<u64>,
    pub elapsed: Duration,
    pub writes: u64,
}

/// Runs `tasks` appenders of `size`-byte records on `runtime` for `duration`; `full` is called
/// under the queue's lock by the append that fills the batch.
fn appenders<T: Send + 'static>(
    runtime: &tokio::runtime::Runtime,
    queue: &Arc<Mutex<Queue<T>>>,
    full: Full<T>,
    (size, tasks, duration): (usize, usize, Duration),
    stop: &Arc<AtomicBool>,
) -> (Vec<u64>, Duration) {
    let started = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let (queue, stop, full) = (queue.clone(), stop.clone(), full.clone());
            runtime.spawn(async move {
                let record = vec![0x5Au8; size];
                let mut latencies = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    let (done, wait) = oneshot::channel();
                    {
                        let mut q = queue.lock().unwrap();
                        q.bytes.extend_from_slice(&record);
                        q.waiters.push(done);
                        if q.waiters.len() >= tasks {
                            full(&mut q);
                        }
                    }
                    wait.await.unwrap();
                    latencies.push(t.elapsed().as_nanos() as u64);
                }
                latencies
            })
        })
        .collect();
    std::thread::sleep(duration);
    stop.store(true, Ordering::Relaxed);
    let latencies = runtime.block_on(async {
        let mut all = Vec::new();
        for h in handles {
            all.extend(h.await.unwrap());
        }
        all
    });
    (latencies, started.elapsed())
}

/// The sync thread's floor (see the module's docs). `file` is preallocated to `len` bytes.
pub fn thread(
    runtime: &tokio::runtime::Runtime,
    (file, len): (File, u64),
    size: usize,
    tasks: usize,
    duration: Duration,
) -> Floor {
    let queue = Arc::new(Mutex::new(Queue { bytes: Vec::new(), waiters: Vec::new(), io: () }));
    let ready = Arc::new(Condvar::new());
    let stop = Arc::new(AtomicBool::new(false));
    let notify = ready.clone();
    let full = Arc::new(move |_: &mut Queue<()>| notify.notify_one());
    let syncer = {
        let (queue, stop) = (queue.clone(), stop.clone());
        std::thread::spawn(move || {
            let (mut offset, mut writes, mut batch) = (0u64, 0u64, Vec::new());
            loop {
                let waiters = {
                    let mut q = queue.lock().unwrap();
                    while q.waiters.len() < tasks && !stop.load(Ordering::Relaxed) {
                        q = ready.wait_timeout(q, Duration::from_millis(1)).unwrap().0;
                    }
                    if q.waiters.is_empty() {
                        return writes;
                    }
                    std::mem::swap(&mut batch, &mut q.bytes);
                    std::mem::take(&mut q.waiters)
                };
                if offset + batch.len() as u64 > len {
                    offset = 0;
                }
                file.write_all_at(&batch, offset).unwrap();
                file.sync_data().unwrap();
                offset += batch.len() as u64;
                batch.clear();
                writes += 1;
                for w in waiters {
                    let _ = w.send(());
                }
            }
        })
    };
    let (latencies_ns, elapsed) = appenders(runtime, &queue, full, (size, tasks, duration), &stop);
    Floor { latencies_ns, elapsed, writes: syncer.join().unwrap() }
}

/// The io_uring side of a queue: the ring, the file, and the batch being written.
struct Ring {
    ring: io_uring::IoUring,
    fd: i32,
    len: u64,
    offset: u64,
    writes: u64,
    /// Records per batch: the number of tasks.
    batch: usize,
    /// The batch whose write and sync are in the ring (its bytes must live until they end).
    in_flight: Option<(Vec<u8>, Vec<oneshot::Sender<()>>)>,
}

/// Submits the queue as one write linked to an `fdatasync`, unless a batch is in flight.
fn submit(q: &mut Queue<Ring>) {
    use io_uring::{opcode, squeue, types};
    if q.io.in_flight.is_some() || q.waiters.is_empty() {
        return;
    }
    let batch = std::mem::take(&mut q.bytes);
    let r = &mut q.io;
    if r.offset + batch.len() as u64 > r.len {
        r.offset = 0;
    }
    let write = opcode::Write::new(types::Fd(r.fd), batch.as_ptr(), batch.len() as u32)
        .offset(r.offset)
        .build()
        .flags(squeue::Flags::IO_LINK)
        .user_data(1);
    let sync =
        opcode::Fsync::new(types::Fd(r.fd)).flags(types::FsyncFlags::DATASYNC).build().user_data(2);
    // SAFETY: the batch's bytes are kept in `in_flight` until the sync's completion is reaped
    // (and the ring outlives every submission: `uring` waits for the last batch).
    unsafe {
        r.ring.submission().push(&write).unwrap();
        r.ring.submission().push(&sync).unwrap();
    }
    r.ring.submit().unwrap();
    r.offset += batch.len() as u64;
    r.writes += 1;
    r.in_flight = Some((batch, std::mem::take(&mut q.waiters)));
}

/// The io_uring floor (see the module's docs); `None` where io_uring is unavailable (old
/// kernels, or a container whose seccomp profile forbids it).
pub fn uring(
    runtime: &tokio::runtime::Runtime,
    (file, len): (File, u64),
    size: usize,
    tasks: usize,
    duration: Duration,
) -> Option<Floor> {
    let ring = io_uring::IoUring::new(8).ok()?;
    // SAFETY: eventfd returns a new descriptor or -1, checked before it is owned.
    let event = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    if event < 0 {
        return None;
    }
    // SAFETY: a fresh descriptor, owned by nothing else.
    let event = unsafe { OwnedFd::from_raw_fd(event) };
    ring.submitter().register_eventfd(event.as_raw_fd()).ok()?;
    let fd = file.as_raw_fd();
    let io = Ring { ring, fd, len, offset: 0, writes: 0, batch: tasks, in_flight: None };
    let queue = Arc::new(Mutex::new(Queue { bytes: Vec::new(), waiters: Vec::new(), io }));
    let stop = Arc::new(AtomicBool::new(false));
    let reaper = {
        let (queue, stop) = (queue.clone(), stop.clone());
        let _guard = runtime.enter();
        // SAFETY: `event` is an owned, valid descriptor that nothing else closes or replaces.
        let event = unsafe { tokio::io::unix::AsyncFd::register(event) }.ok()?;
        runtime.spawn(async move { reap(&event, &queue, &stop).await })
    };
    let (latencies_ns, elapsed) =
        appenders(runtime, &queue, Arc::new(submit), (size, tasks, duration), &stop);
    runtime.block_on(reaper).unwrap();
    let writes = queue.lock().unwrap().io.writes;
    drop(file);
    Some(Floor { latencies_ns, elapsed, writes })
}

/// Completes each batch once its sync's completion arrives and submits the next one if it is
/// full (or, once stopping, whatever is queued); returns when stopped with nothing in flight.
async fn reap(
    event: &tokio::io::unix::AsyncFd<OwnedFd>,
    queue: &Mutex<Queue<Ring>>,
    stop: &AtomicBool,
) {
    let mut count = [0u8; 8];
    loop {
        let ready = tokio::time::timeout(Duration::from_millis(2), event.readable()).await;
        if let Ok(guard) = ready {
            let mut guard = guard.unwrap();
            // SAFETY: reads 8 bytes into an 8-byte buffer from a non-blocking eventfd.
            unsafe { libc::read(event.as_raw_fd(), count.as_mut_ptr().cast(), 8) };
            guard.clear_ready();
        }
        let mut q = queue.lock().unwrap();
        let mut synced = false;
        for c in q.io.ring.completion() {
            assert!(c.result() >= 0, "io_uring write or sync failed: {}", c.result());
            synced |= c.user_data() == 2;
        }
        if synced {
            let (_, waiters) = q.io.in_flight.take().unwrap();
            for w in waiters {
                let _ = w.send(());
            }
        }
        let stopping = stop.load(Ordering::Relaxed);
        if stopping || q.waiters.len() >= q.io.batch {
            submit(&mut q);
        }
        if stopping && q.io.in_flight.is_none() && q.waiters.is_empty() {
            return;
        }
    }
}
