//! `relu(a + b)` in one pass, with a one-pass backward: the end of every ResNet block
//! (`relu(bn2(conv2(h)) + shortcut(x))`).
//!
//! As separate candle ops this is an add and a ReLU forward, and a ReLU backward built from a
//! zeros tensor, a comparison, a cast and a product — five full-size passes and allocations
//! per block that here become two.

use candle_core::{bail, CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::storage::{cpu_slice, with_f32};

struct AddRelu;

/// Elements per rayon task.
const GRAIN: usize = 1 << 14;

impl CustomOp2 for AddRelu {
    fn name(&self) -> &'static str {
        "dia-add-relu"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        if l1.dims() != l2.dims() {
            bail!(
                "add_relu: shapes {:?} and {:?} differ",
                l1.dims(),
                l2.dims()
            )
        }
        let (a, b) = (
            cpu_slice(s1, l1, "add_relu")?,
            cpu_slice(s2, l2, "add_relu")?,
        );
        let mut y = vec![0f32; a.len()];
        y.par_chunks_mut(GRAIN).enumerate().for_each(|(c, out)| {
            let o = c * GRAIN;
            for ((y, &p), &q) in out.iter_mut().zip(&a[o..]).zip(&b[o..]) {
                *y = (p + q).max(0.0);
            }
        });
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        _a: &Tensor,
        _b: &Tensor,
        y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let dy = dy.contiguous()?;
        let g = with_f32(y, |yv| {
            with_f32(&dy, |gv| {
                let mut g = vec![0f32; gv.len()];
                g.par_chunks_mut(GRAIN).enumerate().for_each(|(c, out)| {
                    let o = c * GRAIN;
                    for ((d, &yy), &gg) in out.iter_mut().zip(&yv[o..]).zip(&gv[o..]) {
                        *d = if yy > 0.0 { gg } else { 0.0 };
                    }
                });
                g
            })
        })??;
        let g = Tensor::from_vec(g, y.dims(), y.device())?;
        Ok((Some(g.clone()), Some(g)))
    }
}

/// `relu(a + b)`, differentiable in both; fused on the CPU, candle ops elsewhere (the
/// gradient is `dy` where `a + b > 0`, as PyTorch's, on both paths).
///
/// ```
/// use candle_core::{Device, Tensor};
/// let a = Tensor::new(&[1f32, -2., 3.], &Device::Cpu)?;
/// let b = Tensor::new(&[-2f32, 1., 1.], &Device::Cpu)?;
/// assert_eq!(dia_nn::add_relu(&a, &b)?.to_vec1::<f32>()?, [0., 0., 4.]);
/// # Ok::<(), candle_core::Error>(())
/// ```
pub fn add_relu(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    if crate::kernels::use_fast(&[a, b]) {
        a.contiguous()?.apply_op2(&b.contiguous()?, AddRelu)
    } else {
        crate::kernels::relu(&(a + b)?)
    }
}
