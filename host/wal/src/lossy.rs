//! Real files that forget like a power loss, in the spirit of LazyFS: [`LossyFiles::crash`]
//! turns a log directory on disk into what the disk could hold after the power went, so that
//! recovery is tested on the file backend's own files, not only on the memory model.
//!
//! Every write reaches the file at once (reads see it, as they would see the page cache), but
//! the bytes it overwrote are kept until the file is synced. Creations, renames and removals
//! happen at once too, and are kept until the directory is synced (a removed file waits under a
//! hidden name). A crash puts back the overwritten bytes — all of them, or a seeded random part
//! of the sectors — and undoes the directory operations since the last directory sync, newest
//! first; and every handle from before the crash fails from then on, as the crashed process is
//! gone.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use luciole_proto::rand::SplitMix64;

use crate::CrashMode;
use crate::memory::SECTOR_BYTES;
use crate::storage::{FileStorage, SegmentFile, Storage};

/// Prefix of the hidden names removed files wait under until a directory sync.
const GRAVE_PREFIX: &str = ".lossy-removed-";

/// A [`FileStorage`] whose unsynced writes and directory operations a crash undoes. Clones share
/// it.
#[derive(Debug)]
pub struct LossyFiles {
    files: FileStorage,
    state: Arc<Mutex<Lossy>>,
    /// The crash count this handle belongs to.
    generation: u64,
}

impl Clone for LossyFiles {
    /// A handle of the storage as it is now (after the crashes so far).
    fn clone(&self) -> Self {
        let generation = self.lock().generation;
        Self { files: self.files.clone(), state: self.state.clone(), generation }
    }
}

#[derive(Debug, Default)]
struct Lossy {
    generation: u64,
    /// Bytes overwritten since each file's last sync, oldest first: (file, offset, old bytes).
    overwritten: Vec<(u64, Arc<File>, u64, Vec<u8>)>,
    /// Directory operations since the last directory sync, oldest first.
    dir_ops: Vec<DirOp>,
    next_id: AtomicU64,
}

#[derive(Debug)]
enum DirOp {
    Created(String),
    Renamed { from: String, to: String, replaced: Option<String> },
    Removed { name: String, grave: String },
}

impl LossyFiles {
    /// The log in `dir` (created if missing).
    pub fn new(dir: impl AsRef<Path>) -> io::Result<Self> {
        let files = FileStorage::new(dir.as_ref())?;
        Ok(Self { files, state: Arc::default(), generation: 0 })
    }

    fn lock(&self) -> MutexGuard<'_, Lossy> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The state, for an operation of this handle: fails once the storage crashed since.
    fn live(&self) -> io::Result<MutexGuard<'_, Lossy>> {
        let st = self.lock();
        if st.generation == self.generation { Ok(st) } else { Err(crashed()) }
    }

    fn path(&self, name: &str) -> std::path::PathBuf {
        self.files.dir().join(name)
    }

    /// Simulates a power loss: puts back what unsynced writes overwrote (all of it, or for
    /// [`CrashMode::Scramble`] a seeded random part of the sectors) and undoes the directory
    /// operations since the last directory sync. Every handle from before fails from now on.
    /// Returns how many unsynced writes there were.
    pub fn crash(&self, mode: CrashMode) -> io::Result<u64> {
        let mut st = self.lock();
        st.generation += 1;
        let mut rng = match mode {
            CrashMode::LoseUnsynced => None,
            CrashMode::Scramble { seed } => Some(SplitMix64::new(seed)),
        };
        let overwritten = std::mem::take(&mut st.overwritten);
        let writes = overwritten.len() as u64;
        for (_, file, offset, old) in overwritten.iter().rev() {
            let mut at = 0;
            while at < old.len() {
                let end = ((*offset as usize + at) / SECTOR_BYTES + 1) * SECTOR_BYTES;
                let end = (end - *offset as usize).min(old.len());
                // Scramble keeps each new sector with even odds: a torn, reordered write.
                if rng.as_mut().is_none_or(|r| r.next_u64() % 2 == 0) {
                    file.write_all_at(&old[at..end], offset + at as u64)?;
                }
                at = end;
            }
        }
        for op in std::mem::take(&mut st.dir_ops).into_iter().rev() {
            match op {
                DirOp::Created(name) => fs::remove_file(self.path(&name))?,
                DirOp::Renamed { from, to, replaced } => {
                    fs::rename(self.path(&to), self.path(&from))?;
                    if let Some(grave) = replaced {
                        fs::rename(self.path(&grave), self.path(&to))?;
                    }
                }
                DirOp::Removed { name, grave } => fs::rename(self.path(&grave), self.path(&name))?,
            }
        }
        for (_, file, _, _) in &overwritten {
            file.sync_all()?;
        }
        self.files.sync_dir()?;
        Ok(writes)
    }

    fn grave(&self, st: &Lossy) -> String {
        format!("{GRAVE_PREFIX}{}", st.next_id.fetch_add(1, Ordering::Relaxed))
    }
}

/// A segment file of a [`LossyFiles`].
#[derive(Debug)]
pub struct LossyFile {
    file: Arc<File>,
    id: u64,
    state: Arc<Mutex<Lossy>>,
    generation: u64,
}

impl LossyFile {
    fn live(&self) -> io::Result<MutexGuard<'_, Lossy>> {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if st.generation == self.generation { Ok(st) } else { Err(crashed()) }
    }
}

impl SegmentFile for LossyFile {
    fn write_at(&mut self, offset: u64, bytes: &[u8]) -> io::Result<()> {
        let mut st = self.live()?;
        let mut old = vec![0u8; bytes.len()];
        let read = self.file.read_at(&mut old, offset)?;
        old.truncate(read); // past the end there is nothing to put back
        st.overwritten.push((self.id, self.file.clone(), offset, old));
        self.file.write_all_at(bytes, offset)
    }

    fn sync(&mut self) -> io::Result<()> {
        let mut st = self.live()?;
        self.file.sync_data()?;
        let id = self.id;
        st.overwritten.retain(|(f, ..)| *f != id);
        Ok(())
    }
}

impl Storage for LossyFiles {
    type File = LossyFile;
    type Lock = File;

    fn lock(&self) -> io::Result<File> {
        drop(self.live()?);
        self.files.lock()
    }

    fn list(&self) -> io::Result<Vec<String>> {
        drop(self.live()?);
        let mut names = self.files.list()?;
        names.retain(|n| !n.starts_with(GRAVE_PREFIX));
        Ok(names)
    }

    fn read(&self, name: &str) -> io::Result<Vec<u8>> {
        drop(self.live()?);
        self.files.read(name)
    }

    fn create(&self, name: &str, len: u64) -> io::Result<LossyFile> {
        let mut st = self.live()?;
        let file = self.files.create(name, len)?;
        st.dir_ops.push(DirOp::Created(name.to_owned()));
        let id = st.next_id.fetch_add(1, Ordering::Relaxed);
        let generation = self.generation;
        Ok(LossyFile { file: Arc::new(file), id, state: self.state.clone(), generation })
    }

    fn open(&self, name: &str) -> io::Result<LossyFile> {
        let st = self.live()?;
        let file = self.files.open(name)?;
        let id = st.next_id.fetch_add(1, Ordering::Relaxed);
        let generation = self.generation;
        Ok(LossyFile { file: Arc::new(file), id, state: self.state.clone(), generation })
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        let mut st = self.live()?;
        let replaced = if self.path(to).exists() {
            let grave = self.grave(&st);
            fs::hard_link(self.path(to), self.path(&grave))?;
            Some(grave)
        } else {
            None
        };
        self.files.rename(from, to)?;
        st.dir_ops.push(DirOp::Renamed { from: from.to_owned(), to: to.to_owned(), replaced });
        Ok(())
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        let mut st = self.live()?;
        let grave = self.grave(&st);
        fs::rename(self.path(name), self.path(&grave))?;
        st.dir_ops.push(DirOp::Removed { name: name.to_owned(), grave });
        Ok(())
    }

    fn sync_dir(&self) -> io::Result<()> {
        let mut st = self.live()?;
        self.files.sync_dir()?;
        // What was removed is gone for good now.
        for op in std::mem::take(&mut st.dir_ops) {
            match op {
                DirOp::Removed { grave, .. } | DirOp::Renamed { replaced: Some(grave), .. } => {
                    fs::remove_file(self.path(&grave))?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn describe(&self, name: &str) -> String {
        self.files.describe(name)
    }
}

fn crashed() -> io::Error {
    io::Error::other("the storage crashed under this handle")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crash_keeps_what_was_synced_and_undoes_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let s = LossyFiles::new(dir.path()).unwrap();
        let mut kept = s.create("kept", 1024).unwrap();
        kept.write_at(0, b"synced").unwrap();
        kept.sync().unwrap();
        s.sync_dir().unwrap();
        kept.write_at(0, b"UNSYNC").unwrap();
        let mut fresh = s.create("fresh", 16).unwrap();
        fresh.write_at(0, b"x").unwrap();
        fresh.sync().unwrap();
        s.rename("fresh", "renamed").unwrap();
        s.remove("kept").unwrap();
        assert!(!s.list().unwrap().contains(&"kept".to_string()), "removal is visible at once");
        assert_eq!(s.crash(CrashMode::LoseUnsynced).unwrap(), 1);
        assert!(kept.write_at(0, b"late").is_err(), "old handles fail");
        let after = s.clone();
        let mut names = after.list().unwrap();
        names.sort();
        assert_eq!(names, ["kept"], "the creation, rename and removal are undone");
        assert_eq!(&after.read("kept").unwrap()[..6], b"synced");
    }
}
