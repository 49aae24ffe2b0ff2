//! Sample points (taps) of output rows, built in vectorizable passes (int8 and float).
//!
//! Per tap the work is a handful of integer operations (clamp, split into pixel and Q11
//! fraction, address, four Q14 weights); written as one scalar loop over an AoS tap array it
//! costs about as much as the sampling itself. Here the offsets are first copied into tap order,
//! then every quantity is computed in structure-of-arrays loops that LLVM vectorizes (the x86
//! build is compiled twice more with AVX2 / AVX-512 enabled and picked at run time), and only
//! the final pass writes the [`TapQ11`] array. [`taps_q11_unopt`] is the plain reference the
//! fast path is tested against.

use crate::engine::grow;
use crate::kernels::{Tap, TapQ11};

/// What the tap builder needs to know about the layer and the image.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Geometry {
    pub(crate) w: usize,
    pub(crate) h: usize,
    pub(crate) c: usize,
    pub(crate) s: usize,
    pub(crate) g: usize,
}

impl Geometry {
    fn cpg(&self) -> usize {
        self.c / self.g
    }
    /// Offset channels per low-res pixel: x then y, `g·s²` each.
    fn oc(&self) -> usize {
        2 * self.g * self.s * self.s
    }
    /// Taps per output row.
    pub(crate) fn row_taps(&self) -> usize {
        self.s * self.w * self.g
    }
    /// Whether `x·2048 + offset` fits i32 for every clamped offset (|off| ≤ 2^24 + init_pos).
    fn small(&self) -> bool {
        self.w < (1 << 19) && self.h < (1 << 19)
    }
}

/// Reusable buffers of the fast builder: two arrays cut into sections, so that a scratch that
/// meets int8 work for the first time makes three allocations, not eleven.
#[derive(Clone, Default)]
pub(crate) struct PointScratch {
    /// `ox`, `oy`, `pxb` (n each).
    ints: Vec<i32>,
    /// `base`, `dx`, `dy`, `fxy`, `wlo`, `whi`, `qoff` (n each).
    words: Vec<u32>,
    chans: Vec<usize>,
    /// `(w, s, g, cpg)` that `pxb` and `qoff` were built for.
    key: Option<(usize, usize, usize, usize)>,
    /// Float builder: `ox`, `oy`, `pxb`, `fx`, `fy` (n each).
    floats: Vec<f32>,
    /// Float builder: `base`, `dx`, `dy`, `qoff` (n each).
    fwords: Vec<u32>,
    fkey: Option<(usize, usize, usize, usize)>,
}

/// Pass 1 of both builders: the x and y offsets of output row `i` in tap order
/// (`(x·s + j)·g + q`), from `off` (`oc` per low-res pixel, x offsets then y offsets).
#[inline(always)]
fn offsets_in_tap_order<T: Copy>(
    geo: Geometry,
    i: usize,
    off: &[T],
    chans: &mut Vec<usize>,
    ox: &mut [T],
    oy: &mut [T],
) {
    let Geometry { s, g, .. } = geo;
    let (s2, sg) = (s * s, s * g);
    // chans[j·g + q]: the x-offset channel of tap (j, q).
    let chans = grow(chans, sg);
    for j in 0..s {
        for q in 0..g {
            chans[j * g + q] = q * s2 + i * s + j;
        }
    }
    let ys = g * s2;
    let pixels = off
        .chunks_exact(geo.oc())
        .zip(ox.chunks_exact_mut(sg).zip(oy.chunks_exact_mut(sg)));
    for (o, (dx, dy)) in pixels {
        for ((dx, dy), &ch) in dx.iter_mut().zip(dy.iter_mut()).zip(chans.iter()) {
            *dx = o[ch];
            *dy = o[ys + ch];
        }
    }
}

/// The taps of output row `i` of low-res row `y`: tap `(x·s + j)·g + q` samples group `q` at
/// output pixel `x·s + j`. `off` holds the Q11 offsets of the row's `w` pixels (`oc` each).
pub(crate) fn taps_q11(
    geo: Geometry,
    y: usize,
    i: usize,
    off: &[i32],
    sc: &mut PointScratch,
    taps: &mut [TapQ11],
) {
    let n = geo.row_taps();
    assert!(taps.len() >= n && off.len() >= geo.w * geo.oc());
    if !geo.small() {
        return taps_q11_unopt(geo, y, i, off, taps);
    }
    #[cfg(target_arch = "x86_64")]
    {
        let cpu = crate::cpu::CpuFeatures::get();
        if cpu.avx512f && cpu.avx512bw && cpu.avx512vl {
            // SAFETY: the AVX-512 features this copy is compiled for were detected at run time.
            return unsafe { taps_avx512(geo, y, i, off, sc, taps) };
        }
        if cpu.avx2 {
            // SAFETY: AVX2 was detected at run time.
            return unsafe { taps_avx2(geo, y, i, off, sc, taps) };
        }
    }
    taps_body(geo, y, i, off, sc, taps)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2")]
unsafe fn taps_avx512(
    geo: Geometry,
    y: usize,
    i: usize,
    off: &[i32],
    sc: &mut PointScratch,
    taps: &mut [TapQ11],
) {
    taps_body(geo, y, i, off, sc, taps)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn taps_avx2(
    geo: Geometry,
    y: usize,
    i: usize,
    off: &[i32],
    sc: &mut PointScratch,
    taps: &mut [TapQ11],
) {
    taps_body(geo, y, i, off, sc, taps)
}

#[inline(always)]
fn taps_body(
    geo: Geometry,
    y: usize,
    i: usize,
    off: &[i32],
    sc: &mut PointScratch,
    taps: &mut [TapQ11],
) {
    let Geometry { w, h, c, s, g } = geo;
    let (cpg, sg) = (geo.cpg(), s * g);
    let n = geo.row_taps();
    if sc.ints.len() < 3 * n || sc.words.len() < 7 * n {
        sc.ints.resize(3 * n, 0);
        sc.words.resize(7 * n, 0);
        sc.key = None;
    }
    let (ox, rest) = sc.ints.split_at_mut(n);
    let (oy, pxb) = rest.split_at_mut(n);
    let (pxb, oy) = (&mut pxb[..n], &mut oy[..n]);
    let mut words = sc.words.chunks_exact_mut(n);
    let mut next = || words.next().expect("7n words");
    let (base, dx, dy, fxy) = (next(), next(), next(), next());
    let (wlo, whi, qoff) = (next(), next(), next());
    offsets_in_tap_order(geo, i, off, &mut sc.chans, ox, oy);
    // Per-tap constants (x·2048 of the tap's low-res pixel, channel offset of its group),
    // rebuilt only when the geometry changes.
    if sc.key != Some((w, s, g, cpg)) {
        for x in 0..w {
            for k in 0..sg {
                pxb[x * sg + k] = (x as i32) << 11;
                qoff[x * sg + k] = ((k % g) * cpg) as u32;
            }
        }
        sc.key = Some((w, s, g, cpg));
    }
    // Pass 2: element-wise over equal-length slices, so LLVM vectorizes it. Mirrors
    // TapQ11::new / weights_q14 operation for operation.
    let (ox, oy, pxb, qoff) = (&ox[..n], &oy[..n], &pxb[..n], &qoff[..n]);
    let (xq, yq) = (((w - 1) as i32) << 11, ((h - 1) as i32) << 11);
    let (cu, wc) = (c as u32, (w * c) as u32);
    let (wl, hl) = ((w - 1) as u32, (h - 1) as u32);
    let py0 = (y as i32) << 11;
    for k in 0..n {
        let px = (pxb[k] + ox[k]).clamp(0, xq) as u32;
        let py = (py0 + oy[k]).clamp(0, yq) as u32;
        let (x0, fx) = (px >> 11, px & 2047);
        let (y0, fy) = (py >> 11, py & 2047);
        base[k] = y0 * wc + x0 * cu + qoff[k];
        dx[k] = if x0 < wl { cu } else { 0 };
        dy[k] = if y0 < hl { wc } else { 0 };
        fxy[k] = fx | fy << 16;
        let gy = 2048 - fy;
        let (w01, w11) = ((fx * gy + 128) >> 8, (fx * fy + 128) >> 8);
        let (w00, w10) = (8 * gy - w01, 8 * fy - w11);
        wlo[k] = (w00 & 255) | (w01 & 255) << 8 | (w10 & 255) << 16 | (w11 & 255) << 24;
        whi[k] = (w00 >> 8) | (w01 >> 8) << 8 | (w10 >> 8) << 16 | (w11 >> 8) << 24;
    }
    // Pass 3: the AoS taps the kernels read.
    for (k, t) in taps[..n].iter_mut().enumerate() {
        *t = TapQ11 {
            base: base[k],
            dx: dx[k],
            dy: dy[k],
            fx: fxy[k] as u16,
            fy: (fxy[k] >> 16) as u16,
            wlo: wlo[k].to_le_bytes(),
            whi: whi[k].to_le_bytes(),
        };
    }
}

/// The definition: one tap at a time with [`crate::quant::sample_coord_q11`] and
/// [`TapQ11::new`], valid for any map size.
pub(crate) fn taps_q11_unopt(geo: Geometry, y: usize, i: usize, off: &[i32], taps: &mut [TapQ11]) {
    let Geometry { w, h, c, s, g } = geo;
    let (oc, cpg, s2) = (geo.oc(), geo.cpg(), s * s);
    let (cu, wc) = (c as u32, (w * c) as u32);
    let (wl, hl) = ((w - 1) as u32, (h - 1) as u32);
    for x in 0..w {
        let o = &off[x * oc..(x + 1) * oc];
        for j in 0..s {
            for q in 0..g {
                let ch = q * s2 + i * s + j;
                let (x0, fx) = crate::quant::sample_coord_q11(x, o[ch], w);
                let (y0, fy) = crate::quant::sample_coord_q11(y, o[g * s2 + ch], h);
                let (x0, y0) = (x0 as u32, y0 as u32);
                taps[(x * s + j) * g + q] = TapQ11::new(
                    y0 * wc + x0 * cu + (q * cpg) as u32,
                    if x0 < wl { cu } else { 0 },
                    if y0 < hl { wc } else { 0 },
                    fx,
                    fy,
                );
            }
        }
    }
}

/// The float taps of all `s` output rows of low-res row `y` (row `i` at `i·row_taps`).
pub(crate) fn taps_f32(
    geo: Geometry,
    y: usize,
    off: &[f32],
    sc: &mut PointScratch,
    taps: &mut [Tap],
) {
    assert!(taps.len() >= geo.s * geo.row_taps() && off.len() >= geo.w * geo.oc());
    if geo.w >= 1 << 23 || geo.h >= 1 << 23 {
        return taps_f32_unopt(geo, y, off, taps);
    }
    #[cfg(target_arch = "x86_64")]
    {
        let cpu = crate::cpu::CpuFeatures::get();
        if cpu.avx512f && cpu.avx512bw && cpu.avx512vl {
            // SAFETY: the AVX-512 features this copy is compiled for were detected at run time.
            return unsafe { taps_f32_avx512(geo, y, off, sc, taps) };
        }
        if cpu.avx2 {
            // SAFETY: AVX2 was detected at run time.
            return unsafe { taps_f32_avx2(geo, y, off, sc, taps) };
        }
    }
    taps_f32_body(geo, y, off, sc, taps)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2")]
unsafe fn taps_f32_avx512(
    geo: Geometry,
    y: usize,
    off: &[f32],
    sc: &mut PointScratch,
    taps: &mut [Tap],
) {
    taps_f32_body(geo, y, off, sc, taps)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn taps_f32_avx2(
    geo: Geometry,
    y: usize,
    off: &[f32],
    sc: &mut PointScratch,
    taps: &mut [Tap],
) {
    taps_f32_body(geo, y, off, sc, taps)
}

#[inline(always)]
fn taps_f32_body(geo: Geometry, y: usize, off: &[f32], sc: &mut PointScratch, taps: &mut [Tap]) {
    let Geometry { w, h, c, s, g } = geo;
    let (cpg, sg) = (geo.cpg(), s * g);
    let n = geo.row_taps();
    if sc.floats.len() < 5 * n || sc.fwords.len() < 4 * n {
        sc.floats.resize(5 * n, 0.0);
        sc.fwords.resize(4 * n, 0);
        sc.fkey = None;
    }
    let mut floats = sc.floats.chunks_exact_mut(n);
    let mut next = || floats.next().expect("5n floats");
    let (ox, oy, pxb, fxs, fys) = (next(), next(), next(), next(), next());
    let mut words = sc.fwords.chunks_exact_mut(n);
    let mut next = || words.next().expect("4n words");
    let (base, dx, dy, qoff) = (next(), next(), next(), next());
    if sc.fkey != Some((w, s, g, cpg)) {
        for x in 0..w {
            for k in 0..sg {
                pxb[x * sg + k] = x as f32;
                qoff[x * sg + k] = ((k % g) * cpg) as u32;
            }
        }
        sc.fkey = Some((w, s, g, cpg));
    }
    let (xmax, ymax, yf) = ((w - 1) as f32, (h - 1) as f32, y as f32);
    let (cu, wc) = (c as u32, (w * c) as u32);
    let (wl, hl) = ((w - 1) as u32, (h - 1) as u32);
    for i in 0..s {
        offsets_in_tap_order(geo, i, off, &mut sc.chans, ox, oy);
        // Pass 2: element-wise, vectorized; the same operations as `taps_f32_unopt`.
        let (ox, oy, pxb, qoff) = (&ox[..n], &oy[..n], &pxb[..n], &qoff[..n]);
        let (base, dx, dy, fxs, fys) = (
            &mut base[..n],
            &mut dx[..n],
            &mut dy[..n],
            &mut fxs[..n],
            &mut fys[..n],
        );
        for k in 0..n {
            let px = (pxb[k] + ox[k]).max(0.0).min(xmax);
            let py = (yf + oy[k]).max(0.0).min(ymax);
            // floor(p) for 0 ≤ p < 2^23, read from the mantissa of 2^23 + floor(p) (exact):
            // the same value as `p as u32`, but vectorizable.
            let (fpx, fpy) = (px.floor(), py.floor());
            let int = |f: f32| (f + 8_388_608.0).to_bits() - 0x4B00_0000;
            let (x0, y0) = (int(fpx), int(fpy));
            base[k] = y0 * wc + x0 * cu + qoff[k];
            dx[k] = if x0 < wl { cu } else { 0 };
            dy[k] = if y0 < hl { wc } else { 0 };
            fxs[k] = px - fpx;
            fys[k] = py - fpy;
        }
        // Pass 3: the AoS taps the kernels read.
        for (k, t) in taps[i * n..(i + 1) * n].iter_mut().enumerate() {
            *t = Tap {
                base: base[k],
                dx: dx[k],
                dy: dy[k],
                fx: fxs[k],
                fy: fys[k],
            };
        }
    }
}

/// The float definition, one tap at a time (row `i` of the `s` rows at `i·row_taps`).
pub(crate) fn taps_f32_unopt(geo: Geometry, y: usize, off: &[f32], taps: &mut [Tap]) {
    let Geometry { w, h, c, s, g } = geo;
    let (oc, cpg, s2) = (geo.oc(), geo.cpg(), s * s);
    let (xmax, ymax) = ((w - 1) as f32, (h - 1) as f32);
    let (cu, wc) = (c as u32, (w * c) as u32);
    let (wl, hl) = ((w - 1) as u32, (h - 1) as u32);
    let n = geo.row_taps();
    for i in 0..s {
        for x in 0..w {
            let o = &off[x * oc..(x + 1) * oc];
            for j in 0..s {
                for q in 0..g {
                    let ch = q * s2 + i * s + j;
                    // max/min (not clamp) so a NaN offset lands on the border instead of
                    // propagating.
                    let px = (x as f32 + o[ch]).max(0.0).min(xmax);
                    let py = (y as f32 + o[g * s2 + ch]).max(0.0).min(ymax);
                    // px ∈ [0, w−1], so truncation is floor and stays in range; the far tap
                    // steps one pixel unless the near one is on the last column/row.
                    let (x0, y0) = (px as u32, py as u32);
                    taps[i * n + (x * s + j) * g + q] = Tap {
                        base: y0 * wc + x0 * cu + (q * cpg) as u32,
                        dx: if x0 < wl { cu } else { 0 },
                        dy: if y0 < hl { wc } else { 0 },
                        fx: px - x0 as f32,
                        fy: py - y0 as f32,
                    };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::{rngs::StdRng, Rng, SeedableRng};

    fn check(geo: Geometry, y: usize, seed: u64) {
        let mut rng = StdRng::seed_from_u64(seed);
        let lim = 1 << 24;
        let off: Vec<i32> = (0..geo.w * geo.oc())
            .map(|k| match k % 9 {
                0 => rng.gen_range(-lim..=lim),
                1 => 0,
                2 => -lim,
                3 => lim,
                _ => rng.gen_range(-5000..5000),
            })
            .collect();
        let mut sc = PointScratch::default();
        for i in 0..geo.s {
            let n = geo.row_taps();
            let (mut want, mut got) = (vec![TapQ11::default(); n], vec![TapQ11::default(); n]);
            taps_q11_unopt(geo, y, i, &off, &mut want);
            taps_q11(geo, y, i, &off, &mut sc, &mut got);
            assert_eq!(got, want, "{geo:?} y={y} i={i}");
        }
    }

    fn check_f32(geo: Geometry, y: usize, seed: u64) {
        let mut rng = StdRng::seed_from_u64(seed);
        let off: Vec<f32> = (0..geo.w * geo.oc())
            .map(|k| match k % 11 {
                0 => f32::NAN,
                1 => f32::INFINITY,
                2 => f32::NEG_INFINITY,
                3 => 1e9,
                4 => -0.0,
                _ => rng.gen_range(-4.0..4.0),
            })
            .collect();
        let n = geo.s * geo.row_taps();
        let (mut want, mut got) = (vec![Tap::default(); n], vec![Tap::default(); n]);
        taps_f32_unopt(geo, y, &off, &mut want);
        taps_f32(geo, y, &off, &mut PointScratch::default(), &mut got);
        let bits = |t: &[Tap]| {
            t.iter()
                .map(|t| (t.base, t.dx, t.dy, t.fx.to_bits(), t.fy.to_bits()))
                .collect::<Vec<_>>()
        };
        assert_eq!(bits(&got), bits(&want), "{geo:?} y={y}");
    }

    #[test]
    fn hot_shape() {
        let geo = Geometry {
            w: 120,
            h: 120,
            c: 256,
            s: 2,
            g: 4,
        };
        check(geo, 37, 1);
        check_f32(geo, 37, 1);
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 200, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn fast_taps_equal_the_definition(w in 1usize..40, h in 1usize..6, g in 1usize..9, cpg in 1usize..5,
                                          s in 2usize..5, y_frac in 0.0f64..1.0, seed in any::<u64>()) {
            let y = ((h as f64 * y_frac) as usize).min(h - 1);
            check(Geometry { w, h, c: g * cpg, s, g }, y, seed);
            check_f32(Geometry { w, h, c: g * cpg, s, g }, y, seed);
        }
    }
}
