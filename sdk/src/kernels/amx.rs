//! x86_64 AMX int8 convolution (Sapphire Rapids and later), on top of the AVX-512 table.
//!
//! `tdpbssd` multiplies a 16 × 64-byte tile of signed activations (16 pixels × 64 input
//! channels) by a 16 × 64-byte tile of signed weights (16 channel quads × 16 outputs, exactly
//! the `[cin/4][o_n][4]` layout of [`super::pack_conv_i8`]) into 16 × 16 exact i32 sums. It
//! takes blocks of 16 pixels when `cin % 64 == 0` and `o_n % 16 == 0` (the last block
//! overlapping the one before when `npix % 16 ≠ 0`); other shapes, and fewer than 16 pixels, go
//! to the AVX-512 VNNI convolution. Integer sums are exact, so the bytes equal the scalar ones.
//!
//! The instructions are written with `asm!` (AMX has no stable intrinsics). Soundness: the
//! table is only handed out after [`crate::cpu`] saw AMX-TILE and AMX-INT8 in CPUID, the OS
//! enabled tile state in XCR0 and granted this process tile data (Linux `arch_prctl`); each
//! call loads its own tile configuration and releases the tiles before returning, so no tile
//! state outlives a call or is shared between threads.

use super::{Backend, ConvIn, Kernels};
use core::arch::asm;

pub(super) static KERNELS: Kernels = Kernels {
    backend: Backend::Avx512Amx,
    conv_i8,
    ..super::avx512::KERNELS
};

/// Tile configuration (palette 1): tiles 0–4 are 16 rows × 64 bytes.
#[repr(C, align(64))]
struct TileConfig([u8; 64]);

static CONFIG: TileConfig = {
    let mut c = [0u8; 64];
    c[0] = 1;
    let mut t = 0;
    while t < 5 {
        c[16 + 2 * t] = 64; // bytes per row
        c[48 + t] = 16; // rows
        t += 1;
    }
    TileConfig(c)
};

fn conv_i8(src: ConvIn<'_, i8>, wpack: &[i8], o_n: usize, acc: &mut [i32]) {
    let vnni = super::vnni::KERNELS_AVX512VNNI.conv_i8;
    let (x, ldx, npix, cin) = (src.x, src.ld, src.npix, src.cin);
    if cin == 0 || !cin.is_multiple_of(64) || !o_n.is_multiple_of(16) || npix < 16 {
        return vnni(src, wpack, o_n, acc);
    }
    if super::tiling::check_conv_i8(src, wpack, o_n, &mut *acc).is_none() {
        return;
    }
    let blocks = npix / 16;
    // SAFETY: AMX-TILE/INT8 usable (KERNELS is only handed out then, see the module doc);
    // check_conv_i8 asserted that the npix rows of cin bytes at stride ldx, the cin·o_n packed
    // weights and the npix·o_n accumulators are in bounds; the kernel touches a subset.
    unsafe {
        conv_amx(
            x.as_ptr(),
            ldx,
            blocks,
            cin,
            wpack.as_ptr(),
            o_n,
            acc.as_mut_ptr(),
        )
    };
    if blocks * 16 < npix {
        // The last 16 pixels once more (npix ≥ 16): the overlap is rewritten with equal sums.
        let last = npix - 16;
        // SAFETY: as above, for pixels last .. npix.
        unsafe {
            conv_amx(
                x.as_ptr().add(last * ldx),
                ldx,
                1,
                cin,
                wpack.as_ptr(),
                o_n,
                acc.as_mut_ptr().add(last * o_n),
            )
        };
    }
}

/// # Safety
/// AMX-TILE and AMX-INT8 usable by this thread; `x + p·ldx .. + cin` readable for
/// `p < 16·blocks`; `w .. + cin·o_n` readable; `acc .. + 16·blocks·o_n` writable;
/// `cin % 64 == 0`, `o_n % 16 == 0`.
unsafe fn conv_amx(
    x: *const i8,
    ldx: usize,
    blocks: usize,
    cin: usize,
    w: *const i8,
    o_n: usize,
    acc: *mut i32,
) {
    // Row strides in bytes: weights [cin/4][o_n][4] and accumulators [p][o_n] both o_n·4.
    let stride = o_n * 4;
    // SAFETY: the configuration is a valid palette-1 layout (64-byte aligned static).
    unsafe { asm!("ldtilecfg [{}]", in(reg) CONFIG.0.as_ptr(), options(nostack, readonly)) };
    for b in 0..blocks {
        let xa = x.wrapping_add(b * 16 * ldx);
        let mut ob = 0;
        while ob < o_n {
            let pair = ob + 32 <= o_n;
            // SAFETY: register-only; the tiles were configured by ldtilecfg above.
            unsafe { asm!("tilezero tmm0", "tilezero tmm1", options(nostack, nomem)) };
            for kb in 0..cin / 64 {
                let a = xa.wrapping_add(kb * 64);
                let wb = w.wrapping_add(kb * 16 * stride + ob * 4);
                // SAFETY: each tileloadd reads 16 rows of 64 bytes the caller guarantees
                // readable: pixel rows xa + r·ldx + 64kb (64kb + 64 ≤ cin) and weight rows
                // w + (16kb + r)·o_n·4 + (ob or ob + 16)·4, 64 bytes each (ob + 32 ≤ o_n when
                // `pair`, else ob + 16 ≤ o_n).
                unsafe {
                    asm!(
                        "tileloadd tmm2, [{a} + {lda}*1]",
                        "tileloadd tmm3, [{b} + {ldb}*1]",
                        "tdpbssd tmm0, tmm2, tmm3",
                        a = in(reg) a, lda = in(reg) ldx, b = in(reg) wb, ldb = in(reg) stride,
                        options(nostack, readonly)
                    );
                    if pair {
                        asm!(
                            "tileloadd tmm4, [{b} + {ldb}*1]",
                            "tdpbssd tmm1, tmm2, tmm4",
                            b = in(reg) wb.wrapping_add(64), ldb = in(reg) stride,
                            options(nostack, readonly)
                        );
                    }
                }
            }
            let c = acc.wrapping_add(b * 16 * o_n + ob);
            // SAFETY: each tilestored writes 16 accumulator rows (pixels of block b) of 16 i32
            // at columns ob (and ob + 16 when `pair`), inside the 16·blocks·o_n the caller gave.
            unsafe {
                asm!("tilestored [{c} + {ldc}*1], tmm0", c = in(reg) c, ldc = in(reg) stride, options(nostack));
                if pair {
                    asm!("tilestored [{c} + {ldc}*1], tmm1", c = in(reg) c.wrapping_add(16), ldc = in(reg) stride, options(nostack));
                }
            }
            ob += if pair { 32 } else { 16 };
        }
    }
    // SAFETY: releases this thread's tiles; always valid after ldtilecfg.
    unsafe { asm!("tilerelease", options(nostack, nomem)) };
}

#[cfg(test)]
mod tests {
    table_tests!(Avx512Amx);

    use super::super::checks::check_conv_i8;
    use super::super::Backend;
    use proptest::prelude::*;

    /// The tile path's own shapes: cin a multiple of 64, o_n of 16, npix around the 16-row tile.
    #[test]
    fn tile_shapes_match_scalar() {
        let Ok(k) = Backend::Avx512Amx.kernels() else {
            eprintln!("skipping: no AMX here");
            return;
        };
        check_conv_i8(k, 16, 64, 16, 0, 2);
        for (cin, o_n) in [
            (64, 16),
            (64, 48),
            (128, 32),
            (192, 64),
            (256, 80),
            (64, 7),
            (60, 32),
        ] {
            for npix in [0, 1, 15, 16, 17, 31, 32, 33, 47, 100] {
                check_conv_i8(k, npix, cin, o_n, npix % 3, (cin + o_n + npix) as u64);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn tile_conv_i8_matches_scalar(kq in 1usize..5, o16 in 1usize..5, npix in 0usize..70,
                                       pad in 0usize..70, seed in any::<u64>()) {
            if let Ok(k) = Backend::Avx512Amx.kernels() {
                check_conv_i8(k, npix, 64 * kq, 16 * o16, pad, seed);
            }
        }
    }
}
