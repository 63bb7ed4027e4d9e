//! Allocator settings for training on the CPU.
//!
//! A training step allocates and frees the same large buffers (im2col, activations) every
//! iteration. glibc serves allocations above its mmap threshold with fresh `mmap`s, which the
//! kernel faults in page by page every step, and trims freed memory back to the OS: 8–21 % of a
//! ResNet step in page faults (performance-baseline §5). [`tune_allocator`] turns both off for
//! the process.

/// Keeps freed memory in the process: no `mmap` for large blocks, no trimming. Call once at
/// start-up, before the first large allocation. Returns whether the settings were applied
/// (only on glibc).
pub fn tune_allocator() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes allocator parameters; it is called with valid constants.
        unsafe {
            let no_mmap = libc::mallopt(libc::M_MMAP_MAX, 0) == 1;
            // The largest value the int parameter takes (2 GiB): freed memory stays mapped.
            let no_trim = libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX) == 1;
            let top_pad = libc::mallopt(libc::M_TOP_PAD, 256 << 20) == 1;
            no_mmap && no_trim && top_pad
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}
