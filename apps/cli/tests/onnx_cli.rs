//! End-to-end tests of `dysample onnx ...` against the committed fixtures in tests/fixtures/onnx
//! (made by tools/make_onnx_fixtures.py; expected outputs computed by PyTorch).
//!
//! Needs the ONNX Runtime library (>= 1.17): `pip install onnxruntime==1.31.1` is found through
//! python3, or set ORT_DYLIB_PATH.

use ndarray::ArrayD;
use std::path::Path;

mod common;
use common::*;

const F32_TOL: f32 = 1e-5;
const F16_TOL: f32 = 1e-3;
const VARIANTS: &[(&str, &str, usize, usize, bool, &str)] = &[
    // name, style, scale, groups, dyscope, plain-export opset
    ("lp_static", "lp", 2, 4, false, "16"),
    ("lp_dyscope", "lp", 3, 2, true, "17"),
    ("pl_static", "pl", 2, 2, false, "18"),
    ("pl_dyscope", "pl", 3, 1, true, "20"),
];

fn read(path: &Path) -> ArrayD<f32> {
    let f = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    ndarray_npy::ReadNpyExt::read_npy(f).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// max|y − ref| / max|ref|.
fn rel_err(y: &ArrayD<f32>, reference: &ArrayD<f32>) -> f32 {
    assert_eq!(y.shape(), reference.shape(), "output shape");
    let scale = reference.iter().fold(0f32, |a, v| a.max(v.abs()));
    let diff = y
        .iter()
        .zip(reference)
        .fold(0f32, |a, (p, q)| a.max((p - q).abs()));
    assert!(scale > 0.0 && diff.is_finite());
    diff / scale
}

/// `onnx run` of `model` on fixture `input`; returns the relative error against fixture `expected`.
fn run_and_compare(tmp: &Path, model: &Path, input: &str, expected: &str, extra: &[&str]) -> f32 {
    let out = tmp.join(format!(
        "{}.{}.npy",
        model.file_stem().unwrap().to_string_lossy(),
        input
    ));
    let input_path = fx(input);
    let mut args = vec![
        "onnx",
        "run",
        model.to_str().unwrap(),
        "--input",
        input_path.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    ok(&args);
    rel_err(&read(&out), &read(&fx(expected)))
}

fn info_json(model: &Path) -> serde_json::Value {
    let out = ok(&["onnx", "info", model.to_str().unwrap(), "--json"]);
    serde_json::from_slice(&out.stdout).expect("info --json prints JSON")
}

fn tmpdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

#[test]
fn custom_op_matches_pytorch_for_all_four_variants() {
    let tmp = tmpdir();
    for (name, style, scale, groups, dyscope, _) in VARIANTS {
        let model = fx(&format!("layer_{name}.onnx"));
        let info = info_json(&model);
        let cfg = &info["dysample"][0]["config"];
        assert_eq!(info["dysample"].as_array().unwrap().len(), 1, "{name}");
        assert_eq!(
            (
                cfg["style"].as_str().unwrap(),
                cfg["scale"].as_u64().unwrap() as usize,
                cfg["groups"].as_u64().unwrap() as usize,
                cfg["dyscope"].as_bool().unwrap()
            ),
            (*style, *scale, *groups, *dyscope),
            "{name}"
        );
        let e = run_and_compare(
            tmp.path(),
            &model,
            &format!("layer_{name}_input.npy"),
            &format!("layer_{name}_expected.npy"),
            &[],
        );
        assert!(
            e <= F32_TOL,
            "{name}: custom op differs from PyTorch by {e:e}"
        );
    }
}

#[test]
fn lower_then_standard_ops_match_pytorch() {
    let tmp = tmpdir();
    for (name, ..) in VARIANTS {
        let lowered = tmp.path().join(format!("{name}_lowered.onnx"));
        ok(&[
            "onnx",
            "lower",
            fx(&format!("layer_{name}.onnx")).to_str().unwrap(),
            lowered.to_str().unwrap(),
        ]);
        let info = info_json(&lowered);
        assert!(
            info["dysample"].as_array().unwrap().is_empty(),
            "{name}: DySample node left after lower"
        );
        assert!(
            info["opsets"]
                .as_array()
                .unwrap()
                .iter()
                .all(|o| o["domain"] != "ai.dysample"),
            "{name}"
        );
        assert!(info["opsets"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["domain"] == "ai.onnx" && o["version"].as_i64().unwrap() >= 16));
        let e = run_and_compare(
            tmp.path(),
            &lowered,
            &format!("layer_{name}_input.npy"),
            &format!("layer_{name}_expected.npy"),
            &[],
        );
        assert!(
            e <= F32_TOL,
            "{name}: lowered model differs from PyTorch by {e:e}"
        );
    }
}

#[test]
fn fuse_of_plain_exports_matches_pytorch() {
    let tmp = tmpdir();
    for (name, style, scale, groups, dyscope, opset) in VARIANTS {
        for plain in [
            format!("layer_{name}_plain_opset{opset}.onnx"),
            format!("layer_{name}_authors_opset17.onnx"),
        ] {
            let fused = tmp.path().join(format!("fused_{plain}"));
            let out = ok(&[
                "onnx",
                "fuse",
                fx(&plain).to_str().unwrap(),
                fused.to_str().unwrap(),
            ]);
            let log = String::from_utf8_lossy(&out.stderr);
            assert!(
                log.contains("fused 1 DySample subgraph(s), left 0 alone")
                    && log.contains("verified"),
                "{plain}: {log}"
            );
            let info = info_json(&fused);
            let nodes = info["dysample"].as_array().unwrap();
            assert_eq!(nodes.len(), 1, "{plain}");
            let cfg = &nodes[0]["config"];
            assert_eq!(
                (
                    cfg["style"].as_str().unwrap(),
                    cfg["scale"].as_u64().unwrap() as usize,
                    cfg["groups"].as_u64().unwrap() as usize,
                    cfg["dyscope"].as_bool().unwrap()
                ),
                (*style, *scale, *groups, *dyscope),
                "{plain}"
            );
            // Only the node, its weights and nothing of the exported subgraph is left.
            assert_eq!(info["nodes"], 1, "{plain}: leftover nodes after fuse");
            let e = run_and_compare(
                tmp.path(),
                &fused,
                &format!("layer_{name}_input.npy"),
                &format!("layer_{name}_expected.npy"),
                &[],
            );
            assert!(
                e <= F32_TOL,
                "{plain}: fused model differs from PyTorch by {e:e}"
            );
        }
    }
}

#[test]
fn network_with_nested_layers_through_every_path() {
    let tmp = tmpdir();
    let net = fx("net.onnx");
    let info = info_json(&net);
    let names: Vec<&str> = info["dysample"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["up1", "stage.1.up"]);
    // Custom op, at the exported size and at another batch/size (dynamic axes).
    assert!(run_and_compare(tmp.path(), &net, "net_input.npy", "net_expected.npy", &[]) <= F32_TOL);
    assert!(
        run_and_compare(
            tmp.path(),
            &net,
            "net_input2.npy",
            "net_expected2.npy",
            &["--threads", "2"]
        ) <= F32_TOL
    );
    // Lowered: standard ops only, dynamic shapes still work.
    let lowered = tmp.path().join("net_lowered.onnx");
    ok(&[
        "onnx",
        "lower",
        net.to_str().unwrap(),
        lowered.to_str().unwrap(),
    ]);
    assert!(
        run_and_compare(
            tmp.path(),
            &lowered,
            "net_input2.npy",
            "net_expected2.npy",
            &[]
        ) <= F32_TOL
    );
    // Fused from the plain export.
    let fused = tmp.path().join("net_fused.onnx");
    ok(&[
        "onnx",
        "fuse",
        fx("net_plain.onnx").to_str().unwrap(),
        fused.to_str().unwrap(),
    ]);
    assert_eq!(info_json(&fused)["dysample"].as_array().unwrap().len(), 2);
    assert!(
        run_and_compare(tmp.path(), &fused, "net_input.npy", "net_expected.npy", &[]) <= F32_TOL
    );
    // Lowering our own nodes and fusing them back round-trips.
    let refused = tmp.path().join("net_refused.onnx");
    ok(&[
        "onnx",
        "fuse",
        lowered.to_str().unwrap(),
        refused.to_str().unwrap(),
    ]);
    assert_eq!(info_json(&refused)["dysample"].as_array().unwrap().len(), 2);
    assert!(
        run_and_compare(
            tmp.path(),
            &refused,
            "net_input2.npy",
            "net_expected2.npy",
            &[]
        ) <= F32_TOL
    );
}

#[test]
fn batch_split_over_ort_threads_is_exact() {
    let tmp = tmpdir();
    let net = fx("net.onnx");
    let (a, b) = (tmp.path().join("t1.npy"), tmp.path().join("t2.npy"));
    let input = fx("net_input2.npy");
    ok(&[
        "onnx",
        "run",
        net.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--output",
        a.to_str().unwrap(),
        "--threads",
        "1",
    ]);
    ok(&[
        "onnx",
        "run",
        net.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--output",
        b.to_str().unwrap(),
        "--threads",
        "2",
    ]);
    assert_eq!(read(&a), read(&b));
}

#[test]
fn f16_model_custom_and_lowered() {
    let tmp = tmpdir();
    let model = fx("layer_f16.onnx");
    assert_eq!(info_json(&model)["dysample"][0]["dtype"], "FLOAT16");
    let e = run_and_compare(
        tmp.path(),
        &model,
        "layer_f16_input.npy",
        "layer_f16_expected.npy",
        &[],
    );
    assert!(e <= F16_TOL, "f16 custom op differs by {e:e}");
    let lowered = tmp.path().join("f16_lowered.onnx");
    ok(&[
        "onnx",
        "lower",
        model.to_str().unwrap(),
        lowered.to_str().unwrap(),
    ]);
    let e = run_and_compare(
        tmp.path(),
        &lowered,
        "layer_f16_input.npy",
        "layer_f16_expected.npy",
        &[],
    );
    assert!(e <= F16_TOL, "f16 lowered differs by {e:e}");
}

#[test]
fn fuse_leaves_non_matches_alone_and_reports_them() {
    let tmp = tmpdir();
    let fused = tmp.path().join("partial.onnx");
    let out = ok(&[
        "onnx",
        "fuse",
        fx("partial_match_plain_opset17.onnx").to_str().unwrap(),
        fused.to_str().unwrap(),
    ]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("fused 1 DySample subgraph(s), left 2 alone"),
        "{log}"
    );
    assert!(log.contains("no multiplication by 0.25"), "{log}");
    assert!(log.contains("padding_mode=zeros"), "{log}");
    assert_eq!(info_json(&fused)["dysample"].as_array().unwrap().len(), 1);
    assert!(
        run_and_compare(
            tmp.path(),
            &fused,
            "partial_match_input.npy",
            "partial_match_expected.npy",
            &[]
        ) <= F32_TOL
    );
}

#[test]
fn placement_is_reported() {
    let tmp = tmpdir();
    let out = ok(&[
        "onnx",
        "run",
        fx("net.onnx").to_str().unwrap(),
        "--input",
        fx("net_input.npy").to_str().unwrap(),
        "--output",
        tmp.path().join("y.npy").to_str().unwrap(),
        "--placement",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    let dysample_lines: Vec<&str> = text.lines().filter(|l| l.contains(" DySample ")).collect();
    assert_eq!(dysample_lines.len(), 2, "{text}");
    assert!(
        dysample_lines
            .iter()
            .all(|l| l.starts_with("CPUExecutionProvider")),
        "{text}"
    );
}

#[test]
fn broken_files_are_one_line_errors() {
    let tmp = tmpdir();
    let y = tmp.path().join("y.npy");
    let (y, x) = (y.to_str().unwrap(), fx("layer_lp_static_input.npy"));
    let x = x.to_str().unwrap();
    for file in ["truncated.onnx", "not_onnx.onnx"] {
        let p = fx(file);
        let p = p.to_str().unwrap();
        fails(&["onnx", "info", p], &[file, "not a valid ONNX model"]);
        fails(&["onnx", "lower", p, y], &[file, "not a valid ONNX model"]);
        fails(&["onnx", "fuse", p, y], &[file, "not a valid ONNX model"]);
        fails(&["onnx", "run", p, "--input", x, "--output", y], &[file]);
    }
    fails(
        &["onnx", "info", "/nonexistent/model.onnx"],
        &["/nonexistent/model.onnx", "cannot read"],
    );
}

#[test]
fn invalid_dysample_nodes_are_one_line_errors_naming_the_node() {
    let tmp = tmpdir();
    let y = tmp.path().join("y.npy");
    let y = y.to_str().unwrap();
    let x = fx("layer_lp_static_input.npy");
    let x = x.to_str().unwrap();
    let cases = [
        (
            "bad_attr_scale.onnx",
            "attribute 'scale' must be an integer in 2..=16, got 1",
        ),
        (
            "bad_attr_style.onnx",
            "attribute 'style' must be \"lp\" or \"pl\", got \"xy\"",
        ),
        (
            "bad_attr_groups.onnx",
            "channels (16) must be divisible by groups (3)",
        ),
        ("bad_missing_initializer.onnx", "offset_weight"),
    ];
    for (file, msg) in cases {
        let p = fx(file);
        let p = p.to_str().unwrap();
        fails(
            &["onnx", "run", p, "--input", x, "--output", y],
            &[file, "DySample node 'dysample'", msg],
        );
        fails(
            &["onnx", "lower", p, y],
            &[file, "DySample node 'dysample'", msg],
        );
        // info reports the problem instead of failing.
        let info = info_json(&fx(file));
        assert!(
            info["dysample"][0]["error"].as_str().unwrap().contains(msg),
            "{file}: {info}"
        );
    }
    fails(
        &[
            "onnx",
            "lower",
            fx("bad_missing_initializer.onnx").to_str().unwrap(),
            y,
        ],
        &["is not an initializer"],
    );
}

#[test]
fn runtime_shape_mismatch_is_an_error_naming_the_input() {
    let tmp = tmpdir();
    let y = tmp.path().join("y.npy");
    // Static-shape model, wrong input size.
    fails(
        &[
            "onnx",
            "run",
            fx("layer_lp_static.onnx").to_str().unwrap(),
            "--input",
            fx("net_input.npy").to_str().unwrap(),
            "--output",
            y.to_str().unwrap(),
        ],
        &["input 'input'", "[1, 16, 6, 8]", "[1, 3, 8, 8]"],
    );
    // Dynamic-shape model, wrong channel count.
    fails(
        &[
            "onnx",
            "run",
            fx("net.onnx").to_str().unwrap(),
            "--input",
            fx("layer_lp_static_input.npy").to_str().unwrap(),
            "--output",
            y.to_str().unwrap(),
        ],
        &["input 'input'", "[1, 16, 6, 8]"],
    );
    // Not a float32 array.
    fails(
        &[
            "onnx",
            "run",
            fx("net.onnx").to_str().unwrap(),
            "--input",
            fx("net.onnx").to_str().unwrap(),
            "--output",
            y.to_str().unwrap(),
        ],
        &["--input", "net.onnx"],
    );
}

#[test]
fn missing_onnxruntime_is_a_clear_error() {
    let tmp = tmpdir();
    let y = tmp.path().join("y.npy");
    let (m, x) = (fx("net.onnx"), fx("net_input.npy"));
    let base = [
        "onnx",
        "run",
        m.to_str().unwrap(),
        "--input",
        x.to_str().unwrap(),
        "--output",
        y.to_str().unwrap(),
    ];
    let mut args = base.to_vec();
    args.extend(["--ort-lib", "/nonexistent/libonnxruntime.so"]);
    fails(
        &args,
        &[
            "cannot load the ONNX Runtime library",
            "/nonexistent/libonnxruntime.so",
            "path given by the caller",
        ],
    );
    // ORT_DYLIB_PATH pointing at a file that is not a library.
    fails_env(
        &base,
        &[("ORT_DYLIB_PATH", x.to_str().unwrap())],
        &["ORT_DYLIB_PATH", "net_input.npy"],
    );
    // fuse needs the library for its numerical check.
    let out = tmp.path().join("f.onnx");
    fails_env(
        &[
            "onnx",
            "fuse",
            fx("net_plain.onnx").to_str().unwrap(),
            out.to_str().unwrap(),
        ],
        &[("ORT_DYLIB_PATH", "/nonexistent/lib.so")],
        &["--no-verify", "/nonexistent/lib.so"],
    );
    // ... unless told to fuse on structure alone.
    let log = ok(&[
        "onnx",
        "fuse",
        fx("net_plain.onnx").to_str().unwrap(),
        out.to_str().unwrap(),
        "--no-verify",
    ]);
    assert!(String::from_utf8_lossy(&log.stderr).contains("not verified"));
}

#[test]
fn execution_provider_flags() {
    let tmp = tmpdir();
    let y = tmp.path().join("y.npy");
    let (m, x) = (fx("net.onnx"), fx("net_input.npy"));
    let base = [
        "onnx",
        "run",
        m.to_str().unwrap(),
        "--input",
        x.to_str().unwrap(),
        "--output",
        y.to_str().unwrap(),
    ];
    let with = |extra: &[&'static str]| -> Vec<&str> {
        base.iter().copied().chain(extra.iter().copied()).collect()
    };
    fails(&with(&["--ep", "gpu"]), &["--ep", "'gpu'", "unknown"]);
    fails(&with(&["--threads", "0"]), &["--threads"]);
    fails(
        &with(&["--trt-calibration-table", "x.table"]),
        &["--trt-int8"],
    );
    // TensorRT: an error naming it on the CPU-only wheel (CI); a normal run where it exists.
    let out = output(&with(&["--ep", "tensorrt"]));
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.starts_with("error: execution provider 'tensorrt' is not available"),
            "{err}"
        );
        assert_eq!(err.lines().count(), 1, "{err}");
        // Falling back to CPU only when asked.
        ok(&with(&["--ep", "tensorrt,cpu", "--allow-cpu-fallback"]));
    }
}
