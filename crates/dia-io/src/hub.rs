//! `hf://OWNER/REPO/FILE` checkpoint references, resolved through the Hugging Face Hub
//! (`hf-hub`, cargo feature `hub`) into its local cache. The endpoint follows `HF_ENDPOINT`, so
//! tests can point it at a local server.

use std::path::PathBuf;

use crate::error::{Error, Result};

fn hub_err(spec: &str, msg: impl std::fmt::Display) -> Error {
    Error::Hub {
        spec: spec.to_string(),
        msg: msg.to_string(),
    }
}

/// Splits `hf://OWNER/REPO/FILE` into (`OWNER/REPO`, `FILE`); `None` for other strings.
///
/// ```
/// assert_eq!(
///     dia_io::hub::parse("hf://me/ddpm/model.safetensors"),
///     Some(("me/ddpm".to_string(), "model.safetensors".to_string()))
/// );
/// assert_eq!(dia_io::hub::parse("runs/x/model.safetensors"), None);
/// ```
pub fn parse(spec: &str) -> Option<(String, String)> {
    let rest = spec.strip_prefix("hf://")?;
    let mut parts = rest.splitn(3, '/');
    let (owner, repo, file) = (parts.next()?, parts.next()?, parts.next()?);
    if owner.is_empty() || repo.is_empty() || file.is_empty() {
        return None;
    }
    Some((format!("{owner}/{repo}"), file.to_string()))
}

/// A local path for `spec`: itself when it is a path, the cached download when it is an
/// `hf://` reference.
pub fn resolve(spec: &str) -> Result<PathBuf> {
    match parse(spec) {
        None if spec.starts_with("hf://") => Err(hub_err(spec, "expected hf://OWNER/REPO/FILE")),
        None => Ok(PathBuf::from(spec)),
        Some((repo, file)) => fetch(spec, &repo, &file),
    }
}

#[cfg(feature = "hub")]
fn fetch(spec: &str, repo: &str, file: &str) -> Result<PathBuf> {
    let api = hf_hub::api::sync::ApiBuilder::from_env()
        .with_progress(true)
        .build()
        .map_err(|e| hub_err(spec, e))?;
    api.model(repo.to_string())
        .get(file)
        .map_err(|e| hub_err(spec, e))
}

#[cfg(not(feature = "hub"))]
fn fetch(spec: &str, _repo: &str, _file: &str) -> Result<PathBuf> {
    Err(hub_err(
        spec,
        "this build has no Hugging Face Hub support; rebuild with --features hub, or download the file and give its path",
    ))
}
