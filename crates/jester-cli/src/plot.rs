//! `curves.png`: the main metric against examples seen and against total FLOPs (scoring
//! included), a line per run, drawn with plotters into a buffer and encoded as PNG.
use std::path::Path;

use anyhow::{anyhow, Result};
use plotters::prelude::*;

use crate::output::write_atomic;
use jester::config::TrainMethod;
use jester::experiment::{ExperimentSummary, Metric};

const WIDTH: u32 = 1400;
const HEIGHT: u32 = 560;
const COLOURS: [RGBColor; 8] = [
    RGBColor(90, 90, 90),
    RGBColor(214, 39, 40),
    RGBColor(31, 119, 180),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
];

fn register_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            dejavu::sans::regular(),
        );
    });
}

/// The target line of the curves drawn: with several seeds the curves are the first seed's, so the
/// line is that seed's uniform final, and the title says which seed.
fn curves_target(s: &ExperimentSummary) -> (f64, String) {
    let first = s
        .runs
        .iter()
        .find(|r| r.method == TrainMethod::Uniform)
        .and_then(|u| u.seeds.first());
    match first {
        Some(seed) if s.seeds.len() > 1 => (
            seed.final_metric,
            format!("; curves of seed {} of {:?}", seed.seed, s.seeds),
        ),
        _ => (s.target, String::new()),
    }
}

/// Draws the two panels into `path`.
pub fn curves(s: &ExperimentSummary, path: &Path) -> Result<()> {
    register_font();
    let mut buffer = vec![255u8; (WIDTH * HEIGHT * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buffer, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| anyhow!("plot: {e}"))?;
        let (target, seed) = curves_target(s);
        let title = format!(
            "{} on {}: {} (target = uniform's final {:.1}%{seed})",
            s.recipe,
            s.benchmark,
            metric_label(s.metric),
            100.0 * target
        );
        let root = root
            .titled(&title, ("sans-serif", 22))
            .map_err(|e| anyhow!("plot: {e}"))?;
        let panels = root.split_evenly((1, 2));
        let points = || s.runs.iter().flat_map(|r| r.curve.iter());
        let most_examples = points().map(|p| p.examples_seen).fold(0.0, f64::max);
        let most_flops = points().map(|p| p.flops_total).fold(0.0, f64::max);
        let (examples, e_unit) = scale(most_examples, &["", "thousands", "millions", "billions"]);
        let flop_units = ["FLOP", "kFLOP", "MFLOP", "GFLOP", "TFLOP", "PFLOP", "EFLOP"];
        let (flops, f_unit) = scale(most_flops, &flop_units);
        let e_label = if e_unit.is_empty() {
            "examples seen".to_string()
        } else {
            format!("examples seen ({e_unit})")
        };
        let f_label = format!("total FLOPs, training + scoring ({f_unit})");
        panel(s, &panels[0], &e_label, |p| p.examples_seen / examples)?;
        panel(s, &panels[1], &f_label, |p| p.flops_total / flops)?;
        root.present().map_err(|e| anyhow!("plot: {e}"))?;
    }
    let image = image::RgbImage::from_raw(WIDTH, HEIGHT, buffer).expect("buffer size");
    let mut png = Vec::new();
    image.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)?;
    write_atomic(path, &png)
}

fn metric_label(metric: Metric) -> &'static str {
    if metric == Metric::RetrievalR1 {
        "R@1, mean of image→text and text→image (%)"
    } else {
        "zero-shot top-1 (%)"
    }
}

fn panel(
    s: &ExperimentSummary,
    area: &DrawingArea<BitMapBackend, plotters::coord::Shift>,
    x_label: &str,
    x: impl Fn(&jester::experiment::Point) -> f64,
) -> Result<()> {
    let err = |e: DrawingAreaErrorKind<_>| anyhow!("plot: {e}");
    let points = s.runs.iter().flat_map(|r| r.curve.iter());
    let x_max = points.clone().map(&x).fold(0.0, f64::max).max(1e-9) * 1.02;
    let y_max = points
        .map(|p| 100.0 * p.metric)
        .filter(|m| m.is_finite())
        .fold(0.0, f64::max)
        .max(1.0)
        * 1.08;
    let mut chart = ChartBuilder::on(area)
        .margin(18)
        .x_label_area_size(48)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(metric_label(s.metric))
        .label_style(("sans-serif", 15))
        .axis_desc_style(("sans-serif", 17))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(err)?;
    chart
        .draw_series(LineSeries::new(
            [
                (0.0, 100.0 * curves_target(s).0),
                (x_max, 100.0 * curves_target(s).0),
            ],
            ShapeStyle::from(&RGBColor(150, 150, 150)).stroke_width(1),
        ))
        .map_err(err)?;
    for (i, run) in s.runs.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let series: Vec<(f64, f64)> = run
            .curve
            .iter()
            .filter(|p| p.metric.is_finite())
            .map(|p| (x(p), 100.0 * p.metric))
            .collect();
        chart
            .draw_series(LineSeries::new(series.clone(), colour.stroke_width(3)))
            .map_err(err)?
            .label(run.name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 22, y)], colour.stroke_width(3))
            });
        chart
            .draw_series(
                series
                    .into_iter()
                    .map(|p| Circle::new(p, 4, colour.filled())),
            )
            .map_err(err)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .label_font(("sans-serif", 16))
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(200, 200, 200))
        .draw()
        .map_err(err)?;
    Ok(())
}

/// The power of 1000 (and its unit) that keeps `max` in [1, 1000).
fn scale(max: f64, units: &[&'static str]) -> (f64, &'static str) {
    let mut power = 0;
    while power + 1 < units.len() && max >= 1000f64.powi(power as i32 + 1) {
        power += 1;
    }
    (1000f64.powi(power as i32), units[power])
}
