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

/// Daily energy of allocated hardware by component with the unallocated energy stacked on top,
/// kWh. `None` when the report has no days.
pub fn daily(r: &Report) -> Result<Option<Vec<u8>>, ChartError> {
    if r.daily.is_empty() {
        return Ok(None);
    }
    font()?;
    let mut buf = vec![255u8; (W * H * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (W, H)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let max = r
            .daily
            .iter()
            .map(|d| d.cpu_kwh + d.dram_kwh + d.gpu_kwh + d.other_kwh + d.idle_kwh)
            .fold(0.0, f64::max)
            .max(1e-9)
            * 1.1;
        let n = r.daily.len();
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "Energy per day (kWh): allocated by component, idle on top",
                (FAMILY, 18),
            )
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..n as f64, 0f64..max)
            .map_err(err)?;
        let dates: Vec<String> = r.daily.iter().map(|d| d.date[8..10].to_string()).collect();
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
        for (k, name) in names.iter().enumerate() {
            let color = COLORS[k];
            let bars = r.daily.iter().enumerate().map(|(i, d)| {
                let parts = [d.cpu_kwh, d.dram_kwh, d.gpu_kwh, d.other_kwh, d.idle_kwh];
                let below: f64 = parts[..k].iter().map(|v| v.max(0.0)).sum();
                let top = below + parts[k].max(0.0);
                Rectangle::new(
                    [(i as f64 + 0.15, below), (i as f64 + 0.85, top)],
                    color.filled(),
                )
            });
            chart
                .draw_series(bars)
                .map_err(err)?
                .label(*name)
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled())
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font((FAMILY, 12))
            .draw()
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    png(buf).map(Some)
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
