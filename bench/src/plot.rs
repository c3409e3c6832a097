//! Percentile-spectrum plots (SVG) comparing the runs in several JSON summaries.

use std::path::Path;

use plotters::prelude::*;

use crate::error::{BenchError, Result};
use crate::histogram::LatencySummary;
use crate::report::Summary;

/// Which histogram of each summary to draw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    ProduceAck,
    EndToEnd,
    Fetch,
}

impl Metric {
    fn pick(self, s: &Summary) -> &LatencySummary {
        match self {
            Self::ProduceAck => &s.produce_ack,
            Self::EndToEnd => &s.end_to_end,
            Self::Fetch => &s.fetch,
        }
    }
    fn title(self) -> &'static str {
        match self {
            Self::ProduceAck => "produce-ack latency",
            Self::EndToEnd => "end-to-end latency",
            Self::Fetch => "fetch latency",
        }
    }
}

impl std::str::FromStr for Metric {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "produce-ack" => Ok(Self::ProduceAck),
            "end-to-end" => Ok(Self::EndToEnd),
            "fetch" => Ok(Self::Fetch),
            o => Err(format!("metric `{o}`: produce-ack, end-to-end or fetch")),
        }
    }
}

/// Highest "nines" drawn on the x axis (99.999%).
const NINES_MAX: f64 = 5.0;

/// x position of a percentile: log10(1 / (1 - p)), so 90% is 1, 99% is 2, ...
pub fn nines(percentile: f64) -> f64 {
    let tail = (1.0 - percentile / 100.0).max(10f64.powf(-NINES_MAX));
    (-tail.log10()).clamp(0.0, NINES_MAX)
}

/// Draws `metric` of every summary that has samples; returns how many runs were drawn.
pub fn plot_spectrum(
    summaries: &[Summary],
    metric: Metric,
    title: &str,
    out: &Path,
) -> Result<usize> {
    let err = |e: &dyn std::fmt::Display| BenchError::Plot {
        path: out.to_path_buf(),
        detail: e.to_string(),
    };
    let runs: Vec<(&str, Vec<(f64, f64)>)> = summaries
        .iter()
        .filter_map(|s| {
            let l = metric.pick(s);
            let points: Vec<(f64, f64)> = l
                .spectrum
                .iter()
                .map(|p| (nines(p.percentile), p.value_ms.max(0.001)))
                .collect();
            (!points.is_empty()).then_some((s.label.as_str(), points))
        })
        .collect();
    if runs.is_empty() {
        return Ok(0);
    }
    let y_max = runs
        .iter()
        .flat_map(|(_, p)| p.iter().map(|q| q.1))
        .fold(0.001, f64::max)
        * 1.5;
    let y_min = runs
        .iter()
        .flat_map(|(_, p)| p.iter().map(|q| q.1))
        .fold(f64::MAX, f64::min)
        .max(0.001)
        / 1.5;
    let root = SVGBackend::new(out, (960, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("{title}: {}", metric.title()), ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..NINES_MAX, (y_min..y_max).log_scale())
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_labels(6)
        .x_label_formatter(&|x| match x.round() as i32 {
            0 => "0%".into(),
            1 => "90%".into(),
            2 => "99%".into(),
            3 => "99.9%".into(),
            4 => "99.99%".into(),
            _ => "99.999%".into(),
        })
        .x_desc("percentile")
        .y_desc("latency (ms, log)")
        .draw()
        .map_err(|e| err(&e))?;
    for (i, (label, points)) in runs.iter().enumerate() {
        let color = Palette99::pick(i).stroke_width(2);
        chart
            .draw_series(LineSeries::new(points.iter().copied(), color))
            .map_err(|e| err(&e))?
            .label(*label)
            .legend(move |(x, y)| {
                PathElement::new(
                    vec![(x, y), (x + 20, y)],
                    Palette99::pick(i).stroke_width(2),
                )
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(runs.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BenchConfig;
    use crate::histogram::LatencyHistogram;

    #[test]
    fn nines_put_percentiles_on_a_log_axis() {
        assert!((nines(90.0) - 1.0).abs() < 1e-9);
        assert!((nines(99.9) - 3.0).abs() < 1e-6);
        assert_eq!(nines(100.0), NINES_MAX);
        assert_eq!(nines(0.0), 0.0);
    }

    #[test]
    fn plot_writes_an_svg_with_each_label() {
        let mut runs = Vec::new();
        for (label, scale) in [("fast", 1u64), ("slow", 10)] {
            let mut s = Summary::new(
                &BenchConfig {
                    label: label.into(),
                    ..Default::default()
                },
                "x",
                0,
            );
            let mut h = LatencyHistogram::new();
            for us in 1..=10_000u64 {
                h.record_ns(us * 100 * scale);
            }
            s.end_to_end = h.summary();
            runs.push(s);
        }
        let out =
            std::env::temp_dir().join(format!("sluice-bench-plot-{}.svg", std::process::id()));
        let drawn = plot_spectrum(&runs, Metric::EndToEnd, "test", &out).expect("plot");
        assert_eq!(drawn, 2);
        let svg = std::fs::read_to_string(&out).expect("svg written");
        assert!(svg.contains("<svg") && svg.contains("fast") && svg.contains("slow"));
        assert_eq!(
            plot_spectrum(&runs, Metric::Fetch, "test", &out).expect("no data"),
            0
        );
        let _ = std::fs::remove_file(out);
    }
}
