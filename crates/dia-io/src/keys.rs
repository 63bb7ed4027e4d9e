//! The metadata keys of every safetensors file dia writes, in one place: a key written in one
//! crate and read in another is the same constant.

/// The crate version that wrote the file.
pub const VERSION: &str = "dia.version";
/// An encoder's configuration (JSON `EncoderConfig`).
pub const ENCODER: &str = "dia.encoder";
/// A DDPM's metadata (JSON `DdpmMeta`: UNet config, image size, timesteps, step, EMA).
pub const DDPM: &str = "dia.ddpm";
/// The resume state of a DDPM run (steps, Adam steps, EMA).
pub const DDPM_RUN: &str = "dia.ddpm_run";
/// The resume state of an encoder run (epochs done, LR stepper).
pub const RUN_STATE: &str = "dia.run_state";
/// The CSI statistics' settings (score, shift, TTA, image size).
pub const CSI_STATISTICS: &str = "dia.csi_statistics";
/// The training method of an encoder checkpoint (`"csi"` / `"dia"`, JSON).
pub const MODE: &str = "dia.mode";
/// The reference `shift_trans_type` an encoder was trained with.
pub const SHIFT_TRANS_TYPE: &str = "dia.shift_trans_type";
/// The normal classes an encoder was trained on (JSON list).
pub const NORMAL_CLASSES: &str = "dia.normal_classes";
/// The training image size of an encoder (JSON, `null` for the files' size).
pub const IMAGE_SIZE: &str = "dia.image_size";
/// The epoch an encoder checkpoint was saved at.
pub const EPOCH: &str = "dia.epoch";
/// Where the images of an embedding file came from (JSON list).
pub const SOURCES: &str = "dia.sources";
/// The checkpoint an embedding file was computed with.
pub const CHECKPOINT: &str = "dia.checkpoint";
/// The PyTorch file a converted checkpoint came from.
pub const CONVERTED_FROM: &str = "dia.converted_from";
/// The SHA-256 of a safetensors file's tensors (names, types, shapes and data), written by
/// [`save_safetensors`](crate::save_safetensors) and checked on every load: a bit-flipped
/// file is refused.
pub const CHECKSUM: &str = "dia.checksum";
/// The fingerprint of the resolved config a run's files were written under
/// ([`fingerprint`](crate::fingerprint)); a resume under another config is refused.
pub const CONFIG_FINGERPRINT: &str = "dia.config_fingerprint";
