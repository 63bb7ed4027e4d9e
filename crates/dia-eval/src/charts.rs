//! The charts of training and experiment reports, in the style of [`crate::plot`]:
//!
//! - [`plot_lines`]: curves over steps (a DDPM's raw and smoothed loss, `loss.png`);
//! - [`plot_dots`]: one value per (category, series, repetition) — AUROC per normal class
//!   per method, one dot per seed and a bar at the mean (`auroc.png` of `dia experiment`).

use std::path::Path;

use plotters::prelude::*;

use crate::error::Result;
use crate::plot::{draw_chart, draw_chart_with, plot_err, COLORS};

/// One curve of [`plot_lines`].
pub struct Line<'a> {
    /// Legend text.
    pub label: String,
    /// The points, x ascending.
    pub points: &'a [(f64, f64)],
    /// Drawn pale (a raw curve under its smoothed one).
    pub faint: bool,
}

fn finite_range(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values.filter(|v| v.is_finite()).fold(None, |r, v| match r {
        None => Some((v, v)),
        Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
    })
}

fn padded((lo, hi): (f64, f64)) -> std::ops::Range<f64> {
    let pad = if hi > lo { 0.05 * (hi - lo) } else { 0.5 };
    lo - pad..hi + pad
}

/// Writes curves with a legend.
///
/// ```
/// use dia_eval::charts::{plot_lines, Line};
/// let dir = tempfile::tempdir()?;
/// let pts = [(1.0, 0.9), (2.0, 0.5), (3.0, 0.4)];
/// plot_lines(&dir.path().join("loss.png"), "loss", ("step", "L1 loss"),
///     &[Line { label: "loss".into(), points: &pts, faint: false }])?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn plot_lines(path: &Path, title: &str, axes: (&str, &str), lines: &[Line]) -> Result<()> {
    let all = || lines.iter().flat_map(|l| l.points.iter());
    let xr = finite_range(all().map(|p| p.0)).ok_or_else(|| plot_err("no finite point"))?;
    let yr = finite_range(all().map(|p| p.1)).ok_or_else(|| plot_err("no finite point"))?;
    draw_chart(
        path,
        title,
        (padded(xr), padded(yr)),
        axes,
        SeriesLabelPosition::UpperRight,
        |chart| {
            for (i, l) in lines.iter().enumerate() {
                let c = COLORS[i % COLORS.len()].to_rgba();
                let color = if l.faint { c.mix(0.3) } else { c };
                let pts = l.points.iter().copied().filter(|p| p.1.is_finite());
                chart
                    .draw_series(LineSeries::new(pts, color.stroke_width(2)))
                    .map_err(plot_err)?
                    .label(l.label.clone())
                    .legend(move |(x, y)| {
                        PathElement::new([(x, y), (x + 18, y)], color.stroke_width(2))
                    });
            }
            Ok(())
        },
    )
}

/// One series of [`plot_dots`]: a value list per category (several seeds each).
pub struct Dots {
    /// Legend text (the method).
    pub label: String,
    /// `values[c]`: the repetitions for category `c` (may be empty).
    pub values: Vec<Vec<f64>>,
}

/// Writes a dot chart: categories along x (named under their slots), each series offset within
/// its category, one dot per value and a horizontal bar at the series' mean.
///
/// ```
/// use dia_eval::charts::{plot_dots, Dots};
/// let dir = tempfile::tempdir()?;
/// plot_dots(&dir.path().join("auroc.png"), "AUROC", "AUROC", &["Shirt".into(), "Coat".into()],
///     &[Dots { label: "csi".into(), values: vec![vec![0.7, 0.72], vec![0.85]] }])?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn plot_dots(
    path: &Path,
    title: &str,
    y_desc: &str,
    categories: &[String],
    series: &[Dots],
) -> Result<()> {
    let yr = finite_range(
        series
            .iter()
            .flat_map(|s| s.values.iter().flatten().copied()),
    )
    .ok_or_else(|| plot_err("no finite value"))?;
    let n = categories.len() as f64;
    let k = series.len().max(1) as f64;
    // Each category's name under its slot (ticks every half unit; only the whole ones named).
    let name = |x: &f64| {
        let i = x.round();
        match categories.get((i as usize).wrapping_sub(1)) {
            Some(c) if (x - i).abs() < 1e-6 => c.clone(),
            _ => String::new(),
        }
    };
    draw_chart_with(
        path,
        title,
        (0.5..n + 0.5, padded(yr)),
        ("normal class", y_desc),
        SeriesLabelPosition::LowerRight,
        Some((2 * categories.len() + 1, &name)),
        |chart| {
            for (si, s) in series.iter().enumerate() {
                let color = COLORS[si % COLORS.len()].to_rgba();
                // Series side by side inside each category's unit-wide slot.
                let offset = (si as f64 + 0.5) / k * 0.6 - 0.3;
                let dots = s.values.iter().enumerate().flat_map(move |(c, v)| {
                    v.iter()
                        .filter(|x| x.is_finite())
                        .map(move |&y| Circle::new((c as f64 + 1.0 + offset, y), 4, color.filled()))
                });
                chart
                    .draw_series(dots)
                    .map_err(plot_err)?
                    .label(s.label.clone())
                    .legend(move |(x, y)| Circle::new((x + 8, y), 4, color.filled()));
                let half = 0.25 / k;
                let bars = s.values.iter().enumerate().filter_map(move |(c, v)| {
                    let v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
                    (!v.is_empty()).then(|| {
                        let m = v.iter().sum::<f64>() / v.len() as f64;
                        let x = c as f64 + 1.0 + offset;
                        PathElement::new([(x - half, m), (x + half, m)], color.stroke_width(2))
                    })
                });
                chart.draw_series(bars).map_err(plot_err)?;
            }
            Ok(())
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_decode_as_png_and_refuse_empty_input() {
        let dir = tempfile::tempdir().unwrap();
        let pts: Vec<(f64, f64)> = (1..50).map(|i| (i as f64, 1.0 / i as f64)).collect();
        let lines = dir.path().join("l.png");
        let line = Line {
            label: "loss".into(),
            points: &pts,
            faint: true,
        };
        plot_lines(&lines, "loss", ("step", "loss"), &[line]).unwrap();
        let dots = dir.path().join("d.png");
        let s = Dots {
            label: "csi".into(),
            values: vec![vec![0.7, 0.71, f64::NAN], vec![]],
        };
        plot_dots(&dots, "AUROC", "AUROC", &["a".into(), "b".into()], &[s]).unwrap();
        for p in [lines, dots] {
            let img = image::open(&p).unwrap().to_rgb8();
            assert!(img.pixels().any(|px| px.0[0] < 100 && px.0[1] < 100));
        }
        let empty = Dots {
            label: "x".into(),
            values: vec![vec![f64::NAN]],
        };
        assert!(plot_dots(&dir.path().join("e.png"), "", "", &["a".into()], &[empty]).is_err());
        assert!(plot_lines(&dir.path().join("e.png"), "", ("", ""), &[]).is_err());
    }
}
