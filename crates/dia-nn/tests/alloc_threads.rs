//! `tune_allocator` keeps a worker thread's large buffers mapped: allocating, touching and
//! freeing the same two 96 MiB buffers again and again in a thread other than the main one
//! must not fault their pages in anew each time. A per-thread glibc arena serves a request
//! larger than its 64 MiB heaps with its own `mmap`, whatever `M_MMAP_MAX` says, and unmaps it
//! on free (a 64-px DDPM trained in a `dia experiment` task thread did so every step): 24,576
//! faults a buffer, a step, before the settings held glibc to one arena. Run without the test
//! harness, so that the settings come before any thread allocates.

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod glibc {
    /// Buffers live at once in one "step".
    pub const BUFFERS: usize = 2;

    fn minor_faults() -> i64 {
        // SAFETY: getrusage writes into the zeroed struct we pass.
        unsafe {
            let mut usage: libc::rusage = std::mem::zeroed();
            assert_eq!(libc::getrusage(libc::RUSAGE_SELF, &mut usage), 0);
            usage.ru_minflt
        }
    }

    /// One "step": `BUFFERS` buffers of `bytes` live at once, every page touched, then all freed.
    fn step(bytes: usize, mark: u8) {
        let mut live = Vec::with_capacity(BUFFERS);
        for _ in 0..BUFFERS {
            let mut buf = vec![0u8; bytes];
            for page in buf.chunks_mut(4096) {
                page[0] = mark;
            }
            live.push(std::hint::black_box(buf));
        }
        // Freed newest first, as a step's temporaries mostly are.
        while live.pop().is_some() {}
    }

    /// The minor faults of `iterations` steps after two warm-up steps.
    pub fn churn(bytes: usize, iterations: usize) -> i64 {
        // The warm-up steps fault the buffers in once; the rest must reuse those pages.
        step(bytes, 1);
        step(bytes, 2);
        let before = minor_faults();
        for i in 0..iterations {
            step(bytes, i as u8);
        }
        minor_faults() - before
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn main() {
    assert!(!dia_nn::tune_allocator());
    println!("alloc_threads: not glibc, nothing to check");
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn main() {
    use glibc::BUFFERS;
    assert!(dia_nn::tune_allocator(), "mallopt refused a setting");
    const BYTES: usize = 96 << 20;
    const ITERATIONS: usize = 20;
    let faults = std::thread::spawn(|| glibc::churn(BYTES, ITERATIONS))
        .join()
        .expect("the worker thread panicked");
    let pages_per_step = (BUFFERS * BYTES / 4096) as i64;
    // Re-faulting costs ITERATIONS × 49,152 pages; allow one step's worth for the runtime.
    assert!(
        faults < pages_per_step,
        "a worker thread faulted {faults} pages in over {ITERATIONS} steps of {BUFFERS} × {BYTES} bytes"
    );
    println!("alloc_threads: {faults} minor faults over {ITERATIONS} steps in a worker thread: ok");
}
