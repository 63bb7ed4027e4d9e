//! The plots of a report: ROC curves (`roc.png`) and score histograms (`scores.png`); the
//! line and dot charts of training and experiment reports are in [`crate::charts`].
//!
//! Drawn with `plotters` into a bitmap and written as PNG. The text uses DejaVu Sans embedded
//! in the binary (`assets/`, Bitstream Vera licence), so no system font is needed at runtime.

use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::error::{Error, Result};

const FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");
const W: u32 = 640;
const H: u32 = 480;

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The embedded file is a valid TTF; a failure would only lose the text.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

/// Series colours: distinct, readable on white (Palette99's third colour is a pale yellow).
pub(crate) const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
    RGBColor(0, 0, 0),
];

pub(crate) fn plot_err(e: impl std::fmt::Display) -> Error {
    Error::Invalid(format!("plot: {e}"))
}

/// One ROC curve: a label and the scores with their normal flags (higher = more normal).
pub struct Curve<'a> {
    /// Legend text (the AUROC is appended).
    pub label: String,
    /// Scores.
    pub scores: &'a [f64],
    /// True for normal samples.
    pub normal: &'a [bool],
}

/// The ROC points of anomaly detection (anomalies positive, low score = anomalous), one per
/// distinct score, from (0, 0) to (1, 1).
pub fn roc_points(scores: &[f64], normal: &[bool]) -> Vec<(f64, f64)> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let pos = normal.iter().filter(|n| !**n).count().max(1) as f64;
    let neg = normal.iter().filter(|n| **n).count().max(1) as f64;
    let (mut tp, mut fp) = (0.0, 0.0);
    let mut pts = vec![(0.0, 0.0)];
    let mut i = 0;
    while i < order.len() {
        let s = scores[order[i]];
        while i < order.len() && scores[order[i]] == s {
            if normal[order[i]] {
                fp += 1.0;
            } else {
                tp += 1.0;
            }
            i += 1;
        }
        pts.push((fp / neg, tp / pos));
    }
    pts
}

fn save(path: &Path, buf: Vec<u8>) -> Result<()> {
    let img = image::RgbImage::from_raw(W, H, buf).ok_or_else(|| plot_err("bad buffer size"))?;
    dia_data::image_io::save_png(path, &img)?;
    Ok(())
}

/// The chart both plots draw on: f64 axes over a bitmap.
pub(crate) type Chart<'a, 'b> = ChartContext<
    'a,
    BitMapBackend<'b>,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

/// One chart in the style of both plots (title, axis descriptions, light mesh, legend box at
/// `legend`), its series drawn by `series`, written to `path` as PNG.
pub(crate) fn draw_chart(
    path: &Path,
    title: &str,
    ranges: (std::ops::Range<f64>, std::ops::Range<f64>),
    descs: (&str, &str),
    legend: SeriesLabelPosition,
    series: impl FnOnce(&mut Chart) -> Result<()>,
) -> Result<()> {
    draw_chart_with(path, title, ranges, descs, legend, None, series)
}

/// The text of an x label at a position.
pub(crate) type XLabel<'a> = dyn Fn(&f64) -> String + 'a;

/// [`draw_chart`] with, optionally, the number of x labels and their text (categorical axes).
pub(crate) fn draw_chart_with(
    path: &Path,
    title: &str,
    (x, y): (std::ops::Range<f64>, std::ops::Range<f64>),
    (x_desc, y_desc): (&str, &str),
    legend: SeriesLabelPosition,
    x_labels: Option<(usize, &XLabel<'_>)>,
    series: impl FnOnce(&mut Chart) -> Result<()>,
) -> Result<()> {
    register_font();
    let mut buf = vec![0u8; (W * H * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (W, H)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(x, y)
            .map_err(plot_err)?;
        let mut mesh = chart.configure_mesh();
        mesh.light_line_style(WHITE).x_desc(x_desc).y_desc(y_desc);
        if let Some((n, f)) = x_labels {
            mesh.x_labels(n).x_label_formatter(f);
        }
        mesh.draw().map_err(plot_err)?;
        series(&mut chart)?;
        chart
            .configure_series_labels()
            .position(legend)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK.mix(0.4))
            .draw()
            .map_err(plot_err)?;
        root.present().map_err(plot_err)?;
    }
    save(path, buf)
}

/// Writes ROC curves with their AUROC in the legend.
pub fn plot_roc(path: &Path, title: &str, curves: &[Curve]) -> Result<()> {
    draw_chart(
        path,
        title,
        (0f64..1f64, 0f64..1f64),
        (
            "false-positive rate (normal images flagged)",
            "true-positive rate (anomalies found)",
        ),
        SeriesLabelPosition::LowerRight,
        |chart| {
            chart
                .draw_series(LineSeries::new([(0.0, 0.0), (1.0, 1.0)], BLACK.mix(0.3)))
                .map_err(plot_err)?;
            for (i, c) in curves.iter().enumerate() {
                let color = COLORS[i % COLORS.len()].to_rgba();
                let auroc = crate::metrics::auroc(c.scores, c.normal)?;
                chart
                    .draw_series(LineSeries::new(
                        roc_points(c.scores, c.normal),
                        color.stroke_width(2),
                    ))
                    .map_err(plot_err)?
                    .label(format!("{} (AUROC {auroc:.3})", c.label))
                    .legend(move |(x, y)| {
                        PathElement::new([(x, y), (x + 18, y)], color.stroke_width(2))
                    });
            }
            Ok(())
        },
    )
}

/// Writes overlaid histograms of the normal and the anomalous scores.
pub fn plot_histograms(path: &Path, title: &str, scores: &[f64], normal: &[bool]) -> Result<()> {
    let finite: Vec<f64> = scores.iter().copied().filter(|s| s.is_finite()).collect();
    if finite.is_empty() {
        return Err(plot_err("no finite score"));
    }
    let lo = finite.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = finite.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let span = if hi > lo { hi - lo } else { 1.0 };
    let bins = 40usize;
    let mut counts = [vec![0usize; bins], vec![0usize; bins]];
    for (s, n) in scores.iter().zip(normal) {
        if s.is_finite() {
            let b = (((s - lo) / span) * bins as f64)
                .floor()
                .clamp(0.0, (bins - 1) as f64) as usize;
            counts[usize::from(!*n)][b] += 1;
        }
    }
    // Densities, so that classes of different sizes compare.
    let totals = [
        counts[0].iter().sum::<usize>().max(1),
        counts[1].iter().sum::<usize>().max(1),
    ];
    let ymax = (0..2)
        .flat_map(|c| counts[c].iter().map(move |&v| v as f64 / totals[c] as f64))
        .fold(0.0, f64::max)
        * 1.1;
    draw_chart(
        path,
        title,
        (lo..lo + span, 0f64..ymax.max(1e-9)),
        ("score (higher = more normal)", "fraction of images"),
        SeriesLabelPosition::UpperLeft,
        |chart| {
            let width = span / bins as f64;
            for (c, (name, color)) in [("normal", BLUE), ("anomalous", RED)]
                .into_iter()
                .enumerate()
            {
                let bars = counts[c].iter().enumerate().map(move |(b, &v)| {
                    let x0 = lo + b as f64 * width;
                    Rectangle::new(
                        [(x0, 0.0), (x0 + width, v as f64 / totals[c] as f64)],
                        color.mix(0.45).filled(),
                    )
                });
                chart
                    .draw_series(bars)
                    .map_err(plot_err)?
                    .label(format!("{name} ({})", counts[c].iter().sum::<usize>()))
                    .legend(move |(x, y)| {
                        Rectangle::new([(x, y - 5), (x + 14, y + 5)], color.mix(0.45).filled())
                    });
            }
            Ok(())
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roc_points_end_at_one_and_group_ties() {
        let pts = roc_points(&[0.1, 0.2, 0.2, 0.9], &[false, true, false, true]);
        assert_eq!(pts.first(), Some(&(0.0, 0.0)));
        assert_eq!(pts.last(), Some(&(1.0, 1.0)));
        // The tie at 0.2 is one step: (1/2 FPR, 2/2 TPR) reached together.
        assert_eq!(pts, vec![(0.0, 0.0), (0.0, 0.5), (0.5, 1.0), (1.0, 1.0)]);
    }

    #[test]
    fn plots_decode_as_png() {
        let dir = tempfile::tempdir().unwrap();
        let scores = [0.9, 0.8, 0.4, 0.3, 0.35, 0.1];
        let normal = [true, true, true, false, false, false];
        let roc = dir.path().join("roc.png");
        let curve = Curve {
            label: "csi".into(),
            scores: &scores,
            normal: &normal,
        };
        plot_roc(&roc, "ROC", &[curve]).unwrap();
        let hist = dir.path().join("scores.png");
        plot_histograms(&hist, "scores", &scores, &normal).unwrap();
        for p in [roc, hist] {
            let img = image::open(&p).unwrap();
            assert_eq!((img.width(), img.height()), (W, H));
            // Not blank: some dark pixels (text, axes, curve).
            assert!(img
                .to_rgb8()
                .pixels()
                .any(|px| px.0[0] < 100 && px.0[1] < 100));
        }
    }
}
