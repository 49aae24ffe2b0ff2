//! AArch64 NEON + ARMv8.2 dotprod (Raspberry Pi 5, Jetson Orin): [`Backend::NeonDotprod`].
//!
//! Same as [`neon`](super::neon) except `conv_i8`, which uses `sdot`: each i32 lane accumulates
//! 4 consecutive int8 × int8 products, exactly the `[cin4/4][o_n][4]` packing of
//! [`pack_conv_i8`](super::pack_conv_i8). `vdotq_s32` is still unstable in Rust, so `sdot` is
//! emitted with `asm!` inside `#[target_feature(enable = "dotprod")]` functions. The table is only
//! handed out after `dotprod` was detected ([`Backend::kernels`]).

// Register-blocked loops index several small arrays in lockstep.
#![allow(clippy::needless_range_loop)]

use super::neon::{self, conv_i8_one, dup4, ktail4};
use super::{Backend, Kernels};
use core::arch::aarch64::*;

pub static KERNELS: Kernels = Kernels {
    backend: Backend::NeonDotprod,
    conv_i8,
    ..neon::KERNELS
};

/// `acc += sdot(w, x)`: lane i gets Σ_j w[4i+j]·x[4i+j]. Use inside an `unsafe` block of a
/// function with `dotprod` enabled.
macro_rules! sdot {
    ($acc:expr, $w:expr, $x:expr) => {
        core::arch::asm!("sdot {acc:v}.4s, {w:v}.16b, {x:v}.16b",
            acc = inout(vreg) $acc, w = in(vreg) $w, x = in(vreg) $x,
            options(pure, nomem, nostack, preserves_flags))
    };
}

conv_i8_entry!(pub conv_i8 => conv_i8_sdot, "`neon` and `dotprod` were detected before this table was handed out");

#[target_feature(enable = "neon,dotprod")]
unsafe fn conv_i8_sdot(
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

#[target_feature(enable = "neon,dotprod")]
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
        while o + 16 <= o_n {
            conv_i8_block::<NP, 4>(x, ldx, cin, w, o_n, o, acc);
            o += 16;
        }
        match (o_n - o) / 4 {
            3 => conv_i8_block::<NP, 3>(x, ldx, cin, w, o_n, o, acc),
            2 => conv_i8_block::<NP, 2>(x, ldx, cin, w, o_n, o, acc),
            1 => conv_i8_block::<NP, 1>(x, ldx, cin, w, o_n, o, acc),
            _ => {}
        }
        o += (o_n - o) / 4 * 4;
        // o_n % 4 leftover outputs: their packed rows are too short for a 16-byte load.
        for oo in o..o_n {
            for p in 0..NP {
                *acc.add(p * o_n + oo) = conv_i8_one(x.add(p * ldx), cin, w, o_n, oo);
            }
        }
    }
}

/// NP pixels × NG groups of 4 outputs: NP·NG accumulators (16 for the 4×4 block), one `sdot` per
/// (pixel, group) per 4 input channels.
#[target_feature(enable = "neon,dotprod")]
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
    // 4-byte reads inside the row; the tail goes through ktail4, never past a row's `cin` bytes.
    unsafe {
        let mut a = [[vdupq_n_s32(0); NG]; NP];
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
                        sdot!(a[p][j], wv[j], xb);
                    }
                }
            };
        }
        for g in 0..cin / 4 {
            group!(g, |row: *const i8| dup4(row.add(4 * g)));
        }
        // Tail group outside the hot loop, so the accumulators stay in registers.
        if !cin.is_multiple_of(4) {
            group!(cin / 4, |row| ktail4(row, cin));
        }
        for p in 0..NP {
            for j in 0..NG {
                vst1q_s32(acc.add(p * o_n + o0 + 4 * j), a[p][j]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    table_tests!(NeonDotprod);
}
