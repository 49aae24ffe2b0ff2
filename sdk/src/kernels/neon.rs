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
use super::tiling::ConvF32Args;
use super::{scalar, Backend, Kernels, Tap, TapQ11};
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
    // No non-temporal store that skips the read-for-ownership on AArch64 (STNP is a hint).
    stream_tile_f32: None,
    stream_tile_u16: None,
    stream_tile_u8: None,
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

conv_f32_entry!(pub conv_f32 => conv_f32_neon, "`neon` is present since this table was handed out");

#[target_feature(enable = "neon")]
unsafe fn conv_f32_neon(a: &ConvF32Args) {
    let k = ConvF32 {
        x: a.x,
        ldx: a.ld,
        cin: a.cin,
        wt: a.w,
        bias: (!a.bias.is_null()).then_some(a.bias),
        o_n: a.o_n,
        out: a.out,
    };
    // SAFETY: the entry checked that rows p < npix hold `cin` values at p*ldx, that `wt` holds
    // cin*o_n and `out` npix*o_n values (and o_n biases when set): the extents conv_blocks walks.
    unsafe { arm_loops::conv_blocks::<_, 4>(&k, a.npix, a.o_n) }
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
                        *o.add(c) = scalar::blend_f32(t, p.map(|p| *p.add(c)));
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
                        let q = p.map(|p| f16::from_bits(*p.add(c)));
                        *o.add(c) = scalar::blend_f16(t, q).to_bits();
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
mod tests {
    table_tests!(Neon);

    #[test]
    fn neon_table_is_usable_on_aarch64() {
        // ARMv8.0 always has Advanced SIMD; the table must be handed out.
        let k = super::super::Backend::Neon.kernels().expect("neon table");
        assert_eq!(k.backend, super::super::Backend::Neon);
    }
}
