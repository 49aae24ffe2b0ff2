//! x86_64 AVX-512 (F + BW + VL + VNNI) kernels, on top of the AVX2 + VNNI table.
//!
//! Only the hottest families get 512-bit versions: `sample_i8` (64 channels per step with
//! `vpdpbusd`, masked tails), `conv_f32` (MP pixels x 32 outputs in zmm accumulators, masked
//! column tails) and `sample_f32_nchw` (16x16 register transposes, whole-line, optionally
//! non-temporal stores), and the f16/int8 NCHW tiles `stream_tile_u16`/`stream_tile_u8` (register
//! transposes straight into whole-line non-temporal stores).
//! Everything else, including the EVEX `vpdpbusd` int8 convolution, comes from
//! `vnni::KERNELS_AVX512VNNI`.
//!
//! Soundness: every intrinsic sits in a `#[target_feature]` function reachable only through
//! `KERNELS`, which is `pub(super)` and handed out by [`super::Backend::kernels`] after
//! AVX2/FMA/F16C and AVX-512 F/BW/VL/VNNI were detected. The safe wrappers `assert!` every slice
//! extent the kernel touches before entering `unsafe` code; masked loads and stores never touch
//! masked-out elements (they cannot fault there).

use super::tiling::ConvF32Args;
use super::x86_loops::{self, ConvF32, F32Fma, Lanes};
use super::{Backend, Kernels, Tap, TapQ11};
use core::arch::x86_64::*;

pub(super) static KERNELS: Kernels = Kernels {
    backend: Backend::Avx512,
    conv_f32,
    sample_i8,
    sample_f32_nchw: Some(sample_f32_nchw),
    stream_tile_u16: Some(stream_tile_u16),
    stream_tile_u8: Some(stream_tile_u8),
    ..super::vnni::KERNELS_AVX512VNNI
};

// ---------------------------------------------------------------------------------------------
// sample_i8: per 64 channels, the corners' bytes are interleaved into dwords (q00, q01, q10, q11)
// (two unpack rounds, per 128-bit lane) and `vpdpbusd` multiplies them by the tap's Q14 weight
// bytes: Σ whi·q first (started at 32, so that << 8 adds the 2^13 rounding term), then << 8 and
// Σ wlo·q on top, which is exactly 2^13 + Σ w·q; an arithmetic shift by 14 finishes. The two
// pack rounds undo the interleave, so channels come out in order.

fn sample_i8(src: &[i8], taps: &[TapQ11], cpg: usize, out: &mut [i8]) {
    if x86_loops::check_sample_out(taps.len(), cpg, out.len()) {
        // SAFETY: AVX-512 F/BW/VL/VNNI detected (KERNELS); the kernel checks every tap's reads
        // against src.len() before making them, and out holds taps·cpg bytes (checked).
        unsafe { sample_i8_avx512(src.as_ptr(), src.len(), taps, cpg, out.as_mut_ptr()) }
    }
}

/// How far ahead of the current tap the output is prefetched for writing: each tap stores a
/// fresh 64-byte line, and without the hint the store waits for that line's read-for-ownership.
/// (+11% on the reference shape with 2 threads; 512 to 4096 bytes all measure about the same.)
const WRITE_AHEAD: usize = 512;

/// # Safety
/// AVX-512 F/BW/VL/VNNI; `src .. + len` readable; `out .. + taps.len()·cpg` writable.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2")]
unsafe fn sample_i8_avx512(src: *const i8, len: usize, taps: &[TapQ11], cpg: usize, out: *mut i8) {
    let full = cpg / 64;
    let rem = cpg % 64;
    let tail: __mmask64 = if rem == 0 { 0 } else { (1u64 << rem) - 1 };
    for (n, t) in taps.iter().enumerate() {
        t.check_reads(cpg, len);
        let wlo = _mm512_set1_epi32(i32::from_le_bytes(t.wlo));
        let whi = _mm512_set1_epi32(i32::from_le_bytes(t.whi));
        // SAFETY: check_reads keeps the four runs inside src; the output run n·cpg .. + cpg is
        // inside out (caller).
        unsafe {
            let ps = x86_loops::corners(src, t.base, t.dx, t.dy);
            let o = out.add(n * cpg);
            // Prefetching never faults, so running past the end of the output is harmless.
            _mm_prefetch::<_MM_HINT_ET0>(o.wrapping_add(WRITE_AHEAD) as *const i8);
            for i in 0..full {
                let r = blend64::<false>(ps, 64 * i, wlo, whi, !0);
                _mm512_storeu_si512(o.add(64 * i) as *mut __m512i, r);
            }
            if rem != 0 {
                let r = blend64::<true>(ps, 64 * full, wlo, whi, tail);
                _mm512_mask_storeu_epi8(o.add(64 * full), tail, r);
            }
        }
    }
}

/// 64 channels (the masked-in ones when `MASKED`; the rest are zero) of the Q14 blend.
///
/// # Safety
/// `ps[i] + c + j` readable for every channel `j < 64` selected by `mask` (all 64 when not
/// `MASKED`).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2")]
unsafe fn blend64<const MASKED: bool>(
    ps: [*const i8; 4],
    c: usize,
    wlo: __m512i,
    whi: __m512i,
    mask: __mmask64,
) -> __m512i {
    // SAFETY: the caller guarantees the selected bytes at each ps[i] + c are readable;
    // masked-out bytes are not read.
    let ld = |p: *const i8| unsafe {
        if MASKED {
            _mm512_maskz_loadu_epi8(mask, p.add(c))
        } else {
            _mm512_loadu_si512(p.add(c) as *const __m512i)
        }
    };
    let (a, b, cc, d) = (ld(ps[0]), ld(ps[1]), ld(ps[2]), ld(ps[3]));
    let (ab_lo, ab_hi) = (_mm512_unpacklo_epi8(a, b), _mm512_unpackhi_epi8(a, b));
    let (cd_lo, cd_hi) = (_mm512_unpacklo_epi8(cc, d), _mm512_unpackhi_epi8(cc, d));
    let start = _mm512_set1_epi32(32);
    let blend = |x: __m512i| {
        let hi = _mm512_dpbusd_epi32(start, whi, x);
        _mm512_srai_epi32::<14>(_mm512_dpbusd_epi32(_mm512_slli_epi32::<8>(hi), wlo, x))
    };
    // Per lane k: the four interleaves hold channels 16k + {0-3, 4-7, 8-11, 12-15}.
    let r0 = blend(_mm512_unpacklo_epi16(ab_lo, cd_lo));
    let r1 = blend(_mm512_unpackhi_epi16(ab_lo, cd_lo));
    let r2 = blend(_mm512_unpacklo_epi16(ab_hi, cd_hi));
    let r3 = blend(_mm512_unpackhi_epi16(ab_hi, cd_hi));
    // Results lie in [-128, 127], so the saturating packs are exact.
    _mm512_packs_epi16(_mm512_packs_epi32(r0, r1), _mm512_packs_epi32(r2, r3))
}

// ---------------------------------------------------------------------------------------------
// sample_f32_nchw: per group, super-blocks of SB_BLOCKS blocks of 16 output pixels (a block is
// one 64-byte line of each channel plane). The blocks' tap weights and corner offsets are
// prepared once (vectorised, `prep16`); then for every 16-channel chunk each block's 16 pixels
// are sampled as NHWC zmm vectors, transposed 16x16 in registers and stored as whole lines, one
// per channel plane. The source lines a super-block reads stay in L1 across its chunks.
// When streaming (see [`stream_head`]), every full block after the head is 64-byte aligned
// and written with non-temporal stores: no read-for-ownership, no output in the caches.

/// 16-pixel blocks per super-block: their taps are prepared together, then each channel chunk
/// sweeps them, so 16 channel planes get 4-line runs before the next chunk (fewer concurrent
/// write streams than one block at a time; 4 measured best of 1–16).
const SB_BLOCKS: usize = 4;

/// Output bytes per call from which the fused f32 NCHW kernel uses non-temporal stores. A call
/// covers the `s` output rows of one low-res row, so the whole output is then ~H times larger
/// and far outgrows the caches: writing whole lines without reading them first wins (measured
/// ~10–15% on 256x120x120, x2).
const STREAM_MIN_BYTES: usize = 128 << 10;

/// Pixels before the first 64-byte boundary of `dst` (elements of `size` bytes), if every
/// channel row (`plane` apart) has the same alignment; `None` means: do not stream.
fn stream_head(
    dst: usize,
    plane: usize,
    size: usize,
    bytes: usize,
    stream_min: usize,
) -> Option<usize> {
    if bytes < stream_min || !(plane * size).is_multiple_of(64) || !dst.is_multiple_of(size) {
        return None;
    }
    Some(((64 - dst % 64) % 64) / size)
}

/// # Safety
/// See [`super::SampleNchw`].
unsafe fn sample_f32_nchw(
    src: &[f32],
    taps: &[Tap],
    g: usize,
    cpg: usize,
    dst: *mut f32,
    plane: usize,
) {
    // SAFETY: forwarded contract.
    unsafe { sample_f32_nchw_with(src, taps, g, cpg, dst, plane, STREAM_MIN_BYTES) }
}

/// [`sample_f32_nchw`] with the streaming threshold as a parameter (tests force both paths).
///
/// # Safety
/// See [`super::SampleNchw`].
pub(super) unsafe fn sample_f32_nchw_with(
    src: &[f32],
    taps: &[Tap],
    g: usize,
    cpg: usize,
    dst: *mut f32,
    plane: usize,
    stream_min: usize,
) {
    let npx = taps.len().checked_div(g).unwrap_or(0);
    if npx == 0 || cpg == 0 {
        return;
    }
    let taps = &taps[..npx * g];
    let m = taps
        .iter()
        .map(|t| t.base as usize + t.dx as usize + t.dy as usize)
        .max()
        .unwrap_or(0);
    assert!(m + cpg <= src.len(), "sample_f32_nchw: tap reads past src");
    // The gathers of `prep16` index taps with i32 word offsets up to 15·5·g.
    assert!(g < 1 << 24, "sample_f32_nchw: too many groups");
    let bytes = npx.saturating_mul(g).saturating_mul(cpg).saturating_mul(4);
    let head = stream_head(dst as usize, plane, 4, bytes, stream_min);
    // SAFETY: AVX-512F + FMA detected (KERNELS); every tap's four corner runs of cpg lie in src
    // (asserted above, offsets non-negative); the writes are the contract's (q·cpg + c)·plane + X.
    unsafe { sample_f32_nchw_avx512(src.as_ptr(), taps, g, cpg, npx, dst, plane, head) }
}

/// # Safety
/// AVX-512F + FMA; `taps.len() == npx·g`, every tap's corners `.. + cpg` readable in `src`,
/// `dst` writable as in [`super::SampleNchw`]; `head` from [`stream_head`] for this `dst`.
#[target_feature(enable = "avx512f,avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn sample_f32_nchw_avx512(
    src: *const f32,
    taps: &[Tap],
    g: usize,
    cpg: usize,
    npx: usize,
    dst: *mut f32,
    plane: usize,
    head: Option<usize>,
) {
    let stream = head.is_some();
    // Pixels before the first aligned line (< 16); 0 when not streaming.
    let head = head.unwrap_or(0).min(npx);
    let cmask = ((1u32 << (cpg % 16)) - 1) as __mmask16;
    // Weights, corner offsets and (x, n) of the blocks of one super-block.
    let mut w = [[[0f32; 16]; 4]; SB_BLOCKS];
    let mut o = [[[0usize; 16]; 4]; SB_BLOCKS];
    let mut blk = [(0usize, 0usize); SB_BLOCKS];
    for q in 0..g {
        let mut x = 0;
        while x < npx {
            let mut nb = 0;
            while nb < SB_BLOCKS && x < npx {
                let n = if x < head {
                    head - x
                } else {
                    (npx - x).min(16)
                };
                // SAFETY: taps (x + k)·g + q for k < n are in `taps` (x + n ≤ npx).
                unsafe { prep16(taps.as_ptr().add(x * g + q), g, n, &mut w[nb], &mut o[nb]) };
                blk[nb] = (x, n);
                x += n;
                nb += 1;
            }
            for c in (0..cpg).step_by(16) {
                for (b, &(x, n)) in blk[..nb].iter().enumerate() {
                    let rows = dst.wrapping_add(q * cpg * plane + x);
                    // Full blocks after the head start on a line boundary when streaming.
                    let nt = stream && n == 16 && x >= head;
                    let pmask = ((1u32 << n) - 1) as __mmask16;
                    // SAFETY: channels c .. min(c + 16, cpg) of each corner run are in src
                    // (caller); the stores hit channels q·cpg + c + j, pixels x .. x + n: the
                    // contract's writes. Masked-out channels are neither read nor written.
                    unsafe {
                        if c + 16 <= cpg {
                            chunk16::<false>(src, &w[b], &o[b], c, !0, rows, plane, n, pmask, nt)
                        } else {
                            chunk16::<true>(src, &w[b], &o[b], c, cmask, rows, plane, n, pmask, nt)
                        }
                    }
                }
            }
        }
    }
    if stream {
        _mm_sfence();
    }
}

/// Bilinear weights `w[i][k]` and corner offsets `o[i][k]` (corners 00, 01, 10, 11) of the taps
/// `t[k·g]`, `k < 16`; lanes `k ≥ n` repeat tap `n − 1` (computed, never stored). Same
/// arithmetic as the scalar weights, so the same values.
///
/// # Safety
/// AVX-512F; `t[k·g]` readable for `k < n`, `1 ≤ n ≤ 16`, `15·5·g < 2^31`.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn prep16(
    t: *const Tap,
    g: usize,
    n: usize,
    w: &mut [[f32; 16]; 4],
    o: &mut [[usize; 16]; 4],
) {
    // Tap k starts 5·g·k u32 words after t (Tap is 5 u32-sized fields, repr(C)).
    let lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    let k = _mm512_min_epi32(lane, _mm512_set1_epi32(n as i32 - 1));
    let idx = _mm512_mullo_epi32(k, _mm512_set1_epi32(5 * g as i32));
    let p = t as *const i32;
    // SAFETY: every index names a field of a tap k < n (caller).
    let (b, dx, dy, fx, fy) = unsafe {
        (
            _mm512_i32gather_epi32::<4>(idx, p),
            _mm512_i32gather_epi32::<4>(idx, p.add(1)),
            _mm512_i32gather_epi32::<4>(idx, p.add(2)),
            _mm512_i32gather_ps::<4>(idx, p.add(3) as *const f32),
            _mm512_i32gather_ps::<4>(idx, p.add(4) as *const f32),
        )
    };
    let one = _mm512_set1_ps(1.0);
    let (gx, gy) = (_mm512_sub_ps(one, fx), _mm512_sub_ps(one, fy));
    let ws = [
        _mm512_mul_ps(gx, gy),
        _mm512_mul_ps(fx, gy),
        _mm512_mul_ps(gx, fy),
        _mm512_mul_ps(fx, fy),
    ];
    for (d, v) in w.iter_mut().zip(ws) {
        // SAFETY: d holds 16 floats.
        unsafe { _mm512_storeu_ps(d.as_mut_ptr(), v) };
    }
    // Widen to u64 before adding, so base + dx + dy cannot wrap; lanes 0..8, then 8..16.
    let halves = [
        (
            _mm512_castsi512_si256(b),
            _mm512_castsi512_si256(dx),
            _mm512_castsi512_si256(dy),
        ),
        (
            _mm512_extracti64x4_epi64::<1>(b),
            _mm512_extracti64x4_epi64::<1>(dx),
            _mm512_extracti64x4_epi64::<1>(dy),
        ),
    ];
    for (h, (b, dx, dy)) in halves.into_iter().enumerate() {
        let (b, dx, dy) = (
            _mm512_cvtepu32_epi64(b),
            _mm512_cvtepu32_epi64(dx),
            _mm512_cvtepu32_epi64(dy),
        );
        let bx = _mm512_add_epi64(b, dx);
        let os = [b, bx, _mm512_add_epi64(b, dy), _mm512_add_epi64(bx, dy)];
        for (d, v) in o.iter_mut().zip(os) {
            // SAFETY: d[8h .. 8h + 8] is inside the 16 usizes (usize is 64-bit on x86_64).
            unsafe { _mm512_storeu_epi64(d.as_mut_ptr().add(8 * h) as *mut i64, v) };
        }
    }
}

/// Samples channels `c .. c + 16` (those in `cmask` when `MASKED`) of the block's 16 pixels and
/// stores channel `c + j` to `rows + (c + j)·plane`, pixels `0 .. n` (all 16 when `n == 16`).
///
/// # Safety
/// AVX-512F + FMA; `src + o[i][k] + c + l` readable for each selected channel `l`; the stores
/// writable; `nt` only when `n == 16` and every `rows + (c + j)·plane` is 64-byte aligned.
#[inline]
#[target_feature(enable = "avx512f,avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn chunk16<const MASKED: bool>(
    src: *const f32,
    w: &[[f32; 16]; 4],
    o: &[[usize; 16]; 4],
    c: usize,
    cmask: __mmask16,
    rows: *mut f32,
    plane: usize,
    n: usize,
    pmask: __mmask16,
    nt: bool,
) {
    let s = |k: usize| {
        // SAFETY: the selected channels of each corner run are readable (caller); masked-out
        // lanes are not accessed.
        unsafe {
            let ld = |i: usize| {
                let p = src.add(o[i][k] + c);
                if MASKED {
                    _mm512_maskz_loadu_ps(cmask, p)
                } else {
                    _mm512_loadu_ps(p)
                }
            };
            let r = _mm512_mul_ps(ld(0), _mm512_set1_ps(w[0][k]));
            let r = _mm512_fmadd_ps(ld(1), _mm512_set1_ps(w[1][k]), r);
            let r = _mm512_fmadd_ps(ld(2), _mm512_set1_ps(w[2][k]), r);
            _mm512_fmadd_ps(ld(3), _mm512_set1_ps(w[3][k]), r)
        }
    };
    // Spelled out: `array::from_fn` compiles to a loop through a stack array here.
    #[rustfmt::skip]
    let v = [
        s(0), s(1), s(2), s(3), s(4), s(5), s(6), s(7),
        s(8), s(9), s(10), s(11), s(12), s(13), s(14), s(15),
    ];
    let t = transpose_16x16_ps(v);
    let nc = if MASKED {
        cmask.count_ones() as usize
    } else {
        16
    };
    for (j, &tv) in t.iter().enumerate().take(nc) {
        // SAFETY: channel row c + j, pixels 0 .. n: writable (caller); aligned when nt.
        unsafe {
            let d = rows.add((c + j) * plane);
            if nt {
                _mm512_stream_ps(d, tv);
            } else if n == 16 {
                _mm512_storeu_ps(d, tv);
            } else {
                _mm512_mask_storeu_ps(d, pmask, tv);
            }
        }
    }
}

/// 16x16 f32 transpose in registers: `o[j]` lane `i` = `r[i]` lane `j`.
#[inline]
#[target_feature(enable = "avx512f")]
fn transpose_16x16_ps(r: [__m512; 16]) -> [__m512; 16] {
    // t[2i], t[2i+1]: rows 2i, 2i+1 interleaved (columns 4L, 4L+1 / 4L+2, 4L+3 of lane L).
    let t: [__m512; 16] = core::array::from_fn(|i| {
        let (a, b) = (r[i & !1], r[i | 1]);
        if i % 2 == 0 {
            _mm512_unpacklo_ps(a, b)
        } else {
            _mm512_unpackhi_ps(a, b)
        }
    });
    // u[4b + k], lane L: rows 4b .. 4b + 4 at column 4L + k.
    let u: [__m512; 16] = core::array::from_fn(|i| {
        let (b, k) = (i / 4, i % 4);
        let (x, y) = (t[4 * b + k / 2], t[4 * b + 2 + k / 2]);
        if k % 2 == 0 {
            _mm512_shuffle_ps::<0x44>(x, y)
        } else {
            _mm512_shuffle_ps::<0xEE>(x, y)
        }
    });
    // v[8h + m]: lanes 0, 2 hold column m of rows 8h .. 8h + 8, lanes 1, 3 column m + 8.
    let v: [__m512; 16] = core::array::from_fn(|i| {
        let (h, m) = (i / 8, i % 8);
        let (x, y) = (u[8 * h + m % 4], u[8 * h + 4 + m % 4]);
        if m < 4 {
            _mm512_shuffle_f32x4::<0x88>(x, y)
        } else {
            _mm512_shuffle_f32x4::<0xDD>(x, y)
        }
    });
    core::array::from_fn(|j| {
        let (x, y) = (v[j % 8], v[8 + j % 8]);
        if j < 8 {
            _mm512_shuffle_f32x4::<0x88>(x, y)
        } else {
            _mm512_shuffle_f32x4::<0xDD>(x, y)
        }
    })
}

// ---------------------------------------------------------------------------------------------
// stream_tile_u16 / stream_tile_u8: a tile of one line of pixels (32 u16 / 64 u8) × c channels
// goes to the planes 32 / 64 channels at a time. Each zmm row holds a pixel's channels, four
// 128-bit lanes of them; per group of 8 (16) pixel rows, the zip rounds of the AVX2 8x8 (16x16)
// tiles transpose every lane at once, so lane k of result j is channel 8k + j (16k + j) of that
// group's pixels. A 4x4 transpose of lanes across the four pixel groups then gives each channel
// its whole 64-byte line, which goes out with one non-temporal store.

/// `[R0, R1, R2, R3]` → for `k < 4`, lane `g` of output `k` = lane `k` of `R_g`.
#[inline]
#[target_feature(enable = "avx512f")]
fn lanes_4x4(r: [__m512i; 4]) -> [__m512i; 4] {
    let a0 = _mm512_shuffle_i64x2::<0x44>(r[0], r[1]);
    let a1 = _mm512_shuffle_i64x2::<0xEE>(r[0], r[1]);
    let a2 = _mm512_shuffle_i64x2::<0x44>(r[2], r[3]);
    let a3 = _mm512_shuffle_i64x2::<0xEE>(r[2], r[3]);
    [
        _mm512_shuffle_i64x2::<0x88>(a0, a2),
        _mm512_shuffle_i64x2::<0xDD>(a0, a2),
        _mm512_shuffle_i64x2::<0x88>(a1, a3),
        _mm512_shuffle_i64x2::<0xDD>(a1, a3),
    ]
}

macro_rules! stream_tile_entry {
    ($name:ident, $leaf:ident, $t:ty, $pb:literal) => {
        /// # Safety
        /// See [`super::StreamTile`].
        unsafe fn $name(src: &[$t], c: usize, dst: *mut $t, plane: usize) {
            let lb = plane * core::mem::size_of::<$t>();
            if super::tiling::check_stream_tile(src.len(), c, $pb, dst as usize, lb) {
                // SAFETY: AVX-512 F/BW detected (KERNELS); src holds the tile (checked); the
                // destination lines are the caller's and 64-byte aligned (checked).
                unsafe { $leaf(src.as_ptr(), c, dst, plane) }
            }
        }
    };
}
stream_tile_entry!(stream_tile_u16, stream_tile_u16_avx512, u16, 32);
stream_tile_entry!(stream_tile_u8, stream_tile_u8_avx512, u8, 64);

/// In-lane 8x8 word transposes of 8 rows (the AVX2 `tile_8x8_u16` rounds on every lane).
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
fn zip_8x8_epi16(r: [__m512i; 8]) -> [__m512i; 8] {
    zip_transpose!(r, _mm512_unpacklo_epi16, _mm512_unpackhi_epi16, words8)
}

/// In-lane 16x16 byte transposes of 16 rows (the AVX2 `tile_16x16_u8` rounds on every lane).
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
fn zip_16x16_epi8(r: [__m512i; 16]) -> [__m512i; 16] {
    zip_transpose!(r, _mm512_unpacklo_epi8, _mm512_unpackhi_epi8, bytes16)
}

/// One `stream_tile` leaf: `$t` elements, `$rows` pixel rows per group (4 groups: one line),
/// `4·$rows` channels per block, `$load` the masked load, `$zip` the in-lane transpose.
macro_rules! stream_tile_leaf {
    ($name:ident: $t:ty, $mask:ty, $load:ident, $zip:ident, $rows:literal) => {
        /// # Safety
        /// AVX-512 F/BW; `4·$rows·c` elements readable at `src`; for `ch < c`, the 64 bytes at
        /// `dst + ch·plane` writable and 64-byte aligned.
        #[target_feature(enable = "avx512f,avx512bw")]
        unsafe fn $name(src: *const $t, c: usize, dst: *mut $t, plane: usize) {
            const CB: usize = 4 * $rows;
            for c0 in (0..c).step_by(CB) {
                let n = (c - c0).min(CB);
                let m = (u64::MAX >> (64 - n)) as $mask;
                // s[rows·g + j], lane k: channel c0 + rows·k + j of pixels rows·g .. + rows.
                let mut s = [_mm512_setzero_si512(); CB];
                for g in 0..4 {
                    // SAFETY: pixel rows rows·g + i < 4·rows, channels c0 .. c0 + n of each
                    // are in src; masked lanes are not read.
                    let r: [__m512i; $rows] = core::array::from_fn(|i| unsafe {
                        $load(m, src.add(($rows * g + i) * c + c0).cast())
                    });
                    s[$rows * g..$rows * (g + 1)].copy_from_slice(&$zip(r));
                }
                for j in 0..$rows {
                    let o = lanes_4x4([s[j], s[$rows + j], s[2 * $rows + j], s[3 * $rows + j]]);
                    for (k, &v) in o.iter().enumerate() {
                        let ch = $rows * k + j;
                        if ch < n {
                            // SAFETY: channel c0 + ch < c: its line is the caller's, aligned.
                            unsafe { _mm512_stream_si512(dst.add((c0 + ch) * plane).cast(), v) };
                        }
                    }
                }
            }
            _mm_sfence();
        }
    };
}
stream_tile_leaf!(stream_tile_u16_avx512: u16, __mmask32, _mm512_maskz_loadu_epi16, zip_8x8_epi16, 8);
stream_tile_leaf!(stream_tile_u8_avx512: u8, __mmask64, _mm512_maskz_loadu_epi8, zip_16x16_epi8, 16);

// ---------------------------------------------------------------------------------------------
// conv_f32: MP pixels x NV·16 outputs in zmm accumulators, broadcast x (embedded {1to16}),
// FMA with packed weight rows; the last 16-column block is masked when o_n % 16 ≠ 0. The loops
// are `x86_loops::conv_f32`; this module gives the zmm operations.

// SAFETY (every method): called only from `conv_f32_avx512`, which enables AVX-512F + FMA; the
// masked forms touch only the selected lanes (`_mm512_maskz_loadu_ps`/`_mm512_mask_storeu_ps`
// do not access, and cannot fault on, masked-out elements).
impl Lanes for __m512 {
    type Elem = f32;
    type Mask = __mmask16;
    const LANES: usize = 16;
    #[inline(always)]
    unsafe fn mask(n: usize) -> __mmask16 {
        ((1u32 << n.min(16)) - 1) as __mmask16
    }
    #[inline(always)]
    unsafe fn zero() -> Self {
        unsafe { _mm512_setzero_ps() }
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        unsafe { _mm512_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn load_masked(p: *const f32, m: __mmask16) -> Self {
        unsafe { _mm512_maskz_loadu_ps(m, p) }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: Self) {
        unsafe { _mm512_storeu_ps(p, v) }
    }
    #[inline(always)]
    unsafe fn store_masked(p: *mut f32, m: __mmask16, v: Self) {
        unsafe { _mm512_mask_storeu_ps(p, m, v) }
    }
}

impl F32Fma for __m512 {
    #[inline(always)]
    unsafe fn splat(v: f32) -> Self {
        unsafe { _mm512_set1_ps(v) }
    }
    #[inline(always)]
    unsafe fn fma(a: Self, b: Self, c: Self) -> Self {
        unsafe { _mm512_fmadd_ps(a, b, c) }
    }
}

conv_f32_entry!(conv_f32 => conv_f32_avx512, "AVX-512F+FMA were detected before KERNELS was handed out");

/// Tiles of 12 pixels x 32 outputs, 8 x 16 for the last columns: ≤ 24 accumulators of 32 zmm.
///
/// # Safety
/// AVX-512F + FMA; `a` from [`check_conv_f32`](super::tiling::check_conv_f32), its slices still borrowed.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
unsafe fn conv_f32_avx512(a: &ConvF32Args) {
    // SAFETY: the features are enabled here; the extents are the caller's.
    unsafe { ConvF32::<__m512>::of(a).run::<12, 8>() }
}

#[cfg(test)]
mod tests {
    //! The AVX-512 table through the whole suite, then its own kernels' edge cases.
    table_tests!(Avx512);

    use super::super::checks::check_conv_f32;
    use super::super::{scalar, Backend, Kernels, Tap, TapQ11};
    use core::arch::x86_64::*;
    use proptest::prelude::*;
    use rand::{rngs::StdRng, Rng, SeedableRng};

    fn table() -> Option<&'static Kernels> {
        super::super::checks::table(Backend::Avx512)
    }

    /// Random taps inside a `src_len` buffer of `c`-channel pixels, `w` per row; every fifth
    /// tap sits at the very end of the buffer (last pixel, clamped: dx = dy = 0).
    fn taps(
        rng: &mut StdRng,
        n: usize,
        pixels: usize,
        c: usize,
        w: usize,
        cpg: usize,
    ) -> Vec<TapQ11> {
        let g = c / cpg;
        (0..n)
            .map(|i| {
                let q = rng.gen_range(0..g);
                if i % 5 == 4 {
                    return TapQ11::new(
                        ((pixels - 1) * c + (g - 1) * cpg) as u32,
                        0,
                        0,
                        rng.gen_range(0..=2048),
                        rng.gen_range(0..=2048),
                    );
                }
                let p = rng.gen_range(0..pixels);
                let (px, py) = (p % w, p / w);
                let h = pixels / w;
                let dx = if px + 1 < w { c } else { 0 };
                let dy = if py + 1 < h { w * c } else { 0 };
                TapQ11::new(
                    (p * c + q * cpg) as u32,
                    dx as u32,
                    dy as u32,
                    [0, 2048, rng.gen_range(0..=2048)][rng.gen_range(0..3)],
                    [0, 2048, rng.gen_range(0..=2048)][rng.gen_range(0..3)],
                )
            })
            .collect()
    }

    fn check_sample_i8(k: &Kernels, g: usize, cpg: usize, w: usize, h: usize, n: usize, seed: u64) {
        let mut rng = StdRng::seed_from_u64(seed);
        let c = g * cpg;
        let src: Vec<i8> = (0..w * h * c)
            .map(|i| match i % 7 {
                0 => -128,
                1 => 127,
                _ => rng.gen(),
            })
            .collect();
        let t = taps(&mut rng, n, w * h, c, w, cpg);
        let mut want = vec![0x55i8; n * cpg + 3];
        let mut got = want.clone();
        scalar::sample_i8(&src, &t, cpg, &mut want);
        (k.sample_i8)(&src, &t, cpg, &mut got);
        assert_eq!(got, want, "sample_i8 g={g} cpg={cpg} n={n}");
    }

    /// `sample_f32_nchw` (streaming forced on or off) against the scalar reference: `npx`
    /// pixels of `g` groups into planes `plane` apart, starting `skew` floats into the buffer;
    /// `plane_pad` ≠ 0 misaligns the planes, which rules streaming out. Writes anywhere but the
    /// contract's elements are caught by the 7.5 sentinels.
    fn check_nchw_f32(
        g: usize,
        cpg: usize,
        npx: usize,
        skew: usize,
        plane_pad: usize,
        stream: bool,
        seed: u64,
    ) {
        if table().is_none() {
            return;
        }
        let mut rng = StdRng::seed_from_u64(seed);
        let len = g * cpg * 3 + cpg;
        let src: Vec<f32> = (0..len).map(|_| rng.gen_range(-4.0..4.0)).collect();
        let room = len - cpg;
        let taps: Vec<Tap> = (0..npx * g)
            .map(|i| {
                let dx = rng.gen_range(0..=room / 2);
                let dy = rng.gen_range(0..=room - dx);
                // Every fifth tap reads the last cpg-run of src.
                let base = if i % 5 == 0 {
                    room - dx - dy
                } else {
                    rng.gen_range(0..=room - dx - dy)
                };
                let pick = |r: &mut StdRng| [0.0, 1.0, r.gen_range(0.0..1.0)][r.gen_range(0..3)];
                Tap {
                    base: base as u32,
                    dx: dx as u32,
                    dy: dy as u32,
                    fx: pick(&mut rng),
                    fy: pick(&mut rng),
                }
            })
            .collect();
        let plane = (npx + skew).div_ceil(16) * 16 + 64 + plane_pad;
        let total = g * cpg * plane + 64;
        let sm = if stream { 0 } else { usize::MAX };
        let (mut want, mut got) = (vec![7.5f32; total], vec![7.5f32; total]);
        // SAFETY: every write (q·cpg + c)·plane + skew + X < g·cpg·plane + 64; single-threaded.
        unsafe {
            scalar::sample_f32_nchw(&src, &taps, g, cpg, want.as_mut_ptr().add(skew), plane);
            super::sample_f32_nchw_with(&src, &taps, g, cpg, got.as_mut_ptr().add(skew), plane, sm);
        }
        // Values are convex combinations of src (|v| ≤ 4): 1e-5 relative to that bound.
        for (i, (a, b)) in got.iter().zip(&want).enumerate() {
            assert!(
                (a - b).abs() <= 4e-5,
                "sample_f32_nchw g={g} cpg={cpg} npx={npx} skew={skew} pad={plane_pad} \
                 stream={stream}: [{i}] got {a}, want {b}"
            );
            assert_eq!(
                *a == 7.5,
                *b == 7.5,
                "sample_f32_nchw wrote elsewhere at [{i}]"
            );
        }
    }

    #[test]
    fn transpose_16x16_moves_every_lane() {
        let Some(_) = table() else { return };
        // SAFETY: AVX-512F detected (table() is Some).
        let (r, t) = unsafe {
            let r: [__m512; 16] = core::array::from_fn(|i| {
                _mm512_loadu_ps(
                    core::array::from_fn::<f32, 16, _>(|j| (16 * i + j) as f32).as_ptr(),
                )
            });
            (r, super::transpose_16x16_ps(r))
        };
        let lanes = |v: __m512| {
            let mut a = [0f32; 16];
            // SAFETY: a holds 16 floats; AVX-512F detected.
            unsafe { _mm512_storeu_ps(a.as_mut_ptr(), v) };
            a
        };
        for i in 0..16 {
            for j in 0..16 {
                assert_eq!(lanes(t[j])[i], lanes(r[i])[j], "row {i} col {j}");
            }
        }
    }

    #[test]
    fn nchw_f32_edge_shapes() {
        // The reference shape's row (g = 4, cpg = 64, 480 pixels), both store paths, every
        // alignment of the row start, and cpg around the 16-channel chunk.
        for skew in 0..17 {
            check_nchw_f32(4, 64, 480, skew, 0, true, skew as u64);
            check_nchw_f32(4, 64, 480, skew, 0, false, skew as u64);
        }
        for cpg in [1, 15, 16, 17, 31, 32, 33, 63, 65] {
            for npx in [1, 15, 16, 17, 63, 64, 65, 129] {
                check_nchw_f32(3, cpg, npx, 5, 0, true, (cpg * 1000 + npx) as u64);
                check_nchw_f32(2, cpg, npx, 0, 1, true, (cpg * 1000 + npx) as u64);
            }
        }
    }

    #[test]
    fn hot_and_edge_shapes() {
        let Some(k) = table() else { return };
        assert_eq!(k.backend, Backend::Avx512);
        check_sample_i8(k, 4, 64, 12, 5, 300, 1);
        check_conv_f32(k, 120, 256, 32, 0, true, 2);
        for cpg in [1, 15, 16, 17, 31, 32, 33, 63, 64, 65, 70, 127, 128, 129] {
            check_sample_i8(k, 3, cpg, 3, 2, 40, cpg as u64);
        }

        for o_n in 1..40 {
            for npix in 0..9 {
                check_conv_f32(
                    k,
                    npix,
                    5 + o_n % 3,
                    o_n,
                    o_n % 2,
                    npix % 2 == 0,
                    (o_n * 10 + npix) as u64,
                );
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 128, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn sample_i8_is_bit_exact(g in 1usize..5, cpg in 1usize..70, w in 1usize..6, h in 1usize..4, n in 0usize..40, seed in any::<u64>()) {
            if let Some(k) = table() {
                check_sample_i8(k, g, cpg, w, h, n, seed);
            }
        }

        #[test]
        fn nchw_f32_matches_scalar(g in 1usize..9, cpg in 1usize..70, npx in 0usize..300,
                                   skew in 0usize..70, plane_pad in 0usize..3,
                                   stream in any::<bool>(), seed in any::<u64>()) {
            check_nchw_f32(g, cpg, npx, skew, plane_pad, stream, seed);
        }

        #[test]
        fn conv_f32_matches_scalar(cin in 0usize..70, o_n in 1usize..40, npix in 0usize..30, pad in 0usize..3, bias in any::<bool>(), seed in any::<u64>()) {
            if let Some(k) = table() {
                check_conv_f32(k, npix, cin, o_n, pad, bias, seed);
            }
        }
    }
}

#[cfg(test)]
mod microbench {
    use super::super::{pack_conv_f32, Backend, ConvIn, TapQ11};
    use std::time::Instant;

    /// `cargo test --release -p dysample --lib microbench -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn conv_f32_and_sample_i8() {
        let (Ok(a), Ok(b)) = (Backend::Avx2Vnni.kernels(), Backend::Avx512.kernels()) else {
            return;
        };
        let (cin, o_n, npix) = (256, 32, 120);
        let x: Vec<f32> = (0..cin * npix).map(|i| (i % 13) as f32 * 0.1).collect();
        let wt = pack_conv_f32(&vec![0.01; cin * o_n], o_n, cin);
        let bias = vec![0.5; o_n];
        let mut out = vec![0.0; npix * o_n];
        let src: Vec<i8> = (0..256 * 240).map(|i| (i % 251) as i8).collect();
        let taps: Vec<TapQ11> = (0..4 * 240)
            .map(|i| TapQ11::new(((i % 239) * 256 + (i % 4) * 64) as u32, 256, 0, 700, 1300))
            .collect();
        let mut outq = vec![0i8; taps.len() * 64];
        for round in 0..3 {
            for k in [a, b] {
                let t = Instant::now();
                for _ in 0..2000 {
                    (k.conv_f32)(
                        ConvIn::new(&x, cin, npix, cin),
                        &wt,
                        Some(&bias),
                        o_n,
                        &mut out,
                    );
                }
                let c = t.elapsed().as_secs_f64() / 2000.0 * 1e6;
                let t = Instant::now();
                for _ in 0..2000 {
                    (k.sample_i8)(&src, &taps, 64, &mut outq);
                }
                let s = t.elapsed().as_secs_f64() / 2000.0 * 1e6;
                eprintln!(
                    "round {round} {}: conv_f32 {c:.2} us, sample_i8 {s:.2} us",
                    k.backend
                );
            }
        }
    }
}
