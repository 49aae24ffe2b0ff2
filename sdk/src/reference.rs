//! The scalar reference implementation: written for clarity, not speed.
//!
//! It follows the layer's definition line by line and is the oracle that every
//! optimised kernel is tested against. It is generic over the arithmetic type so
//! the same code also gives the f64 evaluation used to judge fp16 accuracy.

use crate::config::{DySampleConfig, Style};
use crate::kernels::weights_q14;
use crate::tensor::{Layout, Shape};
use crate::weights::Weights;

/// Arithmetic the reference needs; implemented for `f32` and `f64`.
pub trait Real:
    Copy
    + PartialOrd
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
    + std::ops::Div<Output = Self>
{
    fn of(v: f32) -> Self;
    fn of_usize(v: usize) -> Self;
    fn floor(self) -> Self;
    fn exp(self) -> Self;
    fn to_index(self) -> usize;
}

macro_rules! impl_real {
    ($t:ty) => {
        impl Real for $t {
            fn of(v: f32) -> Self {
                v as $t
            }
            fn of_usize(v: usize) -> Self {
                v as $t
            }
            fn floor(self) -> Self {
                <$t>::floor(self)
            }
            fn exp(self) -> Self {
                <$t>::exp(self)
            }
            fn to_index(self) -> usize {
                // Saturating cast: NaN becomes 0, so corrupt offsets cannot index out of bounds.
                self as usize
            }
        }
    };
}
impl_real!(f32);
impl_real!(f64);

fn sigmoid<T: Real>(v: T) -> T {
    T::of(1.0) / (T::of(1.0) + (T::of(0.0) - v).exp())
}

fn clamp<T: Real>(v: T, lo: T, hi: T) -> T {
    if v < lo {
        lo
    } else if v > hi {
        hi
    } else {
        v
    }
}

/// The `2·g·s²` offsets of one low-res pixel, given a function that reads its input channels.
///
/// Channel `k·g·s² + q·s² + i·s + j` is the x (k = 0) or y (k = 1) offset, in low-res pixels,
/// of sub-position (i, j) for group q, with `init_pos` already added.
pub fn pixel_offsets<T: Real>(
    cfg: &DySampleConfig,
    w: &Weights,
    init_pos: &[f32],
    pixel: impl Fn(usize) -> T,
) -> Vec<T> {
    let s2 = cfg.s2();
    let cin = cfg.conv_in_channels();
    let factor = T::of(cfg.offset_factor());
    let conv = |weight: &[f32], o: usize, input: &dyn Fn(usize) -> T| -> T {
        let mut acc = T::of(0.0);
        for k in 0..cin {
            acc = acc + T::of(weight[o * cin + k]) * input(k);
        }
        acc
    };
    let mut off = vec![T::of(0.0); cfg.offset_channels()];
    match cfg.style {
        Style::Lp => {
            for (o, slot) in off.iter_mut().enumerate() {
                let mut r = T::of(w.offset_bias[o]) + conv(&w.offset_weight, o, &pixel);
                if let Some(sw) = &w.scope_weight {
                    r = r * sigmoid(conv(sw, o, &pixel));
                }
                *slot = r * factor + T::of(init_pos[o]);
            }
        }
        Style::Pl => {
            // Sub-position ij of the pixel-shuffled map sees input channels k·s² + ij.
            for ij in 0..s2 {
                let shuffled = |k: usize| pixel(k * s2 + ij);
                for o in 0..cfg.conv_out_channels() {
                    let mut t = T::of(w.offset_bias[o]) + conv(&w.offset_weight, o, &shuffled);
                    if let Some(sw) = &w.scope_weight {
                        t = t * sigmoid(conv(sw, o, &shuffled));
                    }
                    let ch = o * s2 + ij;
                    off[ch] = t * factor + T::of(init_pos[ch]);
                }
            }
        }
    }
    off
}

/// Bilinear sample of one channel plane at `(px, py)`, already clamped to the plane.
fn bilinear<T: Real>(read: impl Fn(usize, usize) -> T, px: T, py: T, h: usize, w: usize) -> T {
    let x0 = px.floor().to_index().min(w - 1);
    let y0 = py.floor().to_index().min(h - 1);
    let fx = px - T::of_usize(x0);
    let fy = py - T::of_usize(y0);
    // In border mode the far tap has weight 0 when it falls outside, so clamping it is exact.
    let x1 = (x0 + 1).min(w - 1);
    let y1 = (y0 + 1).min(h - 1);
    let one = T::of(1.0);
    let top = read(y0, x0) * (one - fx) + read(y0, x1) * fx;
    let bottom = read(y1, x0) * (one - fx) + read(y1, x1) * fx;
    top * (one - fy) + bottom * fy
}

/// Runs the layer on `input` (of logical `shape`, stored in `layout`) into `out`
/// (the upsampled shape, same layout). Slices must have exactly the right lengths.
pub fn forward<T: Real>(
    cfg: &DySampleConfig,
    w: &Weights,
    input: &[T],
    shape: Shape,
    layout: Layout,
    out: &mut [T],
) {
    let s = cfg.scale;
    let g = cfg.groups;
    let s2 = cfg.s2();
    let cpg = cfg.channels_per_group();
    let oshape = shape.upsampled(s);
    assert_eq!(input.len(), shape.len(), "input length");
    assert_eq!(out.len(), oshape.len(), "output length");
    let init_pos = cfg.init_pos();
    let (h, wd) = (shape.height, shape.width);
    let xmax = T::of_usize(wd - 1);
    let ymax = T::of_usize(h - 1);

    for b in 0..shape.batch {
        for y in 0..h {
            for x in 0..wd {
                let off = pixel_offsets(cfg, w, &init_pos, |c| {
                    input[shape.index(layout, b, c, y, x)]
                });
                for q in 0..g {
                    for i in 0..s {
                        for j in 0..s {
                            let dx = off[q * s2 + i * s + j];
                            let dy = off[g * s2 + q * s2 + i * s + j];
                            let px = clamp(T::of_usize(x) + dx, T::of(0.0), xmax);
                            let py = clamp(T::of_usize(y) + dy, T::of(0.0), ymax);
                            for c in q * cpg..(q + 1) * cpg {
                                let v = bilinear(
                                    |yy, xx| input[shape.index(layout, b, c, yy, xx)],
                                    px,
                                    py,
                                    h,
                                    wd,
                                );
                                out[oshape.index(layout, b, c, y * s + i, x * s + j)] = v;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The int8 layer, written for clarity: the bit-exact oracle of every int8 backend.
///
/// It follows the scheme documented in [`crate::quant`]: exact integer dot products,
/// [`crate::quant::QuantizedWeights::offset_q11`] for offsets, [`crate::quant::sample_coord_q11`] for
/// positions, [`crate::kernels::weights_q14`] for the bilinear weights, and a single rounding of
/// the Q14 bilinear sum.
pub fn forward_int8(
    qw: &crate::quant::QuantizedWeights,
    input: &[i8],
    shape: Shape,
    layout: Layout,
    out: &mut [i8],
) {
    use crate::quant::sample_coord_q11;
    let cfg = &qw.cfg;
    let (s, g, s2) = (cfg.scale, cfg.groups, cfg.s2());
    let cpg = cfg.channels_per_group();
    let cin = cfg.conv_in_channels();
    let oshape = shape.upsampled(s);
    assert_eq!(input.len(), shape.len(), "input length");
    assert_eq!(out.len(), oshape.len(), "output length");
    let (h, wd) = (shape.height, shape.width);
    let dot = |w: &[i8], o: usize, read: &dyn Fn(usize) -> i8| -> i32 {
        (0..cin)
            .map(|k| w[o * cin + k] as i32 * read(k) as i32)
            .sum()
    };
    let mut off = vec![0i32; cfg.offset_channels()];
    for b in 0..shape.batch {
        for y in 0..h {
            for x in 0..wd {
                let px = |c: usize| input[shape.index(layout, b, c, y, x)];
                let subs = if cfg.style == Style::Lp { 1 } else { s2 };
                for ij in 0..subs {
                    let read = |k: usize| {
                        if cfg.style == Style::Lp {
                            px(k)
                        } else {
                            px(k * s2 + ij)
                        }
                    };
                    for o in 0..cfg.conv_out_channels() {
                        let d = dot(&qw.offset_q, o, &read);
                        let sd = qw.scope_q.as_ref().map_or(0, |sw| dot(sw, o, &read));
                        let ch = qw.offset_channel(o, ij);
                        off[ch] = qw.offset_q11(o, ch, d, sd);
                    }
                }
                for q in 0..g {
                    for i in 0..s {
                        for j in 0..s {
                            let (x0, fx) = sample_coord_q11(x, off[q * s2 + i * s + j], wd);
                            let (y0, fy) = sample_coord_q11(y, off[g * s2 + q * s2 + i * s + j], h);
                            let (x1, y1) = ((x0 + 1).min(wd - 1), (y0 + 1).min(h - 1));
                            let w = weights_q14(fx, fy);
                            for c in q * cpg..(q + 1) * cpg {
                                let v = |yy, xx| input[shape.index(layout, b, c, yy, xx)] as i32;
                                let acc = w[0] as i32 * v(y0, x0)
                                    + w[1] as i32 * v(y0, x1)
                                    + w[2] as i32 * v(y1, x0)
                                    + w[3] as i32 * v(y1, x1);
                                out[oshape.index(layout, b, c, y * s + i, x * s + j)] =
                                    ((acc + (1 << 13)) >> 14) as i8;
                            }
                        }
                    }
                }
            }
        }
    }
}
