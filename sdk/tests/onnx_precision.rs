//! `SessionOptions::dysample_precision` on the committed single-layer ONNX fixtures: the f16
//! path equals the layer's own f16 kernels and stays within f16 tolerance of f32; the int8 path
//! equals `QuantizedDySample` run directly with min/max parameters of the same input, bit for bit.
//!
//! Needs the ONNX Runtime library (python3's onnxruntime package or ORT_DYLIB_PATH).
#![cfg(all(feature = "onnxruntime", feature = "onnx-graph"))]

use dysample::onnx::graph::{self, NodeLayer};
use dysample::onnx::session::{DySamplePrecision, SessionOptions};
use dysample::{DySample, Layout, QuantParams, Symmetry};
use half::f16;
use ndarray::ArrayD;
use std::path::{Path, PathBuf};

const LAYERS: &[&str] = &["lp_static", "lp_dyscope", "pl_static", "pl_dyscope"];
/// f16 storage of input and output: a few ulps of 2^-11 relative to the largest value.
const F16_TOL: f32 = 2e-3;

fn fx(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/onnx")
        .join(name)
}

fn read_npy(path: &Path) -> ArrayD<f32> {
    let f = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    ndarray_npy::ReadNpyExt::read_npy(f).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn node_layer(model: &Path) -> NodeLayer {
    let m = graph::load_model(model).unwrap();
    let g = m.graph.as_ref().unwrap();
    let (i, node) = g
        .node
        .iter()
        .enumerate()
        .find(|(_, n)| graph::is_dysample(n))
        .expect("a DySample node");
    graph::read_dysample(g, node, i).unwrap()
}

fn run(model: &Path, precision: DySamplePrecision, x: &ArrayD<f32>) -> (Vec<usize>, Vec<f32>) {
    let mut s = SessionOptions::default()
        .threads(2)
        .dysample_precision(precision)
        .build(model)
        .unwrap();
    s.run_f32(x.as_slice().unwrap(), x.shape()).unwrap()
}

fn dims4(x: &ArrayD<f32>) -> [usize; 4] {
    let s = x.shape();
    [s[0], s[1], s[2], s[3]]
}

#[test]
fn f16_and_int8_precisions_run_the_sdk_kernels_inside_ort() {
    for name in LAYERS {
        let model = fx(&format!("layer_{name}.onnx"));
        let x = read_npy(&fx(&format!("layer_{name}_input.npy")));
        let nl = node_layer(&model);
        let layer = DySample::new(nl.config, nl.weights).unwrap();
        let (d32, y32) = run(&model, DySamplePrecision::F32, &x);
        let (d16, y16) = run(&model, DySamplePrecision::F16, &x);
        let (d8, y8) = run(&model, DySamplePrecision::Int8MinMax, &x);
        assert_eq!(d32, d16, "{name}");
        assert_eq!(d32, d8, "{name}");

        // f16: exactly the layer's f16 kernels on the f16-rounded input ...
        let xh: Vec<f16> = x.iter().map(|&v| f16::from_f32(v)).collect();
        let mut yh = vec![f16::ZERO; y32.len()];
        layer
            .forward_slice_f16(&xh, dims4(&x), Layout::Nchw, &mut yh)
            .unwrap();
        let direct: Vec<f32> = yh.iter().map(|v| v.to_f32()).collect();
        assert_eq!(y16, direct, "{name}: f16 path vs forward_slice_f16");
        // ... within f16 tolerance of f32, and really rounded (not the f32 path).
        let m = y32.iter().fold(0f32, |a, v| a.max(v.abs()));
        let diff = y16
            .iter()
            .zip(&y32)
            .fold(0f32, |a, (p, q)| a.max((p - q).abs()));
        assert!(
            diff <= F16_TOL * m,
            "{name}: f16 max diff {diff} > {F16_TOL} * {m}"
        );
        assert!(y16 != y32, "{name}: f16 output equals f32 exactly");

        // int8: bit-exact with QuantizedDySample under min/max params of this input.
        let params =
            QuantParams::calibrate_minmax(nl.config, [x.as_slice().unwrap()], Symmetry::Asymmetric)
                .unwrap();
        let q = layer.quantize(&params).unwrap();
        let mut yq = vec![0f32; y32.len()];
        q.forward_f32(x.as_slice().unwrap(), dims4(&x), Layout::Nchw, &mut yq)
            .unwrap();
        assert_eq!(
            y8.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            yq.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            "{name}: int8 path vs QuantizedDySample::forward_f32"
        );
        let diff8 = y8
            .iter()
            .zip(&y32)
            .fold(0f32, |a, (p, q)| a.max((p - q).abs()));
        // Input and output share the input's scale: one int8 step is range/255.
        let lo = x.iter().fold(0f32, |a, &v| a.min(v));
        let hi = x.iter().fold(0f32, |a, &v| a.max(v));
        assert!(
            diff8 <= 4.0 * (hi - lo) / 255.0,
            "{name}: int8 max diff {diff8} over range [{lo}, {hi}]"
        );
    }
}

/// A second call with a different input range re-quantizes (the cache must not keep stale
/// parameters); one with the same range reuses the layer and gives the same bytes.
#[test]
fn int8_requantizes_when_the_range_changes() {
    let model = fx("layer_lp_static.onnx");
    let x = read_npy(&fx("layer_lp_static_input.npy"));
    let nl = node_layer(&model);
    let layer = DySample::new(nl.config, nl.weights).unwrap();
    let mut s = SessionOptions::default()
        .threads(1)
        .dysample_precision(DySamplePrecision::Int8MinMax)
        .build(&model)
        .unwrap();
    let x2 = x.mapv(|v| v * 3.0);
    for input in [&x, &x2, &x2, &x] {
        let (_, y) = s.run_f32(input.as_slice().unwrap(), input.shape()).unwrap();
        let p = QuantParams::calibrate_minmax(
            nl.config,
            [input.as_slice().unwrap()],
            Symmetry::Asymmetric,
        )
        .unwrap();
        let mut yq = vec![0f32; y.len()];
        layer
            .quantize(&p)
            .unwrap()
            .forward_f32(
                input.as_slice().unwrap(),
                dims4(input),
                Layout::Nchw,
                &mut yq,
            )
            .unwrap();
        assert_eq!(y, yq);
    }
}

#[test]
fn precision_names_parse() {
    for p in [
        DySamplePrecision::F32,
        DySamplePrecision::F16,
        DySamplePrecision::Int8MinMax,
    ] {
        assert_eq!(DySamplePrecision::parse(p.name()), Some(p));
    }
    assert_eq!(DySamplePrecision::parse("int4"), None);
    assert_eq!(DySamplePrecision::default(), DySamplePrecision::F32);
}
