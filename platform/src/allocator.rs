//! The global allocator of the `edge-node` and `coordinator` binaries:
//! mimalloc, asked for plain `mi_malloc` whenever that already gives the
//! alignment a layout needs.
//!
//! The `mimalloc` crate sends every allocation through `mi_malloc_aligned`.
//! In mimalloc 3 that call has a fast path only for blocks up to 1 KiB;
//! anything larger takes its generic over-allocating path, even at
//! alignment 8. A function request makes about 20 such allocations (the
//! wasm instance's tables, pingora's buffers), and under callgrind the
//! aligned path cost about 6,000 instructions per request. `mi_malloc`
//! returns blocks aligned to 16 bytes whenever the size is at least 16
//! (its size classes are multiples of 16 from there on, and of 8 below),
//! which is the rule std's `System` allocator uses for `malloc` too.

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

use libmimalloc_sys as mi;

/// `mi_malloc`'s guaranteed alignment (`MI_MAX_ALIGN_SIZE` on 64-bit
/// targets) for blocks at least this large.
const MALLOC_ALIGN: usize = 16;

/// Whether plain `mi_malloc(size)` satisfies `align`.
fn malloc_suffices(align: usize, size: usize) -> bool {
    align <= MALLOC_ALIGN && align <= size
}

/// mimalloc with a fast path for ordinary alignments.
pub struct Allocator;

unsafe impl GlobalAlloc for Allocator {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if malloc_suffices(layout.align(), layout.size()) {
            mi::mi_malloc(layout.size()).cast()
        } else {
            mi::mi_malloc_aligned(layout.size(), layout.align()).cast()
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if malloc_suffices(layout.align(), layout.size()) {
            mi::mi_zalloc(layout.size()).cast()
        } else {
            mi::mi_zalloc_aligned(layout.size(), layout.align()).cast()
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        mi::mi_free(ptr.cast::<c_void>());
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if malloc_suffices(layout.align(), new_size) {
            mi::mi_realloc(ptr.cast::<c_void>(), new_size).cast()
        } else {
            mi::mi_realloc_aligned(ptr.cast::<c_void>(), new_size, layout.align()).cast()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every small size and a spread of larger ones, at alignments up to
    /// 64: blocks come back aligned and usable, zeroed when asked, and keep
    /// their contents when grown or shrunk.
    #[test]
    fn blocks_are_aligned_through_alloc_zeroed_and_realloc() {
        let a = Allocator;
        let sizes = (1..=256).chain((257..=70_000).step_by(97));
        for size in sizes {
            for align in [1, 2, 4, 8, 16, 32, 64] {
                let layout = Layout::from_size_align(size, align).unwrap();
                unsafe {
                    let z = a.alloc_zeroed(layout);
                    assert_eq!(z as usize % align, 0, "zeroed size {size} align {align}");
                    assert!(std::slice::from_raw_parts(z, size).iter().all(|&b| b == 0));
                    a.dealloc(z, layout);

                    for new_size in [size / 2 + 1, size * 3] {
                        let p = a.alloc(layout);
                        assert_eq!(p as usize % align, 0, "alloc size {size} align {align}");
                        p.write_bytes(0xAB, size);
                        let q = a.realloc(p, layout, new_size);
                        assert_eq!(
                            q as usize % align,
                            0,
                            "realloc {size}->{new_size} align {align}"
                        );
                        let kept = size.min(new_size);
                        assert!(std::slice::from_raw_parts(q, kept)
                            .iter()
                            .all(|&b| b == 0xAB));
                        a.dealloc(q, Layout::from_size_align(new_size, align).unwrap());
                    }
                }
            }
        }
    }

    #[test]
    fn plain_malloc_only_for_alignments_it_guarantees() {
        assert!(malloc_suffices(8, 8));
        assert!(malloc_suffices(16, 16));
        assert!(malloc_suffices(8, 4096));
        assert!(
            !malloc_suffices(16, 8),
            "a block smaller than 16 may sit on an 8-byte boundary"
        );
        assert!(!malloc_suffices(32, 4096));
        assert!(!malloc_suffices(4096, 4096));
    }
}
