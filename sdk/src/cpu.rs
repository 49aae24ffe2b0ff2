//! CPU feature detection, done once per process.

use serde::Serialize;
use std::sync::OnceLock;

/// The instruction-set extensions the kernels care about.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CpuFeatures {
    pub arch: &'static str,
    /// CPUID vendor (`"intel"`, `"amd"`, `"other"`; empty off x86_64): what the NCHW output
    /// streaming policy keys on (`engine::stream_nchw_output`).
    pub vendor: &'static str,
    // x86_64
    pub avx2: bool,
    pub fma: bool,
    pub f16c: bool,
    pub avxvnni: bool,
    pub avx512f: bool,
    pub avx512bw: bool,
    pub avx512vl: bool,
    pub avx512dq: bool,
    pub avx512vnni: bool,
    /// AMX-TILE + AMX-INT8 in CPUID, tile state enabled by the OS, and (Linux) tile data
    /// granted to this process.
    pub amx_int8: bool,
    // aarch64
    pub neon: bool,
    pub dotprod: bool,
    pub fp16: bool,
}

impl CpuFeatures {
    /// Features of the CPU we run on (probed on first call, then cached).
    pub fn get() -> &'static CpuFeatures {
        static FEATURES: OnceLock<CpuFeatures> = OnceLock::new();
        FEATURES.get_or_init(Self::probe)
    }

    #[cfg(target_arch = "x86_64")]
    fn probe() -> Self {
        use std::arch::is_x86_feature_detected as has;
        Self {
            arch: "x86_64",
            vendor: x86_vendor(),
            avx2: has!("avx2"),
            fma: has!("fma"),
            f16c: has!("f16c"),
            avxvnni: has!("avxvnni"),
            avx512f: has!("avx512f"),
            avx512bw: has!("avx512bw"),
            avx512vl: has!("avx512vl"),
            avx512dq: has!("avx512dq"),
            avx512vnni: has!("avx512vnni"),
            amx_int8: amx_usable(),
            ..Self::default()
        }
    }

    #[cfg(target_arch = "aarch64")]
    fn probe() -> Self {
        use std::arch::is_aarch64_feature_detected as has;
        Self {
            arch: "aarch64",
            neon: has!("neon"),
            dotprod: has!("dotprod"),
            fp16: has!("fp16"),
            ..Self::default()
        }
    }

    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    fn probe() -> Self {
        Self {
            arch: std::env::consts::ARCH,
            ..Self::default()
        }
    }

    /// Names of the detected features, for `dysample info`.
    pub fn names(&self) -> Vec<&'static str> {
        let all = [
            ("avx2", self.avx2),
            ("fma", self.fma),
            ("f16c", self.f16c),
            ("avxvnni", self.avxvnni),
            ("avx512f", self.avx512f),
            ("avx512bw", self.avx512bw),
            ("avx512vl", self.avx512vl),
            ("avx512dq", self.avx512dq),
            ("avx512vnni", self.avx512vnni),
            ("amx-int8", self.amx_int8),
            ("neon", self.neon),
            ("dotprod", self.dotprod),
            ("fp16", self.fp16),
        ];
        all.iter().filter(|(_, on)| *on).map(|(n, _)| *n).collect()
    }
}

/// The CPUID vendor string, as one of a few names.
#[cfg(target_arch = "x86_64")]
fn x86_vendor() -> &'static str {
    // SAFETY: CPUID exists on every x86_64 CPU (the call is safe on newer toolchains).
    #[allow(unused_unsafe)]
    let l0 = unsafe { std::arch::x86_64::__cpuid(0) };
    let mut v = [0u8; 12];
    for (i, r) in [l0.ebx, l0.edx, l0.ecx].iter().enumerate() {
        v[4 * i..4 * i + 4].copy_from_slice(&r.to_le_bytes());
    }
    match &v {
        b"GenuineIntel" => "intel",
        b"AuthenticAMD" => "amd",
        _ => "other",
    }
}

/// AMX needs three things: the CPUID bits, the OS saving tile state (XCR0 bits 17 and 18), and
/// on Linux a per-process grant of tile data (without it the first tile instruction faults).
#[cfg(target_arch = "x86_64")]
fn amx_usable() -> bool {
    use std::arch::x86_64::{__cpuid, __cpuid_count};
    // SAFETY: CPUID exists on every x86_64 CPU (the call is safe on newer toolchains).
    #[allow(unused_unsafe)]
    let (leaf1, leaf7) = unsafe { (__cpuid(1), __cpuid_count(7, 0)) };
    let (tile, int8) = ((leaf7.edx >> 24) & 1 == 1, (leaf7.edx >> 25) & 1 == 1);
    let osxsave = (leaf1.ecx >> 27) & 1 == 1;
    if !(tile && int8 && osxsave) {
        return false;
    }
    // SAFETY: OSXSAVE is set, so XGETBV is enabled.
    let xcr0 = unsafe { xcr0() };
    xcr0 & (3 << 17) == 3 << 17 && request_tile_data()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "xsave")]
unsafe fn xcr0() -> u64 {
    // SAFETY: the caller checked OSXSAVE, so XGETBV does not fault.
    unsafe { std::arch::x86_64::_xgetbv(0) }
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
fn request_tile_data() -> bool {
    const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
    const XFEATURE_XTILEDATA: libc::c_long = 18;
    // SAFETY: this request only extends the set of xfeatures the process may use.
    unsafe {
        libc::syscall(
            libc::SYS_arch_prctl,
            ARCH_REQ_XCOMP_PERM,
            XFEATURE_XTILEDATA,
        ) == 0
    }
}

#[cfg(all(target_arch = "x86_64", not(target_os = "linux")))]
fn request_tile_data() -> bool {
    false
}
