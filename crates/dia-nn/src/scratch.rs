//! Scratch buffers reused from one call to the next.
//!
//! The Winograd passes need large temporaries (the transformed weights of a 512-channel layer
//! are 38 MB) that they overwrite completely before reading. Allocating them with `vec![0; n]`
//! zeroes them every call — a memory-bound pass as long as a good part of the convolution.
//! [`Scratch::take`] hands out a buffer kept from an earlier call on this thread instead, its
//! contents left over from that call: only for code that writes every element it reads.

use std::cell::RefCell;
use std::ops::{Deref, DerefMut};

/// Buffers kept per thread; more are dropped.
const KEEP: usize = 4;

thread_local! {
    static POOL: RefCell<Vec<Vec<f32>>> = const { RefCell::new(Vec::new()) };
}

/// A buffer of `len` floats whose contents are unspecified (left over from earlier use);
/// returned to this thread's pool when dropped.
pub(crate) struct Scratch {
    buf: Vec<f32>,
    len: usize,
}

impl Scratch {
    /// The smallest kept buffer that holds `len` floats, else the largest one grown to `len`
    /// (zeros in the new part), else a new one.
    pub fn take(len: usize) -> Self {
        let mut buf = POOL.with(|p| {
            let mut pool = p.borrow_mut();
            let fit = (0..pool.len())
                .filter(|&i| pool[i].len() >= len)
                .min_by_key(|&i| pool[i].len());
            let largest = (0..pool.len()).max_by_key(|&i| pool[i].len());
            fit.or(largest)
                .map(|i| pool.swap_remove(i))
                .unwrap_or_default()
        });
        if buf.len() < len {
            buf.resize(len, 0.0);
        }
        Self { buf, len }
    }
}

impl Deref for Scratch {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        &self.buf[..self.len]
    }
}

impl DerefMut for Scratch {
    fn deref_mut(&mut self) -> &mut [f32] {
        &mut self.buf[..self.len]
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        // `try_with`: during thread teardown the pool may already be gone; then just free.
        let _ = POOL.try_with(|p| {
            let mut pool = p.borrow_mut();
            pool.push(buf);
            if pool.len() > KEEP {
                // Drop the smallest: the large ones are the expensive ones to zero again.
                let i = (0..pool.len())
                    .min_by_key(|&i| pool[i].len())
                    .expect("non-empty");
                pool.swap_remove(i);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_reused_and_sized() {
        let a = Scratch::take(1000);
        assert_eq!(a.len(), 1000);
        let ptr = a.as_ptr();
        drop(a);
        let mut b = Scratch::take(10);
        assert_eq!(b.len(), 10);
        assert_eq!(b.as_ptr(), ptr, "the kept buffer is handed out again");
        b[9] = 1.0;
        let c = Scratch::take(5000);
        assert_eq!(c.len(), 5000);
        assert!(c.iter().all(|v| *v == 0.0), "a new buffer starts zeroed");
    }
}
