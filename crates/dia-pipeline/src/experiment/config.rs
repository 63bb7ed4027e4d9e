//! The experiment config (`dia experiment --config E.yaml`): a base training config, the DDPM
//! config of the diffusion cells, and the grid of methods × normal classes × seeds.

use std::path::Path;

use dia_contrastive::{DiffusionSpec, Mode, TrainConfig};
use dia_data::Split;
use dia_diffusion::DdpmConfig;
use dia_eval::ScoreKind;
use dia_transforms::{DissolveKind, ShiftKind};
use serde::{Deserialize, Serialize};

use crate::error::{io_err, yaml_err, Error, Result};

/// A method of the grid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// CSI (no dissolving).
    Csi,
    /// DIA with the diffusion dissolver (the paper's method).
    DiaDiffusion,
    /// DIA with the Gaussian-blur dissolver.
    DiaGaussian,
    /// DIA with the median-blur dissolver.
    DiaMedian,
}

impl Method {
    /// The method's name in configs, folders and tables.
    pub fn name(&self) -> &'static str {
        match self {
            Method::Csi => "csi",
            Method::DiaDiffusion => "dia-diffusion",
            Method::DiaGaussian => "dia-gaussian",
            Method::DiaMedian => "dia-median",
        }
    }
}

fn d_seeds() -> Vec<u64> {
    vec![0]
}
fn d_samples() -> usize {
    10
}

/// Evaluation settings of every cell.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalSection {
    /// `csi` or `simclr`.
    #[serde(default = "d_score")]
    pub score: ScoreKind,
    /// TTA copies per image and shift.
    #[serde(default = "d_samples")]
    pub ood_samples: usize,
    /// Also evaluate on the test split after every this many epochs and record each AUROC
    /// (the reference's protocol, spec §10.6; reports then show its best epoch, marked
    /// optimistic, beside the last). 0: only the last epoch.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub every_epochs: usize,
}

fn is_zero(v: &usize) -> bool {
    *v == 0
}

fn d_score() -> ScoreKind {
    ScoreKind::Csi
}

impl Default for EvalSection {
    fn default() -> Self {
        Self {
            score: ScoreKind::Csi,
            ood_samples: 10,
            every_epochs: 0,
        }
    }
}

/// An experiment: the base training config, the DDPM config, and the grid.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentConfig {
    /// The base encoder config; `mode`, `shift_trans_type`'s dissolve part, `normal_classes`,
    /// `seed` and `diffusion` are set per cell.
    pub train: TrainConfig,
    /// The DDPM config of the diffusion cells (its `data` defaults to the encoder's, its
    /// `normal_classes` are set per class; its `image_size` is its own, 32 by default, and its
    /// `pad` is 2 where the encoder's images are 4 px smaller).
    #[serde(default)]
    pub ddpm: Option<serde_yaml::Value>,
    /// Methods.
    pub methods: Vec<Method>,
    /// Normal classes, one grid row each.
    pub normal_classes: Vec<String>,
    /// Seeds.
    #[serde(default = "d_seeds")]
    pub seeds: Vec<u64>,
    /// Evaluation.
    #[serde(default)]
    pub eval: EvalSection,
}

/// A folder name for a class name: ASCII letters and digits, lower case, `-` for the rest.
pub fn slug(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect()
}

impl ExperimentConfig {
    /// Reads and checks an experiment config.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(io_err(path))?;
        let cfg: Self = serde_yaml::from_str(&text).map_err(yaml_err(path))?;
        cfg.check().map_err(|e| {
            Error::Config(format!(
                "{}: invalid experiment config: {e}",
                path.display()
            ))
        })?;
        Ok(cfg)
    }

    /// Checks the grid and every cell's config.
    pub fn check(&self) -> Result<()> {
        if self.methods.is_empty() || self.normal_classes.is_empty() || self.seeds.is_empty() {
            return Err(Error::Config(
                "methods, normal_classes and seeds must not be empty".into(),
            ));
        }
        if self.methods.contains(&Method::DiaDiffusion) {
            self.ddpm_config("check")?;
        }
        for m in &self.methods {
            self.cell_config(*m, "x", 0, None)?
                .validate()
                .map_err(|e| Error::Config(format!("{}: {e}", m.name())))?;
        }
        Ok(())
    }

    /// The DDPM config for normal class `class`.
    pub fn ddpm_config(&self, class: &str) -> Result<DdpmConfig> {
        let section = |e: &dyn std::fmt::Display| Error::Config(format!("ddpm section: {e}"));
        let Some(v) = &self.ddpm else {
            return Err(Error::Config(
                "method dia-diffusion needs a `ddpm` section".into(),
            ));
        };
        let mut v = v.clone();
        let map = v
            .as_mapping_mut()
            .ok_or_else(|| Error::Config("the ddpm section must be a mapping".into()))?;
        if !map.contains_key("data") {
            let data = serde_yaml::to_value(&self.train.data).map_err(|e| section(&e))?;
            map.insert("data".into(), data);
        }
        map.insert("normal_classes".into(), vec![class.to_string()].into());
        let pad_given = map.contains_key("pad");
        let mut cfg: DdpmConfig = serde_yaml::from_value(v).map_err(|e| section(&e))?;
        // The DDPM keeps its own resolution (32 by default: the bottleneck of spec §2.3); the
        // dissolver resizes into it. Only where the dissolver pads (encoder images 4 px
        // smaller: MedMNIST 28 → 32) does the DDPM train on padded images too (spec §2.2).
        if !pad_given && cfg.image_size > 4 && self.encoder_input_size()? + 4 == cfg.image_size {
            cfg.pad = 2;
        }
        cfg.validate().map_err(|e| section(&e))?;
        Ok(cfg)
    }

    /// The side of the encoder's input images: the configured `image_size`, else the data's.
    fn encoder_input_size(&self) -> Result<usize> {
        Ok(match self.train.image_size {
            Some(s) => s,
            None => self.train.data.open(Split::Train, None)?.image_size().0,
        })
    }

    /// The encoder config of one cell.
    pub fn cell_config(
        &self,
        method: Method,
        class: &str,
        seed: u64,
        ddpm: Option<&Path>,
    ) -> Result<TrainConfig> {
        let mut c = self.train.clone();
        let shift = c.shift_trans_type.shift;
        let (mode, dissolve) = match method {
            Method::Csi => (Mode::Csi, DissolveKind::None),
            Method::DiaDiffusion => (Mode::Dia, DissolveKind::Diffusion),
            Method::DiaGaussian => (Mode::Dia, DissolveKind::Gaussian),
            Method::DiaMedian => (Mode::Dia, DissolveKind::Median),
        };
        c.mode = mode;
        c.shift_trans_type = ShiftKind { dissolve, shift };
        c.normal_classes = vec![class.to_string()];
        c.seed = seed;
        c.diffusion = match method {
            Method::DiaDiffusion => Some(DiffusionSpec {
                checkpoint: ddpm
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|| "ddpm.safetensors".into()),
                dissolver: c.diffusion.map(|d| d.dissolver).unwrap_or_default(),
            }),
            _ => None,
        };
        Ok(c)
    }
}
