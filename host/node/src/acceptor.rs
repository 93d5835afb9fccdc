//! The membership acceptor state on disk (`data_dir/acceptor`): what the node promised and
//! accepted in the view it is in ([`Durable`]), written whenever the core hands it out and
//! before anything the node says next is sent, so that a restarted node takes up its place
//! in that view as the same Paxos acceptor instead of coming back as a stranger.
//!
//! Format: 8 bytes of magic, the CRC-32C of the rest (little-endian), then the postcard
//! encoding of [`Durable`]. Written to a temporary file, synced, renamed into place, the
//! directory synced: a crash leaves the old state or the new one. A file that fails its
//! checksum or does not decode is reported and ignored: the node then joins again into a
//! newer view only, which is safe (it never acts again in a view it may have voted in).

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use luciole_proto::membership::node::Durable;

/// The file's name in the data directory.
pub const FILE: &str = "acceptor";

const MAGIC: &[u8; 8] = b"LUCACC01";

/// Writes `state` durably to `path`.
pub fn write(path: &Path, state: &Durable) -> std::io::Result<()> {
    let payload = postcard::to_allocvec(state).map_err(std::io::Error::other)?;
    let mut bytes = Vec::with_capacity(MAGIC.len() + 4 + payload.len());
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&crc32c::crc32c(&payload).to_le_bytes());
    bytes.extend_from_slice(&payload);
    replace_durably(path, &bytes)
}

/// Replaces the file at `path` with `bytes` so that a crash leaves the old content or the
/// new: written to a temporary file beside it, synced, renamed into place, the directory
/// synced.
pub fn replace_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("new");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// The state at `path`: `None` when there is none (a node that was never a member, or one
/// from before this file existed).
pub fn read(path: &Path) -> anyhow::Result<Option<Durable>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let (magic, rest) = bytes.split_at_checked(MAGIC.len()).context("too short")?;
    anyhow::ensure!(magic == MAGIC, "not an acceptor state file (bad magic)");
    let (crc, payload) = rest.split_at_checked(4).context("too short")?;
    let crc = u32::from_le_bytes(crc.try_into().expect("4 bytes"));
    anyhow::ensure!(crc32c::crc32c(payload) == crc, "checksum mismatch");
    let state = postcard::from_bytes(payload).context("does not decode")?;
    Ok(Some(state))
}

#[cfg(test)]
mod tests {
    use super::*;
    use luciole_proto::membership::classic::Rank;
    use luciole_proto::membership::cut::Cut;
    use luciole_proto::membership::node::ViewChange;
    use luciole_proto::{Epoch, MemberId, MemberInfo};

    fn state() -> Durable {
        let info = MemberInfo { addr: "127.0.0.1:1".into(), ..MemberInfo::default() };
        let view = ViewChange::first(vec![(MemberId(1), info.clone()), (MemberId(2), info)]);
        let cut = Cut { down: vec![MemberId(2)], ..Cut::default() };
        Durable {
            epoch: Epoch(7),
            view,
            evicted: false,
            promised: Rank { round: 3, node: 1 },
            accepted: Some((Rank::FAST, cut)),
            reported: vec![MemberId(2)],
            previous: vec![],
        }
    }

    #[test]
    fn what_is_written_is_read_back_and_damage_is_an_error_not_a_state() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        assert_eq!(read(&path).unwrap(), None, "no file, no state");
        write(&path, &state()).unwrap();
        assert_eq!(read(&path).unwrap(), Some(state()));
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert!(read(&path).unwrap_err().to_string().contains("checksum"));
        std::fs::write(&path, b"LUC").unwrap();
        assert!(read(&path).is_err());
        std::fs::write(&path, b"something else entirely").unwrap();
        assert!(read(&path).unwrap_err().to_string().contains("magic"));
    }
}
