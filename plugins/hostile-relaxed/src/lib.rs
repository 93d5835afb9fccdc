//! Hostile test policy: never deploy. Truncates a NaN with relaxed SIMD and answers from the
//! result. Without deterministic semantics the result is the hardware's (x86 gives
//! `i32::MIN`, aarch64 gives 0), so nodes of two architectures would choose differently; with
//! them it is 0 everywhere and the answer is the first member.

use luciole_guest_sdk::{CoordinatorPolicy, MemberId, PolicyError, View};

/// Answers from hardware-dependent arithmetic.
#[derive(Debug)]
pub struct Relaxed;

#[cfg(target_arch = "wasm32")]
#[target_feature(enable = "relaxed-simd")]
fn truncate_nan() -> i32 {
    use core::arch::wasm32::{f32x4_splat, i32x4_extract_lane, i32x4_relaxed_trunc_f32x4};
    let nan = std::hint::black_box(f32::NAN);
    i32x4_extract_lane::<0>(i32x4_relaxed_trunc_f32x4(f32x4_splat(nan)))
}

#[cfg(not(target_arch = "wasm32"))]
fn truncate_nan() -> i32 {
    0
}

impl CoordinatorPolicy for Relaxed {
    fn choose(view: &View, _current: Option<MemberId>) -> Result<MemberId, PolicyError> {
        // SAFETY: relaxed SIMD is part of the wasm features the host enables.
        #[allow(unused_unsafe)]
        let lane = unsafe { truncate_nan() };
        let at = if lane == 0 { 0 } else { view.members.len() - 1 };
        Ok(view.members[at].id)
    }
}

luciole_guest_sdk::export_coordinator!(Relaxed, name = "hostile-relaxed", version = "0.1.0");
