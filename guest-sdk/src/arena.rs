//! The allocator of a policy component: a bump arena in the module's zeroed data, falling back
//! to the system allocator when full.
//!
//! The host runs every coordinator and placement call on a fresh instance, so a call's
//! allocations live exactly as long as the call. A bump arena suits that: no bookkeeping, and
//! — what the host measured — no `memory.grow` in the call (the system allocator grows memory
//! by a page on its first allocation in every instance, which costs the host an `mprotect`).
//! Freeing gives memory back only for the newest allocation; a long-lived migration instance
//! fills the arena once and then uses the system allocator.
//!
//! On by default on wasm32; turn off the `arena` feature to use the system allocator or your
//! own `#[global_allocator]`.

use core::alloc::{GlobalAlloc, Layout};
use core::cell::{Cell, UnsafeCell};
use std::alloc::System;

/// Bytes of the arena.
pub const ARENA_BYTES: usize = 256 << 10;

#[repr(C, align(16))]
struct Bytes(UnsafeCell<[u8; ARENA_BYTES]>);

/// The allocator; installed by this crate as the global allocator on wasm32.
#[derive(Debug)]
pub struct Arena {
    bytes: Bytes,
    used: Cell<usize>,
}

impl std::fmt::Debug for Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{ARENA_BYTES} bytes")
    }
}

// SAFETY: a wasm32 policy instance runs one thread; nothing shares the arena across threads.
unsafe impl Sync for Arena {}

impl Arena {
    /// An empty arena.
    pub const fn new() -> Self {
        Self { bytes: Bytes(UnsafeCell::new([0; ARENA_BYTES])), used: Cell::new(0) }
    }

    fn base(&self) -> usize {
        self.bytes.0.get() as usize
    }

    fn owns(&self, ptr: *mut u8) -> bool {
        let at = ptr as usize;
        at >= self.base() && at < self.base() + ARENA_BYTES
    }
}

impl Default for Arena {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: blocks handed out are disjoint, aligned as asked and within the arena (checked
// arithmetic), or come from `System`; `dealloc` and `realloc` send `System`'s blocks back to it.
unsafe impl GlobalAlloc for Arena {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let base = self.base();
        let start = (base + self.used.get()).next_multiple_of(layout.align());
        match start.checked_add(layout.size()) {
            Some(end) if end <= base + ARENA_BYTES => {
                self.used.set(end - base);
                start as *mut u8
            }
            // SAFETY: forwarded as is.
            _ => unsafe { System.alloc(layout) },
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if !self.owns(ptr) {
            // SAFETY: not ours, so `System`'s, with the layout it was allocated with.
            return unsafe { System.dealloc(ptr, layout) };
        }
        // The newest block goes back; any other stays until the instance ends.
        if ptr as usize + layout.size() == self.base() + self.used.get() {
            self.used.set(ptr as usize - self.base());
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let newest =
            self.owns(ptr) && ptr as usize + layout.size() == self.base() + self.used.get();
        if newest && ptr as usize + new_size <= self.base() + ARENA_BYTES {
            self.used.set(ptr as usize + new_size - self.base());
            return ptr;
        }
        if !self.owns(ptr) {
            // SAFETY: `System`'s block, forwarded as is.
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        // SAFETY: `new_size` with the old alignment is a valid layout (the caller's contract).
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: a fresh block; copy the smaller of the two sizes; then free the old one.
        unsafe {
            let new = self.alloc(new_layout);
            if !new.is_null() {
                core::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
            new
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_aligned_disjoint_and_the_newest_grows_in_place_or_moves_with_its_bytes() {
        let arena = Box::new(Arena::new());
        let l = |size, align| Layout::from_size_align(size, align).unwrap();
        // SAFETY: layouts are valid; every block is used within its size and freed once.
        unsafe {
            let a = arena.alloc(l(3, 1));
            let b = arena.alloc(l(8, 8));
            assert_eq!(b as usize % 8, 0);
            assert!(b as usize >= a as usize + 3);
            b.write_bytes(7, 8);
            let grown = arena.realloc(b, l(8, 8), 64);
            assert_eq!(grown, b, "the newest block grows in place");
            let moved = arena.realloc(a, l(3, 1), 16);
            assert!(arena.owns(moved) && moved as usize >= grown as usize + 64);
            // Freeing the newest gives its bytes back (not the padding before it).
            let c = arena.alloc(l(32, 16));
            arena.dealloc(c, l(32, 16));
            assert_eq!(arena.alloc(l(32, 16)), c);
            // Past the arena: the system allocator's, and back to it.
            let big = arena.alloc(l(ARENA_BYTES, 8));
            assert!(!big.is_null() && !arena.owns(big));
            arena.dealloc(big, l(ARENA_BYTES, 8));
        }
    }
}
