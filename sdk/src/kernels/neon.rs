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
    // SAFETY: the wrapper checked that rows p < npix hold `cin` values at p*ldx, that `wt` holds
    // cin*o_n and `out` npix*o_n values; every access below stays inside those.
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
