//! `sqnr.png`: per-tensor SQNR of the int8 model against fp32 (graph order), and, when measured,
//! each layer's "only this layer int8" output SQNR.

use crate::error::{CalibError, Result};
use crate::report::{Sensitivity, TensorSqnr};
use plotters::prelude::*;

/// Fonts tried for the labels (plotters' `ab_glyph` backend needs one registered).
const FONTS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
];

fn register_font() -> Result<()> {
    static DONE: std::sync::OnceLock<std::result::Result<(), String>> = std::sync::OnceLock::new();
    DONE.get_or_init(|| {
        for f in FONTS {
            if let Ok(bytes) = std::fs::read(f) {
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                    return Ok(());
                }
            }
        }
        Err(format!(
            "no TrueType font found for the plot labels (tried {})",
            FONTS.join(", ")
        ))
    })
    .clone()
    .map_err(CalibError::msg)
}

fn e<E: std::fmt::Display>(x: E) -> CalibError {
    CalibError::msg(format!("sqnr.png: {x}"))
}

/// PNG bytes of the plot.
pub fn sqnr_png(tensors: &[TensorSqnr], sens: &[Sensitivity]) -> Result<Vec<u8>> {
    register_font()?;
    let (w, h) = (1200u32, 600u32);
    let mut buf = vec![0u8; (w * h * 3) as usize];
    let finite = |v: f64| if v.is_finite() { v } else { 99.0 };
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(e)?;
        let n = tensors.len().max(1);
        let ymax = tensors
            .iter()
            .map(|t| finite(t.sqnr_db))
            .chain(sens.iter().map(|s| finite(s.only_sqnr_db)))
            .fold(10.0f64, f64::max)
            + 5.0;
        let ymin = tensors
            .iter()
            .map(|t| finite(t.sqnr_db))
            .fold(0.0f64, f64::min)
            .min(0.0);
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "int8 vs fp32: SQNR per tensor (graph order)",
                ("sans-serif", 24),
            )
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..n as f64, ymin..ymax)
            .map_err(e)?;
        chart
            .configure_mesh()
            .x_desc("tensor index (see report.md for names)")
            .y_desc("SQNR (dB)")
            .label_style(("sans-serif", 14))
            .draw()
            .map_err(e)?;
        chart
            .draw_series(tensors.iter().enumerate().map(|(i, t)| {
                Rectangle::new(
                    [(i as f64 + 0.1, ymin), (i as f64 + 0.9, finite(t.sqnr_db))],
                    BLUE.mix(0.6).filled(),
                )
            }))
            .map_err(e)?
            .label("tensor SQNR, all layers int8")
            .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], BLUE.mix(0.6).filled()));
        if !sens.is_empty() {
            let m = sens.len() as f64;
            chart
                .draw_series(LineSeries::new(
                    sens.iter()
                        .enumerate()
                        .map(|(i, s)| ((i as f64 + 0.5) * n as f64 / m, finite(s.only_sqnr_db))),
                    RED.stroke_width(2),
                ))
                .map_err(e)?
                .label("model output SQNR, only layer k int8 (x scaled to layer order)")
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 12, y)], RED.stroke_width(2)));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .label_font(("sans-serif", 14))
            .draw()
            .map_err(e)?;
        root.present().map_err(e)?;
    }
    let img =
        dysample_models::image::RgbImage::from_raw(w, h, buf).ok_or_else(|| e("bad buffer"))?;
    let mut png = Vec::new();
    img.write_to(
        &mut std::io::Cursor::new(&mut png),
        dysample_models::image::ImageFormat::Png,
    )
    .map_err(e)?;
    Ok(png)
}
