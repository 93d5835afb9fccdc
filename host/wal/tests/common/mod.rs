//! What the log tests share: both backends behind one trait, small settings, a tiny executor.

#![allow(dead_code, reason = "each test binary uses part of it")]

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Wake};

use luciole_wal::{FileStorage, MemStorage, RecordType, Storage, WalConfig};

/// A log directory that tests can open logs on and damage by hand.
pub trait Backend {
    type S: Storage + Clone;
    fn storage(&self) -> Self::S;
    fn files(&self) -> Vec<String>;
    fn read_file(&self, name: &str) -> Vec<u8>;
    fn write_file(&self, name: &str, bytes: &[u8]);
    fn remove_file(&self, name: &str);
}

/// A temporary directory on the real file system.
pub struct Files(pub tempfile::TempDir);

impl Files {
    pub fn new() -> Self {
        Files(tempfile::tempdir().expect("temporary directory"))
    }
}

impl Backend for Files {
    type S = FileStorage;
    fn storage(&self) -> FileStorage {
        FileStorage::new(self.0.path()).expect("log directory")
    }
    fn files(&self) -> Vec<String> {
        let mut v = self.storage().list().expect("list");
        v.sort();
        v
    }
    fn read_file(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.0.path().join(name)).expect("read")
    }
    fn write_file(&self, name: &str, bytes: &[u8]) {
        std::fs::write(self.0.path().join(name), bytes).expect("write")
    }
    fn remove_file(&self, name: &str) {
        std::fs::remove_file(self.0.path().join(name)).expect("remove")
    }
}

/// A memory storage.
pub struct Memory(pub MemStorage);

impl Memory {
    pub fn new() -> Self {
        Memory(MemStorage::new())
    }
}

impl Backend for Memory {
    type S = MemStorage;
    fn storage(&self) -> MemStorage {
        self.0.clone()
    }
    fn files(&self) -> Vec<String> {
        self.0.list().expect("list")
    }
    fn read_file(&self, name: &str) -> Vec<u8> {
        self.0.contents(name).expect("file exists")
    }
    fn write_file(&self, name: &str, bytes: &[u8]) {
        if self.0.contents(name).is_none() {
            self.0.create(name, 0).expect("create");
            self.0.sync_dir().expect("sync dir");
        }
        self.0.set_contents(name, bytes.to_vec()).expect("write")
    }
    fn remove_file(&self, name: &str) {
        self.0.remove(name).expect("remove");
        self.0.sync_dir().expect("sync dir");
    }
}

/// Small segments, so a few hundred records cross several of them.
pub fn small() -> WalConfig {
    WalConfig {
        segment_bytes: 4096,
        record_bytes_max: 1024,
        write_bytes_max: 1024,
        queue_bytes_max: 16 << 10,
        gather_us_max: 200,
    }
}

pub fn user(t: u8) -> RecordType {
    RecordType::user(t).expect("a user type")
}

/// The payload of record `i` of writer `w`: recognisable, and of varying length.
pub fn payload(w: u32, i: u32) -> Vec<u8> {
    let len = 8 + ((w as usize * 31 + i as usize * 17) % 120);
    let mut p = Vec::with_capacity(len);
    p.extend_from_slice(&w.to_le_bytes());
    p.extend_from_slice(&i.to_le_bytes());
    while p.len() < len {
        p.push((p.len() as u32 ^ w ^ i) as u8);
    }
    p
}

/// Runs a future to completion on this thread.
pub fn block_on<F: Future>(f: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Arc::new(Unpark(std::thread::current())).into();
    let mut cx = Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

/// Defines each listed test once per backend: `file::name` and `memory::name`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod file {
            $( #[test] fn $name() { super::$name(&super::common::Files::new()) } )*
        }
        mod memory {
            $( #[test] fn $name() { super::$name(&super::common::Memory::new()) } )*
        }
    };
}
