//! Kernel families on the paper's reference shape (C = 256, 120x120, scale 2, lp, groups 4),
//! every usable backend side by side in one group per family.
//!
//! `cargo bench -p dysample --bench kernels` (add `-- conv_i8` etc. to filter).

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use dysample::kernels::{pack_conv_f32, pack_conv_i8, Backend, ConvIn, Kernels, Tap, TapQ11};
use half::f16;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::time::Duration;

const C: usize = 256;
const W: usize = 120;
const GROUPS: usize = 4;
const CPG: usize = C / GROUPS;
/// Output pixels of one output row at scale 2.
const OW: usize = 2 * W;

/// Usable tables, scalar first. A family whose function is the same as an earlier table's
/// (e.g. avx2-vnni outside conv_i8) is benched once.
fn tables() -> Vec<&'static Kernels> {
    let order = [
        Backend::Scalar,
        Backend::Avx2,
        Backend::Avx2Vnni,
        Backend::Neon,
        Backend::NeonDotprod,
        Backend::NeonDotprodFp16,
    ];
    order.iter().filter_map(|b| b.kernels().ok()).collect()
}

/// Runs `f` for each table whose function address (`key`) was not benched yet.
fn each_distinct(
    tables: &[&'static Kernels],
    key: impl Fn(&Kernels) -> usize,
    mut f: impl FnMut(&'static Kernels),
) {
    let mut seen = Vec::new();
    for &k in tables {
        let id = key(k);
        if !seen.contains(&id) {
            seen.push(id);
            f(k);
        }
    }
}

fn rng() -> StdRng {
    StdRng::seed_from_u64(0x5eed)
}

fn bench_conv(c: &mut Criterion) {
    let ks = tables();
    let mut r = rng();
    // lp: offset conv of one input row; pl: cin = C/s², o_n = 2·groups, npix = W·s².
    for (name, cin, o_n, npix) in [
        ("lp_256x32x120", C, 32, W),
        ("pl_64x8x480", C / 4, 2 * GROUPS, 4 * W),
    ] {
        let x: Vec<f32> = (0..npix * cin).map(|_| r.gen_range(-1.0..1.0)).collect();
        let w: Vec<f32> = (0..o_n * cin).map(|_| r.gen_range(-1.0..1.0)).collect();
        let b: Vec<f32> = (0..o_n).map(|_| r.gen_range(-1.0..1.0)).collect();
        let wt = pack_conv_f32(&w, o_n, cin);
        let mut out = vec![0f32; npix * o_n];
        let mut g = c.benchmark_group(format!("conv_f32/{name}"));
        g.throughput(Throughput::Elements((npix * cin * o_n) as u64));
        each_distinct(
            &ks,
            |k| k.conv_f32 as usize,
            |k| {
                g.bench_function(BenchmarkId::from_parameter(k.backend), |bch| {
                    bch.iter(|| {
                        (k.conv_f32)(
                            ConvIn::new(black_box(&x), cin, npix, cin),
                            &wt,
                            Some(&b),
                            o_n,
                            &mut out,
                        )
                    })
                });
            },
        );
        g.finish();

        let xq: Vec<i8> = (0..npix * cin).map(|_| r.gen()).collect();
        let wq: Vec<i8> = (0..o_n * cin).map(|_| r.gen()).collect();
        let wp = pack_conv_i8(&wq, o_n, cin);
        let mut acc = vec![0i32; npix * o_n];
        let mut g = c.benchmark_group(format!("conv_i8/{name}"));
        g.throughput(Throughput::Elements((npix * cin * o_n) as u64));
        each_distinct(
            &ks,
            |k| k.conv_i8 as usize,
            |k| {
                g.bench_function(BenchmarkId::from_parameter(k.backend), |bch| {
                    bch.iter(|| {
                        (k.conv_i8)(
                            ConvIn::new(black_box(&xq), cin, npix, cin),
                            &wp,
                            o_n,
                            &mut acc,
                        )
                    })
                });
            },
        );
        g.finish();
    }
}

/// Taps of one output row: 240 pixels x 4 groups, reading a 3-row NHWC window of the input.
fn taps(r: &mut StdRng) -> Vec<Tap> {
    let mut v = Vec::with_capacity(OW * GROUPS);
    for ox in 0..OW {
        for g in 0..GROUPS {
            let ix = (ox / 2)
                .saturating_add_signed(r.gen_range(-2..=2))
                .min(W - 2);
            let iy = r.gen_range(0..2usize);
            v.push(Tap {
                base: ((iy * W + ix) * C + g * CPG) as u32,
                dx: C as u32,
                dy: (W * C) as u32,
                fx: r.gen(),
                fy: r.gen(),
            });
        }
    }
    v
}

fn bench_sample(c: &mut Criterion) {
    let ks = tables();
    let mut r = rng();
    let t = taps(&mut r);
    let tq: Vec<TapQ11> = t
        .iter()
        .map(|t| {
            TapQ11::new(
                t.base,
                t.dx,
                t.dy,
                (t.fx * 2048.0) as u16,
                (t.fy * 2048.0) as u16,
            )
        })
        .collect();
    let n = 3 * W * C;
    let src: Vec<f32> = (0..n).map(|_| r.gen_range(-1.0..1.0)).collect();
    let srch: Vec<f16> = src.iter().map(|&v| f16::from_f32(v)).collect();
    let srcq: Vec<i8> = (0..n).map(|_| r.gen()).collect();
    let outn = t.len() * CPG;

    let mut out = vec![0f32; outn];
    let mut g = c.benchmark_group("sample_f32/row_240x4x64");
    g.throughput(Throughput::Elements(outn as u64));
    each_distinct(
        &ks,
        |k| k.sample_f32 as usize,
        |k| {
            g.bench_function(BenchmarkId::from_parameter(k.backend), |b| {
                b.iter(|| (k.sample_f32)(black_box(&src), &t, CPG, &mut out))
            });
        },
    );
    g.finish();

    let mut out = vec![f16::ZERO; outn];
    let mut g = c.benchmark_group("sample_f16/row_240x4x64");
    g.throughput(Throughput::Elements(outn as u64));
    each_distinct(
        &ks,
        |k| k.sample_f16 as usize,
        |k| {
            g.bench_function(BenchmarkId::from_parameter(k.backend), |b| {
                b.iter(|| (k.sample_f16)(black_box(&srch), &t, CPG, &mut out))
            });
        },
    );
    g.finish();

    let mut out = vec![0i8; outn];
    let mut g = c.benchmark_group("sample_i8/row_240x4x64");
    g.throughput(Throughput::Elements(outn as u64));
    each_distinct(
        &ks,
        |k| k.sample_i8 as usize,
        |k| {
            g.bench_function(BenchmarkId::from_parameter(k.backend), |b| {
                b.iter(|| (k.sample_i8)(black_box(&srcq), &tq, CPG, &mut out))
            });
        },
    );
    g.finish();
}

fn bench_cvt(c: &mut Criterion) {
    let ks = tables();
    let mut r = rng();
    let n = W * C;
    let f: Vec<f32> = (0..n).map(|_| r.gen_range(-100.0..100.0)).collect();
    let h: Vec<f16> = f.iter().map(|&v| f16::from_f32(v)).collect();
    let (mut fo, mut ho) = (vec![0f32; n], vec![f16::ZERO; n]);

    let mut g = c.benchmark_group("cvt_f16_f32/row_120x256");
    g.throughput(Throughput::Elements(n as u64));
    each_distinct(
        &ks,
        |k| k.cvt_f16_f32 as usize,
        |k| {
            g.bench_function(BenchmarkId::from_parameter(k.backend), |b| {
                b.iter(|| (k.cvt_f16_f32)(black_box(&h), &mut fo))
            });
        },
    );
    g.finish();

    let mut g = c.benchmark_group("cvt_f32_f16/row_120x256");
    g.throughput(Throughput::Elements(n as u64));
    each_distinct(
        &ks,
        |k| k.cvt_f32_f16 as usize,
        |k| {
            g.bench_function(BenchmarkId::from_parameter(k.backend), |b| {
                b.iter(|| (k.cvt_f32_f16)(black_box(&f), &mut ho))
            });
        },
    );
    g.finish();
}

fn bench_transpose(c: &mut Criterion) {
    let ks = tables();
    let mut r = rng();
    // One NCHW input row (C planes x W) to NHWC (W pixels x C).
    let (rows, cols) = (C, W);
    let s32: Vec<f32> = (0..rows * cols).map(|_| r.gen()).collect();
    let s16: Vec<u16> = (0..rows * cols).map(|_| r.gen()).collect();
    let s8: Vec<u8> = (0..rows * cols).map(|_| r.gen()).collect();
    let (mut d32, mut d16, mut d8) = (
        vec![0f32; rows * cols],
        vec![0u16; rows * cols],
        vec![0u8; rows * cols],
    );

    let mut g = c.benchmark_group("transpose_f32/256x120");
    g.throughput(Throughput::Elements((rows * cols) as u64));
    each_distinct(
        &ks,
        |k| k.transpose_f32 as usize,
        |k| {
            g.bench_function(BenchmarkId::from_parameter(k.backend), |b| {
                // SAFETY: d32 holds cols x rows elements, written only by this thread.
                b.iter(|| unsafe {
                    (k.transpose_f32)(black_box(&s32), rows, cols, cols, d32.as_mut_ptr(), rows)
                })
            });
        },
    );
    g.finish();

    let mut g = c.benchmark_group("transpose_u16/256x120");
    g.throughput(Throughput::Elements((rows * cols) as u64));
    each_distinct(
        &ks,
        |k| k.transpose_u16 as usize,
        |k| {
            g.bench_function(BenchmarkId::from_parameter(k.backend), |b| {
                // SAFETY: as above.
                b.iter(|| unsafe {
                    (k.transpose_u16)(black_box(&s16), rows, cols, cols, d16.as_mut_ptr(), rows)
                })
            });
        },
    );
    g.finish();

    let mut g = c.benchmark_group("transpose_u8/256x120");
    g.throughput(Throughput::Elements((rows * cols) as u64));
    each_distinct(
        &ks,
        |k| k.transpose_u8 as usize,
        |k| {
            g.bench_function(BenchmarkId::from_parameter(k.backend), |b| {
                // SAFETY: as above.
                b.iter(|| unsafe {
                    (k.transpose_u8)(black_box(&s8), rows, cols, cols, d8.as_mut_ptr(), rows)
                })
            });
        },
    );
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_conv, bench_sample, bench_cvt, bench_transpose
}
criterion_main!(benches);
