//! [`Out`]: the output buffer that parallel tiles write into, shared by the tile
//! convolutions (`fastconv`) and Winograd.

/// A shared output buffer that tiles write through. Safety rests on the partition: every
/// element is written by exactly one tile (tiles cover disjoint output pixels), so no two
/// threads touch the same float.
pub(crate) struct Out {
    ptr: *mut f32,
    len: usize,
}

// SAFETY: see the type's documentation — concurrent writes go to disjoint elements.
unsafe impl Sync for Out {}

impl Out {
    /// Writes go to the spare capacity of `v` (the caller sets its length once every element
    /// is written).
    pub(crate) fn new(v: &mut Vec<f32>) -> Self {
        Self {
            ptr: v.as_mut_ptr(),
            len: v.capacity(),
        }
    }

    /// Four floats at `off` (one row of a Winograd output tile) as one fixed-size copy.
    pub(crate) fn write4(&self, off: usize, src: &[f32; 4]) {
        assert!(off + 4 <= self.len, "conv output write out of bounds");
        // SAFETY: as for `write`.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), self.ptr.add(off), 4) }
    }

    /// `src` at `off`.
    pub(crate) fn write(&self, off: usize, src: &[f32]) {
        assert!(
            off + src.len() <= self.len,
            "conv output write out of bounds"
        );
        // SAFETY: in bounds (asserted); disjoint from every other thread's writes (see above).
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), self.ptr.add(off), src.len()) }
    }
}
