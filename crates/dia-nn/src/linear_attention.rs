//! The core of the UNet's `LinearAttention` (spec §2.1): from the `to_qkv` output, per head,
//! q softmaxed over the feature axis and scaled by `dim_head^−½`, k softmaxed over the spatial
//! axis, `v/(H·W)`, `context = k·vᵀ`, `out = contextᵀ·q`.
//!
//! As candle ops that is two softmaxes (five passes each), three transposing copies and two
//! small batched matrix products: about a tenth of a dissolving UNet forward on the CPU, most
//! of it memory traffic on (B, 384, H, W) tensors (perf, docs/benchmarks.md). Where nothing
//! records a gradient (dissolving, sampling) [`linear_attention`] runs one op instead that
//! reads q, k and v in place and does each head in one pass over cache-sized rows. DDPM
//! training, other devices and the portable policy run the candle ops, whose autograd is the
//! backward.

use candle_core::{bail, CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::fast_exp;
use crate::storage::cpu_slice;

/// The fused forward of one (image, head) at a time; no backward (see the module doc).
struct LinearAttentionOp {
    heads: usize,
    dim_head: usize,
}

/// `Σ a[i]·b[i]` in eight interleaved partial sums, which the compiler keeps in one vector
/// register (a single running sum would be a serial chain it may not reorder).
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (a8, a_rest) = a.as_chunks::<8>();
    let (b8, b_rest) = b.as_chunks::<8>();
    for (x, y) in a8.iter().zip(b8) {
        for j in 0..8 {
            acc[j] += x[j] * y[j];
        }
    }
    let tail: f32 = a_rest.iter().zip(b_rest).map(|(x, y)| x * y).sum();
    acc.iter().sum::<f32>() + tail
}

/// `max(row)` in eight interleaved lanes (vector code; max is exact in any order).
#[inline(always)]
fn max8(row: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; 8];
    let (r8, rest) = row.as_chunks::<8>();
    for x in r8 {
        for j in 0..8 {
            acc[j] = acc[j].max(x[j]);
        }
    }
    rest.iter()
        .chain(&acc)
        .copied()
        .fold(f32::NEG_INFINITY, f32::max)
}

/// `Σ row` in eight interleaved partial sums, as [`dot`].
#[inline(always)]
fn sum8(row: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (r8, rest) = row.as_chunks::<8>();
    for x in r8 {
        for j in 0..8 {
            acc[j] += x[j];
        }
    }
    acc.iter().sum::<f32>() + rest.iter().sum::<f32>()
}

/// `row ← exp(row − max(row)) / Σ exp(row − max(row))`, candle's softmax on one row, in three
/// vectorisable passes (a running sum in the `exp` loop would keep it scalar).
#[inline(always)]
fn softmax_row(row: &mut [f32]) {
    let max = max8(row);
    for v in row.iter_mut() {
        *v = fast_exp::exp(*v - max);
    }
    let sum = sum8(row);
    for v in row.iter_mut() {
        *v /= sum;
    }
}

impl LinearAttentionOp {
    /// One head: `q`, `k`, `v` are `dim_head` rows of `n` pixels; writes `out` (same shape).
    /// In AVX2 code where the CPU has it: the same operations (Rust never fuses a multiply and
    /// an add), eight lanes at a time.
    fn head(&self, q: &[f32], k: &[f32], v: &[f32], n: usize, out: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if crate::isa::cpu_isa().is_some() {
            // SAFETY: the CPU has AVX2 and FMA (cpu_isa).
            return unsafe { self.head_avx2(q, k, v, n, out) };
        }
        self.head_body(q, k, v, n, out)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn head_avx2(&self, q: &[f32], k: &[f32], v: &[f32], n: usize, out: &mut [f32]) {
        self.head_body(q, k, v, n, out)
    }

    #[inline(always)]
    fn head_body(&self, q: &[f32], k: &[f32], v: &[f32], n: usize, out: &mut [f32]) {
        let dh = self.dim_head;
        let scale = (dh as f64).powf(-0.5) as f32;
        let inv_n = (1.0 / n as f64) as f32;
        // k over pixels, row by row.
        let mut ks = k.to_vec();
        ks.chunks_mut(n).for_each(softmax_row);
        // context[d][e] = Σ_n k̂[d, n]·v[e, n]/n.
        let vs: Vec<f32> = v.iter().map(|x| x * inv_n).collect();
        let mut context = vec![0f32; dh * dh];
        for (d, kd) in ks.chunks(n).enumerate() {
            for (e, ve) in vs.chunks(n).enumerate() {
                context[d * dh + e] = dot(kd, ve);
            }
        }
        // q over features, column by column: max and sum along d for every pixel at once.
        let mut max = vec![f32::NEG_INFINITY; n];
        for qd in q.chunks(n) {
            for (m, &x) in max.iter_mut().zip(qd) {
                *m = m.max(x);
            }
        }
        let mut qs = vec![0f32; dh * n];
        let mut sum = vec![0f32; n];
        for (qsd, qd) in qs.chunks_mut(n).zip(q.chunks(n)) {
            for ((o, &x), &m) in qsd.iter_mut().zip(qd).zip(&max) {
                *o = fast_exp::exp(x - m);
            }
            for (s, &o) in sum.iter_mut().zip(qsd.iter()) {
                *s += o;
            }
        }
        for qsd in qs.chunks_mut(n) {
            for (o, &s) in qsd.iter_mut().zip(&sum) {
                *o = *o / s * scale;
            }
        }
        // out[e, n] = Σ_d context[d][e]·q̂[d, n].
        out.fill(0.0);
        for (e, oe) in out.chunks_mut(n).enumerate() {
            for (d, qsd) in qs.chunks(n).enumerate() {
                let c = context[d * dh + e];
                for (o, &x) in oe.iter_mut().zip(qsd) {
                    *o += c * x;
                }
            }
        }
    }
}

impl CustomOp1 for LinearAttentionOp {
    fn name(&self) -> &'static str {
        "dia-linear-attention"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (b, c, h, w) = l.shape().dims4()?;
        let (heads, dh) = (self.heads, self.dim_head);
        if c != 3 * heads * dh {
            bail!("linear attention: {c} channels for 3 × {heads} heads × {dh}")
        }
        let x = cpu_slice(s, l, "linear attention")?;
        let n = h * w;
        let hidden = heads * dh;
        let mut y = vec![0f32; b * hidden * n];
        if n > 0 {
            // Output block (image i, head j) is channels j·dh.. of image i; q, k, v of that head
            // are channel blocks j, heads + j and 2·heads + j of the image's qkv.
            y.par_chunks_mut(dh * n).enumerate().for_each(|(t, out)| {
                let (i, j) = (t / heads, t % heads);
                let block = |part: usize| &x[((i * 3 + part) * hidden + j * dh) * n..][..dh * n];
                self.head(block(0), block(1), block(2), n, out);
            });
        }
        Ok((CpuStorage::F32(y), Shape::from((b, hidden, h, w))))
    }
}

/// `candle_nn::ops::softmax`, written out (dia-nn depends on candle-core only).
fn softmax(xs: &Tensor, dim: usize) -> Result<Tensor> {
    let max = xs.max_keepdim(dim)?;
    let num = xs.broadcast_sub(&max)?.exp()?;
    num.broadcast_div(&num.sum_keepdim(dim)?)
}

/// The candle ops of the same formula (the portable path, and the one that trains).
fn portable(qkv: &Tensor, heads: usize, dim_head: usize) -> Result<Tensor> {
    let (b, _, h, w) = qkv.dims4()?;
    let qkv = qkv.reshape((b, 3, heads, dim_head, h * w))?;
    let part = |i| qkv.narrow(1, i, 1)?.squeeze(1);
    let (q, k, v) = (part(0)?, part(1)?, part(2)?);
    let q = (softmax(&q, 2)? * (dim_head as f64).powf(-0.5))?;
    let k = softmax(&k, 3)?;
    let v = (v / (h * w) as f64)?;
    // context[d, e] = Σ_n k[d, n]·v[e, n]; out[e, n] = Σ_d context[d, e]·q[d, n].
    let context = k.contiguous()?.matmul(&v.t()?.contiguous()?)?;
    let out = context.t()?.contiguous()?.matmul(&q.contiguous()?)?;
    out.reshape((b, heads * dim_head, h, w))
}

/// The attention of the UNet's `LinearAttention` on the `to_qkv` output `qkv` (B, 3·heads·
/// dim_head, H, W), channels ordered q, k, v and within each head-major: (B, heads·dim_head,
/// H, W), channel `head·dim_head + e`. Fused on the CPU when nothing records a gradient.
///
/// ```
/// use candle_core::{Device, Tensor};
/// // One head of two features on two pixels: v is averaged over the pixels k weights.
/// let qkv = Tensor::new(&[0f32, 0., 0., 0., 1., 1., 1., 1., 2., 2., 4., 4.], &Device::Cpu)?
///     .reshape((1, 6, 1, 2))?;
/// let y = dia_nn::linear_attention(&qkv, 1, 2)?;
/// assert_eq!(y.dims(), [1, 2, 1, 2]);
/// # Ok::<(), candle_core::Error>(())
/// ```
pub fn linear_attention(qkv: &Tensor, heads: usize, dim_head: usize) -> Result<Tensor> {
    let (_, c, _, _) = qkv.dims4()?;
    if heads == 0 || dim_head == 0 || c != 3 * heads * dim_head {
        bail!("linear attention: {c} channels for 3 × {heads} heads × {dim_head}")
    }
    if crate::kernels::use_fast(&[qkv]) && !qkv.track_op() {
        let op = LinearAttentionOp { heads, dim_head };
        return qkv.contiguous()?.apply_op1_no_bwd(&op);
    }
    portable(qkv, heads, dim_head)
}
