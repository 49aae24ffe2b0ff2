//! x86_64 kernels for AVX2 + FMA + F16C.
//!
//! Soundness: every intrinsic sits in a `#[target_feature]` function reachable only through
//! `KERNELS`, which is `pub(super)` and handed out by [`super::Backend::kernels`] after the
//! features were detected. The safe wrappers `assert!` every slice extent the kernel touches
//! before entering `unsafe` code.
//!
//! Float sampling uses FMA on precomputed bilinear weights (agrees with scalar within rounding);
//! f16 sampling repeats the scalar operation order exactly, so it returns the same bits; the
//! integer kernels, conversions and transposes are bit-exact by construction.

use super::{Backend, Kernels, Tap, TapQ11};
use core::arch::x86_64::*;
use core::ptr;
use half::f16;

pub(super) static KERNELS: Kernels = Kernels {
    backend: Backend::Avx2,
    conv_f32,
    conv_i8,
    sample_f32,
    sample_f16,
    sample_i8,
    // NCHW output: the engine's tiles (NHWC sampling, then `transpose_*`) beat the fused
    // kernels this table had (measured on AVX2: int8 and f16 equal or faster, f32 ~20% faster).
    sample_f32_nchw: None,
    sample_f16_nchw: None,
    sample_i8_nchw: None,
    cvt_f16_f32,
    cvt_f32_f16,
    transpose_f32,
    transpose_u16,
    transpose_u8,
};

// ---------------------------------------------------------------------------------------------
// Shared helpers (also used by the VNNI table and its checks).

/// Largest `base + dx + dy` over the taps (u32 sums cannot overflow a 64-bit usize).
fn max_tap_origin<'a>(it: impl Iterator<Item = (u32, u32, u32)> + 'a) -> usize {
    it.map(|(b, dx, dy)| b as usize + dx as usize + dy as usize)
        .max()
        .unwrap_or(0)
}

/// Checks that every tap's four `cpg`-runs lie in `src` and `out` holds `ntaps * cpg`.
fn check_taps(src_len: usize, max_origin: usize, ntaps: usize, cpg: usize, out_len: usize) {
    assert!(max_origin + cpg <= src_len, "sample: tap reads past src");
    let olen = ntaps.checked_mul(cpg).expect("sample: output overflows");
    assert!(out_len >= olen, "sample: out too short");
}

/// Reads `n < 4` bytes into the low bytes of a zeroed i32 (never reads past `p + n`).
///
/// # Safety
/// `p .. p + n` must be readable.
#[inline(always)]
pub(super) unsafe fn load_partial_i32(p: *const i8, n: usize) -> i32 {
    let mut b = [0u8; 4];
    // SAFETY: the caller guarantees n readable bytes at p; b has room for n <= 4.
    unsafe { ptr::copy_nonoverlapping(p as *const u8, b.as_mut_ptr(), n.min(4)) };
    i32::from_le_bytes(b)
}

/// Lanes `i < n` all-ones, the rest zero.
#[inline]
#[target_feature(enable = "avx2")]
pub(super) fn lane_mask(n: usize) -> __m256i {
    _mm256_cmpgt_epi32(
        _mm256_set1_epi32(n.min(8) as i32),
        _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
    )
}

// ---------------------------------------------------------------------------------------------
// conv_f32: register-blocked MP pixels x NV*8 outputs, broadcast x, FMA with packed rows.

conv_f32_entry!(conv_f32 => conv_f32_avx2, "AVX2+FMA were detected before KERNELS was handed out");

/// # Safety
/// AVX2+FMA available; pointers valid for the extents checked in [`conv_f32`]; `bias` may be null.
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn conv_f32_avx2(
    x: *const f32,
    ldx: usize,
    npix: usize,
    cin: usize,
    wt: *const f32,
    bias: *const f32,
    o_n: usize,
    out: *mut f32,
) {
    let full = _mm256_set1_epi32(-1);
    let bias_at = |o: usize| {
        if bias.is_null() {
            bias
        } else {
            bias.wrapping_add(o)
        }
    };
    let mut o0 = 0;
    // SAFETY (all calls below): each column block [o0, o0 + width) lies inside o_n, so its
    // weight, bias and output addresses are inside the extents the caller checked.
    while o0 + 16 <= o_n {
        unsafe {
            conv_f32_cols::<6, 2, false>(
                x,
                ldx,
                npix,
                cin,
                wt.add(o0),
                bias_at(o0),
                o_n,
                out.add(o0),
                full,
            )
        };
        o0 += 16;
    }
    if o0 + 8 <= o_n {
        // SAFETY: as for the block above: this tile's pixels and output columns lie inside the
        // caller-checked x, w and out extents, and the CPU features were detected.
        unsafe {
            conv_f32_cols::<8, 1, false>(
                x,
                ldx,
                npix,
                cin,
                wt.add(o0),
                bias_at(o0),
                o_n,
                out.add(o0),
                full,
            )
        };
        o0 += 8;
    }
    if o0 < o_n {
        let mask = lane_mask(o_n - o0);
        // SAFETY: as for the block above: this tile's pixels and output columns lie inside the
        // caller-checked x, w and out extents, and the CPU features were detected.
        unsafe {
            conv_f32_cols::<8, 1, true>(
                x,
                ldx,
                npix,
                cin,
                wt.add(o0),
                bias_at(o0),
                o_n,
                out.add(o0),
                mask,
            )
        };
    }
}

/// One column block over all pixels: full MP-pixel tiles, then tiles of 4, 2, 1.
///
/// # Safety
/// See [`conv_f32_tile`], for every pixel `p < npix`.
#[inline]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn conv_f32_cols<const MP: usize, const NV: usize, const MASKED: bool>(
    x: *const f32,
    ldx: usize,
    npix: usize,
    cin: usize,
    w: *const f32,
    bias: *const f32,
    o_n: usize,
    out: *mut f32,
    mask: __m256i,
) {
    let mut p = 0;
    // SAFETY (all calls): pixels p .. p + tile are < npix, inside the caller's extents.
    while p + MP <= npix {
        unsafe {
            conv_f32_tile::<MP, NV, MASKED>(
                x.add(p * ldx),
                ldx,
                cin,
                w,
                bias,
                o_n,
                out.add(p * o_n),
                mask,
            )
        };
        p += MP;
    }
    while p + 4 <= npix {
        // SAFETY: as for the block above: this tile's pixels and output columns lie inside the
        // caller-checked x, w and out extents, and the CPU features were detected.
        unsafe {
            conv_f32_tile::<4, NV, MASKED>(
                x.add(p * ldx),
                ldx,
                cin,
                w,
                bias,
                o_n,
                out.add(p * o_n),
                mask,
            )
        };
        p += 4;
    }
    if p + 2 <= npix {
        // SAFETY: as for the block above: this tile's pixels and output columns lie inside the
        // caller-checked x, w and out extents, and the CPU features were detected.
        unsafe {
            conv_f32_tile::<2, NV, MASKED>(
                x.add(p * ldx),
                ldx,
                cin,
                w,
                bias,
                o_n,
                out.add(p * o_n),
                mask,
            )
        };
        p += 2;
    }
    if p < npix {
        // SAFETY: as for the block above: this tile's pixels and output columns lie inside the
        // caller-checked x, w and out extents, and the CPU features were detected.
        unsafe {
            conv_f32_tile::<1, NV, MASKED>(
                x.add(p * ldx),
                ldx,
                cin,
                w,
                bias,
                o_n,
                out.add(p * o_n),
                mask,
            )
        };
    }
}

/// Loads NV vectors of 8 f32; the last one masked when `MASKED`.
///
/// # Safety
/// `p .. p + 8*NV` readable (only the masked-in lanes of the last vector when `MASKED`).
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn load_row_ps<const NV: usize, const MASKED: bool>(
    p: *const f32,
    mask: __m256i,
) -> [__m256; NV] {
    let mut r = [_mm256_setzero_ps(); NV];
    for (v, rv) in r.iter_mut().enumerate() {
        // SAFETY: inside the range the caller guarantees; masked lanes are not accessed.
        *rv = unsafe {
            if MASKED && v + 1 == NV {
                _mm256_maskload_ps(p.add(8 * v), mask)
            } else {
                _mm256_loadu_ps(p.add(8 * v))
            }
        };
    }
    r
}

/// MP pixels x NV*8 outputs; MP*NV accumulators stay in registers (≤ 12 of 16 ymm).
///
/// # Safety
/// AVX2+FMA; `x + p*ldx + k` readable for p < MP, k < cin; `w + k*o_n .. + 8*NV` readable for
/// k < cin (masked-in lanes of the last vector only when `MASKED`); likewise `bias` (or null)
/// and `out + p*o_n` writable.
#[inline]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn conv_f32_tile<const MP: usize, const NV: usize, const MASKED: bool>(
    x: *const f32,
    ldx: usize,
    cin: usize,
    w: *const f32,
    bias: *const f32,
    o_n: usize,
    out: *mut f32,
    mask: __m256i,
) {
    let init = if bias.is_null() {
        [_mm256_setzero_ps(); NV]
    } else {
        // SAFETY: bias is valid for this column block (caller).
        unsafe { load_row_ps::<NV, MASKED>(bias, mask) }
    };
    let mut acc = [init; MP];
    for k in 0..cin {
        // SAFETY: row k of the packed weights, within this column block (caller).
        let wv = unsafe { load_row_ps::<NV, MASKED>(w.add(k * o_n), mask) };
        for (p, accp) in acc.iter_mut().enumerate() {
            // SAFETY: x[p*ldx + k] with p < MP, k < cin is readable (caller).
            let xb = _mm256_set1_ps(unsafe { *x.add(p * ldx + k) });
            for (a, &wvv) in accp.iter_mut().zip(wv.iter()) {
                *a = _mm256_fmadd_ps(xb, wvv, *a);
            }
        }
    }
    for (p, accp) in acc.iter().enumerate() {
        for (v, &a) in accp.iter().enumerate() {
            // SAFETY: out + p*o_n is writable for this column block (caller); masked lanes untouched.
            unsafe {
                let dst = out.add(p * o_n + 8 * v);
                if MASKED && v + 1 == NV {
                    _mm256_maskstore_ps(dst, mask, a);
                } else {
                    _mm256_storeu_ps(dst, a);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// conv_i8: exact i32 via vpmaddwd. Each packed dword (4 k of one output) is split in-register
// into its even and odd bytes sign-extended to i16 (shifts, no shuffles); so are the 4 x bytes.
// madd(x_even, w_even) + madd(x_odd, w_odd) is then the full 4-term dot product, one i32 lane
// per output, in natural order. No saturation anywhere (|x·w| ≤ 2^14, pair sums ≤ 2^15).

conv_i8_entry!(conv_i8 => conv_i8_avx2, "AVX2 was detected before KERNELS was handed out");

/// # Safety
/// AVX2; pointers valid for the extents checked by [`check_conv_i8`].
#[target_feature(enable = "avx2")]
unsafe fn conv_i8_avx2(
    x: *const i8,
    ldx: usize,
    npix: usize,
    cin: usize,
    w: *const i8,
    o_n: usize,
    out: *mut i32,
) {
    let full = _mm256_set1_epi32(-1);
    let mut o0 = 0;
    // SAFETY (all calls): column block [o0, o0 + width) lies inside o_n; see conv_i8_tile.
    while o0 + 16 <= o_n {
        unsafe {
            conv_i8_cols::<4, 2, false>(x, ldx, npix, cin, w.add(4 * o0), o_n, out.add(o0), full)
        };
        o0 += 16;
    }
    if o0 + 8 <= o_n {
        // SAFETY: as for the block above: this tile's pixels and output columns lie inside the
        // caller-checked x, w and out extents, and the CPU features were detected.
        unsafe {
            conv_i8_cols::<6, 1, false>(x, ldx, npix, cin, w.add(4 * o0), o_n, out.add(o0), full)
        };
        o0 += 8;
    }
    if o0 < o_n {
        let mask = lane_mask(o_n - o0);
        // SAFETY: as for the block above: this tile's pixels and output columns lie inside the
        // caller-checked x, w and out extents, and the CPU features were detected.
        unsafe {
            conv_i8_cols::<6, 1, true>(x, ldx, npix, cin, w.add(4 * o0), o_n, out.add(o0), mask)
        };
    }
}

/// # Safety
/// See [`conv_i8_tile`], for every pixel `p < npix`.
#[inline]
#[target_feature(enable = "avx2")]
#[allow(clippy::too_many_arguments)]
unsafe fn conv_i8_cols<const MP: usize, const NV: usize, const MASKED: bool>(
    x: *const i8,
    ldx: usize,
    npix: usize,
    cin: usize,
    w: *const i8,
    o_n: usize,
    out: *mut i32,
    mask: __m256i,
) {
    let mut p = 0;
    // SAFETY (all calls): pixels p .. p + tile are < npix.
    while p + MP <= npix {
        unsafe {
            conv_i8_tile::<MP, NV, MASKED>(x.add(p * ldx), ldx, cin, w, o_n, out.add(p * o_n), mask)
        };
        p += MP;
    }
    while p + 2 <= npix {
        // SAFETY: as for the block above: this tile's pixels and output columns lie inside the
        // caller-checked x, w and out extents, and the CPU features were detected.
        unsafe {
            conv_i8_tile::<2, NV, MASKED>(x.add(p * ldx), ldx, cin, w, o_n, out.add(p * o_n), mask)
        };
        p += 2;
    }
    if p < npix {
        // SAFETY: as for the block above: this tile's pixels and output columns lie inside the
        // caller-checked x, w and out extents, and the CPU features were detected.
        unsafe {
            conv_i8_tile::<1, NV, MASKED>(x.add(p * ldx), ldx, cin, w, o_n, out.add(p * o_n), mask)
        };
    }
}

/// Loads NV weight vectors (8 outputs x 4 k each) of one k-group; last one dword-masked.
///
/// # Safety
/// `p .. p + 32*NV` readable (masked-in dwords of the last vector only when `MASKED`).
#[inline]
#[target_feature(enable = "avx2")]
pub(super) unsafe fn load_row_i8<const NV: usize, const MASKED: bool>(
    p: *const i8,
    mask: __m256i,
) -> [__m256i; NV] {
    let mut r = [_mm256_setzero_si256(); NV];
    for (v, rv) in r.iter_mut().enumerate() {
        // SAFETY: inside the range the caller guarantees; masked dwords are not accessed.
        *rv = unsafe {
            let q = p.add(32 * v);
            if MASKED && v + 1 == NV {
                _mm256_maskload_epi32(q as *const i32, mask)
            } else {
                _mm256_loadu_si256(q as *const __m256i)
            }
        };
    }
    r
}

/// Stores MP x NV i32 vectors to `out + p*o_n`; last vector of a row masked when `MASKED`.
///
/// # Safety
/// `out + p*o_n .. + 8*NV` writable for p < MP (masked-in lanes only for the last vector).
#[inline]
#[target_feature(enable = "avx2")]
pub(super) unsafe fn store_tile_i32<const MP: usize, const NV: usize, const MASKED: bool>(
    out: *mut i32,
    o_n: usize,
    acc: &[[__m256i; NV]; MP],
    mask: __m256i,
) {
    for (p, accp) in acc.iter().enumerate() {
        for (v, &a) in accp.iter().enumerate() {
            // SAFETY: inside the range the caller guarantees; masked lanes untouched.
            unsafe {
                let dst = out.add(p * o_n + 8 * v);
                if MASKED && v + 1 == NV {
                    _mm256_maskstore_epi32(dst, mask, a);
                } else {
                    _mm256_storeu_si256(dst as *mut __m256i, a);
                }
            }
        }
    }
}

/// Even bytes of each 16-bit word, sign-extended (`srai(slli(v, 8), 8)`).
#[inline]
#[target_feature(enable = "avx2")]
fn even_i8_as_i16(v: __m256i) -> __m256i {
    _mm256_srai_epi16::<8>(_mm256_slli_epi16::<8>(v))
}

/// # Safety
/// AVX2; for p < MP the x bytes `x + p*ldx .. + cin` readable; packed weight groups
/// `w + g*4*o_n .. + 32*NV` readable for g < cin4/4 (masked dwords only when `MASKED`);
/// `out + p*o_n .. + 8*NV` writable.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn conv_i8_tile<const MP: usize, const NV: usize, const MASKED: bool>(
    x: *const i8,
    ldx: usize,
    cin: usize,
    w: *const i8,
    o_n: usize,
    out: *mut i32,
    mask: __m256i,
) {
    let mut acc = [[_mm256_setzero_si256(); NV]; MP];
    let groups = cin / 4;
    let tail = cin % 4;
    let mut step = |g: usize, xd: &[i32; MP]| {
        // SAFETY: group g < cin4/4 of the packed weights (caller).
        let wv = unsafe { load_row_i8::<NV, MASKED>(w.add(g * 4 * o_n), mask) };
        let we = wv.map(|v| even_i8_as_i16(v));
        let wo = wv.map(|v| _mm256_srai_epi16::<8>(v));
        for (accp, &d) in acc.iter_mut().zip(xd.iter()) {
            let xv = _mm256_set1_epi32(d);
            let xe = even_i8_as_i16(xv);
            let xo = _mm256_srai_epi16::<8>(xv);
            for v in 0..NV {
                let s =
                    _mm256_add_epi32(_mm256_madd_epi16(xe, we[v]), _mm256_madd_epi16(xo, wo[v]));
                accp[v] = _mm256_add_epi32(accp[v], s);
            }
        }
    };
    for g in 0..groups {
        // SAFETY: bytes 4g .. 4g+4 ≤ cin of each pixel row are readable (caller).
        let xd: [i32; MP] = core::array::from_fn(|p| unsafe {
            ptr::read_unaligned(x.add(p * ldx + 4 * g) as *const i32)
        });
        step(g, &xd);
    }
    if tail != 0 {
        // The k-tail never reads past cin: the last pixel's row may end the slice.
        // SAFETY: bytes 4*groups .. cin of each pixel row are readable (caller).
        let xd: [i32; MP] = core::array::from_fn(|p| unsafe {
            load_partial_i32(x.add(p * ldx + 4 * groups), tail)
        });
        step(groups, &xd);
    }
    // SAFETY: output rows of this tile are writable (caller).
    unsafe { store_tile_i32::<MP, NV, MASKED>(out, o_n, &acc, mask) };
}

// ---------------------------------------------------------------------------------------------
// sample_f32: out = Σ w_ij · v_ij with w00 = (1-fx)(1-fy) …, 8 channels per FMA chain.

fn sample_f32(src: &[f32], taps: &[Tap], cpg: usize, out: &mut [f32]) {
    if cpg == 0 || taps.is_empty() {
        return;
    }
    let m = max_tap_origin(taps.iter().map(|t| (t.base, t.dx, t.dy)));
    check_taps(src.len(), m, taps.len(), cpg, out.len());
    // SAFETY: AVX2+FMA detected (KERNELS); every tap's four runs of cpg lie in src and
    // out holds taps.len()*cpg (checked above).
    unsafe { sample_f32_avx2(src.as_ptr(), taps, cpg, out.as_mut_ptr()) }
}

/// # Safety
/// AVX2+FMA; `src + base + {0, dx, dy, dx+dy} .. + cpg` readable for every tap,
/// `out .. + taps.len()*cpg` writable, `cpg > 0`.
#[target_feature(enable = "avx2,fma")]
unsafe fn sample_f32_avx2(src: *const f32, taps: &[Tap], cpg: usize, out: *mut f32) {
    let mask = lane_mask(cpg);
    for (n, t) in taps.iter().enumerate() {
        let (gx, gy) = (1.0 - t.fx, 1.0 - t.fy);
        let wts = [
            _mm256_set1_ps(gx * gy),
            _mm256_set1_ps(t.fx * gy),
            _mm256_set1_ps(gx * t.fy),
            _mm256_set1_ps(t.fx * t.fy),
        ];
        // SAFETY: the four tap origins and the output run are in bounds (caller).
        unsafe {
            let p00 = src.add(t.base as usize);
            let p01 = p00.add(t.dx as usize);
            let p10 = p00.add(t.dy as usize);
            let p11 = p10.add(t.dx as usize);
            let ps = [p00, p01, p10, p11];
            let o = out.add(n * cpg);
            if cpg >= 8 {
                let mut c = 0;
                // Unrolled by 4 so the independent FMA chains of a tap overlap.
                while c + 32 <= cpg {
                    prefetch_write(o.add(c) as *const u8, 128);
                    for j in (0..32).step_by(8) {
                        _mm256_storeu_ps(o.add(c + j), bilerp_f32(ps, c + j, &wts));
                    }
                    c += 32;
                }
                while c + 8 <= cpg {
                    _mm256_storeu_ps(o.add(c), bilerp_f32(ps, c, &wts));
                    c += 8;
                }
                // Overlapping last chunk instead of a masked one: same values rewritten.
                if c < cpg {
                    _mm256_storeu_ps(o.add(cpg - 8), bilerp_f32(ps, cpg - 8, &wts));
                }
            } else {
                let v = |p: *const f32| _mm256_maskload_ps(p, mask);
                let r = _mm256_mul_ps(v(p00), wts[0]);
                let r = _mm256_fmadd_ps(v(p01), wts[1], r);
                let r = _mm256_fmadd_ps(v(p10), wts[2], r);
                let r = _mm256_fmadd_ps(v(p11), wts[3], r);
                _mm256_maskstore_ps(o, mask, r);
            }
        }
    }
}

/// How far ahead of the store position the NHWC samplers prefetch their output for writing:
/// every output line is fresh, and without the hint each store waits for its
/// read-for-ownership (int8 reference shape: +11%, f32: see the commit message).
pub(super) const WRITE_AHEAD: usize = 1024;

/// Prefetch-for-write of the `bytes` (a multiple of 64) at `p + WRITE_AHEAD`.
#[inline(always)]
pub(super) fn prefetch_write(p: *const u8, bytes: usize) {
    for k in (0..bytes).step_by(64) {
        // SAFETY: prefetching never faults, whatever the address.
        unsafe { _mm_prefetch::<_MM_HINT_ET0>(p.wrapping_add(WRITE_AHEAD + k) as *const i8) };
    }
}

/// # Safety
/// `ps[i] + c .. + 8` readable.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn bilerp_f32(ps: [*const f32; 4], c: usize, w: &[__m256; 4]) -> __m256 {
    // SAFETY: the caller guarantees 8 readable floats at each ps[i] + c.
    unsafe {
        let r = _mm256_mul_ps(_mm256_loadu_ps(ps[0].add(c)), w[0]);
        let r = _mm256_fmadd_ps(_mm256_loadu_ps(ps[1].add(c)), w[1], r);
        let r = _mm256_fmadd_ps(_mm256_loadu_ps(ps[2].add(c)), w[2], r);
        _mm256_fmadd_ps(_mm256_loadu_ps(ps[3].add(c)), w[3], r)
    }
}

// ---------------------------------------------------------------------------------------------
// sample_f16: F16C widening, the scalar lerp order in f32 (no FMA), RNE narrowing: bit-exact.

fn sample_f16(src: &[f16], taps: &[Tap], cpg: usize, out: &mut [f16]) {
    if cpg == 0 || taps.is_empty() {
        return;
    }
    let m = max_tap_origin(taps.iter().map(|t| (t.base, t.dx, t.dy)));
    check_taps(src.len(), m, taps.len(), cpg, out.len());
    // SAFETY: AVX2+F16C detected (KERNELS); tap runs and output extent checked above.
    // f16 is a transparent u16.
    unsafe {
        sample_f16_avx2(
            (src.as_ptr() as *const u16, src.len()),
            taps,
            cpg,
            (out.as_mut_ptr() as *mut u16, taps.len() * cpg),
        )
    }
}

/// # Safety
/// Same as [`sample_f32_avx2`] with u16 elements, `src .. + src_len` readable and
/// `out .. + out_len` writable; AVX2+F16C.
#[target_feature(enable = "avx2,f16c")]
unsafe fn sample_f16_avx2(
    (src, src_len): (*const u16, usize),
    taps: &[Tap],
    cpg: usize,
    (out, out_len): (*mut u16, usize),
) {
    for (n, t) in taps.iter().enumerate() {
        let fx = _mm256_set1_ps(t.fx);
        let fy = _mm256_set1_ps(t.fy);
        // SAFETY: the four tap origins and the output run are in bounds (caller).
        unsafe {
            let p00 = src.add(t.base as usize);
            let p01 = p00.add(t.dx as usize);
            let p10 = p00.add(t.dy as usize);
            let p11 = p10.add(t.dx as usize);
            let ps = [p00, p01, p10, p11];
            let o = out.add(n * cpg);
            if cpg >= 8 {
                let mut c = 0;
                while c + 32 <= cpg {
                    prefetch_write(o.add(c) as *const u8, 64);
                    for j in (0..32).step_by(8) {
                        bilerp_f16(ps, c + j, fx, fy, o.add(c + j));
                    }
                    c += 32;
                }
                while c + 8 <= cpg {
                    bilerp_f16(ps, c, fx, fy, o.add(c));
                    c += 8;
                }
                if c < cpg {
                    bilerp_f16(ps, cpg - 8, fx, fy, o.add(cpg - 8));
                }
            } else if fits(
                t.base as usize + t.dx as usize + t.dy as usize,
                n,
                cpg,
                8,
                src_len,
                out_len,
            ) {
                // Fewer than 8 channels: whole 8-lane loads and store. SAFETY: `fits` checked
                // that 8 halves from the far corner stay in src and 8 from o in the taps' run.
                bilerp_f16(ps, 0, fx, fy, o);
            } else {
                // The image's last pixels or the output's last tap: zeroed stack buffers.
                let mut b = [[0u16; 8]; 4];
                for (bi, &p) in b.iter_mut().zip(ps.iter()) {
                    ptr::copy_nonoverlapping(p, bi.as_mut_ptr(), cpg);
                }
                let mut r = [0u16; 8];
                let bp = [b[0].as_ptr(), b[1].as_ptr(), b[2].as_ptr(), b[3].as_ptr()];
                bilerp_f16(bp, 0, fx, fy, r.as_mut_ptr());
                ptr::copy_nonoverlapping(r.as_ptr(), o, cpg);
            }
        }
    }
}

/// # Safety
/// `ps[i] + c .. + 8` readable, `o .. + 8` writable.
#[inline]
#[target_feature(enable = "avx2,f16c")]
unsafe fn bilerp_f16(ps: [*const u16; 4], c: usize, fx: __m256, fy: __m256, o: *mut u16) {
    // SAFETY: the caller guarantees 8 readable halves at each ps[i] + c and 8 writable at o.
    unsafe {
        let ld = |p: *const u16| _mm256_cvtph_ps(_mm_loadu_si128(p.add(c) as *const __m128i));
        let (a, b, cc, d) = (ld(ps[0]), ld(ps[1]), ld(ps[2]), ld(ps[3]));
        let top = _mm256_add_ps(a, _mm256_mul_ps(fx, _mm256_sub_ps(b, a)));
        let bot = _mm256_add_ps(cc, _mm256_mul_ps(fx, _mm256_sub_ps(d, cc)));
        let r = _mm256_add_ps(top, _mm256_mul_ps(fy, _mm256_sub_ps(bot, top)));
        _mm_storeu_si128(
            o as *mut __m128i,
            _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(r),
        );
    }
}

// ---------------------------------------------------------------------------------------------
// sample_i8: corners sign-extended to i16, pairs (q00, q01) and (q10, q11) interleaved and
// multiplied by the Q14 weight pairs (w00, w01), (w10, w11) with vpmaddwd; the two i32 sums
// give the exact Σ w·q (|·| ≤ 2^21), then + 2^13 and an arithmetic shift by 14.

fn sample_i8(src: &[i8], taps: &[TapQ11], cpg: usize, out: &mut [i8]) {
    if cpg == 0 || taps.is_empty() {
        return;
    }
    let m = max_tap_origin(taps.iter().map(|t| (t.base, t.dx, t.dy)));
    check_taps(src.len(), m, taps.len(), cpg, out.len());
    // SAFETY: AVX2 detected (KERNELS); tap runs and output extent checked above.
    unsafe {
        sample_i8_avx2(
            (src.as_ptr(), src.len()),
            taps,
            cpg,
            (out.as_mut_ptr(), taps.len() * cpg),
        )
    }
}

/// Whether tap `n` (of `cpg < lanes` channels, far corner at `far` = base + dx + dy) may use
/// whole `lanes`-wide loads and a whole store.
///
/// Small groups (4–8 channels in small models) are common, and copying each run through a
/// stack buffer cost 30–40% of those layers. A whole vector is fine when it stays inside `src`
/// (the lanes past `cpg` are read and dropped) and inside the output run of all the taps
/// (`out_len` = taps · cpg, never the slice's length: past it the caller's data lives): the
/// extra lanes it stores belong to the following taps, written after this one.
#[inline(always)]
fn fits(far: usize, n: usize, cpg: usize, lanes: usize, src_len: usize, out_len: usize) -> bool {
    far + lanes <= src_len && n * cpg + lanes <= out_len
}

/// The tap's Q14 weights as the i16 pairs `(w00, w01)`, `(w10, w11)` that vpmaddwd takes.
#[inline(always)]
pub(super) fn weight_pairs(t: &TapQ11) -> (i32, i32) {
    let w = t.weights();
    (
        w[0] as i32 | (w[1] as i32) << 16,
        w[2] as i32 | (w[3] as i32) << 16,
    )
}

/// # Safety
/// Same as [`sample_f32_avx2`] with i8 elements, `src .. + src_len` readable and
/// `out .. + out_len` writable; AVX2.
#[target_feature(enable = "avx2")]
unsafe fn sample_i8_avx2(
    (src, src_len): (*const i8, usize),
    taps: &[TapQ11],
    cpg: usize,
    (out, out_len): (*mut i8, usize),
) {
    for (n, t) in taps.iter().enumerate() {
        let (top, bot) = weight_pairs(t);
        let (wt, wb) = (_mm256_set1_epi32(top), _mm256_set1_epi32(bot));
        // SAFETY: the four tap origins and the output run are in bounds (caller).
        unsafe {
            let p00 = src.add(t.base as usize);
            let p01 = p00.add(t.dx as usize);
            let p10 = p00.add(t.dy as usize);
            let p11 = p10.add(t.dx as usize);
            let ps = [p00, p01, p10, p11];
            let o = out.add(n * cpg);
            if cpg >= 16 {
                let mut c = 0;
                while c + 32 <= cpg {
                    if c % 64 == 0 {
                        prefetch_write(o.add(c) as *const u8, 64);
                    }
                    _mm_storeu_si128(o.add(c) as *mut __m128i, bilerp_i8(ps, c, wt, wb));
                    _mm_storeu_si128(o.add(c + 16) as *mut __m128i, bilerp_i8(ps, c + 16, wt, wb));
                    c += 32;
                }
                while c + 16 <= cpg {
                    _mm_storeu_si128(o.add(c) as *mut __m128i, bilerp_i8(ps, c, wt, wb));
                    c += 16;
                }
                if c < cpg {
                    let r = bilerp_i8(ps, cpg - 16, wt, wb);
                    _mm_storeu_si128(o.add(cpg - 16) as *mut __m128i, r);
                }
            } else if fits(
                t.base as usize + t.dx as usize + t.dy as usize,
                n,
                cpg,
                16,
                src_len,
                out_len,
            ) {
                // SAFETY: `fits` checked that 16 bytes from the far corner stay in src and 16
                // from o in the taps' output run.
                _mm_storeu_si128(o as *mut __m128i, bilerp_i8(ps, 0, wt, wb));
            } else {
                let mut b = [[0i8; 16]; 4];
                for (bi, &p) in b.iter_mut().zip(ps.iter()) {
                    ptr::copy_nonoverlapping(p, bi.as_mut_ptr(), cpg);
                }
                let mut r = [0i8; 16];
                let bp = [b[0].as_ptr(), b[1].as_ptr(), b[2].as_ptr(), b[3].as_ptr()];
                _mm_storeu_si128(r.as_mut_ptr() as *mut __m128i, bilerp_i8(bp, 0, wt, wb));
                ptr::copy_nonoverlapping(r.as_ptr(), o, cpg);
            }
        }
    }
}

/// 16 channels of the Q14 bilinear blend, with the weight pairs of [`weight_pairs`] broadcast.
///
/// # Safety
/// `ps[i] + c .. + 16` readable.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn bilerp_i8(ps: [*const i8; 4], c: usize, wt: __m256i, wb: __m256i) -> __m128i {
    // SAFETY: the caller guarantees 16 readable bytes at each ps[i] + c.
    unsafe {
        let ld = |p: *const i8| _mm256_cvtepi8_epi16(_mm_loadu_si128(p.add(c) as *const __m128i));
        let (a, b, cc, d) = (ld(ps[0]), ld(ps[1]), ld(ps[2]), ld(ps[3]));
        let round = _mm256_set1_epi32(1 << 13);
        // unpacklo/hi work per 128-bit lane: lo = channels 0-3 | 8-11, hi = 4-7 | 12-15.
        let lo = _mm256_add_epi32(
            _mm256_madd_epi16(_mm256_unpacklo_epi16(a, b), wt),
            _mm256_madd_epi16(_mm256_unpacklo_epi16(cc, d), wb),
        );
        let hi = _mm256_add_epi32(
            _mm256_madd_epi16(_mm256_unpackhi_epi16(a, b), wt),
            _mm256_madd_epi16(_mm256_unpackhi_epi16(cc, d), wb),
        );
        let lo = _mm256_srai_epi32::<14>(_mm256_add_epi32(lo, round));
        let hi = _mm256_srai_epi32::<14>(_mm256_add_epi32(hi, round));
        // packs_epi32 per lane restores channel order 0..15; results lie in [-128, 127].
        let r16 = _mm256_packs_epi32(lo, hi);
        _mm_packs_epi16(
            _mm256_castsi256_si128(r16),
            _mm256_extracti128_si256::<1>(r16),
        )
    }
}

// ---------------------------------------------------------------------------------------------
// f16 <-> f32 conversions (F16C; round to nearest even).

fn cvt_f16_f32(src: &[f16], dst: &mut [f32]) {
    assert_eq!(src.len(), dst.len(), "cvt_f16_f32: length mismatch");
    // SAFETY: F16C detected (KERNELS); both slices hold src.len() elements; f16 is a u16.
    unsafe { cvt_f16_f32_f16c(src.as_ptr() as *const u16, dst.as_mut_ptr(), src.len()) }
}

/// # Safety
/// F16C; `src .. + n` readable, `dst .. + n` writable.
#[target_feature(enable = "avx2,f16c")]
unsafe fn cvt_f16_f32_f16c(src: *const u16, dst: *mut f32, n: usize) {
    let mut i = 0;
    // SAFETY: all accesses stay below n (loop bounds); the tail goes through a stack buffer.
    unsafe {
        while i + 32 <= n {
            for j in (0..32).step_by(8) {
                let h = _mm_loadu_si128(src.add(i + j) as *const __m128i);
                _mm256_storeu_ps(dst.add(i + j), _mm256_cvtph_ps(h));
            }
            i += 32;
        }
        while i + 8 <= n {
            let h = _mm_loadu_si128(src.add(i) as *const __m128i);
            _mm256_storeu_ps(dst.add(i), _mm256_cvtph_ps(h));
            i += 8;
        }
        if i < n {
            let mut b = [0u16; 8];
            let mut r = [0f32; 8];
            ptr::copy_nonoverlapping(src.add(i), b.as_mut_ptr(), n - i);
            _mm256_storeu_ps(
                r.as_mut_ptr(),
                _mm256_cvtph_ps(_mm_loadu_si128(b.as_ptr() as *const __m128i)),
            );
            ptr::copy_nonoverlapping(r.as_ptr(), dst.add(i), n - i);
        }
    }
}

fn cvt_f32_f16(src: &[f32], dst: &mut [f16]) {
    assert_eq!(src.len(), dst.len(), "cvt_f32_f16: length mismatch");
    // SAFETY: F16C detected (KERNELS); both slices hold src.len() elements; f16 is a u16.
    unsafe { cvt_f32_f16_f16c(src.as_ptr(), dst.as_mut_ptr() as *mut u16, src.len()) }
}

/// # Safety
/// F16C; `src .. + n` readable, `dst .. + n` writable.
#[target_feature(enable = "avx2,f16c")]
unsafe fn cvt_f32_f16_f16c(src: *const f32, dst: *mut u16, n: usize) {
    const RNE: i32 = _MM_FROUND_TO_NEAREST_INT;
    let mut i = 0;
    // SAFETY: all accesses stay below n (loop bounds); the tail goes through a stack buffer.
    unsafe {
        while i + 32 <= n {
            for j in (0..32).step_by(8) {
                let h = _mm256_cvtps_ph::<RNE>(_mm256_loadu_ps(src.add(i + j)));
                _mm_storeu_si128(dst.add(i + j) as *mut __m128i, h);
            }
            i += 32;
        }
        while i + 8 <= n {
            let h = _mm256_cvtps_ph::<RNE>(_mm256_loadu_ps(src.add(i)));
            _mm_storeu_si128(dst.add(i) as *mut __m128i, h);
            i += 8;
        }
        if i < n {
            let mut b = [0f32; 8];
            let mut r = [0u16; 8];
            ptr::copy_nonoverlapping(src.add(i), b.as_mut_ptr(), n - i);
            let h = _mm256_cvtps_ph::<RNE>(_mm256_loadu_ps(b.as_ptr()));
            _mm_storeu_si128(r.as_mut_ptr() as *mut __m128i, h);
            ptr::copy_nonoverlapping(r.as_ptr(), dst.add(i), n - i);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Transposes: full register tiles (8x8 f32, 8x8 u16, 16x16 u8), scalar edges.

/// One round of "interleave row i with row i + N/2" over `N` registers, spelled out:
/// `array::from_fn` here compiles to a loop through a stack array (measured: the byte transpose
/// ran at a third of its speed).
macro_rules! zip_round {
    ($r:ident, $lo:ident, $hi:ident, $h:literal; $($i:literal)*) => {
        [$($lo($r[$i], $r[$i + $h]), $hi($r[$i], $r[$i + $h])),*]
    };
}

/// 16x16 byte transpose in registers (four rounds of "interleave row i with row i+8").
#[inline]
#[target_feature(enable = "avx2")]
fn transpose_16x16_epi8(mut r: [__m128i; 16]) -> [__m128i; 16] {
    r = zip_round!(r, _mm_unpacklo_epi8, _mm_unpackhi_epi8, 8; 0 1 2 3 4 5 6 7);
    r = zip_round!(r, _mm_unpacklo_epi8, _mm_unpackhi_epi8, 8; 0 1 2 3 4 5 6 7);
    r = zip_round!(r, _mm_unpacklo_epi8, _mm_unpackhi_epi8, 8; 0 1 2 3 4 5 6 7);
    zip_round!(r, _mm_unpacklo_epi8, _mm_unpackhi_epi8, 8; 0 1 2 3 4 5 6 7)
}

transposes! {
    "avx2";
    transpose_f32: f32 => [(8, tile_8x8_f32)],
    transpose_u16: u16 => [(8, tile_8x8_u16)],
    // Edges of the 16x16 tiling go through 8x8 tiles, then scalar.
    transpose_u8: u8 => [(16, tile_16x16_u8), (8, tile_8x8_u8)],
}

/// # Safety
/// AVX2; 8 rows of 8 floats readable at `s + i*src_ld`, writable at `d + j*dst_ld`.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn tile_8x8_f32(s: *const f32, src_ld: usize, d: *mut f32, dst_ld: usize) {
    // SAFETY: the caller guarantees the 8x8 source and destination tiles.
    unsafe {
        let r: [__m256; 8] = core::array::from_fn(|i| _mm256_loadu_ps(s.add(i * src_ld)));
        let t0 = _mm256_unpacklo_ps(r[0], r[1]);
        let t1 = _mm256_unpackhi_ps(r[0], r[1]);
        let t2 = _mm256_unpacklo_ps(r[2], r[3]);
        let t3 = _mm256_unpackhi_ps(r[2], r[3]);
        let t4 = _mm256_unpacklo_ps(r[4], r[5]);
        let t5 = _mm256_unpackhi_ps(r[4], r[5]);
        let t6 = _mm256_unpacklo_ps(r[6], r[7]);
        let t7 = _mm256_unpackhi_ps(r[6], r[7]);
        let s0 = _mm256_shuffle_ps::<0x44>(t0, t2);
        let s1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
        let s2 = _mm256_shuffle_ps::<0x44>(t1, t3);
        let s3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
        let s4 = _mm256_shuffle_ps::<0x44>(t4, t6);
        let s5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
        let s6 = _mm256_shuffle_ps::<0x44>(t5, t7);
        let s7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
        let o = [
            _mm256_permute2f128_ps::<0x20>(s0, s4),
            _mm256_permute2f128_ps::<0x20>(s1, s5),
            _mm256_permute2f128_ps::<0x20>(s2, s6),
            _mm256_permute2f128_ps::<0x20>(s3, s7),
            _mm256_permute2f128_ps::<0x31>(s0, s4),
            _mm256_permute2f128_ps::<0x31>(s1, s5),
            _mm256_permute2f128_ps::<0x31>(s2, s6),
            _mm256_permute2f128_ps::<0x31>(s3, s7),
        ];
        for (j, &v) in o.iter().enumerate() {
            _mm256_storeu_ps(d.add(j * dst_ld), v);
        }
    }
}

/// Three rounds of "interleave row i with row i+4" transpose an 8x8 tile of words
/// (each round rotates the 6-bit (row, col) index by one bit).
///
/// # Safety
/// AVX2; 8 rows of 8 u16 readable at `s + i*src_ld`, writable at `d + j*dst_ld`.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn tile_8x8_u16(s: *const u16, src_ld: usize, d: *mut u16, dst_ld: usize) {
    // SAFETY: the caller guarantees the 8x8 source and destination tiles.
    unsafe {
        let mut r = [_mm_setzero_si128(); 8];
        for (i, v) in r.iter_mut().enumerate() {
            *v = _mm_loadu_si128(s.add(i * src_ld) as *const __m128i);
        }
        r = zip_round!(r, _mm_unpacklo_epi16, _mm_unpackhi_epi16, 4; 0 1 2 3);
        r = zip_round!(r, _mm_unpacklo_epi16, _mm_unpackhi_epi16, 4; 0 1 2 3);
        r = zip_round!(r, _mm_unpacklo_epi16, _mm_unpackhi_epi16, 4; 0 1 2 3);
        for (j, &v) in r.iter().enumerate() {
            _mm_storeu_si128(d.add(j * dst_ld) as *mut __m128i, v);
        }
    }
}

/// Four rounds of "interleave row i with row i+8" transpose a 16x16 byte tile.
///
/// # Safety
/// AVX2; 16 rows of 16 bytes readable at `s + i*src_ld`, writable at `d + j*dst_ld`.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn tile_16x16_u8(s: *const u8, src_ld: usize, d: *mut u8, dst_ld: usize) {
    // SAFETY: the caller guarantees the 16x16 source and destination tiles.
    unsafe {
        let mut r = [_mm_setzero_si128(); 16];
        for (i, v) in r.iter_mut().enumerate() {
            *v = _mm_loadu_si128(s.add(i * src_ld) as *const __m128i);
        }
        let r = transpose_16x16_epi8(r);
        for (j, &v) in r.iter().enumerate() {
            _mm_storeu_si128(d.add(j * dst_ld) as *mut __m128i, v);
        }
    }
}

/// 8x8 byte tile: rows as 8-byte halves; interleave bytes, words, dwords of row pairs.
///
/// # Safety
/// AVX2; 8 rows of 8 bytes readable at `s + i*src_ld`, writable at `d + j*dst_ld`.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn tile_8x8_u8(s: *const u8, src_ld: usize, d: *mut u8, dst_ld: usize) {
    // SAFETY: the caller guarantees the 8x8 source and destination tiles.
    unsafe {
        let r: [__m128i; 8] =
            core::array::from_fn(|i| _mm_loadl_epi64(s.add(i * src_ld) as *const __m128i));
        // a[i]: rows 2i, 2i+1 interleaved, columns 0..7.
        let a: [__m128i; 4] = core::array::from_fn(|i| _mm_unpacklo_epi8(r[2 * i], r[2 * i + 1]));
        // b0/b1: rows 0-3, columns 0-3 / 4-7; b2/b3: rows 4-7.
        let b = [
            _mm_unpacklo_epi16(a[0], a[1]),
            _mm_unpackhi_epi16(a[0], a[1]),
            _mm_unpacklo_epi16(a[2], a[3]),
            _mm_unpackhi_epi16(a[2], a[3]),
        ];
        // Each result holds two whole columns (8 bytes each).
        let c = [
            _mm_unpacklo_epi32(b[0], b[2]),
            _mm_unpackhi_epi32(b[0], b[2]),
            _mm_unpacklo_epi32(b[1], b[3]),
            _mm_unpackhi_epi32(b[1], b[3]),
        ];
        for (j, &v) in c.iter().enumerate() {
            _mm_storel_epi64(d.add(2 * j * dst_ld) as *mut __m128i, v);
            _mm_storel_epi64(
                d.add((2 * j + 1) * dst_ld) as *mut __m128i,
                _mm_unpackhi_epi64(v, v),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    table_tests!(Avx2);
}
