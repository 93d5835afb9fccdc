//! Messages on a QUIC stream: a 5-byte header — the frame format version, then the payload's
//! length (`u32` little-endian) — and the payload, the message encoded with postcard. A frame of
//! another version or longer than the reader's limit is refused from its header, before its
//! payload is read; the caller closes that stream (or connection) and counts it.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The frame format this build writes and reads.
pub const FRAME_VERSION: u8 = 1;
/// Bytes of a frame's header.
pub use luciole_proto::limits::FRAME_HEADER_BYTES;
/// Default largest payload: a membership message with a view of 10,000 members fits.
pub const FRAME_BYTES_MAX_DEFAULT: usize = 1 << 20;

/// Why a frame was refused.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// Another frame format version.
    #[error("frame format version {0}; this node speaks version {FRAME_VERSION}")]
    Version(u8),
    /// Longer than the limit.
    #[error("frame of {len} bytes; the limit is {max}")]
    TooLarge {
        /// The length the header announced (or the encoded length, when writing).
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The stream ended inside a frame.
    #[error("the stream ended inside a frame")]
    Truncated,
    /// The stream failed.
    #[error("reading the stream: {0}")]
    Stream(String),
    /// The payload is not a message of the expected type.
    #[error("decoding the payload: {0}")]
    Decode(String),
    /// The message could not be encoded.
    #[error("encoding the message: {0}")]
    Encode(String),
}

/// `value` as one frame, refused if its payload would exceed `max` bytes.
pub fn encode<T: Serialize>(value: &T, max: usize) -> Result<Vec<u8>, FrameError> {
    let mut out = vec![FRAME_VERSION, 0, 0, 0, 0];
    let mut out = postcard::to_extend(value, std::mem::take(&mut out))
        .map_err(|e| FrameError::Encode(e.to_string()))?;
    let len = out.len() - FRAME_HEADER_BYTES;
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    out[1..5].copy_from_slice(&(len as u32).to_le_bytes());
    Ok(out)
}

/// The payload length a header announces, if the frame is acceptable.
pub fn payload_len(header: &[u8; FRAME_HEADER_BYTES], max: usize) -> Result<usize, FrameError> {
    if header[0] != FRAME_VERSION {
        return Err(FrameError::Version(header[0]));
    }
    let len = u32::from_le_bytes(header[1..5].try_into().expect("4 bytes")) as usize;
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    Ok(len)
}

/// Decodes a payload.
pub fn decode<T: DeserializeOwned>(payload: &[u8]) -> Result<T, FrameError> {
    postcard::from_bytes(payload).map_err(|e| FrameError::Decode(e.to_string()))
}

/// The one whole frame `bytes` holds (a datagram), and its size; refused like a streamed one,
/// and when the bytes are not exactly one frame.
pub fn decode_frame<T: DeserializeOwned>(
    bytes: &[u8],
    max: usize,
) -> Result<(T, usize), FrameError> {
    let header: &[u8; FRAME_HEADER_BYTES] = bytes
        .get(..FRAME_HEADER_BYTES)
        .and_then(|h| h.try_into().ok())
        .ok_or(FrameError::Truncated)?;
    let len = payload_len(header, max)?;
    match bytes.get(FRAME_HEADER_BYTES..) {
        Some(payload) if payload.len() == len => Ok((decode(payload)?, bytes.len())),
        _ => Err(FrameError::Truncated),
    }
}

/// Writes `value` as one frame.
pub async fn write<T: Serialize>(
    send: &mut quinn::SendStream,
    value: &T,
    max: usize,
) -> Result<(), FrameError> {
    let bytes = encode(value, max)?;
    send.write_all(&bytes).await.map_err(|e| FrameError::Stream(e.to_string()))
}

/// Reads the next frame; `None` when the stream ended cleanly between frames.
pub async fn read<T: DeserializeOwned>(
    recv: &mut quinn::RecvStream,
    max: usize,
) -> Result<Option<T>, FrameError> {
    Ok(read_sized(recv, max).await?.map(|(value, _)| value))
}

/// Reads the next frame and its size on the stream (header included); `None` when the stream
/// ended cleanly between frames.
pub async fn read_sized<T: DeserializeOwned>(
    recv: &mut quinn::RecvStream,
    max: usize,
) -> Result<Option<(T, usize)>, FrameError> {
    let mut header = [0u8; FRAME_HEADER_BYTES];
    match recv.read_exact(&mut header).await {
        Ok(()) => {}
        Err(quinn::ReadExactError::FinishedEarly(0)) => return Ok(None),
        Err(quinn::ReadExactError::FinishedEarly(_)) => return Err(FrameError::Truncated),
        Err(quinn::ReadExactError::ReadError(e)) => return Err(FrameError::Stream(e.to_string())),
    }
    let len = payload_len(&header, max)?;
    let mut payload = vec![0u8; len];
    recv.read_exact(&mut payload).await.map_err(|e| match e {
        quinn::ReadExactError::FinishedEarly(_) => FrameError::Truncated,
        quinn::ReadExactError::ReadError(e) => FrameError::Stream(e.to_string()),
    })?;
    decode(&payload).map(|value| Some((value, FRAME_HEADER_BYTES + len)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_round_trips_and_its_header_is_checked_before_its_payload() {
        let value = (7u64, String::from("probe"), vec![1u32, 2, 3]);
        let bytes = encode(&value, 64).unwrap();
        let header: [u8; 5] = bytes[..5].try_into().unwrap();
        let len = payload_len(&header, 64).unwrap();
        assert_eq!(len, bytes.len() - FRAME_HEADER_BYTES);
        assert_eq!(decode::<(u64, String, Vec<u32>)>(&bytes[5..]).unwrap(), value);
        assert!(matches!(payload_len(&header, len - 1), Err(FrameError::TooLarge { .. })));
        let mut other = header;
        other[0] = 2;
        assert!(matches!(payload_len(&other, 64), Err(FrameError::Version(2))));
        let huge = [FRAME_VERSION, 0xff, 0xff, 0xff, 0xff];
        assert!(matches!(
            payload_len(&huge, FRAME_BYTES_MAX_DEFAULT),
            Err(FrameError::TooLarge { len: 0xffff_ffff, .. })
        ));
        assert!(matches!(encode(&vec![0u8; 100], 50), Err(FrameError::TooLarge { .. })));
        assert!(matches!(decode::<(u64, String)>(&[0xff; 3]), Err(FrameError::Decode(_))));
    }
}
