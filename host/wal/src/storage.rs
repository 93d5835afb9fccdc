//! Where segments live: the [`Storage`] a log runs on, and the file backend.
//!
//! The log needs few operations, each with the durability it promises spelled out, so that the
//! memory backend ([`crate::MemStorage`]) can model a crash faithfully: what was synced
//! survives, what was not may be lost, in part, in any order.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// A directory of segment files.
pub trait Storage: Send + Sync + 'static {
    /// A file open for writing.
    type File: SegmentFile;
    /// Proof of exclusive ownership of the directory, held for the life of a log.
    type Lock: Send + Sync + 'static;

    /// Takes the directory for one log: fails (kind `WouldBlock`, naming the holder where it
    /// can) while another log — of this process or another — holds it.
    fn lock(&self) -> io::Result<Self::Lock>;
    /// Names of the files in the directory, in no particular order.
    fn list(&self) -> io::Result<Vec<String>>;
    /// The whole content of `name`.
    fn read(&self, name: &str) -> io::Result<Vec<u8>>;
    /// The whole content of `name` into `buf` (replacing what it held), reusing its memory.
    fn read_into(&self, name: &str, buf: &mut Vec<u8>) -> io::Result<()> {
        *buf = self.read(name)?;
        Ok(())
    }
    /// Creates `name` (which must not exist) as `len` zero bytes whose data and size are
    /// durable on return; the *name* is durable only after [`Storage::sync_dir`].
    fn create(&self, name: &str, len: u64) -> io::Result<Self::File>;
    /// Opens `name` for writing.
    fn open(&self, name: &str) -> io::Result<Self::File>;
    /// Renames `from` to `to`; durable after [`Storage::sync_dir`].
    fn rename(&self, from: &str, to: &str) -> io::Result<()>;
    /// Removes `name`; durable after [`Storage::sync_dir`].
    fn remove(&self, name: &str) -> io::Result<()>;
    /// Makes every creation, rename and removal so far durable (fsync of the directory).
    fn sync_dir(&self) -> io::Result<()>;
    /// How to name `name` in an error message (a path, for files).
    fn describe(&self, name: &str) -> String;
}

/// One segment file, open for writing.
pub trait SegmentFile: Send + 'static {
    /// Writes all of `bytes` at `offset`. Not durable until [`SegmentFile::sync`].
    fn write_at(&mut self, offset: u64, bytes: &[u8]) -> io::Result<()>;
    /// Makes every write so far durable (`fdatasync`). After an error, what reached the disk is
    /// unknown: the log stops and must be reopened.
    fn sync(&mut self) -> io::Result<()>;
}

/// Segments as files in a directory.
#[derive(Debug, Clone)]
pub struct FileStorage {
    dir: PathBuf,
}

impl FileStorage {
    /// The log in `dir`, created (with its parents) if missing; a directory it creates is
    /// made durable in its parent.
    pub fn new(dir: impl Into<PathBuf>) -> io::Result<Self> {
        let dir = dir.into();
        if !dir.is_dir() {
            fs::create_dir_all(&dir)?;
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                File::open(parent)?.sync_all()?;
            }
        }
        Ok(Self { dir })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Zeros written per call when preallocating.
const ZEROS_CHUNK_BYTES: usize = 1 << 20;

/// The lock file of a log directory: `flock`ed for the life of a log, holding the owner's
/// process id for the error message of the next one.
pub const LOCK_FILE: &str = "LOCK";

impl Storage for FileStorage {
    type File = File;
    type Lock = File;

    fn lock(&self) -> io::Result<File> {
        let path = self.dir.join(LOCK_FILE);
        let file =
            OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path)?;
        // An open file description's lock: a second open in this process conflicts too.
        match file.try_lock() {
            Ok(()) => {
                file.set_len(0)?;
                file.write_all_at(format!("{}\n", std::process::id()).as_bytes(), 0)?;
                Ok(file)
            }
            Err(fs::TryLockError::WouldBlock) => {
                let holder = fs::read_to_string(&path).unwrap_or_default();
                let holder = holder.trim();
                let who = if holder.is_empty() {
                    "another log".to_string()
                } else if holder == std::process::id().to_string() {
                    format!("another log of this process ({holder})")
                } else {
                    format!("process {holder}")
                };
                Err(io::Error::new(io::ErrorKind::WouldBlock, format!("in use by {who}")))
            }
            Err(fs::TryLockError::Error(e)) => Err(e),
        }
    }

    fn list(&self) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            if let Some(name) = entry?.file_name().to_str() {
                names.push(name.to_owned());
            }
        }
        Ok(names)
    }

    fn read(&self, name: &str) -> io::Result<Vec<u8>> {
        fs::read(self.dir.join(name))
    }

    fn read_into(&self, name: &str, buf: &mut Vec<u8>) -> io::Result<()> {
        buf.clear();
        File::open(self.dir.join(name))?.read_to_end(buf)?;
        Ok(())
    }

    fn create(&self, name: &str, len: u64) -> io::Result<File> {
        let path = self.dir.join(name);
        let mut file = OpenOptions::new().read(true).write(true).create_new(true).open(&path)?;
        let filled = fill_zeros(&mut file, len);
        if filled.is_err() {
            // A full disk leaves no half-made file behind to collide with the next try.
            let _ = fs::remove_file(&path);
        }
        filled?;
        Ok(file)
    }

    fn open(&self, name: &str) -> io::Result<File> {
        OpenOptions::new().read(true).write(true).open(self.dir.join(name))
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        fs::rename(self.dir.join(from), self.dir.join(to))
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        fs::remove_file(self.dir.join(name))
    }

    fn sync_dir(&self) -> io::Result<()> {
        File::open(&self.dir)?.sync_all()
    }

    fn describe(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }
}

/// Fills a new file with `len` zero bytes and syncs it. Written zeros, not a sparse file or
/// fallocate: overwriting allocated, written blocks leaves fdatasync only data to flush, no
/// extent changes.
fn fill_zeros(file: &mut File, len: u64) -> io::Result<()> {
    let zeros = vec![0u8; ZEROS_CHUNK_BYTES];
    let mut left = len;
    while left > 0 {
        let n = left.min(ZEROS_CHUNK_BYTES as u64) as usize;
        file.write_all(&zeros[..n])?;
        left -= n as u64;
    }
    file.sync_all()
}

impl SegmentFile for File {
    fn write_at(&mut self, offset: u64, bytes: &[u8]) -> io::Result<()> {
        FileExt::write_all_at(self, bytes, offset)
    }

    fn sync(&mut self) -> io::Result<()> {
        self.sync_data()
    }
}
