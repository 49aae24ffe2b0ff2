//! x86_64 AVX-512 (F + BW + VL + VNNI) kernels, on top of the AVX2 + VNNI table.
//!
//! Only the hottest families get 512-bit versions: `sample_i8` (64 channels per step with
//! `vpdpbusd`, masked tails) and `conv_f32` (MP pixels x 32 outputs in zmm accumulators,
//! masked column tails).
//! Everything else, including the EVEX `vpdpbusd` int8 convolution, comes from
//! `vnni::KERNELS_AVX512VNNI`.
//!
//! Soundness: every intrinsic sits in a `#[target_feature]` function reachable only through
//! `KERNELS`, which is `pub(super)` and handed out by [`super::Backend::kernels`] after
//! AVX2/FMA/F16C and AVX-512 F/BW/VL/VNNI were detected. The safe wrappers `assert!` every slice
//! extent the kernel touches before entering `unsafe` code; masked loads and stores never touch
//! masked-out elements (they cannot fault there).

use super::{Backend, Kernels, TapQ11};
use core::arch::x86_64::*;
use core::ptr;

pub(super) static KERNELS: Kernels = Kernels {
    backend: Backend::Avx512,
    conv_f32,
    sample_i8,
    ..super::vnni::KERNELS_AVX512VNNI
};

/// `(n - 1) * ld + len`, panicking on overflow.
fn extent(n: usize, ld: usize, len: usize) -> usize {
    if n == 0 {
        return 0;
    }
    (n - 1)
        .checked_mul(ld)
        .and_then(|v| v.checked_add(len))
        .expect("kernel extent overflows usize")
}

// ---------------------------------------------------------------------------------------------
// sample_i8: per 64 channels, the corners' bytes are interleaved into dwords (q00, q01, q10, q11)
// (two unpack rounds, per 128-bit lane) and `vpdpbusd` multiplies them by the tap's Q14 weight
// bytes: Σ whi·q first (started at 32, so that << 8 adds the 2^13 rounding term), then << 8 and
// Σ wlo·q on top, which is exactly 2^13 + Σ w·q; an arithmetic shift by 14 finishes. The two
// pack rounds undo the interleave, so channels come out in order.

fn sample_i8(src: &[i8], taps: &[TapQ11], cpg: usize, out: &mut [i8]) {
    if cpg == 0 || taps.is_empty() {
        return;
    }
    let olen = taps
        .len()
        .checked_mul(cpg)
        .expect("sample_i8: output overflows");
    assert!(out.len() >= olen, "sample_i8: out too short");
    // SAFETY: AVX-512 F/BW/VL/VNNI detected (KERNELS); the kernel checks every tap's reads
    // against src.len() before making them, and out holds taps·cpg bytes (asserted above).
    unsafe { sample_i8_avx512(src.as_ptr(), src.len(), taps, cpg, out.as_mut_ptr()) }
}

/// How far ahead of the current tap the output is prefetched for writing: each tap stores a
/// fresh 64-byte line, and without the hint the store waits for that line's read-for-ownership.
/// (+11% on the reference shape with 2 threads; 512 to 4096 bytes all measure about the same.)
const WRITE_AHEAD: usize = 512;

/// Panics unless the four runs of `cpg` bytes of tap `t` lie in a source of `len` bytes.
/// (Checked inside the loop, where the sums are needed anyway: a separate pass over the taps
/// cost ~5% of the layer.)
#[inline(always)]
fn check_tap(t: &TapQ11, cpg: usize, len: usize) {
    let end = t.base as usize + t.dx as usize + t.dy as usize + cpg;
    assert!(end <= len, "sample_i8: tap reads past src");
}

/// # Safety
/// AVX-512 F/BW/VL/VNNI; `src .. + len` readable; `out .. + taps.len()·cpg` writable.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2")]
unsafe fn sample_i8_avx512(src: *const i8, len: usize, taps: &[TapQ11], cpg: usize, out: *mut i8) {
    let full = cpg / 64;
    let rem = cpg % 64;
    let tail: __mmask64 = if rem == 0 { 0 } else { (1u64 << rem) - 1 };
    for (n, t) in taps.iter().enumerate() {
        check_tap(t, cpg, len);
        let wlo = _mm512_set1_epi32(i32::from_le_bytes(t.wlo));
        let whi = _mm512_set1_epi32(i32::from_le_bytes(t.whi));
        // SAFETY: check_tap keeps the four runs inside src; the output run n·cpg .. + cpg is
        // inside out (caller).
        unsafe {
            let p00 = src.add(t.base as usize);
            let p01 = p00.add(t.dx as usize);
            let p10 = p00.add(t.dy as usize);
            let p11 = p10.add(t.dx as usize);
            let ps = [p00, p01, p10, p11];
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
// conv_f32: MP pixels x NV·16 outputs in zmm accumulators, broadcast x (embedded {1to16}),
// FMA with packed weight rows; the last 16-column block is masked when o_n % 16 ≠ 0.

#[allow(clippy::too_many_arguments)]
fn conv_f32(
    x: &[f32],
    ldx: usize,
    npix: usize,
    cin: usize,
    wt: &[f32],
    bias: Option<&[f32]>,
    o_n: usize,
    out: &mut [f32],
) {
    if npix == 0 || o_n == 0 {
        return;
    }
    assert!(x.len() >= extent(npix, ldx, cin), "conv_f32: x too short");
    let wlen = cin.checked_mul(o_n).expect("conv_f32: weights overflow");
    assert!(wt.len() >= wlen, "conv_f32: wt too short");
    let olen = npix.checked_mul(o_n).expect("conv_f32: output overflows");
    assert!(out.len() >= olen, "conv_f32: out too short");
    let bias = match bias {
        Some(b) => {
            assert!(b.len() >= o_n, "conv_f32: bias too short");
            b.as_ptr()
        }
        None => ptr::null(),
    };
    // SAFETY: AVX-512F + FMA detected before KERNELS was handed out; the asserts above cover
    // every x row, the cin·o_n weights, the o_n biases and the npix·o_n outputs touched.
    unsafe {
        conv_f32_avx512(
            x.as_ptr(),
            ldx,
            npix,
            cin,
            wt.as_ptr(),
            bias,
            o_n,
            out.as_mut_ptr(),
        )
    }
}

/// # Safety
/// AVX-512F + FMA; pointers valid for the extents checked in [`conv_f32`]; `bias` may be null.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn conv_f32_avx512(
    x: *const f32,
    ldx: usize,
    npix: usize,
    cin: usize,
    wt: *const f32,
    bias: *const f32,
    o_n: usize,
    out: *mut f32,
) {
    let bias_at = |o: usize| {
        if bias.is_null() {
            bias
        } else {
            bias.wrapping_add(o)
        }
    };
    let mut o0 = 0;
    // SAFETY (all calls below): each column block [o0, o0 + width) lies inside o_n (the masked
    // block selects only columns < o_n), so its weight, bias and output addresses are inside
    // the extents the caller checked.
    while o0 + 32 <= o_n {
        unsafe {
            conv_f32_cols::<12, 2, false>(
                x,
                ldx,
                npix,
                cin,
                wt.add(o0),
                bias_at(o0),
                o_n,
                out.add(o0),
                !0,
            )
        };
        o0 += 32;
    }
    if o0 + 16 <= o_n {
        // SAFETY: as above: columns o0 .. o0 + 16 ≤ o_n.
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
                !0,
            )
        };
        o0 += 16;
    }
    if o0 < o_n {
        let mask: __mmask16 = ((1u32 << (o_n - o0)) - 1) as __mmask16;
        // SAFETY: as above: the mask selects columns o0 .. o_n only.
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

/// One column block over all pixels: MP-pixel tiles, then tiles of 4, 2, 1.
///
/// # Safety
/// See [`conv_f32_tile`], for every pixel `p < npix`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
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
    mask: __mmask16,
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
        // SAFETY: as above, pixels p .. p + 4 < npix.
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
        // SAFETY: as above, pixels p .. p + 2 < npix.
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
        // SAFETY: as above, pixel p < npix.
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

/// Loads NV vectors of 16 f32; the last one masked (zero elsewhere) when `MASKED`.
///
/// # Safety
/// `p .. p + 16·NV` readable (only the masked-in lanes of the last vector when `MASKED`).
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn load_row<const NV: usize, const MASKED: bool>(
    p: *const f32,
    mask: __mmask16,
) -> [__m512; NV] {
    let mut r = [_mm512_setzero_ps(); NV];
    for (v, rv) in r.iter_mut().enumerate() {
        // SAFETY: inside the range the caller guarantees; masked-out lanes are not accessed.
        *rv = unsafe {
            if MASKED && v + 1 == NV {
                _mm512_maskz_loadu_ps(mask, p.add(16 * v))
            } else {
                _mm512_loadu_ps(p.add(16 * v))
            }
        };
    }
    r
}

/// MP pixels x NV·16 outputs; MP·NV accumulators stay in registers (≤ 16 of 32 zmm).
///
/// # Safety
/// AVX-512F + FMA; `x + p·ldx + k` readable for p < MP, k < cin; `w + k·o_n .. + 16·NV`
/// readable for k < cin (masked-in lanes of the last vector only when `MASKED`); likewise
/// `bias` (or null) readable and `out + p·o_n` writable.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn conv_f32_tile<const MP: usize, const NV: usize, const MASKED: bool>(
    x: *const f32,
    ldx: usize,
    cin: usize,
    w: *const f32,
    bias: *const f32,
    o_n: usize,
    out: *mut f32,
    mask: __mmask16,
) {
    let init = if bias.is_null() {
        [_mm512_setzero_ps(); NV]
    } else {
        // SAFETY: bias is valid for this column block (caller).
        unsafe { load_row::<NV, MASKED>(bias, mask) }
    };
    let mut acc = [init; MP];
    for k in 0..cin {
        // SAFETY: row k of the packed weights, within this column block (caller).
        let wv = unsafe { load_row::<NV, MASKED>(w.add(k * o_n), mask) };
        for (p, accp) in acc.iter_mut().enumerate() {
            // SAFETY: x[p·ldx + k] with p < MP, k < cin is readable (caller).
            let xb = _mm512_set1_ps(unsafe { *x.add(p * ldx + k) });
            for (a, &wvv) in accp.iter_mut().zip(wv.iter()) {
                *a = _mm512_fmadd_ps(xb, wvv, *a);
            }
        }
    }
    for (p, accp) in acc.iter().enumerate() {
        for (v, &a) in accp.iter().enumerate() {
            // SAFETY: out + p·o_n is writable for this column block (caller); masked-out lanes
            // are untouched.
            unsafe {
                let dst = out.add(p * o_n + 16 * v);
                if MASKED && v + 1 == NV {
                    _mm512_mask_storeu_ps(dst, mask, a);
                } else {
                    _mm512_storeu_ps(dst, a);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! The AVX-512 kernels against `scalar`, on CPUs that can run the table.

    use super::super::{scalar, Backend, Kernels, TapQ11};
    use proptest::prelude::*;
    use rand::{rngs::StdRng, Rng, SeedableRng};

    fn table() -> Option<&'static Kernels> {
        match Backend::Avx512.kernels() {
            Ok(k) => Some(k),
            Err(e) => {
                eprintln!("skipping: {e}");
                None
            }
        }
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

    fn check_conv_f32(
        k: &Kernels,
        cin: usize,
        o_n: usize,
        npix: usize,
        pad: usize,
        bias: bool,
        seed: u64,
    ) {
        let mut rng = StdRng::seed_from_u64(seed);
        let ldx = cin + pad;
        // Exact length: the last pixel's row ends the slice.
        let x: Vec<f32> = (0..super::extent(npix, ldx, cin))
            .map(|_| rng.gen_range(-1.0..1.0))
            .collect();
        let w: Vec<f32> = (0..cin * o_n).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let b: Vec<f32> = (0..o_n).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let wt = super::super::pack_conv_f32(&w, o_n, cin);
        let bias = bias.then_some(&b[..]);
        let mut want = vec![f32::NAN; npix * o_n + 5];
        let mut got = want.clone();
        scalar::conv_f32(&x, ldx, npix, cin, &wt, bias, o_n, &mut want);
        (k.conv_f32)(&x, ldx, npix, cin, &wt, bias, o_n, &mut got);
        let m = want[..npix * o_n]
            .iter()
            .fold(1e-6f32, |m, v| m.max(v.abs()));
        for i in 0..npix * o_n {
            assert!(
                (got[i] - want[i]).abs() <= 1e-5 * m,
                "conv_f32 cin={cin} o_n={o_n} npix={npix} i={i}: {} vs {}",
                got[i],
                want[i]
            );
        }
        assert!(
            got[npix * o_n..].iter().all(|v| v.is_nan()),
            "conv_f32 wrote past its output"
        );
    }

    #[test]
    fn hot_and_edge_shapes() {
        let Some(k) = table() else { return };
        assert_eq!(k.backend, Backend::Avx512);
        check_sample_i8(k, 4, 64, 12, 5, 300, 1);
        check_conv_f32(k, 256, 32, 120, 0, true, 2);
        for cpg in [1, 15, 16, 17, 31, 32, 33, 63, 64, 65, 70, 127, 128, 129] {
            check_sample_i8(k, 3, cpg, 3, 2, 40, cpg as u64);
        }

        for o_n in 1..40 {
            for npix in 0..9 {
                check_conv_f32(
                    k,
                    5 + o_n % 3,
                    o_n,
                    npix,
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
        fn conv_f32_matches_scalar(cin in 0usize..70, o_n in 1usize..40, npix in 0usize..30, pad in 0usize..3, bias in any::<bool>(), seed in any::<u64>()) {
            if let Some(k) = table() {
                check_conv_f32(k, cin, o_n, npix, pad, bias, seed);
            }
        }
    }
}

#[cfg(test)]
mod microbench {
    use super::super::{pack_conv_f32, Backend, TapQ11};
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
                    (k.conv_f32)(&x, cin, npix, cin, &wt, Some(&bias), o_n, &mut out);
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
