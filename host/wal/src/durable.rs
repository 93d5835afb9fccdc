//! Durability notices: which LSNs are synced, for appenders that wait by blocking or by
//! `.await`.
//!
//! Blocked threads wait on a condition variable. Async tasks are woken in a chain: the writer
//! wakes one, and its completed [`Pending`] wakes the others from inside the runtime (see
//! [`Durability::wake_ready`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use luciole_proto::wal::Lsn;

use crate::WalError;

/// The synced frontier of one log, shared by the writer and every [`Pending`].
#[derive(Debug)]
pub(crate) struct Durability {
    state: Mutex<State>,
    changed: Condvar,
    /// `ready` is not empty.
    has_ready: AtomicBool,
}

#[derive(Debug)]
struct State {
    /// Every record at or below it is synced.
    durable: Lsn,
    failed: Option<WalError>,
    wakers: Vec<(Lsn, Waker)>,
    /// Wakers of synced records not woken yet: the first task woken wakes the rest.
    ready: Vec<Waker>,
}

impl Durability {
    pub(crate) fn new(durable: Lsn) -> Self {
        Self {
            state: Mutex::new(State {
                durable,
                failed: None,
                wakers: Vec::new(),
                ready: Vec::new(),
            }),
            has_ready: AtomicBool::new(false),
            changed: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn durable(&self) -> Lsn {
        self.lock().durable
    }

    /// Records up to `lsn` are synced.
    pub(crate) fn advance(&self, lsn: Lsn) {
        let mut s = self.lock();
        if s.failed.is_some() {
            return; // nothing becomes durable after a failure
        }
        s.durable = s.durable.max(lsn);
        let durable = s.durable;
        let State { wakers, ready, .. } = &mut *s;
        let mut i = 0;
        while i < wakers.len() {
            if wakers[i].0 <= durable {
                ready.push(wakers.swap_remove(i).1);
            } else {
                i += 1;
            }
        }
        let first = s.ready.pop();
        self.has_ready.store(!s.ready.is_empty(), Ordering::Release);
        drop(s);
        self.changed.notify_all();
        if let Some(w) = first {
            w.wake();
        }
    }

    pub(crate) fn has_ready(&self) -> bool {
        self.has_ready.load(Ordering::Acquire)
    }

    /// Wakes the tasks whose records are synced and that are not woken yet.
    ///
    /// Waking a task from outside its runtime is slow (a cross-thread hand-off each), so
    /// [`Durability::advance`] wakes one task itself and leaves the rest to it: a completed
    /// [`Pending`] wakes them from inside the runtime. The writer calls this too, before it
    /// blocks or writes again, in case that task never polls its `Pending`.
    pub(crate) fn wake_ready(&self) {
        if !self.has_ready.load(Ordering::Acquire) {
            return;
        }
        let ready = {
            let mut s = self.lock();
            self.has_ready.store(false, Ordering::Release);
            std::mem::take(&mut s.ready)
        };
        ready.into_iter().for_each(Waker::wake);
    }

    /// The log failed: nothing more becomes durable.
    pub(crate) fn fail(&self, error: WalError) {
        let mut s = self.lock();
        s.failed.get_or_insert(error);
        let wakers = std::mem::take(&mut s.wakers);
        let ready = std::mem::take(&mut s.ready);
        self.has_ready.store(false, Ordering::Release);
        drop(s);
        self.changed.notify_all();
        wakers.into_iter().map(|(_, w)| w).chain(ready).for_each(Waker::wake);
    }

    fn check(s: &State, lsn: Lsn) -> Option<Result<Lsn, WalError>> {
        if lsn <= s.durable { Some(Ok(lsn)) } else { s.failed.clone().map(Err) }
    }

    fn wait(&self, lsn: Lsn) -> Result<Lsn, WalError> {
        let mut s = self.lock();
        loop {
            if let Some(done) = Self::check(&s, lsn) {
                return done;
            }
            s = self.changed.wait(s).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Blocks until the durable frontier moves past `seen`; fails once the log failed.
    pub(crate) fn wait_past(&self, seen: Lsn) -> Result<(), WalError> {
        let mut s = self.lock();
        loop {
            if s.durable > seen {
                return Ok(());
            }
            if let Some(e) = &s.failed {
                return Err(e.clone());
            }
            s = self.changed.wait(s).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn poll(&self, lsn: Lsn, cx: &mut Context<'_>) -> Poll<Result<Lsn, WalError>> {
        let mut s = self.lock();
        if let Some(done) = Self::check(&s, lsn) {
            drop(s);
            self.wake_ready();
            return Poll::Ready(done);
        }
        if !s.wakers.iter().any(|(l, w)| *l == lsn && w.will_wake(cx.waker())) {
            s.wakers.push((lsn, cx.waker().clone()));
        }
        Poll::Pending
    }
}

/// An appended record on its way to the disk. [`Pending::wait`] (or `.await`) returns once it
/// is synced — only then may anyone act on it — or with the error that stopped the log.
///
/// After a sync the writer wakes one waiting task, and that task's `Pending`, once polled to
/// completion or dropped, wakes the others from inside the runtime. A task that stops polling
/// its `Pending` delays the others by at most 50 µs: the writer wakes whatever is left before
/// it writes again, gathers longer, or goes idle.
#[derive(Debug)]
#[must_use = "a record is durable only once its Pending completes"]
pub struct Pending {
    lsn: Lsn,
    durability: Arc<Durability>,
}

impl Pending {
    pub(crate) fn new(lsn: Lsn, durability: Arc<Durability>) -> Self {
        Self { lsn, durability }
    }

    /// The record's LSN.
    pub fn lsn(&self) -> Lsn {
        self.lsn
    }

    /// Whether the record is synced already.
    pub fn is_durable(&self) -> bool {
        self.durability.durable() >= self.lsn
    }

    /// Blocks until the record is synced; returns its LSN.
    pub fn wait(self) -> Result<Lsn, WalError> {
        self.durability.wait(self.lsn)
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.durability.wake_ready();
    }
}

impl Future for Pending {
    type Output = Result<Lsn, WalError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.durability.poll(self.lsn, cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::task::Wake;

    /// A waker that counts its wakes.
    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// A task's waker, and the count of its wakes.
    type Task = (Arc<Count>, Waker);

    fn counting() -> Task {
        let c = Arc::new(Count(AtomicUsize::new(0)));
        (c.clone(), Waker::from(c))
    }

    fn woken(c: &Count) -> usize {
        c.0.load(Ordering::SeqCst)
    }

    fn register(d: &Arc<Durability>, lsn: u64, waker: &Waker) -> Pending {
        let mut p = Pending::new(Lsn(lsn), d.clone());
        let mut cx = Context::from_waker(waker);
        assert!(Pin::new(&mut p).poll(&mut cx).is_pending());
        p
    }

    /// `n` tasks waiting for records 1..=n, each with a counting waker.
    fn waiting(n: u64) -> (Arc<Durability>, Vec<Task>, Vec<Pending>) {
        let d = Arc::new(Durability::new(Lsn(0)));
        let wakers: Vec<_> = (0..n).map(|_| counting()).collect();
        let pending = wakers.iter().zip(1..).map(|((_, w), lsn)| register(&d, lsn, w)).collect();
        (d, wakers, pending)
    }

    #[test]
    fn advancing_wakes_one_task_and_its_completed_record_wakes_the_others() {
        let (d, wakers, mut pending) = waiting(5);
        d.advance(Lsn(5));
        let first: Vec<usize> = wakers.iter().map(|(c, _)| woken(c)).collect();
        assert_eq!(first.iter().sum::<usize>(), 1, "one task woken by the writer: {first:?}");
        let i = first.iter().position(|&n| n == 1).unwrap();
        let mut cx = Context::from_waker(&wakers[i].1);
        assert!(Pin::new(&mut pending[i]).poll(&mut cx).is_ready());
        assert!(wakers.iter().all(|(c, _)| woken(c) == 1), "each task woken once");
    }

    #[test]
    fn tasks_left_to_a_task_that_never_polls_are_woken_by_the_backstop() {
        let (d, wakers, _pending) = waiting(3);
        d.advance(Lsn(3));
        assert_eq!(wakers.iter().map(|(c, _)| woken(c)).sum::<usize>(), 1);
        assert!(d.has_ready());
        d.wake_ready();
        assert!(wakers.iter().all(|(c, _)| woken(c) == 1), "each task woken once");
        assert!(!d.has_ready());
    }

    #[test]
    fn dropping_a_completed_record_wakes_the_others() {
        let (d, wakers, pending) = waiting(3);
        d.advance(Lsn(3));
        drop(pending);
        assert!(wakers.iter().all(|(c, _)| woken(c) == 1), "each task woken once");
    }

    #[test]
    fn a_failure_wakes_every_task() {
        let (d, wakers, _pending) = waiting(3);
        d.advance(Lsn(1));
        d.fail(WalError::Closed);
        assert!(wakers.iter().all(|(c, _)| woken(c) == 1), "each task woken once");
    }
}
