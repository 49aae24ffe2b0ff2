//! AArch64 NEON + ARMv8.2 dotprod (Raspberry Pi 5, Jetson Orin): [`Backend::NeonDotprod`].
//!
//! Same as [`neon`](super::neon) except `conv_i8`, which runs the shared blocking of
//! [`arm_loops::conv_i8`](super::arm_loops::conv_i8) with `sdot` as its step. The table is only
//! handed out after `dotprod` was detected ([`Backend::kernels`]).

use super::arm_loops::DotI8;
use super::{neon, Backend, Kernels};
use core::arch::aarch64::*;

pub static KERNELS: Kernels = Kernels {
    backend: Backend::NeonDotprod,
    conv_i8,
    ..neon::KERNELS
};

conv_i8_entry!(pub conv_i8 => conv_i8_sdot, "`neon` and `dotprod` were detected before this table was handed out");
conv_i8_leaf!("neon,dotprod", conv_i8_sdot, Sdot, 4);

/// `sdot`: each i32 lane accumulates 4 consecutive int8 × int8 products, exactly the
/// `[cin4/4][o_n][4]` packing of [`pack_conv_i8`](super::pack_conv_i8). One register per 4
/// outputs, so a block holds 4 pixels × 4 groups (16 accumulators). `vdotq_s32` is still
/// unstable in Rust, so `sdot` is emitted with `asm!`.
struct Sdot;

impl DotI8 for Sdot {
    type Acc = int32x4_t;

    #[inline(always)]
    fn zero() -> int32x4_t {
        // SAFETY: `neon` is enabled for the whole AArch64 build; a register operation.
        unsafe { vdupq_n_s32(0) }
    }

    #[inline(always)]
    unsafe fn step(mut acc: int32x4_t, w: int8x16_t, x: int8x16_t) -> int32x4_t {
        // SAFETY: only inlined into conv_i8_sdot, which has `dotprod`; registers only.
        unsafe {
            core::arch::asm!("sdot {acc:v}.4s, {w:v}.16b, {x:v}.16b",
                acc = inout(vreg) acc, w = in(vreg) w, x = in(vreg) x,
                options(pure, nomem, nostack, preserves_flags))
        };
        acc
    }

    #[inline(always)]
    fn finish(acc: int32x4_t) -> int32x4_t {
        acc
    }
}

#[cfg(test)]
mod tests {
    table_tests!(NeonDotprod);
}
