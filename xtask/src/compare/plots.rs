//! The plots of `bench compare` (SVG, plotters): connections per second per system and vCPU
//! count, the latency distribution, and host CPU per connection.

use std::error::Error;
use std::fs;
use std::path::{Path, PathBuf};

use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;

use super::guest::System;
use super::load::PERCENTILES;
use super::report::cpu_per_connection;
use super::statistics::Summary;
use super::{Results, Round};
use crate::Failure;

type PlotResult = Result<(), Box<dyn Error>>;
/// A plot: what it draws from, where it writes.
type Plot = fn(&Results, &Path) -> PlotResult;

/// One colour per system, the same in every plot.
fn colour(system: System) -> RGBColor {
    match system {
        System::UnisockResponder => RGBColor(0x1f, 0x77, 0xb4),
        System::UnisockProxy => RGBColor(0x2c, 0xa0, 0x2c),
        System::NginxStatic => RGBColor(0xff, 0x7f, 0x0e),
        System::NginxProxy => RGBColor(0xd6, 0x27, 0x28),
        System::HaproxyProxy => RGBColor(0x94, 0x67, 0xbd),
    }
}

/// One horizontal bar: its label, its stacked parts and an optional min-max whisker.
struct Bar {
    label: String,
    parts: Vec<(f64, RGBColor)>,
    whisker: Option<(f64, f64)>,
}

/// The rows that have figures: (system, vCPUs, rounds), in table order.
fn measured(results: &Results) -> Vec<(System, u32, &Vec<Round>)> {
    let mut rows = Vec::new();
    for &vcpus in &results.settings.vcpus {
        for system in System::ALL {
            if let Some(rounds) = results.rounds.get(&(system, vcpus)) {
                rows.push((system, vcpus, rounds));
            }
        }
    }
    rows
}

fn horizontal_bars(
    path: &Path,
    title: &str,
    axis: &str,
    bars: &[Bar],
    legend: &[(&str, RGBColor)],
) -> PlotResult {
    let height = 120 + 34 * bars.len() as u32;
    let area = SVGBackend::new(path, (900, height)).into_drawing_area();
    area.fill(&WHITE)?;
    let maximum = bars
        .iter()
        .map(|bar| {
            let stacked: f64 = bar.parts.iter().map(|(value, _)| value).sum();
            bar.whisker.map_or(stacked, |(_, high)| high.max(stacked))
        })
        .fold(0.0, f64::max)
        .max(1.0)
        // Room on the right for the legend, so that it covers no bar.
        * if legend.is_empty() { 1.1 } else { 1.6 };
    let count = bars.len() as i32;
    let mut chart = ChartBuilder::on(&area)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(190)
        // A segmented 0..n has a segment for n too: stop one short.
        .build_cartesian_2d(0f64..maximum, (0..count - 1).into_segmented())?;
    let labels: Vec<String> = bars.iter().map(|bar| bar.label.clone()).collect();
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(bars.len().max(1))
        .y_label_formatter(&|value| match value {
            // Row 0 at the top, as in the table.
            SegmentValue::CenterOf(index) => labels
                .get((count - 1 - index) as usize)
                .cloned()
                .unwrap_or_default(),
            _ => String::new(),
        })
        .x_label_formatter(&|value| format!("{value:.0}"))
        .x_desc(axis)
        .draw()?;
    for (index, bar) in bars.iter().enumerate() {
        let row = count - 1 - index as i32;
        let mut start = 0.0;
        for &(value, colour) in &bar.parts {
            let mut rectangle = Rectangle::new(
                [
                    (start, SegmentValue::Exact(row)),
                    (start + value, SegmentValue::Exact(row + 1)),
                ],
                colour.filled(),
            );
            rectangle.set_margin(5, 5, 0, 0);
            chart.draw_series(std::iter::once(rectangle))?;
            start += value;
        }
        if let Some((low, high)) = bar.whisker {
            chart.draw_series(std::iter::once(PathElement::new(
                vec![
                    (low, SegmentValue::CenterOf(row)),
                    (high, SegmentValue::CenterOf(row)),
                ],
                BLACK.stroke_width(2),
            )))?;
        }
    }
    for &(name, colour) in legend {
        chart
            .draw_series(std::iter::empty::<Rectangle<(f64, SegmentValue<i32>)>>())?
            .label(name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], colour.filled()));
    }
    if !legend.is_empty() {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()?;
    }
    area.present()?;
    Ok(())
}

fn connections_plot(results: &Results, path: &Path) -> PlotResult {
    let bars: Vec<Bar> = measured(results)
        .into_iter()
        .filter_map(|(system, vcpus, rounds)| {
            let rates: Vec<f64> = rounds
                .iter()
                .map(|round| round.close.result.rate())
                .collect();
            let summary = Summary::of(&rates)?;
            Some(Bar {
                label: format!("{} ({vcpus} vCPU)", system.name()),
                parts: vec![(summary.median, colour(system))],
                whisker: (summary.count > 1).then_some((summary.minimum, summary.maximum)),
            })
        })
        .collect();
    horizontal_bars(
        path,
        "Connections per second, one request per connection (wrk, Connection: close)",
        "connections/s (median of the rounds; line: min-max)",
        &bars,
        &[],
    )
}

fn cpu_plot(results: &Results, path: &Path) -> PlotResult {
    let parts = [
        ("guest vCPU threads", RGBColor(0x1f, 0x77, 0xb4)),
        ("QEMU main loop + other threads", RGBColor(0xff, 0x7f, 0x0e)),
        ("wrk", RGBColor(0x7f, 0x7f, 0x7f)),
    ];
    let bars: Vec<Bar> = measured(results)
        .into_iter()
        .filter_map(|(system, vcpus, rounds)| {
            let median = |index: usize| {
                let values: Vec<f64> = rounds
                    .iter()
                    .map(|round| {
                        let (vcpus, io, load) = cpu_per_connection(round);
                        [vcpus, io, load][index]
                    })
                    .collect();
                Summary::of(&values).map(|summary| summary.median)
            };
            Some(Bar {
                label: format!("{} ({vcpus} vCPU)", system.name()),
                parts: (0..3)
                    .map(|index| Some((median(index)?, parts[index].1)))
                    .collect::<Option<Vec<_>>>()?,
                whisker: None,
            })
        })
        .collect();
    horizontal_bars(
        path,
        "Host CPU per connection (Connection: close run)",
        "microseconds of host CPU per connection (medians)",
        &bars,
        &parts,
    )
}

/// The round whose close rate is the median one (its latency curve is the one drawn).
fn median_round(rounds: &[Round]) -> Option<&Round> {
    let mut sorted: Vec<&Round> = rounds.iter().collect();
    sorted.sort_by(|a, b| a.close.result.rate().total_cmp(&b.close.result.rate()));
    sorted.get(sorted.len() / 2).copied()
}

fn latency_plot(results: &Results, path: &Path) -> PlotResult {
    let curves: Vec<(String, RGBColor, Vec<f64>)> = measured(results)
        .into_iter()
        .filter_map(|(system, vcpus, rounds)| {
            let round = median_round(rounds)?;
            let points: Vec<f64> = round
                .close
                .result
                .latency
                .iter()
                .map(|(_, ms)| *ms)
                .collect();
            // Fewer vCPUs, a lighter shade of the system's colour.
            let RGBColor(r, g, b) = colour(system);
            let larger_counts = results
                .settings
                .vcpus
                .iter()
                .filter(|&&count| count > vcpus)
                .count() as u32;
            let lighten = |channel: u8| (255 - (255 - channel as u32) / (1 + larger_counts)) as u8;
            Some((
                format!("{} ({vcpus} vCPU)", system.name()),
                RGBColor(lighten(r), lighten(g), lighten(b)),
                points,
            ))
        })
        .collect();
    let area = SVGBackend::new(path, (900, 520)).into_drawing_area();
    area.fill(&WHITE)?;
    let values = curves
        .iter()
        .flat_map(|(_, _, points)| points.iter().copied());
    let low = values.clone().fold(f64::INFINITY, f64::min).max(0.01);
    let high = values.fold(0.0, f64::max).max(low * 10.0);
    let count = PERCENTILES.len() as i32;
    let mut chart = ChartBuilder::on(&area)
        .caption(
            "Latency percentiles, Connection: close (wrk --latency, median round)",
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(
            // A segmented 0..n has a segment for n too: stop one short.
            (0..count - 1).into_segmented(),
            (low * 0.8..high * 1.25).log_scale(),
        )?;
    chart
        .configure_mesh()
        .x_labels(PERCENTILES.len())
        .x_label_formatter(&|value| match value {
            SegmentValue::CenterOf(index) => PERCENTILES
                .get(*index as usize)
                .map_or(String::new(), |p| format!("p{p}")),
            _ => String::new(),
        })
        .y_desc("milliseconds (log scale)")
        .draw()?;
    for (name, colour, points) in &curves {
        let colour = *colour;
        chart
            .draw_series(LineSeries::new(
                points
                    .iter()
                    .enumerate()
                    .map(|(index, ms)| (SegmentValue::CenterOf(index as i32), *ms)),
                colour.stroke_width(2),
            ))?
            .label(name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 16, y)], colour.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    area.present()?;
    Ok(())
}

/// Writes the three plots into `directory`; returns their paths.
pub fn write_all(results: &Results, directory: &Path) -> Result<Vec<PathBuf>, Failure> {
    fs::create_dir_all(directory)
        .map_err(|error| Failure(format!("create {}: {error}", directory.display())))?;
    let plots: [(&str, Plot); 3] = [
        ("connections.svg", connections_plot),
        ("latency.svg", latency_plot),
        ("cpu-per-connection.svg", cpu_plot),
    ];
    let mut paths = Vec::new();
    for (name, plot) in plots {
        let path = directory.join(name);
        plot(results, &path)
            .map_err(|error| Failure(format!("plot {}: {error}", path.display())))?;
        paths.push(path);
    }
    Ok(paths)
}
