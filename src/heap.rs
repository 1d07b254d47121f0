//! The allocator of a musl build: TLSF (the `rlsf` crate) over memory mapped a megabyte at a
//! time and never given back, behind a spin lock.
//!
//! musl's own allocator hands big blocks back to the kernel at once (munmap), and a shim that
//! does that after its tool ran pays for a TLB flush on every CPU the tool ran on (see
//! `shim::keep_memory` for glibc). rlsf's ready-made global allocator keeps its memory too but
//! takes a pthread mutex for every call, which cost a header-heavy compile step about 7% of
//! its CPU time (thousands of small allocations); a step is one thread, so the lock here is a
//! flag that is almost never contended (the CLI's few threads may spin a moment).
//!
//! Big zeroed blocks (a shared library's size, of which only the note parts are read) get
//! pages of their own from the kernel, which come zeroed: zeroing them in the heap would
//! touch every page (about 2 us a page here, a millisecond for libc.so.6).

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::ptr::{null_mut, NonNull};
use core::sync::atomic::{AtomicBool, Ordering};
use rlsf::{FlexSource, FlexTlsf};

/// Anonymous memory, a megabyte or more at a time (its pages are only touched as used).
struct Chunks;

// SAFETY: every region returned is fresh, writable, page-aligned and never reused elsewhere
unsafe impl FlexSource for Chunks {
    unsafe fn alloc(&mut self, min_size: usize) -> Option<NonNull<[u8]>> {
        let len = min_size.max(1 << 20).checked_add(4095)? & !4095;
        // Pages are faulted in as used: mapping the first 256 KB at once never paid, a
        // step touches fewer (shim CPU per step 4-104 us less without it, by the machine)
        let p = map(len)?;
        NonNull::new(core::ptr::slice_from_raw_parts_mut(p, len))
    }

    fn min_align(&self) -> usize {
        4096
    }
}

type Tlsf = FlexTlsf<Chunks, usize, usize, { usize::BITS as usize }, { usize::BITS as usize }>;

/// Zeroed blocks at least this big are mapped on their own.
const BIG: usize = 256 << 10;

fn map(len: usize) -> Option<*mut u8> {
    // SAFETY: a new private anonymous mapping; the result is checked
    let p = unsafe {
        libc::mmap(
            null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    (p != libc::MAP_FAILED).then_some(p.cast())
}

struct State {
    tlsf: Tlsf,
    /// The blocks mapped on their own: address and mapped length (0: a free slot).
    big: [(usize, usize); 32],
    /// How many slots of `big` are taken: every free asks, and there is mostly none.
    bigs: usize,
}

pub struct Heap {
    busy: AtomicBool,
    state: UnsafeCell<State>,
}

// SAFETY: the TLSF state is only reached under `busy`
unsafe impl Sync for Heap {}

impl Heap {
    pub const fn new() -> Heap {
        Heap {
            busy: AtomicBool::new(false),
            state: UnsafeCell::new(State {
                tlsf: FlexTlsf::new(Chunks),
                big: [(0, 0); 32],
                bigs: 0,
            }),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        while self
            .busy
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            core::hint::spin_loop();
        }
        // SAFETY: `busy` was taken above: no other reference to the state exists
        let r = f(unsafe { &mut *self.state.get() });
        self.busy.store(false, Ordering::Release);
        r
    }
}

impl Default for Heap {
    fn default() -> Heap {
        Heap::new()
    }
}

/// The mapped length of a block mapped on its own, forgotten (None: a heap block).
fn take_big(st: &mut State, ptr: *mut u8) -> Option<usize> {
    if st.bigs == 0 {
        return None;
    }
    let slot = st.big.iter_mut().find(|(a, _)| *a == ptr as usize)?;
    let len = slot.1;
    *slot = (0, 0);
    st.bigs -= 1;
    Some(len)
}

/// A block mapped on its own (no slot is scanned while there is none).
fn is_big(st: &State, ptr: *mut u8) -> bool {
    st.bigs > 0 && st.big.iter().any(|(a, _)| *a == ptr as usize)
}

/// Give a block mapped on its own back, unless this process keeps its mappings (a shim:
/// see `shim::keep_memory`).
fn unmap(ptr: *mut u8, len: usize) {
    if !crate::store::mappings_kept() {
        // SAFETY: a block mapped in `alloc_zeroed`, no longer in use
        unsafe { libc::munmap(ptr.cast(), len) };
    }
}

// SAFETY: allocate/deallocate/reallocate are given what GlobalAlloc's contract guarantees
// (blocks this allocator made, with their layout's alignment)
unsafe impl GlobalAlloc for Heap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.with(|st| st.tlsf.allocate(layout))
            .map_or(null_mut(), |p| p.as_ptr())
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() >= BIG && layout.align() <= 4096 {
            let len = layout.size().next_multiple_of(4096);
            if let Some(p) = map(len) {
                let kept = self.with(|st| {
                    let slot = st.big.iter_mut().find(|(a, _)| *a == 0)?;
                    *slot = (p as usize, len);
                    st.bigs += 1;
                    Some(())
                });
                if kept.is_some() {
                    return p;
                }
                // SAFETY: the mapping just made, unused
                unsafe { libc::munmap(p.cast(), len) };
            }
        }
        // SAFETY: as GlobalAlloc::alloc
        let p = unsafe { self.alloc(layout) };
        if !p.is_null() {
            // SAFETY: `size` bytes just allocated
            unsafe { core::ptr::write_bytes(p, 0, layout.size()) };
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let Some(p) = NonNull::new(ptr) else { return };
        let big = self.with(|st| {
            let big = take_big(st, ptr);
            if big.is_none() {
                // SAFETY: a heap block of ours, with its alignment
                unsafe { st.tlsf.deallocate(p, layout.align()) };
            }
            big
        });
        if let Some(len) = big {
            unmap(ptr, len);
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let Ok(new) = Layout::from_size_align(new_size, layout.align()) else {
            return null_mut();
        };
        let Some(p) = NonNull::new(ptr) else {
            return null_mut();
        };
        let big = self.with(|st| is_big(st, ptr));
        if big {
            // a block mapped on its own moves to the heap
            // SAFETY: as GlobalAlloc::alloc
            let q = unsafe { self.alloc(new) };
            if !q.is_null() {
                // SAFETY: both blocks hold at least the smaller size
                unsafe { core::ptr::copy_nonoverlapping(ptr, q, layout.size().min(new_size)) };
                // SAFETY: the old block, given back once
                unsafe { self.dealloc(ptr, layout) };
            }
            return q;
        }
        // SAFETY: a heap block of ours, reallocated with its own alignment
        self.with(|st| unsafe { st.tlsf.reallocate(p, new) })
            .map_or(null_mut(), |p| p.as_ptr())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_keep_their_bytes_through_growth_and_big_zeroed_blocks_come_zeroed() {
        let heap = Heap::new();
        // SAFETY: every block is used within its layout and given back once, with it
        unsafe {
            // many small blocks, each filled with its own byte, then checked and freed
            let small: Vec<(*mut u8, Layout)> = (1..2000usize)
                .map(|i| {
                    let l = Layout::from_size_align(i % 300 + 1, 8).unwrap();
                    let p = heap.alloc(l);
                    assert!(!p.is_null());
                    core::ptr::write_bytes(p, (i % 251) as u8, l.size());
                    (p, l)
                })
                .collect();
            for (i, (p, l)) in small.iter().enumerate() {
                let b = core::slice::from_raw_parts(*p, l.size());
                assert!(b.iter().all(|&x| x == ((i + 1) % 251) as u8), "block {i}");
                heap.dealloc(*p, *l);
            }
            // a big zeroed block (mapped on its own): zero, writable, and grown into the
            // heap with its bytes
            let l = Layout::from_size_align(3 << 20, 16).unwrap();
            let p = heap.alloc_zeroed(l);
            assert!(!p.is_null());
            assert!(core::slice::from_raw_parts(p, l.size())
                .iter()
                .all(|&x| x == 0));
            *p.add(12345) = 7;
            let q = heap.realloc(p, l, 4 << 20);
            assert!(!q.is_null());
            assert_eq!(*q.add(12345), 7);
            assert_eq!(*q.add(12346), 0);
            heap.dealloc(q, Layout::from_size_align(4 << 20, 16).unwrap());
            // a small block grown past a chunk keeps its bytes
            let l = Layout::from_size_align(64, 64).unwrap();
            let p = heap.alloc(l);
            core::ptr::write_bytes(p, 9, 64);
            let q = heap.realloc(p, l, 2 << 20);
            assert!(core::slice::from_raw_parts(q, 64).iter().all(|&x| x == 9));
            assert_eq!(q as usize % 64, 0);
            heap.dealloc(q, Layout::from_size_align(2 << 20, 64).unwrap());
        }
    }
}
