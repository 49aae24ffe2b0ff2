//! `DySampleSession::prepare_f32`: the bound run equals `run_f32` on the committed fixtures
//! (f32 graph: IoBinding; f16 graph: the `run_f32` fallback), sees new input on each run, and
//! refuses a wrong shape or another session with a one-line error.
//!
//! Needs the ONNX Runtime library (python3's onnxruntime package or ORT_DYLIB_PATH).
#![cfg(feature = "onnxruntime")]

use dysample::onnx::session::SessionOptions;
use ndarray::ArrayD;
use std::path::{Path, PathBuf};

fn fx(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/onnx")
        .join(name)
}

fn read_npy(path: &Path) -> ArrayD<f32> {
    let f = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    ndarray_npy::ReadNpyExt::read_npy(f).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn same_as_run_f32(layer: &str, bound: bool) {
    let mut s = SessionOptions::new()
        .threads(2)
        .build(&fx(&format!("layer_{layer}.onnx")))
        .unwrap();
    let x = read_npy(&fx(&format!("layer_{layer}_input.npy")));
    let dims = x.shape().to_vec();
    let x: Vec<f32> = x.iter().copied().collect();
    let mut run = s.prepare_f32(&dims).unwrap();
    assert_eq!(run.is_bound(), bound, "{layer}");
    assert_eq!(run.input_dims(), dims.as_slice());
    for k in 0..3 {
        let xk: Vec<f32> = x.iter().map(|v| v * (1.0 + 0.25 * k as f32)).collect();
        run.input_mut().copy_from_slice(&xk);
        let y = run.run(&mut s).unwrap().to_vec();
        let (d, want) = s.run_f32(&xk, &dims).unwrap();
        assert_eq!(d, run.output_dims(), "{layer}");
        assert_eq!(y, want, "{layer}: run {k}");
        assert_eq!(run.output().1, want.as_slice(), "{layer}: output()");
    }
}

#[test]
fn bound_run_equals_run_f32() {
    same_as_run_f32("lp_dyscope", true);
    same_as_run_f32("pl_static", true);
}

#[test]
fn f16_input_falls_back_to_run_f32() {
    same_as_run_f32("f16", false);
}

#[test]
fn wrong_shape_and_wrong_session_are_errors() {
    let model = fx("layer_lp_static.onnx");
    let x = read_npy(&fx("layer_lp_static_input.npy"));
    let dims = x.shape().to_vec();
    let mut a = SessionOptions::new().threads(1).build(&model).unwrap();
    let mut b = SessionOptions::new().threads(1).build(&model).unwrap();
    let mut bad = dims.clone();
    bad[1] += 1;
    let e = a.prepare_f32(&bad).unwrap_err().to_string();
    assert!(e.contains("expects shape"), "{e}");
    let e = a
        .prepare_f32(&[usize::MAX, 2, 2, 2])
        .unwrap_err()
        .to_string();
    assert!(!e.contains('\n'), "{e}");
    let mut run = a.prepare_f32(&dims).unwrap();
    let e = run.run(&mut b).unwrap_err().to_string();
    assert!(e.contains("different session"), "{e}");
    run.run(&mut a).unwrap();
}
