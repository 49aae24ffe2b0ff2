//! Calibration methods: a tensor's [`Histogram`] → the real range that int8 covers.
//!
//! - `minmax`: the exact minimum and maximum seen.
//! - `percentile[:P]` (default 99.99): symmetric, the P-th percentile of `|x|`; asymmetric, the
//!   `(100−P)`-th and P-th percentiles of `x`.
//! - `entropy`: TensorRT's entropy calibration (the "EntropyCalibration2" algorithm as in
//!   NVIDIA's pytorch-quantization `_compute_amax_entropy`): over candidate clip points
//!   `i = 128 … B` bins of the `|x|` histogram, the clipped reference distribution (outliers
//!   folded into its last bin) is compared with its 128-level quantized version by KL
//!   divergence; the last minimum wins. Symmetric by nature: asymmetric use clips `[min, max]`
//!   to `[−amax, amax]`.
//! - `mse`: the clip range minimising the expected quantization error over the histogram:
//!   clipped values cost `(|x| − t)²`, kept values the rounding noise `s²/12`. Symmetric: over
//!   `t` on the bin edges; asymmetric: over `[α·min, β·max]`, α in steps of 1/32, β of 1/128.

use crate::hist::{Histogram, HALF_BINS};
use dysample::quant::{affine_from_range, Affine, Symmetry};
use serde::{Deserialize, Serialize};

/// A calibration method.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "lowercase")]
pub enum Method {
    MinMax,
    Percentile { percentile: f64 },
    Entropy,
    Mse,
}

impl Method {
    /// Parses `minmax`, `percentile`, `percentile:P` (0 < P ≤ 100), `entropy`, `mse`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "--method '{s}': expected minmax, percentile[:P] with 0 < P <= 100, entropy or mse"
            )
        };
        Ok(match s {
            "minmax" => Method::MinMax,
            "entropy" => Method::Entropy,
            "mse" => Method::Mse,
            "percentile" => Method::Percentile { percentile: 99.99 },
            _ => {
                let p = s.strip_prefix("percentile:").ok_or_else(bad)?;
                let p: f64 = p.parse().map_err(|_| bad())?;
                if !(p > 0.0 && p <= 100.0) {
                    return Err(bad());
                }
                Method::Percentile { percentile: p }
            }
        })
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Method::MinMax => f.write_str("minmax"),
            Method::Percentile { percentile } => write!(f, "percentile:{percentile}"),
            Method::Entropy => f.write_str("entropy"),
            Method::Mse => f.write_str("mse"),
        }
    }
}

/// The real range a tensor's int8 encoding covers.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Range {
    pub lo: f32,
    pub hi: f32,
}

impl Range {
    /// Largest magnitude, `max(|lo|, |hi|)`.
    pub fn amax(&self) -> f32 {
        self.lo.abs().max(self.hi.abs())
    }

    /// The int8 parameters for this range (the SDK's `affine_from_range`).
    pub fn affine(&self, symmetry: Symmetry) -> Affine {
        affine_from_range(self.lo, self.hi, symmetry)
    }
}

/// The range `method` picks for a histogram (`None` when it saw no values).
pub fn range(h: &Histogram, method: Method, symmetry: Symmetry) -> Option<Range> {
    if h.total == 0 {
        return None;
    }
    let sym = |a: f64| {
        let a = a as f32;
        Range { lo: -a, hi: a }
    };
    let amax_seen = (h.min.abs().max(h.max.abs())) as f64;
    Some(match (method, symmetry) {
        (Method::MinMax, Symmetry::Symmetric) => sym(amax_seen),
        (Method::MinMax, Symmetry::Asymmetric) => Range {
            lo: h.min,
            hi: h.max,
        },
        (Method::Percentile { percentile }, Symmetry::Symmetric) => {
            sym(abs_percentile(h, percentile / 100.0).min(amax_seen))
        }
        (Method::Percentile { percentile }, Symmetry::Asymmetric) => {
            let p = percentile / 100.0;
            Range {
                lo: (signed_quantile(h, 1.0 - p) as f32).max(h.min),
                hi: (signed_quantile(h, p) as f32).min(h.max),
            }
        }
        (Method::Entropy, sy) => {
            let a = entropy_amax(&h.abs_counts(), h.bin_width()).min(amax_seen);
            match sy {
                Symmetry::Symmetric => sym(a),
                Symmetry::Asymmetric => Range {
                    lo: h.min.max(-a as f32),
                    hi: h.max.min(a as f32),
                },
            }
        }
        (Method::Mse, Symmetry::Symmetric) => sym(mse_amax(h).min(amax_seen)),
        (Method::Mse, Symmetry::Asymmetric) => mse_asymmetric(h),
    })
}

/// The `q`-quantile of `|x|`, interpolated linearly inside its bin.
fn abs_percentile(h: &Histogram, q: f64) -> f64 {
    let a = h.abs_counts();
    quantile_of(&a, h.bin_width(), 0.0, q)
}

/// The `q`-quantile of `x` over the signed bins.
fn signed_quantile(h: &Histogram, q: f64) -> f64 {
    quantile_of(&h.counts, h.bin_width(), -h.range, q)
}

fn quantile_of(counts: &[u64], w: f64, start: f64, q: f64) -> f64 {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return 0.0;
    }
    let target = q.clamp(0.0, 1.0) * total as f64;
    let mut cum = 0.0;
    for (i, &n) in counts.iter().enumerate() {
        let next = cum + n as f64;
        if next >= target && n > 0 {
            let frac = ((target - cum) / n as f64).clamp(0.0, 1.0);
            return start + (i as f64 + frac) * w;
        }
        cum = next;
    }
    start + counts.len() as f64 * w
}

/// Levels of the quantized distribution (int8: 128 non-negative levels).
const QUANT_LEVELS: usize = 128;

/// TensorRT's entropy calibration over an `|x|` histogram of bin width `w`: the clip point.
pub fn entropy_amax(abs_counts: &[u64], w: f64) -> f64 {
    let n = abs_counts.len();
    if n <= QUANT_LEVELS {
        return n as f64 * w;
    }
    let mut bins: Vec<f64> = abs_counts.iter().map(|&c| c as f64).collect();
    // As in the reference algorithm: the spike of exact zeros (ReLU outputs) would dominate.
    bins[0] = bins[1];
    let mut suffix = vec![0.0; n + 1];
    for j in (0..n).rev() {
        suffix[j] = suffix[j + 1] + bins[j];
    }
    let mut best = (f64::INFINITY, n);
    let mut p = vec![0.0; n];
    let mut q = vec![0.0; n];
    for i in QUANT_LEVELS..=n {
        // Reference: the first i bins, the rest folded into the last one.
        p[..i].copy_from_slice(&bins[..i]);
        p[i - 1] += suffix[i];
        // Candidate: bins [0, i) merged into 128 chunks (bin j in chunk ⌊128·j / i⌋), each
        // chunk's mass spread evenly over its non-empty bins; empty bins stay empty.
        let mut j = 0;
        for k in 0..QUANT_LEVELS {
            let start = j;
            let (mut sum, mut nnz) = (0.0, 0usize);
            while j < i && (j * QUANT_LEVELS) / i == k {
                if bins[j] > 0.0 {
                    sum += bins[j];
                    nnz += 1;
                }
                j += 1;
            }
            let v = if nnz > 0 { sum / nnz as f64 } else { 0.0 };
            for t in start..j {
                q[t] = if bins[t] > 0.0 { v } else { 0.0 };
            }
        }
        let (sp, sq): (f64, f64) = (p[..i].iter().sum(), q[..i].iter().sum());
        if sp <= 0.0 || sq <= 0.0 {
            continue;
        }
        let mut kl = 0.0;
        for t in 0..i {
            if p[t] > 0.0 {
                if q[t] <= 0.0 {
                    kl = f64::INFINITY;
                    break;
                }
                let (pt, qt) = (p[t] / sp, q[t] / sq);
                kl += pt * (pt / qt).ln();
            }
        }
        // `<=`: the last of equal minima, as the reference picks.
        if kl <= best.0 {
            best = (kl, i);
        }
    }
    best.1 as f64 * w
}

/// Expected squared error of quantizing the histogram with a clip range `[lo, hi]` and step `s`.
fn expected_mse(h: &Histogram, lo: f64, hi: f64, s: f64) -> f64 {
    let noise = s * s / 12.0;
    let mut e = 0.0;
    for (c, &n) in h.centres().iter().zip(&h.counts) {
        if n == 0 {
            continue;
        }
        let d = if *c > hi {
            (c - hi) * (c - hi)
        } else if *c < lo {
            (lo - c) * (lo - c)
        } else {
            noise
        };
        e += n as f64 * d;
    }
    e
}

fn mse_amax(h: &Histogram) -> f64 {
    let w = h.bin_width();
    let mut best = (f64::INFINITY, h.range);
    for k in 1..=HALF_BINS {
        let t = k as f64 * w;
        let e = expected_mse(h, -t, t, t / 127.0);
        if e < best.0 {
            best = (e, t);
        }
    }
    best.1
}

fn mse_asymmetric(h: &Histogram) -> Range {
    let (mn, mx) = (h.min.min(0.0) as f64, h.max.max(0.0) as f64);
    let mut best = (
        f64::INFINITY,
        Range {
            lo: h.min,
            hi: h.max,
        },
    );
    // The two ends are clipped independently (a long tail on one side only is common).
    for a in 1..=32 {
        for b in 1..=128 {
            let r = Range {
                lo: (a as f64 / 32.0 * mn) as f32,
                hi: (b as f64 / 128.0 * mx) as f32,
            };
            let aff = r.affine(Symmetry::Asymmetric);
            let (lo, hi) = (aff.dequantize(-128) as f64, aff.dequantize(127) as f64);
            let e = expected_mse(h, lo, hi, aff.scale as f64);
            if e < best.0 {
                best = (e, r);
            }
        }
    }
    best.1
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn normal(rng: &mut StdRng) -> f64 {
        // Box-Muller (no rand_distr dependency).
        let u: f64 = rng.gen_range(1e-12..1.0);
        let v: f64 = rng.gen_range(0.0..1.0);
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }

    fn hist_of(xs: &[f32]) -> Histogram {
        let mut h = Histogram::new();
        for c in xs.chunks(1000) {
            h.add(c);
        }
        h
    }

    /// Gaussian with a few large outliers: the data every method must clip differently.
    fn heavy(n: usize, seed: u64) -> Vec<f32> {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut v: Vec<f32> = (0..n).map(|_| normal(&mut rng) as f32).collect();
        for k in 0..5 {
            v[k * 97] = 40.0 + k as f32;
        }
        v
    }

    #[test]
    fn parse_methods() {
        assert_eq!(Method::parse("minmax").unwrap(), Method::MinMax);
        assert_eq!(
            Method::parse("percentile:99.9").unwrap(),
            Method::Percentile { percentile: 99.9 }
        );
        for bad in [
            "percentile:0",
            "percentile:101",
            "percentile:x",
            "kl",
            "percentile:",
        ] {
            let e = Method::parse(bad).unwrap_err();
            assert!(e.contains("--method") && e.contains(bad), "{e}");
        }
    }

    #[test]
    fn minmax_is_exact() {
        let v = heavy(20000, 1);
        let h = hist_of(&v);
        let r = range(&h, Method::MinMax, Symmetry::Asymmetric).unwrap();
        let mn = v.iter().cloned().fold(f32::INFINITY, f32::min);
        assert_eq!((r.lo, r.hi), (mn, 44.0));
        assert_eq!(
            range(&h, Method::MinMax, Symmetry::Symmetric).unwrap().hi,
            44.0
        );
    }

    #[test]
    fn percentile_matches_sorted_data() {
        let v = heavy(100_000, 2);
        let h = hist_of(&v);
        let mut a: Vec<f64> = v.iter().map(|x| x.abs() as f64).collect();
        a.sort_by(|x, y| x.partial_cmp(y).unwrap());
        let w = h.bin_width();
        for p in [90.0, 99.0, 99.9] {
            let want = a[((p / 100.0) * a.len() as f64) as usize - 1];
            let got = range(
                &h,
                Method::Percentile { percentile: p },
                Symmetry::Symmetric,
            )
            .unwrap()
            .hi as f64;
            assert!(
                (got - want).abs() <= w,
                "p{p}: {got} vs sorted {want} (bin {w})"
            );
        }
        let mut s: Vec<f64> = v.iter().map(|&x| x as f64).collect();
        s.sort_by(|x, y| x.partial_cmp(y).unwrap());
        let r = range(
            &h,
            Method::Percentile { percentile: 99.0 },
            Symmetry::Asymmetric,
        )
        .unwrap();
        let (lo, hi) = (
            s[(0.01 * s.len() as f64) as usize],
            s[(0.99 * s.len() as f64) as usize - 1],
        );
        assert!(
            (r.lo as f64 - lo).abs() <= w && (r.hi as f64 - hi).abs() <= w,
            "{r:?} vs {lo} {hi}"
        );
    }

    /// Fake-quantizes the raw data with the SDK's int8 arithmetic and returns the exact MSE.
    fn true_mse(v: &[f32], r: Range, sym: Symmetry) -> f64 {
        let a = r.affine(sym);
        v.iter()
            .map(|&x| {
                let d = a.dequantize(a.quantize(x)) as f64 - x as f64;
                d * d
            })
            .sum::<f64>()
            / v.len() as f64
    }

    #[test]
    fn mse_is_near_the_brute_force_optimum() {
        let v = heavy(50_000, 3);
        let h = hist_of(&v);
        for sym in [Symmetry::Symmetric, Symmetry::Asymmetric] {
            let got = range(&h, Method::Mse, sym).unwrap();
            let got_e = true_mse(&v, got, sym);
            // Brute force: every clip point on a fine grid, error on the raw values.
            let mut best = f64::INFINITY;
            for k in 1..=2000 {
                let t = k as f32 * 0.01;
                best = best.min(true_mse(&v, Range { lo: -t, hi: t }, sym));
            }
            let minmax_e = true_mse(&v, range(&h, Method::MinMax, sym).unwrap(), sym);
            assert!(
                got_e <= best * 1.05,
                "{sym:?}: mse pick {got:?} gives {got_e}, brute force {best}"
            );
            // Clipping the five far outliers costs more than it saves here: never worse than
            // the unclipped range.
            assert!(got_e <= minmax_e * 1.0001, "{got_e} vs minmax {minmax_e}");
        }
    }

    /// A direct transcription of the reference algorithm (pytorch-quantization's
    /// `_compute_amax_entropy`: numpy digitize over `linspace(0, i, 129)`, `Counter`, scipy's
    /// `entropy`), written for clarity, not speed.
    fn entropy_naive(hist: &[u64], w: f64) -> f64 {
        let mut bins: Vec<f64> = hist.iter().map(|&c| c as f64).collect();
        bins[0] = bins[1];
        let mut divs = Vec::new();
        for i in 128..=bins.len() {
            let space: Vec<f64> = (0..=128).map(|k| k as f64 * i as f64 / 128.0).collect();
            let mut dig: Vec<i64> = (0..i)
                .map(|j| space.iter().filter(|&&e| e <= j as f64).count() as i64 - 1)
                .collect();
            for j in 0..i {
                if bins[j] == 0.0 {
                    dig[j] = -1;
                }
            }
            let mut dens = vec![0.0; 128];
            let mut cnt = vec![0usize; 128];
            for j in 0..i {
                if dig[j] >= 0 {
                    dens[dig[j] as usize] += bins[j];
                    cnt[dig[j] as usize] += 1;
                }
            }
            let mut q = vec![0.0; i];
            for j in 0..i {
                if dig[j] >= 0 {
                    q[j] = dens[dig[j] as usize] / cnt[dig[j] as usize] as f64;
                }
            }
            let mut p: Vec<f64> = bins[..i].to_vec();
            p[i - 1] += bins[i..].iter().sum::<f64>();
            let (sp, sq) = (p.iter().sum::<f64>(), q.iter().sum::<f64>());
            let mut e = 0.0;
            for j in 0..i {
                let (a, b) = (p[j] / sp, q[j] / sq);
                if a > 0.0 {
                    e += if b > 0.0 {
                        a * (a / b).ln()
                    } else {
                        f64::INFINITY
                    };
                }
            }
            divs.push(e);
        }
        let mut arg = 0;
        for (k, &d) in divs.iter().enumerate() {
            if d <= divs[arg] {
                arg = k;
            }
        }
        (arg + 128) as f64 * w
    }

    #[test]
    fn entropy_matches_the_reference_transcription() {
        // Small histograms keep the naive O(n³) transcription fast.
        let mut rng = StdRng::seed_from_u64(4);
        for case in 0..4 {
            let n = 300 + 50 * case;
            let hist: Vec<u64> = (0..n)
                .map(|j| {
                    let x = j as f64 / n as f64 * 6.0;
                    let g = (1e5 * (-x * x / 2.0).exp()) as u64;
                    if g == 0 && rng.gen_range(0..20) == 0 {
                        1
                    } else {
                        g + rng.gen_range(0..3)
                    }
                })
                .collect();
            let w = 0.01;
            assert_eq!(
                entropy_amax(&hist, w),
                entropy_naive(&hist, w),
                "case {case}"
            );
        }
    }

    #[test]
    fn entropy_keeps_a_uniform_range_and_clips_outliers() {
        let mut rng = StdRng::seed_from_u64(5);
        let u: Vec<f32> = (0..200_000).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let h = hist_of(&u);
        let r = range(&h, Method::Entropy, Symmetry::Symmetric).unwrap();
        // Uniform data: the quantized distribution equals the reference at the full range.
        assert!(r.hi > 0.98 && r.hi <= 1.0, "{r:?}");
        let v = heavy(200_000, 6);
        let r = range(&hist_of(&v), Method::Entropy, Symmetry::Symmetric).unwrap();
        assert!(r.hi > 2.0 && r.hi < 20.0, "{r:?}");
    }
}
