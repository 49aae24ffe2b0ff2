//! Drawing: mask overlays, class-colour masks, compositing over a blurred or replaced
//! background, colormaps (precomputed 256-entry tables), side-by-side views and a text legend
//! (font8x8). All integer arithmetic into caller buffers.

use crate::preprocess::Resizer;
use crate::{Frame, Result, VideoError};

/// `round(x / 255)` for `x ≤ 255 * 255`.
#[inline(always)]
fn div255(x: u32) -> u32 {
    let x = x + 128;
    (x + (x >> 8)) >> 8
}

/// `out = src` blended towards `color` by `mask * alpha / 255` (mask: 0..=255 per pixel).
pub fn blend_mask(src: &[u8], mask: &[u8], color: [u8; 3], alpha: u8, out: &mut [u8]) {
    let (cr, cg, cb) = (color[0] as u32, color[1] as u32, color[2] as u32);
    for ((s, &m), o) in src.chunks_exact(3).zip(mask).zip(out.chunks_exact_mut(3)) {
        let a = div255(m as u32 * alpha as u32);
        let ia = 255 - a;
        o[0] = div255(s[0] as u32 * ia + cr * a) as u8;
        o[1] = div255(s[1] as u32 * ia + cg * a) as u8;
        o[2] = div255(s[2] as u32 * ia + cb * a) as u8;
    }
}

/// `out = fg * mask + bg * (1 - mask)` per pixel, all RGB of the same size.
pub fn composite_over(fg: &[u8], bg: &[u8], mask: &[u8], out: &mut [u8]) {
    for (((f, b), &m), o) in fg
        .chunks_exact(3)
        .zip(bg.chunks_exact(3))
        .zip(mask)
        .zip(out.chunks_exact_mut(3))
    {
        let (m, im) = (m as u32, 255 - m as u32);
        o[0] = div255(f[0] as u32 * m + b[0] as u32 * im) as u8;
        o[1] = div255(f[1] as u32 * m + b[1] as u32 * im) as u8;
        o[2] = div255(f[2] as u32 * m + b[2] as u32 * im) as u8;
    }
}

/// A mask drawn in class colours: `fg * mask + bg * (1 - mask)`.
pub fn colorize_mask(mask: &[u8], fg: [u8; 3], bg: [u8; 3], out: &mut [u8]) {
    let mut lut = [[0u8; 3]; 256];
    for (m, e) in lut.iter_mut().enumerate() {
        for c in 0..3 {
            e[c] = div255(fg[c] as u32 * m as u32 + bg[c] as u32 * (255 - m as u32)) as u8;
        }
    }
    for (&m, o) in mask.iter().zip(out.chunks_exact_mut(3)) {
        o.copy_from_slice(&lut[m as usize]);
    }
}

/// `left` and `right` (same height) next to each other in `out` (resized).
pub fn side_by_side(left: &[u8], right: &[u8], width: usize, height: usize, out: &mut Frame) {
    out.reshape(width * 2, height);
    let row = width * 3;
    for y in 0..height {
        let o = &mut out.data[y * row * 2..(y + 1) * row * 2];
        o[..row].copy_from_slice(&left[y * row..(y + 1) * row]);
        o[row..].copy_from_slice(&right[y * row..(y + 1) * row]);
    }
}

/// Probabilities in `[0, 1]` to `0..=255` (NaN → 0).
pub fn prob_to_u8(p: &[f32], out: &mut Vec<u8>) {
    out.resize(p.len(), 0);
    for (o, &v) in out.iter_mut().zip(p) {
        // `as u8` saturates and maps NaN to 0.
        *o = (v * 255.0 + 0.5) as u8;
    }
}

/// Values stretched to `0..=255` between their min and max (non-finite values → 0); returns
/// (min, max).
pub fn normalize_to_u8(v: &[f32], out: &mut Vec<u8>) -> (f32, f32) {
    let (mut lo, mut hi) = (f32::INFINITY, f32::NEG_INFINITY);
    for &x in v {
        if x.is_finite() {
            lo = lo.min(x);
            hi = hi.max(x);
        }
    }
    out.resize(v.len(), 0);
    if hi.partial_cmp(&lo) != Some(std::cmp::Ordering::Greater) {
        out.fill(0);
        return (lo, hi);
    }
    let k = 255.0 / (hi - lo);
    for (o, &x) in out.iter_mut().zip(v) {
        *o = if x.is_finite() {
            ((x - lo) * k + 0.5) as u8
        } else {
            0
        };
    }
    (lo, hi)
}

/// Like [`normalize_to_u8`] but between the `q`-th and `(1-q)`-th quantiles (a few outlier
/// pixels do not flatten the rest); `scratch` is reused. Returns the (low, high) used.
pub fn normalize_robust_to_u8(
    v: &[f32],
    q: f64,
    scratch: &mut Vec<f32>,
    out: &mut Vec<u8>,
) -> (f32, f32) {
    scratch.clear();
    scratch.extend(v.iter().copied().filter(|x| x.is_finite()));
    out.resize(v.len(), 0);
    if scratch.len() < 2 {
        out.fill(0);
        return (0.0, 0.0);
    }
    let n = scratch.len();
    let (a, b) = (
        ((n - 1) as f64 * q) as usize,
        ((n - 1) as f64 * (1.0 - q)) as usize,
    );
    let lo = *scratch.select_nth_unstable_by(a, f32::total_cmp).1;
    let hi = *scratch.select_nth_unstable_by(b, f32::total_cmp).1;
    if hi.partial_cmp(&lo) != Some(std::cmp::Ordering::Greater) {
        out.fill(0);
        return (lo, hi);
    }
    let k = 255.0 / (hi - lo);
    for (o, &x) in out.iter_mut().zip(v) {
        // `as u8` saturates below 0 and above 255.
        *o = if x.is_finite() {
            ((x - lo) * k + 0.5) as u8
        } else {
            0
        };
    }
    (lo, hi)
}

/// Background blur: area downscale by `factor`, bilinear upscale back.
#[derive(Debug)]
pub struct Blur {
    factor: usize,
    small: Vec<u8>,
    down: Resizer,
    up: Resizer,
}

impl Blur {
    pub fn new(factor: usize) -> Self {
        Self {
            factor: factor.max(2),
            small: Vec::new(),
            down: Resizer::area(),
            up: Resizer::bilinear(),
        }
    }
    /// Blurred `frame` into `out`.
    pub fn run(&mut self, frame: &Frame, out: &mut Vec<u8>) -> Result<()> {
        let (sw, sh) = (
            (frame.width / self.factor).max(1),
            (frame.height / self.factor).max(1),
        );
        self.down.resize(
            &frame.data,
            frame.width,
            frame.height,
            &mut self.small,
            sw,
            sh,
            3,
        )?;
        self.up
            .resize(&self.small, sw, sh, out, frame.width, frame.height, 3)
    }
}

/// Colormap names `--colormap` takes (each also with `-inverted`).
pub const COLORMAPS: &[&str] = &["viridis", "inferno", "magma", "plasma", "turbo"];

/// A 256-entry colour table.
#[derive(Clone, Debug)]
pub struct Colormap {
    pub name: String,
    lut: Box<[[u8; 3]; 256]>,
}

impl Colormap {
    /// `viridis`, `inferno`, `magma`, `plasma`, `turbo`, each optionally `-inverted`.
    pub fn parse(name: &str) -> Result<Self> {
        let lower = name.to_ascii_lowercase();
        let (base, inverted) = match lower.strip_suffix("-inverted") {
            Some(b) => (b, true),
            None => (lower.as_str(), false),
        };
        let g = match base {
            "viridis" => colorous::VIRIDIS,
            "inferno" => colorous::INFERNO,
            "magma" => colorous::MAGMA,
            "plasma" => colorous::PLASMA,
            "turbo" => colorous::TURBO,
            _ => {
                return Err(VideoError::Usage(format!(
                    "--colormap {name}: choose one of {} (each also with -inverted)",
                    COLORMAPS.join(", ")
                )))
            }
        };
        let mut lut = Box::new([[0u8; 3]; 256]);
        for (i, e) in lut.iter_mut().enumerate() {
            let k = if inverted { 255 - i } else { i };
            let c = g.eval_rational(k, 256);
            *e = [c.r, c.g, c.b];
        }
        Ok(Self { name: lower, lut })
    }
    pub fn color(&self, v: u8) -> [u8; 3] {
        self.lut[v as usize]
    }
    /// `v` (one byte per pixel) to RGB.
    pub fn apply(&self, v: &[u8], out: &mut [u8]) {
        for (&x, o) in v.iter().zip(out.chunks_exact_mut(3)) {
            o.copy_from_slice(&self.lut[x as usize]);
        }
    }
}

/// Fills a rectangle (clipped to the frame).
pub fn fill_rect(f: &mut Frame, x: usize, y: usize, w: usize, h: usize, color: [u8; 3]) {
    for yy in y..(y + h).min(f.height) {
        for xx in x..(x + w).min(f.width) {
            let i = (yy * f.width + xx) * 3;
            f.data[i..i + 3].copy_from_slice(&color);
        }
    }
}

/// Darkens a rectangle to half brightness (text backdrop).
pub fn shade_rect(f: &mut Frame, x: usize, y: usize, w: usize, h: usize) {
    for yy in y..(y + h).min(f.height) {
        for xx in x..(x + w).min(f.width) {
            let i = (yy * f.width + xx) * 3;
            for c in &mut f.data[i..i + 3] {
                *c /= 2;
            }
        }
    }
}

/// Draws ASCII `text` with its top-left corner at (x, y), glyphs 8x8 times `scale`.
pub fn draw_text(f: &mut Frame, x: usize, y: usize, text: &str, color: [u8; 3], scale: usize) {
    let mut cx = x;
    for ch in text.chars() {
        let code = if ch.is_ascii() {
            ch as usize
        } else {
            b'?' as usize
        };
        let glyph = font8x8::legacy::BASIC_LEGACY[code];
        for (gy, bits) in glyph.iter().enumerate() {
            for gx in 0..8 {
                if bits & (1 << gx) != 0 {
                    fill_rect(f, cx + gx * scale, y + gy * scale, scale, scale, color);
                }
            }
        }
        cx += 8 * scale;
    }
}

/// A legend in the top-left corner: a colour swatch and a name per entry.
pub fn draw_legend(f: &mut Frame, entries: &[(&str, [u8; 3])]) {
    let scale = if f.height >= 400 { 2 } else { 1 };
    let line = 10 * scale;
    let width = entries.iter().map(|(n, _)| n.len()).max().unwrap_or(0) * 8 * scale + 14 * scale;
    shade_rect(f, 0, 0, width + 2 * scale, entries.len() * line + 2 * scale);
    for (i, (name, color)) in entries.iter().enumerate() {
        let y = scale + i * line;
        fill_rect(f, scale, y, 8 * scale, 8 * scale, *color);
        draw_text(f, 12 * scale, y, name, [255, 255, 255], scale);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blend_extremes() {
        let src = [10u8, 20, 30, 10, 20, 30];
        let mut out = [0u8; 6];
        blend_mask(&src, &[0, 255], [255, 0, 0], 255, &mut out);
        assert_eq!(out, [10, 20, 30, 255, 0, 0]);
        blend_mask(&src, &[255, 255], [250, 0, 0], 128, &mut out);
        assert_eq!(&out[..3], &[130, 10, 15]);
    }

    #[test]
    fn div255_is_rounding() {
        for x in 0..=65025u32 {
            assert_eq!(div255(x), (x as f64 / 255.0).round() as u32, "{x}");
        }
    }

    #[test]
    fn colormaps() {
        for n in COLORMAPS {
            let c = Colormap::parse(n).unwrap();
            let i = Colormap::parse(&format!("{n}-inverted")).unwrap();
            assert_eq!(c.color(0), i.color(255));
            assert_ne!(c.color(0), c.color(255));
        }
        // viridis runs from dark purple to yellow.
        let v = Colormap::parse("viridis").unwrap();
        assert!(v.color(0)[2] > v.color(0)[1] && v.color(255)[0] > 200);
        let e = Colormap::parse("jet").unwrap_err().to_string();
        assert!(e.contains("viridis") && e.contains("-inverted"), "{e}");
    }

    #[test]
    fn normalize_handles_flat_and_nan() {
        let mut o = Vec::new();
        normalize_to_u8(&[1.0, f32::NAN, 3.0, 2.0], &mut o);
        assert_eq!(o, [0, 0, 255, 128]);
        normalize_to_u8(&[2.0, 2.0], &mut o);
        assert_eq!(o, [0, 0]);
        let mut scratch = Vec::new();
        let mut v: Vec<f32> = (0..100).map(|i| i as f32).collect();
        v[7] = 1e9; // an outlier does not flatten the rest
        normalize_robust_to_u8(&v, 0.02, &mut scratch, &mut o);
        assert_eq!((o[0], o[1], o[98], o[99], o[7]), (0, 0, 255, 255, 255));
        assert!((128..=130).contains(&o[50]), "{}", o[50]);
        prob_to_u8(&[0.0, 1.0, 2.0, -1.0, f32::NAN, 0.5], &mut o);
        assert_eq!(o, [0, 255, 255, 0, 0, 128]);
    }
}
