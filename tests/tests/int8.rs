//! int8: quality against fp32, cross-architecture byte equality, and parameter validation.

mod common;
use common::*;
use dysample::{
    reference, Affine, Backend, BackendChoice, DySample, ExecOptions, QuantParams, Shape, Symmetry,
};
use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;
use std::collections::HashMap;

fn sqnr_db(reference: &[f32], test: &[f32]) -> f64 {
    let sig: f64 = reference.iter().map(|&v| (v as f64).powi(2)).sum();
    let noise: f64 = reference
        .iter()
        .zip(test)
        .map(|(&a, &b)| (a as f64 - b as f64).powi(2))
        .sum();
    10.0 * (sig / noise.max(1e-30)).log10()
}

#[test]
fn int8_sqnr_is_at_least_30db_on_every_golden_case() {
    let mut worst = (f64::INFINITY, String::new());
    for g in golden_cases() {
        let layer = DySample::load(&g.path, &g.prefix, g.cfg).unwrap();
        let params =
            QuantParams::calibrate_minmax(g.cfg, [&g.input[..]], Symmetry::Asymmetric).unwrap();
        let q = layer.quantize(&params).unwrap();
        let mut y = vec![0.0; g.output.len()];
        q.forward_f32(&g.input, g.dims, g.layout, &mut y).unwrap();
        let db = sqnr_db(&g.output, &y);
        if std::env::var_os("SQNR_VERBOSE").is_some() {
            println!("{:50} {db:.1}", g.name);
        }
        if db < worst.0 {
            worst = (db, g.name.clone());
        }
        // Symmetric (TensorRT-style) parameters must work too.
        let sym =
            QuantParams::calibrate_minmax(g.cfg, [&g.input[..]], Symmetry::Symmetric).unwrap();
        assert_eq!(sym.input.zero_point, 0);
        let mut ys = vec![0.0; g.output.len()];
        layer
            .quantize(&sym)
            .unwrap()
            .forward_f32(&g.input, g.dims, g.layout, &mut ys)
            .unwrap();
        let dbs = sqnr_db(&g.output, &ys);
        if dbs < worst.0 {
            worst = (dbs, format!("{} (symmetric)", g.name));
        }
    }
    println!("worst int8 SQNR: {:.1} dB ({})", worst.0, worst.1);
    assert!(
        worst.0 >= 30.0,
        "SQNR {:.1} dB < 30 dB on {}",
        worst.0,
        worst.1
    );
}

#[test]
fn sqnr_check_can_fail() {
    // A crude "quantizer" (4-bit-like input scale) must fall below the bar.
    let g = golden_cases().into_iter().find(|c| c.cfg.dyscope).unwrap();
    let layer = DySample::load(&g.path, &g.prefix, g.cfg).unwrap();
    let max = g.input.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let params = QuantParams::new(
        g.cfg,
        Affine {
            scale: max / 7.0,
            zero_point: 0,
        },
    );
    let mut y = vec![0.0; g.output.len()];
    layer
        .quantize(&params)
        .unwrap()
        .forward_f32(&g.input, g.dims, g.layout, &mut y)
        .unwrap();
    assert!(sqnr_db(&g.output, &y) < 30.0);
}

/// Committed int8 outputs, produced by the x86_64 scalar backend (`DYSAMPLE_BLESS=1` rewrites them).
/// Every backend on every architecture must reproduce them byte for byte.
#[test]
fn int8_outputs_equal_the_committed_x86_scalar_bytes() {
    let path = fixtures().join("int8_golden.safetensors");
    let cases = golden_cases();
    if std::env::var_os("DYSAMPLE_BLESS").is_some() {
        assert_eq!(
            std::env::consts::ARCH,
            "x86_64",
            "bless on x86_64 with the scalar backend only"
        );
        let mut data: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
        let mut meta = HashMap::new();
        for (i, g) in cases.iter().enumerate() {
            let sym = if i % 3 == 0 {
                Symmetry::Symmetric
            } else {
                Symmetry::Asymmetric
            };
            let params = QuantParams::calibrate_minmax(g.cfg, [&g.input[..]], sym).unwrap();
            let mut xq = vec![0i8; g.input.len()];
            params.input.quantize_slice(&g.input, &mut xq);
            let q = DySample::load(&g.path, &g.prefix, g.cfg)
                .unwrap()
                .with_backend(BackendChoice::Exact(Backend::Scalar))
                .unwrap()
                .quantize(&params)
                .unwrap();
            let mut yq = vec![0i8; g.output.len()];
            q.forward_slice(&xq, g.dims, g.layout, &mut yq).unwrap();
            let oshape = Shape::from_dims(g.dims, g.layout)
                .upsampled(g.cfg.scale)
                .dims(g.layout);
            data.push((format!("{}.x", g.name), g.dims.to_vec(), bytemuck_i8(&xq)));
            data.push((format!("{}.y", g.name), oshape.to_vec(), bytemuck_i8(&yq)));
            meta.insert(g.name.clone(), params.to_json());
        }
        let views: Vec<(String, TensorView<'_>)> = data
            .iter()
            .map(|(n, s, d)| (n.clone(), TensorView::new(Dtype::I8, s.clone(), d).unwrap()))
            .collect();
        safetensors::serialize_to_file(views, &Some(meta), &path).unwrap();
        eprintln!("blessed {}", path.display());
        return;
    }
    let bytes = std::fs::read(&path).expect("int8_golden.safetensors is committed");
    let (_, header) = SafeTensors::read_metadata(&bytes).unwrap();
    let meta = header.metadata().clone().unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let backends: Vec<Backend> = Backend::ALL
        .into_iter()
        .filter(|b| b.kernels().is_ok())
        .collect();
    let mut checked = 0;
    for g in &cases {
        let params = QuantParams::from_json(&meta[&g.name]).unwrap();
        let xq: Vec<i8> = st
            .tensor(&format!("{}.x", g.name))
            .unwrap()
            .data()
            .iter()
            .map(|&b| b as i8)
            .collect();
        let want: Vec<i8> = st
            .tensor(&format!("{}.y", g.name))
            .unwrap()
            .data()
            .iter()
            .map(|&b| b as i8)
            .collect();
        // Quantizing the float input must also reproduce the committed input bytes.
        let mut xq2 = vec![0i8; g.input.len()];
        params.input.quantize_slice(&g.input, &mut xq2);
        assert_eq!(
            xq,
            xq2,
            "{}: input quantization differs on {}",
            g.name,
            std::env::consts::ARCH
        );
        let layer = DySample::load(&g.path, &g.prefix, g.cfg).unwrap();
        let mut r = vec![0i8; want.len()];
        let q = layer.quantize(&params).unwrap();
        reference::forward_int8(
            q.quantized_weights(),
            &xq,
            Shape::from_dims(g.dims, g.layout),
            g.layout,
            &mut r,
        );
        assert_eq!(
            r,
            want,
            "{}: int8 reference differs on {}",
            g.name,
            std::env::consts::ARCH
        );
        for &b in &backends {
            let qb = layer
                .clone()
                .with_exec(ExecOptions {
                    backend: BackendChoice::Exact(b),
                    threads: Some(2),
                })
                .unwrap()
                .quantize(&params)
                .unwrap();
            let mut got = vec![0i8; want.len()];
            qb.forward_slice(&xq, g.dims, g.layout, &mut got).unwrap();
            assert_eq!(
                got, want,
                "{}: backend {b} differs from the x86 scalar bytes",
                g.name
            );
            checked += 1;
        }
    }
    println!(
        "{checked} (case, backend) pairs byte-identical on {}",
        std::env::consts::ARCH
    );
    assert!(checked >= cases.len());
}

fn bytemuck_i8(v: &[i8]) -> Vec<u8> {
    v.iter().map(|&b| b as u8).collect()
}

#[test]
fn bad_quant_params_are_clear_errors() {
    let g = golden_cases().into_iter().find(|c| c.cfg.dyscope).unwrap();
    let layer = DySample::load(&g.path, &g.prefix, g.cfg).unwrap();
    let ok = QuantParams::new(
        g.cfg,
        Affine {
            scale: 0.02,
            zero_point: 3,
        },
    );
    assert!(layer.quantize(&ok).is_ok());
    let expect_err = |p: QuantParams, needle: &str| {
        let e = layer.quantize(&p).unwrap_err().to_string();
        assert!(e.contains(needle), "expected '{needle}' in: {e}");
    };
    for bad in [0.0, -1.0, f32::NAN, f32::INFINITY] {
        expect_err(
            QuantParams {
                input: Affine {
                    scale: bad,
                    zero_point: 0,
                },
                ..ok.clone()
            },
            "input.scale",
        );
    }
    expect_err(
        QuantParams {
            input: Affine {
                scale: 0.1,
                zero_point: 128,
            },
            ..ok.clone()
        },
        "zero_point",
    );
    expect_err(
        QuantParams {
            input: Affine {
                scale: 0.1,
                zero_point: -129,
            },
            ..ok.clone()
        },
        "zero_point",
    );
    let mut other = g.cfg;
    other.groups = if g.cfg.groups == 1 { 2 } else { 1 };
    expect_err(
        QuantParams {
            layer: other,
            ..ok.clone()
        },
        "made for layer",
    );
    expect_err(
        QuantParams {
            offset_weight_scales: Some(vec![0.1; 3]),
            ..ok.clone()
        },
        "offset_weight_scales has 3 entries",
    );
    let o = g.cfg.conv_out_channels();
    // Legal but absurd weight scales: the bias in accumulator units would overflow i64 math.
    expect_err(
        QuantParams {
            offset_weight_scales: Some(vec![1e-9; o]),
            ..ok.clone()
        },
        "too large for the 64-bit requantization",
    );
    let mut s = vec![0.1; o];
    s[o - 1] = f32::NAN;
    expect_err(
        QuantParams {
            scope_weight_scales: Some(s),
            ..ok.clone()
        },
        "scope_weight_scales",
    );
    expect_err(
        QuantParams {
            version: 99,
            ..ok.clone()
        },
        "version 99",
    );

    // JSON round trip, and corrupt JSON.
    let back = QuantParams::from_json(&ok.to_json()).unwrap();
    assert_eq!(back, ok);
    assert!(QuantParams::from_json("{\"version\": 1")
        .unwrap_err()
        .to_string()
        .contains("bad JSON"));
    // NaN calibration data.
    let e = QuantParams::calibrate_minmax(g.cfg, [&[1.0, f32::NAN][..]], Symmetry::Asymmetric)
        .unwrap_err();
    assert!(e.to_string().contains("non-finite"), "{e}");
}
