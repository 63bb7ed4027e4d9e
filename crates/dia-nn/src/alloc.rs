//! Allocator settings for training on the CPU.
//!
//! A training step allocates and frees the same large buffers (im2col, activations) every
//! iteration. glibc serves allocations above its mmap threshold with fresh `mmap`s, which the
//! kernel faults in page by page every step, and trims freed memory back to the OS: 8–21 % of a
//! ResNet step in page faults (performance-baseline §5). [`tune_allocator`] turns both off for
//! the process.
//!
//! It also holds glibc to one arena. A thread other than the main one (a `dia experiment`
//! task, a test) otherwise allocates from a per-thread arena of 64 MiB heaps, which serves a
//! larger request with its own `mmap` whatever `M_MMAP_MAX` says, and unmaps it on free: a
//! 64-px DDPM trained in such a thread spent about a third of its time in page faults
//! (≈ 400,000 a second) and ran 2.3× slower than with one arena. The large tensors of a step
//! make few allocations, so the one arena's lock is not contended.

/// Keeps freed memory in the process: no `mmap` for large blocks, no trimming, one arena for
/// all threads. Call once at start-up, before the first large allocation and before any other
/// thread starts (a thread that has allocated keeps the arena it had). Returns whether the
/// settings were applied (only on glibc).
pub fn tune_allocator() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes allocator parameters; it is called with valid constants.
        unsafe {
            let no_mmap = libc::mallopt(libc::M_MMAP_MAX, 0) == 1;
            // The largest value the int parameter takes (2 GiB): freed memory stays mapped.
            let no_trim = libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX) == 1;
            let top_pad = libc::mallopt(libc::M_TOP_PAD, 256 << 20) == 1;
            let one_arena = libc::mallopt(libc::M_ARENA_MAX, 1) == 1;
            no_mmap && no_trim && top_pad && one_arena
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}
