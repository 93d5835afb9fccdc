//! A storage in memory that models a power loss: [`MemStorage::crash`] keeps what was synced
//! and a seeded random part of what was not.

use std::collections::BTreeMap;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use luciole_proto::rand::SplitMix64;

use crate::storage::{SegmentFile, Storage};

/// Granularity at which a crash keeps or loses unsynced bytes (a disk sector).
pub const SECTOR_BYTES: usize = 512;

/// A directory of files in memory. Clones share it.
///
/// Every write is remembered until synced. [`MemStorage::crash`] turns the storage into what a
/// disk could hold after a power loss, and makes every file handle and every clone from before
/// the crash fail (but the one that crashed it), so the crashed log can neither write nor
/// rename, remove or create anything any more: after a power loss its process is gone.
#[derive(Debug, Default)]
pub struct MemStorage {
    disk: Arc<Mutex<Disk>>,
    /// Signalled when syncs are released or the storage crashes.
    released: Arc<Condvar>,
    /// The crash count this handle belongs to: its directory operations fail after a later
    /// crash.
    generation: AtomicU64,
}

impl Clone for MemStorage {
    /// A handle of the storage as it is now (after the crashes so far).
    fn clone(&self) -> Self {
        let generation = self.disk().generation;
        self.handle(generation)
    }
}

#[derive(Debug, Default)]
struct Disk {
    /// Bumped by each crash; handles from an older generation fail.
    generation: u64,
    /// While set, file syncs wait (so a test can crash with a write in flight)...
    syncs_held: bool,
    /// ...except this many, which go through.
    syncs_released: u64,
    names: BTreeMap<String, u64>,
    durable_names: BTreeMap<String, u64>,
    files: BTreeMap<u64, FileData>,
    next_inode: u64,
    /// The crash count of the log holding the directory, if one does: a crash (the holder's
    /// process gone) frees it.
    locked: Option<u64>,
}

/// A [`MemStorage`] directory held by one log; dropping it frees the directory.
#[derive(Debug)]
pub struct MemLock {
    disk: Arc<Mutex<Disk>>,
    generation: u64,
}

impl Drop for MemLock {
    fn drop(&mut self) {
        let mut disk = self.disk.lock().unwrap_or_else(|e| e.into_inner());
        if disk.locked == Some(self.generation) {
            disk.locked = None;
        }
    }
}

#[derive(Debug, Default, Clone)]
struct FileData {
    /// What reads see (the page cache).
    current: Vec<u8>,
    /// What survives a crash.
    durable: Vec<u8>,
    /// Writes since the last sync: offset and length.
    unsynced: Vec<(u64, usize)>,
}

/// How a crash treats unsynced data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashMode {
    /// Every unsynced byte is lost.
    LoseUnsynced,
    /// Each unsynced sector is kept or lost at random (seeded), and one kept sector may be cut
    /// short: writes torn, persisted out of order.
    Scramble {
        /// Seed of the choices.
        seed: u64,
    },
}

impl MemStorage {
    /// An empty directory.
    pub fn new() -> Self {
        Self::default()
    }

    /// Another handle, of crash count `generation`.
    fn handle(&self, generation: u64) -> Self {
        Self {
            disk: self.disk.clone(),
            released: self.released.clone(),
            generation: AtomicU64::new(generation),
        }
    }

    fn disk(&self) -> MutexGuard<'_, Disk> {
        self.disk.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The disk, for a directory operation: fails when the storage crashed since this handle
    /// was made.
    fn live_disk(&self) -> io::Result<MutexGuard<'_, Disk>> {
        let disk = self.disk();
        if disk.generation == self.generation.load(Ordering::Relaxed) {
            Ok(disk)
        } else {
            Err(crashed())
        }
    }

    /// While `hold` is set, every file sync waits: writes reach the storage but stay unsynced,
    /// so that a crash can catch a write in flight. A crash releases the waiting syncs (they
    /// fail).
    pub fn hold_syncs(&self, hold: bool) {
        let mut disk = self.disk();
        disk.syncs_held = hold;
        disk.syncs_released = 0;
        self.released.notify_all();
    }

    /// While syncs are held, lets `n` more of them through.
    pub fn release_syncs(&self, n: u64) {
        self.disk().syncs_released += n;
        self.released.notify_all();
    }

    /// Bytes written and not yet synced, over all files.
    pub fn unsynced_bytes(&self) -> usize {
        self.disk().files.values().flat_map(|f| f.unsynced.iter().map(|&(_, n)| n)).sum()
    }

    /// Simulates a power loss and a reboot: names not made durable by a directory sync revert,
    /// unsynced data is lost or kept as `mode` says, and every open file handle fails from now
    /// on. Returns how many unsynced writes there were.
    pub fn crash(&self, mode: CrashMode) -> u64 {
        let mut disk = self.disk();
        disk.generation += 1;
        self.generation.store(disk.generation, Ordering::Relaxed);
        disk.syncs_held = false;
        self.released.notify_all();
        disk.names = disk.durable_names.clone();
        let mut rng = match mode {
            CrashMode::LoseUnsynced => None,
            CrashMode::Scramble { seed } => Some(SplitMix64::new(seed)),
        };
        let mut lost = 0;
        let live: Vec<u64> = disk.names.values().copied().collect();
        disk.files.retain(|inode, _| live.contains(inode));
        for file in disk.files.values_mut() {
            lost += file.unsynced.len() as u64;
            let mut image = file.durable.clone();
            if let Some(rng) = rng.as_mut() {
                let tear = rng.next_u64() % 2 == 0;
                let mut torn = false;
                for &(offset, len) in &file.unsynced {
                    let (start, end) = (offset as usize, offset as usize + len);
                    let mut s = start;
                    while s < end {
                        let e = ((s / SECTOR_BYTES + 1) * SECTOR_BYTES).min(end);
                        if rng.next_u64() % 2 == 0 {
                            let cut = if tear && !torn && rng.next_u64() % 4 == 0 {
                                torn = true;
                                s + (rng.next_u64() as usize % (e - s))
                            } else {
                                e
                            };
                            image[s..cut].copy_from_slice(&file.current[s..cut]);
                        }
                        s = e;
                    }
                }
            }
            file.current = image.clone();
            file.durable = image;
            file.unsynced.clear();
        }
        lost
    }

    /// The current content of `name`, for tests.
    pub fn contents(&self, name: &str) -> Option<Vec<u8>> {
        let disk = self.disk();
        let inode = disk.names.get(name)?;
        Some(disk.files[inode].current.clone())
    }

    /// Replaces the content of `name` (durably), for tests that damage a log.
    pub fn set_contents(&self, name: &str, bytes: Vec<u8>) -> io::Result<()> {
        let mut disk = self.disk();
        let inode = *disk.names.get(name).ok_or_else(|| not_found(name))?;
        let file = disk.files.get_mut(&inode).expect("named files exist");
        file.current = bytes.clone();
        file.durable = bytes;
        Ok(())
    }
}

fn not_found(name: &str) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("{name}: no such file"))
}

fn crashed() -> io::Error {
    io::Error::other("the storage crashed under this handle")
}

impl Storage for MemStorage {
    type File = MemFile;
    type Lock = MemLock;

    fn lock(&self) -> io::Result<MemLock> {
        let mut disk = self.live_disk()?;
        let generation = disk.generation;
        if disk.locked == Some(generation) {
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                "in use by another log on this storage",
            ));
        }
        disk.locked = Some(generation);
        Ok(MemLock { disk: self.disk.clone(), generation })
    }

    fn list(&self) -> io::Result<Vec<String>> {
        Ok(self.live_disk()?.names.keys().cloned().collect())
    }

    fn read(&self, name: &str) -> io::Result<Vec<u8>> {
        drop(self.live_disk()?);
        self.contents(name).ok_or_else(|| not_found(name))
    }

    fn create(&self, name: &str, len: u64) -> io::Result<MemFile> {
        let mut disk = self.live_disk()?;
        if disk.names.contains_key(name) {
            return Err(io::Error::new(io::ErrorKind::AlreadyExists, name.to_owned()));
        }
        let inode = disk.next_inode;
        disk.next_inode += 1;
        let zeros = vec![0; len as usize];
        disk.files.insert(
            inode,
            FileData { current: zeros.clone(), durable: zeros, unsynced: Vec::new() },
        );
        disk.names.insert(name.to_owned(), inode);
        Ok(MemFile { storage: self.handle(disk.generation), inode, generation: disk.generation })
    }

    fn open(&self, name: &str) -> io::Result<MemFile> {
        let disk = self.live_disk()?;
        let inode = *disk.names.get(name).ok_or_else(|| not_found(name))?;
        Ok(MemFile { storage: self.handle(disk.generation), inode, generation: disk.generation })
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        let mut disk = self.live_disk()?;
        let inode = disk.names.remove(from).ok_or_else(|| not_found(from))?;
        disk.names.insert(to.to_owned(), inode);
        Ok(())
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        let mut disk = self.live_disk()?;
        disk.names.remove(name).ok_or_else(|| not_found(name))?;
        Ok(())
    }

    fn sync_dir(&self) -> io::Result<()> {
        let mut disk = self.live_disk()?;
        disk.durable_names = disk.names.clone();
        let live: Vec<u64> = disk.names.values().copied().collect();
        // Unnamed files are gone for good once the directory is synced.
        disk.files.retain(|inode, _| live.contains(inode));
        Ok(())
    }

    fn describe(&self, name: &str) -> String {
        format!("mem:{name}")
    }
}

/// A file of a [`MemStorage`].
#[derive(Debug)]
pub struct MemFile {
    storage: MemStorage,
    inode: u64,
    generation: u64,
}

impl MemFile {
    fn with<T>(&self, f: impl FnOnce(&mut FileData) -> io::Result<T>) -> io::Result<T> {
        let mut disk = self.storage.disk();
        if disk.generation != self.generation {
            return Err(crashed());
        }
        let file = disk.files.get_mut(&self.inode).ok_or_else(crashed)?;
        f(file)
    }
}

impl SegmentFile for MemFile {
    fn write_at(&mut self, offset: u64, bytes: &[u8]) -> io::Result<()> {
        self.with(|file| {
            let start = offset as usize;
            let end = start + bytes.len();
            if end > file.current.len() {
                file.current.resize(end, 0);
                file.durable.resize(file.durable.len().max(end), 0);
            }
            file.current[start..end].copy_from_slice(bytes);
            file.unsynced.push((offset, bytes.len()));
            Ok(())
        })
    }

    fn sync(&mut self) -> io::Result<()> {
        let mut disk = self.storage.disk();
        while disk.syncs_held && disk.syncs_released == 0 && disk.generation == self.generation {
            disk = self.storage.released.wait(disk).unwrap_or_else(|e| e.into_inner());
        }
        if disk.syncs_held && disk.generation == self.generation {
            disk.syncs_released -= 1;
        }
        drop(disk);
        self.with(|file| {
            for (offset, len) in file.unsynced.drain(..) {
                let range = offset as usize..offset as usize + len;
                file.durable[range.clone()].copy_from_slice(&file.current[range]);
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a model test caught once in about twenty runs: a log whose storage lost power went
    /// on renaming by name while it shut down, and `a.tmp` by then named an older, durable file
    /// of zeros, not the one it had written and synced a header to.
    #[test]
    fn a_handle_from_before_a_crash_can_change_nothing_in_the_directory() {
        let machine = MemStorage::new();
        let log = machine.clone();
        let stale = log.create("a.tmp", 8).unwrap();
        log.sync_dir().unwrap();
        log.remove("a.tmp").unwrap();
        let mut fresh = log.create("a.tmp", 8).unwrap();
        fresh.write_at(0, b"HEADER!!").unwrap();
        fresh.sync().unwrap();
        drop(stale);
        machine.crash(CrashMode::LoseUnsynced);
        // The directory is back to its durable state: `a.tmp` is the older file again.
        assert_eq!(machine.contents("a.tmp"), Some(vec![0; 8]));
        for refused in [
            log.rename("a.tmp", "a"),
            log.remove("a.tmp"),
            log.sync_dir(),
            log.create("b", 1).map(drop),
            log.open("a.tmp").map(drop),
            log.list().map(drop),
            log.read("a.tmp").map(drop),
        ] {
            assert!(refused.is_err(), "a pre-crash handle was obeyed");
        }
        assert_eq!(machine.list().unwrap(), vec!["a.tmp".to_owned()]);
        // The machine that crashed, and handles made after, work.
        let after = machine.clone();
        after.rename("a.tmp", "a").unwrap();
        after.sync_dir().unwrap();
        assert_eq!(machine.list().unwrap(), vec!["a".to_owned()]);
    }
}
