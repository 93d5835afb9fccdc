//! Durability notices: which LSNs are synced, for appenders that wait by blocking or by
//! `.await`.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use luciole_proto::wal::Lsn;

use crate::WalError;

/// The synced frontier of one log, shared by the writer and every [`Pending`].
#[derive(Debug)]
pub(crate) struct Durability {
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Debug)]
struct State {
    /// Every record at or below it is synced.
    durable: Lsn,
    failed: Option<WalError>,
    wakers: Vec<(Lsn, Waker)>,
}

impl Durability {
    pub(crate) fn new(durable: Lsn) -> Self {
        Self {
            state: Mutex::new(State { durable, failed: None, wakers: Vec::new() }),
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
        s.durable = s.durable.max(lsn);
        let durable = s.durable;
        let mut ready = Vec::new();
        s.wakers.retain(|(l, w)| {
            let done = *l <= durable;
            if done {
                ready.push(w.clone());
            }
            !done
        });
        drop(s);
        self.changed.notify_all();
        ready.into_iter().for_each(Waker::wake);
    }

    /// The log failed: nothing more becomes durable.
    pub(crate) fn fail(&self, error: WalError) {
        let mut s = self.lock();
        s.failed.get_or_insert(error);
        let wakers = std::mem::take(&mut s.wakers);
        drop(s);
        self.changed.notify_all();
        wakers.into_iter().for_each(|(_, w)| w.wake());
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

impl Future for Pending {
    type Output = Result<Lsn, WalError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.durability.poll(self.lsn, cx)
    }
}
