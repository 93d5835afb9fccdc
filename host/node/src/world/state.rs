//! An entity's state as the node keeps it: its motion (48 bytes: position and velocity)
//! followed by its opaque payload, a pattern of its id checked on every arrival; and the wall
//! clock the workload steps by.

use std::time::{SystemTime, UNIX_EPOCH};

use luciole_proto::EntityId;
use luciole_proto::world::Body;

/// Bytes of an entity's motion at the start of its state.
pub const MOTION_BYTES: usize = 48;
/// Milliseconds since the Unix epoch by the wall clock (shifted by
/// `LUCIOLE_FAULT_CLOCK_OFFSET_MS` when `LUCIOLE_FAULT_SIGNALS=1`: a skewed clock, for tests).
pub fn wall_ms() -> u64 {
    static OFFSET: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    let offset = *OFFSET.get_or_init(|| {
        let faults = crate::wire::faults_enabled();
        let offset = std::env::var("LUCIOLE_FAULT_CLOCK_OFFSET_MS").ok();
        offset.filter(|_| faults).and_then(|v| v.parse().ok()).unwrap_or(0)
    });
    let ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    ms.saturating_add_signed(offset)
}

/// The payload of entity `id`: `bytes` bytes of a pattern of its id.
pub fn payload_of(id: EntityId, bytes: usize) -> Vec<u8> {
    let seed = id.0.to_le_bytes();
    (0..bytes).map(|i| seed[i % 8].wrapping_add((i / 8) as u8)).collect()
}

/// An entity's state: its motion, then its payload.
pub fn encode_state(body: &Body, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(MOTION_BYTES + payload.len());
    for x in body.pos.iter().chain(&body.vel) {
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.extend_from_slice(payload);
    out
}

/// The motion at the start of a state, if it is long enough and finite.
pub fn decode_body(state: &[u8]) -> Option<Body> {
    let head = state.get(..MOTION_BYTES)?;
    let mut xs = [0.0f64; 6];
    for (x, chunk) in xs.iter_mut().zip(head.chunks_exact(8)) {
        *x = f64::from_le_bytes(chunk.try_into().ok()?);
    }
    xs.iter()
        .all(|x| x.is_finite())
        .then(|| Body { pos: [xs[0], xs[1], xs[2]], vel: [xs[3], xs[4], xs[5]] })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_carries_its_motion_and_payload_and_damage_shows() {
        let body = Body { pos: [0.5, 1.25, 3.0], vel: [-0.1, 0.0, 0.2] };
        let id = EntityId(0x1_0000_0007);
        let state = encode_state(&body, &payload_of(id, 256));
        assert_eq!(state.len(), MOTION_BYTES + 256);
        assert_eq!(decode_body(&state), Some(body));
        assert_eq!(&state[MOTION_BYTES..], payload_of(id, 256));
        assert_ne!(payload_of(id, 256), payload_of(EntityId(id.0 + 1), 256));
        assert_eq!(decode_body(&state[..MOTION_BYTES - 1]), None, "too short");
        let mut bad = state.clone();
        bad[..8].copy_from_slice(&f64::NAN.to_le_bytes());
        assert_eq!(decode_body(&bad), None, "not finite");
    }
}
