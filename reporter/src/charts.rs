//! Charts as PNG, drawn in Rust with plotters and an embedded font (DejaVu Sans, licence in
//! `reporter/assets/fonts/LICENSE-DejaVu.txt`), so that the reporter needs no system fonts and
//! the images look the same everywhere. Mail clients show PNG; every figure in a chart is also in
//! a table beside it.

use crate::model::Report;
use plotters::prelude::*;
use std::sync::OnceLock;

const FONT: &[u8] = include_bytes!("../assets/fonts/DejaVuSans.ttf");
const FAMILY: &str = "joulebook-sans";
const W: u32 = 900;
const H: u32 = 380;

/// cpu, dram, gpu, other, idle.
const COLORS: [RGBColor; 5] = [
    RGBColor(66, 133, 244),
    RGBColor(251, 188, 5),
    RGBColor(52, 168, 83),
    RGBColor(150, 150, 150),
    RGBColor(234, 67, 53),
];

#[derive(Debug, thiserror::Error)]
#[error("chart: {0}")]
pub struct ChartError(pub String);

fn err<E: std::fmt::Display>(e: E) -> ChartError {
    ChartError(e.to_string())
}

fn font() -> Result<(), ChartError> {
    static DONE: OnceLock<bool> = OnceLock::new();
    let ok = *DONE
        .get_or_init(|| plotters::style::register_font(FAMILY, FontStyle::Normal, FONT).is_ok());
    if ok {
        Ok(())
    } else {
        Err(ChartError("the embedded font failed to load".into()))
    }
}

fn png(buf: Vec<u8>) -> Result<Vec<u8>, ChartError> {
    let img = image::RgbImage::from_raw(W, H, buf).ok_or_else(|| err("bitmap size"))?;
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)
        .map_err(err)?;
    Ok(out.into_inner())
}

/// Width of the strip right of the daily chart that holds its legend, pixels.
const LEGEND_W: u32 = 120;

/// Energy of allocated hardware by component with the unallocated energy stacked on top, kWh,
/// by day, or by month where the report shows months (`monthly`, long periods): the chart's
/// name (`daily`, `monthly`) and PNG. `None` when the report has no days. The legend sits in a
/// strip of its own right of the plot, where it can hide no bar whatever the data; components
/// that nothing on the cluster measures are left out of it.
pub fn energy_bars(r: &Report) -> Result<Option<(&'static str, Vec<u8>)>, ChartError> {
    let (name, rows, unit) = if r.monthly.is_empty() {
        ("daily", &r.daily, "day")
    } else {
        ("monthly", &r.monthly, "month")
    };
    if rows.is_empty() {
        return Ok(None);
    }
    font()?;
    let mut buf = vec![255u8; (W * H * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (W, H)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let (plot, side) = root.split_horizontally(W - LEGEND_W);
        let max = rows
            .iter()
            .map(|d| d.cpu_kwh + d.dram_kwh + d.gpu_kwh + d.other_kwh + d.idle_kwh)
            .fold(0.0, f64::max)
            .max(1e-9)
            * 1.1;
        let n = rows.len();
        let mut chart = ChartBuilder::on(&plot)
            .caption(
                format!("Energy per {unit} (kWh): allocated by component, idle on top"),
                (FAMILY, 18),
            )
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..n as f64, 0f64..max)
            .map_err(err)?;
        // The day of the month (`2026-10-03` → `03`), or the month (`2026-10`).
        let dates: Vec<String> = rows
            .iter()
            .map(|d| d.date.get(8..10).unwrap_or(&d.date).to_string())
            .collect();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n.min(31))
            .x_label_formatter(&|x| {
                let i = x.floor() as usize;
                dates.get(i).cloned().unwrap_or_default()
            })
            .label_style((FAMILY, 12))
            .draw()
            .map_err(err)?;
        let names = ["cpu", "dram", "gpu", "other", "idle"];
        let mut legend = Vec::new();
        for (k, name) in names.iter().enumerate() {
            let color = COLORS[k];
            let bars = rows.iter().enumerate().map(|(i, d)| {
                let parts = [d.cpu_kwh, d.dram_kwh, d.gpu_kwh, d.other_kwh, d.idle_kwh];
                let below: f64 = parts[..k].iter().map(|v| v.max(0.0)).sum();
                let top = below + parts[k].max(0.0);
                Rectangle::new(
                    [(i as f64 + 0.15, below), (i as f64 + 0.85, top)],
                    color.filled(),
                )
            });
            chart.draw_series(bars).map_err(err)?;
            if !r.unmeasured.iter().any(|u| u == name) {
                legend.push((*name, color));
            }
        }
        // Top down, as the bars stack: idle first.
        for (row, (name, color)) in legend.iter().rev().enumerate() {
            let y = 50 + 22 * row as i32;
            side.draw(&Rectangle::new([(8, y - 6), (22, y + 6)], color.filled()))
                .map_err(err)?;
            side.draw(&Text::new(
                name.to_string(),
                (30, y - 7),
                (FAMILY, 13).into_font(),
            ))
            .map_err(err)?;
        }
        root.present().map_err(err)?;
    }
    png(buf).map(|p| Some((name, p)))
}

/// Top projects by energy, horizontal bars, kWh. `None` without projects.
pub fn projects(r: &Report) -> Result<Option<Vec<u8>>, ChartError> {
    let rows: Vec<_> = r.projects.rows.iter().take(r.top_n.min(12)).collect();
    if rows.is_empty() {
        return Ok(None);
    }
    font()?;
    let mut buf = vec![255u8; (W * H * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (W, H)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let max = rows
            .iter()
            .map(|p| p.energy_kwh)
            .fold(0.0, f64::max)
            .max(1e-9)
            * 1.15;
        let n = rows.len();
        let names: Vec<String> = rows
            .iter()
            .map(|p| {
                let s: String = p
                    .name
                    .chars()
                    .filter(|c| !c.is_control())
                    .take(22)
                    .collect();
                if s.is_empty() {
                    "(none)".into()
                } else {
                    s
                }
            })
            .collect();
        let mut chart = ChartBuilder::on(&root)
            .caption("Top projects by energy (kWh)", (FAMILY, 18))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(180)
            .build_cartesian_2d(0f64..max, (0..n).into_segmented())
            .map_err(err)?;
        // Row 0 (the largest) is drawn at the top: segment n - 1.
        let row = |i: usize| n - 1 - i;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(n)
            .y_label_formatter(&|y| match y {
                SegmentValue::CenterOf(k) if *k < n => {
                    names.get(n - 1 - *k).cloned().unwrap_or_default()
                }
                _ => String::new(),
            })
            .label_style((FAMILY, 12))
            .draw()
            .map_err(err)?;
        chart
            .draw_series(rows.iter().enumerate().map(|(i, p)| {
                Rectangle::new(
                    [
                        (0.0, SegmentValue::Exact(row(i))),
                        (p.energy_kwh, SegmentValue::Exact(row(i) + 1)),
                    ],
                    COLORS[0].filled(),
                )
            }))
            .map_err(err)?;
        chart
            .draw_series(rows.iter().enumerate().map(|(i, p)| {
                Text::new(
                    format!(" {}", crate::render::format_num(p.energy_kwh, 1)),
                    (p.energy_kwh, SegmentValue::CenterOf(row(i))),
                    (FAMILY, 12),
                )
            }))
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    png(buf).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{ByComponent, Dataset, DayData};
    use crate::period::Period;

    /// A month whose last days hold the tallest bars, where a legend in the upper right corner of
    /// the plot used to sit.
    fn report(unmeasured: &[&str]) -> Report {
        report_of(31, unmeasured)
    }

    /// `n` days from 1 January 1970, the last three the tallest.
    fn report_of(n: i64, unmeasured: &[&str]) -> Report {
        let days: Vec<DayData> = (0..n)
            .map(|i| {
                let e = if i >= n - 3 { 40e6 } else { 10e6 };
                DayData {
                    period: Period {
                        start: i * 86_400,
                        end: (i + 1) * 86_400,
                    },
                    energy: ByComponent {
                        cpu: e * 0.3,
                        gpu: e * 0.7,
                        ..ByComponent::default()
                    },
                    unallocated: ByComponent {
                        gpu: e * 0.5,
                        ..ByComponent::default()
                    },
                }
            })
            .collect();
        let ds = Dataset {
            period: Some(Period {
                start: 0,
                end: n * 86_400,
            }),
            days,
            unmeasured: unmeasured.iter().map(|s| s.to_string()).collect(),
            ..Dataset::default()
        };
        crate::render::cluster_report(&ds)
    }

    fn pixels(png: &[u8]) -> image::RgbImage {
        image::load_from_memory(png).expect("decodes").to_rgb8()
    }

    fn is(c: &image::Rgb<u8>, k: usize) -> bool {
        let RGBColor(r, g, b) = COLORS[k];
        c.0 == [r, g, b]
    }

    /// `JOULEBOOK_CHART_DUMP=FILE` writes the chart for a look.
    #[test]
    fn the_legend_hides_no_bar() {
        let (name, png) = energy_bars(&report(&[])).expect("chart").expect("days");
        assert_eq!(name, "daily");
        if let Some(p) = std::env::var_os("JOULEBOOK_CHART_DUMP") {
            std::fs::write(p, &png).expect("dump");
        }
        let img = pixels(&png);
        let plot_w = W - LEGEND_W;
        let bar = |c: &image::Rgb<u8>| (0..5).any(|k| is(c, k));
        // The last bar: the rightmost column of idle colour in the plot, a few pixels inside.
        let x = (0..plot_w)
            .rev()
            .find(|x| (0..H).any(|y| is(img.get_pixel(*x, y), 4)))
            .expect("an idle bar")
            - 3;
        let top = (0..H).find(|y| bar(img.get_pixel(x, *y))).expect("bar top");
        let bottom = (top..H).find(|y| !bar(img.get_pixel(x, *y))).unwrap_or(H);
        // From its top to the axis the bar is whole (a legend box would cut it), and it is the
        // tallest: most of the plot's height.
        assert!(
            (bottom - top) as f64 > 0.6 * H as f64,
            "last bar spans {top}..{bottom}"
        );
        // The legend's swatches are in the strip right of the plot, one per series.
        for k in 0..5 {
            assert!(swatch(&img, k), "series {k} missing from the legend");
        }
    }

    /// Whether the legend strip holds a swatch (14 × 12 pixels) of series `k`; anti-aliased
    /// text may share a few pixels with a colour, not a swatch's worth.
    fn swatch(img: &image::RgbImage, k: usize) -> bool {
        let n = (W - LEGEND_W..W)
            .flat_map(|x| (0..H).map(move |y| (x, y)))
            .filter(|(x, y)| is(img.get_pixel(*x, *y), k))
            .count();
        n >= 150
    }

    #[test]
    fn unmeasured_components_are_not_in_the_legend() {
        let (_, png) = energy_bars(&report(&["other"]))
            .expect("chart")
            .expect("days");
        let img = pixels(&png);
        assert!(!swatch(&img, 3), "other is not measured: no legend entry");
        assert!(swatch(&img, 0) && swatch(&img, 4));
    }

    /// Ninety days (January to March 1970) are drawn as three monthly bars.
    #[test]
    fn a_long_period_is_drawn_by_month() {
        let r = report_of(90, &[]);
        assert_eq!(
            r.monthly
                .iter()
                .map(|m| m.date.as_str())
                .collect::<Vec<_>>(),
            ["1970-01", "1970-02", "1970-03"]
        );
        let (name, png) = energy_bars(&r).expect("chart").expect("months");
        assert_eq!(name, "monthly");
        let img = pixels(&png);
        // Runs of columns holding the idle colour, left to right: one per bar.
        let idle: Vec<bool> = (0..W - LEGEND_W)
            .map(|x| (0..H).any(|y| is(img.get_pixel(x, y), 4)))
            .collect();
        let bars = idle.windows(2).filter(|w| !w[0] && w[1]).count();
        assert_eq!(bars, 3);
    }
}
