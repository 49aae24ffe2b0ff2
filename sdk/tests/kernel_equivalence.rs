//! Every kernel of every backend this CPU can run, against the scalar reference kernels.
//!
//! Integer kernels, conversions and transposes must match bit for bit. Float kernels may use FMA
//! and reassociate: sampling must agree within 1e-5 of the largest reference magnitude, and a dot
//! product within the standard rounding bound of its sum of absolute terms (a relative bound on
//! the result fails on cancellation: CI once saw 2.2e-5 relative on a 39-term sum).

use dysample::kernels::{
    self, cin4, pack_conv_f32, pack_conv_i8, scalar, Backend, ConvIn, Kernels, Tap, TapQ11,
};
use half::f16;
use proptest::prelude::*;
use rand::{rngs::StdRng, Rng, SeedableRng};

fn simd_backends() -> Vec<&'static Kernels> {
    let v: Vec<_> = Backend::ALL
        .into_iter()
        .filter(|b| *b != Backend::Scalar)
        .filter_map(|b| b.kernels().ok())
        .collect();
    if v.is_empty() {
        eprintln!("note: no SIMD backend is usable on this CPU; only scalar runs");
    }
    v
}

fn close(a: &[f32], b: &[f32], what: &str) -> Result<(), TestCaseError> {
    let m = b.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        prop_assert!(
            (x - y).abs() <= 1e-5 * m,
            "{what}: index {i}: {x} vs {y} (max |ref| {m})"
        );
    }
    Ok(())
}

fn cfg() -> ProptestConfig {
    ProptestConfig {
        // PROPTEST_CASES raises the count for a soak run; CI keeps 48.
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(48),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn random_taps(
    rng: &mut StdRng,
    n: usize,
    src_len: usize,
    cpg: usize,
    c: usize,
    w: usize,
) -> (Vec<Tap>, Vec<TapQ11>) {
    let mut t = Vec::new();
    let mut tq = Vec::new();
    let pixels = src_len / c;
    let h = pixels / w;
    for _ in 0..n {
        let (x0, y0) = (rng.gen_range(0..w), rng.gen_range(0..h));
        let q = rng.gen_range(0..c / cpg);
        let x1 = (x0 + 1).min(w - 1);
        let y1 = (y0 + 1).min(h - 1);
        // Extreme weights (exactly 0 or 1) are common at the border: make them likely.
        let pick = |rng: &mut StdRng| match rng.gen_range(0..4) {
            0 => 0u16,
            1 => 2048,
            _ => rng.gen_range(0..=2048),
        };
        let (fx, fy) = (pick(rng), pick(rng));
        let base = ((y0 * w + x0) * c + q * cpg) as u32;
        let (dx, dy) = (((x1 - x0) * c) as u32, ((y1 - y0) * w * c) as u32);
        t.push(Tap {
            base,
            dx,
            dy,
            fx: fx as f32 / 2048.0,
            fy: fy as f32 / 2048.0,
        });
        tq.push(TapQ11::new(base, dx, dy, fx, fy));
    }
    (t, tq)
}

/// Per-output rounding bound of a dot product computed in any order, with or without FMA:
/// |error| <= 2 n u sum|terms| (u = f32::EPSILON / 2, n = terms, bias included; the factor 2
/// covers the reference's own rounding as well as the kernel's).
fn conv_bound(
    x: &[f32],
    ldx: usize,
    npix: usize,
    cin: usize,
    w: &[f32],
    b: Option<&[f32]>,
    o_n: usize,
) -> Vec<f32> {
    let n = (cin + 1) as f32;
    let mut out = Vec::with_capacity(npix * o_n);
    for p in 0..npix {
        for o in 0..o_n {
            let mut s = b.map_or(0.0, |b| b[o].abs());
            for c in 0..cin {
                s += (x[p * ldx + c] * w[o * cin + c]).abs();
            }
            out.push(2.0 * n * f32::EPSILON * s + f32::MIN_POSITIVE);
        }
    }
    out
}

proptest! {
    #![proptest_config(cfg())]

    #[test]
    fn conv_f32_matches_scalar(npix in 0usize..9, cin in 1usize..70, o_n in 1usize..40, pad in 0usize..3, bias in any::<bool>(), seed in any::<u64>()) {
        let mut rng = StdRng::seed_from_u64(seed);
        let ldx = cin + pad;
        let x: Vec<f32> = (0..npix * ldx).map(|_| rng.gen_range(-2.0..2.0)).collect();
        let w: Vec<f32> = (0..o_n * cin).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let b: Vec<f32> = (0..o_n).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let wt = pack_conv_f32(&w, o_n, cin);
        let mut want = vec![0.0; npix * o_n];
        scalar::conv_f32(ConvIn::new(&x, ldx, npix, cin), &wt, bias.then_some(&b[..]), o_n, &mut want);
        let bound = conv_bound(&x, ldx, npix, cin, &w, bias.then_some(&b[..]), o_n);
        for k in simd_backends() {
            let mut got = vec![f32::NAN; npix * o_n];
            (k.conv_f32)(ConvIn::new(&x, ldx, npix, cin), &wt, bias.then_some(&b[..]), o_n, &mut got);
            for (i, ((g, r), tol)) in got.iter().zip(&want).zip(&bound).enumerate() {
                prop_assert!((g - r).abs() <= *tol, "{} conv_f32: index {i}: {g} vs {r} (bound {tol})", k.backend);
            }
        }
    }

    #[test]
    fn conv_i8_is_bit_exact(npix in 0usize..9, cin in 1usize..300, o_n in 1usize..40, pad in 0usize..5, seed in any::<u64>()) {
        let mut rng = StdRng::seed_from_u64(seed);
        let ldx = cin + pad;
        // Full int8 range, -128 included, to catch saturation.
        let x: Vec<i8> = (0..npix * ldx).map(|_| rng.gen()).collect();
        let w: Vec<i8> = (0..o_n * cin).map(|_| rng.gen_range(-127..=127)).collect();
        let wp = pack_conv_i8(&w, o_n, cin);
        assert_eq!(wp.len(), cin4(cin) * o_n);
        let mut want = vec![0; npix * o_n];
        scalar::conv_i8(ConvIn::new(&x, ldx, npix, cin), &wp, o_n, &mut want);
        for k in simd_backends() {
            let mut got = vec![i32::MIN; npix * o_n];
            (k.conv_i8)(ConvIn::new(&x, ldx, npix, cin), &wp, o_n, &mut got);
            prop_assert_eq!(&got, &want, "{} conv_i8", k.backend);
        }
    }

    #[test]
    fn sampling_matches_scalar(h in 1usize..6, w in 1usize..9, g in 1usize..5, cpg in 1usize..80, n in 0usize..40, seed in any::<u64>()) {
        let mut rng = StdRng::seed_from_u64(seed);
        let c = g * cpg;
        let len = h * w * c;
        let src: Vec<f32> = (0..len).map(|_| rng.gen_range(-3.0..3.0)).collect();
        let src16: Vec<f16> = src.iter().map(|&v| f16::from_f32(v)).collect();
        let srcq: Vec<i8> = (0..len).map(|_| rng.gen()).collect();
        let (taps, tapsq) = random_taps(&mut rng, n, len, cpg, c, w);
        let mut want = vec![0.0; n * cpg];
        scalar::sample_f32(&src, &taps, cpg, &mut want);
        let mut want16 = vec![f16::ZERO; n * cpg];
        scalar::sample_f16(&src16, &taps, cpg, &mut want16);
        let mut wantq = vec![0i8; n * cpg];
        scalar::sample_i8(&srcq, &tapsq, cpg, &mut wantq);
        for k in simd_backends() {
            let mut got = vec![f32::NAN; n * cpg];
            (k.sample_f32)(&src, &taps, cpg, &mut got);
            close(&got, &want, &format!("{} sample_f32", k.backend))?;
            let mut got16 = vec![f16::NAN; n * cpg];
            (k.sample_f16)(&src16, &taps, cpg, &mut got16);
            // f16 storage on data in [-3, 3]: allow a few f16 ulps (fp16 arithmetic may be used).
            for (i, (x, y)) in got16.iter().zip(&want16).enumerate() {
                let (x, y) = (x.to_f32(), y.to_f32());
                prop_assert!((x - y).abs() <= 1e-2, "{} sample_f16 index {i}: {x} vs {y}", k.backend);
            }
            let mut gotq = vec![0i8; n * cpg];
            (k.sample_i8)(&srcq, &tapsq, cpg, &mut gotq);
            prop_assert_eq!(&gotq, &wantq, "{} sample_i8", k.backend);
        }
    }

    #[test]
    fn fused_nchw_sampling_matches_nhwc(h in 1usize..6, w in 1usize..9, g in 1usize..5, cpg in 1usize..80, npx in 0usize..20, seed in any::<u64>()) {
        let mut rng = StdRng::seed_from_u64(seed);
        let c = g * cpg;
        let len = h * w * c;
        let n = npx * g;
        let src: Vec<f32> = (0..len).map(|_| rng.gen_range(-3.0..3.0)).collect();
        let src16: Vec<f16> = src.iter().map(|&v| f16::from_f32(v)).collect();
        let srcq: Vec<i8> = (0..len).map(|_| rng.gen()).collect();
        let (taps, tapsq) = random_taps(&mut rng, n, len, cpg, c, w);
        let mut want = vec![0.0; n * cpg];
        scalar::sample_f32(&src, &taps, cpg, &mut want);
        let mut want16 = vec![f16::ZERO; n * cpg];
        scalar::sample_f16(&src16, &taps, cpg, &mut want16);
        let mut wantq = vec![0i8; n * cpg];
        scalar::sample_i8(&srcq, &tapsq, cpg, &mut wantq);
        // Planes wider than the row, so writes past X < npx would be caught.
        let plane = npx + 3;
        let at = |x: usize, q: usize, cc: usize| ((q * cpg + cc) * plane + x, (x * g + q) * cpg + cc);
        let mut all: Vec<&Kernels> = simd_backends();
        all.push(&scalar::KERNELS);
        for k in all {
            if let Some(f) = k.sample_f32_nchw {
                let mut got = vec![f32::NAN; c * plane];
                // SAFETY: `got` holds c·plane values, enough for every (channel, X < npx).
                unsafe { f(&src, &taps, g, cpg, got.as_mut_ptr(), plane) };
                let m = want.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
                for x in 0..plane { for q in 0..g { for cc in 0..cpg {
                    let (d, r) = at(x, q, cc);
                    if x < npx {
                        prop_assert!((got[d] - want[r]).abs() <= 1e-5 * m, "{} sample_f32_nchw", k.backend);
                    } else {
                        prop_assert!(got[d].is_nan(), "{} sample_f32_nchw wrote outside its row", k.backend);
                    }
                }}}
            }
            if let Some(f) = k.sample_f16_nchw {
                let mut got = vec![f16::NAN; c * plane];
                // SAFETY: as above.
                unsafe { f(&src16, &taps, g, cpg, got.as_mut_ptr(), plane) };
                for x in 0..npx { for q in 0..g { for cc in 0..cpg {
                    let (d, r) = at(x, q, cc);
                    prop_assert!((got[d].to_f32() - want16[r].to_f32()).abs() <= 1e-2, "{} sample_f16_nchw", k.backend);
                }}}
            }
            if let Some(f) = k.sample_i8_nchw {
                let mut got = vec![0x55i8; c * plane];
                // SAFETY: as above.
                unsafe { f(&srcq, &tapsq, g, cpg, got.as_mut_ptr(), plane) };
                for x in 0..plane { for q in 0..g { for cc in 0..cpg {
                    let (d, r) = at(x, q, cc);
                    if x < npx {
                        prop_assert_eq!(got[d], wantq[r], "{} sample_i8_nchw", k.backend);
                    } else {
                        prop_assert_eq!(got[d], 0x55, "{} sample_i8_nchw wrote outside its row", k.backend);
                    }
                }}}
            }
        }
    }

    #[test]
    fn conversions_and_transposes_are_exact(rows in 1usize..40, cols in 1usize..40, seed in any::<u64>()) {
        let mut rng = StdRng::seed_from_u64(seed);
        let n = rows * cols;
        let mut f: Vec<f32> = (0..n).map(|_| rng.gen_range(-70000.0..70000.0f32) * if rng.gen_bool(0.5) { 1e-6 } else { 1.0 }).collect();
        // Specials: infinities, signed zeros, subnormal results, overflow, ties.
        let specials = [f32::INFINITY, f32::NEG_INFINITY, 0.0, -0.0, 1e-8, 65520.0, 2049.0, 6.0e-8];
        for (i, s) in specials.iter().enumerate() { if i < n { f[i] = *s; } }
        let h: Vec<f16> = f.iter().map(|&v| f16::from_f32(v)).collect();
        let mut want_h = vec![f16::ZERO; n];
        scalar::cvt_f32_f16(&f, &mut want_h);
        let mut want_f = vec![0.0; n];
        scalar::cvt_f16_f32(&h, &mut want_f);
        let u8s: Vec<u8> = (0..n).map(|_| rng.gen()).collect();
        let u16s: Vec<u16> = (0..n).map(|_| rng.gen()).collect();
        for k in simd_backends() {
            let mut got_h = vec![f16::ZERO; n];
            (k.cvt_f32_f16)(&f, &mut got_h);
            prop_assert!(got_h.iter().zip(&want_h).all(|(a, b)| a.to_bits() == b.to_bits()), "{} cvt_f32_f16", k.backend);
            let mut got_f = vec![0.0; n];
            (k.cvt_f16_f32)(&h, &mut got_f);
            prop_assert!(got_f.iter().zip(&want_f).all(|(a, b)| a.to_bits() == b.to_bits()), "{} cvt_f16_f32", k.backend);

            let (src_ld, dst_ld) = (cols + 1, rows + 2);
            let s8: Vec<u8> = (0..rows * src_ld).map(|i| if i % src_ld < cols { u8s[(i / src_ld) * cols + i % src_ld] } else { 0 }).collect();
            let mut want8 = vec![0u8; cols * dst_ld];
            let mut got8 = vec![0u8; cols * dst_ld];
            // SAFETY: both destinations hold cols·dst_ld elements, enough for every write.
            unsafe {
                (scalar::KERNELS.transpose_u8)(&s8, rows, cols, src_ld, want8.as_mut_ptr(), dst_ld);
                (k.transpose_u8)(&s8, rows, cols, src_ld, got8.as_mut_ptr(), dst_ld);
            }
            prop_assert_eq!(&got8, &want8, "{} transpose_u8", k.backend);
            let mut want16 = vec![0u16; cols * dst_ld];
            let mut got16 = vec![0u16; cols * dst_ld];
            let mut wantf = vec![0f32; cols * dst_ld];
            let mut gotf = vec![0f32; cols * dst_ld];
            // SAFETY: as above.
            unsafe {
                (scalar::KERNELS.transpose_u16)(&u16s, rows, cols, cols, want16.as_mut_ptr(), dst_ld);
                (k.transpose_u16)(&u16s, rows, cols, cols, got16.as_mut_ptr(), dst_ld);
                (scalar::KERNELS.transpose_f32)(&f, rows, cols, cols, wantf.as_mut_ptr(), dst_ld);
                (k.transpose_f32)(&f, rows, cols, cols, gotf.as_mut_ptr(), dst_ld);
            }
            prop_assert_eq!(&got16, &want16, "{} transpose_u16", k.backend);
            prop_assert!(gotf.iter().zip(&wantf).all(|(a, b)| a.to_bits() == b.to_bits()), "{} transpose_f32", k.backend);
        }
    }
}

#[test]
fn unusable_backends_explain_what_is_missing() {
    for b in Backend::ALL {
        match b.kernels() {
            Ok(k) => assert_eq!(k.backend, b),
            Err(e) => {
                let msg = e.to_string();
                assert!(msg.contains(b.name()), "{msg}");
                assert!(
                    msg.contains("lacks") || msg.contains("not compiled"),
                    "{msg}"
                );
            }
        }
    }
    assert!(Backend::Scalar.kernels().is_ok());
    assert_eq!(kernels::BACKEND_ENV, "DYSAMPLE_BACKEND");
}
