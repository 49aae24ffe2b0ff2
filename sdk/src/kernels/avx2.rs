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

use super::tiling::{ConvF32Args, ConvI8Args};
use super::x86_loops::{
    self, channel_chunks, corners, fits, short_tap, ConvF32, F32Fma, I8Dot, Lanes,
};
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
    stream_tile_f32: Some(stream_tile_f32),
    stream_tile_u16: Some(stream_tile_u16),
    stream_tile_u8: Some(stream_tile_u8),
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
// Vector operations of the shared convolution loops (`x86_loops`). SAFETY (every method): the
// loops call them only from this module's and the VNNI module's `#[target_feature]` leaves,
// which enable AVX2 + FMA; the pointer contracts are the trait's.

impl Lanes for __m256 {
    type Elem = f32;
    type Mask = __m256i;
    const LANES: usize = 8;
    #[inline(always)]
    unsafe fn mask(n: usize) -> __m256i {
        unsafe { lane_mask(n) }
    }
    #[inline(always)]
    unsafe fn zero() -> Self {
        unsafe { _mm256_setzero_ps() }
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        unsafe { _mm256_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn load_masked(p: *const f32, m: __m256i) -> Self {
        unsafe { _mm256_maskload_ps(p, m) }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: Self) {
        unsafe { _mm256_storeu_ps(p, v) }
    }
    #[inline(always)]
    unsafe fn store_masked(p: *mut f32, m: __m256i, v: Self) {
        unsafe { _mm256_maskstore_ps(p, m, v) }
    }
}

impl F32Fma for __m256 {
    #[inline(always)]
    unsafe fn splat(v: f32) -> Self {
        unsafe { _mm256_set1_ps(v) }
    }
    #[inline(always)]
    unsafe fn fma(a: Self, b: Self, c: Self) -> Self {
        unsafe { _mm256_fmadd_ps(a, b, c) }
    }
}

impl Lanes for __m256i {
    type Elem = i32;
    type Mask = __m256i;
    const LANES: usize = 8;
    #[inline(always)]
    unsafe fn mask(n: usize) -> __m256i {
        unsafe { lane_mask(n) }
    }
    #[inline(always)]
    unsafe fn zero() -> Self {
        unsafe { _mm256_setzero_si256() }
    }
    #[inline(always)]
    unsafe fn load(p: *const i32) -> Self {
        unsafe { _mm256_loadu_si256(p as *const __m256i) }
    }
    #[inline(always)]
    unsafe fn load_masked(p: *const i32, m: __m256i) -> Self {
        unsafe { _mm256_maskload_epi32(p, m) }
    }
    #[inline(always)]
    unsafe fn store(p: *mut i32, v: Self) {
        unsafe { _mm256_storeu_si256(p as *mut __m256i, v) }
    }
    #[inline(always)]
    unsafe fn store_masked(p: *mut i32, m: __m256i, v: Self) {
        unsafe { _mm256_maskstore_epi32(p, m, v) }
    }
}

// ---------------------------------------------------------------------------------------------
// conv_f32: register-blocked MP pixels x NV*8 outputs, broadcast x, FMA with packed rows.

conv_f32_entry!(conv_f32 => conv_f32_avx2, "AVX2+FMA were detected before KERNELS was handed out");

/// Tiles of 6 pixels x 16 outputs, 8 x 8 for the last columns: ≤ 12 accumulators of 16 ymm.
///
/// # Safety
/// AVX2+FMA available; `a` from [`check_conv_f32`](super::tiling::check_conv_f32), its slices still borrowed.
#[target_feature(enable = "avx2,fma")]
unsafe fn conv_f32_avx2(a: &ConvF32Args) {
    // SAFETY: the features are enabled here; the extents are the caller's.
    unsafe { ConvF32::<__m256>::of(a).run::<6, 8>() }
}

// ---------------------------------------------------------------------------------------------
// conv_i8: exact i32 via vpmaddwd. Each packed dword (4 k of one output) is split in-register
// into its even and odd bytes sign-extended to i16 (shifts, no shuffles); so are the 4 x bytes.
// madd(x_even, w_even) + madd(x_odd, w_odd) is then the full 4-term dot product, one i32 lane
// per output, in natural order. No saturation anywhere (|x·w| ≤ 2^14, pair sums ≤ 2^15).

conv_i8_entry!(conv_i8 => conv_i8_avx2, "AVX2 was detected before KERNELS was handed out");

/// Tiles of 4 pixels x 16 outputs (each weight vector is two registers here), 6 x 8 for the
/// last columns.
///
/// # Safety
/// AVX2; pointers valid for the extents checked by [`super::tiling::check_conv_i8`].
#[target_feature(enable = "avx2")]
unsafe fn conv_i8_avx2(a: &ConvI8Args) {
    // SAFETY: the features are enabled here; the extents are the caller's.
    unsafe { x86_loops::conv_i8::<Madd, 4, 6>(a) }
}

/// The `vpmaddwd` dot product: bytes split into even and odd i16 halves.
struct Madd;

/// Even bytes of each 16-bit word, sign-extended (`srai(slli(v, 8), 8)`).
#[inline]
#[target_feature(enable = "avx2")]
fn even_i8_as_i16(v: __m256i) -> __m256i {
    _mm256_srai_epi16::<8>(_mm256_slli_epi16::<8>(v))
}

/// Both halves of a vector of bytes: (even, odd), each sign-extended to i16.
#[inline]
#[target_feature(enable = "avx2")]
fn split_i8(v: __m256i) -> (__m256i, __m256i) {
    (even_i8_as_i16(v), _mm256_srai_epi16::<8>(v))
}

// SAFETY (every method): called only from `conv_i8_avx2` (AVX2), see the `Lanes` impls.
impl I8Dot for Madd {
    type V = __m256i;
    type W = (__m256i, __m256i);
    type X = (__m256i, __m256i);
    #[inline(always)]
    unsafe fn weights(w: __m256i) -> Self::W {
        unsafe { split_i8(w) }
    }
    #[inline(always)]
    unsafe fn pixel(x4: i32) -> Self::X {
        unsafe { split_i8(_mm256_set1_epi32(x4)) }
    }
    #[inline(always)]
    unsafe fn dot(acc: __m256i, (xe, xo): Self::X, (we, wo): Self::W) -> __m256i {
        unsafe {
            let s = _mm256_add_epi32(_mm256_madd_epi16(xe, we), _mm256_madd_epi16(xo, wo));
            _mm256_add_epi32(acc, s)
        }
    }
    #[inline(always)]
    unsafe fn start<const NV: usize, const MASKED: bool>(
        _w: *const i8,
        _groups: usize,
        _ld: usize,
        _m: __m256i,
    ) -> [__m256i; NV] {
        [unsafe { _mm256_setzero_si256() }; NV]
    }
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
        // SAFETY: the four tap origins and the output run are in bounds (caller); chunks stay
        // below cpg.
        unsafe {
            let ps = corners(src, t.base, t.dx, t.dy);
            let o = out.add(n * cpg);
            if cpg >= 8 {
                channel_chunks::<_, 8, 4>(o, cpg, |c| {
                    _mm256_storeu_ps(o.add(c), bilerp_f32(ps, c, &wts))
                });
            } else {
                let v = |p: *const f32| _mm256_maskload_ps(p, mask);
                let r = _mm256_mul_ps(v(ps[0]), wts[0]);
                let r = _mm256_fmadd_ps(v(ps[1]), wts[1], r);
                let r = _mm256_fmadd_ps(v(ps[2]), wts[2], r);
                let r = _mm256_fmadd_ps(v(ps[3]), wts[3], r);
                _mm256_maskstore_ps(o, mask, r);
            }
        }
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
        // SAFETY: the four tap origins and the output run are in bounds (caller); chunks stay
        // below cpg; `fits` checked that whole 8-lane runs stay in src and the taps' output.
        unsafe {
            let ps = corners(src, t.base, t.dx, t.dy);
            let o = out.add(n * cpg);
            if cpg >= 8 {
                channel_chunks::<_, 8, 4>(o, cpg, |c| bilerp_f16(ps, c, fx, fy, o.add(c)));
            } else {
                let far = t.base as usize + t.dx as usize + t.dy as usize;
                let direct = fits(far, n, cpg, 8, src_len, out_len);
                short_tap::<_, 8>(ps, o, cpg, direct, |ps, o| bilerp_f16(ps, 0, fx, fy, o));
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
        if let Some(a) = taps.get(n + x86_loops::TAP_AHEAD) {
            // SAFETY: every tap's corners are in bounds (caller).
            x86_loops::prefetch_corners(unsafe { corners(src, a.base, a.dx, a.dy) }, cpg);
        }
        let (top, bot) = weight_pairs(t);
        let (wt, wb) = (_mm256_set1_epi32(top), _mm256_set1_epi32(bot));
        // SAFETY: the four tap origins and the output run are in bounds (caller); chunks stay
        // below cpg; `fits` checked that whole 16-byte runs stay in src and the taps' output.
        unsafe {
            let ps = corners(src, t.base, t.dx, t.dy);
            let o = out.add(n * cpg);
            let blend = |ps, c, o: *mut i8| {
                _mm_storeu_si128(o.add(c) as *mut __m128i, bilerp_i8(ps, c, wt, wb))
            };
            if cpg >= 16 {
                channel_chunks::<_, 16, 2>(o, cpg, |c| blend(ps, c, o));
            } else {
                let far = t.base as usize + t.dx as usize + t.dy as usize;
                let direct = fits(far, n, cpg, 16, src_len, out_len);
                short_tap::<_, 16>(ps, o, cpg, direct, |ps, o| blend(ps, 0, o));
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
    // SAFETY: convert8 hands the closure 8 readable halves and 8 writable floats.
    unsafe {
        convert8(src, dst, n, |s, d| {
            _mm256_storeu_ps(d, _mm256_cvtph_ps(_mm_loadu_si128(s as *const __m128i)))
        })
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
    // SAFETY: convert8 hands the closure 8 readable floats and 8 writable halves.
    unsafe {
        convert8(src, dst, n, |s, d| {
            let h = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(_mm256_loadu_ps(s));
            _mm_storeu_si128(d as *mut __m128i, h)
        })
    }
}

/// The conversion loop: `cvt8(s, d)` converts the 8 elements at `s` to `d`, unrolled by 4;
/// the last `n % 8` go through zeroed stack buffers.
///
/// # Safety
/// `src .. + n` readable, `dst .. + n` writable; `cvt8` may read and write 8 elements.
#[inline(always)]
unsafe fn convert8<S: Copy + Default, D: Copy + Default>(
    src: *const S,
    dst: *mut D,
    n: usize,
    cvt8: impl Fn(*const S, *mut D),
) {
    let mut i = 0;
    // SAFETY: all accesses stay below n (loop bounds); the tail goes through the buffers.
    unsafe {
        while i + 32 <= n {
            for j in (0..32).step_by(8) {
                cvt8(src.add(i + j), dst.add(i + j));
            }
            i += 32;
        }
        while i + 8 <= n {
            cvt8(src.add(i), dst.add(i));
            i += 8;
        }
        if i < n {
            let (mut b, mut r) = ([S::default(); 8], [D::default(); 8]);
            ptr::copy_nonoverlapping(src.add(i), b.as_mut_ptr(), n - i);
            cvt8(b.as_ptr(), r.as_mut_ptr());
            ptr::copy_nonoverlapping(r.as_ptr(), dst.add(i), n - i);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Transposes: full register tiles (8x8 f32, 8x8 u16, 16x16 u8), scalar edges.

/// 16x16 byte transpose in registers (four rounds of "interleave row i with row i+8").
#[inline]
#[target_feature(enable = "avx2")]
fn transpose_16x16_epi8(r: [__m128i; 16]) -> [__m128i; 16] {
    zip_transpose!(r, _mm_unpacklo_epi8, _mm_unpackhi_epi8, bytes16)
}

transposes! {
    "avx2";
    transpose_f32: f32 => [(8, tile_8x8_f32)],
    transpose_u16: u16 => [(8, tile_8x8_u16)],
    // Edges of the 16x16 tiling go through 8x8 tiles, then scalar.
    transpose_u8: u8 => [(16, tile_16x16_u8), (8, tile_8x8_u8)],
}

// NCHW tiles streamed out (`stream_tile_*`): 64 channels at a time are transposed into an L1
// bounce buffer, one 64-byte line per channel, which whole-line non-temporal stores then copy
// to the planes. The register transposes above do the work; the bounce costs two L1 passes.

/// 64 lines of 64 bytes, aligned to a line.
#[repr(C, align(64))]
struct Bounce([u8; 4096]);

macro_rules! stream_tiles {
    ($($name:ident: $t:ty => $transpose:ident),* $(,)?) => {$(
        /// # Safety
        /// See [`super::StreamTile`].
        unsafe fn $name(src: &[$t], c: usize, dst: *mut $t, plane: usize) {
            const PB: usize = 64 / core::mem::size_of::<$t>();
            let lb = plane * core::mem::size_of::<$t>();
            if !super::tiling::check_stream_tile(src.len(), c, PB, dst as usize, lb) {
                return;
            }
            // Uninitialised: each line is written by the transpose before it is read, and only
            // through raw pointers (zeroing it cost a store per stored byte).
            let mut b = core::mem::MaybeUninit::<Bounce>::uninit();
            let bp = b.as_mut_ptr().cast::<u8>();
            for c0 in (0..c).step_by(64) {
                let n = (c - c0).min(64);
                // SAFETY: the tile's columns c0 .. c0 + n lie in src (extent checked above);
                // the bounce holds n ≤ 64 lines of PB elements.
                unsafe { $transpose(&src[c0..], PB, n, c, bp.cast(), PB) };
                // SAFETY: AVX2 detected (KERNELS); the bounce's first n lines were just
                // written; the destination lines of channels c0 .. c0 + n are the caller's,
                // aligned (checked above).
                unsafe { stream_lines(bp, n, dst.add(c0 * plane).cast(), lb) };
            }
            // SAFETY: SSE is baseline on x86_64. Orders the streamed lines before whatever
            // publishes this task's completion to other threads.
            unsafe { _mm_sfence() };
        }
    )*};
}

stream_tiles! {
    stream_tile_f32: f32 => transpose_f32,
    stream_tile_u16: u16 => transpose_u16,
    stream_tile_u8: u8 => transpose_u8,
}

/// Copies `n` lines of 64 bytes from `src` to `dst + i·stride` with non-temporal stores.
///
/// # Safety
/// AVX2; `64·n` bytes readable at `src`; `dst` and `stride` multiples of 32 with every
/// destination line writable.
#[target_feature(enable = "avx2")]
unsafe fn stream_lines(src: *const u8, n: usize, dst: *mut u8, stride: usize) {
    for i in 0..n {
        // SAFETY: line i is readable and its destination writable and aligned (caller).
        unsafe {
            let s = src.add(64 * i).cast::<__m256i>();
            let d = dst.add(i * stride).cast::<__m256i>();
            _mm256_stream_si256(d, _mm256_loadu_si256(s));
            _mm256_stream_si256(d.add(1), _mm256_loadu_si256(s.add(1)));
        }
    }
}

/// `N` rows of 16 bytes at `s + i·ld` (`ld` in elements). A loop over a mutable array: here
/// `array::from_fn` compiles to a loop through a stack array (see `zip_round`).
///
/// # Safety
/// AVX2; those rows readable.
#[inline(always)]
unsafe fn load_rows<T, const N: usize>(s: *const T, ld: usize) -> [__m128i; N] {
    // SAFETY: AVX2 (caller).
    let mut r = [unsafe { _mm_setzero_si128() }; N];
    for (i, v) in r.iter_mut().enumerate() {
        // SAFETY: row i is readable (caller).
        *v = unsafe { _mm_loadu_si128(s.add(i * ld) as *const __m128i) };
    }
    r
}

/// Stores `r[j]` to the 16 bytes at `d + j·ld` (`ld` in elements).
///
/// # Safety
/// AVX2; those rows writable.
#[inline(always)]
unsafe fn store_rows<T, const N: usize>(d: *mut T, ld: usize, r: &[__m128i; N]) {
    for (j, &v) in r.iter().enumerate() {
        // SAFETY: row j is writable (caller).
        unsafe { _mm_storeu_si128(d.add(j * ld) as *mut __m128i, v) };
    }
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
    let r = unsafe { load_rows::<_, 8>(s, src_ld) };
    let r = zip_transpose!(r, _mm_unpacklo_epi16, _mm_unpackhi_epi16, words8);
    // SAFETY: as above.
    unsafe { store_rows(d, dst_ld, &r) }
}

/// Four rounds of "interleave row i with row i+8" transpose a 16x16 byte tile.
///
/// # Safety
/// AVX2; 16 rows of 16 bytes readable at `s + i*src_ld`, writable at `d + j*dst_ld`.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn tile_16x16_u8(s: *const u8, src_ld: usize, d: *mut u8, dst_ld: usize) {
    // SAFETY: the caller guarantees the 16x16 source and destination tiles.
    let r = unsafe { load_rows::<_, 16>(s, src_ld) };
    // SAFETY: as above.
    unsafe { store_rows(d, dst_ld, &transpose_16x16_epi8(r)) }
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
