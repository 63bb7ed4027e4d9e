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

/// The 16 × 16 transpose of the AVX-512 code, through memory.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn transpose(r: &mut [V; 16]) {
    let mut m = [[0f32; LANES]; LANES];
    for (row, v) in m.iter_mut().zip(r.iter()) {
        // SAFETY: `row` holds 16 floats.
        unsafe { storeu(row.as_mut_ptr(), *v) };
    }
    for (j, v) in r.iter_mut().enumerate() {
        let col: [f32; LANES] = std::array::from_fn(|i| m[i][j]);
        // SAFETY: `col` holds 16 floats.
        *v = unsafe { loadu(col.as_ptr()) };
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
