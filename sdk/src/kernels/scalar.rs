//! Portable kernels: the reference every SIMD kernel is compared with.
//!
//! Written plainly; the compiler auto-vectorises some loops, which is fine since the
//! integer ones are exact and the float ones only reorder within tolerance.

use super::{Backend, ConvIn, Kernels, Tap, TapQ11};
use half::f16;

pub static KERNELS: Kernels = Kernels {
    backend: Backend::Scalar,
    conv_f32,
    conv_i8,
    sample_f32,
    sample_f16,
    sample_i8,
    sample_f32_nchw: Some(sample_f32_nchw),
    sample_f16_nchw: Some(sample_f16_nchw),
    sample_i8_nchw: Some(sample_i8_nchw),
    cvt_f16_f32,
    cvt_f32_f16,
    transpose_f32: transpose::<f32>,
    transpose_u16: transpose::<u16>,
    transpose_u8: transpose::<u8>,
    stream_tile_f32: None,
    stream_tile_u16: None,
    stream_tile_u8: None,
};

pub fn conv_f32(
    src: ConvIn<'_, f32>,
    wt: &[f32],
    bias: Option<&[f32]>,
    o_n: usize,
    out: &mut [f32],
) {
    if super::tiling::check_conv_f32(src, wt, bias, o_n, &mut *out).is_none() {
        return;
    }
    let (x, ldx, npix, cin) = (src.x, src.ld, src.npix, src.cin);
    for p in 0..npix {
        let acc = &mut out[p * o_n..(p + 1) * o_n];
        match bias {
            Some(b) => acc.copy_from_slice(&b[..o_n]),
            None => acc.fill(0.0),
        }
        for (k, &xv) in x[p * ldx..p * ldx + cin].iter().enumerate() {
            for (a, &w) in acc.iter_mut().zip(&wt[k * o_n..(k + 1) * o_n]) {
                *a += xv * w;
            }
        }
    }
}

pub fn conv_i8(src: ConvIn<'_, i8>, wpack: &[i8], o_n: usize, acc: &mut [i32]) {
    if super::tiling::check_conv_i8(src, wpack, o_n, &mut *acc).is_none() {
        return;
    }
    let (x, ldx, npix, cin) = (src.x, src.ld, src.npix, src.cin);
    for p in 0..npix {
        let xs = &x[p * ldx..p * ldx + cin];
        for o in 0..o_n {
            let mut s = 0i32;
            for (k, &xv) in xs.iter().enumerate() {
                s += xv as i32 * wpack[(k / 4) * o_n * 4 + o * 4 + k % 4] as i32;
            }
            acc[p * o_n + o] = s;
        }
    }
}

/// The one sampling loop of the reference: for tap `n` and channel `c < cpg`, `put(n, c, v)`
/// with `v = blend(tap, [v00, v01, v10, v11])`, the tap's four corners in channel `c`.
#[inline]
fn each_sample<T: Copy, P: Corners, U>(
    src: &[T],
    taps: &[P],
    cpg: usize,
    blend: impl Fn(&P, [T; 4]) -> U,
    mut put: impl FnMut(usize, usize, U),
) {
    for (n, t) in taps.iter().enumerate() {
        let [b, dx, dy] = t.origin().map(|v| v as usize);
        for c in 0..cpg {
            let i = b + c;
            put(
                n,
                c,
                blend(t, [src[i], src[i + dx], src[i + dy], src[i + dx + dy]]),
            );
        }
    }
}

/// Where a tap's corners are: `base`, and the steps to the right and lower neighbours.
trait Corners {
    fn origin(&self) -> [u32; 3];
}
impl Corners for Tap {
    fn origin(&self) -> [u32; 3] {
        [self.base, self.dx, self.dy]
    }
}
impl Corners for TapQ11 {
    fn origin(&self) -> [u32; 3] {
        [self.base, self.dx, self.dy]
    }
}

/// The float bilinear formula every float kernel reproduces (up to FMA contraction).
#[inline]
pub(super) fn blend_f32(t: &Tap, [v00, v01, v10, v11]: [f32; 4]) -> f32 {
    let top = v00 + t.fx * (v01 - v00);
    let bot = v10 + t.fx * (v11 - v10);
    top + t.fy * (bot - top)
}

/// f16 storage, f32 arithmetic, one rounding at the end.
#[inline]
pub(super) fn blend_f16(t: &Tap, v: [f16; 4]) -> f16 {
    f16::from_f32(blend_f32(t, v.map(f16::to_f32)))
}

/// The int8 bilinear formula, from the tap's Q11 position (not its cached weight bytes).
#[inline]
fn blend_i8(t: &TapQ11, v: [i8; 4]) -> i8 {
    super::blend_q14(v, super::weights_q14(t.fx, t.fy))
}

pub fn sample_f32(src: &[f32], taps: &[Tap], cpg: usize, out: &mut [f32]) {
    assert!(out.len() >= taps.len() * cpg);
    each_sample(src, taps, cpg, blend_f32, |n, c, v| out[n * cpg + c] = v);
}

pub fn sample_f16(src: &[f16], taps: &[Tap], cpg: usize, out: &mut [f16]) {
    assert!(out.len() >= taps.len() * cpg);
    each_sample(src, taps, cpg, blend_f16, |n, c, v| out[n * cpg + c] = v);
}

pub fn sample_i8(src: &[i8], taps: &[TapQ11], cpg: usize, out: &mut [i8]) {
    assert!(out.len() >= taps.len() * cpg);
    each_sample(src, taps, cpg, blend_i8, |n, c, v| out[n * cpg + c] = v);
}

/// # Safety
/// See [`super::SampleNchw`].
pub unsafe fn sample_f32_nchw(
    src: &[f32],
    taps: &[Tap],
    g: usize,
    cpg: usize,
    dst: *mut f32,
    plane: usize,
) {
    // SAFETY: the caller guarantees dst is writable at every (channel, X) of these taps.
    each_sample(src, taps, cpg, blend_f32, |n, c, v| unsafe {
        *dst.add(((n % g) * cpg + c) * plane + n / g) = v
    });
}

/// # Safety
/// See [`super::SampleNchw`].
pub unsafe fn sample_f16_nchw(
    src: &[f16],
    taps: &[Tap],
    g: usize,
    cpg: usize,
    dst: *mut f16,
    plane: usize,
) {
    // SAFETY: as in sample_f32_nchw.
    each_sample(src, taps, cpg, blend_f16, |n, c, v| unsafe {
        *dst.add(((n % g) * cpg + c) * plane + n / g) = v
    });
}

/// # Safety
/// See [`super::SampleNchw`].
pub unsafe fn sample_i8_nchw(
    src: &[i8],
    taps: &[TapQ11],
    g: usize,
    cpg: usize,
    dst: *mut i8,
    plane: usize,
) {
    // SAFETY: as in sample_f32_nchw.
    each_sample(src, taps, cpg, blend_i8, |n, c, v| unsafe {
        *dst.add(((n % g) * cpg + c) * plane + n / g) = v
    });
}

pub fn cvt_f16_f32(src: &[f16], dst: &mut [f32]) {
    assert_eq!(src.len(), dst.len());
    for (d, s) in dst.iter_mut().zip(src) {
        *d = s.to_f32();
    }
}

pub fn cvt_f32_f16(src: &[f32], dst: &mut [f16]) {
    assert_eq!(src.len(), dst.len());
    for (d, s) in dst.iter_mut().zip(src) {
        *d = f16::from_f32(*s);
    }
}

/// # Safety
/// See [`super::Transpose`].
pub unsafe fn transpose<T: Copy>(
    src: &[T],
    rows: usize,
    cols: usize,
    src_ld: usize,
    dst: *mut T,
    dst_ld: usize,
) {
    if rows == 0 || cols == 0 {
        return;
    }
    assert!(src.len() >= (rows - 1) * src_ld + cols);
    // Blocking keeps both sides' cache lines hot.
    const B: usize = 16;
    for r0 in (0..rows).step_by(B) {
        for c0 in (0..cols).step_by(B) {
            for r in r0..(r0 + B).min(rows) {
                for c in c0..(c0 + B).min(cols) {
                    // SAFETY: the caller guarantees `dst` is writable at c*dst_ld + r.
                    unsafe { *dst.add(c * dst_ld + r) = src[r * src_ld + c] };
                }
            }
        }
    }
}
