//! Element-wise float math for the engine's offset step, written so LLVM vectorizes it (and
//! compiled again with AVX2 / AVX-512 on x86, picked at run time). libm's `expf` is a scalar
//! call per element; with dyscope it cost as much as a quarter of the float conv.

/// `r[i] *= sigmoid(s[i])` for every `i < r.len()` (`s` must be at least as long).
pub(crate) fn mul_sigmoid(r: &mut [f32], s: &[f32]) {
    assert!(s.len() >= r.len());
    #[cfg(target_arch = "x86_64")]
    {
        let cpu = crate::cpu::CpuFeatures::get();
        if cpu.avx512f && cpu.avx512vl && cpu.avx512dq {
            // SAFETY: the AVX-512 features this copy is compiled for were detected at run time.
            return unsafe { mul_sigmoid_avx512(r, s) };
        }
        if cpu.avx2 && cpu.fma {
            // SAFETY: AVX2 and FMA were detected at run time.
            return unsafe { mul_sigmoid_avx2(r, s) };
        }
    }
    mul_sigmoid_body(r, s)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx512dq,avx2,fma")]
unsafe fn mul_sigmoid_avx512(r: &mut [f32], s: &[f32]) {
    mul_sigmoid_body(r, s)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn mul_sigmoid_avx2(r: &mut [f32], s: &[f32]) {
    mul_sigmoid_body(r, s)
}

#[inline(always)]
fn mul_sigmoid_body(r: &mut [f32], s: &[f32]) {
    let s = &s[..r.len()];
    for (r, &s) in r.iter_mut().zip(s) {
        *r *= 1.0 / (1.0 + exp(-s));
    }
}

/// `e^x` to a few ulp (Cephes `expf`: x = n·ln2 + t with |t| ≤ ln2/2, a degree-6 polynomial
/// for e^t, 2^n through the exponent bits). The input is clamped to [−87.3, 88] (e^x stays a
/// normal f32; a sigmoid is exactly 0 or 1 long before); NaN stays NaN.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let x = x.clamp(-87.336_55, 88.0);
    let n = (x * LOG2E + 0.5).floor();
    let t = x - n * LN2_HI - n * LN2_LO;
    let p = 1.987_569_1e-4f32;
    let p = p.mul_add(t, 1.398_199_9e-3);
    let p = p.mul_add(t, 8.333_452e-3);
    let p = p.mul_add(t, 4.166_579_6e-2);
    let p = p.mul_add(t, 1.666_666_5e-1);
    let p = p.mul_add(t, 5e-1);
    let e = (p * t).mul_add(t, t) + 1.0;
    // n ∈ [−126, 127] after the clamp. 2^23 + 127 + n is an exact f32 whose low mantissa bits
    // are 127 + n: the biased exponent of 2^n, without a float → int conversion (which LLVM
    // does not vectorize with saturation).
    let biased = (n + (8_388_608.0 + 127.0))
        .to_bits()
        .wrapping_sub(0x4B00_0000);
    e * f32::from_bits(biased << 23)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_libm() {
        let mut worst = 0.0f64;
        let mut x = -87.0f32;
        while x < 88.0 {
            let (got, want) = (exp(x) as f64, (x as f64).exp());
            worst = worst.max(((got - want) / want).abs());
            x += 0.0137;
        }
        assert!(worst < 3e-7, "worst relative error {worst}");
        assert!(exp(-200.0) > 0.0 && exp(-200.0) < 2e-38);
        assert!(exp(200.0).is_finite() && exp(200.0) > 1e38);
        assert!(exp(f32::NAN).is_nan());
    }

    #[test]
    fn mul_sigmoid_matches_the_formula() {
        let s: Vec<f32> = (0..1000).map(|i| (i as f32 - 500.0) * 0.05).collect();
        let mut r = vec![2.0f32; 1000];
        mul_sigmoid(&mut r, &s);
        for (r, s) in r.iter().zip(&s) {
            let want = 2.0 / (1.0 + (-(*s as f64)).exp());
            assert!(
                (*r as f64 - want).abs() <= 1e-6 * want.abs().max(1e-3),
                "{s}: {r} vs {want}"
            );
        }
    }
}
