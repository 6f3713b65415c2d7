//! The components' allocator: a bump arena in static memory, then the system allocator.
//!
//! A Spin component instance serves one request and is thrown away, memory and all. So
//! most allocations never need to be freed one by one: the arena hands out memory by
//! bumping an offset (a few instructions, where `dlmalloc` keeps free lists, splits and
//! coalesces), `dealloc` only takes back the most recent block, and `realloc` of the most
//! recent block grows it in place. The arena is a zeroed static, so it is part of the
//! module's initial memory: requests that fit in it never `memory.grow` (which the host
//! pays for with `mprotect` on every instance). When it is used up (a big response, or a
//! long stream that allocates as it goes) allocations fall through to the system
//! allocator, so the arena bounds what is never reclaimed; nothing fails because of it.
//!
//! Single-threaded, as every wasm32-wasip2 component is; on a target with threads this
//! would not be sound, so it is compiled for wasm32 without atomics only and otherwise
//! defers to [`System`].

use std::alloc::{GlobalAlloc, Layout, System};

/// Bytes of the arena.
pub const ARENA_BYTES: usize = 4 << 20;

/// The allocator (see the module docs).
pub struct RequestArena;

#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
mod imp {
    use std::cell::{Cell, UnsafeCell};

    use super::ARENA_BYTES;

    #[repr(C, align(16))]
    pub struct Arena {
        bytes: UnsafeCell<[u8; ARENA_BYTES]>,
        /// Offset of the first free byte.
        top: Cell<usize>,
    }

    // SAFETY: wasm32 components are single-threaded; nothing here is ever shared
    // between threads.
    unsafe impl Sync for Arena {}

    pub static ARENA: Arena = Arena {
        bytes: UnsafeCell::new([0; ARENA_BYTES]),
        top: Cell::new(0),
    };

    impl Arena {
        pub fn base(&self) -> usize {
            self.bytes.get() as usize
        }

        pub fn contains(&self, ptr: *mut u8) -> bool {
            let p = ptr as usize;
            p >= self.base() && p < self.base() + ARENA_BYTES
        }

        /// A block of `size` bytes aligned to `align`, or `None` when it does not fit.
        pub fn bump(&self, size: usize, align: usize) -> Option<*mut u8> {
            let base = self.base();
            let start = (base + self.top.get()).checked_add(align - 1)? & !(align - 1);
            let end = start.checked_add(size)?;
            if end > base + ARENA_BYTES {
                return None;
            }
            self.top.set(end - base);
            Some(start as *mut u8)
        }

        /// Whether `ptr..ptr + size` is the most recent block.
        pub fn is_top(&self, ptr: *mut u8, size: usize) -> bool {
            ptr as usize + size == self.base() + self.top.get()
        }

        /// Move the top to `ptr + size` (for the most recent block), if it fits.
        pub fn set_top(&self, ptr: *mut u8, size: usize) -> bool {
            let end = ptr as usize + size;
            if end > self.base() + ARENA_BYTES {
                return false;
            }
            self.top.set(end - self.base());
            true
        }
    }
}

#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
unsafe impl GlobalAlloc for RequestArena {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match imp::ARENA.bump(layout.size(), layout.align()) {
            Some(ptr) => ptr,
            // SAFETY: forwarded with the caller's guarantees.
            None => unsafe { System.alloc(layout) },
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let arena = &imp::ARENA;
        if arena.contains(ptr) {
            // Only the most recent block can be taken back.
            if arena.is_top(ptr, layout.size()) {
                arena.set_top(ptr, 0);
            }
        } else {
            // SAFETY: not an arena block, so the system allocator's.
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let arena = &imp::ARENA;
        if !arena.contains(ptr) {
            // SAFETY: a system allocator block, forwarded with the caller's guarantees.
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        if arena.is_top(ptr, layout.size()) && arena.set_top(ptr, new_size) {
            return ptr;
        }
        if new_size <= layout.size() {
            return ptr;
        }
        // SAFETY: the caller guarantees `new_size` with this alignment is a valid layout.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: as for `alloc`.
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: both blocks are valid for `layout.size()` bytes and distinct.
            unsafe {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size());
                self.dealloc(ptr, layout);
            }
        }
        new
    }
}

#[cfg(not(all(target_arch = "wasm32", not(target_feature = "atomics"))))]
unsafe impl GlobalAlloc for RequestArena {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }
}
