//! AArch64 Advanced SIMD kernels, ARMv8.0 baseline (Raspberry Pi 4 / Cortex-A72): [`Backend::Neon`].
//!
//! Layout of every family: a safe wrapper with the table's signature asserts the slice bounds,
//! then calls one `#[target_feature(enable = "neon")]` leaf that works on raw pointers.
//! The table is only handed out by [`Backend::kernels`] after `neon` was detected.
//!
//! f16 ↔ f32 conversion uses `fcvtl`/`fcvtn` through `asm!`: they are ARMv8.0 instructions, but
//! the `float16x4_t` intrinsics are newer than the workspace MSRV (1.85).
//!
//! The float sampling kernels use separate multiply and add (no FMA), in the scalar order, so
//! they return the same bits as [`scalar`](super::scalar); the integer ones are exact anyway.

// Register-blocked loops index several small arrays (accumulators, rows, weights) in lockstep.
#![allow(clippy::needless_range_loop, clippy::too_many_arguments)]

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
// Shared helpers (used by the dotprod / fp16 modules too).

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

/// Panics unless every tap's four `cpg`-runs lie inside `src` (the bound the SIMD loops rely on).
pub(super) fn check_taps(
    src_len: usize,
    base_dx_dy: impl Iterator<Item = (u32, u32, u32)>,
    cpg: usize,
) {
    for (b, dx, dy) in base_dx_dy {
        let end = b as usize + dx as usize + dy as usize + cpg;
        assert!(
            end <= src_len,
            "sample tap reads {end} elements of a {src_len}-element source"
        );
    }
}

// The int8 conv kernels build a u32 from 4 bytes and broadcast it as lanes of bytes in memory
// order, which holds on little-endian only (every aarch64 Linux target we ship).
const _: () = assert!(cfg!(target_endian = "little"));

/// 4 bytes at `p` (any alignment) as one u32, in memory order.
///
/// # Safety
/// `p..p+4` must be readable.
#[inline(always)]
pub(super) unsafe fn dup4(p: *const i8) -> u32 {
    // SAFETY: the caller guarantees 4 readable bytes; read_unaligned has no alignment need.
    unsafe { (p as *const u32).read_unaligned() }
}

/// The last `cin % 4` (≥ 1) bytes of a row, zero-padded to 4: rows are not padded, so never read
/// past them. Built with shifts rather than a copy loop so no `memcpy` call ends up between the
/// accumulators (a call would force them to the stack).
///
/// # Safety
/// `row..row+cin` must be readable.
#[inline(always)]
pub(super) unsafe fn ktail4(row: *const i8, cin: usize) -> u32 {
    let r = cin % 4;
    // SAFETY: bytes k0 .. k0 + r are the last ones of the row.
    unsafe {
        let t = row.add(cin - r);
        let mut v = *t as u8 as u32;
        if r > 1 {
            v |= (*t.add(1) as u8 as u32) << 8;
        }
        if r > 2 {
            v |= (*t.add(2) as u8 as u32) << 16;
        }
        v
    }
}

/// Exact scalar i8 dot product for output `o` (tails of `o_n % 4`).
///
/// # Safety
/// `row..row+cin` readable, `w` a `pack_conv_i8` buffer for `o_n` outputs and `cin` inputs.
#[inline]
pub(super) unsafe fn conv_i8_one(
    row: *const i8,
    cin: usize,
    w: *const i8,
    o_n: usize,
    o: usize,
) -> i32 {
    let mut s = 0i32;
    for k in 0..cin {
        // SAFETY: k < cin and the packed index is < cin4(cin) * o_n.
        s += unsafe { *row.add(k) as i32 * *w.add((k / 4) * o_n * 4 + o * 4 + k % 4) as i32 };
    }
    s
}

// ---------------------------------------------------------------------------------------------
// conv_f32: register-blocked, 4 pixels × 16 outputs (16 accumulators), weights streamed once
// per 4 pixels.

conv_f32_entry!(pub conv_f32 => conv_f32_neon, "`neon` is present since this table was handed out");

#[target_feature(enable = "neon")]
unsafe fn conv_f32_neon(
    x: *const f32,
    ldx: usize,
    npix: usize,
    cin: usize,
    wt: *const f32,
    bias: *const f32,
    o_n: usize,
    out: *mut f32,
) {
    let bias = (!bias.is_null()).then_some(bias);
    // SAFETY: the wrapper checked that rows p < npix hold `cin` values at p*ldx, that `wt` holds
    // cin*o_n and `out` npix*o_n values (and o_n biases when `bias` is set); every access below
    // stays inside those.
    unsafe {
        let mut p = 0;
        while p + 4 <= npix {
            conv_f32_rows::<4>(x.add(p * ldx), ldx, cin, wt, bias, o_n, out.add(p * o_n));
            p += 4;
        }
        while p < npix {
            conv_f32_rows::<1>(x.add(p * ldx), ldx, cin, wt, bias, o_n, out.add(p * o_n));
            p += 1;
        }
    }
}

#[target_feature(enable = "neon")]
#[inline]
unsafe fn conv_f32_rows<const NP: usize>(
    x: *const f32,
    ldx: usize,
    cin: usize,
    wt: *const f32,
    bias: Option<*const f32>,
    o_n: usize,
    out: *mut f32,
) {
    // SAFETY: NP rows starting at `x` / `out`, within the caller's bounds.
    unsafe {
        let mut o = 0;
        while o + 16 <= o_n {
            conv_f32_block::<NP, 4>(x, ldx, cin, wt, bias, o_n, o, out);
            o += 16;
        }
        match (o_n - o) / 4 {
            3 => conv_f32_block::<NP, 3>(x, ldx, cin, wt, bias, o_n, o, out),
            2 => conv_f32_block::<NP, 2>(x, ldx, cin, wt, bias, o_n, o, out),
            1 => conv_f32_block::<NP, 1>(x, ldx, cin, wt, bias, o_n, o, out),
            _ => {}
        }
        o += (o_n - o) / 4 * 4;
        // o_n % 4 leftover outputs: weights have no padding to load a full vector from.
        for oo in o..o_n {
            for p in 0..NP {
                let mut s = bias.map_or(0.0, |b| *b.add(oo));
                for k in 0..cin {
                    s += *x.add(p * ldx + k) * *wt.add(k * o_n + oo);
                }
                *out.add(p * o_n + oo) = s;
            }
        }
    }
}

#[target_feature(enable = "neon")]
#[inline]
unsafe fn conv_f32_block<const NP: usize, const NV: usize>(
    x: *const f32,
    ldx: usize,
    cin: usize,
    wt: *const f32,
    bias: Option<*const f32>,
    o_n: usize,
    o0: usize,
    out: *mut f32,
) {
    // SAFETY: outputs o0..o0+4*NV <= o_n of NP rows, inside the caller's bounds.
    unsafe {
        let mut acc = [[vdupq_n_f32(0.0); NV]; NP];
        if let Some(b) = bias {
            for v in 0..NV {
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
                    let mut w = [vdupq_n_f32(0.0); NV];
                    for v in 0..NV {
                        w[v] = vld1q_f32(wr.add(4 * v));
                    }
                    for p in 0..NP {
                        for v in 0..NV {
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
            let mut w = [vdupq_n_f32(0.0); NV];
            for v in 0..NV {
                w[v] = vld1q_f32(wr.add(4 * v));
            }
            for p in 0..NP {
                let xs = *x.add(p * ldx + k);
                for v in 0..NV {
                    acc[p][v] = vfmaq_n_f32(acc[p][v], w[v], xs);
                }
            }
            k += 1;
        }
        for p in 0..NP {
            for v in 0..NV {
                vst1q_f32(out.add(p * o_n + o0 + 4 * v), acc[p][v]);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// conv_i8 without dotprod: emulate `sdot` with vmull_s8 (exact i16 products) + vpadalq_s16
// (pairwise into i32). Two products never share an i16, so nothing can overflow or saturate.

conv_i8_entry!(pub conv_i8 => conv_i8_neon, "`neon` is present since this table was handed out");

#[target_feature(enable = "neon")]
unsafe fn conv_i8_neon(
    x: *const i8,
    ldx: usize,
    npix: usize,
    cin: usize,
    w: *const i8,
    o_n: usize,
    acc: *mut i32,
) {
    // SAFETY: rows p < npix hold `cin` bytes at p*ldx, `w` holds cin4*o_n bytes, `acc` npix*o_n.
    unsafe {
        let mut p = 0;
        while p + 4 <= npix {
            conv_i8_rows::<4>(x.add(p * ldx), ldx, cin, w, o_n, acc.add(p * o_n));
            p += 4;
        }
        while p < npix {
            conv_i8_rows::<1>(x.add(p * ldx), ldx, cin, w, o_n, acc.add(p * o_n));
            p += 1;
        }
    }
}

#[target_feature(enable = "neon")]
#[inline]
unsafe fn conv_i8_rows<const NP: usize>(
    x: *const i8,
    ldx: usize,
    cin: usize,
    w: *const i8,
    o_n: usize,
    acc: *mut i32,
) {
    // SAFETY: NP rows, inside the caller's bounds.
    unsafe {
        let mut o = 0;
        while o + 8 <= o_n {
            conv_i8_block::<NP, 2>(x, ldx, cin, w, o_n, o, acc);
            o += 8;
        }
        if o + 4 <= o_n {
            conv_i8_block::<NP, 1>(x, ldx, cin, w, o_n, o, acc);
            o += 4;
        }
        for oo in o..o_n {
            for p in 0..NP {
                *acc.add(p * o_n + oo) = conv_i8_one(x.add(p * ldx), cin, w, o_n, oo);
            }
        }
    }
}

/// NP pixels × NG groups of 4 outputs. Accumulators stay half-reduced (`[o0 k01, o0 k23, o1 k01,
/// o1 k23]`) and are folded with one `addp` at the end.
#[target_feature(enable = "neon")]
#[inline]
unsafe fn conv_i8_block<const NP: usize, const NG: usize>(
    x: *const i8,
    ldx: usize,
    cin: usize,
    w: *const i8,
    o_n: usize,
    o0: usize,
    acc: *mut i32,
) {
    // SAFETY: weight group g covers bytes (g*o_n + o0)*4 .. +16*NG <= cin4*o_n; x groups are whole
    // 4-byte reads inside the row, the tail goes through ktail4.
    unsafe {
        let mut a = [[[vdupq_n_s32(0); 2]; NG]; NP];
        // One group of 4 input channels; `$xg(row)` gives the pixel's 4 bytes.
        macro_rules! group {
            ($g:expr, $xg:expr) => {
                let wr = w.add(($g * o_n + o0) * 4);
                let mut wv = [vdupq_n_s8(0); NG];
                for j in 0..NG {
                    wv[j] = vld1q_s8(wr.add(16 * j));
                }
                for p in 0..NP {
                    let xb = vreinterpretq_s8_u32(vdupq_n_u32($xg(x.add(p * ldx))));
                    for j in 0..NG {
                        a[p][j][0] =
                            vpadalq_s16(a[p][j][0], vmull_s8(vget_low_s8(xb), vget_low_s8(wv[j])));
                        a[p][j][1] = vpadalq_s16(a[p][j][1], vmull_high_s8(xb, wv[j]));
                    }
                }
            };
        }
        for g in 0..cin / 4 {
            group!(g, |row: *const i8| dup4(row.add(4 * g)));
        }
        if !cin.is_multiple_of(4) {
            group!(cin / 4, |row| ktail4(row, cin));
        }
        for p in 0..NP {
            for j in 0..NG {
                vst1q_s32(
                    acc.add(p * o_n + o0 + 4 * j),
                    vpaddq_s32(a[p][j][0], a[p][j][1]),
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Sampling.

pub fn sample_f32(src: &[f32], taps: &[Tap], cpg: usize, out: &mut [f32]) {
    assert!(out.len() >= taps.len() * cpg);
    check_taps(src.len(), taps.iter().map(|t| (t.base, t.dx, t.dy)), cpg);
    // SAFETY: every tap's reads and the writes were bounds-checked above; `neon` detected.
    unsafe { sample_f32_neon(src.as_ptr(), taps, cpg, out.as_mut_ptr()) }
}

#[target_feature(enable = "neon")]
unsafe fn sample_f32_neon(src: *const f32, taps: &[Tap], cpg: usize, out: *mut f32) {
    // SAFETY: tap reads end at base+dx+dy+cpg <= src.len(), writes at taps.len()*cpg (checked).
    unsafe {
        for (n, t) in taps.iter().enumerate() {
            let p00 = src.add(t.base as usize);
            let p01 = p00.add(t.dx as usize);
            let p10 = p00.add(t.dy as usize);
            let p11 = p10.add(t.dx as usize);
            let o = out.add(n * cpg);
            let (fx, fy) = (vdupq_n_f32(t.fx), vdupq_n_f32(t.fy));
            // Same operations and order as scalar: a + f*(b - a), unfused.
            let lerp = |a: float32x4_t, b: float32x4_t, f: float32x4_t| {
                vaddq_f32(a, vmulq_f32(f, vsubq_f32(b, a)))
            };
            let mut c = 0;
            while c + 4 <= cpg {
                let top = lerp(vld1q_f32(p00.add(c)), vld1q_f32(p01.add(c)), fx);
                let bot = lerp(vld1q_f32(p10.add(c)), vld1q_f32(p11.add(c)), fx);
                vst1q_f32(o.add(c), lerp(top, bot, fy));
                c += 4;
            }
            while c < cpg {
                let (a, b, cc, d) = (*p00.add(c), *p01.add(c), *p10.add(c), *p11.add(c));
                let top = a + t.fx * (b - a);
                let bot = cc + t.fx * (d - cc);
                *o.add(c) = top + t.fy * (bot - top);
                c += 1;
            }
        }
    }
}

pub fn sample_f16(src: &[f16], taps: &[Tap], cpg: usize, out: &mut [f16]) {
    assert!(out.len() >= taps.len() * cpg);
    check_taps(src.len(), taps.iter().map(|t| (t.base, t.dx, t.dy)), cpg);
    // SAFETY: bounds checked above; f16 is a transparent u16; `neon` detected.
    unsafe {
        sample_f16_neon(
            src.as_ptr() as *const u16,
            taps,
            cpg,
            out.as_mut_ptr() as *mut u16,
        )
    }
}

/// f16 storage, f32 arithmetic: the scalar formula exactly, then round-to-nearest-even.
#[target_feature(enable = "neon")]
unsafe fn sample_f16_neon(src: *const u16, taps: &[Tap], cpg: usize, out: *mut u16) {
    // SAFETY: as sample_f32_neon; the asm only converts registers.
    unsafe {
        for (n, t) in taps.iter().enumerate() {
            let p00 = src.add(t.base as usize);
            let p01 = p00.add(t.dx as usize);
            let p10 = p00.add(t.dy as usize);
            let p11 = p10.add(t.dx as usize);
            let o = out.add(n * cpg);
            let (fx, fy) = (vdupq_n_f32(t.fx), vdupq_n_f32(t.fy));
            let lerp = |a: float32x4_t, b: float32x4_t, f: float32x4_t| {
                vaddq_f32(a, vmulq_f32(f, vsubq_f32(b, a)))
            };
            let mut c = 0;
            while c + 8 <= cpg {
                let (a, b) = (vld1q_u16(p00.add(c)), vld1q_u16(p01.add(c)));
                let (cc, d) = (vld1q_u16(p10.add(c)), vld1q_u16(p11.add(c)));
                let top = lerp(fcvtl!(vget_low_u16(a)), fcvtl!(vget_low_u16(b)), fx);
                let bot = lerp(fcvtl!(vget_low_u16(cc)), fcvtl!(vget_low_u16(d)), fx);
                let lo = lerp(top, bot, fy);
                let top = lerp(fcvtl2!(a), fcvtl2!(b), fx);
                let bot = lerp(fcvtl2!(cc), fcvtl2!(d), fx);
                let hi = lerp(top, bot, fy);
                vst1q_u16(o.add(c), fcvtn2!(lo, hi));
                c += 8;
            }
            if c + 4 <= cpg {
                let top = lerp(
                    fcvtl!(vld1_u16(p00.add(c))),
                    fcvtl!(vld1_u16(p01.add(c))),
                    fx,
                );
                let bot = lerp(
                    fcvtl!(vld1_u16(p10.add(c))),
                    fcvtl!(vld1_u16(p11.add(c))),
                    fx,
                );
                vst1_u16(o.add(c), fcvtn!(lerp(top, bot, fy)));
                c += 4;
            }
            while c < cpg {
                let g = |p: *const u16| f16::from_bits(*p.add(c)).to_f32();
                let (a, b, cc, d) = (g(p00), g(p01), g(p10), g(p11));
                let top = a + t.fx * (b - a);
                let bot = cc + t.fx * (d - cc);
                *o.add(c) = f16::from_f32(top + t.fy * (bot - top)).to_bits();
                c += 1;
            }
        }
    }
}

pub fn sample_i8(src: &[i8], taps: &[TapQ11], cpg: usize, out: &mut [i8]) {
    assert!(out.len() >= taps.len() * cpg);
    check_taps(src.len(), taps.iter().map(|t| (t.base, t.dx, t.dy)), cpg);
    // SAFETY: bounds checked above; `neon` detected.
    unsafe { sample_i8_neon(src.as_ptr(), taps, cpg, out.as_mut_ptr()) }
}

/// `Σ w·q` with the Q14 weights (≤ 2^14, so they fit i16) through widening MACs: exact in
/// i32 (|·| ≤ 2^21), and `srshr #14` is `(acc + 2^13) >> 14`.
#[target_feature(enable = "neon")]
unsafe fn sample_i8_neon(src: *const i8, taps: &[TapQ11], cpg: usize, out: *mut i8) {
    // SAFETY: as sample_f32_neon.
    unsafe {
        for (n, t) in taps.iter().enumerate() {
            let p00 = src.add(t.base as usize);
            let p01 = p00.add(t.dx as usize);
            let p10 = p00.add(t.dy as usize);
            let p11 = p10.add(t.dx as usize);
            let o = out.add(n * cpg);
            let w = weights_i16(t);
            let mut c = 0;
            while c + 16 <= cpg {
                let (a, b) = (vld1q_s8(p00.add(c)), vld1q_s8(p01.add(c)));
                let (cc, d) = (vld1q_s8(p10.add(c)), vld1q_s8(p11.add(c)));
                let lo = bilerp8_q14(
                    [
                        vget_low_s8(a),
                        vget_low_s8(b),
                        vget_low_s8(cc),
                        vget_low_s8(d),
                    ],
                    w,
                );
                let hi = bilerp8_q14(
                    [
                        vget_high_s8(a),
                        vget_high_s8(b),
                        vget_high_s8(cc),
                        vget_high_s8(d),
                    ],
                    w,
                );
                vst1q_s8(o.add(c), vcombine_s8(lo, hi));
                c += 16;
            }
            if c + 8 <= cpg {
                let q = [
                    vld1_s8(p00.add(c)),
                    vld1_s8(p01.add(c)),
                    vld1_s8(p10.add(c)),
                    vld1_s8(p11.add(c)),
                ];
                vst1_s8(o.add(c), bilerp8_q14(q, w));
                c += 8;
            }
            let wq = t.weights();
            while c < cpg {
                let q = [*p00.add(c), *p01.add(c), *p10.add(c), *p11.add(c)];
                *o.add(c) = super::blend_q14(q, wq);
                c += 1;
            }
        }
    }
}

/// The tap's Q14 weights as i16 (each ≤ 2^14).
#[inline(always)]
fn weights_i16(t: &TapQ11) -> [i16; 4] {
    t.weights().map(|w| w as i16)
}

/// The Q14 blend on 8 lanes: widen to i16, four widening MACs per half, rounding narrow.
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
// Fused NCHW sampling: the engine hands over one output row; tap `n = X·g + q` goes to
// `dst[(q·cpg + c)·plane + X]`. Per group `q`, tiles of pixels × channels are sampled as NHWC
// vectors (one per pixel, channels contiguous in the source), transposed in registers and stored
// as runs of consecutive pixels into the channel planes. Tiles: f32 4 px × 4 ch, f16 4 px × 8 ch,
// i8 8 px × 8 ch. A short pixel tile repeats its last tap (valid reads) and stores only its real
// pixels; a short channel tile computes full vectors and stores only its real channel rows.
// Each lane is computed exactly as in the NHWC kernel of the same precision, so the two layouts
// return the same values.

/// Asserts what the fused leaves rely on; returns false when there is nothing to write.
fn check_nchw(
    src_len: usize,
    taps: impl ExactSizeIterator<Item = (u32, u32, u32)>,
    g: usize,
    cpg: usize,
) -> bool {
    if taps.len() == 0 || cpg == 0 {
        return false;
    }
    assert!(g > 0, "sample_*_nchw with g = 0");
    check_taps(src_len, taps, cpg);
    true
}

/// The four corner pointers of a tap at channel `c`, ready for `W`-lane loads. When such a load
/// would run past the source's `len` elements (a channel tail of a tap at the end of the image),
/// the `rem` real channels are copied into `buf` and the pointers point there instead; the other
/// lanes of `buf` hold stale but initialised values, whose results are never stored.
///
/// # Safety
/// `src..src+len` readable and `base + dx + dy + c + rem <= len`, `rem <= W`.
#[inline(always)]
pub(super) unsafe fn corners<T: Copy, const W: usize>(
    src: *const T,
    len: usize,
    (base, dx, dy): (u32, u32, u32),
    c: usize,
    rem: usize,
    buf: &mut [[T; W]; 4],
) -> [*const T; 4] {
    let b = base as usize + c;
    let (dx, dy) = (dx as usize, dy as usize);
    let offs = [b, b + dx, b + dy, b + dx + dy];
    // SAFETY: the last corner is the farthest (dx, dy are unsigned); the fast path reads
    // W ≤ len − (b + dx + dy) elements from each, the slow path `rem` (caller's bound).
    unsafe {
        if b + dx + dy + W <= len {
            offs.map(|o| src.add(o))
        } else {
            for (bk, &o) in buf.iter_mut().zip(&offs) {
                for i in 0..rem {
                    bk[i] = *src.add(o + i);
                }
            }
            [
                buf[0].as_ptr(),
                buf[1].as_ptr(),
                buf[2].as_ptr(),
                buf[3].as_ptr(),
            ]
        }
    }
}

/// Stores the first `np` elements of `v` (all when `np == N`) at `d`.
///
/// # Safety
/// `d..d+np` writable; `v` holds `N` elements.
#[inline(always)]
unsafe fn store_first<T: Copy, const N: usize>(d: *mut T, v: &[T; N], np: usize) {
    // SAFETY: np ≤ N elements, inside the caller's bound.
    unsafe { core::ptr::copy_nonoverlapping(v.as_ptr(), d, np.min(N)) }
}

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
    let a0 = vreinterpretq_u32_u16(vtrn1q_u16(r[0], r[1])); // ch 0,2,4,6 of px 0,1
    let a1 = vreinterpretq_u32_u16(vtrn2q_u16(r[0], r[1])); // ch 1,3,5,7 of px 0,1
    let a2 = vreinterpretq_u32_u16(vtrn1q_u16(r[2], r[3]));
    let a3 = vreinterpretq_u32_u16(vtrn2q_u16(r[2], r[3]));
    // Each b holds two channel rows: (0 | 4), (2 | 6), (1 | 5), (3 | 7).
    let b0 = vreinterpretq_u16_u32(vtrn1q_u32(a0, a2));
    let b1 = vreinterpretq_u16_u32(vtrn2q_u32(a0, a2));
    let b2 = vreinterpretq_u16_u32(vtrn1q_u32(a1, a3));
    let b3 = vreinterpretq_u16_u32(vtrn2q_u32(a1, a3));
    let rows = [
        vget_low_u16(b0),
        vget_low_u16(b2),
        vget_low_u16(b1),
        vget_low_u16(b3),
        vget_high_u16(b0),
        vget_high_u16(b2),
        vget_high_u16(b1),
        vget_high_u16(b3),
    ];
    // SAFETY: row j < nch, pixels < np: the caller's bound.
    unsafe {
        for (j, &row) in rows.iter().enumerate().take(nch) {
            let dj = d.add(j * plane);
            if np == 4 {
                vst1_u16(dj, row);
            } else {
                let mut t = [0u16; 4];
                vst1_u16(t.as_mut_ptr(), row);
                store_first(dj, &t, np);
            }
        }
    }
}

/// # Safety
/// See [`super::SampleNchw`]: `dst` must be writable at `(q·cpg + c)·plane + X` for `q < g`,
/// `c < cpg`, `X < taps.len() / g`, and no other thread may access those elements during the
/// call. Nothing else is written (trailing taps beyond a multiple of `g` are ignored).
pub unsafe fn sample_f32_nchw(
    src: &[f32],
    taps: &[Tap],
    g: usize,
    cpg: usize,
    dst: *mut f32,
    plane: usize,
) {
    if check_nchw(src.len(), taps.iter().map(|t| (t.base, t.dx, t.dy)), g, cpg) {
        // SAFETY: tap reads checked above, dst writes are the caller's contract; `neon` detected.
        unsafe { sample_f32_nchw_neon(src.as_ptr(), src.len(), taps, g, cpg, dst, plane) }
    }
}

#[target_feature(enable = "neon")]
unsafe fn sample_f32_nchw_neon(
    src: *const f32,
    len: usize,
    taps: &[Tap],
    g: usize,
    cpg: usize,
    dst: *mut f32,
    plane: usize,
) {
    // Same operations and order as scalar: a + f*(b - a), unfused.
    let lerp = |a: float32x4_t, b: float32x4_t, f: float32x4_t| {
        vaddq_f32(a, vmulq_f32(f, vsubq_f32(b, a)))
    };
    let npx = taps.len() / g;
    let mut buf = [[[0f32; 4]; 4]; 4];
    // SAFETY: corner reads per `corners` (taps checked by the wrapper, rem ≤ cpg − c); stores go
    // to channel rows c + j < cpg and pixels x + k < npx only.
    unsafe {
        for q in 0..g {
            let mut x = 0;
            while x < npx {
                let np = (npx - x).min(4);
                let t: [&Tap; 4] = core::array::from_fn(|k| &taps[(x + k.min(np - 1)) * g + q]);
                let fx = t.map(|t| vdupq_n_f32(t.fx));
                let fy = t.map(|t| vdupq_n_f32(t.fy));
                let mut c = 0;
                while c < cpg {
                    let rem = (cpg - c).min(4);
                    let mut v = [vdupq_n_f32(0.0); 4];
                    for k in 0..4 {
                        let p =
                            corners(src, len, (t[k].base, t[k].dx, t[k].dy), c, rem, &mut buf[k]);
                        let top = lerp(vld1q_f32(p[0]), vld1q_f32(p[1]), fx[k]);
                        let bot = lerp(vld1q_f32(p[2]), vld1q_f32(p[3]), fx[k]);
                        v[k] = lerp(top, bot, fy[k]);
                    }
                    // 4×4 transpose: row j = channel c + j of pixels x..x+4.
                    let t0 = vreinterpretq_f64_f32(vtrn1q_f32(v[0], v[1]));
                    let t1 = vreinterpretq_f64_f32(vtrn2q_f32(v[0], v[1]));
                    let t2 = vreinterpretq_f64_f32(vtrn1q_f32(v[2], v[3]));
                    let t3 = vreinterpretq_f64_f32(vtrn2q_f32(v[2], v[3]));
                    let rows = [
                        vreinterpretq_f32_f64(vtrn1q_f64(t0, t2)),
                        vreinterpretq_f32_f64(vtrn1q_f64(t1, t3)),
                        vreinterpretq_f32_f64(vtrn2q_f64(t0, t2)),
                        vreinterpretq_f32_f64(vtrn2q_f64(t1, t3)),
                    ];
                    let d = dst.add((q * cpg + c) * plane + x);
                    for (j, &row) in rows.iter().enumerate().take(rem) {
                        if np == 4 {
                            vst1q_f32(d.add(j * plane), row);
                        } else {
                            let mut tmp = [0f32; 4];
                            vst1q_f32(tmp.as_mut_ptr(), row);
                            store_first(d.add(j * plane), &tmp, np);
                        }
                    }
                    c += 4;
                }
                x += 4;
            }
        }
    }
}

/// # Safety
/// As [`sample_f32_nchw`].
pub unsafe fn sample_f16_nchw(
    src: &[f16],
    taps: &[Tap],
    g: usize,
    cpg: usize,
    dst: *mut f16,
    plane: usize,
) {
    if check_nchw(src.len(), taps.iter().map(|t| (t.base, t.dx, t.dy)), g, cpg) {
        // SAFETY: as sample_f32_nchw; f16 is a transparent u16.
        unsafe {
            sample_f16_nchw_neon(
                src.as_ptr() as *const u16,
                src.len(),
                taps,
                g,
                cpg,
                dst as *mut u16,
                plane,
            )
        }
    }
}

/// f16 storage, f32 arithmetic in the scalar order, then `fcvtn`: the bits of `sample_f16`.
#[target_feature(enable = "neon")]
unsafe fn sample_f16_nchw_neon(
    src: *const u16,
    len: usize,
    taps: &[Tap],
    g: usize,
    cpg: usize,
    dst: *mut u16,
    plane: usize,
) {
    let lerp = |a: float32x4_t, b: float32x4_t, f: float32x4_t| {
        vaddq_f32(a, vmulq_f32(f, vsubq_f32(b, a)))
    };
    let npx = taps.len() / g;
    let mut buf = [[[0u16; 8]; 4]; 4];
    // SAFETY: as sample_f32_nchw_neon; the asm only converts registers.
    unsafe {
        for q in 0..g {
            let mut x = 0;
            while x < npx {
                let np = (npx - x).min(4);
                let t: [&Tap; 4] = core::array::from_fn(|k| &taps[(x + k.min(np - 1)) * g + q]);
                let fx = t.map(|t| vdupq_n_f32(t.fx));
                let fy = t.map(|t| vdupq_n_f32(t.fy));
                let mut c = 0;
                while c < cpg {
                    let rem = (cpg - c).min(8);
                    let mut v = [vdupq_n_u16(0); 4];
                    for k in 0..4 {
                        let p =
                            corners(src, len, (t[k].base, t[k].dx, t[k].dy), c, rem, &mut buf[k]);
                        let (a, b) = (vld1q_u16(p[0]), vld1q_u16(p[1]));
                        let (cc, dd) = (vld1q_u16(p[2]), vld1q_u16(p[3]));
                        let top = lerp(fcvtl!(vget_low_u16(a)), fcvtl!(vget_low_u16(b)), fx[k]);
                        let bot = lerp(fcvtl!(vget_low_u16(cc)), fcvtl!(vget_low_u16(dd)), fx[k]);
                        let lo = lerp(top, bot, fy[k]);
                        let top = lerp(fcvtl2!(a), fcvtl2!(b), fx[k]);
                        let bot = lerp(fcvtl2!(cc), fcvtl2!(dd), fx[k]);
                        let hi = lerp(top, bot, fy[k]);
                        v[k] = fcvtn2!(lo, hi);
                    }
                    store_4x8_u16(v, dst.add((q * cpg + c) * plane + x), plane, np, rem);
                    c += 8;
                }
                x += 4;
            }
        }
    }
}

/// # Safety
/// As [`sample_f32_nchw`].
pub unsafe fn sample_i8_nchw(
    src: &[i8],
    taps: &[TapQ11],
    g: usize,
    cpg: usize,
    dst: *mut i8,
    plane: usize,
) {
    if check_nchw(src.len(), taps.iter().map(|t| (t.base, t.dx, t.dy)), g, cpg) {
        // SAFETY: as sample_f32_nchw.
        unsafe { sample_i8_nchw_neon(src.as_ptr(), src.len(), taps, g, cpg, dst, plane) }
    }
}

#[target_feature(enable = "neon")]
unsafe fn sample_i8_nchw_neon(
    src: *const i8,
    len: usize,
    taps: &[TapQ11],
    g: usize,
    cpg: usize,
    dst: *mut i8,
    plane: usize,
) {
    let npx = taps.len() / g;
    let mut buf = [[[0i8; 8]; 4]; 8];
    // SAFETY: as sample_f32_nchw_neon.
    unsafe {
        for q in 0..g {
            let mut x = 0;
            while x < npx {
                let np = (npx - x).min(8);
                let t: [&TapQ11; 8] = core::array::from_fn(|k| &taps[(x + k.min(np - 1)) * g + q]);
                let w = t.map(weights_i16);
                let mut c = 0;
                while c < cpg {
                    let rem = (cpg - c).min(8);
                    let mut v = [vdup_n_u8(0); 8];
                    for k in 0..8 {
                        let p =
                            corners(src, len, (t[k].base, t[k].dx, t[k].dy), c, rem, &mut buf[k]);
                        let r = bilerp8_q14(p.map(|p| vld1_s8(p)), w[k]);
                        v[k] = vreinterpret_u8_s8(r);
                    }
                    // 8×8 byte transpose (8-, 16-, then 32-bit pairs), as transpose_u8_neon.
                    let mut a = [vdup_n_u16(0); 8];
                    for i in 0..4 {
                        a[2 * i] = vreinterpret_u16_u8(vtrn1_u8(v[2 * i], v[2 * i + 1]));
                        a[2 * i + 1] = vreinterpret_u16_u8(vtrn2_u8(v[2 * i], v[2 * i + 1]));
                    }
                    let mut b = [vdup_n_u32(0); 8];
                    for h in 0..2 {
                        let o = 4 * h;
                        b[o] = vreinterpret_u32_u16(vtrn1_u16(a[o], a[o + 2]));
                        b[o + 2] = vreinterpret_u32_u16(vtrn2_u16(a[o], a[o + 2]));
                        b[o + 1] = vreinterpret_u32_u16(vtrn1_u16(a[o + 1], a[o + 3]));
                        b[o + 3] = vreinterpret_u32_u16(vtrn2_u16(a[o + 1], a[o + 3]));
                    }
                    let mut rows = [vdup_n_s8(0); 8];
                    for j in 0..4 {
                        rows[j] = vreinterpret_s8_u32(vtrn1_u32(b[j], b[j + 4]));
                        rows[j + 4] = vreinterpret_s8_u32(vtrn2_u32(b[j], b[j + 4]));
                    }
                    let d = dst.add((q * cpg + c) * plane + x);
                    for (j, &row) in rows.iter().enumerate().take(rem) {
                        if np == 8 {
                            vst1_s8(d.add(j * plane), row);
                        } else {
                            let mut tmp = [0i8; 8];
                            vst1_s8(tmp.as_mut_ptr(), row);
                            store_first(d.add(j * plane), &tmp, np);
                        }
                    }
                    c += 8;
                }
                x += 8;
            }
        }
    }
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
        let r0 = vld1q_f32(s);
        let r1 = vld1q_f32(s.add(src_ld));
        let r2 = vld1q_f32(s.add(2 * src_ld));
        let r3 = vld1q_f32(s.add(3 * src_ld));
        let t0 = vreinterpretq_f64_f32(vtrn1q_f32(r0, r1));
        let t1 = vreinterpretq_f64_f32(vtrn2q_f32(r0, r1));
        let t2 = vreinterpretq_f64_f32(vtrn1q_f32(r2, r3));
        let t3 = vreinterpretq_f64_f32(vtrn2q_f32(r2, r3));
        vst1q_f32(d, vreinterpretq_f32_f64(vtrn1q_f64(t0, t2)));
        vst1q_f32(d.add(dst_ld), vreinterpretq_f32_f64(vtrn1q_f64(t1, t3)));
        vst1q_f32(d.add(2 * dst_ld), vreinterpretq_f32_f64(vtrn2q_f64(t0, t2)));
        vst1q_f32(d.add(3 * dst_ld), vreinterpretq_f32_f64(vtrn2q_f64(t1, t3)));
    }
}

/// 16-bit, then 32-bit, then 64-bit transposes of register pairs.
///
/// # Safety
/// NEON; an 8x8 tile readable at `s + i*src_ld`, writable at `d + j*dst_ld`.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn tile_8x8_u16(s: *const u16, src_ld: usize, d: *mut u16, dst_ld: usize) {
    // SAFETY: the caller guarantees the 8x8 source and destination tiles.
    unsafe {
        let mut v = [vdupq_n_u16(0); 8];
        for (i, r) in v.iter_mut().enumerate() {
            *r = vld1q_u16(s.add(i * src_ld));
        }
        let mut a = [vdupq_n_u32(0); 8];
        for i in 0..4 {
            a[2 * i] = vreinterpretq_u32_u16(vtrn1q_u16(v[2 * i], v[2 * i + 1]));
            a[2 * i + 1] = vreinterpretq_u32_u16(vtrn2q_u16(v[2 * i], v[2 * i + 1]));
        }
        // b[j] holds columns j and j+4 of rows 0-3 (j < 4) or 4-7 (j >= 4).
        let mut b = [vdupq_n_u64(0); 8];
        for q in [0, 4] {
            b[q] = vreinterpretq_u64_u32(vtrn1q_u32(a[q], a[q + 2]));
            b[q + 2] = vreinterpretq_u64_u32(vtrn2q_u32(a[q], a[q + 2]));
            b[q + 1] = vreinterpretq_u64_u32(vtrn1q_u32(a[q + 1], a[q + 3]));
            b[q + 3] = vreinterpretq_u64_u32(vtrn2q_u32(a[q + 1], a[q + 3]));
        }
        for j in 0..4 {
            vst1q_u16(
                d.add(j * dst_ld),
                vreinterpretq_u16_u64(vtrn1q_u64(b[j], b[j + 4])),
            );
            vst1q_u16(
                d.add((j + 4) * dst_ld),
                vreinterpretq_u16_u64(vtrn2q_u64(b[j], b[j + 4])),
            );
        }
    }
}

/// The same three rounds on 64-bit registers.
///
/// # Safety
/// NEON; an 8x8 tile readable at `s + i*src_ld`, writable at `d + j*dst_ld`.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn tile_8x8_u8(s: *const u8, src_ld: usize, d: *mut u8, dst_ld: usize) {
    // SAFETY: the caller guarantees the 8x8 source and destination tiles.
    unsafe {
        let mut v = [vdup_n_u8(0); 8];
        for (i, r) in v.iter_mut().enumerate() {
            *r = vld1_u8(s.add(i * src_ld));
        }
        let mut a = [vdup_n_u16(0); 8];
        for i in 0..4 {
            a[2 * i] = vreinterpret_u16_u8(vtrn1_u8(v[2 * i], v[2 * i + 1]));
            a[2 * i + 1] = vreinterpret_u16_u8(vtrn2_u8(v[2 * i], v[2 * i + 1]));
        }
        let mut b = [vdup_n_u32(0); 8];
        for q in [0, 4] {
            b[q] = vreinterpret_u32_u16(vtrn1_u16(a[q], a[q + 2]));
            b[q + 2] = vreinterpret_u32_u16(vtrn2_u16(a[q], a[q + 2]));
            b[q + 1] = vreinterpret_u32_u16(vtrn1_u16(a[q + 1], a[q + 3]));
            b[q + 3] = vreinterpret_u32_u16(vtrn2_u16(a[q + 1], a[q + 3]));
        }
        for j in 0..4 {
            vst1_u8(
                d.add(j * dst_ld),
                vreinterpret_u8_u32(vtrn1_u32(b[j], b[j + 4])),
            );
            vst1_u8(
                d.add((j + 4) * dst_ld),
                vreinterpret_u8_u32(vtrn2_u32(b[j], b[j + 4])),
            );
        }
    }
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
