//! Colour conversions into RGB frames.
//!
//! Y'CbCr → RGB is BT.601 limited range ("studio swing", what USB cameras and Y4M files carry)
//! in 20-bit fixed point, the same integer formulation as OpenCV's `cvtColor` (its
//! `ITUR_BT_601_*` constants), so results match OpenCV exactly. JPEG goes through `zune-jpeg`
//! (full-range JFIF Y'CbCr, as the format defines).

use crate::{Frame, Result, VideoError, MAX_SIDE};
use zune_core::bytestream::ZCursor;
use zune_core::colorspace::ColorSpace;
use zune_core::options::DecoderOptions;

const SHIFT: i32 = 20;
const HALF: i32 = 1 << (SHIFT - 1);
const CY: i32 = 1_220_542; // 1.164 * 2^20
const CUB: i32 = 2_116_026; // 2.018
const CUG: i32 = -409_993; // -0.391
const CVG: i32 = -852_492; // -0.813
const CVR: i32 = 1_673_527; // 1.596

#[inline(always)]
fn sat(v: i32) -> u8 {
    (v >> SHIFT).clamp(0, 255) as u8
}

#[inline(always)]
fn put(out: &mut [u8], y: u8, r: i32, g: i32, b: i32) {
    let y = (y as i32 - 16).max(0) * CY;
    out[0] = sat(y + r);
    out[1] = sat(y + g);
    out[2] = sat(y + b);
}

#[inline(always)]
fn chroma(u: u8, v: u8) -> (i32, i32, i32) {
    let (u, v) = (u as i32 - 128, v as i32 - 128);
    (HALF + CVR * v, HALF + CVG * v + CUG * u, HALF + CUB * u)
}

/// Packed YUYV 4:2:2 (`Y0 U Y1 V`, V4L2's `YUYV`) of `width x height` into `out` (resized).
/// `stride` is the source row length in bytes (`width * 2` when rows are packed).
pub fn yuyv_to_rgb(
    src: &[u8],
    width: usize,
    height: usize,
    stride: usize,
    out: &mut Frame,
) -> Result<()> {
    if !width.is_multiple_of(2) || width == 0 || height == 0 || stride < width * 2 {
        return Err(VideoError::Usage(format!(
            "YUYV frame {width}x{height} (stride {stride}): width must be even and stride ≥ 2·width"
        )));
    }
    let need = stride * (height - 1) + width * 2;
    if src.len() < need {
        return Err(VideoError::Corrupt(format!(
            "YUYV frame {width}x{height} needs {need} bytes, got {}",
            src.len()
        )));
    }
    out.reshape(width, height);
    for (row, dst) in out.data.chunks_exact_mut(width * 3).enumerate() {
        let line = &src[row * stride..row * stride + width * 2];
        for (q, d) in line.chunks_exact(4).zip(dst.chunks_exact_mut(6)) {
            let (r, g, b) = chroma(q[1], q[3]);
            put(&mut d[0..3], q[0], r, g, b);
            put(&mut d[3..6], q[2], r, g, b);
        }
    }
    Ok(())
}

/// Chroma subsampling of planar Y'CbCr (Y4M's `C` tag).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Chroma {
    /// 4:2:0, chroma planes of `ceil(w/2) x ceil(h/2)`.
    C420,
    /// 4:2:2, chroma planes of `ceil(w/2) x h`.
    C422,
    /// 4:4:4.
    C444,
    /// Luma only.
    Mono,
}

impl Chroma {
    /// (horizontal, vertical) subsampling shifts.
    fn shifts(self) -> (usize, usize) {
        match self {
            Chroma::C420 => (1, 1),
            Chroma::C422 => (1, 0),
            Chroma::C444 | Chroma::Mono => (0, 0),
        }
    }

    /// Size in bytes of one `width x height` frame.
    pub fn frame_bytes(self, width: usize, height: usize) -> usize {
        if self == Chroma::Mono {
            return width * height;
        }
        let (sx, sy) = self.shifts();
        let (cw, ch) = (width.div_ceil(1 << sx), height.div_ceil(1 << sy));
        width * height + 2 * cw * ch
    }
}

/// Planar Y'CbCr (Y plane, then Cb, then Cr) into `out` (resized).
pub fn yuv_planar_to_rgb(
    src: &[u8],
    width: usize,
    height: usize,
    chroma_kind: Chroma,
    out: &mut Frame,
) -> Result<()> {
    let need = chroma_kind.frame_bytes(width, height);
    if src.len() < need {
        return Err(VideoError::Corrupt(format!(
            "planar frame {width}x{height} needs {need} bytes, got {}",
            src.len()
        )));
    }
    out.reshape(width, height);
    let (yp, rest) = src.split_at(width * height);
    if chroma_kind == Chroma::Mono {
        for (d, &y) in out.data.chunks_exact_mut(3).zip(yp) {
            put(d, y, HALF, HALF, HALF);
        }
        return Ok(());
    }
    let (sx, sy) = chroma_kind.shifts();
    let cw = width.div_ceil(1 << sx);
    let ch = height.div_ceil(1 << sy);
    let (up, vp) = rest.split_at(cw * ch);
    for row in 0..height {
        let crow = (row >> sy) * cw;
        let ys = &yp[row * width..(row + 1) * width];
        let dst = &mut out.data[row * width * 3..(row + 1) * width * 3];
        for (x, (d, &y)) in dst.chunks_exact_mut(3).zip(ys).enumerate() {
            let c = crow + (x >> sx);
            let (r, g, b) = chroma(up[c], vp[c]);
            put(d, y, r, g, b);
        }
    }
    Ok(())
}

/// RGB to planar BT.601 limited-range Y'CbCr 4:4:4 (for the Y4M writer), 8-bit fixed point.
pub fn rgb_to_yuv444(rgb: &[u8], out: &mut Vec<u8>) {
    let n = rgb.len() / 3;
    out.resize(3 * n, 0);
    let (yp, rest) = out.split_at_mut(n);
    let (up, vp) = rest.split_at_mut(n);
    for (i, p) in rgb.chunks_exact(3).enumerate() {
        let (r, g, b) = (p[0] as i32, p[1] as i32, p[2] as i32);
        yp[i] = (((66 * r + 129 * g + 25 * b + 128) >> 8) + 16) as u8;
        up[i] = (((-38 * r - 74 * g + 112 * b + 128) >> 8) + 128).clamp(0, 255) as u8;
        vp[i] = (((112 * r - 94 * g - 18 * b + 128) >> 8) + 128).clamp(0, 255) as u8;
    }
}

/// Decodes JPEG frames (MJPEG cameras and AVIs, JPEG files) into RGB frames. Baseline and
/// progressive; camera MJPEG without Huffman tables gets the standard ones. Frames larger than
/// [`MAX_SIDE`] or that fail to decode are [`VideoError::Corrupt`].
#[derive(Debug, Clone)]
pub struct JpegDecoder {
    options: DecoderOptions,
}

impl Default for JpegDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl JpegDecoder {
    pub fn new() -> Self {
        let options = DecoderOptions::new_fast()
            .jpeg_set_out_colorspace(ColorSpace::RGB)
            .set_max_width(MAX_SIDE)
            .set_max_height(MAX_SIDE)
            .set_strict_mode(true);
        Self { options }
    }

    /// Decodes `jpeg` into `out` (resized to the JPEG's size).
    pub fn decode(&mut self, jpeg: &[u8], out: &mut Frame) -> Result<()> {
        let mut d = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(jpeg), self.options);
        d.decode_headers()
            .map_err(|e| VideoError::Corrupt(format!("JPEG header: {e:?}")))?;
        let (w, h) = d
            .dimensions()
            .ok_or_else(|| VideoError::Corrupt("JPEG without a frame header".into()))?;
        if w == 0 || h == 0 {
            return Err(VideoError::Corrupt(format!("JPEG of size {w}x{h}")));
        }
        out.reshape(w, h);
        match d.output_buffer_size() {
            Some(n) if n == out.data.len() => {}
            other => {
                return Err(VideoError::Corrupt(format!(
                    "JPEG {w}x{h} decodes to {other:?} bytes, not RGB"
                )))
            }
        }
        d.decode_into(&mut out.data)
            .map_err(|e| VideoError::Corrupt(format!("JPEG data: {e:?}").replace('\n', " ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limited_range_extremes() {
        // Y=16 black, Y=235 white, neutral chroma.
        let mut f = Frame::new();
        yuyv_to_rgb(&[16, 128, 235, 128], 2, 1, 4, &mut f).unwrap();
        assert_eq!(f.data, vec![0, 0, 0, 255, 255, 255]);
        assert!(yuyv_to_rgb(&[16, 128, 235], 2, 1, 4, &mut f).is_err());
        assert!(yuyv_to_rgb(&[0; 6], 3, 1, 6, &mut f).is_err());
    }

    #[test]
    fn yuv444_round_trip_is_close() {
        let rgb: Vec<u8> = (0..300u32).map(|i| (i * 97 % 256) as u8).collect();
        let mut yuv = Vec::new();
        rgb_to_yuv444(&rgb, &mut yuv);
        let mut f = Frame::new();
        yuv_planar_to_rgb(&yuv, 100, 1, Chroma::C444, &mut f).unwrap();
        let worst = rgb
            .iter()
            .zip(&f.data)
            .map(|(a, b)| (*a as i32 - *b as i32).abs())
            .max()
            .unwrap();
        assert!(worst <= 4, "worst {worst}");
    }
}
