//! CPU feature detection, done once per process.

use serde::Serialize;
use std::sync::OnceLock;

/// The instruction-set extensions the kernels care about.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CpuFeatures {
    pub arch: &'static str,
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
            avx2: has!("avx2"),
            fma: has!("fma"),
            f16c: has!("f16c"),
            avxvnni: has!("avxvnni"),
            avx512f: has!("avx512f"),
            avx512bw: has!("avx512bw"),
            avx512vl: has!("avx512vl"),
            avx512dq: has!("avx512dq"),
            avx512vnni: has!("avx512vnni"),
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
            ("neon", self.neon),
            ("dotprod", self.dotprod),
            ("fp16", self.fp16),
        ];
        all.iter().filter(|(_, on)| *on).map(|(n, _)| *n).collect()
    }
}
