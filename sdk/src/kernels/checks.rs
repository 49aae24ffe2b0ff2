//! The conformance suite every kernel table runs against [`scalar`] (in the ISA modules'
//! tests, through [`table_tests!`]): hot shapes, the edge sizes of every tile and tail, bounds
//! (sentinels past each output, inputs that end at the last byte read), and proptests.
//! Floats within 1e-5 relative; f16 storage with f32 math, int8 and conversions bit for bit.

use super::{cin4, pack_conv_f32, pack_conv_i8, scalar, Backend, ConvIn, Kernels, Tap, TapQ11};
use half::f16;

/// The table of `b`, or `None` (with the reason printed) on a CPU that lacks it.
pub fn table(b: Backend) -> Option<&'static Kernels> {
    match b.kernels() {
        Ok(k) => Some(k),
        Err(e) => {
            eprintln!("skipping {b} tests: {e}");
            None
        }
    }
}

/// Whether the table's f16 sampling must equal the scalar one bit for bit: true unless it
/// computes in fp16 arithmetic (that one is checked for accuracy in its own module).
pub fn f16_exact(k: &Kernels) -> bool {
    k.backend != Backend::NeonDotprodFp16
}

/// Largest `|a − r|` over `scale`: for bilinear samples, the largest input magnitude (a blend
/// is convex, so its rounding error scales with its corners, not with the result, which can
/// cancel to near zero).
pub fn err_over(a: &[f32], r: &[f32], scale: f32) -> f32 {
    a.iter().zip(r).fold(0f32, |e, (x, y)| e.max((x - y).abs())) / scale.max(1e-30)
}

/// Largest magnitude in `v`.
pub fn max_abs(v: &[f32]) -> f32 {
    v.iter().fold(0f32, |m, x| m.max(x.abs()))
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

/// `conv_f32` against scalar on `npix` pixels of `cin` channels, rows `cin + pad` apart; `x`
/// ends at the last pixel's last value, and NaN sentinels past the output must survive.
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
    let n = npix * o_n;
    let (mut got, mut want) = (vec![f32::NAN; n + 5], vec![0.0; n]);
    (k.conv_f32)(ConvIn::new(&x, ldx, npix, cin), &w, b, o_n, &mut got);
    scalar::conv_f32(ConvIn::new(&x, ldx, npix, cin), &w, b, o_n, &mut want);
    let what = format!(
        "conv_f32 {} npix={npix} cin={cin} o_n={o_n} pad={pad}",
        k.backend
    );
    assert!(
        got[n..].iter().all(|v| v.is_nan()),
        "{what}: wrote past its output"
    );
    // Each output within 1e-5 of the sum of its terms' magnitudes: summation orders differ
    // (FMA tiles, AMX), so a sum that cancels to near zero may lose more than 1e-5 of itself;
    // one wrong term is ~1/cin of that sum, far beyond the bound.
    for p in 0..npix {
        for o in 0..o_n {
            let mag = (0..cin)
                .map(|kk| (x[p * ldx + kk] * w[kk * o_n + o]).abs())
                .sum::<f32>()
                + b.map_or(0.0, |b| b[o].abs());
            let (g, r) = (got[p * o_n + o], want[p * o_n + o]);
            assert!(
                (g - r).abs() <= 1e-5 * mag.max(1e-30),
                "{what}: [{p}, {o}] {g} vs {r} (terms' magnitude {mag})"
            );
        }
    }
}

/// `conv_i8` against scalar, exact, with the bounds of [`check_conv_f32`]; one seed in three
/// also runs the worst case for i16 intermediates (every product (-128)·(-128)).
pub fn check_conv_i8(k: &Kernels, npix: usize, cin: usize, o_n: usize, pad: usize, seed: u64) {
    let ldx = cin + pad;
    let x = rand_i8(npix.saturating_sub(1) * ldx + cin, seed);
    let w = rand_i8(o_n * cin, seed + 1);
    let one = |x: &[i8], w: &[i8], what: &str| {
        let wp = pack_conv_i8(w, o_n, cin);
        assert_eq!(wp.len(), cin4(cin) * o_n);
        let n = npix * o_n;
        let (mut got, mut want) = (vec![7; n + 3], vec![7; n + 3]);
        (k.conv_i8)(ConvIn::new(x, ldx, npix, cin), &wp, o_n, &mut got);
        scalar::conv_i8(ConvIn::new(x, ldx, npix, cin), &wp, o_n, &mut want);
        assert_eq!(
            got, want,
            "conv_i8{what} {} npix={npix} cin={cin} o_n={o_n} ldx={ldx}",
            k.backend
        );
    };
    one(&x, &w, "");
    if seed.is_multiple_of(3) {
        one(&vec![-128; x.len()], &vec![-128; w.len()], " extreme");
    }
}

/// Saturation corners of `conv_i8`: constant ±127/-128 inputs and weights, whose sums are
/// known in closed form, on shapes around the ISA blocks.
pub fn check_conv_i8_extremes(k: &Kernels) {
    for &(cin, o_n) in &[(256usize, 32usize), (7, 5), (4, 8), (1, 1), (1024, 9)] {
        for &(xv, wv) in &[(-128i8, -128i8), (-128, 127), (127, 127), (127, -128)] {
            let x = vec![xv; cin * 3];
            let wp = pack_conv_i8(&vec![wv; o_n * cin], o_n, cin);
            let mut got = vec![0i32; 3 * o_n];
            (k.conv_i8)(ConvIn::new(&x, cin, 3, cin), &wp, o_n, &mut got);
            let want = xv as i32 * wv as i32 * cin as i32;
            assert!(
                got.iter().all(|&v| v == want),
                "conv_i8 {} extremes x={xv} w={wv} cin={cin}: want {want}",
                k.backend
            );
        }
    }
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
    let e = err_over(&got, &want, max_abs(&src));
    assert!(
        e <= 1e-5,
        "sample_f32 ntaps={ntaps} cpg={cpg}: err {e} of the largest input"
    );
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
            let (mut got, mut want) = (vec![0 as $t; cols * dst_ld], vec![0 as $t; cols * dst_ld]);
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

/// `stream_tile_*` of `k` (those it has) against the scalar transpose: a tile of one line of
/// pixels × `c` channels into planes `m` lines apart in a line-aligned buffer whose every other
/// element is a sentinel that must survive.
pub fn check_stream_tiles(k: &Kernels, c: usize, m: usize, seed: u64) {
    macro_rules! one {
        ($f:ident, $t:ty, $mk:expr, $sentinel:expr) => {{
            if let Some(f) = k.$f {
                let pb = 64 / core::mem::size_of::<$t>();
                let plane = pb * m.max(1);
                let src: Vec<$t> = $mk(pb * c);
                let mut buf = vec![$sentinel; c * plane + pb];
                let a = (64 - buf.as_ptr() as usize % 64) % 64 / core::mem::size_of::<$t>();
                let mut want = buf.clone();
                // SAFETY: the c planes of pb elements from buf[a], plane apart, lie in buf
                // (a < pb), and buf[a] is 64-byte aligned; plane is a whole number of lines.
                unsafe {
                    scalar::transpose(&src, pb, c, c, want.as_mut_ptr().add(a), plane);
                    f(&src, c, buf.as_mut_ptr().add(a), plane);
                }
                assert!(
                    bytemuck::cast_slice::<$t, u8>(&buf) == bytemuck::cast_slice::<$t, u8>(&want),
                    "{} {} c={c} m={m}",
                    k.backend,
                    stringify!($f)
                );
            }
        }};
    }
    one!(stream_tile_f32, f32, |n| rand_f32(n, seed), f32::NAN);
    one!(
        stream_tile_u16,
        u16,
        |n| rand_i8(2 * n, seed)
            .chunks(2)
            .map(|p| u16::from_le_bytes([p[0] as u8, p[1] as u8]))
            .collect(),
        0x5555u16
    );
    one!(
        stream_tile_u8,
        u8,
        |n| rand_i8(n, seed).iter().map(|v| *v as u8).collect(),
        0x55u8
    );
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
        // Relative to the largest input, as `check_sample_f32`: an FMA kernel rounds a blend
        // that cancels to near zero differently, by ~1 ulp of its corners, not of the result.
        let m = max_abs(&src);
        for (i, (a, b)) in got.iter().zip(&want).enumerate() {
            if b.is_nan() {
                assert!(
                    a.is_nan(),
                    "sample_f32_nchw wrote [{i}] outside its row, {what}"
                );
            } else {
                assert!(
                    (a - b).abs() <= 1e-5 * m,
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
    // Every channel tail of the 32- and 64-channel blocks, and the reference shape's 256.
    for c in [
        0, 1, 7, 8, 15, 16, 17, 31, 32, 33, 48, 63, 64, 65, 100, 127, 128, 129, 256,
    ] {
        check_stream_tiles(k, c, 1 + c % 3, c as u64);
    }
    check_conv_i8_extremes(k);
    for cpg in 1..40 {
        check_sample_bounds(k, cpg, 0, 3, cpg as u64);
        check_sample_bounds(k, cpg, cpg * 3, 7, cpg as u64 + 1000);
        if f16_exact(k) {
            for ntaps in [0, 1, 7] {
                check_sample_f16_exact(k, ntaps, cpg, cpg as u64 * 7 + ntaps as u64);
            }
        }
    }
    check_sample_bounds(k, 64, 64 * 500, 960, 5);
    check_sample_bounds(k, 8, 8 * 500, 960, 6);
    nchw_fixed_cases(k, f16_exact(k));
}

/// Random taps over a flat buffer of `len` elements, every fifth one at its very end and many
/// with the extreme weights: (base, dx, dy, fx, fy) with fx, fy in 0..=2048.
fn end_taps(
    r: &mut impl FnMut() -> u64,
    len: usize,
    cpg: usize,
    n: usize,
) -> Vec<(u32, u32, u32, u16, u16)> {
    let room = len - cpg;
    let mut below = |n: usize| (r() % (n as u64 + 1)) as usize;
    (0..n)
        .map(|i| {
            let dx = below(room.min(3 * cpg));
            let dy = below(room - dx);
            let base = if i % 5 == 0 {
                room - dx - dy
            } else {
                below(room - dx - dy)
            };
            let mut pick = || [0, 2048, 1, 2047, below(2048) as u16, below(2048) as u16][below(5)];
            let (fx, fy) = (pick(), pick());
            (base as u32, dx as u32, dy as u32, fx, fy)
        })
        .collect()
}

/// The three NHWC samplers on taps that end at the last element of `src` (`cpg + extra`
/// long), with sentinels past each output: no tail may read or write one element too far.
pub fn check_sample_bounds(k: &Kernels, cpg: usize, extra: usize, ntaps: usize, seed: u64) {
    let mut r = rng(seed);
    let len = cpg + extra;
    let t = end_taps(&mut r, len, cpg, ntaps);
    let ft: Vec<Tap> = t
        .iter()
        .map(|&(base, dx, dy, fx, fy)| Tap {
            base,
            dx,
            dy,
            fx: fx as f32 / 2048.0,
            fy: fy as f32 / 2048.0,
        })
        .collect();
    let qt: Vec<TapQ11> = t
        .iter()
        .map(|&(b, dx, dy, fx, fy)| TapQ11::new(b, dx, dy, fx, fy))
        .collect();
    let n = ntaps * cpg;
    let what = format!("{} cpg={cpg} len={len} ntaps={ntaps}", k.backend);

    let src = rand_f32(len, seed);
    let (mut got, mut want) = (vec![f32::NAN; n + 9], vec![0f32; n]);
    scalar::sample_f32(&src, &ft, cpg, &mut want);
    (k.sample_f32)(&src, &ft, cpg, &mut got);
    assert!(
        got[n..].iter().all(|v| v.is_nan()),
        "sample_f32 {what}: wrote past its output"
    );
    let e = err_over(&got[..n], &want, max_abs(&src));
    assert!(e <= 1e-5, "sample_f32 {what}: err {e} of the largest input");

    if f16_exact(k) {
        let srch = f16_src(len, seed);
        let (mut got, mut want) = (vec![f16::ONE; n + 9], vec![f16::ONE; n + 9]);
        scalar::sample_f16(&srch, &ft, cpg, &mut want);
        (k.sample_f16)(&srch, &ft, cpg, &mut got);
        let bits = |v: &[f16]| v.iter().map(|h| h.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&got), bits(&want), "sample_f16 {what}");
    }

    let srcq = rand_i8(len, seed + 1);
    let (mut got, mut want) = (vec![5i8; n + 17], vec![5i8; n + 17]);
    scalar::sample_i8(&srcq, &qt, cpg, &mut want);
    (k.sample_i8)(&srcq, &qt, cpg, &mut got);
    assert_eq!(got, want, "sample_i8 {what}");
}

/// The whole suite for one table, as a module `suite` of tests: [`fixed_cases`], then
/// proptests over every family. `$backend` names the [`Backend`] variant whose table it checks
/// (skipped on a CPU without it; the fixed-case test prints why).
macro_rules! table_tests {
    ($backend:ident) => {
        mod suite {
            use $crate::kernels::checks::*;
            use $crate::kernels::Backend;
            use proptest::prelude::*;

            #[test]
            fn fixed_cases_match_scalar() {
                if let Some(k) = table(Backend::$backend) {
                    assert_eq!(k.backend, Backend::$backend);
                    fixed_cases(k);
                }
            }

            proptest! {
                #![proptest_config(ProptestConfig::with_cases(48))]
                #[test]
                fn conv_matches_scalar(npix in 0usize..20, cin in 0usize..300, o_n in 1usize..72,
                                       pad in 0usize..5, bias: bool, seed: u64) {
                    if let Ok(k) = Backend::$backend.kernels() {
                        check_conv_f32(k, npix, cin, o_n, pad, bias, seed);
                        check_conv_i8(k, npix, cin, o_n, pad, seed);
                    }
                }
                #[test]
                fn sample_matches_scalar(ntaps in 0usize..20, cpg in 1usize..80,
                                         extra in 0usize..2000, seed: u64) {
                    if let Ok(k) = Backend::$backend.kernels() {
                        check_sample_f32(k, ntaps, cpg, seed);
                        if f16_exact(k) {
                            check_sample_f16_exact(k, ntaps, cpg, seed);
                        }
                        check_sample_i8(k, ntaps, cpg, seed);
                        check_sample_bounds(k, cpg, extra, ntaps, seed);
                    }
                }
                #[test]
                fn sample_nchw_matches_scalar(g in 1usize..6, cpg in 1usize..40, npx in 0usize..30,
                                              at_end: bool, seed: u64) {
                    if let Ok(k) = Backend::$backend.kernels() {
                        check_nchw(k, g, cpg, npx, seed, at_end, f16_exact(k));
                    }
                }
                #[test]
                fn cvt_and_transposes_match_scalar(n in 0usize..300, rows in 0usize..70,
                                                   cols in 0usize..70, pad in 0usize..9, seed: u64) {
                    if let Ok(k) = Backend::$backend.kernels() {
                        check_cvt(k, n, seed);
                        check_transposes(k, rows, cols, pad, seed);
                    }
                }
                #[test]
                fn stream_tiles_match_scalar(c in 0usize..300, m in 1usize..4, seed: u64) {
                    if let Ok(k) = Backend::$backend.kernels() {
                        check_stream_tiles(k, c, m, seed);
                    }
                }
            }
        }
    };
}
