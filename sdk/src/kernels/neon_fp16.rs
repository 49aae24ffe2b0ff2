//! AArch64 NEON + dotprod + ARMv8.2 FP16 arithmetic: [`Backend::NeonDotprodFp16`].
//!
//! Same as [`neon_dotprod`](super::neon_dotprod) except `sample_f16`, which computes in fp16
//! (8 lanes per instruction, no f16 ↔ f32 conversions) instead of widening to f32. The fp16
//! vector intrinsics are newer than the workspace MSRV, so `fmul`/`fmla` on `.8h` are emitted with
//! `asm!` inside `#[target_feature(enable = "fp16")]` functions; the table is only handed out after
//! `fp16` (and `dotprod`) were detected ([`Backend::kernels`]). The loops are those of
//! [`arm_loops`](super::arm_loops).
//!
//! Accuracy: results are not bit-identical to the f32-math kernels (fp16 rounds after every
//! multiply/fma), but stay within the layer's fp16 budget (relative L2 ≤ 2e-3 against an f64
//! evaluation; tested below). The lerp is evaluated in the convex form `a·(1−f) + b·f` rather
//! than scalar's `a + f·(b − a)`: in fp16 `b − a` overflows to ±inf once |b − a| > 65504 (e.g.
//! taps of −40000 and +40000), while the convex form never exceeds max(|a|, |b|) in magnitude,
//! and it is exact at f = 0 and f = 1.

use super::arm_loops::channel_runs;
use super::neon::store_4x8_u16;
use super::{neon_dotprod, Backend, Kernels, Tap};
use core::arch::aarch64::*;
use half::f16;

pub static KERNELS: Kernels = Kernels {
    backend: Backend::NeonDotprodFp16,
    sample_f16,
    sample_f16_nchw: Some(sample_f16_nchw),
    ..neon_dotprod::KERNELS
};

/// A tap's weights `[1 − fx, fx, 1 − fy, fy]` in fp16, broadcast to 8 lanes (inlined into both
/// fp16 leaves, once per tap).
#[inline(always)]
fn weights_f16(t: &Tap) -> [uint16x8_t; 4] {
    // SAFETY: `neon` is enabled for the whole AArch64 build; a register operation.
    let h = |v: f32| unsafe { vdupq_n_u16(f16::from_f32(v).to_bits()) };
    [h(1.0 - t.fx), h(t.fx), h(1.0 - t.fy), h(t.fy)]
}

/// Bilinear sample of the 8 lanes at the four corners `p`, in fp16:
/// `(a·gx + b·fx)·gy + (c·gx + d·fx)·fy` with the weights `w` of [`weights_f16`], `fmla` fusing
/// the second product of each pair.
///
/// # Safety
/// 8 values readable at each corner; `fp16` available.
#[target_feature(enable = "neon,fp16")]
#[inline]
unsafe fn bilerp8_fp16(p: [*const u16; 4], w: &[uint16x8_t; 4]) -> uint16x8_t {
    let r: uint16x8_t;
    // SAFETY: the caller's reads; the asm only computes on registers.
    unsafe {
        let [a, b, c, d] = p.map(|p| vld1q_u16(p));
        core::arch::asm!(
            "fmul {r:v}.8h, {a:v}.8h, {gx:v}.8h",
            "fmul {u:v}.8h, {c:v}.8h, {gx:v}.8h",
            "fmla {r:v}.8h, {b:v}.8h, {fx:v}.8h",
            "fmla {u:v}.8h, {d:v}.8h, {fx:v}.8h",
            "fmul {r:v}.8h, {r:v}.8h, {gy:v}.8h",
            "fmla {r:v}.8h, {u:v}.8h, {fy:v}.8h",
            // `out` (not lateout): r and u are written before all inputs are read.
            r = out(vreg) r, u = out(vreg) _,
            a = in(vreg) a, b = in(vreg) b, c = in(vreg) c, d = in(vreg) d,
            gx = in(vreg) w[0], fx = in(vreg) w[1], gy = in(vreg) w[2], fy = in(vreg) w[3],
            options(pure, nomem, nostack, preserves_flags));
    }
    r
}

sample_nhwc_entry!(
    sample_f16(f16 as u16, Tap),
    "neon,fp16",
    "`fp16` (and `dotprod`) were detected before this table was handed out",
    cpg,
    |t, p, o| {
        let w = weights_f16(t);
        // SAFETY: each corner holds cpg values and `o` cpg slots (each_tap); the channel tail
        // goes through stack buffers, never past `cpg`.
        unsafe {
            let at = |c: usize| p.map(|p| p.add(c));
            channel_runs::<16>(
                cpg,
                |c| {
                    // Two independent chains hide the fmul/fmla latency.
                    let r0 = bilerp8_fp16(at(c), &w);
                    let r1 = bilerp8_fp16(at(c + 8), &w);
                    vst1q_u16(o.add(c), r0);
                    vst1q_u16(o.add(c + 8), r1);
                },
                |c| vst1q_u16(o.add(c), bilerp8_fp16(at(c), &w)),
                |c| {
                    // < 8 channels left: same arithmetic on zero-padded copies, so every lane
                    // of the output is computed the same way.
                    let rem = cpg - c;
                    let mut buf = [[0u16; 8]; 5];
                    for (b, p) in buf.iter_mut().zip(at(c)) {
                        copy_lt8(p, b.as_mut_ptr(), rem);
                    }
                    let r = bilerp8_fp16(core::array::from_fn(|k| buf[k].as_ptr()), &w);
                    vst1q_u16(buf[4].as_mut_ptr(), r);
                    copy_lt8(buf[4].as_ptr(), o.add(c), rem);
                },
            )
        }
    },
);

sample_nchw_entry!(
    /// Fused NCHW sampling in fp16: tiles of 4 pixels × 8 channels, each pixel's 8 lanes computed
    /// by [`bilerp8_fp16`] with the same per-tap weights as [`sample_f16`] (so the two layouts
    /// return the same bits), then a 4×8 register transpose into the channel planes.
    sample_f16_nchw(f16 as u16, Tap),
    "neon,fp16",
    "`fp16` (and `dotprod`) were detected before this table was handed out",
    tile: [4, 8],
    plane,
    prep: weights_f16,
    // SAFETY: nchw_tiles hands `pixel` corners readable for 8 lanes and asks `store` only for
    // rows and pixels inside the caller's `dst`.
    pixel: |p, w| unsafe { bilerp8_fp16(p, w) },
    store: |v, d, np, nch| unsafe { store_4x8_u16(v, d, plane, np, nch) },
);

/// Copies `n < 8` elements with fixed-size moves: a variable-length copy becomes a `memcpy`
/// call, which would push the per-tap weight vectors to the stack.
///
/// # Safety
/// `src` readable and `dst` writable for `n` elements, not overlapping.
#[inline(always)]
unsafe fn copy_lt8(src: *const u16, dst: *mut u16, n: usize) {
    debug_assert!(n < 8);
    // SAFETY: each move stays below `n` elements, per the caller's guarantee.
    unsafe {
        let mut i = 0;
        if n & 4 != 0 {
            core::ptr::copy_nonoverlapping(src, dst, 4);
            i = 4;
        }
        if n & 2 != 0 {
            core::ptr::copy_nonoverlapping(src.add(i), dst.add(i), 2);
            i += 2;
        }
        if n & 1 != 0 {
            *dst.add(i) = *src.add(i);
        }
    }
}

#[cfg(test)]
mod tests {
    // Every family against scalar; the f16 sampling computes in fp16, so it is checked for
    // accuracy below instead of bit for bit.
    table_tests!(NeonDotprodFp16);

    use super::super::checks::{f16_src, taps};
    use super::super::{Backend, Kernels, Tap};
    use half::f16;
    use proptest::prelude::*;

    fn table() -> Option<&'static Kernels> {
        super::super::checks::table(Backend::NeonDotprodFp16)
    }

    /// f64 evaluation of the bilinear formula from the f16 inputs.
    fn reference(src: &[f16], taps: &[Tap], cpg: usize) -> Vec<f64> {
        let mut out = Vec::with_capacity(taps.len() * cpg);
        for t in taps {
            let (b, dx, dy) = (t.base as usize, t.dx as usize, t.dy as usize);
            let (fx, fy) = (t.fx as f64, t.fy as f64);
            for c in 0..cpg {
                let g = |i: usize| src[i + c].to_f64();
                let top = g(b) * (1.0 - fx) + g(b + dx) * fx;
                let bot = g(b + dy) * (1.0 - fx) + g(b + dx + dy) * fx;
                out.push(top * (1.0 - fy) + bot * fy);
            }
        }
        out
    }

    /// Runs the fp16 kernel and checks each output against the f64 value within 8 fp16 ulps of
    /// its largest tap (the per-element bound for fp16 arithmetic: every product rounds at the
    /// inputs' scale). Returns (Σ err², Σ ref²) for the relative L2 check, which only means
    /// something over many outputs (a single output near 0 can have any relative error).
    fn check_accuracy(k: &Kernels, src: &[f16], taps: &[Tap], cpg: usize) -> (f64, f64) {
        let mut got = vec![f16::NAN; taps.len() * cpg];
        (k.sample_f16)(src, taps, cpg, &mut got);
        let want = reference(src, taps, cpg);
        let (mut num, mut den) = (0f64, 0f64);
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            let t = &taps[i / cpg];
            let c = i % cpg;
            let m = [t.base, t.base + t.dx, t.base + t.dy, t.base + t.dx + t.dy]
                .iter()
                .map(|&j| src[j as usize + c].to_f64().abs())
                .fold(0f64, f64::max);
            let err = (g.to_f64() - w).abs();
            assert!(
                g.is_finite() && err <= 8.0 * m / 2048.0 + 1e-7,
                "output {g} for {w} (max |tap| {m}), cpg={cpg}"
            );
            num += err * err;
            den += w * w;
        }
        (num, den)
    }

    /// Relative L2 error ≤ 2e-3, the layer's fp16 requirement.
    fn check_l2((num, den): (f64, f64), what: &str) {
        let rel = (num / den.max(1e-300)).sqrt();
        assert!(rel <= 2e-3, "sample_f16 (fp16 math) {what}: rel L2 {rel:e}");
    }

    #[test]
    fn neon_fp16_sampling_is_accurate() {
        let Some(k) = table() else { return };
        assert_eq!(k.backend, Backend::NeonDotprodFp16);
        let mut small = (0f64, 0f64);
        for cpg in (1..=9).chain([15, 16, 17, 24, 31, 64]) {
            for ntaps in [0, 1, 7, 240] {
                let (n, ft, _) = taps(ntaps, 3, 4, cpg, cpg as u64 * 13 + ntaps as u64);
                let e = check_accuracy(k, &f16_src(n, cpg as u64), &ft, cpg);
                if ntaps == 240 {
                    check_l2(e, &format!("cpg={cpg} ntaps={ntaps}"));
                } else {
                    small = (small.0 + e.0, small.1 + e.1);
                }
            }
        }
        check_l2(small, "small cases together");
    }

    #[test]
    fn neon_fp16_large_opposite_taps_stay_finite() {
        let Some(k) = table() else { return };
        // |b − a| = 80000 > f16::MAX: the `a + f·(b − a)` form would overflow here.
        let src: Vec<f16> = [-40000.0f32, 40000.0, 40000.0, -40000.0]
            .iter()
            .flat_map(|v| [f16::from_f32(*v); 9])
            .collect();
        let taps = [
            Tap {
                base: 0,
                dx: 9,
                dy: 18,
                fx: 0.5,
                fy: 0.25,
            },
            Tap {
                base: 0,
                dx: 9,
                dy: 18,
                fx: 0.3,
                fy: 1.0,
            },
            Tap {
                base: 0,
                dx: 9,
                dy: 18,
                fx: 1.0,
                fy: 0.0,
            },
        ];
        check_l2(check_accuracy(k, &src, &taps, 9), "opposite taps");
        let mut got = vec![f16::ZERO; 27];
        (k.sample_f16)(&src, &taps, 9, &mut got);
        assert_eq!(got[18].to_f32(), 40000.0, "f = 1 picks the far tap exactly");
    }

    /// The fused fp16 kernel against this table's own NHWC `sample_f16`, bit for bit, with NaN
    /// sentinels past the row and around the planes.
    fn check_nchw_vs_nhwc(k: &Kernels, g: usize, cpg: usize, npx: usize, seed: u64, at_end: bool) {
        let (len, mut ft, _) = taps(npx * g, 3, 4, cpg, seed);
        if at_end {
            for f in &mut ft {
                (f.base, f.dx, f.dy) = ((len - cpg) as u32, 0, 0);
            }
        }
        let src = f16_src(len, seed);
        let plane = npx + 3;
        let mut rows = vec![f16::ZERO; ft.len() * cpg];
        (k.sample_f16)(&src, &ft, cpg, &mut rows);
        let mut want = vec![f16::NAN; g * cpg * plane + 5];
        for x in 0..npx {
            for q in 0..g {
                for c in 0..cpg {
                    want[(q * cpg + c) * plane + x] = rows[(x * g + q) * cpg + c];
                }
            }
        }
        let mut got = vec![f16::NAN; want.len()];
        let f = k.sample_f16_nchw.expect("fused fp16 kernel");
        // SAFETY: `got` holds every (channel, X < npx) of `plane`-long planes.
        unsafe { f(&src, &ft, g, cpg, got.as_mut_ptr(), plane) };
        let bits = |v: &[f16]| v.iter().map(|h| h.to_bits()).collect::<Vec<_>>();
        assert_eq!(
            bits(&got),
            bits(&want),
            "sample_f16_nchw (fp16) g={g} cpg={cpg} npx={npx} at_end={at_end}"
        );
    }

    #[test]
    fn neon_fp16_nchw_matches_own_nhwc() {
        let Some(k) = table() else { return };
        for g in [1, 2, 3, 4] {
            for cpg in (1..=9).chain([15, 16, 17, 24, 31]) {
                for npx in [0, 1, 3, 4, 5, 8, 9] {
                    let seed = (g * 1000 + cpg * 20 + npx) as u64;
                    check_nchw_vs_nhwc(k, g, cpg, npx, seed, false);
                    check_nchw_vs_nhwc(k, g, cpg, npx, seed + 1, true);
                }
            }
        }
        check_nchw_vs_nhwc(k, 4, 16, 240, 3, false);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn neon_fp16_sample_random(ntaps in 0usize..30, cpg in 1usize..80, scale in -8i32..12, seed: u64) {
            if let Some(k) = table() {
                let (n, ft, _) = taps(ntaps, 3, 4, cpg, seed);
                let s = (2f32).powi(scale);
                let src: Vec<f16> = f16_src(n, seed).iter().map(|v| f16::from_f32(v.to_f32() * s)).collect();
                let e = check_accuracy(k, &src, &ft, cpg);
                if ntaps * cpg >= 64 {
                    check_l2(e, &format!("cpg={cpg} ntaps={ntaps}"));
                }
            }
        }
        #[test]
        fn neon_fp16_nchw_random(g in 1usize..6, cpg in 1usize..40, npx in 0usize..30, at_end: bool, seed: u64) {
            if let Some(k) = table() {
                check_nchw_vs_nhwc(k, g, cpg, npx, seed, at_end);
            }
        }
    }
}
