//! Compute kernels, one module per instruction set, chosen at run time.
//!
//! The engine (`engine.rs`) splits the layer into a few small kernel families and
//! calls them through a [`Kernels`] table:
//!
//! | family        | what it computes |
//! |---------------|------------------|
//! | `conv_f32`    | 1x1 conv of a run of NHWC pixels, f32 |
//! | `conv_i8`     | the same in int8 with exact i32 accumulation |
//! | `sample_f32`  | bilinear sampling of NHWC taps, f32 |
//! | `sample_f16`  | the same on f16 storage |
//! | `sample_i8`   | the same in int8 with Q14 weights and one rounding |
//! | `sample_*_nchw` | sampling fused with the transpose to NCHW output (optional) |
//! | `cvt_*`       | f16 ↔ f32 conversion |
//! | `transpose_*` | NCHW ↔ NHWC tiles |
//! | `stream_tile_*` | an NCHW output tile as whole lines with non-temporal stores (x86, optional) |
//!
//! [`scalar`] is the portable reference for every family; each SIMD module must agree with it
//! (bit-exactly for the integer families). A table is only handed out by [`Backend::kernels`]
//! after the CPU features it needs were detected, which is what makes the `#[target_feature]`
//! calls inside the SIMD wrappers sound.
//!
//! How the files divide the work (read them in this order):
//!
//! | file | holds |
//! |------|-------|
//! | `mod.rs` | the table, its signatures, [`ConvIn`], the backends and their CPU checks |
//! | `scalar.rs` | the reference of every family, written plainly |
//! | `tiling.rs` | what every ISA shares: argument checks and the safe entries (`conv_*_entry!`), the cache-blocked transpose loop |
//! | `x86_loops.rs`, `arm_loops.rs` | each family's loop structure (column blocks, pixel tiles, k and channel tails, prefetch), generic over small vector-op traits |
//! | `avx2.rs`, `vnni.rs`, `avx512.rs`, `amx.rs` | x86: the vector ops (trait impls), the `#[target_feature]` leaves, the table |
//! | `neon.rs`, `neon_dotprod.rs`, `neon_fp16.rs` | aarch64: the same |
//! | `checks.rs` (tests) | the conformance suite every table runs against `scalar` (`table_tests!`) |
//!
//! Adding an ISA means: implement the vector-op traits of its family's loops, write one
//! `#[target_feature]` leaf per kernel that calls the shared loop, list the table, add
//! `table_tests!(Backend)` to its tests, and add the backend's features to
//! [`Backend::missing_features`].

use crate::cpu::CpuFeatures;
use crate::error::{Error, Result};
use half::f16;
use std::fmt;
use std::str::FromStr;

#[macro_use]
mod tiling;
#[cfg(test)]
#[macro_use]
mod checks;
#[cfg(target_arch = "aarch64")]
#[macro_use]
mod arm_loops;

#[cfg(target_arch = "x86_64")]
pub mod amx;
#[cfg(target_arch = "x86_64")]
pub mod avx2;
#[cfg(target_arch = "x86_64")]
pub mod avx512;
#[cfg(target_arch = "aarch64")]
pub mod neon;
#[cfg(target_arch = "aarch64")]
pub mod neon_dotprod;
#[cfg(target_arch = "aarch64")]
pub mod neon_fp16;
pub mod scalar;
#[cfg(target_arch = "x86_64")]
pub mod vnni;
#[cfg(target_arch = "x86_64")]
mod x86_loops;

/// One bilinear sample point shared by all channels of a group, for the float kernels.
///
/// The four taps are `src[base + c]`, `src[base + dx + c]`, `src[base + dy + c]` and
/// `src[base + dx + dy + c]`; `fx`, `fy` ∈ [0, 1] are the weights of the far taps.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[repr(C)]
pub struct Tap {
    pub base: u32,
    pub dx: u32,
    pub dy: u32,
    pub fx: f32,
    pub fy: f32,
}

/// Fixed-point sample point for int8.
///
/// `fx`, `fy` ∈ [0, 2048] are the Q11 positions of the point between its near and far taps;
/// they define the Q14 bilinear weights [`weights_q14`]. `wlo`/`whi` cache those weights split
/// into bytes (`w = wlo + 256·whi`, corners in the order 00, 01, 10, 11) in the form the SIMD
/// kernels broadcast; build taps with [`TapQ11::new`] so the two always agree. The scalar
/// reference reads only `fx` and `fy`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct TapQ11 {
    pub base: u32,
    pub dx: u32,
    pub dy: u32,
    pub fx: u16,
    pub fy: u16,
    pub wlo: [u8; 4],
    pub whi: [u8; 4],
}

impl TapQ11 {
    /// A tap with its cached weights.
    #[inline(always)]
    pub fn new(base: u32, dx: u32, dy: u32, fx: u16, fy: u16) -> Self {
        let w = weights_q14(fx, fy);
        Self {
            base,
            dx,
            dy,
            fx,
            fy,
            wlo: w.map(|v| v as u8),
            whi: w.map(|v| (v >> 8) as u8),
        }
    }

    /// Panics unless the four runs of `cpg` values this tap reads lie in a source of `len`.
    /// (The SIMD samplers check each tap right before its loads, where the sums are needed
    /// anyway: a separate pass over the taps cost ~5% of the layer.)
    #[inline(always)]
    pub fn check_reads(&self, cpg: usize, len: usize) {
        let end = self.base as usize + self.dx as usize + self.dy as usize + cpg;
        assert!(end <= len, "sample_i8: tap reads past src");
    }

    /// The four Q14 weights, from the cached bytes.
    #[inline(always)]
    pub fn weights(&self) -> [u16; 4] {
        core::array::from_fn(|i| self.wlo[i] as u16 | (self.whi[i] as u16) << 8)
    }
}

/// Fractional bits of int8 sample positions.
pub const Q11_BITS: u32 = 11;
/// `1.0` in Q11.
pub const Q11_ONE: i32 = 1 << Q11_BITS;
/// Fractional bits of the int8 bilinear weights.
pub const Q14_BITS: u32 = 14;

/// The int8 bilinear weights of corners 00, 01, 10, 11 (x far = 01, y far = 10) in Q14.
///
/// Row weights are exact (`8·gy`, `8·fy` in Q14); within each row the far tap gets the Q22
/// product rounded to Q14 and the near tap the rest of the row. So the weights are each within
/// half a step of the exact bilinear weight, lie in [0, 2^14] and sum to exactly 2^14
/// (constants are preserved). Each fits i16 and splits into bytes `lo + 256·hi` with
/// `hi ≤ 64`, which lets `vpmaddwd`, `vpdpbusd` and `smlal` all compute `Σ w·q` exactly.
#[inline(always)]
pub fn weights_q14(fx: u16, fy: u16) -> [u16; 4] {
    let (fx, fy) = (fx as u32, fy as u32);
    let gy = Q11_ONE as u32 - fy;
    // (f·g + 128) >> 8 ≤ 8·g for f ≤ 2048, so the near weights never go negative.
    let (w01, w11) = ((fx * gy + 128) >> 8, (fx * fy + 128) >> 8);
    [
        (8 * gy - w01) as u16,
        w01 as u16,
        (8 * fy - w11) as u16,
        w11 as u16,
    ]
}

/// The int8 bilinear blend every backend computes: `(Σ w_i·q_i + 2^13) >> 14` with the
/// weights of [`weights_q14`]. Convex weights keep the result in [−128, 127].
#[inline(always)]
pub fn blend_q14(q: [i8; 4], w: [u16; 4]) -> i8 {
    let acc: i32 = (0..4).map(|i| w[i] as i32 * q[i] as i32).sum();
    ((acc + (1 << 13)) >> 14) as i8
}

/// Packs `w[o][k]` (row-major `[o_n][cin]`) into the `[cin][o_n]` layout `conv_f32` reads.
pub fn pack_conv_f32(w: &[f32], o_n: usize, cin: usize) -> Vec<f32> {
    assert_eq!(w.len(), o_n * cin);
    let mut out = vec![0.0; o_n * cin];
    for o in 0..o_n {
        for k in 0..cin {
            out[k * o_n + o] = w[o * cin + k];
        }
    }
    out
}

/// Rounds `cin` up to the int8 packing granule of 4.
pub fn cin4(cin: usize) -> usize {
    cin.div_ceil(4) * 4
}

/// Packs `w[o][k]` into `[cin4/4][o_n][4]`, zero-padded: the layout of VNNI `vpdpbusd` and NEON `sdot`.
pub fn pack_conv_i8(w: &[i8], o_n: usize, cin: usize) -> Vec<i8> {
    assert_eq!(w.len(), o_n * cin);
    let mut out = vec![0i8; cin4(cin) * o_n];
    for o in 0..o_n {
        for k in 0..cin {
            out[(k / 4) * o_n * 4 + o * 4 + k % 4] = w[o * cin + k];
        }
    }
    out
}

/// The pixels a 1x1 conv reads: `npix` rows of `cin` values, row `p` at `x[p*ld ..]`.
#[derive(Clone, Copy, Debug)]
pub struct ConvIn<'a, T> {
    pub x: &'a [T],
    pub ld: usize,
    pub npix: usize,
    pub cin: usize,
}

impl<'a, T> ConvIn<'a, T> {
    pub fn new(x: &'a [T], ld: usize, npix: usize, cin: usize) -> Self {
        Self { x, ld, npix, cin }
    }
}

/// Signature of `conv_f32`: for `p < npix`, `out[p*o_n + o] = bias[o] + Σ_k x[p*ld + k] · wt[k*o_n + o]`
/// (bias 0 when `None`). `wt` comes from [`pack_conv_f32`].
pub type ConvF32 =
    fn(src: ConvIn<'_, f32>, wt: &[f32], bias: Option<&[f32]>, o_n: usize, out: &mut [f32]);

/// Signature of `conv_i8`: `acc[p*o_n + o] = Σ_k x[p*ld + k] · w[o][k]`, exactly, in i32.
/// `wpack` comes from [`pack_conv_i8`].
pub type ConvI8 = fn(src: ConvIn<'_, i8>, wpack: &[i8], o_n: usize, acc: &mut [i32]);

/// Signature of `sample_f32`: tap `n` writes `out[n*cpg .. (n+1)*cpg]`.
pub type SampleF32 = fn(src: &[f32], taps: &[Tap], cpg: usize, out: &mut [f32]);
/// Signature of `sample_f16`: like `sample_f32` on f16 storage; arithmetic in f32 or fp16.
pub type SampleF16 = fn(src: &[f16], taps: &[Tap], cpg: usize, out: &mut [f16]);
/// Signature of `sample_i8`: tap `n` writes `out[n*cpg + c] =` [`blend_q14`] of its four corners
/// with the tap's [`weights_q14`]; exact, so every backend returns the same bytes.
pub type SampleI8 = fn(src: &[i8], taps: &[TapQ11], cpg: usize, out: &mut [i8]);

/// Signature of `sample_*_nchw`: sampling fused with the NCHW transpose. Tap `n = X·g + q`
/// (for `X < taps.len() / g`) writes `dst[(q·cpg + c)·plane + X]` for `c < cpg`, with the same
/// values as the NHWC kernel of its precision.
///
/// # Safety
/// `dst` must be valid for those writes and no other thread may access them during the call.
pub type SampleNchw<T, P> =
    unsafe fn(src: &[T], taps: &[P], g: usize, cpg: usize, dst: *mut T, plane: usize);

/// Signature of the f16 → f32 conversion (lengths must match).
pub type CvtF16F32 = fn(src: &[f16], dst: &mut [f32]);
/// Signature of the f32 → f16 conversion, round-to-nearest-even (lengths must match).
pub type CvtF32F16 = fn(src: &[f32], dst: &mut [f16]);

/// Signature of a transpose: `dst[c*dst_ld + r] = src[r*src_ld + c]` for `r < rows`, `c < cols`.
///
/// # Safety
/// `dst` must be valid for writes at every such index, and no other thread may access them
/// during the call. (The destination is a raw pointer because parallel NCHW writers fill
/// interleaved, disjoint rows of the same planes.)
pub type Transpose<T> =
    unsafe fn(src: &[T], rows: usize, cols: usize, src_ld: usize, dst: *mut T, dst_ld: usize);

/// Signature of `stream_tile_*`: an NHWC tile of one cache line of pixels (`64 / size_of::<T>()`)
/// × `c` channels (`src[x·c + ch]`) goes to `c` channel planes `plane` elements apart,
/// `dst[ch·plane + x] = src[x·c + ch]`, as whole 64-byte lines with non-temporal stores (no
/// read-for-ownership, the lines bypass the caches), followed by a store fence.
///
/// # Safety
/// `dst` must be 64-byte aligned, `plane·size_of::<T>()` a multiple of 64, `dst` valid for
/// those writes, and no other thread may access them during the call. (The wrappers assert
/// the alignment and `src`'s extent.)
pub type StreamTile<T> = unsafe fn(src: &[T], c: usize, dst: *mut T, plane: usize);

/// Asks the cache to fetch, for reading, every line that holds part of the `len` elements at
/// `p` (a hint: never faults, whatever the address; a no-op off x86_64, where the instruction
/// is not available on stable Rust).
#[inline(always)]
pub(crate) fn prefetch_lines<T>(p: *const T, len: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        let end = p as usize + len * core::mem::size_of::<T>();
        // A plain loop: `step_by` on a range costs a division, once per call (per tap corner).
        let mut line = p as usize & !63;
        while line < end {
            // SAFETY: prefetching never faults; SSE is baseline on x86_64.
            unsafe {
                core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(
                    line as *const i8,
                )
            };
            line += 64;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (p, len);
}

/// A complete set of kernels for one backend.
#[derive(Clone, Copy)]
pub struct Kernels {
    pub backend: Backend,
    pub conv_f32: ConvF32,
    pub conv_i8: ConvI8,
    pub sample_f32: SampleF32,
    pub sample_f16: SampleF16,
    pub sample_i8: SampleI8,
    /// Fused NCHW-output sampling; `None` makes the engine sample NHWC rows and transpose them.
    pub sample_f32_nchw: Option<SampleNchw<f32, Tap>>,
    pub sample_f16_nchw: Option<SampleNchw<f16, Tap>>,
    pub sample_i8_nchw: Option<SampleNchw<i8, TapQ11>>,
    pub cvt_f16_f32: CvtF16F32,
    pub cvt_f32_f16: CvtF32F16,
    pub transpose_f32: Transpose<f32>,
    pub transpose_u16: Transpose<u16>,
    pub transpose_u8: Transpose<u8>,
    /// NCHW output tiles written as whole lines with non-temporal stores; `None` where the ISA
    /// has none (the engine then transposes with regular stores).
    pub stream_tile_f32: Option<StreamTile<f32>>,
    pub stream_tile_u16: Option<StreamTile<u16>>,
    pub stream_tile_u8: Option<StreamTile<u8>>,
}

impl fmt::Debug for Kernels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kernels")
            .field("backend", &self.backend)
            .finish()
    }
}

/// A named kernel set. Each one needs certain CPU features; `auto` picks the best usable one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Backend {
    /// Portable Rust, every precision; the reference.
    Scalar,
    /// x86_64 AVX2 + FMA + F16C.
    Avx2,
    /// AVX2 plus VNNI (AVX-VNNI, or AVX-512 VNNI with VL) for the int8 convolution.
    Avx2Vnni,
    /// AVX-512 F + BW + VL + VNNI (plus AVX2/FMA/F16C): the AVX2-VNNI table with 512-bit
    /// `sample_i8`, `conv_f32` and `sample_f32_nchw`.
    Avx512,
    /// The AVX-512 table with an AMX (`tdpbssd`) int8 convolution: Sapphire Rapids and later.
    Avx512Amx,
    /// AArch64 Advanced SIMD (ARMv8.0: Raspberry Pi 4, Cortex-A72).
    Neon,
    /// NEON + `sdot` (ARMv8.2 dotprod: Raspberry Pi 5, Jetson Orin) for the int8 convolution.
    NeonDotprod,
    /// NEON + dotprod + native fp16 arithmetic for the f16 sampling.
    NeonDotprodFp16,
}

impl Backend {
    /// Every backend, best first within each architecture.
    pub const ALL: [Backend; 8] = [
        Backend::Avx512Amx,
        Backend::Avx512,
        Backend::Avx2Vnni,
        Backend::Avx2,
        Backend::NeonDotprodFp16,
        Backend::NeonDotprod,
        Backend::Neon,
        Backend::Scalar,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Backend::Scalar => "scalar",
            Backend::Avx2 => "avx2",
            Backend::Avx2Vnni => "avx2-vnni",
            Backend::Avx512 => "avx512",
            Backend::Avx512Amx => "avx512-amx",
            Backend::Neon => "neon",
            Backend::NeonDotprod => "neon-dotprod",
            Backend::NeonDotprodFp16 => "neon-dotprod-fp16",
        }
    }

    /// CPU features this backend needs that `cpu` lacks (empty when usable).
    pub fn missing_features(self, cpu: &CpuFeatures) -> Vec<&'static str> {
        // Each backend needs the features of the one it extends, plus its own.
        let x86 = [
            ("x86_64", cpu.arch == "x86_64"),
            ("avx2", cpu.avx2),
            ("fma", cpu.fma),
            ("f16c", cpu.f16c),
        ];
        let avx512 = [
            ("avx512f", cpu.avx512f),
            ("avx512bw", cpu.avx512bw),
            ("avx512vl", cpu.avx512vl),
            ("avx512vnni", cpu.avx512vnni),
        ];
        let vnni = (
            "avxvnni or avx512vnni+avx512vl",
            cpu.avxvnni || (cpu.avx512vnni && cpu.avx512vl),
        );
        let neon = [("aarch64", cpu.arch == "aarch64"), ("neon", cpu.neon)];
        let dotprod = ("dotprod", cpu.dotprod);
        let need: Vec<(&str, bool)> = match self {
            Backend::Scalar => vec![],
            Backend::Avx2 => x86.to_vec(),
            Backend::Avx2Vnni => [&x86[..], &[vnni]].concat(),
            Backend::Avx512 => [&x86[..], &avx512].concat(),
            Backend::Avx512Amx => {
                let amx = ("amx-int8 (and OS tile support)", cpu.amx_int8);
                [&x86[..], &avx512, &[amx]].concat()
            }
            Backend::Neon => neon.to_vec(),
            Backend::NeonDotprod => [&neon[..], &[dotprod]].concat(),
            Backend::NeonDotprodFp16 => [&neon[..], &[dotprod, ("fp16", cpu.fp16)]].concat(),
        };
        need.iter().filter(|(_, ok)| !ok).map(|(n, _)| *n).collect()
    }

    /// The kernel table of this backend, if it is compiled in and the CPU can run it.
    pub fn kernels(self) -> Result<&'static Kernels> {
        let missing = self.missing_features(CpuFeatures::get());
        if !missing.is_empty() {
            return Err(Error::Backend {
                backend: self.name().to_string(),
                reason: format!("this CPU lacks {}", missing.join(", ")),
            });
        }
        table(self).ok_or_else(|| Error::Backend {
            backend: self.name().to_string(),
            reason: "not compiled into this build".to_string(),
        })
    }

    /// The fastest backend this CPU can run.
    pub fn best() -> Backend {
        Backend::ALL
            .into_iter()
            .find(|b| b.kernels().is_ok())
            .unwrap_or(Backend::Scalar)
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Backend {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Backend::ALL
            .into_iter()
            .find(|b| b.name() == s)
            .ok_or_else(|| Error::Backend {
                backend: s.to_string(),
                reason: format!(
                    "unknown backend; known: auto, {}",
                    Backend::ALL.map(|b| b.name()).join(", ")
                ),
            })
    }
}

/// What the caller asked for: a specific backend or the best available.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum BackendChoice {
    #[default]
    Auto,
    Exact(Backend),
}

impl FromStr for BackendChoice {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        if s.eq_ignore_ascii_case("auto") || s.is_empty() {
            Ok(BackendChoice::Auto)
        } else {
            Ok(BackendChoice::Exact(s.parse()?))
        }
    }
}

/// Name of the environment variable that narrows `auto` to one backend.
pub const BACKEND_ENV: &str = "DYSAMPLE_BACKEND";

impl BackendChoice {
    /// Resolves the choice to a usable kernel table. `Auto` honours `DYSAMPLE_BACKEND`.
    pub fn resolve(self) -> Result<&'static Kernels> {
        match self {
            BackendChoice::Exact(b) => b.kernels(),
            BackendChoice::Auto => match std::env::var(BACKEND_ENV) {
                Ok(v) if !v.trim().is_empty() && !v.trim().eq_ignore_ascii_case("auto") => {
                    let b: Backend = v.trim().parse().map_err(|e| match e {
                        Error::Backend { backend, reason } => Error::Backend {
                            backend,
                            reason: format!("{reason} (from {BACKEND_ENV})"),
                        },
                        other => other,
                    })?;
                    b.kernels().map_err(|e| match e {
                        Error::Backend { backend, reason } => Error::Backend {
                            backend,
                            reason: format!("{reason} (from {BACKEND_ENV})"),
                        },
                        other => other,
                    })
                }
                _ => Backend::best().kernels(),
            },
        }
    }
}

fn table(b: Backend) -> Option<&'static Kernels> {
    match b {
        Backend::Scalar => Some(&scalar::KERNELS),
        #[cfg(target_arch = "x86_64")]
        Backend::Avx2 => Some(&avx2::KERNELS),
        #[cfg(target_arch = "x86_64")]
        Backend::Avx2Vnni => vnni::table(CpuFeatures::get()),
        #[cfg(target_arch = "x86_64")]
        Backend::Avx512 => Some(&avx512::KERNELS),
        #[cfg(target_arch = "x86_64")]
        Backend::Avx512Amx => Some(&amx::KERNELS),
        #[cfg(target_arch = "aarch64")]
        Backend::Neon => Some(&neon::KERNELS),
        #[cfg(target_arch = "aarch64")]
        Backend::NeonDotprod => Some(&neon_dotprod::KERNELS),
        #[cfg(target_arch = "aarch64")]
        Backend::NeonDotprodFp16 => Some(&neon_fp16::KERNELS),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every Q11 position pair: weights in [0, 2^14], summing to 2^14, each within half a step
    /// of the exact bilinear weight, and the cached bytes of `TapQ11::new` agree.
    #[test]
    fn q14_weights_are_convex_and_close_for_every_position() {
        for fx in 0..=2048u16 {
            for fy in 0..=2048u16 {
                let w = weights_q14(fx, fy);
                assert_eq!(
                    w.iter().map(|&v| v as u32).sum::<u32>(),
                    1 << 14,
                    "{fx} {fy}"
                );
                let (gx, gy) = (2048 - fx as i64, 2048 - fy as i64);
                let exact = [
                    gx * gy,
                    fx as i64 * gy,
                    gx * fy as i64,
                    fx as i64 * fy as i64,
                ];
                for i in 0..4 {
                    assert!(w[i] <= 1 << 14, "{fx} {fy}: {w:?}");
                    // |w − exact/256| ≤ 1/2.
                    assert!(
                        (w[i] as i64 * 256 - exact[i]).abs() <= 128,
                        "{fx} {fy}: {w:?}"
                    );
                }
                assert_eq!(TapQ11::new(0, 0, 0, fx, fy).weights(), w);
            }
        }
    }

    /// The blend keeps constants and the extremes of int8.
    #[test]
    fn q14_blend_preserves_constants() {
        for v in [-128i8, -1, 0, 1, 127] {
            for (fx, fy) in [(0, 0), (2048, 2048), (1, 2047), (1024, 3), (777, 1501)] {
                assert_eq!(blend_q14([v; 4], weights_q14(fx, fy)), v);
            }
        }
    }
}
