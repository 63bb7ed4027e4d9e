//! Batch norm, ReLU and max pool in one training op: the ResNet ImageNet stem,
//! `maxpool(relu(bn1(conv1(x))))` (spec §5.4, issue #17).
//!
//! As two ops (`BatchNormTrain` with its ReLU, then `MaxPool2d`), candle's autograd graph
//! keeps the full-resolution ReLU output alive until the backward ends — 205 MB at 224 px and
//! batch 64, the largest tensor of the step — and the backward adds the max pool's dense
//! gradient to a fresh zero tensor (candle's gradient store) before the batch norm backward
//! does the same with its own: four full-resolution buffers at once, at the very end of the
//! backward, when every activation of the network is still held. That was the process peak of
//! the 224-px training step, 9 % above PyTorch's (2731 against 2501 MiB; 2302 MiB fused,
//! docs/benchmarks.md). Fused, the ReLU output is never stored (each plane is normalised into
//! a scratch plane and pooled), and the backward
//! routes each pooled gradient straight to its window's maximum:
//!
//! - forward: the batch statistics, then per (image, channel) plane `relu(x·scale + shift)`
//!   into a scratch plane and its window maxima (`MaxPoolConfig::argmax`, the first maximum
//!   of each window, as PyTorch), keeping where each maximum is (two bytes per output, as
//!   `MaxPool2d` keeps them; PyTorch keeps 8-byte indices);
//! - backward: the gradient of an output reaching its maximum only where that output is
//!   positive (the ReLU), the channel sums `Σ g`, `Σ g·(x − mean)` taken over the pooled
//!   outputs instead of the full planes, and then batch norm's `dx` plane by plane.
//!
//! Forward values are bit-identical to the two ops; gradients equal them up to the order of
//! the channel sums (`tests/bn_relu_pool.rs`).

use std::sync::{Arc, Mutex};

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::batch_norm::{affine_plane, channel_stats, operands, BnBackward, Stats};
use crate::pool::{Code, Offsets};
use crate::storage::{nchw, with_f32};
use crate::{max_pool2d, BatchNorm2d, MaxPoolConfig};

/// The fused training op on (x, γ, β); the statistics are shared with the layer (running
/// estimates) and the backward.
pub(crate) struct BnReluPool {
    pub eps: f64,
    pub cfg: MaxPoolConfig,
    pub stats: Arc<Mutex<Stats>>,
    /// Each output's maximum, kept from the forward for the backward (`pool::Code`).
    pub codes: Mutex<Vec<Code>>,
}

/// (N, C, H·W) of the input, and the pool's (H, W, Ho, Wo).
type Dims = ((usize, usize, usize), (usize, usize, usize, usize));

impl BnReluPool {
    /// The [`Dims`] of input dims `dims`.
    fn shape(&self, dims: &[usize]) -> Result<Dims> {
        let (n, c, hw) = nchw(dims, "batch norm + max pool")?;
        let pool = self.cfg.dims(dims[2], dims[3])?;
        Ok(((n, c, hw), pool))
    }
}

impl CustomOp3 for BnReluPool {
    fn name(&self) -> &'static str {
        "dia-batch-norm-relu-max-pool"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let what = "batch norm + max pool";
        let ((n, c, hw), dims) = self.shape(l1.dims())?;
        let [x, gamma, beta] = operands([(s1, l1), (s2, l2), (s3, l3)], c, what)?;
        let stats = channel_stats(x, n, c, hw, self.eps);
        let (scale, shift) = stats.affine(gamma, beta);
        let len = n * c * dims.2 * dims.3;
        let (mut y, mut codes) = (vec![0f32; len], vec![0; len]);
        let normalise = |p: usize, xp: &[f32], plane: &mut [f32]| {
            affine_plane(xp, scale[p % c], shift[p % c], true, plane)
        };
        self.cfg
            .pool_planes(x, dims, &mut y, Some(&mut codes), Some(&normalise));
        *self.stats.lock().expect("stats lock") = stats;
        *self.codes.lock().expect("max pool codes lock") = codes;
        Ok((CpuStorage::F32(y), Shape::from((n, c, dims.2, dims.3))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        _beta: &Tensor,
        y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let ((n, c, hw), dims) = self.shape(x.dims())?;
        let hwo = dims.2 * dims.3;
        let stats = self.stats.lock().expect("stats lock").clone();
        let codes = self.codes.lock().expect("max pool codes lock");
        if codes.len() != n * c * hwo {
            candle_core::bail!("batch norm + max pool: a backward before its forward ran")
        }
        let offsets = Offsets::new(&self.cfg, dims);
        let gamma_v = gamma.to_vec1::<f32>()?;
        let dy = dy.contiguous()?;
        let (dx, bwd) = with_f32(x, |xv| {
            with_f32(y, |yv| {
                with_f32(&dy, |g| {
                    // Each output's maximum (kept from the forward) and its gradient, where
                    // the output passed the ReLU (a pooled value > 0).
                    let routed = |p: usize| {
                        let at = offsets.indices(&codes[p * hwo..][..hwo]);
                        at.zip(&yv[p * hwo..][..hwo])
                            .zip(&g[p * hwo..][..hwo])
                            .filter(|&((_, &yo), _)| yo > 0.0)
                            .map(|((i, _), &go)| (i, go))
                    };
                    // Per plane, (Σ g, Σ g·(x − mean)) over those outputs.
                    let plane_sums: Vec<(f64, f64)> = (0..n * c)
                        .into_par_iter()
                        .map(|p| {
                            let (xp, mean) = (&xv[p * hw..][..hw], stats.mean[p % c]);
                            routed(p).fold((0f64, 0f64), |(s, sx), (i, go)| {
                                (s + go as f64, sx + (go * (xp[i] - mean)) as f64)
                            })
                        })
                        .collect();
                    let mut sums = vec![(0f64, 0f64); c];
                    for (p, (s, sx)) in plane_sums.iter().enumerate() {
                        sums[p % c].0 += s;
                        sums[p % c].1 += sx;
                    }
                    let bwd = BnBackward {
                        stats: &stats,
                        gamma: &gamma_v,
                        sums,
                    };
                    // Batch norm's dx, the ReLU'd gradient scattered to the maxima per plane.
                    let mut dx = vec![0f32; xv.len()];
                    dx.par_chunks_mut(hw).enumerate().for_each_init(
                        || vec![0f32; hw],
                        |gd, (p, out)| {
                            gd.fill(0.0);
                            for (i, go) in routed(p) {
                                gd[i] += go;
                            }
                            bwd.plane(p % c, &xv[p * hw..][..hw], gd.iter().copied(), out);
                        },
                    );
                    (dx, bwd)
                })
            })
        })???;
        bwd.finish(dx, x.dims(), x.device())
    }
}

impl BatchNorm2d {
    /// `maxpool(relu(bn(x)))`, the ResNet ImageNet stem after its convolution, in training
    /// (`train = true`) or evaluation mode. In training on the CPU it is one op that never
    /// stores the full-resolution ReLU output (module documentation); elsewhere, and in
    /// evaluation, [`BatchNorm2d::forward_relu_t`] and then [`max_pool2d`].
    ///
    /// ```
    /// use candle_core::{Device, Tensor};
    /// use dia_nn::{BatchNorm2d, MaxPoolConfig};
    /// let bn = BatchNorm2d::new(2, &Device::Cpu)?;
    /// let x = Tensor::arange(0f32, 64., &Device::Cpu)?.reshape((2, 2, 4, 4))?;
    /// let y = bn.forward_relu_pool_t(&x, true, MaxPoolConfig::RESNET_STEM)?;
    /// assert_eq!(y.dims(), [2, 2, 2, 2]);
    /// # Ok::<(), candle_core::Error>(())
    /// ```
    pub fn forward_relu_pool_t(
        &self,
        x: &Tensor,
        train: bool,
        cfg: MaxPoolConfig,
    ) -> Result<Tensor> {
        self.channels_of(x)?;
        if train && self.fast_training(x) {
            return self.train_op(x, |eps, stats| BnReluPool {
                eps,
                cfg,
                stats,
                codes: Mutex::new(Vec::new()),
            });
        }
        max_pool2d(&self.forward_relu_t(x, train)?, cfg)
    }
}
