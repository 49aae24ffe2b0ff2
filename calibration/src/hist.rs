//! Streamed per-tensor histograms: fixed memory whatever the number of samples.
//!
//! A histogram has `2·B` equal bins over `[−R, R]`, symmetric around 0 so that the absolute-value
//! histogram TensorRT's entropy calibrator needs is a fold of it. `R` starts at the first batch's
//! largest magnitude; a value beyond it doubles `R` (merging bin pairs, exact for counts) until it
//! fits. One pass over the data therefore suffices, and every bin keeps at least `B/2` of its
//! resolution relative to the final maximum. The exact minimum and maximum are kept beside it.

use serde::{Deserialize, Serialize};

/// Bins on each side of 0.
pub const HALF_BINS: usize = 2048;

/// A histogram of one tensor's values over all samples.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Histogram {
    /// Half range `R`: bins cover `[−R, R]`. 0 until a non-zero value arrives.
    pub range: f64,
    /// `2·HALF_BINS` counts; bin `i` covers `[−R + i·w, −R + (i+1)·w)`, `w = R / HALF_BINS`.
    pub counts: Vec<u64>,
    /// Values seen that were exactly 0 while `range` was still 0 (added to the bins once
    /// the range is known).
    pending_zeros: u64,
    pub min: f32,
    pub max: f32,
    pub total: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl Histogram {
    pub fn new() -> Self {
        Self {
            range: 0.0,
            counts: vec![0; 2 * HALF_BINS],
            pending_zeros: 0,
            min: f32::INFINITY,
            max: f32::NEG_INFINITY,
            total: 0,
        }
    }

    /// Bin width `R / B`.
    pub fn bin_width(&self) -> f64 {
        self.range / HALF_BINS as f64
    }

    /// Adds finite values (the caller checks finiteness, so it can name the tensor).
    pub fn add(&mut self, xs: &[f32]) {
        if xs.is_empty() {
            return;
        }
        let (mut lo, mut hi) = (f32::INFINITY, f32::NEG_INFINITY);
        for &x in xs {
            lo = lo.min(x);
            hi = hi.max(x);
        }
        self.min = self.min.min(lo);
        self.max = self.max.max(hi);
        self.total += xs.len() as u64;
        let m = (lo.abs().max(hi.abs())) as f64;
        if self.range == 0.0 {
            if m == 0.0 {
                self.pending_zeros += xs.len() as u64;
                return;
            }
            self.range = m;
            let z = std::mem::take(&mut self.pending_zeros);
            self.counts[HALF_BINS] += z;
        }
        while m > self.range {
            self.double();
        }
        let inv = HALF_BINS as f64 / self.range;
        let last = 2 * HALF_BINS - 1;
        for &x in xs {
            let i = ((x as f64 + self.range) * inv) as usize;
            self.counts[i.min(last)] += 1;
        }
    }

    /// Doubles the range: bins `2k, 2k+1` of the old histogram become bin `B/2 + k`.
    fn double(&mut self) {
        let n = 2 * HALF_BINS;
        let mut next = vec![0u64; n];
        for k in 0..HALF_BINS {
            next[HALF_BINS / 2 + k] = self.counts[2 * k] + self.counts[2 * k + 1];
        }
        self.counts = next;
        self.range *= 2.0;
    }

    /// Counts of `|x|`: `HALF_BINS` bins over `[0, R]`.
    pub fn abs_counts(&self) -> Vec<u64> {
        let mut a = vec![0u64; HALF_BINS];
        for j in 0..HALF_BINS {
            a[j] = self.counts[HALF_BINS + j] + self.counts[HALF_BINS - 1 - j];
        }
        a[0] += self.pending_zeros;
        a
    }

    /// Bin centres, `2·HALF_BINS` of them.
    pub fn centres(&self) -> Vec<f64> {
        let w = self.bin_width();
        (0..2 * HALF_BINS)
            .map(|i| -self.range + (i as f64 + 0.5) * w)
            .collect()
    }

    /// Merges another histogram of the same tensor (from another worker).
    pub fn merge(&mut self, other: &Histogram) {
        if other.total == 0 {
            return;
        }
        let min = self.min.min(other.min);
        let max = self.max.max(other.max);
        let total = self.total + other.total;
        let zeros = self.pending_zeros + other.pending_zeros;
        let mut a = std::mem::take(self);
        let mut b = other.clone();
        if a.range < b.range {
            std::mem::swap(&mut a, &mut b);
        }
        if b.range > 0.0 {
            // Ranges that came from the same first value differ by a power of two: doubling the
            // smaller is exact. Otherwise its bins are re-binned by their centres.
            while b.range * 2.0 <= a.range * (1.0 + 1e-12) {
                b.double();
            }
            if (b.range - a.range).abs() <= 1e-12 * a.range {
                for (x, y) in a.counts.iter_mut().zip(&b.counts) {
                    *x += y;
                }
            } else {
                let inv = HALF_BINS as f64 / a.range;
                let last = 2 * HALF_BINS - 1;
                for (c, &n) in b.centres().iter().zip(&b.counts) {
                    let i = ((c + a.range) * inv) as usize;
                    a.counts[i.min(last)] += n;
                }
            }
        }
        a.min = min;
        a.max = max;
        a.total = total;
        a.pending_zeros = 0;
        if a.range > 0.0 {
            a.counts[HALF_BINS] += zeros;
        } else {
            a.pending_zeros = zeros;
        }
        *self = a;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn counts_match_a_direct_binning_after_doubling() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut h = Histogram::new();
        let mut all = Vec::new();
        // Growing magnitudes force several doublings.
        for k in 0..6 {
            let amp = 0.3 * 2f32.powi(k);
            let xs: Vec<f32> = (0..5000).map(|_| rng.gen_range(-amp..amp)).collect();
            h.add(&xs);
            all.extend(xs);
        }
        assert_eq!(h.total, all.len() as u64);
        assert_eq!(h.counts.iter().sum::<u64>(), all.len() as u64);
        // The final range is the first maximum times a power of two, and holds every value.
        let m = all.iter().fold(0f32, |a, &x| a.max(x.abs())) as f64;
        assert!(h.range >= m && h.range < 2.0 * m + 1e-9, "{} {m}", h.range);
        // Bins of values not near a bin edge agree with direct binning in the final range.
        let w = h.bin_width();
        let mut direct = vec![0u64; 2 * HALF_BINS];
        for &x in &all {
            direct[(((x as f64 + h.range) / w) as usize).min(2 * HALF_BINS - 1)] += 1;
        }
        let diff: u64 = direct
            .iter()
            .zip(&h.counts)
            .map(|(a, b)| a.abs_diff(*b))
            .sum();
        // Doubling is exact for counts: values fall into the same merged bin.
        assert!(diff <= all.len() as u64 / 1000, "{diff}");
        assert_eq!(h.min, all.iter().cloned().fold(f32::INFINITY, f32::min));
    }

    #[test]
    fn merge_equals_single_stream() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let a: Vec<f32> = (0..3000).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let b: Vec<f32> = (0..3000).map(|_| rng.gen_range(-4.0..4.0)).collect();
        let mut one = Histogram::new();
        one.add(&a);
        one.add(&b);
        let mut ha = Histogram::new();
        ha.add(&a);
        let mut hb = Histogram::new();
        hb.add(&b);
        ha.merge(&hb);
        assert_eq!(ha.total, one.total);
        assert_eq!(ha.counts.iter().sum::<u64>(), 6000);
        assert_eq!((ha.min, ha.max), (one.min, one.max));
    }

    #[test]
    fn zeros_before_any_range() {
        let mut h = Histogram::new();
        h.add(&[0.0; 10]);
        h.add(&[1.0, -1.0]);
        assert_eq!(h.counts.iter().sum::<u64>(), 12);
        assert_eq!(h.abs_counts()[0], 10);
    }
}
