//! ResNet-18 encoders with the CSI heads (spec §5.4), parameter names as the reference's state
//! dict (spec §8).
//!
//! - `resnet18` (CIFAR / MedMNIST stem): 3×3 / stride 1 conv, no max-pool, BasicBlocks with a
//!   `shortcut` (1×1 conv + BN) where the shape changes, `avg_pool2d(·, 4)` — which assumes a
//!   4×4 last feature map, so 28–32 px inputs (spec §10.19). Convs keep PyTorch's default init.
//! - `resnet18_imagenet` (224-px sets): 7×7 / stride 2 conv, max-pool 3×3 / 2 / 1, blocks with a
//!   `downsample`, global average pool. Convs use `kaiming_normal(fan_out)`.
//!
//! Both normalise the input with `(x − 0.5)/0.5` first and end in the heads `linear`,
//! `simclr_layer` (512 → 512 → ReLU → 128), `shift_cls_layer` (512 → K) and
//! `joint_distribution_layer` (512 → 4n). The base width (64) is a parameter, so tests can use
//! narrow variants.

use std::collections::{BTreeMap, HashMap};

use candle_core::Module;
use candle_core::{DType, Device, Tensor, Var};
use dia_nn::{BatchNorm2d, Conv2d, Conv2dConfig, Init, Linear, MaxPoolConfig, Params, Source};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The backbone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arch {
    /// `resnet18`: CIFAR stem, for 28–32 px images.
    #[serde(rename = "resnet18")]
    ResNet18,
    /// `resnet18_imagenet`: ImageNet stem, for larger images.
    #[serde(rename = "resnet18_imagenet")]
    ResNet18ImageNet,
}

/// The shape of an encoder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncoderConfig {
    /// The backbone.
    pub arch: Arch,
    /// Channels of the first stage (64 in ResNet-18); the stages have w, 2w, 4w, 8w.
    pub width: usize,
    /// Classes of the `linear` head (2 for the binary medical sets, 4 for APTOS).
    pub num_classes: usize,
    /// Shift classes (4).
    pub k_shift: usize,
    /// Dimension of the SimCLR projection (128).
    pub simclr_dim: usize,
}

impl EncoderConfig {
    /// ResNet-18 of the reference with its defaults (width 64, 2 classes, 4 shifts, 128-d).
    pub fn new(arch: Arch) -> Self {
        Self {
            arch,
            width: 64,
            num_classes: 2,
            k_shift: 4,
            simclr_dim: 128,
        }
    }

    /// Penultimate dimension (8 · width = 512).
    pub fn last_dim(&self) -> usize {
        8 * self.width
    }
}

/// The outputs of one forward pass.
#[derive(Debug)]
pub struct EncoderOutput {
    /// `linear` logits (N, num_classes).
    pub logits: Tensor,
    /// Penultimate features (N, 8·width).
    pub penultimate: Tensor,
    /// SimCLR projection, unnormalised (N, simclr_dim).
    pub simclr: Tensor,
    /// Shift logits (N, k_shift).
    pub shift: Tensor,
    /// `joint_distribution_layer` logits (N, 4·num_classes).
    pub joint: Tensor,
}

#[derive(Debug)]
struct BasicBlock {
    conv1: Conv2d,
    bn1: BatchNorm2d,
    conv2: Conv2d,
    bn2: BatchNorm2d,
    shortcut: Option<(Conv2d, BatchNorm2d)>,
}

impl BasicBlock {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let h = self
            .bn1
            .forward_relu_t(&candle_core::Module::forward(&self.conv1, x)?, train)?;
        let h = self
            .bn2
            .forward_t(&candle_core::Module::forward(&self.conv2, &h)?, train)?;
        let sc = match &self.shortcut {
            Some((conv, bn)) => bn.forward_t(&candle_core::Module::forward(conv, x)?, train)?,
            None => x.clone(),
        };
        Ok(dia_nn::add_relu(&h, &sc)?)
    }
}

/// A ResNet-18 encoder with the CSI heads.
///
/// ```
/// use candle_core::{Device, Tensor};
/// use dia_encoder::{Arch, EncoderConfig, ResNet18, Source};
/// use rand::SeedableRng;
/// let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
/// let cfg = EncoderConfig { width: 8, ..EncoderConfig::new(Arch::ResNet18) };
/// let model = ResNet18::new(cfg, Source::Init(&mut rng), &Device::Cpu)?;
/// let x = Tensor::full(0.5f32, (2, 3, 32, 32), &Device::Cpu)?;
/// let out = model.forward_t(&x, false)?;
/// assert_eq!(out.simclr.dims(), [2, 128]);
/// assert_eq!(out.shift.dims(), [2, 4]);
/// # Ok::<(), dia_encoder::Error>(())
/// ```
#[derive(Debug)]
pub struct ResNet18 {
    cfg: EncoderConfig,
    conv1: Conv2d,
    bn1: BatchNorm2d,
    blocks: Vec<BasicBlock>,
    block_names: Vec<String>,
    linear: Linear,
    simclr1: Linear,
    simclr2: Linear,
    shift: Linear,
    joint: Linear,
    vars: BTreeMap<String, Var>,
}

impl ResNet18 {
    /// Builds the encoder, initialised from a seeded generator or from named tensors. With
    /// tensors, a missing or mis-shaped one is an error that names it, and so is a tensor the
    /// model does not use.
    pub fn new(cfg: EncoderConfig, source: Source<'_>, device: &Device) -> Result<Self> {
        if cfg.width == 0 || cfg.k_shift == 0 || cfg.num_classes == 0 || cfg.simclr_dim == 0 {
            return Err(Error::Config(format!("invalid encoder config {cfg:?}")));
        }
        let mut b = Params::new(source, device);
        let imagenet = cfg.arch == Arch::ResNet18ImageNet;
        let kind = if imagenet {
            Init::KaimingNormalFanOut
        } else {
            Init::Weight
        };
        let w = cfg.width;
        let (k1, s1, p1) = if imagenet { (7, 2, 3) } else { (3, 1, 1) };
        let conv1 = b.conv2d("conv1", (3, w, k1), Conv2dConfig::new(s1, p1), false, kind)?;
        let bn1 = b.batch_norm("bn1", w)?;
        let mut blocks = Vec::new();
        let mut block_names = Vec::new();
        let mut cin = w;
        for (stage, mult) in [1usize, 2, 4, 8].into_iter().enumerate() {
            let cout = w * mult;
            for j in 0..2 {
                let name = format!("layer{}.{j}", stage + 1);
                let stride = if stage > 0 && j == 0 { 2 } else { 1 };
                let conv = |b: &mut Params, part: &str, cin, k, cfg| {
                    b.conv2d(&format!("{name}.{part}"), (cin, cout, k), cfg, false, kind)
                };
                let conv1 = conv(&mut b, "conv1", cin, 3, Conv2dConfig::new(stride, 1))?;
                let bn1 = b.batch_norm(&format!("{name}.bn1"), cout)?;
                let conv2 = conv(&mut b, "conv2", cout, 3, Conv2dConfig::new(1, 1))?;
                let bn2 = b.batch_norm(&format!("{name}.bn2"), cout)?;
                let shortcut = if stride != 1 || cin != cout {
                    let sc = if imagenet { "downsample" } else { "shortcut" };
                    let c = conv(
                        &mut b,
                        &format!("{sc}.0"),
                        cin,
                        1,
                        Conv2dConfig::new(stride, 0),
                    )?;
                    Some((c, b.batch_norm(&format!("{name}.{sc}.1"), cout)?))
                } else {
                    None
                };
                blocks.push(BasicBlock {
                    conv1,
                    bn1,
                    conv2,
                    bn2,
                    shortcut,
                });
                block_names.push(name);
                cin = cout;
            }
        }
        let last = cfg.last_dim();
        let linear = b.linear("linear", last, cfg.num_classes)?;
        let simclr1 = b.linear("simclr_layer.0", last, last)?;
        let simclr2 = b.linear("simclr_layer.2", last, cfg.simclr_dim)?;
        let shift = b.linear("shift_cls_layer", last, cfg.k_shift)?;
        let joint = b.linear("joint_distribution_layer", last, 4 * cfg.num_classes)?;
        // Every missing, mis-shaped and unexpected tensor at once (the batch counters are
        // optional in a state dict).
        let (_, vars) = b.finish(&[".num_batches_tracked"])?;
        Ok(Self {
            cfg,
            conv1,
            bn1,
            blocks,
            block_names,
            linear,
            simclr1,
            simclr2,
            shift,
            joint,
            vars,
        })
    }

    /// The device the weights live on (inputs are moved there by the callers that build them
    /// on the host).
    pub fn device(&self) -> &Device {
        self.conv1.weight().device()
    }

    /// The configuration.
    pub fn config(&self) -> EncoderConfig {
        self.cfg
    }

    /// The trainable variables by state-dict name.
    pub fn vars(&self) -> &BTreeMap<String, Var> {
        &self.vars
    }

    /// Every tensor under its state-dict name, running statistics and `num_batches_tracked`
    /// (int64) included.
    pub fn state_dict(&self) -> Result<HashMap<String, Tensor>> {
        let mut out: HashMap<String, Tensor> = self
            .vars
            .iter()
            .map(|(k, v)| (k.clone(), v.as_tensor().detach()))
            .collect();
        let mut bns: Vec<(String, &BatchNorm2d)> = vec![("bn1".into(), &self.bn1)];
        for (name, blk) in self.block_names.iter().zip(&self.blocks) {
            bns.push((format!("{name}.bn1"), &blk.bn1));
            bns.push((format!("{name}.bn2"), &blk.bn2));
            if let Some((_, bn)) = &blk.shortcut {
                let sc = if self.cfg.arch == Arch::ResNet18ImageNet {
                    "downsample"
                } else {
                    "shortcut"
                };
                bns.push((format!("{name}.{sc}.1"), bn));
            }
        }
        for (name, bn) in bns {
            out.insert(format!("{name}.running_mean"), bn.running_mean().detach());
            out.insert(format!("{name}.running_var"), bn.running_var().detach());
            let tracked = Tensor::new(bn.num_batches_tracked() as i64, bn.running_mean().device())?;
            out.insert(format!("{name}.num_batches_tracked"), tracked);
        }
        Ok(out)
    }

    /// Penultimate features: the backbone without the heads.
    pub fn features_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let (_, c, _, _) = x.dims4()?;
        if c != 3 {
            return Err(Error::Config(format!(
                "the encoder takes 3-channel images, got {c}"
            )));
        }
        let x = x.to_dtype(DType::F32)?.affine(2.0, -1.0)?; // (x − 0.5)/0.5
        let h = candle_core::Module::forward(&self.conv1, &x)?;
        let mut h = match self.cfg.arch {
            // One op in training on the CPU: the full-resolution ReLU output is never stored.
            Arch::ResNet18ImageNet => {
                self.bn1
                    .forward_relu_pool_t(&h, train, MaxPoolConfig::RESNET_STEM)?
            }
            Arch::ResNet18 => self.bn1.forward_relu_t(&h, train)?,
        };
        for blk in &self.blocks {
            h = blk.forward_t(&h, train)?;
        }
        let (n, c, fh, fw) = h.dims4()?;
        match self.cfg.arch {
            Arch::ResNet18 => {
                // avg_pool2d(·, 4) must leave a 1x1 map, as the reference's `view` assumes.
                if !(4..8).contains(&fh) || !(4..8).contains(&fw) {
                    return Err(Error::Config(format!(
                        "resnet18 (CIFAR stem) pools its last {fh}x{fw} map with avg_pool2d(4) and needs it to be 4x4-7x7 (28-32 px inputs); use resnet18_imagenet for larger images"
                    )));
                }
                Ok(h.avg_pool2d(4)?.reshape((n, c))?)
            }
            Arch::ResNet18ImageNet => Ok(h.mean((2, 3))?),
        }
    }

    /// The forward pass of the reference's `model(x, penultimate, simclr, shift)`, in training
    /// (batch statistics, running estimates updated) or evaluation mode.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<EncoderOutput> {
        let penultimate = self.features_t(x, train)?;
        let simclr = self
            .simclr2
            .forward(&self.simclr1.forward(&penultimate)?.relu()?)?;
        Ok(EncoderOutput {
            logits: self.linear.forward(&penultimate)?,
            simclr,
            shift: self.shift.forward(&penultimate)?,
            joint: self.joint.forward(&penultimate)?,
            penultimate,
        })
    }
}
