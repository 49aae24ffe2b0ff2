//! The metrics of `models/SPEC.md`, computed in f64.
//!
//! Segmentation ([`SegmentationMetrics`]): `iou` and `miou` accumulated over the set,
//! `boundary_f` per image then averaged. Depth ([`DepthMetrics`]): per-image least-squares
//! scale-and-shift alignment of the prediction to the target inverse depth ([`align`]), then
//! `absrel` and `delta1` per image, averaged over images.

use crate::eval_set::TargetKind;
use nalgebra::{DMatrix, DVector};
use std::collections::BTreeMap;

/// Metric name → value (a fraction, not points).
pub type Metrics = BTreeMap<String, f64>;

/// `a / b`, or 1 when both are 0 (nothing to find and nothing found is perfect agreement).
fn ratio_or_one(a: u64, b: u64) -> f64 {
    if b == 0 {
        1.0
    } else {
        a as f64 / b as f64
    }
}

/// Accumulates the segmentation metrics over a set.
#[derive(Clone, Debug, Default)]
pub struct SegmentationMetrics {
    /// Person intersection and union, summed over images.
    pub inter_fg: u64,
    pub union_fg: u64,
    /// Background intersection and union, summed over images.
    pub inter_bg: u64,
    pub union_bg: u64,
    boundary_f_sum: f64,
    /// Images added.
    pub images: usize,
}

impl SegmentationMetrics {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one image: `pred` and `target` person masks of `h × w`, row-major. Returns the
    /// image's boundary F-score.
    pub fn add(&mut self, pred: &[bool], target: &[bool], h: usize, w: usize) -> f64 {
        assert_eq!(pred.len(), h * w, "prediction size");
        assert_eq!(target.len(), h * w, "target size");
        for (&p, &t) in pred.iter().zip(target) {
            self.inter_fg += (p && t) as u64;
            self.union_fg += (p || t) as u64;
            self.inter_bg += (!p && !t) as u64;
            self.union_bg += (!p || !t) as u64;
        }
        let f = boundary_f(pred, target, h, w);
        self.boundary_f_sum += f;
        self.images += 1;
        f
    }

    /// Accumulated person IoU `ΣI / ΣU` (1 if no image has a person in either mask).
    pub fn iou(&self) -> f64 {
        ratio_or_one(self.inter_fg, self.union_fg)
    }

    /// Mean of the accumulated person and background IoU.
    pub fn miou(&self) -> f64 {
        0.5 * (self.iou() + ratio_or_one(self.inter_bg, self.union_bg))
    }

    /// Mean per-image boundary F-score (NaN before any image).
    pub fn boundary_f(&self) -> f64 {
        self.boundary_f_sum / self.images as f64
    }

    /// `iou`, `miou`, `boundary_f`.
    pub fn finish(&self) -> Metrics {
        Metrics::from([
            ("iou".to_string(), self.iou()),
            ("miou".to_string(), self.miou()),
            ("boundary_f".to_string(), self.boundary_f()),
        ])
    }
}

/// Boundary of a mask: pixels with `M = 1` that have a 4-neighbour inside the image with `M = 0`.
pub fn boundary(mask: &[bool], h: usize, w: usize) -> Vec<bool> {
    let mut b = vec![false; h * w];
    for y in 0..h {
        for x in 0..w {
            let i = y * w + x;
            if !mask[i] {
                continue;
            }
            b[i] = (y > 0 && !mask[i - w])
                || (y + 1 < h && !mask[i + w])
                || (x > 0 && !mask[i - 1])
                || (x + 1 < w && !mask[i + 1]);
        }
    }
    b
}

/// The boundary tolerance `r = ceil(0.008 · sqrt(H² + W²))` pixels.
pub fn boundary_tolerance(h: usize, w: usize) -> usize {
    (0.008 * ((h * h + w * w) as f64).sqrt()).ceil() as usize
}

/// Fraction of the `from` pixels with a `to` pixel within Euclidean distance `r`; the count of
/// matched pixels and of `from` pixels.
fn matched(from: &[bool], to: &[bool], h: usize, w: usize, r: usize) -> (u64, u64) {
    let ri = r as isize;
    let disk: Vec<(isize, isize)> = (-ri..=ri)
        .flat_map(|dy| (-ri..=ri).map(move |dx| (dy, dx)))
        .filter(|(dy, dx)| dy * dy + dx * dx <= ri * ri)
        .collect();
    let (mut hit, mut n) = (0u64, 0u64);
    for y in 0..h as isize {
        for x in 0..w as isize {
            if !from[(y * w as isize + x) as usize] {
                continue;
            }
            n += 1;
            let found = disk.iter().any(|&(dy, dx)| {
                let (yy, xx) = (y + dy, x + dx);
                yy >= 0
                    && xx >= 0
                    && yy < h as isize
                    && xx < w as isize
                    && to[(yy * w as isize + xx) as usize]
            });
            hit += found as u64;
        }
    }
    (hit, n)
}

/// Boundary F-score of one image (SPEC.md): precision = predicted boundary pixels with a target
/// boundary pixel within `r`, recall the converse, `F = 2PR/(P+R)` (0 if P+R = 0); both
/// boundaries empty: 1; one empty: 0.
pub fn boundary_f(pred: &[bool], target: &[bool], h: usize, w: usize) -> f64 {
    let bp = boundary(pred, h, w);
    let bt = boundary(target, h, w);
    let r = boundary_tolerance(h, w);
    let (hp, np) = matched(&bp, &bt, h, w, r);
    let (ht, nt) = matched(&bt, &bp, h, w, r);
    match (np, nt) {
        (0, 0) => 1.0,
        (0, _) | (_, 0) => 0.0,
        _ => {
            let p = hp as f64 / np as f64;
            let rc = ht as f64 / nt as f64;
            if p + rc == 0.0 {
                0.0
            } else {
                2.0 * p * rc / (p + rc)
            }
        }
    }
}

/// Least-squares scale and shift `s, t = argmin Σ (s·d + t − g)²`, in f64, solved with an SVD
/// of the `n × 2` design matrix `[d 1]` (singular values below `1e-12 · σ_max` treated as 0, so
/// a constant prediction gets the minimum-norm solution, which fits `s·d + t = mean(g)`).
pub fn align(d: &[f64], g: &[f64]) -> (f64, f64) {
    assert_eq!(d.len(), g.len());
    assert!(!d.is_empty(), "align needs at least one pixel");
    let a = DMatrix::from_fn(d.len(), 2, |i, j| if j == 0 { d[i] } else { 1.0 });
    let b = DVector::from_column_slice(g);
    let svd = a.svd(true, true);
    let smax = svd.singular_values.max();
    let x = svd.solve(&b, 1e-12 * smax).expect("U and V were computed");
    (x[0], x[1])
}

/// One image's depth figures.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DepthImage {
    pub scale: f64,
    pub shift: f64,
    pub absrel: f64,
    pub delta1: f64,
    /// Valid pixels.
    pub valid: usize,
}

/// Why an image's depth metrics cannot be computed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DepthError {
    #[error("the target has no valid pixel (all 0 or non-finite)")]
    NoValidPixels,
    #[error("the prediction is not finite at pixel {0}")]
    NonFinitePrediction(usize),
}

/// One image's depth metrics: prediction `pred` (relative inverse depth), target `target`
/// (`kind` says depth or disparity), same size, row-major.
pub fn depth_image(
    pred: &[f32],
    target: &[f32],
    kind: TargetKind,
) -> Result<DepthImage, DepthError> {
    assert_eq!(pred.len(), target.len(), "prediction vs target size");
    let mut d = Vec::new();
    let mut g = Vec::new();
    for (i, (&p, &t)) in pred.iter().zip(target).enumerate() {
        if !(t.is_finite() && t > 0.0) {
            continue;
        }
        if !p.is_finite() {
            return Err(DepthError::NonFinitePrediction(i));
        }
        d.push(p as f64);
        g.push(match kind {
            TargetKind::Depth => 1.0 / t as f64,
            TargetKind::Disparity => t as f64,
        });
    }
    if g.is_empty() {
        return Err(DepthError::NoValidPixels);
    }
    let (s, t) = align(&d, &g);
    let eps = 1e-3 * g.iter().fold(0f64, |m, &v| m.max(v));
    let (mut absrel, mut good) = (0f64, 0usize);
    for (&di, &gi) in d.iter().zip(&g) {
        let a = (s * di + t).max(eps);
        // |1/a − 1/g| / (1/g) = |g/a − 1|.
        absrel += (gi / a - 1.0).abs();
        good += ((gi / a).max(a / gi) < 1.25) as usize;
    }
    let n = g.len() as f64;
    Ok(DepthImage {
        scale: s,
        shift: t,
        absrel: absrel / n,
        delta1: good as f64 / n,
        valid: g.len(),
    })
}

/// Accumulates the depth metrics over a set (means over images).
#[derive(Clone, Debug, Default)]
pub struct DepthMetrics {
    absrel_sum: f64,
    delta1_sum: f64,
    /// Images added.
    pub images: usize,
}

impl DepthMetrics {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(
        &mut self,
        pred: &[f32],
        target: &[f32],
        kind: TargetKind,
    ) -> Result<DepthImage, DepthError> {
        let r = depth_image(pred, target, kind)?;
        self.absrel_sum += r.absrel;
        self.delta1_sum += r.delta1;
        self.images += 1;
        Ok(r)
    }

    /// `absrel`, `delta1` (means over images).
    pub fn finish(&self) -> Metrics {
        let n = self.images as f64;
        Metrics::from([
            ("absrel".to_string(), self.absrel_sum / n),
            ("delta1".to_string(), self.delta1_sum / n),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask(rows: &[&str]) -> (Vec<bool>, usize, usize) {
        let h = rows.len();
        let w = rows[0].len();
        let m = rows
            .iter()
            .flat_map(|r| r.chars().map(|c| c == '#'))
            .collect();
        (m, h, w)
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn iou_and_miou_accumulate_pixel_counts_over_images() {
        let mut m = SegmentationMetrics::new();
        // Image 1 (2x2): pred ##/.., target #./#. : person I = 1, U = 3;
        // background: pred bg = {(1,0),(1,1)}, target bg = {(0,1),(1,1)}: I = 1, U = 3.
        let (p, h, w) = mask(&["##", ".."]);
        let (t, _, _) = mask(&["#.", "#."]);
        m.add(&p, &t, h, w);
        // Image 2 (2x2): pred = target = #### : person I = 4, U = 4; background I = 0, U = 0.
        let (p, _, _) = mask(&["##", "##"]);
        m.add(&p, &p, h, w);
        // Accumulated: person (1 + 4)/(3 + 4) = 5/7, not the mean of 1/3 and 1 (= 2/3).
        assert!(close(m.iou(), 5.0 / 7.0));
        // Background (1 + 0)/(3 + 0) = 1/3; miou = (5/7 + 1/3)/2 = 11/21.
        assert!(close(m.miou(), 11.0 / 21.0));
        let f = m.finish();
        assert!(close(f["iou"], 5.0 / 7.0) && close(f["miou"], 11.0 / 21.0));
    }

    #[test]
    fn empty_masks_agree_perfectly() {
        let mut m = SegmentationMetrics::new();
        let (e, h, w) = mask(&["...", "..."]);
        assert_eq!(m.add(&e, &e, h, w), 1.0, "both boundaries empty: F = 1");
        // No person anywhere: IoU 1 by definition, background IoU 6/6.
        assert_eq!((m.iou(), m.miou(), m.boundary_f()), (1.0, 1.0, 1.0));
        // A person only in the target: person IoU 0/4, background 2/6; F = 0 (one empty).
        let (t, _, _) = mask(&["##.", "##."]);
        assert_eq!(boundary_f(&e, &t, h, w), 0.0);
        let mut m = SegmentationMetrics::new();
        m.add(&e, &t, h, w);
        assert_eq!(m.iou(), 0.0);
        assert!(close(m.miou(), 0.5 * (2.0 / 6.0)));
    }

    #[test]
    fn boundary_is_the_inner_4_neighbour_edge() {
        // A 3x3 square inside 5x5: its 8 outer ring pixels are boundary, the centre is not.
        let (m, h, w) = mask(&[".....", ".###.", ".###.", ".###.", "....."]);
        let b = boundary(&m, h, w);
        assert_eq!(b.iter().filter(|&&x| x).count(), 8);
        assert!(!b[2 * 5 + 2]);
        // A full mask has no boundary: pixels at the image edge have no 0 neighbour inside it.
        let (full, h, w) = mask(&["###", "###"]);
        assert!(boundary(&full, h, w).iter().all(|&x| !x));
        // Only in-image neighbours count: a full left column next to 0s has boundary 2 pixels.
        let (c, h, w) = mask(&["#..", "#.."]);
        assert_eq!(
            boundary(&c, h, w),
            vec![true, false, false, true, false, false]
        );
    }

    #[test]
    fn tolerance_is_three_pixels_at_256() {
        // 0.008·sqrt(2·256²) = 0.008·362.04 = 2.896 -> 3.
        assert_eq!(boundary_tolerance(256, 256), 3);
        // 0.008·sqrt(100² + 0) = 0.8 -> 1; 0.008·sqrt(480² + 640²) = 0.008·800 = 6.4 -> 7.
        assert_eq!(boundary_tolerance(100, 0), 1);
        assert_eq!(boundary_tolerance(480, 640), 7);
    }

    #[test]
    fn boundary_f_counts_matches_within_the_tolerance() {
        // 1 x 300 strip (r = ceil(0.008·sqrt(1 + 90000)) = ceil(2.4000) = 3).
        // Target: x in 0..100 is 1 -> boundary pixel {99}.
        // Prediction: x in 0..103 -> boundary {102}: distance 3 <= 3: P = R = 1, F = 1.
        let w = 300;
        let t: Vec<bool> = (0..w).map(|x| x < 100).collect();
        let p: Vec<bool> = (0..w).map(|x| x < 103).collect();
        assert_eq!(boundary_tolerance(1, w), 3);
        assert_eq!(boundary_f(&p, &t, 1, w), 1.0);
        // Prediction x in 0..104 -> boundary {103}: distance 4 > 3: P = R = 0, F = 0.
        let p: Vec<bool> = (0..w).map(|x| x < 104).collect();
        assert_eq!(boundary_f(&p, &t, 1, w), 0.0);
        // Prediction: two runs, 0..100 (boundary {99}, matched) and 200..210 (boundary {200, 209},
        // unmatched): P = 1/3, R = 1/1, F = 2·(1/3)·1/(1/3 + 1) = (2/3)/(4/3) = 1/2.
        let p: Vec<bool> = (0..w).map(|x| x < 100 || (200..210).contains(&x)).collect();
        assert!(close(boundary_f(&p, &t, 1, w), 0.5));
    }

    #[test]
    fn boundary_f_is_averaged_per_image() {
        let mut m = SegmentationMetrics::new();
        let (e, h, w) = mask(&["....", "...."]);
        let (t, _, _) = mask(&["##..", "##.."]);
        m.add(&t, &t, h, w); // F = 1
        m.add(&e, &t, h, w); // F = 0
        assert!(close(m.boundary_f(), 0.5));
    }

    #[test]
    fn alignment_recovers_an_affine_map() {
        // g = 2d + 1 exactly: s = 2, t = 1.
        let d = [0.0, 1.0, 2.0, 3.0];
        let g = [1.0, 3.0, 5.0, 7.0];
        let (s, t) = align(&d, &g);
        assert!(
            (s - 2.0).abs() < 1e-12 && (t - 1.0).abs() < 1e-12,
            "{s} {t}"
        );
        // Not exactly affine: d = (0, 1, 2), g = (0, 2, 1): the regression line through
        // means (1, 1) has slope Σ(d−1)(g−1)/Σ(d−1)² = ((−1)(−1) + 0 + (1)(0))/2 = 1/2, t = 1/2.
        let (s, t) = align(&[0.0, 1.0, 2.0], &[0.0, 2.0, 1.0]);
        assert!(
            (s - 0.5).abs() < 1e-12 && (t - 0.5).abs() < 1e-12,
            "{s} {t}"
        );
    }

    #[test]
    fn depth_perfect_up_to_scale_and_shift() {
        // Target depth (1, 2, 4, 0 = invalid, inf = invalid): inverse g = (1, 0.5, 0.25).
        // Prediction = 3g − 1 = (2, 0.5, −0.25) on the valid pixels: aligned exactly.
        let target = [1.0, 2.0, 4.0, 0.0, f32::INFINITY];
        let pred = [2.0, 0.5, -0.25, 123.0, f32::NAN];
        let r = depth_image(&pred, &target, TargetKind::Depth).unwrap();
        assert_eq!(r.valid, 3);
        assert!((r.scale - 1.0 / 3.0).abs() < 1e-12 && (r.shift - 1.0 / 3.0).abs() < 1e-12);
        assert!(r.absrel < 1e-12 && r.delta1 == 1.0, "{r:?}");
    }

    #[test]
    fn depth_constant_prediction_aligns_to_the_mean() {
        // Disparity target g = (1, 2, 3, 6), constant prediction: a = mean(g) = 3 everywhere
        // (eps = 1e-3·6 does not bite). absrel = mean |g/a − 1| = (2/3 + 1/3 + 0 + 1)/4 = 1/2.
        // delta1: max(g/a, a/g) = (3, 1.5, 1, 2): only g = 3 is < 1.25 -> 1/4.
        let r = depth_image(
            &[0.7, 0.7, 0.7, 0.7],
            &[1.0, 2.0, 3.0, 6.0],
            TargetKind::Disparity,
        )
        .unwrap();
        assert!(
            (r.scale * (0.7f32 as f64) + r.shift - 3.0).abs() < 1e-9,
            "{r:?}"
        );
        assert!((r.absrel - 0.5).abs() < 1e-9 && r.delta1 == 0.25, "{r:?}");
    }

    #[test]
    fn depth_epsilon_clamp_and_delta_threshold() {
        // Disparity g = (1, 1, 10), prediction d = (1, 1, −8): an exact affine image with
        // s·1 + t = 1 and −8s + t = 10 -> s = −1, t = 2: aligned a = (1, 1, 10).
        let r = depth_image(&[1.0, 1.0, -8.0], &[1.0, 1.0, 10.0], TargetKind::Disparity).unwrap();
        assert!(r.absrel < 1e-12 && r.delta1 == 1.0);
        // An inexact fit: g = (1, 2, 3), d = (0, 0, 1). The d = 0 pixels share s·0 + t, best at
        // mean(1, 2) = 1.5; the d = 1 pixel gets s + t = 3: s = 1.5, t = 1.5, a = (1.5, 1.5, 3)
        // (eps = 3e-3 does not bite).
        let r = depth_image(&[0.0, 0.0, 1.0], &[1.0, 2.0, 3.0], TargetKind::Disparity).unwrap();
        assert!((r.shift - 1.5).abs() < 1e-12 && (r.scale - 1.5).abs() < 1e-12);
        // absrel = (|1/1.5 − 1| + |2/1.5 − 1| + 0)/3 = (1/3 + 1/3)/3 = 2/9.
        assert!((r.absrel - 2.0 / 9.0).abs() < 1e-12, "{r:?}");
        // delta1: ratios (1.5, 1.333.., 1): only the last < 1.25 -> 1/3.
        assert!((r.delta1 - 1.0 / 3.0).abs() < 1e-12);
        // The clamp: d = (0, 0, 1, 2), g = (1000, 1000, 1, 1) (eps = 1e-3·1000 = 1); fit through
        // (0, 1000) twice, (1, 1), (2, 1): mean d = 3/4, mean g = 500.5; Σ(d−d̄)(g−ḡ) = (−3/4)(499.5)·2 + (1/4)(−499.5)
        // + (5/4)(−499.5) = −499.5·(3/2 + 1/4 + 5/4) = −1498.5; Σ(d−d̄)² = 9/16·2 + 1/16 + 25/16
        // = 44/16 = 2.75; s = −544.909..., t = 500.5 + 0.75·544.909 = 909.18...;
        // at d = 2: a = 909.18 − 1089.82 = −180.6 -> clamped to eps = 1: g/a = 1, exact there.
        let r = depth_image(
            &[0.0, 0.0, 1.0, 2.0],
            &[1000.0, 1000.0, 1.0, 1.0],
            TargetKind::Disparity,
        )
        .unwrap();
        let s = -1498.5 / 2.75;
        let t = 500.5 - 0.75 * s;
        assert!(
            (r.scale - s).abs() < 1e-9 && (r.shift - t).abs() < 1e-9,
            "{r:?}"
        );
        let a = [t, t, (s + t).max(1.0), (2.0 * s + t).max(1.0)];
        assert_eq!(a[3], 1.0, "the clamp bites");
        let g = [1000.0, 1000.0, 1.0, 1.0];
        let absrel: f64 = (0..4).map(|i| (g[i] / a[i] - 1.0).abs()).sum::<f64>() / 4.0;
        assert!((r.absrel - absrel).abs() < 1e-9);
        // delta1: pixel 3 is exact (ratio 1); pixels 0,1: 1000/909.18 = 1.0999 < 1.25;
        // pixel 2: a = 364.27, ratio 364 -> 3/4.
        assert_eq!(r.delta1, 0.75);
    }

    #[test]
    fn depth_all_invalid_is_an_error() {
        let e = depth_image(&[1.0, 2.0], &[0.0, f32::NAN], TargetKind::Depth).unwrap_err();
        assert_eq!(e, DepthError::NoValidPixels);
        let e = depth_image(&[f32::NAN, 2.0], &[1.0, 1.0], TargetKind::Depth).unwrap_err();
        assert_eq!(e, DepthError::NonFinitePrediction(0));
        // Negative depth is invalid too.
        let e = depth_image(&[1.0], &[-1.0], TargetKind::Depth).unwrap_err();
        assert_eq!(e, DepthError::NoValidPixels);
    }

    #[test]
    fn depth_metrics_are_means_over_images() {
        let mut m = DepthMetrics::new();
        m.add(&[1.0, 2.0], &[1.0, 2.0], TargetKind::Disparity)
            .unwrap(); // exact: 0, 1
        m.add(&[0.7; 4], &[1.0, 2.0, 3.0, 6.0], TargetKind::Disparity)
            .unwrap(); // 1/2, 1/4
        let f = m.finish();
        assert!((f["absrel"] - 0.25).abs() < 1e-9);
        assert!((f["delta1"] - 0.625).abs() < 1e-9);
    }
}
