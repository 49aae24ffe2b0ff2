//! Portable kernels: the reference every SIMD kernel is compared with.
//!
//! Written plainly; the compiler auto-vectorises some loops, which is fine since the
//! integer ones are exact and the float ones only reorder within tolerance.

use super::{Backend, Kernels, Tap, TapQ11};
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
};

#[allow(clippy::too_many_arguments)]
pub fn conv_f32(
    x: &[f32],
    ldx: usize,
    npix: usize,
    cin: usize,
    wt: &[f32],
    bias: Option<&[f32]>,
    o_n: usize,
    out: &mut [f32],
) {
    assert!(npix == 0 || x.len() >= (npix - 1) * ldx + cin);
    assert!(wt.len() >= cin * o_n && out.len() >= npix * o_n);
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

pub fn conv_i8(
    x: &[i8],
    ldx: usize,
    npix: usize,
    cin: usize,
    wpack: &[i8],
    o_n: usize,
    acc: &mut [i32],
) {
    assert!(npix == 0 || x.len() >= (npix - 1) * ldx + cin);
    assert!(wpack.len() >= super::cin4(cin) * o_n && acc.len() >= npix * o_n);
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

#[inline]
fn taps_of<'a, T>(src: &'a [T], t: &Tap, cpg: usize) -> [&'a [T]; 4] {
    let (b, dx, dy) = (t.base as usize, t.dx as usize, t.dy as usize);
    [
        &src[b..b + cpg],
        &src[b + dx..b + dx + cpg],
        &src[b + dy..b + dy + cpg],
        &src[b + dx + dy..b + dx + dy + cpg],
    ]
}

/// The float bilinear formula every float kernel reproduces (up to FMA contraction).
#[inline]
fn lerp2(v00: f32, v01: f32, v10: f32, v11: f32, fx: f32, fy: f32) -> f32 {
    let top = v00 + fx * (v01 - v00);
    let bot = v10 + fx * (v11 - v10);
    top + fy * (bot - top)
}

/// The int8 bilinear formula, from the tap's Q11 position (not its cached weight bytes).
#[inline]
fn bilerp_q14(v00: i8, v01: i8, v10: i8, v11: i8, fx: u16, fy: u16) -> i8 {
    super::blend_q14([v00, v01, v10, v11], super::weights_q14(fx, fy))
}

pub fn sample_f32(src: &[f32], taps: &[Tap], cpg: usize, out: &mut [f32]) {
    assert!(out.len() >= taps.len() * cpg);
    for (t, o) in taps.iter().zip(out.chunks_exact_mut(cpg)) {
        let [v00, v01, v10, v11] = taps_of(src, t, cpg);
        for c in 0..cpg {
            o[c] = lerp2(v00[c], v01[c], v10[c], v11[c], t.fx, t.fy);
        }
    }
}

pub fn sample_f16(src: &[f16], taps: &[Tap], cpg: usize, out: &mut [f16]) {
    assert!(out.len() >= taps.len() * cpg);
    for (t, o) in taps.iter().zip(out.chunks_exact_mut(cpg)) {
        let [v00, v01, v10, v11] = taps_of(src, t, cpg);
        for c in 0..cpg {
            let v = lerp2(
                v00[c].to_f32(),
                v01[c].to_f32(),
                v10[c].to_f32(),
                v11[c].to_f32(),
                t.fx,
                t.fy,
            );
            o[c] = f16::from_f32(v);
        }
    }
}

pub fn sample_i8(src: &[i8], taps: &[TapQ11], cpg: usize, out: &mut [i8]) {
    assert!(out.len() >= taps.len() * cpg);
    for (t, o) in taps.iter().zip(out.chunks_exact_mut(cpg)) {
        let (b, dx, dy) = (t.base as usize, t.dx as usize, t.dy as usize);
        for c in 0..cpg {
            o[c] = bilerp_q14(
                src[b + c],
                src[b + dx + c],
                src[b + dy + c],
                src[b + dx + dy + c],
                t.fx,
                t.fy,
            );
        }
    }
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
    for (n, t) in taps.iter().enumerate() {
        let [v00, v01, v10, v11] = taps_of(src, t, cpg);
        for c in 0..cpg {
            let v = lerp2(v00[c], v01[c], v10[c], v11[c], t.fx, t.fy);
            // SAFETY: the caller guarantees dst is writable at every (channel, X) of these taps.
            unsafe { *dst.add(((n % g) * cpg + c) * plane + n / g) = v };
        }
    }
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
    for (n, t) in taps.iter().enumerate() {
        let [v00, v01, v10, v11] = taps_of(src, t, cpg);
        for c in 0..cpg {
            let v = lerp2(
                v00[c].to_f32(),
                v01[c].to_f32(),
                v10[c].to_f32(),
                v11[c].to_f32(),
                t.fx,
                t.fy,
            );
            // SAFETY: as in sample_f32_nchw.
            unsafe { *dst.add(((n % g) * cpg + c) * plane + n / g) = f16::from_f32(v) };
        }
    }
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
    for (n, t) in taps.iter().enumerate() {
        let (b, dx, dy) = (t.base as usize, t.dx as usize, t.dy as usize);
        for c in 0..cpg {
            let v = bilerp_q14(
                src[b + c],
                src[b + dx + c],
                src[b + dy + c],
                src[b + dx + dy + c],
                t.fx,
                t.fy,
            );
            // SAFETY: as in sample_f32_nchw.
            unsafe { *dst.add(((n % g) * cpg + c) * plane + n / g) = v };
        }
    }
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
