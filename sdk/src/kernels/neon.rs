//! AArch64 Advanced SIMD kernels, ARMv8.0 baseline (Raspberry Pi 4 / Cortex-A72): [`Backend::Neon`].
//!
//! Layout of every family: a safe wrapper with the table's signature asserts the slice bounds,
//! then calls one `#[target_feature(enable = "neon")]` leaf that works on raw pointers. The
//! leaves run the loops of [`arm_loops`](super::arm_loops) (shared with the dotprod and fp16
//! modules); this module supplies their vector operations. The table is only handed out by
//! [`Backend::kernels`] after `neon` was detected.
//!
//! f16 ↔ f32 conversion uses `fcvtl`/`fcvtn` through `asm!`: they are ARMv8.0 instructions, but
//! the `float16x4_t` intrinsics are newer than the workspace MSRV.
//!
//! The float sampling kernels use separate multiply and add (no FMA), in the scalar order, so
//! they return the same bits as [`scalar`](super::scalar); the integer ones are exact anyway.

// Register-blocked loops index several small arrays (accumulators, rows, weights) in lockstep.
#![allow(clippy::needless_range_loop, clippy::too_many_arguments)]

use super::arm_loops::{self, channel_runs, store_rows, ConvBlocks, DotI8};
use super::{Backend, Kernels, Tap, TapQ11};
use core::arch::aarch64::*;
use half::f16;

pub static KERNELS: Kernels = Kernels {
    backend: Backend::Neon,
    conv_f32,
    conv_i8,
    sample_f32,
    sample_f16,
    sample_i8,
    sample_f32_nchw: Some(sample_f32_nchw),
    sample_f16_nchw: Some(sample_f16_nchw),
    sample_i8_nchw: Some(sample_i8_nchw),
    cvt_f16_f32,
    cvt_f32_f16,
    transpose_f32,
    transpose_u16,
    transpose_u8,
};

// ---------------------------------------------------------------------------------------------
// f16 ↔ f32 conversion instructions.

/// `fcvtl`: low 4 f16 (raw bits) → f32. Expands to `asm!`: use inside an `unsafe` block of a
/// function with `neon` enabled.
macro_rules! fcvtl {
    ($h:expr) => {{
        let d: float32x4_t;
        core::arch::asm!("fcvtl {d:v}.4s, {s:v}.4h", d = lateout(vreg) d, s = in(vreg) $h,
            options(pure, nomem, nostack, preserves_flags));
        d
    }};
}
/// `fcvtl2`: high 4 f16 of a `uint16x8_t` → f32.
macro_rules! fcvtl2 {
    ($h:expr) => {{
        let d: float32x4_t;
        core::arch::asm!("fcvtl2 {d:v}.4s, {s:v}.8h", d = lateout(vreg) d, s = in(vreg) $h,
            options(pure, nomem, nostack, preserves_flags));
        d
    }};
}
/// `fcvtn` + `fcvtn2`: two f32x4 → 8 f16 (raw bits), rounding per FPCR (nearest-even on Linux).
macro_rules! fcvtn2 {
    ($lo:expr, $hi:expr) => {{
        let d: uint16x8_t;
        core::arch::asm!("fcvtn {d:v}.4h, {lo:v}.4s", "fcvtn2 {d:v}.8h, {hi:v}.4s",
            d = out(vreg) d, lo = in(vreg) $lo, hi = in(vreg) $hi,
            options(pure, nomem, nostack, preserves_flags));
        d
    }};
}
/// `fcvtn`: one f32x4 → 4 f16 (raw bits).
macro_rules! fcvtn {
    ($v:expr) => {{
        let d: uint16x4_t;
        core::arch::asm!("fcvtn {d:v}.4h, {s:v}.4s", d = lateout(vreg) d, s = in(vreg) $v,
            options(pure, nomem, nostack, preserves_flags));
        d
    }};
}

// ---------------------------------------------------------------------------------------------
// conv_f32: blocks of 4 pixels × 16 outputs (16 accumulators), weights streamed once per 4
// pixels, in the blocking of `arm_loops::conv_blocks`.

pub fn conv_f32(
    x: &[f32],
    ldx: usize,
    npix: usize,
    cin: usize,
    wt: &[f32],
    bias: Option<&[f32]>,
    o_n: usize,
    out: &mut [f32],
) {
    assert!(npix == 0 || x.len() >= (npix - 1) * ldx + cin);
    assert!(wt.len() >= cin * o_n && out.len() >= npix * o_n);
    if let Some(b) = bias {
        assert!(b.len() >= o_n);
    }
    if npix == 0 || o_n == 0 {
        return;
    }
    // SAFETY: bounds asserted above; `neon` is present since this table was handed out.
    unsafe {
        conv_f32_neon(
            x.as_ptr(),
            ldx,
            npix,
            cin,
            wt.as_ptr(),
            bias.map(|b| b.as_ptr()),
            o_n,
            out.as_mut_ptr(),
        )
    }
}

#[target_feature(enable = "neon")]
unsafe fn conv_f32_neon(
    x: *const f32,
    ldx: usize,
    npix: usize,
    cin: usize,
    wt: *const f32,
    bias: Option<*const f32>,
    o_n: usize,
    out: *mut f32,
) {
    let k = ConvF32 {
        x,
        ldx,
        cin,
        wt,
        bias,
        o_n,
        out,
    };
    // SAFETY: the wrapper checked that rows p < npix hold `cin` values at p*ldx, that `wt` holds
    // cin*o_n and `out` npix*o_n values: the extents conv_blocks walks.
    unsafe { arm_loops::conv_blocks::<_, 4>(&k, npix, o_n) }
}

/// The buffers of one `conv_f32` call.
struct ConvF32 {
    x: *const f32,
    ldx: usize,
    cin: usize,
    wt: *const f32,
    bias: Option<*const f32>,
    o_n: usize,
    out: *mut f32,
}

impl ConvBlocks for ConvF32 {
    /// NP pixels × NG vectors of 4 outputs: per 4 input channels, one weight row per channel and
    /// one `fmla` by lane per (pixel, vector).
    #[inline(always)]
    unsafe fn block<const NP: usize, const NG: usize>(&self, p0: usize, o0: usize) {
        let (ldx, cin, wt, o_n) = (self.ldx, self.cin, self.wt, self.o_n);
        // SAFETY: outputs o0..o0+4*NG <= o_n of pixels p0..p0+NP <= npix, inside the extents.
        unsafe {
            let x = self.x.add(p0 * ldx);
            let mut acc = [[vdupq_n_f32(0.0); NG]; NP];
            if let Some(b) = self.bias {
                for v in 0..NG {
                    let bv = vld1q_f32(b.add(o0 + 4 * v));
                    for p in 0..NP {
                        acc[p][v] = bv;
                    }
                }
            }
            let mut k = 0;
            while k + 4 <= cin {
                let mut xv = [vdupq_n_f32(0.0); NP];
                for p in 0..NP {
                    xv[p] = vld1q_f32(x.add(p * ldx + k));
                }
                macro_rules! step {
                    ($j:literal) => {
                        let wr = wt.add((k + $j) * o_n + o0);
                        let mut w = [vdupq_n_f32(0.0); NG];
                        for v in 0..NG {
                            w[v] = vld1q_f32(wr.add(4 * v));
                        }
                        for p in 0..NP {
                            for v in 0..NG {
                                acc[p][v] = vfmaq_laneq_f32::<$j>(acc[p][v], w[v], xv[p]);
                            }
                        }
                    };
                }
                step!(0);
                step!(1);
                step!(2);
                step!(3);
                k += 4;
            }
            while k < cin {
                let wr = wt.add(k * o_n + o0);
                let mut w = [vdupq_n_f32(0.0); NG];
                for v in 0..NG {
                    w[v] = vld1q_f32(wr.add(4 * v));
                }
                for p in 0..NP {
                    let xs = *x.add(p * ldx + k);
                    for v in 0..NG {
                        acc[p][v] = vfmaq_n_f32(acc[p][v], w[v], xs);
                    }
                }
                k += 1;
            }
            let out = self.out.add(p0 * o_n + o0);
            for p in 0..NP {
                for v in 0..NG {
                    vst1q_f32(out.add(p * o_n + 4 * v), acc[p][v]);
                }
            }
        }
    }

    #[inline(always)]
    unsafe fn single(&self, p: usize, o: usize) {
        // SAFETY: pixel p < npix, output o < o_n.
        unsafe {
            let x = self.x.add(p * self.ldx);
            let mut s = self.bias.map_or(0.0, |b| *b.add(o));
            for k in 0..self.cin {
                s += *x.add(k) * *self.wt.add(k * self.o_n + o);
            }
            *self.out.add(p * self.o_n + o) = s;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// conv_i8 without dotprod, in the shared blocking of `arm_loops::conv_i8`.

conv_i8_entry!(pub conv_i8 => conv_i8_neon, "`neon` is present since this table was handed out");
conv_i8_leaf!("neon", conv_i8_neon, MullPadal, 2);

/// `sdot` emulated on ARMv8.0: `vmull_s8` gives exact i16 products and `vpadalq_s16` adds them
/// pairwise into i32 (two products never share an i16, so nothing can overflow or saturate).
/// The sums stay half-reduced (`[o0 k01, o0 k23, o1 k01, o1 k23]`, two registers per 4 outputs,
/// hence blocks of at most 2 groups) and are folded with one `addp` at the end.
struct MullPadal;

impl DotI8 for MullPadal {
    type Acc = [int32x4_t; 2];

    // SAFETY (all three): `neon` is enabled for the whole AArch64 build (these are inlined into
    // conv_i8_neon in any case); register operations only.
    #[inline(always)]
    fn zero() -> Self::Acc {
        unsafe { [vdupq_n_s32(0); 2] }
    }

    #[inline(always)]
    unsafe fn step(a: Self::Acc, w: int8x16_t, x: int8x16_t) -> Self::Acc {
        unsafe {
            [
                vpadalq_s16(a[0], vmull_s8(vget_low_s8(x), vget_low_s8(w))),
                vpadalq_s16(a[1], vmull_high_s8(x, w)),
            ]
        }
    }

    #[inline(always)]
    fn finish(a: Self::Acc) -> int32x4_t {
        unsafe { vpaddq_s32(a[0], a[1]) }
    }
}

// ---------------------------------------------------------------------------------------------
// Sampling, NHWC: per tap, the channels in vectors, then the scalar formula for the last few.

/// `a + f·(b − a)` on 4 lanes, unfused: the scalar formula's operations in its order.
#[target_feature(enable = "neon")]
#[inline]
fn lerp(a: float32x4_t, b: float32x4_t, f: float32x4_t) -> float32x4_t {
    vaddq_f32(a, vmulq_f32(f, vsubq_f32(b, a)))
}

/// The bilinear blend of the four corners (00, 01, 10, 11) on 4 lanes, in the scalar order.
#[target_feature(enable = "neon")]
#[inline]
fn bilerp(q: [float32x4_t; 4], (fx, fy): (float32x4_t, float32x4_t)) -> float32x4_t {
    lerp(lerp(q[0], q[1], fx), lerp(q[2], q[3], fx), fy)
}

/// The same on one lane, for channel tails.
#[inline(always)]
fn bilerp1(q: [f32; 4], fx: f32, fy: f32) -> f32 {
    let top = q[0] + fx * (q[1] - q[0]);
    let bot = q[2] + fx * (q[3] - q[2]);
    top + fy * (bot - top)
}

/// A float tap's weights broadcast to 4 lanes.
#[target_feature(enable = "neon")]
#[inline]
fn fxy(t: &Tap) -> (float32x4_t, float32x4_t) {
    (vdupq_n_f32(t.fx), vdupq_n_f32(t.fy))
}

/// [`bilerp`] on 4 f16 lanes (raw bits): widened with `fcvtl`, blended in f32, narrowed with
/// `fcvtn` (round to nearest-even, as `f16::from_f32`).
#[target_feature(enable = "neon")]
#[inline]
unsafe fn bilerp4_f16(q: [uint16x4_t; 4], f: (float32x4_t, float32x4_t)) -> uint16x4_t {
    // SAFETY: the asm only converts registers.
    unsafe { fcvtn!(bilerp(q.map(|v| fcvtl!(v)), f)) }
}

/// [`bilerp`] on 8 f16 lanes: each half widened and blended, both narrowed together.
#[target_feature(enable = "neon")]
#[inline]
unsafe fn bilerp8_f16(q: [uint16x8_t; 4], f: (float32x4_t, float32x4_t)) -> uint16x8_t {
    // SAFETY: the asm only converts registers.
    unsafe {
        let lo = bilerp(q.map(|v| fcvtl!(vget_low_u16(v))), f);
        let hi = bilerp(q.map(|v| fcvtl2!(v)), f);
        fcvtn2!(lo, hi)
    }
}

sample_nhwc_entry!(
    sample_f32(f32 as f32, Tap),
    "neon",
    "`neon` is present since this table was handed out",
    cpg,
    |t, p, o| {
        let f = fxy(t);
        // SAFETY: each corner holds cpg values and `o` cpg slots (each_tap); `at(c)` is only
        // asked for 4 channels from c < cpg that exist.
        unsafe {
            let at = |c: usize| bilerp(p.map(|p| vld1q_f32(p.add(c))), f);
            channel_runs::<8>(
                cpg,
                |c| {
                    vst1q_f32(o.add(c), at(c));
                    vst1q_f32(o.add(c + 4), at(c + 4));
                },
                |c| vst1q_f32(o.add(c), at(c)),
                |c| {
                    for c in c..cpg {
                        *o.add(c) = bilerp1(p.map(|p| *p.add(c)), t.fx, t.fy);
                    }
                },
            )
        }
    },
);

sample_nhwc_entry!(
    /// f16 storage, f32 arithmetic: the scalar formula exactly, then round-to-nearest-even.
    sample_f16(f16 as u16, Tap),
    "neon",
    "`neon` is present since this table was handed out",
    cpg,
    |t, p, o| {
        let f = fxy(t);
        // SAFETY: as sample_f32; the asm only converts registers.
        unsafe {
            channel_runs::<8>(
                cpg,
                |c| vst1q_u16(o.add(c), bilerp8_f16(p.map(|p| vld1q_u16(p.add(c))), f)),
                |c| vst1_u16(o.add(c), bilerp4_f16(p.map(|p| vld1_u16(p.add(c))), f)),
                |c| {
                    for c in c..cpg {
                        let q = p.map(|p| f16::from_bits(*p.add(c)).to_f32());
                        *o.add(c) = f16::from_f32(bilerp1(q, t.fx, t.fy)).to_bits();
                    }
                },
            )
        }
    },
);

sample_nhwc_entry!(
    sample_i8(i8 as i8, TapQ11),
    "neon",
    "`neon` is present since this table was handed out",
    cpg,
    |t, p, o| {
        let w = weights_i16(t);
        // SAFETY: as sample_f32.
        unsafe {
            channel_runs::<16>(
                cpg,
                |c| {
                    let q = p.map(|p| vld1q_s8(p.add(c)));
                    let lo = bilerp8_q14(q.map(|v| vget_low_s8(v)), w);
                    let hi = bilerp8_q14(q.map(|v| vget_high_s8(v)), w);
                    vst1q_s8(o.add(c), vcombine_s8(lo, hi));
                },
                |c| vst1_s8(o.add(c), bilerp8_q14(p.map(|p| vld1_s8(p.add(c))), w)),
                |c| {
                    let wq = t.weights();
                    for c in c..cpg {
                        *o.add(c) = super::blend_q14(p.map(|p| *p.add(c)), wq);
                    }
                },
            )
        }
    },
);

/// The tap's Q14 weights as i16 (each ≤ 2^14).
#[inline(always)]
fn weights_i16(t: &TapQ11) -> [i16; 4] {
    t.weights().map(|w| w as i16)
}

/// `Σ w·q` with the Q14 weights (≤ 2^14, so they fit i16) on 8 lanes: widen to i16, four
/// widening MACs per half, exact in i32 (|·| ≤ 2^21); `rshrn #14` is `(acc + 2^13) >> 14`.
#[target_feature(enable = "neon")]
#[inline]
unsafe fn bilerp8_q14(q: [int8x8_t; 4], w: [i16; 4]) -> int8x8_t {
    let v = q.map(|q| vmovl_s8(q));
    let lo = vmull_n_s16(vget_low_s16(v[0]), w[0]);
    let lo = vmlal_n_s16(lo, vget_low_s16(v[1]), w[1]);
    let lo = vmlal_n_s16(lo, vget_low_s16(v[2]), w[2]);
    let lo = vmlal_n_s16(lo, vget_low_s16(v[3]), w[3]);
    let hi = vmull_high_n_s16(v[0], w[0]);
    let hi = vmlal_high_n_s16(hi, v[1], w[1]);
    let hi = vmlal_high_n_s16(hi, v[2], w[2]);
    let hi = vmlal_high_n_s16(hi, v[3], w[3]);
    // (acc + 2^13) >> 14 lies in [-128, 127]: the narrowing is exact.
    let r = vcombine_s16(vrshrn_n_s32::<14>(lo), vrshrn_n_s32::<14>(hi));
    vmovn_s16(r)
}

// ---------------------------------------------------------------------------------------------
// Fused NCHW sampling, in the tiles of `arm_loops::nchw_tiles`: f32 4 px × 4 ch, f16 4 px × 8 ch,
// i8 8 px × 8 ch. Each pixel's lanes are computed by the NHWC kernel's function of the same
// precision, so the two layouts return the same values.

// SAFETY (the closures below): nchw_tiles hands `pixel` corners readable for a full tile of
// channels and asks `store` only for rows and pixels inside the caller's `dst`.

sample_nchw_entry!(
    sample_f32_nchw(f32 as f32, Tap),
    "neon",
    "`neon` is present since this table was handed out",
    tile: [4, 4],
    plane,
    prep: |t| fxy(t),
    pixel: |p, &f| unsafe { bilerp(p.map(|p| vld1q_f32(p)), f) },
    store: |v, d, np, nch| unsafe {
        let rows = transpose_4x4_f32(v);
        store_rows::<_, _, 4>(&rows, d, plane, np, nch, |p, r| vst1q_f32(p, r))
    },
);

sample_nchw_entry!(
    /// f16 storage, f32 arithmetic in the scalar order, then `fcvtn`: the bits of `sample_f16`.
    sample_f16_nchw(f16 as u16, Tap),
    "neon",
    "`neon` is present since this table was handed out",
    tile: [4, 8],
    plane,
    prep: |t| fxy(t),
    pixel: |p, &f| unsafe { bilerp8_f16(p.map(|p| vld1q_u16(p)), f) },
    store: |v, d, np, nch| unsafe { store_4x8_u16(v, d, plane, np, nch) },
);

sample_nchw_entry!(
    sample_i8_nchw(i8 as i8, TapQ11),
    "neon",
    "`neon` is present since this table was handed out",
    tile: [8, 8],
    plane,
    prep: weights_i16,
    pixel: |p, &w| unsafe { vreinterpret_u8_s8(bilerp8_q14(p.map(|p| vld1_s8(p)), w)) },
    store: |v, d, np, nch| unsafe {
        let st = |p: *mut i8, r| vst1_s8(p, vreinterpret_s8_u8(r));
        store_rows::<_, _, 8>(&transpose_8x8(v), d, plane, np, nch, st)
    },
);

/// 4 pixels × 8 u16 channels (`r[k]` = pixel k) → 8 channel rows of 4 pixels, stored at
/// `d + j·plane` for channel rows `j < nch`, first `np` pixels each.
///
/// # Safety
/// Those `nch × np` elements of `d` writable; `neon` available.
#[target_feature(enable = "neon")]
#[inline]
pub(super) unsafe fn store_4x8_u16(
    r: [uint16x8_t; 4],
    d: *mut u16,
    plane: usize,
    np: usize,
    nch: usize,
) {
    // h[j] holds channel rows j (low half) and j + 4 (high half).
    let h = transpose_4x8(r);
    let rows: [uint16x4_t; 8] = core::array::from_fn(|j| {
        if j < 4 {
            vget_low_u16(h[j])
        } else {
            vget_high_u16(h[j - 4])
        }
    });
    // SAFETY: the caller's bound.
    unsafe { store_rows::<_, _, 4>(&rows, d, plane, np, nch, |p, row| vst1_u16(p, row)) }
}

// ---------------------------------------------------------------------------------------------
// Register transposes (the NCHW stores above and the transpose tables below).

/// 4×4 f32: `r[i]` = row i → column i, by 32-bit then 64-bit `trn` pairs.
#[target_feature(enable = "neon")]
#[inline]
fn transpose_4x4_f32(r: [float32x4_t; 4]) -> [float32x4_t; 4] {
    let t0 = vreinterpretq_f64_f32(vtrn1q_f32(r[0], r[1]));
    let t1 = vreinterpretq_f64_f32(vtrn2q_f32(r[0], r[1]));
    let t2 = vreinterpretq_f64_f32(vtrn1q_f32(r[2], r[3]));
    let t3 = vreinterpretq_f64_f32(vtrn2q_f32(r[2], r[3]));
    [
        vtrn1q_f64(t0, t2),
        vtrn1q_f64(t1, t3),
        vtrn2q_f64(t0, t2),
        vtrn2q_f64(t1, t3),
    ]
    .map(|v| vreinterpretq_f32_f64(v))
}

/// A register of 8 lanes (u16 in a q register, u8 in a d register) as the 8-lane transposes
/// use it: `trnG(a, b)` is the pair (`trn1`, `trn2`) on groups of `G` lanes; an 8×8 transpose is
/// the rounds G = 1, 2, 4.
trait Trn8: Copy {
    type E;
    /// # Safety
    /// 8 elements readable at `p`.
    unsafe fn load(p: *const Self::E) -> Self;
    /// # Safety
    /// 8 elements writable at `p`.
    unsafe fn store(p: *mut Self::E, v: Self);
    fn trn1(a: Self, b: Self) -> [Self; 2];
    fn trn2(a: Self, b: Self) -> [Self; 2];
    fn trn4(a: Self, b: Self) -> [Self; 2];
}

/// Implements [`Trn8`] from the intrinsics: (load, store), the lane `trn` pair, then for groups
/// of 2 and 4 lanes (reinterpret to the wider lane, `trn` pair, reinterpret back).
macro_rules! trn8 {
    ($v:ty, $e:ty: ($ld:ident, $st:ident), trn1: ($t1:ident, $t2:ident),
     $($name:ident: ($to:ident, $w1:ident, $w2:ident, $back:ident)),+) => {
        impl Trn8 for $v {
            type E = $e;
            #[inline(always)]
            unsafe fn load(p: *const $e) -> Self {
                // SAFETY: the caller's bound.
                unsafe { $ld(p) }
            }
            #[inline(always)]
            unsafe fn store(p: *mut $e, v: Self) {
                // SAFETY: the caller's bound.
                unsafe { $st(p, v) }
            }
            // SAFETY (the shuffles): `neon` is enabled for the whole AArch64 build (and these
            // are inlined into neon leaves in any case); register operations only.
            #[inline(always)]
            fn trn1(a: Self, b: Self) -> [Self; 2] {
                unsafe { [$t1(a, b), $t2(a, b)] }
            }
            $(
                #[inline(always)]
                fn $name(a: Self, b: Self) -> [Self; 2] {
                    unsafe {
                        let (a, b) = ($to(a), $to(b));
                        [$back($w1(a, b)), $back($w2(a, b))]
                    }
                }
            )+
        }
    };
}

trn8!(uint16x8_t, u16: (vld1q_u16, vst1q_u16), trn1: (vtrn1q_u16, vtrn2q_u16),
    trn2: (vreinterpretq_u32_u16, vtrn1q_u32, vtrn2q_u32, vreinterpretq_u16_u32),
    trn4: (vreinterpretq_u64_u16, vtrn1q_u64, vtrn2q_u64, vreinterpretq_u16_u64));
trn8!(uint8x8_t, u8: (vld1_u8, vst1_u8), trn1: (vtrn1_u8, vtrn2_u8),
    trn2: (vreinterpret_u16_u8, vtrn1_u16, vtrn2_u16, vreinterpret_u8_u16),
    trn4: (vreinterpret_u32_u8, vtrn1_u32, vtrn2_u32, vreinterpret_u8_u32));

/// The first two rounds of an 8×8 transpose on 4 rows: `h[j]` holds columns `j` (low half) and
/// `j + 4` (high half) of the 4 rows.
#[inline(always)]
fn transpose_4x8<V: Trn8>(r: [V; 4]) -> [V; 4] {
    let [a0, a1] = V::trn1(r[0], r[1]);
    let [a2, a3] = V::trn1(r[2], r[3]);
    let [b0, b2] = V::trn2(a0, a2);
    let [b1, b3] = V::trn2(a1, a3);
    [b0, b1, b2, b3]
}

/// 8×8: each half of the rows by [`transpose_4x8`], then the halves' 4-lane groups swapped.
#[inline(always)]
fn transpose_8x8<V: Trn8>(r: [V; 8]) -> [V; 8] {
    let top = transpose_4x8([r[0], r[1], r[2], r[3]]);
    let bot = transpose_4x8([r[4], r[5], r[6], r[7]]);
    let c: [[V; 2]; 4] = core::array::from_fn(|j| V::trn4(top[j], bot[j]));
    core::array::from_fn(|j| c[j % 4][j / 4])
}

// ---------------------------------------------------------------------------------------------
// Conversions.

pub fn cvt_f16_f32(src: &[f16], dst: &mut [f32]) {
    assert_eq!(src.len(), dst.len());
    // SAFETY: equal lengths asserted; `neon` detected.
    unsafe { cvt_f16_f32_neon(src.as_ptr() as *const u16, dst.as_mut_ptr(), src.len()) }
}

#[target_feature(enable = "neon")]
unsafe fn cvt_f16_f32_neon(src: *const u16, dst: *mut f32, n: usize) {
    // SAFETY: i + 8 <= n (or i < n) for every access; both buffers hold n elements.
    unsafe {
        let mut i = 0;
        while i + 8 <= n {
            let h = vld1q_u16(src.add(i));
            vst1q_f32(dst.add(i), fcvtl!(vget_low_u16(h)));
            vst1q_f32(dst.add(i + 4), fcvtl2!(h));
            i += 8;
        }
        while i < n {
            *dst.add(i) = f16::from_bits(*src.add(i)).to_f32();
            i += 1;
        }
    }
}

pub fn cvt_f32_f16(src: &[f32], dst: &mut [f16]) {
    assert_eq!(src.len(), dst.len());
    // SAFETY: equal lengths asserted; `neon` detected.
    unsafe { cvt_f32_f16_neon(src.as_ptr(), dst.as_mut_ptr() as *mut u16, src.len()) }
}

/// `fcvtn` rounds to nearest-even (the FPCR default on Linux), quietens NaNs keeping the top
/// payload bits and keeps subnormals: the same bits as `half::f16::from_f32` (tested).
#[target_feature(enable = "neon")]
unsafe fn cvt_f32_f16_neon(src: *const f32, dst: *mut u16, n: usize) {
    // SAFETY: i + 8 <= n (or i < n) for every access; both buffers hold n elements.
    unsafe {
        let mut i = 0;
        while i + 8 <= n {
            let h = fcvtn2!(vld1q_f32(src.add(i)), vld1q_f32(src.add(i + 4)));
            vst1q_u16(dst.add(i), h);
            i += 8;
        }
        while i < n {
            *dst.add(i) = f16::from_f32(*src.add(i)).to_bits();
            i += 1;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Transposes: square register tiles (4×4 f32, 8×8 u16, 8×8 u8), scalar borders.

transposes! {
    "neon";
    transpose_f32: f32 => [(4, tile_4x4_f32)],
    transpose_u16: u16 => [(8, tile_8x8_u16)],
    transpose_u8: u8 => [(8, tile_8x8_u8)],
}

/// # Safety
/// NEON; a 4x4 tile readable at `s + i*src_ld`, writable at `d + j*dst_ld`.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn tile_4x4_f32(s: *const f32, src_ld: usize, d: *mut f32, dst_ld: usize) {
    // SAFETY: the caller guarantees the 4x4 source and destination tiles.
    unsafe {
        let r = transpose_4x4_f32(core::array::from_fn(|i| vld1q_f32(s.add(i * src_ld))));
        for (j, &row) in r.iter().enumerate() {
            vst1q_f32(d.add(j * dst_ld), row);
        }
    }
}

/// # Safety
/// An 8x8 tile readable at `s + i*src_ld`, writable at `d + j*dst_ld`.
#[inline(always)]
unsafe fn tile_8x8<V: Trn8>(s: *const V::E, src_ld: usize, d: *mut V::E, dst_ld: usize) {
    // SAFETY: the caller guarantees the 8x8 source and destination tiles.
    unsafe {
        let r = transpose_8x8(core::array::from_fn(|i| V::load(s.add(i * src_ld))));
        for (j, &row) in r.iter().enumerate() {
            V::store(d.add(j * dst_ld), row);
        }
    }
}

/// # Safety
/// NEON; as [`tile_8x8`].
#[inline]
#[target_feature(enable = "neon")]
unsafe fn tile_8x8_u16(s: *const u16, src_ld: usize, d: *mut u16, dst_ld: usize) {
    // SAFETY: the caller's tiles.
    unsafe { tile_8x8::<uint16x8_t>(s, src_ld, d, dst_ld) }
}

/// # Safety
/// NEON; as [`tile_8x8`].
#[inline]
#[target_feature(enable = "neon")]
unsafe fn tile_8x8_u8(s: *const u8, src_ld: usize, d: *mut u8, dst_ld: usize) {
    // SAFETY: the caller's tiles.
    unsafe { tile_8x8::<uint8x8_t>(s, src_ld, d, dst_ld) }
}

#[cfg(test)]
pub(super) mod tests {
    //! Every kernel against `scalar`, on random shapes that include the edge sizes.
    use super::super::{cin4, pack_conv_f32, pack_conv_i8, scalar, Kernels, Tap, TapQ11};
    use half::f16;
    use proptest::prelude::*;

    pub fn rel_err(a: &[f32], r: &[f32]) -> f32 {
        let m = r.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-30);
        a.iter().zip(r).fold(0f32, |e, (x, y)| e.max((x - y).abs())) / m
    }

    fn rng(seed: u64) -> impl FnMut() -> u64 {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        }
    }
    pub fn rand_f32(n: usize, seed: u64) -> Vec<f32> {
        let mut r = rng(seed);
        (0..n)
            .map(|_| (r() % 20001) as f32 / 10000.0 - 1.0)
            .collect()
    }
    pub fn rand_i8(n: usize, seed: u64) -> Vec<i8> {
        let mut r = rng(seed);
        (0..n).map(|_| r() as i8).collect()
    }

    pub fn check_conv_f32(
        k: &Kernels,
        npix: usize,
        cin: usize,
        o_n: usize,
        pad: usize,
        bias: bool,
        seed: u64,
    ) {
        let ldx = cin + pad;
        let x = rand_f32(npix.saturating_sub(1) * ldx + cin, seed);
        let w = pack_conv_f32(&rand_f32(o_n * cin, seed + 1), o_n, cin);
        let b = rand_f32(o_n, seed + 2);
        let b = bias.then_some(&b[..]);
        let (mut got, mut want) = (vec![f32::NAN; npix * o_n], vec![0.0; npix * o_n]);
        (k.conv_f32)(&x, ldx, npix, cin, &w, b, o_n, &mut got);
        scalar::conv_f32(&x, ldx, npix, cin, &w, b, o_n, &mut want);
        let e = rel_err(&got, &want);
        assert!(
            e <= 1e-5,
            "conv_f32 npix={npix} cin={cin} o_n={o_n}: rel err {e}"
        );
    }

    pub fn check_conv_i8(k: &Kernels, npix: usize, cin: usize, o_n: usize, pad: usize, seed: u64) {
        let ldx = cin + pad;
        // Unpadded rows: the slice ends exactly after the last pixel's `cin` bytes.
        let x = rand_i8(npix.saturating_sub(1) * ldx + cin, seed);
        let mut w = rand_i8(o_n * cin, seed + 1);
        if seed.is_multiple_of(3) {
            // Worst case for i16 intermediates: every product is (-128)·(-128).
            w.fill(-128);
            let x = vec![-128i8; x.len()];
            let wp = pack_conv_i8(&w, o_n, cin);
            let (mut got, mut want) = (vec![7; npix * o_n], vec![0; npix * o_n]);
            (k.conv_i8)(&x, ldx, npix, cin, &wp, o_n, &mut got);
            scalar::conv_i8(&x, ldx, npix, cin, &wp, o_n, &mut want);
            assert_eq!(got, want, "conv_i8 extreme npix={npix} cin={cin} o_n={o_n}");
        }
        let wp = pack_conv_i8(&w, o_n, cin);
        assert_eq!(wp.len(), cin4(cin) * o_n);
        let (mut got, mut want) = (vec![7; npix * o_n], vec![0; npix * o_n]);
        (k.conv_i8)(&x, ldx, npix, cin, &wp, o_n, &mut got);
        scalar::conv_i8(&x, ldx, npix, cin, &wp, o_n, &mut want);
        assert_eq!(
            got, want,
            "conv_i8 npix={npix} cin={cin} o_n={o_n} ldx={ldx}"
        );
    }

    /// Random taps on an `h`×`w` NHWC map with `groups*cpg` channels; far taps clamp at borders.
    pub fn taps(
        ntaps: usize,
        h: usize,
        w: usize,
        cpg: usize,
        seed: u64,
    ) -> (usize, Vec<Tap>, Vec<TapQ11>) {
        let ch = 2 * cpg;
        let mut r = rng(seed);
        let mut ft = Vec::new();
        let mut qt = Vec::new();
        for _ in 0..ntaps {
            let (y, x, g) = ((r() as usize) % h, (r() as usize) % w, (r() as usize) % 2);
            let base = ((y * w + x) * ch + g * cpg) as u32;
            let dx = if x + 1 < w { ch as u32 } else { 0 };
            let dy = if y + 1 < h { (w * ch) as u32 } else { 0 };
            let (qx, qy) = ((r() % 2049) as u16, (r() % 2049) as u16);
            ft.push(Tap {
                base,
                dx,
                dy,
                fx: qx as f32 / 2048.0,
                fy: (r() % 10001) as f32 / 10000.0,
            });
            qt.push(TapQ11::new(base, dx, dy, qx, qy));
        }
        (h * w * ch, ft, qt)
    }

    pub fn check_sample_f32(k: &Kernels, ntaps: usize, cpg: usize, seed: u64) {
        let (n, ft, _) = taps(ntaps, 3, 4, cpg, seed);
        let src = rand_f32(n, seed);
        let (mut got, mut want) = (vec![f32::NAN; ntaps * cpg], vec![0.0; ntaps * cpg]);
        (k.sample_f32)(&src, &ft, cpg, &mut got);
        scalar::sample_f32(&src, &ft, cpg, &mut want);
        let e = rel_err(&got, &want);
        assert!(e <= 1e-5, "sample_f32 ntaps={ntaps} cpg={cpg}: rel err {e}");
    }

    pub fn f16_src(n: usize, seed: u64) -> Vec<f16> {
        rand_f32(n, seed)
            .iter()
            .map(|v| f16::from_f32(v * 8.0))
            .collect()
    }

    /// The f32-math f16 sampler must match scalar bit for bit.
    pub fn check_sample_f16_exact(k: &Kernels, ntaps: usize, cpg: usize, seed: u64) {
        let (n, ft, _) = taps(ntaps, 3, 4, cpg, seed);
        let src = f16_src(n, seed);
        let (mut got, mut want) = (vec![f16::NAN; ntaps * cpg], vec![f16::ZERO; ntaps * cpg]);
        (k.sample_f16)(&src, &ft, cpg, &mut got);
        scalar::sample_f16(&src, &ft, cpg, &mut want);
        let (g, w): (Vec<u16>, Vec<u16>) = (
            got.iter().map(|v| v.to_bits()).collect(),
            want.iter().map(|v| v.to_bits()).collect(),
        );
        assert_eq!(g, w, "sample_f16 ntaps={ntaps} cpg={cpg}");
    }

    pub fn check_sample_i8(k: &Kernels, ntaps: usize, cpg: usize, seed: u64) {
        let (n, _, mut qt) = taps(ntaps, 3, 4, cpg, seed);
        if seed.is_multiple_of(4) {
            // Exact corner weights (0 and 2048) exercise the largest products.
            for (i, t) in qt.iter_mut().enumerate() {
                let (fx, fy) = ([0, 2048, 1024, 1][i % 4], [2048, 0, 1, 2047][i % 4]);
                *t = TapQ11::new(t.base, t.dx, t.dy, fx, fy);
            }
        }
        let mut src = rand_i8(n, seed);
        if seed.is_multiple_of(5) {
            src.iter_mut()
                .enumerate()
                .for_each(|(i, v)| *v = if i % 2 == 0 { -128 } else { 127 });
        }
        let (mut got, mut want) = (vec![7i8; ntaps * cpg], vec![0i8; ntaps * cpg]);
        (k.sample_i8)(&src, &qt, cpg, &mut got);
        scalar::sample_i8(&src, &qt, cpg, &mut want);
        assert_eq!(got, want, "sample_i8 ntaps={ntaps} cpg={cpg}");
    }

    /// Values that stress f32 → f16 rounding: ties, subnormals, overflow, inf, NaN payloads.
    pub fn special_f32() -> Vec<f32> {
        let mut v = vec![
            0.0,
            -0.0,
            1.0,
            -1.0,
            65504.0,
            65519.99,
            65520.0,
            -65520.0,
            1e6,
            -1e30,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            -f32::NAN,
            f32::MIN_POSITIVE,
            5.96e-8,
            2.98e-8,
            2.9802322e-8,
            2.9802326e-8,
            6.1e-5,
            6.097555e-5,
            1e-10,
            f32::MAX,
            f32::MIN,
        ];
        for bits in [
            0x7f80_0001u32,
            0x7fc0_1234,
            0xffa0_0000,
            0x7f80_2000,
            0x3380_0000,
            0x3380_0001,
            0x387f_f000,
            0x387f_e000,
        ] {
            v.push(f32::from_bits(bits));
        }
        // Exact halfway points between f16 neighbours, both parities, normal and subnormal.
        for h in [0x3c00u16, 0x3c01, 0x0001, 0x0002, 0x03ff, 0x7bfe, 0x0400] {
            let a = f16::from_bits(h).to_f32();
            let b = f16::from_bits(h + 1).to_f32();
            v.push((a + b) / 2.0);
            v.push(-(a + b) / 2.0);
        }
        v
    }

    pub fn check_cvt(k: &Kernels, n: usize, seed: u64) {
        let mut r = rng(seed);
        let mut src: Vec<f32> = (0..n).map(|_| f32::from_bits(r() as u32)).collect();
        let sp = special_f32();
        for (i, v) in src.iter_mut().enumerate() {
            if i % 3 == 0 {
                *v = sp[(i / 3) % sp.len()];
            }
        }
        let mut got = vec![f16::ZERO; n];
        (k.cvt_f32_f16)(&src, &mut got);
        for (i, (g, s)) in got.iter().zip(&src).enumerate() {
            assert_eq!(
                g.to_bits(),
                f16::from_f32(*s).to_bits(),
                "cvt_f32_f16 [{i}] of {s:e} ({:#x})",
                s.to_bits()
            );
        }
        let h: Vec<f16> = (0..n).map(|_| f16::from_bits(r() as u16)).collect();
        let mut back = vec![0f32; n];
        (k.cvt_f16_f32)(&h, &mut back);
        for (g, s) in back.iter().zip(&h) {
            assert_eq!(
                g.to_bits(),
                s.to_f32().to_bits(),
                "cvt_f16_f32 of {:#x}",
                s.to_bits()
            );
        }
    }

    pub fn check_transposes(k: &Kernels, rows: usize, cols: usize, pad: usize, seed: u64) {
        let src_ld = cols + pad;
        let dst_ld = rows + pad.div_ceil(2);
        let n = rows.saturating_sub(1) * src_ld + cols;
        macro_rules! one {
            ($f:ident, $t:ty) => {{
                let src: Vec<$t> = rand_i8(n, seed).iter().map(|v| *v as $t).collect();
                let (mut got, mut want) =
                    (vec![0 as $t; cols * dst_ld], vec![0 as $t; cols * dst_ld]);
                // SAFETY: both destinations hold cols*dst_ld elements.
                unsafe {
                    (k.$f)(&src, rows, cols, src_ld, got.as_mut_ptr(), dst_ld);
                    scalar::transpose(&src, rows, cols, src_ld, want.as_mut_ptr(), dst_ld);
                }
                assert!(
                    got == want,
                    "{} rows={rows} cols={cols} pad={pad}",
                    stringify!($f)
                );
            }};
        }
        let src: Vec<f32> = rand_f32(n, seed);
        let (mut got, mut want) = (vec![0f32; cols * dst_ld], vec![0f32; cols * dst_ld]);
        // SAFETY: both destinations hold cols*dst_ld elements.
        unsafe {
            (k.transpose_f32)(&src, rows, cols, src_ld, got.as_mut_ptr(), dst_ld);
            scalar::transpose(&src, rows, cols, src_ld, want.as_mut_ptr(), dst_ld);
        }
        assert!(
            got == want,
            "transpose_f32 rows={rows} cols={cols} pad={pad}"
        );
        one!(transpose_u16, u16);
        one!(transpose_u8, u8);
    }

    /// Fused NCHW kernels of `k` against the scalar fused kernels: `npx` pixels of `g` groups,
    /// planes 3 wider than the row with sentinels (NaN / 0x55) that must survive. `at_end` moves
    /// every tap to the last pixel of the source, so channel tails cannot over-read.
    pub fn check_nchw(
        k: &Kernels,
        g: usize,
        cpg: usize,
        npx: usize,
        seed: u64,
        at_end: bool,
        f16_exact: bool,
    ) {
        let (len, mut ft, mut qt) = taps(npx * g, 3, 4, cpg, seed);
        if at_end {
            for (f, q) in ft.iter_mut().zip(&mut qt) {
                (f.base, f.dx, f.dy) = ((len - cpg) as u32, 0, 0);
                (q.base, q.dx, q.dy) = ((len - cpg) as u32, 0, 0);
            }
        }
        let plane = npx + 3;
        let n = g * cpg * plane + 5;
        let what = format!("g={g} cpg={cpg} npx={npx} at_end={at_end}");
        if let Some(f) = k.sample_f32_nchw {
            let src = rand_f32(len, seed);
            let (mut got, mut want) = (vec![f32::NAN; n], vec![f32::NAN; n]);
            // SAFETY: both buffers hold every (channel, X < npx) of `plane`-long planes.
            unsafe {
                f(&src, &ft, g, cpg, got.as_mut_ptr(), plane);
                scalar::sample_f32_nchw(&src, &ft, g, cpg, want.as_mut_ptr(), plane);
            }
            for (i, (a, b)) in got.iter().zip(&want).enumerate() {
                if b.is_nan() {
                    assert!(
                        a.is_nan(),
                        "sample_f32_nchw wrote [{i}] outside its row, {what}"
                    );
                } else {
                    assert!(
                        (a - b).abs() <= 1e-5 * b.abs().max(1e-3),
                        "sample_f32_nchw [{i}] {a} vs {b}, {what}"
                    );
                }
            }
        }
        if let (true, Some(f)) = (f16_exact, k.sample_f16_nchw) {
            let src = f16_src(len, seed);
            let (mut got, mut want) = (vec![f16::NAN; n], vec![f16::NAN; n]);
            // SAFETY: as above.
            unsafe {
                f(&src, &ft, g, cpg, got.as_mut_ptr(), plane);
                scalar::sample_f16_nchw(&src, &ft, g, cpg, want.as_mut_ptr(), plane);
            }
            let bits = |v: &[f16]| v.iter().map(|h| h.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&want), "sample_f16_nchw {what}");
        }
        if let Some(f) = k.sample_i8_nchw {
            let mut src = rand_i8(len, seed);
            if seed.is_multiple_of(5) {
                src.iter_mut()
                    .enumerate()
                    .for_each(|(i, v)| *v = if i % 2 == 0 { -128 } else { 127 });
            }
            if seed.is_multiple_of(4) {
                for (i, t) in qt.iter_mut().enumerate() {
                    let (fx, fy) = ([0, 2048, 1024, 1][i % 4], [2048, 0, 1, 2047][i % 4]);
                    *t = TapQ11::new(t.base, t.dx, t.dy, fx, fy);
                }
            }
            let (mut got, mut want) = (vec![0x55i8; n], vec![0x55i8; n]);
            // SAFETY: as above.
            unsafe {
                f(&src, &qt, g, cpg, got.as_mut_ptr(), plane);
                scalar::sample_i8_nchw(&src, &qt, g, cpg, want.as_mut_ptr(), plane);
            }
            assert_eq!(got, want, "sample_i8_nchw {what}");
        }
    }

    /// Edge sizes of the fused kernels: pixel tails of every tile width, channel tails, g ≥ 1.
    pub fn nchw_fixed_cases(k: &Kernels, f16_exact: bool) {
        for g in [1, 2, 3, 4] {
            for cpg in (1..=9).chain([15, 16, 17, 24, 31]) {
                for npx in [0, 1, 3, 4, 5, 7, 8, 9, 17] {
                    let seed = (g * 1000 + cpg * 20 + npx) as u64;
                    check_nchw(k, g, cpg, npx, seed, false, f16_exact);
                    check_nchw(k, g, cpg, npx, seed + 1, true, f16_exact);
                }
            }
        }
        check_nchw(k, 4, 16, 240, 5, false, f16_exact);
        check_nchw(k, 1, 64, 120, 6, false, f16_exact);
    }

    /// Fixed cases every NEON table must pass: the hot shapes and the edge sizes.
    pub fn fixed_cases(k: &Kernels) {
        // The paper's reference: cin 256, o_n 32, 120 pixels; pl: cin 64, o_n 8, npix 480.
        check_conv_f32(k, 120, 256, 32, 0, true, 1);
        check_conv_f32(k, 480, 64, 8, 0, false, 2);
        check_conv_i8(k, 120, 256, 32, 0, 3);
        check_conv_i8(k, 480, 64, 8, 0, 4);
        for npix in [0, 1, 2, 3, 4, 5, 9] {
            for cin in (0..=9).chain([15, 16, 17]) {
                for o_n in (1..=9).chain([12, 16, 17, 20, 33]) {
                    check_conv_f32(
                        k,
                        npix,
                        cin,
                        o_n,
                        npix % 3,
                        npix % 2 == 0,
                        (npix * 100 + cin * 10 + o_n) as u64,
                    );
                    check_conv_i8(
                        k,
                        npix,
                        cin,
                        o_n,
                        cin % 2,
                        (npix * 100 + cin * 10 + o_n) as u64,
                    );
                }
            }
        }
        for cpg in (1..=9).chain([15, 16, 17, 24, 31, 64]) {
            for ntaps in [0, 1, 5] {
                check_sample_f32(k, ntaps, cpg, cpg as u64);
                check_sample_i8(k, ntaps, cpg, cpg as u64 + ntaps as u64);
            }
        }
        check_sample_i8(k, 240, 64, 20);
        check_sample_f32(k, 240, 64, 21);
        for n in [0, 1, 7, 8, 9, 15, 16, 17, 100] {
            check_cvt(k, n, n as u64);
        }
        check_cvt(k, 1 << 16, 99);
        // Every f16 bit pattern through cvt_f16_f32 and back.
        let all: Vec<f16> = (0..=u16::MAX).map(f16::from_bits).collect();
        let mut f = vec![0f32; all.len()];
        (k.cvt_f16_f32)(&all, &mut f);
        let mut back = vec![f16::ZERO; all.len()];
        (k.cvt_f32_f16)(&f, &mut back);
        for (i, (a, b)) in all.iter().zip(&back).enumerate() {
            assert_eq!(
                f[i].to_bits(),
                a.to_f32().to_bits(),
                "cvt_f16_f32 of {i:#x}"
            );
            assert_eq!(
                b.to_bits(),
                f16::from_f32(f[i]).to_bits(),
                "round trip of {i:#x}"
            );
        }
        for rows in [0, 1, 3, 4, 7, 8, 9, 16, 17] {
            for cols in [0, 1, 3, 4, 5, 8, 15, 16, 19] {
                check_transposes(k, rows, cols, (rows + cols) % 3, (rows * 31 + cols) as u64);
            }
        }
        check_transposes(k, 256, 120, 0, 7);
        // f16 exactness is the f32-math tables' property; the fp16 table checks its own.
        nchw_fixed_cases(k, k.backend != super::super::Backend::NeonDotprodFp16);
    }

    use super::KERNELS;

    #[test]
    fn neon_fixed_cases() {
        fixed_cases(&KERNELS);
    }

    #[test]
    fn neon_f16_sampling_matches_scalar_bits() {
        for cpg in (1..=9).chain([15, 16, 17, 24, 64]) {
            for ntaps in [0, 1, 7] {
                check_sample_f16_exact(&KERNELS, ntaps, cpg, cpg as u64 * 7 + ntaps as u64);
            }
        }
    }

    #[test]
    fn neon_table_is_usable_on_aarch64() {
        // ARMv8.0 always has Advanced SIMD; the table must be handed out.
        let k = super::super::Backend::Neon.kernels().expect("neon table");
        assert_eq!(k.backend, super::super::Backend::Neon);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn neon_conv_random(npix in 0usize..11, cin in 0usize..70, o_n in 1usize..40, pad in 0usize..5, bias: bool, seed: u64) {
            check_conv_f32(&KERNELS, npix, cin, o_n, pad, bias, seed);
            check_conv_i8(&KERNELS, npix, cin, o_n, pad, seed);
        }
        #[test]
        fn neon_sample_random(ntaps in 0usize..20, cpg in 1usize..80, seed: u64) {
            check_sample_f32(&KERNELS, ntaps, cpg, seed);
            check_sample_f16_exact(&KERNELS, ntaps, cpg, seed);
            check_sample_i8(&KERNELS, ntaps, cpg, seed);
        }
        #[test]
        fn neon_sample_nchw_random(g in 1usize..6, cpg in 1usize..40, npx in 0usize..30, at_end: bool, seed: u64) {
            check_nchw(&KERNELS, g, cpg, npx, seed, at_end, true);
        }
        #[test]
        fn neon_cvt_transpose_random(n in 0usize..200, rows in 0usize..40, cols in 0usize..40, pad in 0usize..6, seed: u64) {
            check_cvt(&KERNELS, n, seed);
            check_transposes(&KERNELS, rows, cols, pad, seed);
        }
    }
}
