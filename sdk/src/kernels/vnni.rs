//! x86_64 VNNI int8 convolution and sampling (`vpdpbusd`), on top of the AVX2 table.
//!
//! `vpdpbusd` multiplies unsigned by signed bytes. In the conv, x is biased to
//! `x ^ 0x80 = x + 128` and `128 · Σ_k w[o][k]` is subtracted (as the accumulators' start
//! value); the i32 sums wrap identically, so the result is bit-identical to the scalar one. In
//! the sampler the unsigned side is the Q14 weights' bytes (see `kernels::weights_q14`).
//!
//! Two encodings of the same instruction: AVX-VNNI (VEX) and AVX-512 VNNI + VL (EVEX, 256-bit).
//! `table` picks the one the CPU has; both tables are `pub(super)`-only and reached through
//! [`super::Backend::kernels`] after detection, which is the soundness argument.
//!
//! The instruction is emitted with `asm!` rather than `_mm256_dpbusd{,_avx}_epi32`, so one
//! macro body serves both encodings with the same target-feature list.

use super::tiling::ConvI8Args;
use super::x86_loops::{self, channel_chunks, corners, load_row, short_tap, I8Dot};
use super::{Backend, Kernels, TapQ11};
use crate::cpu::CpuFeatures;
use core::arch::asm;
use core::arch::x86_64::*;

/// `vpdpbusd acc, a, b` (u8 `a` times s8 `b`, 4-term sums added to i32 `acc`), VEX encoding.
///
/// # Safety
/// The CPU must support AVX-VNNI.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn dpbusd_vex(acc: __m256i, a: __m256i, b: __m256i) -> __m256i {
    let mut r = acc;
    // SAFETY: register-only instruction; AVX-VNNI support is the caller's contract.
    unsafe {
        asm!("{{vex}} vpdpbusd {r}, {a}, {b}", r = inout(ymm_reg) r, a = in(ymm_reg) a, b = in(ymm_reg) b,
             options(pure, nomem, nostack, preserves_flags))
    };
    r
}

/// Same as [`dpbusd_vex`], EVEX encoding (256-bit form).
///
/// # Safety
/// The CPU must support AVX-512 VNNI and AVX-512 VL.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn dpbusd_evex(acc: __m256i, a: __m256i, b: __m256i) -> __m256i {
    let mut r = acc;
    // SAFETY: register-only instruction; AVX-512 VNNI+VL support is the caller's contract.
    unsafe {
        asm!("{{evex}} vpdpbusd {r}, {a}, {b}", r = inout(ymm_reg) r, a = in(ymm_reg) a, b = in(ymm_reg) b,
             options(pure, nomem, nostack, preserves_flags))
    };
    r
}

/// The bias that turns signed x bytes into the unsigned operand of `vpdpbusd`.
const FLIP: i32 = 0x8080_8080_u32 as i32;

/// Generates the conv_i8 and sample_i8 kernels for one encoding of `vpdpbusd`.
macro_rules! vnni_conv_i8 {
    ($module:ident, $features:literal, $dpbusd:ident) => {
        mod $module {
            use super::*;

            conv_i8_entry!(pub(in super::super) conv_i8 => conv,
                "this table is only handed out after AVX2/FMA/F16C and its VNNI flavour were detected");

            /// Tiles of 6 pixels x 16 outputs, 8 x 8 for the last columns.
            ///
            /// # Safety
            /// The target features; pointers valid for the extents checked by `check_conv_i8`.
            #[target_feature(enable = $features)]
            unsafe fn conv(a: &ConvI8Args) {
                // SAFETY: the features are enabled here; the extents are the caller's.
                unsafe { x86_loops::conv_i8::<Dot, 6, 8>(a) }
            }

            /// This encoding's `vpdpbusd` on x biased to unsigned (`x ^ 0x80`).
            struct Dot;

            // SAFETY (every method): called only from `conv`, whose features and this table's
            // VNNI flavour are present; see the `Lanes` impls in the AVX2 module.
            impl I8Dot for Dot {
                type V = __m256i;
                type W = __m256i;
                type X = __m256i;
                #[inline(always)]
                unsafe fn weights(w: __m256i) -> __m256i {
                    w
                }
                #[inline(always)]
                unsafe fn pixel(x4: i32) -> __m256i {
                    unsafe { _mm256_xor_si256(_mm256_set1_epi32(x4), _mm256_set1_epi32(FLIP)) }
                }
                #[inline(always)]
                unsafe fn dot(acc: __m256i, x: __m256i, w: __m256i) -> __m256i {
                    unsafe { $dpbusd(acc, x, w) }
                }
                /// `-128 · Σ_k w[o][k]`, computed by the same instruction on 0x80 bytes.
                #[inline(always)]
                unsafe fn start<const NV: usize, const MASKED: bool>(
                    w: *const i8,
                    groups: usize,
                    ld: usize,
                    m: __m256i,
                ) -> [__m256i; NV] {
                    unsafe {
                        let mut corr = [_mm256_setzero_si256(); NV];
                        for g in 0..groups {
                            let wv = load_row::<__m256i, NV, MASKED>(w.add(g * ld) as *const i32, m);
                            for (c, &wvv) in corr.iter_mut().zip(wv.iter()) {
                                *c = $dpbusd(*c, _mm256_set1_epi32(FLIP), wvv);
                            }
                        }
                        corr.map(|c| _mm256_sub_epi32(_mm256_setzero_si256(), c))
                    }
                }
            }

            /// Same contract and bytes as `scalar::sample_i8`; see [`blend32`](self::blend32).
            pub(in super::super) fn sample_i8(
                src: &[i8],
                taps: &[TapQ11],
                cpg: usize,
                out: &mut [i8],
            ) {
                if x86_loops::check_sample_out(taps.len(), cpg, out.len()) {
                    // SAFETY: AVX2 and this VNNI flavour detected (table); the kernel checks
                    // every tap's reads against src.len() before making them; out holds
                    // taps·cpg bytes (checked).
                    unsafe { sample(src.as_ptr(), src.len(), taps, cpg, out.as_mut_ptr()) }
                }
            }

            /// # Safety
            /// The target features and this VNNI flavour; `src .. + len` readable;
            /// `out .. + taps.len()·cpg` writable.
            #[target_feature(enable = $features)]
            unsafe fn sample(
                src: *const i8,
                len: usize,
                taps: &[TapQ11],
                cpg: usize,
                out: *mut i8,
            ) {
                for (n, t) in taps.iter().enumerate() {
                    t.check_reads(cpg, len);
                    let wlo = _mm256_set1_epi32(i32::from_le_bytes(t.wlo));
                    let whi = _mm256_set1_epi32(i32::from_le_bytes(t.whi));
                    // SAFETY: check_reads keeps the four runs of cpg bytes inside src; the
                    // output run n·cpg .. + cpg is inside out (caller); chunks stay below cpg.
                    unsafe {
                        let ps = corners(src, t.base, t.dx, t.dy);
                        let o = out.add(n * cpg);
                        let blend = |ps, c, o: *mut i8| {
                            let r = blend32(ps, c, wlo, whi);
                            _mm256_storeu_si256(o.add(c) as *mut __m256i, r)
                        };
                        if cpg >= 32 {
                            channel_chunks::<_, 32, 1>(o, cpg, |c| blend(ps, c, o));
                        } else {
                            // Always through the stack: `check_reads` bounds cpg, not 32 bytes.
                            short_tap::<_, 32>(ps, o, cpg, false, |ps, o| blend(ps, 0, o));
                        }
                    }
                }
            }

            /// 32 channels of the Q14 blend: corner bytes interleaved to dwords
            /// `(q00, q01, q10, q11)` (per 128-bit lane), `Σ whi·q` started at 32, `<< 8`, then
            /// `Σ wlo·q` on top = `2^13 + Σ w·q` exactly; `>> 14`; the packs undo the interleave.
            ///
            /// # Safety
            /// The target features and this VNNI flavour; `ps[i] + c .. + 32` readable.
            #[inline]
            #[target_feature(enable = $features)]
            unsafe fn blend32(ps: [*const i8; 4], c: usize, wlo: __m256i, whi: __m256i) -> __m256i {
                // SAFETY: the caller guarantees 32 readable bytes at each ps[i] + c.
                let ld = |p: *const i8| unsafe { _mm256_loadu_si256(p.add(c) as *const __m256i) };
                let (a, b, cc, d) = (ld(ps[0]), ld(ps[1]), ld(ps[2]), ld(ps[3]));
                let (ab_lo, ab_hi) = (_mm256_unpacklo_epi8(a, b), _mm256_unpackhi_epi8(a, b));
                let (cd_lo, cd_hi) = (_mm256_unpacklo_epi8(cc, d), _mm256_unpackhi_epi8(cc, d));
                let start = _mm256_set1_epi32(32);
                let blend = |x: __m256i| {
                    // SAFETY: this VNNI flavour is the caller's contract.
                    let hi = unsafe { $dpbusd(start, whi, x) };
                    // SAFETY: as above.
                    let acc = unsafe { $dpbusd(_mm256_slli_epi32::<8>(hi), wlo, x) };
                    _mm256_srai_epi32::<14>(acc)
                };
                let r0 = blend(_mm256_unpacklo_epi16(ab_lo, cd_lo));
                let r1 = blend(_mm256_unpackhi_epi16(ab_lo, cd_lo));
                let r2 = blend(_mm256_unpacklo_epi16(ab_hi, cd_hi));
                let r3 = blend(_mm256_unpackhi_epi16(ab_hi, cd_hi));
                // Results lie in [-128, 127], so the saturating packs are exact.
                _mm256_packs_epi16(_mm256_packs_epi32(r0, r1), _mm256_packs_epi32(r2, r3))
            }
        }
    };
}

vnni_conv_i8!(avx_vnni, "avx2,fma,f16c", dpbusd_vex);
vnni_conv_i8!(avx512_vnni, "avx2,fma,f16c", dpbusd_evex);

/// AVX2 table with the AVX-VNNI (VEX) conv_i8.
pub(super) static KERNELS_AVXVNNI: Kernels = Kernels {
    backend: Backend::Avx2Vnni,
    conv_i8: avx_vnni::conv_i8,
    sample_i8: avx_vnni::sample_i8,
    ..super::avx2::KERNELS
};

/// AVX2 table with the AVX-512 VNNI + VL (EVEX, 256-bit) conv_i8.
pub(super) static KERNELS_AVX512VNNI: Kernels = Kernels {
    backend: Backend::Avx2Vnni,
    conv_i8: avx512_vnni::conv_i8,
    sample_i8: avx512_vnni::sample_i8,
    ..super::avx2::KERNELS
};

/// The VNNI table this CPU can run (AVX-VNNI preferred: VEX-encoded, no AVX-512 state), if any.
pub(super) fn table(cpu: &CpuFeatures) -> Option<&'static Kernels> {
    let base = cpu.avx2 && cpu.fma && cpu.f16c;
    if base && cpu.avxvnni {
        Some(&KERNELS_AVXVNNI)
    } else if base && cpu.avx512f && cpu.avx512vl && cpu.avx512vnni {
        Some(&KERNELS_AVX512VNNI)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    //! The registered VNNI table through the whole suite; both encodings (each only on a CPU
    //! that has it) through the fixed cases and the int8 proptests, exact.
    table_tests!(Avx2Vnni);

    use super::super::checks::{check_conv_i8, check_sample_bounds, check_sample_i8, fixed_cases};
    use super::super::{Backend, Kernels};
    use super::*;
    use proptest::prelude::*;

    /// Every VNNI table this CPU can run (the registered one first).
    fn tables() -> Vec<&'static Kernels> {
        let cpu = CpuFeatures::get();
        let mut v = Vec::new();
        if let Ok(k) = Backend::Avx2Vnni.kernels() {
            assert!(std::ptr::eq(k, table(cpu).unwrap()));
            v.push(k);
        } else {
            eprintln!("skipping: no VNNI on this CPU");
        }
        if cpu.avx2 && cpu.fma && cpu.f16c && cpu.avxvnni {
            v.push(&KERNELS_AVXVNNI);
        }
        if cpu.avx2 && cpu.fma && cpu.f16c && cpu.avx512f && cpu.avx512vl && cpu.avx512vnni {
            v.push(&KERNELS_AVX512VNNI);
        }
        v
    }

    #[test]
    fn both_encodings_fixed_cases() {
        for k in tables() {
            fixed_cases(k);
            for cpg in [1, 2, 15, 31, 32, 33, 63, 64, 65, 96, 100] {
                check_sample_bounds(k, cpg, 3 * cpg + 5, 40, cpg as u64);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn both_encodings_int8_match_scalar(npix in 0usize..20, cin in 0usize..300, o_n in 1usize..72,
                                            pad in 0usize..5, ntaps in 0usize..40, cpg in 1usize..150,
                                            seed in any::<u64>()) {
            for k in tables() {
                check_conv_i8(k, npix, cin, o_n, pad, seed);
                check_sample_i8(k, ntaps, cpg, seed);
            }
        }
    }
}
