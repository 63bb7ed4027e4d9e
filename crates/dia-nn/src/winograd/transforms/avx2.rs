//! The Winograd transforms of the parent module on AVX2 + FMA (issue #17): the same code as
//! the AVX-512 one, line for line, on a 16-lane vector [`V`] held in two ymm registers, so that
//! the channel-blocked layout (16 channels per vector) and everything around it stay as they
//! are. The 16 × 16 transposes go through memory (AVX2 has no 512-bit shuffles); they move
//! 1 KiB per output tile against the ~200 vector operations of its transforms.

// The transforms fill columns of 6 × 6 (or 6 × 4) tiles by index, as the AVX-512 code does.
#![allow(clippy::needless_range_loop)]

use std::arch::x86_64::*;

use super::LANES;

/// 16 floats: lanes 0..8 and 8..16.
#[derive(Clone, Copy)]
pub(super) struct V(__m256, __m256);

#[inline]
#[target_feature(enable = "avx2,fma")]
fn add(a: V, b: V) -> V {
    V(_mm256_add_ps(a.0, b.0), _mm256_add_ps(a.1, b.1))
}

#[inline]
#[target_feature(enable = "avx2,fma")]
fn sub(a: V, b: V) -> V {
    V(_mm256_sub_ps(a.0, b.0), _mm256_sub_ps(a.1, b.1))
}

#[inline]
#[target_feature(enable = "avx2,fma")]
fn mul(a: V, b: V) -> V {
    V(_mm256_mul_ps(a.0, b.0), _mm256_mul_ps(a.1, b.1))
}

/// `a·b + c`.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn fmadd(a: V, b: V, c: V) -> V {
    V(
        _mm256_fmadd_ps(a.0, b.0, c.0),
        _mm256_fmadd_ps(a.1, b.1, c.1),
    )
}

/// `c − a·b`.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn fnmadd(a: V, b: V, c: V) -> V {
    V(
        _mm256_fnmadd_ps(a.0, b.0, c.0),
        _mm256_fnmadd_ps(a.1, b.1, c.1),
    )
}

#[inline]
#[target_feature(enable = "avx2,fma")]
fn set1(x: f32) -> V {
    V(_mm256_set1_ps(x), _mm256_set1_ps(x))
}

#[inline]
#[target_feature(enable = "avx2,fma")]
fn zero() -> V {
    V(_mm256_setzero_ps(), _mm256_setzero_ps())
}

/// Loads 16 floats from `p`.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn loadu(p: *const f32) -> V {
    V(_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(8)))
}

/// Stores 16 floats at `p`.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn storeu(p: *mut f32, v: V) {
    _mm256_storeu_ps(p, v.0);
    _mm256_storeu_ps(p.add(8), v.1);
}

/// The 8 × 8 transpose in registers: `out[j]` holds lane `j` of `r[0..8]` (unpack, shuffle,
/// then swap 128-bit halves; 24 shuffles).
#[inline]
#[target_feature(enable = "avx2,fma")]
fn transpose8(r: [__m256; 8]) -> [__m256; 8] {
    // t: pairs of rows interleaved; s: quads of rows, each 128-bit half one column.
    let t: [__m256; 8] = std::array::from_fn(|i| {
        let (a, b) = (r[2 * (i / 2)], r[2 * (i / 2) + 1]);
        if i % 2 == 0 {
            _mm256_unpacklo_ps(a, b)
        } else {
            _mm256_unpackhi_ps(a, b)
        }
    });
    let s: [__m256; 8] = std::array::from_fn(|i| {
        // s[4h + 2p + q]: rows 4h..4h+4, columns 2p + q and 2p + q + 4.
        let (h, p, q) = (i / 4, (i / 2) % 2, i % 2);
        let (a, b) = (t[4 * h + p], t[4 * h + 2 + p]);
        if q == 0 {
            _mm256_shuffle_ps::<0x44>(a, b)
        } else {
            _mm256_shuffle_ps::<0xee>(a, b)
        }
    });
    std::array::from_fn(|j| {
        let (lo, hi) = (s[j % 4], s[4 + j % 4]);
        if j < 4 {
            _mm256_permute2f128_ps::<0x20>(lo, hi)
        } else {
            _mm256_permute2f128_ps::<0x31>(lo, hi)
        }
    })
}

/// The 16 × 16 transpose of the AVX-512 code, as four 8 × 8 transposes in registers:
/// `r[j]` becomes column `j` of the rows it held.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn transpose(r: &mut [V; 16]) {
    let quarter = |rows: usize, hi: bool| {
        transpose8(std::array::from_fn(|i| {
            let v = r[rows + i];
            if hi {
                v.1
            } else {
                v.0
            }
        }))
    };
    // Columns 0..8 of rows 0..8 and 8..16, then columns 8..16 of both.
    let (a, b, c, d) = (
        quarter(0, false),
        quarter(8, false),
        quarter(0, true),
        quarter(8, true),
    );
    for j in 0..8 {
        r[j] = V(a[j], b[j]);
        r[8 + j] = V(c[j], d[j]);
    }
}

/// AVX2 `block_row` of the parent module: 16 rows of `w` floats (`None`: zeros) to `w` runs of
/// 16 lanes, `stride` floats apart; eight pixels at a time through [`transpose8`], the last
/// partial eight through a zero-padded copy.
///
/// # Safety
/// AVX2 + FMA; every `Some` row holds `w` floats, and `dst` holds `(w − 1)·stride + 16`.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn block_row(
    src: &[Option<&[f32]>; LANES],
    w: usize,
    dst: *mut f32,
    stride: usize,
) {
    for x0 in (0..w).step_by(8) {
        let n = 8.min(w - x0);
        let load = |l: usize| match src[l] {
            Some(row) if n == 8 => _mm256_loadu_ps(row.as_ptr().add(x0)),
            Some(row) => {
                let mut tail = [0f32; 8];
                tail[..n].copy_from_slice(&row[x0..x0 + n]);
                _mm256_loadu_ps(tail.as_ptr())
            }
            None => _mm256_setzero_ps(),
        };
        let lo = transpose8(std::array::from_fn(load));
        let hi = transpose8(std::array::from_fn(|l| load(8 + l)));
        for j in 0..n {
            let p = dst.add((x0 + j) * stride);
            _mm256_storeu_ps(p, lo[j]);
            _mm256_storeu_ps(p.add(8), hi[j]);
        }
    }
}

/// `Bᵀ d` for one column of six vectors.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn bt(d: [V; 6]) -> [V; 6] {
    let (four, five, two) = (set1(4.0), set1(5.0), set1(2.0));
    {
        let d12 = add(d[1], d[2]);
        let d34 = add(d[3], d[4]);
        let d1m2 = sub(d[1], d[2]);
        let d4m3 = sub(d[4], d[3]);
        let d3m1 = sub(d[3], d[1]);
        let d4m2 = sub(d[4], d[2]);
        [
            fmadd(four, d[0], fnmadd(five, d[2], d[4])),
            fnmadd(four, d12, d34),
            fmadd(four, d1m2, d4m3),
            fmadd(two, d3m1, d4m2),
            fnmadd(two, d3m1, d4m2),
            fmadd(four, d[1], fnmadd(five, d[3], d[5])),
        ]
    }
}

/// `Aᵀ m` for one column of six vectors.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn at(m: [V; 6]) -> [V; 4] {
    {
        let a = add(m[1], m[2]);
        let b = sub(m[1], m[2]);
        let c = add(m[3], m[4]);
        let d = sub(m[3], m[4]);
        let (two, four, eight) = (set1(2.0), set1(4.0), set1(8.0));
        [
            add(add(m[0], a), c),
            fmadd(two, d, b),
            fmadd(four, c, a),
            add(fmadd(eight, d, b), m[5]),
        ]
    }
}

#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn input_tile(src: *const f32, row: usize, dst: *mut f32, stride: usize) {
    let mut t = [[zero(); 6]; 6];
    for j in 0..6 {
        let d: [V; 6] = std::array::from_fn(|i| loadu(src.add(i * row + j * LANES)));
        for (a, v) in bt(d).into_iter().enumerate() {
            t[a][j] = v;
        }
    }
    for (a, ta) in t.iter().enumerate() {
        for (b, v) in bt(*ta).into_iter().enumerate() {
            storeu(dst.add((6 * a + b) * stride), v);
        }
    }
}

/// `G g` for one column of three vectors.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn g3(a: V, b: V, c: V) -> [V; 6] {
    let sixth = set1(-1.0 / 6.0);
    let s = add(a, c);
    let p = fmadd(a, set1(1.0 / 24.0), mul(c, set1(1.0 / 6.0)));
    let q = mul(b, set1(1.0 / 12.0));
    [
        mul(a, set1(0.25)),
        mul(add(s, b), sixth),
        mul(sub(s, b), sixth),
        add(p, q),
        sub(p, q),
        c,
    ]
}

#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn filter_tile(g: *const f32, flip: bool, dst: *mut f32, stride: usize) {
    let tap = |t: usize| loadu(g.add(if flip { 8 - t } else { t } * LANES));
    // Along ky for each column kx, then along kx for each transformed row.
    let t: [[V; 6]; 3] = std::array::from_fn(|j| g3(tap(j), tap(3 + j), tap(6 + j)));
    for a_ in 0..6 {
        for (b, v) in g3(t[0][a_], t[1][a_], t[2][a_]).into_iter().enumerate() {
            storeu(dst.add((6 * a_ + b) * stride), v);
        }
    }
}

/// `Gᵀ u` for one column of six vectors.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn gt6(u: [V; 6]) -> [V; 3] {
    let s12 = add(u[1], u[2]);
    let s34 = add(u[3], u[4]);
    let (sixth, twelfth, quarter) = (set1(1.0 / 6.0), set1(1.0 / 12.0), set1(0.25));
    [
        fmadd(
            u[0],
            quarter,
            fmadd(s34, set1(1.0 / 24.0), mul(s12, set1(-1.0 / 6.0))),
        ),
        fmadd(sub(u[2], u[1]), sixth, mul(sub(u[3], u[4]), twelfth)),
        fmadd(sub(s34, s12), sixth, u[5]),
    ]
}

#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn filter_grad_tile(du: *const f32, stride: usize) -> [[f32; LANES]; LANES] {
    // Along a for each column b, then along b for each of the three rows.
    let mut t = [[zero(); 6]; 3];
    for b in 0..6 {
        let col: [V; 6] = std::array::from_fn(|a_| loadu(du.add((6 * a_ + b) * stride)));
        for (i, v) in gt6(col).into_iter().enumerate() {
            t[i][b] = v;
        }
    }
    let mut g = [zero(); 16];
    for (i, ti) in t.iter().enumerate() {
        for (j, v) in gt6(*ti).into_iter().enumerate() {
            g[3 * i + j] = v;
        }
    }
    transpose(&mut g);
    let mut out = [[0f32; LANES]; LANES];
    for (o, v) in out.iter_mut().zip(&g) {
        storeu(o.as_mut_ptr(), *v);
    }
    out
}

/// `A y` for one column of four vectors (A = (Aᵀ)ᵀ, 6 × 4).
#[inline]
#[target_feature(enable = "avx2,fma")]
fn a(y: [V; 4]) -> [V; 6] {
    let (two, four, eight) = (set1(2.0), set1(4.0), set1(8.0));
    let even = add(y[0], y[2]);
    let odd = add(y[1], y[3]);
    let even4 = fmadd(four, y[2], y[0]);
    let odd8 = fmadd(eight, y[3], mul(two, y[1]));
    [
        y[0],
        add(even, odd),
        sub(even, odd),
        add(even4, odd8),
        sub(even4, odd8),
        y[3],
    ]
}

#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn grad_tile(src: *const f32, row: usize, dst: *mut f32, stride: usize) {
    let mut t = [[zero(); 4]; 6];
    for j in 0..4 {
        let y: [V; 4] = std::array::from_fn(|i| loadu(src.add(i * row + j * LANES)));
        for (a_, v) in a(y).into_iter().enumerate() {
            t[a_][j] = v;
        }
    }
    for (a_, ta) in t.iter().enumerate() {
        for (b, v) in a(*ta).into_iter().enumerate() {
            storeu(dst.add((6 * a_ + b) * stride), v);
        }
    }
}

#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn output_tile(m: *const f32, stride: usize) -> [[f32; LANES]; LANES] {
    let mut t = [[zero(); 6]; 4];
    for b in 0..6 {
        let col: [V; 6] = std::array::from_fn(|a| loadu(m.add((6 * a + b) * stride)));
        for (r, v) in at(col).into_iter().enumerate() {
            t[r][b] = v;
        }
    }
    let mut y = [zero(); 16];
    for (r, tr) in t.iter().enumerate() {
        for (s, v) in at(*tr).into_iter().enumerate() {
            y[4 * r + s] = v;
        }
    }
    transpose(&mut y);
    let mut out = [[0f32; LANES]; LANES];
    for (o, v) in out.iter_mut().zip(&y) {
        storeu(o.as_mut_ptr(), *v);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The AVX2 code runs on every CPU the kernels run on, AVX-512 ones included.
    fn avx2() -> bool {
        crate::isa::detected_isa().is_some()
    }

    #[test]
    fn transpose_transposes_16x16() {
        if !avx2() {
            return;
        }
        let rows: [[f32; LANES]; LANES] =
            std::array::from_fn(|i| std::array::from_fn(|j| (i * LANES + j) as f32));
        // SAFETY: AVX2 + FMA is present; every load and store is of a 16-float array.
        let t = unsafe {
            let mut r: [V; 16] = std::array::from_fn(|i| loadu(rows[i].as_ptr()));
            transpose(&mut r);
            let mut out = [[0f32; LANES]; LANES];
            for (o, v) in out.iter_mut().zip(&r) {
                storeu(o.as_mut_ptr(), *v);
            }
            out
        };
        for i in 0..LANES {
            for j in 0..LANES {
                assert_eq!(t[j][i], rows[i][j], "({i}, {j})");
            }
        }
    }

    /// Every width from 0 to 19 (whole eights and partial ones), absent rows, a stride wider
    /// than 16 whose gaps must stay untouched.
    #[test]
    fn block_row_matches_the_scalar_definition() {
        if !avx2() {
            return;
        }
        let stride = 20;
        for w in 0..20 {
            let data: Vec<Vec<f32>> = (0..LANES)
                .map(|l| (0..w).map(|x| (l * 100 + x) as f32 + 0.5).collect())
                .collect();
            let src: [Option<&[f32]>; LANES] =
                std::array::from_fn(|l| (l % 5 != 3).then(|| &data[l][..]));
            let len = if w == 0 { 0 } else { (w - 1) * stride + LANES };
            let mut dst = vec![-7f32; len + 3];
            // SAFETY: AVX2 + FMA; rows hold `w` floats and `dst` the checked extent.
            unsafe { block_row(&src, w, dst.as_mut_ptr(), stride) };
            for (i, &d) in dst.iter().enumerate() {
                let (x, l) = (i / stride, i % stride);
                let want = match (x < w, l < LANES) {
                    (true, true) => src[l].map_or(0.0, |r| r[x]),
                    _ => -7.0,
                };
                assert_eq!(d, want, "w {w}: pixel {x} lane {l}");
            }
        }
    }
}
