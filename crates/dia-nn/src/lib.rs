//! Fast CPU layers for candle, with their own backward passes.
//!
//! Stock candle 0.11 trains a ResNet-18 about 8x slower than PyTorch on CPU (see
//! `docs/benchmarks.md`). This crate will hold the layers that close the gap as candle custom
//! ops: im2col/gemm `Conv2d` with both gradients, a fused `BatchNorm2d`, max-pool 3x3/s2 with
//! a backward, `GroupNorm`, the weight-standardised conv of the DDPM UNet, and seeded
//! PyTorch-default initialisers.
//!
//! **Status:** skeleton. The implementation lands with issue #3 of the tracker; until then
//! this crate only fixes its place in the workspace and its dependencies.
#![forbid(unsafe_code)]
