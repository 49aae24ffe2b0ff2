//! Resizing and normalisation into the model's NCHW f32 tensor.

use crate::{Frame, Result, VideoError};

/// Per-frame resizing of 8-bit images (1 or 3 channels) into caller buffers, with its tables
/// cached for the last (source, target) sizes, so a steady stream allocates nothing.
///
/// `fast_image_resize` rebuilds its filter coefficients (one `Vec` per output row and column)
/// on every call, a few thousand allocations per frame, so the per-frame paths use this
/// separable fixed-point resizer instead: horizontal taps per source row (cached for two
/// rows), then a vertical blend of two rows that the compiler vectorizes. `fast_image_resize`
/// does the one-off, quality-first scaling ([`resize_once`]).
#[derive(Debug, Clone)]
pub struct Resizer {
    mode: Mode,
    key: (usize, usize, usize, usize, usize),
    /// Per output column: source byte offsets of the two taps and the Q8 weight of the right one.
    xs: Vec<(u32, u32, u16)>,
    /// Per output row: the two source rows and the Q8 weight of the lower one.
    ys: Vec<(u32, u32, u16)>,
    /// Two horizontally resized rows (values × 256) and the source rows they hold.
    rows: [Vec<u16>; 2],
    held: [usize; 2],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Bilinear,
    Area,
}

impl Default for Resizer {
    fn default() -> Self {
        Self::bilinear()
    }
}

/// Half-pixel-centre bilinear taps for `n_out` samples of `n_in`: (i0, i1, Q8 weight of i1).
fn taps(n_in: usize, n_out: usize) -> impl Iterator<Item = (usize, usize, u16)> {
    let scale = n_in as f64 / n_out as f64;
    (0..n_out).map(move |o| {
        let c = ((o as f64 + 0.5) * scale - 0.5).max(0.0);
        let i0 = (c.floor() as usize).min(n_in - 1);
        let i1 = (i0 + 1).min(n_in - 1);
        let w = ((c - i0 as f64) * 256.0).round().clamp(0.0, 256.0) as u16;
        (i0, i1, if i1 == i0 { 0 } else { w })
    })
}

impl Resizer {
    /// Bilinear interpolation with half-pixel centres (OpenCV's `INTER_LINEAR`), 8-bit weights.
    pub fn bilinear() -> Self {
        Self::with_mode(Mode::Bilinear)
    }
    /// Box averaging for downscaling by an integer factor (the background blur); other ratios
    /// fall back to bilinear.
    pub fn area() -> Self {
        Self::with_mode(Mode::Area)
    }
    fn with_mode(mode: Mode) -> Self {
        Self {
            mode,
            key: (0, 0, 0, 0, 0),
            xs: Vec::new(),
            ys: Vec::new(),
            rows: [Vec::new(), Vec::new()],
            held: [usize::MAX; 2],
        }
    }

    fn prepare(&mut self, sw: usize, sh: usize, dw: usize, dh: usize, ch: usize) {
        let key = (sw, sh, dw, dh, ch);
        if self.key != key {
            self.key = key;
            self.xs.clear();
            self.xs
                .extend(taps(sw, dw).map(|(a, b, w)| ((a * ch) as u32, (b * ch) as u32, w)));
            self.ys.clear();
            self.ys
                .extend(taps(sh, dh).map(|(a, b, w)| (a as u32, b as u32, w)));
            for r in &mut self.rows {
                r.resize(dw * ch, 0);
            }
        }
        self.held = [usize::MAX; 2];
    }

    fn hrow(xs: &[(u32, u32, u16)], src: &[u8], ch: usize, out: &mut [u16]) {
        for (&(a, b, w), o) in xs.iter().zip(out.chunks_exact_mut(ch)) {
            let (a, b, w) = (a as usize, b as usize, w);
            for c in 0..ch {
                o[c] = src[a + c] as u16 * (256 - w) + src[b + c] as u16 * w;
            }
        }
    }

    /// The cache slot holding source row `sy`, computing it into the slot that does not hold
    /// `keep` if needed.
    fn fetch(&mut self, src: &[u8], sy: usize, keep: usize, row_len: usize, ch: usize) -> usize {
        if self.held[0] == sy {
            return 0;
        }
        if self.held[1] == sy {
            return 1;
        }
        let slot = if self.held[0] == keep { 1 } else { 0 };
        Self::hrow(
            &self.xs,
            &src[sy * row_len..(sy + 1) * row_len],
            ch,
            &mut self.rows[slot],
        );
        self.held[slot] = sy;
        slot
    }

    /// `src` (`sw x sh`, `channels` 1 or 3) into `dst` (`dw x dh`, resized to fit).
    pub fn resize(
        &mut self,
        src: &[u8],
        sw: usize,
        sh: usize,
        dst: &mut Vec<u8>,
        dw: usize,
        dh: usize,
        channels: usize,
    ) -> Result<()> {
        if !(channels == 1 || channels == 3) {
            return Err(VideoError::Usage(format!(
                "cannot resize {channels}-channel images"
            )));
        }
        if sw == 0 || sh == 0 || dw == 0 || dh == 0 || src.len() < sw * sh * channels {
            return Err(VideoError::Usage(format!(
                "resize {sw}x{sh} -> {dw}x{dh}: bad size or short buffer"
            )));
        }
        dst.resize(dw * dh * channels, 0);
        if (sw, sh) == (dw, dh) {
            dst.copy_from_slice(&src[..dw * dh * channels]);
            return Ok(());
        }
        if self.mode == Mode::Area && sw.is_multiple_of(dw) && sh.is_multiple_of(dh) {
            box_down(src, sw, dst, dw, dh, channels, sw / dw, sh / dh);
            return Ok(());
        }
        self.prepare(sw, sh, dw, dh, channels);
        let row_len = sw * channels;
        let out_len = dw * channels;
        for y in 0..dh {
            let (y0, y1, wy) = self.ys[y];
            let s0 = self.fetch(src, y0 as usize, y1 as usize, row_len, channels);
            let s1 = self.fetch(src, y1 as usize, y0 as usize, row_len, channels);
            let (r0, r1) = (&self.rows[s0], &self.rows[s1]);
            let (w1, w0) = (wy as u32, 256 - wy as u32);
            let o = &mut dst[y * out_len..(y + 1) * out_len];
            for ((o, &a), &b) in o.iter_mut().zip(r0.iter()).zip(r1.iter()) {
                *o = ((a as u32 * w0 + b as u32 * w1 + 32768) >> 16) as u8;
            }
        }
        Ok(())
    }
}

/// Mean of `fx x fy` blocks.
fn box_down(
    src: &[u8],
    sw: usize,
    dst: &mut [u8],
    dw: usize,
    dh: usize,
    ch: usize,
    fx: usize,
    fy: usize,
) {
    let n = (fx * fy) as u32;
    for y in 0..dh {
        for x in 0..dw {
            for c in 0..ch {
                let mut sum = 0u32;
                for yy in y * fy..(y + 1) * fy {
                    let row = &src[(yy * sw + x * fx) * ch..(yy * sw + (x + 1) * fx) * ch];
                    sum += row
                        .iter()
                        .skip(c)
                        .step_by(ch)
                        .map(|&v| v as u32)
                        .sum::<u32>();
                }
                dst[(y * dw + x) * ch + c] = ((sum + n / 2) / n) as u8;
            }
        }
    }
}

/// High-quality one-off resize (Lanczos3 through `fast_image_resize`) of an RGB image, e.g.
/// a replacement background to the frame size.
pub fn resize_once(src: &[u8], sw: usize, sh: usize, dw: usize, dh: usize) -> Result<Vec<u8>> {
    use fast_image_resize as fr;
    let mut dst = vec![0u8; dw * dh * 3];
    if (sw, sh) == (dw, dh) {
        dst.copy_from_slice(&src[..dw * dh * 3]);
        return Ok(dst);
    }
    let s = fr::images::ImageRef::new(sw as u32, sh as u32, src, fr::PixelType::U8x3)
        .map_err(|e| VideoError::Usage(format!("resize source: {e}")))?;
    let mut d =
        fr::images::Image::from_slice_u8(dw as u32, dh as u32, &mut dst, fr::PixelType::U8x3)
            .map_err(|e| VideoError::Usage(format!("resize target: {e}")))?;
    fr::Resizer::new()
        .resize(&s, &mut d, &fr::ResizeOptions::new())
        .map_err(|e| VideoError::Usage(format!("resize: {e}")))?;
    Ok(dst)
}

/// `x = (pixel / 255 - mean[c]) / std[c]`, with the tensor's channel order.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Normalize {
    pub mean: [f32; 3],
    pub std: [f32; 3],
    /// Tensor channels are B, G, R.
    pub bgr: bool,
}

impl Default for Normalize {
    fn default() -> Self {
        Self {
            mean: [0.0; 3],
            std: [1.0; 3],
            bgr: false,
        }
    }
}

/// Frame → resized (stretch) → NCHW f32 through one lookup table per channel.
#[derive(Debug)]
pub struct Preprocessor {
    width: usize,
    height: usize,
    resizer: Resizer,
    resized: Vec<u8>,
    /// Tensor channel `c` (LUT `c`) reads pixel channel `src[c]`.
    lut: Box<[[f32; 256]; 3]>,
    src: [usize; 3],
    tensor: Vec<f32>,
}

impl Preprocessor {
    /// For a model input of `width x height`.
    pub fn new(width: usize, height: usize, norm: Normalize) -> Self {
        let mut lut = Box::new([[0f32; 256]; 3]);
        for c in 0..3 {
            for v in 0..256 {
                lut[c][v] = (v as f32 / 255.0 - norm.mean[c]) / norm.std[c];
            }
        }
        Self {
            width,
            height,
            resizer: Resizer::bilinear(),
            resized: vec![0; width * height * 3],
            lut,
            src: if norm.bgr { [2, 1, 0] } else { [0, 1, 2] },
            tensor: vec![0.0; 3 * width * height],
        }
    }

    /// The tensor's dims `[1, 3, H, W]`.
    pub fn dims(&self) -> [usize; 4] {
        [1, 3, self.height, self.width]
    }

    /// Fills the tensor from `frame` and returns it.
    pub fn run(&mut self, frame: &Frame) -> Result<&[f32]> {
        self.resizer.resize(
            &frame.data,
            frame.width,
            frame.height,
            &mut self.resized,
            self.width,
            self.height,
            3,
        )?;
        let n = self.width * self.height;
        let (r, rest) = self.tensor.split_at_mut(n);
        let (g, b) = rest.split_at_mut(n);
        let [l0, l1, l2] = &*self.lut;
        let [s0, s1, s2] = self.src;
        for (i, p) in self.resized.chunks_exact(3).enumerate() {
            r[i] = l0[p[s0] as usize];
            g[i] = l1[p[s1] as usize];
            b[i] = l2[p[s2] as usize];
        }
        Ok(&self.tensor)
    }

    /// The resized RGB image the tensor was made from.
    pub fn resized(&self) -> &[u8] {
        &self.resized
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Float reference: half-pixel-centre bilinear.
    fn reference(src: &[u8], sw: usize, sh: usize, dw: usize, dh: usize, ch: usize) -> Vec<f64> {
        let mut out = vec![0.0; dw * dh * ch];
        for y in 0..dh {
            let cy = ((y as f64 + 0.5) * sh as f64 / dh as f64 - 0.5).max(0.0);
            let (y0, fy) = ((cy.floor() as usize).min(sh - 1), cy - cy.floor());
            let y1 = (y0 + 1).min(sh - 1);
            for x in 0..dw {
                let cx = ((x as f64 + 0.5) * sw as f64 / dw as f64 - 0.5).max(0.0);
                let (x0, fx) = ((cx.floor() as usize).min(sw - 1), cx - cx.floor());
                let x1 = (x0 + 1).min(sw - 1);
                for c in 0..ch {
                    let p = |xx: usize, yy: usize| src[(yy * sw + xx) * ch + c] as f64;
                    let top = p(x0, y0) * (1.0 - fx) + p(x1, y0) * fx;
                    let bot = p(x0, y1) * (1.0 - fx) + p(x1, y1) * fx;
                    out[(y * dw + x) * ch + c] = top * (1.0 - fy) + bot * fy;
                }
            }
        }
        out
    }

    #[test]
    fn bilinear_matches_the_float_definition() {
        let (sw, sh) = (37, 23);
        let src: Vec<u8> = (0..sw * sh * 3).map(|i| ((i * 7919) % 256) as u8).collect();
        let mut r = Resizer::bilinear();
        let mut dst = Vec::new();
        for (dw, dh, ch) in [(16, 9, 3), (80, 61, 3), (37, 50, 1), (5, 5, 1), (37, 23, 3)] {
            let s = &src[..sw * sh * ch];
            r.resize(s, sw, sh, &mut dst, dw, dh, ch).unwrap();
            let want = reference(s, sw, sh, dw, dh, ch);
            let worst = dst
                .iter()
                .zip(&want)
                .map(|(&a, &b)| (a as f64 - b).abs())
                .fold(0.0, f64::max);
            assert!(worst <= 1.6, "{dw}x{dh}x{ch}: worst {worst}");
        }
        assert!(r.resize(&src, sw, sh, &mut dst, 0, 4, 3).is_err());
        assert!(r.resize(&src[..10], sw, sh, &mut dst, 4, 4, 3).is_err());
    }

    #[test]
    fn box_downscale_averages() {
        let src = [0u8, 10, 20, 30, 100, 110, 120, 130];
        let mut dst = Vec::new();
        Resizer::area()
            .resize(&src, 4, 2, &mut dst, 2, 1, 1)
            .unwrap();
        assert_eq!(dst, [55, 75]);
    }
}
