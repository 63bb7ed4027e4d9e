//! The batch statistics and the backward formula that both training ops of batch norm share:
//! `BatchNormTrain` and the ImageNet stem's fused op (`bn_relu_pool`).

use candle_core::{bail, CpuStorage, Device, Layout, Result, Tensor};

use crate::storage::cpu_slice;
use rayon::prelude::*;

/// Per-channel batch statistics of the last training forward.
#[derive(Clone, Debug, Default)]
pub(crate) struct Stats {
    pub mean: Vec<f32>,
    /// Biased variance (the one used to normalise).
    pub var: Vec<f32>,
    pub invstd: Vec<f32>,
    /// Elements per channel (N·H·W).
    pub count: usize,
}

impl Stats {
    /// The per-channel `(scale, shift)` of `y = x·scale + shift`: γ·invstd and β − mean·scale.
    pub(crate) fn affine(&self, gamma: &[f32], beta: &[f32]) -> (Vec<f32>, Vec<f32>) {
        let scale: Vec<f32> = gamma.iter().zip(&self.invstd).map(|(g, s)| g * s).collect();
        let shift = (0..scale.len())
            .map(|ch| beta[ch] - self.mean[ch] * scale[ch])
            .collect();
        (scale, shift)
    }
}

/// Batch norm's backward once the channel sums `(Σ g, Σ g·(x − mean))` of the effective
/// output gradient `g` are known: per plane `dx = γ·invstd/m · (m·g − Σ g − x̂·Σ g·x̂)`, and
/// `dγ = Σ g·x̂`, `dβ = Σ g`. Shared by the batch norm op and the stem's fused op, which find
/// `g` and its sums differently.
pub(crate) struct BnBackward<'a> {
    pub stats: &'a Stats,
    pub gamma: &'a [f32],
    pub sums: Vec<(f64, f64)>,
}

impl BnBackward<'_> {
    fn dgamma(&self, ch: usize) -> f32 {
        (self.sums[ch].1 * self.stats.invstd[ch] as f64) as f32
    }

    /// `dx` of one plane of channel `ch`: its input `x` and effective gradient `g`.
    pub(crate) fn plane(
        &self,
        ch: usize,
        x: &[f32],
        g: impl Iterator<Item = f32>,
        out: &mut [f32],
    ) {
        let m = self.stats.count as f32;
        let (db, dg) = (self.sums[ch].0 as f32, self.dgamma(ch));
        let (mean, invstd) = (self.stats.mean[ch], self.stats.invstd[ch]);
        let k = self.gamma[ch] * invstd / m;
        for ((o, &xv), d) in out.iter_mut().zip(x).zip(g) {
            let xhat = (xv - mean) * invstd;
            *o = k * (m * d - db - xhat * dg);
        }
    }

    /// The three gradients as tensors: `dx` of shape `dims`, then dγ and dβ.
    pub(crate) fn finish(
        self,
        dx: Vec<f32>,
        dims: &[usize],
        dev: &Device,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let c = self.sums.len();
        let dgamma: Vec<f32> = (0..c).map(|ch| self.dgamma(ch)).collect();
        let dbeta: Vec<f32> = self.sums.iter().map(|s| s.0 as f32).collect();
        Ok((
            Some(Tensor::from_vec(dx, dims, dev)?),
            Some(Tensor::from_vec(dgamma, c, dev)?),
            Some(Tensor::from_vec(dbeta, c, dev)?),
        ))
    }
}

/// Channel statistics of NCHW data: mean and biased variance.
pub(crate) fn channel_stats(x: &[f32], n: usize, c: usize, hw: usize, eps: f64) -> Stats {
    let sums = channel_sums(n, c, hw, |p| [&x[p * hw..]], |_, [v]| (v, v * v));
    let m = (n * hw) as f64;
    let per: Vec<(f32, f32, f32)> = sums
        .iter()
        .map(|&(s, s2)| {
            let mean = s / m;
            let var = (s2 / m - mean * mean).max(0.0);
            (mean as f32, var as f32, (1.0 / (var + eps).sqrt()) as f32)
        })
        .collect();
    Stats {
        mean: per.iter().map(|p| p.0).collect(),
        var: per.iter().map(|p| p.1).collect(),
        invstd: per.iter().map(|p| p.2).collect(),
        count: n * hw,
    }
}

/// Per channel, the sums over (N, H, W) of the two values `f(channel, [a, b, …])` returns for
/// the elements at one position of the `K` planes `planes(p)` gives for plane `p` (image
/// `p / c`, channel `p % c`): the reductions of the forward statistics and of both backward
/// passes.
///
/// Each plane is summed in 16 independent f32 lanes over fixed-size chunks, so the compiler
/// sees no bounds checks and vectorises (one f64 chain was latency-bound at a few cycles per
/// element); the planes are added in f64.
pub(crate) fn channel_sums<'a, const K: usize>(
    n: usize,
    c: usize,
    hw: usize,
    planes: impl Fn(usize) -> [&'a [f32]; K] + Sync,
    f: impl Fn(usize, [f32; K]) -> (f32, f32) + Sync,
) -> Vec<(f64, f64)> {
    (0..c)
        .into_par_iter()
        .map(|ch| {
            let (mut a, mut b) = (0f64, 0f64);
            for img in 0..n {
                let pl = planes(img * c + ch).map(|p| &p[..hw]);
                let (mut la, mut lb) = ([0f32; 16], [0f32; 16]);
                let full = hw / 16 * 16;
                for base in (0..full).step_by(16) {
                    let chunk: [&[f32; 16]; K] =
                        pl.map(|p| p[base..base + 16].try_into().expect("16 floats"));
                    for l in 0..16 {
                        let (u, v) = f(ch, chunk.map(|p| p[l]));
                        la[l] += u;
                        lb[l] += v;
                    }
                }
                for i in full..hw {
                    let (u, v) = f(ch, pl.map(|p| p[i]));
                    a += u as f64;
                    b += v as f64;
                }
                a += la.iter().map(|&v| v as f64).sum::<f64>();
                b += lb.iter().map(|&v| v as f64).sum::<f64>();
            }
            (a, b)
        })
        .collect()
}

/// The (x, γ, β) operands of a training op as slices, γ and β checked against the `c`
/// channels of `x`; `what` names the op in errors.
pub(crate) fn operands<'a>(
    s: [(&'a CpuStorage, &Layout); 3],
    c: usize,
    what: &str,
) -> Result<[&'a [f32]; 3]> {
    let [x, gamma, beta] = [
        cpu_slice(s[0].0, s[0].1, what)?,
        cpu_slice(s[1].0, s[1].1, what)?,
        cpu_slice(s[2].0, s[2].1, what)?,
    ];
    if gamma.len() != c || beta.len() != c {
        bail!(
            "{what}: {c} channels but weight/bias of {}/{}",
            gamma.len(),
            beta.len()
        )
    }
    Ok([x, gamma, beta])
}
