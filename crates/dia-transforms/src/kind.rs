//! `shift_trans_type`: the reference's names for a (dissolving, shift) pair (spec §3, §4).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::shift::Shift;

/// What produces the extra ("dissolved") view group of DIA.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DissolveKind {
    /// No dissolved group: plain CSI shifts.
    None,
    /// One reverse step of the DDPM (spec §2.3).
    Diffusion,
    /// Gaussian blur, OpenCV kernel table (spec §3).
    Gaussian,
    /// Median blur (spec §3).
    Median,
    /// The reference's `blurnone`: no filter (with `resize_to_constant`, only the nearest
    /// resize round trip).
    #[serde(rename = "blurnone")]
    BlurNone,
}

/// A reference `shift_trans_type`: a dissolving kind and a shift.
///
/// ```
/// use dia_transforms::{DissolveKind, Shift, ShiftKind};
/// let k: ShiftKind = "diffusion_cutperm".parse()?;
/// assert_eq!((k.dissolve, k.shift), (DissolveKind::Diffusion, Shift::CutPerm));
/// assert_eq!(k.to_string(), "diffusion_cutperm");
/// # Ok::<(), dia_transforms::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ShiftKind {
    /// The dissolving kind.
    pub dissolve: DissolveKind,
    /// The shift.
    pub shift: Shift,
}

impl ShiftKind {
    /// Every name the reference accepts, in the reference's spelling.
    pub const NAMES: [&'static str; 10] = [
        "rotation",
        "cutperm",
        "diffusion_rotation",
        "diffusion_cutperm",
        "blurgaussian_rotation",
        "blurgaussian_cutperm",
        "blurmedian_rotation",
        "blurmedian_cutperm",
        "blurnone_rotation",
        "blurnone_cutperm",
    ];
}

impl FromStr for ShiftKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let unknown = || Error::UnknownShiftKind {
            name: s.to_string(),
            expected: Self::NAMES.join(", "),
        };
        let (prefix, shift) = match s {
            "rotation" => ("", Shift::Rotation),
            "cutperm" => ("", Shift::CutPerm),
            // The reference also spells the rotation variants of the blurs without a suffix.
            "blurgaussian" | "blurmedian" | "blurnone" => (s, Shift::Rotation),
            _ => match s.rsplit_once('_') {
                Some((p, "rotation")) if !p.is_empty() => (p, Shift::Rotation),
                Some((p, "cutperm")) if !p.is_empty() => (p, Shift::CutPerm),
                _ => return Err(unknown()),
            },
        };
        let dissolve = match prefix {
            "" => DissolveKind::None,
            "diffusion" => DissolveKind::Diffusion,
            "blurgaussian" => DissolveKind::Gaussian,
            "blurmedian" => DissolveKind::Median,
            "blurnone" => DissolveKind::BlurNone,
            _ => return Err(unknown()),
        };
        Ok(Self { dissolve, shift })
    }
}

impl fmt::Display for ShiftKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let prefix = match self.dissolve {
            DissolveKind::None => return f.write_str(self.shift.name()),
            DissolveKind::Diffusion => "diffusion",
            DissolveKind::Gaussian => "blurgaussian",
            DissolveKind::Median => "blurmedian",
            DissolveKind::BlurNone => "blurnone",
        };
        write!(f, "{prefix}_{}", self.shift.name())
    }
}

impl TryFrom<String> for ShiftKind {
    type Error = Error;
    fn try_from(s: String) -> Result<Self, Error> {
        s.parse()
    }
}

impl From<ShiftKind> for String {
    fn from(k: ShiftKind) -> String {
        k.to_string()
    }
}
