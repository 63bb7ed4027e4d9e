//! A bounds-checked wrapper around `gemm::gemm` for f32 matrices given by strides.
//!
//! Convolutions feed gemm transposed views (Wᵀ, colᵀ) without copying them; the strides say how
//! to walk the underlying slice. The wrapper checks that every element a view can reach lies
//! inside its slice before handing raw pointers to gemm.

use gemm::Parallelism;

/// A `rows × cols` matrix inside `data`: element (r, c) is `data[r·rs + c·cs]`.
#[derive(Clone, Copy)]
pub(crate) struct MatRef<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub rs: usize,
    pub cs: usize,
}

impl<'a> MatRef<'a> {
    /// A row-major matrix with row stride `cols`.
    pub fn row_major(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self {
            data,
            rows,
            cols,
            rs: cols,
            cs: 1,
        }
    }

    /// The transpose of this view (no copy).
    pub fn t(self) -> Self {
        Self {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
        }
    }

    fn reach(&self) -> usize {
        if self.rows == 0 || self.cols == 0 {
            0
        } else {
            (self.rows - 1) * self.rs + (self.cols - 1) * self.cs + 1
        }
    }
}

/// `dst[m × n] (row stride dst_rs) = (accumulate ? dst : 0) + a[m × k] · b[k × n]`, with gemm's
/// AVX-512 / AVX2 kernels, parallel over the rayon pool.
pub(crate) fn sgemm(
    dst: &mut [f32],
    dst_rs: usize,
    a: MatRef<'_>,
    b: MatRef<'_>,
    accumulate: bool,
) {
    sgemm_with(dst, dst_rs, a, b, accumulate, Parallelism::Rayon(0))
}

/// [`sgemm`] on the calling thread only, for callers that parallelise around it.
pub(crate) fn sgemm_serial(
    dst: &mut [f32],
    dst_rs: usize,
    a: MatRef<'_>,
    b: MatRef<'_>,
    accumulate: bool,
) {
    sgemm_with(dst, dst_rs, a, b, accumulate, Parallelism::None)
}

fn sgemm_with(
    dst: &mut [f32],
    dst_rs: usize,
    a: MatRef<'_>,
    b: MatRef<'_>,
    accumulate: bool,
    parallelism: Parallelism,
) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(b.rows, k, "sgemm: inner dimensions differ");
    assert!(
        a.reach() <= a.data.len() && b.reach() <= b.data.len(),
        "sgemm: view out of bounds"
    );
    if m == 0 || n == 0 {
        return;
    }
    assert!(
        (m - 1) * dst_rs + n <= dst.len() && n <= dst_rs,
        "sgemm: destination out of bounds"
    );
    if k == 0 {
        if !accumulate {
            for r in 0..m {
                dst[r * dst_rs..r * dst_rs + n].fill(0.0);
            }
        }
        return;
    }
    // SAFETY: the asserts above keep every index gemm can form inside the three slices; dst is
    // borrowed mutably and does not alias a or b (distinct borrows).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_rs as isize,
            accumulate,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_a_naive_product_with_transposed_views() {
        let (m, k, n) = (5, 7, 3);
        let a: Vec<f32> = (0..m * k).map(|i| (i % 11) as f32 - 5.0).collect();
        let bt: Vec<f32> = (0..n * k).map(|i| (i % 7) as f32 * 0.5).collect(); // n x k
        let mut dst = vec![1.0; m * n];
        let av = MatRef::row_major(&a, m, k);
        let bv = MatRef::row_major(&bt, n, k).t();
        sgemm(&mut dst, n, av, bv, true);
        for r in 0..m {
            for c in 0..n {
                let want: f32 = 1.0 + (0..k).map(|i| a[r * k + i] * bt[c * k + i]).sum::<f32>();
                assert!((dst[r * n + c] - want).abs() < 1e-4);
            }
        }
    }
}
