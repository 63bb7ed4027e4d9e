//! The AVX-512 pieces (and, in `avx2`, their AVX2 + FMA twins) of the Winograd convolution F(4×4, 3×3) (Lavin & Gray, "Fast Algorithms
//! for Convolutional Neural Networks", CVPR 2016): the input tile transform `V = Bᵀ d B`, the
//! output tile transform `Y = Aᵀ M A`, and the 16 × 16 transpose that moves between NCHW
//! (pixels contiguous) and the channel-vectorised layout the transforms work in (16 channels per
//! zmm register). The filter transform `U = G g Gᵀ` is scalar, in the parent module.
//!
//! Every function checks its slices before the unsafe intrinsics, so a caller with a wrong
//! offset gets a panic, never an out-of-bounds access.
//!
//! The matrices, with interpolation points 0, ±1, ±2 and ∞:
//!
//! ```text
//!      ⎡4  0 −5  0  1  0⎤        ⎡ 1/4     0     0 ⎤        ⎡1  1  1  1  1  0⎤
//!      ⎢0 −4 −4  1  1  0⎥        ⎢−1/6  −1/6  −1/6 ⎥   Aᵀ = ⎢0  1 −1  2 −2  0⎥
//! Bᵀ = ⎢0  4 −4 −1  1  0⎥    G = ⎢−1/6   1/6  −1/6 ⎥        ⎢0  1  1  4  4  0⎥
//!      ⎢0 −2 −1  2  1  0⎥        ⎢1/24  1/12   1/6 ⎥        ⎣0  1 −1  8 −8  1⎦
//!      ⎢0  2 −1 −2  1  0⎥        ⎢1/24 −1/12   1/6 ⎥
//!      ⎣0  4  0 −5  0  1⎦        ⎣  0     0     1  ⎦
//! ```

/// Floats per vector: the channel block of the blocked layout.
pub(crate) const LANES: usize = 16;

/// The transposed 16 × 16 block: `out[j][i] = rows[i][j]`.
#[cfg(test)]
pub(crate) fn transpose16(rows: &[[f32; LANES]; LANES]) -> [[f32; LANES]; LANES] {
    assert!(crate::microkernel::avx512());
    // SAFETY: AVX-512F is present (asserted); the arrays are exactly 16 × 16 floats.
    #[cfg(target_arch = "x86_64")]
    unsafe {
        x86::transpose_arrays(rows)
    }
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("AVX-512 is x86-64 only")
}

/// 16 rows transposed into pixel-major vectors: `src[l]` is a row of at least `w` floats
/// (`None`: zeros), and `dst[x·stride + l]` receives `src[l][x]` for `x < w` — one 64-byte run
/// of 16 lanes per pixel, `stride` floats apart (16 for the channel-blocked layout of
/// [`super::layout`]). Nothing else of `dst` is written.
pub(crate) fn block_row(src: &[Option<&[f32]>; LANES], w: usize, dst: &mut [f32], stride: usize) {
    assert!(src.iter().flatten().all(|r| r.len() >= w));
    assert!(stride >= LANES && (w == 0 || dst.len() >= (w - 1) * stride + LANES));
    if !crate::microkernel::avx512() {
        #[cfg(target_arch = "x86_64")]
        if crate::microkernel::available() {
            // SAFETY: AVX2 + FMA is present; the rows and `dst` extents are checked above.
            unsafe { avx2::block_row(src, w, dst.as_mut_ptr(), stride) };
            return;
        }
        // No vector ISA: one pixel's 16 lanes at a time.
        for x in 0..w {
            let out = &mut dst[x * stride..][..LANES];
            for (o, row) in out.iter_mut().zip(src) {
                *o = row.map_or(0.0, |r| r[x]);
            }
        }
        return;
    }
    #[cfg(target_arch = "x86_64")]
    // SAFETY: AVX-512F is present; every load is masked to the `w` floats of a checked row and
    // every store goes to `dst[x·stride..][..16]` for `x < w` (checked).
    unsafe {
        x86::block_row(src, w, dst, stride)
    }
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("AVX-512 is x86-64 only")
}

/// Input transform of one 6 × 6 tile of 16 channels: `src[i·row + j·16 ..][..16]` is the patch
/// at (i, j); `dst[ξ·stride ..][..16]` receives `V[ξ]`, ξ = 6a + b.
pub(crate) fn input_tile(src: &[f32], row: usize, dst: &mut [f32], stride: usize) {
    assert!(
        src.len() >= 5 * row + 6 * LANES,
        "winograd: input tile out of bounds"
    );
    assert!(
        dst.len() >= 35 * stride + LANES,
        "winograd: V out of bounds"
    );
    let avx512 = crate::microkernel::avx512();
    assert!(avx512 || crate::microkernel::available());
    // SAFETY: AVX-512F, or AVX2 + FMA, is present; loads and stores stay inside the checked extents.
    #[cfg(target_arch = "x86_64")]
    unsafe {
        if avx512 {
            x86::input_tile(src.as_ptr(), row, dst.as_mut_ptr(), stride)
        } else {
            avx2::input_tile(src.as_ptr(), row, dst.as_mut_ptr(), stride)
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("AVX-512 is x86-64 only")
}

/// Gradient transform of one 4 × 4 tile of `dY`, 16 channels: `src[i·row + j·16 ..][..16]` is
/// `dY` at (i, j); `dst[ξ·stride ..][..16]` receives `dM[ξ] = (A dY Aᵀ)[ξ]`, the gradient of
/// the tile's `M` (the transpose of the output transform).
pub(crate) fn grad_tile(src: &[f32], row: usize, dst: &mut [f32], stride: usize) {
    assert!(
        src.len() >= 3 * row + 4 * LANES,
        "winograd: dY tile out of bounds"
    );
    assert!(
        dst.len() >= 35 * stride + LANES,
        "winograd: dM out of bounds"
    );
    let avx512 = crate::microkernel::avx512();
    assert!(avx512 || crate::microkernel::available());
    #[cfg(target_arch = "x86_64")]
    // SAFETY: AVX-512F, or AVX2 + FMA, is present; loads and stores stay inside the checked extents.
    unsafe {
        if avx512 {
            x86::grad_tile(src.as_ptr(), row, dst.as_mut_ptr(), stride)
        } else {
            avx2::grad_tile(src.as_ptr(), row, dst.as_mut_ptr(), stride)
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("AVX-512 is x86-64 only")
}

/// Filter transform of 16 kernels: `g[tap·16 + l]` is tap `tap` (row-major 3 × 3) of kernel
/// `l` — taps in reverse order with `flip` (the kernel rotated by 180°); `dst[ξ·stride ..][..16]`
/// receives `U[ξ] = (G g Gᵀ)[ξ]`.
pub(crate) fn filter_tile(g: &[f32], flip: bool, dst: &mut [f32], stride: usize) {
    assert!(g.len() >= 9 * LANES, "winograd: kernel block too short");
    assert!(
        dst.len() >= 35 * stride + LANES,
        "winograd: U out of bounds"
    );
    let avx512 = crate::microkernel::avx512();
    assert!(avx512 || crate::microkernel::available());
    #[cfg(target_arch = "x86_64")]
    // SAFETY: AVX-512F, or AVX2 + FMA, is present; loads and stores stay inside the checked extents.
    unsafe {
        if avx512 {
            x86::filter_tile(g.as_ptr(), flip, dst.as_mut_ptr(), stride)
        } else {
            avx2::filter_tile(g.as_ptr(), flip, dst.as_mut_ptr(), stride)
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("AVX-512 is x86-64 only")
}

/// Kernel gradient of 16 kernels from their transform: `du[ξ·stride ..][..16]` is `dU[ξ]`;
/// returns, for each kernel `l`, `Gᵀ dU G` in `out[l][..9]` (taps row-major).
pub(crate) fn filter_grad_tile(du: &[f32], stride: usize) -> [[f32; LANES]; LANES] {
    assert!(
        du.len() >= 35 * stride + LANES,
        "winograd: dU out of bounds"
    );
    let avx512 = crate::microkernel::avx512();
    assert!(avx512 || crate::microkernel::available());
    #[cfg(target_arch = "x86_64")]
    // SAFETY: AVX-512F, or AVX2 + FMA, is present; loads stay inside the checked extent.
    unsafe {
        if avx512 {
            x86::filter_grad_tile(du.as_ptr(), stride)
        } else {
            avx2::filter_grad_tile(du.as_ptr(), stride)
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("AVX-512 is x86-64 only")
}

/// Output transform of one tile of 16 channels: `m[ξ·stride ..][..16]` is `M[ξ]`; returns, for
/// each channel lane `l`, its 4 × 4 output block row-major (`out[l][4r + s]`).
pub(crate) fn output_tile(m: &[f32], stride: usize) -> [[f32; LANES]; LANES] {
    assert!(m.len() >= 35 * stride + LANES, "winograd: M out of bounds");
    let avx512 = crate::microkernel::avx512();
    assert!(avx512 || crate::microkernel::available());
    // SAFETY: AVX-512F, or AVX2 + FMA, is present; loads stay inside the checked extent.
    #[cfg(target_arch = "x86_64")]
    unsafe {
        if avx512 {
            x86::output_tile(m.as_ptr(), stride)
        } else {
            avx2::output_tile(m.as_ptr(), stride)
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("AVX-512 is x86-64 only")
}

#[cfg(target_arch = "x86_64")]
mod avx2;

// The transforms fill columns of 6 × 6 (or 6 × 4) tiles by index: clearer than iterators.
#[allow(clippy::needless_range_loop)]
#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::LANES;

    /// In-register 16 × 16 transpose: unpack pairs of rows, then pairs of pairs (as doubles),
    /// then gather 128-bit lanes in two rounds.
    #[target_feature(enable = "avx512f")]
    fn transpose(r: &mut [__m512; 16]) {
        let mut t = [_mm512_setzero_ps(); 16];
        for i in 0..8 {
            t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
            t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
        }
        let lo = |a: __m512, b: __m512| {
            _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(a), _mm512_castps_pd(b)))
        };
        let hi = |a: __m512, b: __m512| {
            _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(a), _mm512_castps_pd(b)))
        };
        for q in 0..4 {
            // 128-bit lane L of r[4q + j] holds rows 4q..4q+4 of column 4L + j.
            r[4 * q] = lo(t[4 * q], t[4 * q + 2]);
            r[4 * q + 1] = hi(t[4 * q], t[4 * q + 2]);
            r[4 * q + 2] = lo(t[4 * q + 1], t[4 * q + 3]);
            r[4 * q + 3] = hi(t[4 * q + 1], t[4 * q + 3]);
        }
        for j in 0..4 {
            t[j] = _mm512_shuffle_f32x4::<0x88>(r[j], r[4 + j]);
            t[4 + j] = _mm512_shuffle_f32x4::<0xdd>(r[j], r[4 + j]);
            t[8 + j] = _mm512_shuffle_f32x4::<0x88>(r[8 + j], r[12 + j]);
            t[12 + j] = _mm512_shuffle_f32x4::<0xdd>(r[8 + j], r[12 + j]);
        }
        for j in 0..4 {
            r[j] = _mm512_shuffle_f32x4::<0x88>(t[j], t[8 + j]);
            r[8 + j] = _mm512_shuffle_f32x4::<0xdd>(t[j], t[8 + j]);
            r[4 + j] = _mm512_shuffle_f32x4::<0x88>(t[4 + j], t[12 + j]);
            r[12 + j] = _mm512_shuffle_f32x4::<0xdd>(t[4 + j], t[12 + j]);
        }
    }

    #[cfg(test)]
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn transpose_arrays(rows: &[[f32; LANES]; LANES]) -> [[f32; LANES]; LANES] {
        let mut r: [__m512; 16] = std::array::from_fn(|i| _mm512_loadu_ps(rows[i].as_ptr()));
        transpose(&mut r);
        let mut out = [[0f32; LANES]; LANES];
        for (o, v) in out.iter_mut().zip(&r) {
            _mm512_storeu_ps(o.as_mut_ptr(), *v);
        }
        out
    }

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn block_row(
        src: &[Option<&[f32]>; LANES],
        w: usize,
        dst: &mut [f32],
        stride: usize,
    ) {
        let d = dst.as_mut_ptr();
        for x0 in (0..w).step_by(LANES) {
            let n = LANES.min(w - x0);
            let m = ((1u32 << n) - 1) as __mmask16;
            let mut r: [__m512; 16] = std::array::from_fn(|l| match src[l] {
                Some(row) => _mm512_maskz_loadu_ps(m, row.as_ptr().add(x0)),
                None => _mm512_setzero_ps(),
            });
            transpose(&mut r);
            for (j, v) in r.iter().enumerate().take(n) {
                _mm512_storeu_ps(d.add((x0 + j) * stride), *v);
            }
        }
    }

    /// `Bᵀ d` for one column of six vectors.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn bt(d: [__m512; 6]) -> [__m512; 6] {
        let (four, five, two) = (
            _mm512_set1_ps(4.0),
            _mm512_set1_ps(5.0),
            _mm512_set1_ps(2.0),
        );
        {
            let d12 = _mm512_add_ps(d[1], d[2]);
            let d34 = _mm512_add_ps(d[3], d[4]);
            let d1m2 = _mm512_sub_ps(d[1], d[2]);
            let d4m3 = _mm512_sub_ps(d[4], d[3]);
            let d3m1 = _mm512_sub_ps(d[3], d[1]);
            let d4m2 = _mm512_sub_ps(d[4], d[2]);
            [
                _mm512_fmadd_ps(four, d[0], _mm512_fnmadd_ps(five, d[2], d[4])),
                _mm512_fnmadd_ps(four, d12, d34),
                _mm512_fmadd_ps(four, d1m2, d4m3),
                _mm512_fmadd_ps(two, d3m1, d4m2),
                _mm512_fnmadd_ps(two, d3m1, d4m2),
                _mm512_fmadd_ps(four, d[1], _mm512_fnmadd_ps(five, d[3], d[5])),
            ]
        }
    }

    /// `Aᵀ m` for one column of six vectors.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn at(m: [__m512; 6]) -> [__m512; 4] {
        {
            let a = _mm512_add_ps(m[1], m[2]);
            let b = _mm512_sub_ps(m[1], m[2]);
            let c = _mm512_add_ps(m[3], m[4]);
            let d = _mm512_sub_ps(m[3], m[4]);
            let (two, four, eight) = (
                _mm512_set1_ps(2.0),
                _mm512_set1_ps(4.0),
                _mm512_set1_ps(8.0),
            );
            [
                _mm512_add_ps(_mm512_add_ps(m[0], a), c),
                _mm512_fmadd_ps(two, d, b),
                _mm512_fmadd_ps(four, c, a),
                _mm512_add_ps(_mm512_fmadd_ps(eight, d, b), m[5]),
            ]
        }
    }

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn input_tile(src: *const f32, row: usize, dst: *mut f32, stride: usize) {
        let mut t = [[_mm512_setzero_ps(); 6]; 6];
        for j in 0..6 {
            let d: [__m512; 6] =
                std::array::from_fn(|i| _mm512_loadu_ps(src.add(i * row + j * LANES)));
            for (a, v) in bt(d).into_iter().enumerate() {
                t[a][j] = v;
            }
        }
        for (a, ta) in t.iter().enumerate() {
            for (b, v) in bt(*ta).into_iter().enumerate() {
                _mm512_storeu_ps(dst.add((6 * a + b) * stride), v);
            }
        }
    }

    /// `G g` for one column of three vectors.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn g3(a: __m512, b: __m512, c: __m512) -> [__m512; 6] {
        let sixth = _mm512_set1_ps(-1.0 / 6.0);
        let s = _mm512_add_ps(a, c);
        let p = _mm512_fmadd_ps(
            a,
            _mm512_set1_ps(1.0 / 24.0),
            _mm512_mul_ps(c, _mm512_set1_ps(1.0 / 6.0)),
        );
        let q = _mm512_mul_ps(b, _mm512_set1_ps(1.0 / 12.0));
        [
            _mm512_mul_ps(a, _mm512_set1_ps(0.25)),
            _mm512_mul_ps(_mm512_add_ps(s, b), sixth),
            _mm512_mul_ps(_mm512_sub_ps(s, b), sixth),
            _mm512_add_ps(p, q),
            _mm512_sub_ps(p, q),
            c,
        ]
    }

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn filter_tile(g: *const f32, flip: bool, dst: *mut f32, stride: usize) {
        let tap = |t: usize| _mm512_loadu_ps(g.add(if flip { 8 - t } else { t } * LANES));
        // Along ky for each column kx, then along kx for each transformed row.
        let t: [[__m512; 6]; 3] = std::array::from_fn(|j| g3(tap(j), tap(3 + j), tap(6 + j)));
        for a_ in 0..6 {
            for (b, v) in g3(t[0][a_], t[1][a_], t[2][a_]).into_iter().enumerate() {
                _mm512_storeu_ps(dst.add((6 * a_ + b) * stride), v);
            }
        }
    }

    /// `Gᵀ u` for one column of six vectors.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn gt6(u: [__m512; 6]) -> [__m512; 3] {
        let s12 = _mm512_add_ps(u[1], u[2]);
        let s34 = _mm512_add_ps(u[3], u[4]);
        let (sixth, twelfth, quarter) = (
            _mm512_set1_ps(1.0 / 6.0),
            _mm512_set1_ps(1.0 / 12.0),
            _mm512_set1_ps(0.25),
        );
        [
            _mm512_fmadd_ps(
                u[0],
                quarter,
                _mm512_fmadd_ps(
                    s34,
                    _mm512_set1_ps(1.0 / 24.0),
                    _mm512_mul_ps(s12, _mm512_set1_ps(-1.0 / 6.0)),
                ),
            ),
            _mm512_fmadd_ps(
                _mm512_sub_ps(u[2], u[1]),
                sixth,
                _mm512_mul_ps(_mm512_sub_ps(u[3], u[4]), twelfth),
            ),
            _mm512_fmadd_ps(_mm512_sub_ps(s34, s12), sixth, u[5]),
        ]
    }

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn filter_grad_tile(du: *const f32, stride: usize) -> [[f32; LANES]; LANES] {
        // Along a for each column b, then along b for each of the three rows.
        let mut t = [[_mm512_setzero_ps(); 6]; 3];
        for b in 0..6 {
            let col: [__m512; 6] =
                std::array::from_fn(|a_| _mm512_loadu_ps(du.add((6 * a_ + b) * stride)));
            for (i, v) in gt6(col).into_iter().enumerate() {
                t[i][b] = v;
            }
        }
        let mut g = [_mm512_setzero_ps(); 16];
        for (i, ti) in t.iter().enumerate() {
            for (j, v) in gt6(*ti).into_iter().enumerate() {
                g[3 * i + j] = v;
            }
        }
        transpose(&mut g);
        let mut out = [[0f32; LANES]; LANES];
        for (o, v) in out.iter_mut().zip(&g) {
            _mm512_storeu_ps(o.as_mut_ptr(), *v);
        }
        out
    }

    /// `A y` for one column of four vectors (A = (Aᵀ)ᵀ, 6 × 4).
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn a(y: [__m512; 4]) -> [__m512; 6] {
        let (two, four, eight) = (
            _mm512_set1_ps(2.0),
            _mm512_set1_ps(4.0),
            _mm512_set1_ps(8.0),
        );
        let even = _mm512_add_ps(y[0], y[2]);
        let odd = _mm512_add_ps(y[1], y[3]);
        let even4 = _mm512_fmadd_ps(four, y[2], y[0]);
        let odd8 = _mm512_fmadd_ps(eight, y[3], _mm512_mul_ps(two, y[1]));
        [
            y[0],
            _mm512_add_ps(even, odd),
            _mm512_sub_ps(even, odd),
            _mm512_add_ps(even4, odd8),
            _mm512_sub_ps(even4, odd8),
            y[3],
        ]
    }

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn grad_tile(src: *const f32, row: usize, dst: *mut f32, stride: usize) {
        let mut t = [[_mm512_setzero_ps(); 4]; 6];
        for j in 0..4 {
            let y: [__m512; 4] =
                std::array::from_fn(|i| _mm512_loadu_ps(src.add(i * row + j * LANES)));
            for (a_, v) in a(y).into_iter().enumerate() {
                t[a_][j] = v;
            }
        }
        for (a_, ta) in t.iter().enumerate() {
            for (b, v) in a(*ta).into_iter().enumerate() {
                _mm512_storeu_ps(dst.add((6 * a_ + b) * stride), v);
            }
        }
    }

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn output_tile(m: *const f32, stride: usize) -> [[f32; LANES]; LANES] {
        let mut t = [[_mm512_setzero_ps(); 6]; 4];
        for b in 0..6 {
            let col: [__m512; 6] =
                std::array::from_fn(|a| _mm512_loadu_ps(m.add((6 * a + b) * stride)));
            for (r, v) in at(col).into_iter().enumerate() {
                t[r][b] = v;
            }
        }
        let mut y = [_mm512_setzero_ps(); 16];
        for (r, tr) in t.iter().enumerate() {
            for (s, v) in at(*tr).into_iter().enumerate() {
                y[4 * r + s] = v;
            }
        }
        transpose(&mut y);
        let mut out = [[0f32; LANES]; LANES];
        for (o, v) in out.iter_mut().zip(&y) {
            _mm512_storeu_ps(o.as_mut_ptr(), *v);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transpose16_transposes() {
        if !crate::microkernel::avx512() {
            return;
        }
        let rows: [[f32; 16]; 16] =
            std::array::from_fn(|i| std::array::from_fn(|j| (i * 16 + j) as f32));
        let t = transpose16(&rows);
        for i in 0..16 {
            for j in 0..16 {
                assert_eq!(t[j][i], rows[i][j], "({i}, {j})");
            }
        }
    }
}
