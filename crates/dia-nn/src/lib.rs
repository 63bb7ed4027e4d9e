//! The layers of the DIA models for candle, each with a fast CPU implementation and a
//! portable one that runs on any device (issues #3, #14).
//!
//! Stock candle 0.11 trains a ResNet-18 about 8× slower than PyTorch on CPU, mostly because its
//! convolution gradients do not use gemm (`docs/benchmarks.md`, performance-baseline §4). The
//! layers here are candle custom ops with their own CPU backward passes — on AVX-512 CPUs the
//! 3×3 stride-1 convolutions run as Winograd F(4×4, 3×3) and the others on register tiles that
//! never form an im2col matrix, elsewhere on gemm over im2col chunks. [`KernelPolicy`]
//! `NoWinograd` and `Gemm` hold the CPU to the slower of these (to compare them; `dia` reads
//! `DIA_KERNELS=no-winograd|gemm`, or the older `DIA_NO_WINOGRAD=1` / `DIA_NO_AVX512=1`).
//!
//! Every op also has a **portable** implementation made of candle ops, with a backward that
//! keeps PyTorch's semantics: it runs on CUDA (and any other candle device), and on the CPU
//! under [`KernelPolicy::Portable`] so that the CPU test suite checks, op by op, the code a GPU
//! runs. [`kernels::use_fast`] is the one place that chooses (CPU + f32 + policy `fast` → the
//! custom op).
//!
//! - [`conv2d`] / [`Conv2d`]: any stride, padding and kernel size, bias or not; forward, input
//!   gradient and weight gradient without candle's slow paths, memory bounded.
//! - [`BatchNorm2d`]: training and evaluation with running estimates (PyTorch semantics), an
//!   analytic backward, and an optional fused ReLU (and max pool, for the ImageNet stem:
//!   [`BatchNorm2d::forward_relu_pool_t`]).
//! - [`max_pool2d`]: max pooling with a backward for any window (candle has none for the ResNet
//!   stem's 3×3 / stride 2 / padding 1).
//! - [`add_relu`]: `relu(a + b)` fused, the tail of every ResNet block.
//! - [`group_norm`](fn@group_norm) and [`weight_standardized_conv2d`] for the DDPM UNet (differentiable).
//! - [`linear_attention`](fn@linear_attention): the UNet's linear attention, one op when nothing
//!   records a gradient.
//! - [`tune_allocator`]: keeps large buffers from being unmapped and faulted in every step;
//!   [`tune_threads`]: keeps candle's idle workers from spinning while dia-nn's kernels run.
//! - [`Linear`]: `nn.Linear`, candle ops.
//! - [`Params`]: the one collector of a model's named tensors, fresh or loaded, reporting every
//!   missing, mis-shaped and unexpected tensor at once.
//! - [`init`]: PyTorch's default initialisers drawn from a seeded generator.
//!
//! Layer functions return `candle_core::Result`, as candle-nn's do, so they implement candle's
//! `Module` and compose with candle's autograd.
//!
//! ```
//! use candle_core::{Device, Module, Tensor, Var};
//! use dia_nn::{Conv2d, Conv2dConfig};
//! use rand::SeedableRng;
//!
//! let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
//! let conv = Conv2d::init(3, 8, 3, Conv2dConfig::new(1, 1), true, &mut rng, &Device::Cpu)?;
//! let x = Var::from_tensor(&dia_nn::init::uniform((2, 3, 16, 16), 1.0, &mut rng, &Device::Cpu)?)?;
//! let loss = conv.forward(x.as_tensor())?.sqr()?.sum_all()?;
//! let grads = loss.backward()?;
//! assert_eq!(grads.get(x.as_tensor()).unwrap().dims(), [2, 3, 16, 16]);
//! # Ok::<(), candle_core::Error>(())
//! ```
#![warn(missing_docs)]

mod add_relu;
pub mod alloc;
pub mod batch_norm;
mod bn_relu_pool;
pub mod conv;
mod fast_exp;
mod fastconv;
mod gemm;
pub mod group_norm;
mod im2col;
pub mod init;
pub mod isa;
pub mod kernels;
pub mod layer_norm;
mod linear;
pub mod linear_attention;
mod microkernel;
mod out;
pub mod params;
pub mod pool;
mod scratch;
mod storage;
pub mod threads;
mod winograd;

pub use add_relu::add_relu;
pub use alloc::tune_allocator;
pub use batch_norm::BatchNorm2d;
pub use conv::{conv2d, conv2d_with_budget, Conv2d, Conv2dConfig, DEFAULT_COL_BUDGET};
pub use group_norm::{group_norm, group_norm_silu, standardize_weight, weight_standardized_conv2d};
pub use kernels::{kernel_policy, set_kernel_policy, with_kernel_policy, KernelPolicy};
pub use layer_norm::channel_layer_norm;
pub use linear::Linear;
pub use linear_attention::linear_attention;
pub use params::{Init, Params, Source};
pub use pool::{max_pool2d, MaxPoolConfig};
pub use threads::tune_threads;
