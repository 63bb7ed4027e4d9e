//! The config and directory of one training run, as `dia train` and `dia train-ddpm` take
//! them: a new run reads its YAML config and goes to the directory asked for or
//! `runs/<config name>`; a resumed one reads the `config.yaml` its run directory holds. The
//! training functions lock the directory and refuse to start over an existing run.
//!
//! ```no_run
//! use dia_pipeline::run::{read_config, RunPlan};
//! let plan: RunPlan<dia_contrastive::TrainConfig> =
//!     RunPlan::new(Some("configs/csi.yaml".as_ref()), None, None, dia_contrastive::TrainConfig::validate)?;
//! assert_eq!(plan.dir, std::path::Path::new("runs/csi"));
//! # Ok::<(), dia_pipeline::Error>(())
//! ```

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use crate::error::{io_err, yaml_err, Error, Result};

/// Reads a YAML config of type `T` and checks it with `validate`; errors name the file.
pub fn read_config<T: DeserializeOwned>(
    path: &Path,
    validate: impl FnOnce(&T) -> std::result::Result<(), String>,
) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(io_err(path))?;
    let cfg: T = serde_yaml::from_str(&text).map_err(yaml_err(path))?;
    validate(&cfg).map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
    Ok(cfg)
}

/// What a training command runs: the config, its run directory and whether it resumes.
#[derive(Clone, Debug)]
pub struct RunPlan<T> {
    /// The run's config.
    pub config: T,
    /// The run directory.
    pub dir: PathBuf,
    /// Whether the run continues from its last checkpoint.
    pub resume: bool,
}

impl<T: DeserializeOwned> RunPlan<T> {
    /// The plan from `--config` / `--run` / `--resume`: `resume` wins (with the directory's
    /// `config.yaml`), else `config` runs in `run` or `runs/<config name>`.
    pub fn new(
        config: Option<&Path>,
        run: Option<&Path>,
        resume: Option<&Path>,
        validate: impl Fn(&T) -> std::result::Result<(), String>,
    ) -> Result<Self> {
        match (resume, config) {
            (Some(dir), _) => {
                if !dir.is_dir() {
                    return Err(Error::Config(format!(
                        "--resume {}: not a run directory",
                        dir.display()
                    )));
                }
                Ok(Self {
                    config: read_config(&dir.join("config.yaml"), validate)?,
                    dir: dir.to_path_buf(),
                    resume: true,
                })
            }
            (None, Some(path)) => {
                let config = read_config(path, validate)?;
                let stem = path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "run".into());
                let dir = run
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|| PathBuf::from("runs").join(stem));
                if dir.exists() && !dir.is_dir() {
                    return Err(Error::Config(format!(
                        "--run {}: is a file, not a directory",
                        dir.display()
                    )));
                }
                Ok(Self {
                    config,
                    dir,
                    resume: false,
                })
            }
            (None, None) => Err(Error::Config("give --config or --resume".into())),
        }
    }
}
