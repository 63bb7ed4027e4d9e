//! A DDPM you can trust before you use it (issue #16): the report `dia train-ddpm`,
//! `dia experiment` and `dia quickstart` write into a DDPM run directory at every checkpoint and
//! at the end — `loss.png` (the raw loss and its moving average), `report.md` (the smoothed
//! final loss, whether it stopped on a plateau, the dissolving strength of
//! [`dia_diffusion::strength`] at every checkpoint, the latest sample grid).

use std::path::{Path, PathBuf};

use dia_diffusion::plateau::moving_average;
use dia_diffusion::strength::{read_strength_csv, Strength};
use dia_diffusion::train::read_losses;
use dia_diffusion::DdpmConfig;
use dia_eval::charts::{plot_lines, Line};

use crate::error::Result;

/// What a DDPM's report says, for the reports that embed it.
#[derive(Clone, Debug, PartialEq)]
pub struct DdpmSummary {
    /// Steps trained.
    pub steps: usize,
    /// The smoothed loss at the last step.
    pub smoothed_loss: f64,
    /// Stopped on a plateau before the configured steps.
    pub plateaued: bool,
    /// The last strength measurement, one per t.
    pub strength: Vec<Strength>,
    /// `loss.png`.
    pub loss_plot: PathBuf,
    /// The latest sample grid, if any.
    pub samples: Option<PathBuf>,
}

/// The window of the smoothed curve: the plateau rule's, else 50 steps.
fn window(cfg: &DdpmConfig) -> usize {
    cfg.plateau.as_ref().map_or(50, |p| p.window)
}

/// Writes `loss.png` and `report.md` of the DDPM run in `dir` (trained with `cfg`) from its
/// `metrics.csv` and `strength.csv`, and returns the summary.
pub fn write_ddpm_report(dir: &Path, cfg: &DdpmConfig) -> Result<DdpmSummary> {
    let raw: Vec<(f64, f64)> = read_losses(&dir.join("metrics.csv"))?
        .into_iter()
        .map(|(step, loss)| (step as f64, loss))
        .collect();
    let losses: Vec<f64> = raw.iter().map(|p| p.1).collect();
    let w = window(cfg);
    let smooth: Vec<(f64, f64)> = raw
        .iter()
        .zip(moving_average(&losses, w))
        .map(|(p, m)| (p.0, m))
        .collect();
    let loss_plot = dir.join("loss.png");
    if !raw.is_empty() {
        plot_lines(
            &loss_plot,
            "DDPM training loss (L1 on the noise)",
            ("optimiser step", "loss"),
            &[
                Line {
                    label: "per step".into(),
                    points: &raw,
                    faint: true,
                },
                Line {
                    label: format!("moving average over {w} steps"),
                    points: &smooth,
                    faint: false,
                },
            ],
        )?;
    }
    let strength_path = dir.join("strength.csv");
    let strength_rows = if strength_path.is_file() {
        read_strength_csv(&strength_path)?
    } else {
        Vec::new()
    };
    let steps = raw.last().map_or(0, |p| p.0 as usize);
    let model = dir.join("model.safetensors");
    // The weights' metadata says whether the run stopped on a plateau; without them (an
    // archived run) the rule is applied to the recorded losses, as training does on resume.
    let plateaued = if model.is_file() {
        dia_diffusion::checkpoint::read_meta(&model)?.is_some_and(|m| m.plateaued)
    } else {
        cfg.plateau
            .as_ref()
            .is_some_and(|p| steps < cfg.steps && dia_diffusion::plateau::plateaued(&losses, p))
    };
    let last_step = strength_rows.last().map(|r| r.0);
    let strength: Vec<Strength> = strength_rows
        .iter()
        .filter(|r| Some(r.0) == last_step)
        .map(|r| r.1)
        .collect();
    let samples = latest_samples(dir);
    let summary = DdpmSummary {
        steps,
        smoothed_loss: smooth.last().map_or(f64::NAN, |p| p.1),
        plateaued,
        strength,
        loss_plot,
        samples,
    };
    let md = report_markdown(cfg, &summary, &strength_rows);
    dia_io::atomic::write_atomic(&dir.join("report.md"), |f| {
        std::io::Write::write_all(f, md.as_bytes())
    })?;
    Ok(summary)
}

fn latest_samples(dir: &Path) -> Option<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir.join("samples"))
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "png"))
        .collect();
    v.sort();
    v.pop()
}

/// The strength table of a summary: one row per t.
pub fn strength_table(s: &DdpmSummary) -> String {
    let mut t = String::from(
        "| t | mean abs(D(x) − x) | PSNR of D(x) | finest detail removed |\n|---|---|---|---|\n",
    );
    for r in &s.strength {
        t.push_str(&format!(
            "| {} | {:.4} | {:.2} dB | {:.1} % |\n",
            r.t,
            r.mean_abs_change,
            r.psnr_db,
            100.0 * r.detail_removed
        ));
    }
    t
}

fn report_markdown(cfg: &DdpmConfig, s: &DdpmSummary, rows: &[(usize, Strength)]) -> String {
    let stop = match (&cfg.plateau, s.plateaued) {
        (Some(p), true) => format!(
            "stopped at step {} of at most {}: the loss's moving average over {} steps fell by \
             less than {} over the last window",
            s.steps, cfg.steps, p.window, p.threshold
        ),
        (Some(_), false) => format!(
            "{} of at most {} steps, no plateau reached yet",
            s.steps, cfg.steps
        ),
        (None, _) => format!("{} of {} steps", s.steps, cfg.steps),
    };
    let mut md = format!(
        "# DDPM report\n\n{stop}; smoothed loss {:.4}.\n\n![loss](loss.png)\n\n## Dissolving strength\n\n\
         DIA's one-step x̂₀ D(x) (spec §2.3, the reference's unnormalised input) on the first \
         {} training images of the class, at the last checkpoint (step {}). Even an untrained \
         UNet changes the image (the first two columns); a DDPM that *dissolves* removes the \
         finest detail, ‖H(x)‖ with H = x − 3×3 Gaussian blur (the last column: near zero or \
         negative when the change is unstructured).\n\n{}",
        s.smoothed_loss,
        dia_diffusion::strength::STRENGTH_IMAGES,
        rows.last().map_or(0, |r| r.0),
        strength_table(s)
    );
    if rows.len() > s.strength.len() {
        md.push_str("\nAt every checkpoint (mean abs change / detail removed):\n\n| step | ");
        let ts: Vec<usize> = s.strength.iter().map(|x| x.t).collect();
        md.push_str(
            &ts.iter()
                .map(|t| format!("t = {t}"))
                .collect::<Vec<_>>()
                .join(" | "),
        );
        md.push_str(&format!(" |\n|---|{}\n", "---|".repeat(ts.len())));
        let mut steps: Vec<usize> = rows.iter().map(|r| r.0).collect();
        steps.dedup();
        for st in steps {
            md.push_str(&format!("| {st} |"));
            for t in &ts {
                match rows.iter().find(|r| r.0 == st && r.1.t == *t).map(|r| r.1) {
                    Some(r) => md.push_str(&format!(
                        " {:.4} / {:.1} % |",
                        r.mean_abs_change,
                        100.0 * r.detail_removed
                    )),
                    None => md.push_str(" – |"),
                }
            }
            md.push('\n');
        }
    }
    if let Some(p) = &s.samples {
        let name = p
            .strip_prefix(p.parent().and_then(Path::parent).unwrap_or(Path::new("")))
            .unwrap_or(p);
        md.push_str(&format!(
            "\n## Samples (EMA weights, DDIM)\n\n![samples]({})\n",
            name.display()
        ));
    }
    md
}
