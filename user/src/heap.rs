//! The heap: talc's allocator, growing the break with `sbrk` when it runs out.
//!
//! Programs are single-threaded (a `fork` copies the heap with everything else) and there are
//! no signal handlers, so the allocator needs no lock. When talc is out of memory it asks
//! [`Sbrk::acquire`] for more: the break moves up by at least [`GROW_MIN`] and the new memory
//! extends the heap when it begins where the heap ends, or becomes a heap of its own when
//! something else (usertests calls `sbrk` directly) moved the break in between.

use core::alloc::Layout;
use core::ptr::NonNull;

use talc::base::binning::Binning;
use talc::base::Talc;
use talc::cell::{TalcCell, TalcSyncCell};
use talc::source::Source;
use talc::DefaultBinning;

use crate::sys;

/// The smallest step of the break: 64 KiB.
pub const GROW_MIN: usize = 64 * 1024;
const PAGE: usize = 4096;

/// Talc's source of memory: the break.
#[derive(Debug)]
pub struct Sbrk {
    /// The end of the heap the break last extended.
    end: Option<NonNull<u8>>,
}

// SAFETY: `acquire` only calls sbrk and talc's own claim/extend; it never allocates.
unsafe impl Source for Sbrk {
    fn acquire<B: Binning>(talc: &mut Talc<Self, B>, layout: Layout) -> Result<(), ()> {
        // Room for the allocation, its alignment, talc's bookkeeping and, for a first heap,
        // its bins.
        let need = layout
            .size()
            .checked_add(layout.align())
            .and_then(|n| n.checked_add(talc::min_first_heap_size::<B>() + 256))
            .ok_or(())?;
        let grow = need.max(GROW_MIN).checked_next_multiple_of(PAGE).ok_or(())?;
        let grow_signed = isize::try_from(grow).map_err(|_| ())?;
        // SAFETY: growing the break maps pages that were not mapped before; nothing is given
        // back (the allocator never shrinks the break).
        let base = unsafe { sys::sbrk(grow_signed) }.map_err(|_| ())? as *mut u8;
        let new_end = base.wrapping_add(grow);
        if let Some(end) = talc.source.end.take() {
            if end.as_ptr() == base {
                // SAFETY: [base, new_end) is fresh memory of this process, right after the heap.
                talc.source.end = Some(unsafe { talc.extend(end, new_end) });
                return Ok(());
            }
        }
        // SAFETY: the memory is ours and nothing else uses it.
        talc.source.end = unsafe { talc.claim(base, grow) };
        talc.source.end.map(drop).ok_or(())
    }
}

/// The global allocator.
// SAFETY: user programs have one thread and no signal handlers: no allocation can interrupt
// another.
#[global_allocator]
static HEAP: TalcSyncCell<Sbrk, DefaultBinning> =
    unsafe { TalcSyncCell::new(TalcCell::new(Sbrk { end: None })) };
