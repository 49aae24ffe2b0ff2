//! `dysample onnx bench`: the JSON report's fields and their consistency with the model (the
//! per-op-type table lists the model's DySample nodes on the CPU EP), input shapes from
//! --shape, --input and model.json, and one-line errors for bad flags. No timing assertions.
//!
//! Needs the ONNX Runtime library (python3's onnxruntime package or ORT_DYLIB_PATH).

mod common;
use common::*;

fn bench_json(args: &[&str]) -> serde_json::Value {
    let mut a = vec!["onnx", "bench", "--json"];
    a.extend(args);
    let out = output(&a);
    assert!(
        out.status.success(),
        "dysample {a:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn json_report_is_consistent_with_the_model() {
    let net = root().join("tests/fixtures/onnx/net.onnx");
    let v = bench_json(&[
        s(&net),
        "--shape",
        "2,3,8,10",
        "--iters",
        "5",
        "--warmup",
        "1",
        "--profile-runs",
        "3",
    ]);
    assert_eq!(v["input_dims"], serde_json::json!([2, 3, 8, 10]));
    assert_eq!(v["output_dims"], serde_json::json!([2, 3, 32, 40]));
    assert_eq!(
        (v["threads"].as_u64(), v["iters"].as_u64()),
        (Some(2), Some(5))
    );
    let f = |k: &str| v[k].as_f64().unwrap();
    assert!(f("min_ms") <= f("p10_ms") && f("p10_ms") <= f("median_ms"));
    assert!(f("median_ms") <= f("p90_ms") && f("p90_ms") <= f("max_ms"));
    assert!(f("min_ms") > 0.0);
    let ops = v["op_types"].as_array().unwrap();
    let dys: Vec<_> = ops.iter().filter(|o| o["op_type"] == "DySample").collect();
    assert_eq!(dys.len(), 1, "{ops:?}");
    // net.onnx has two DySample nodes (dysample onnx info), both on the CPU EP as the custom op.
    assert_eq!(dys[0]["nodes"], 2);
    assert_eq!(dys[0]["provider"], "CPUExecutionProvider");
    assert!(dys[0]["ms_per_run"].as_f64().unwrap() > 0.0);
    let pct: f64 = ops.iter().map(|o| o["percent"].as_f64().unwrap()).sum();
    assert!((pct - 100.0).abs() < 1e-6, "{pct}");
    assert!(ops.iter().any(|o| o["op_type"] == "Conv"), "{ops:?}");

    // The same on an .npy input, in int8; no profile.
    let dir = tempfile::tempdir().unwrap();
    let x = ndarray::Array4::<f32>::from_elem((1, 3, 6, 6), 0.5);
    let xp = dir.path().join("x.npy");
    ndarray_npy::write_npy(&xp, &x).unwrap();
    let v = bench_json(&[
        s(&net),
        "--input",
        s(&xp),
        "--iters",
        "2",
        "--profile-runs",
        "0",
        "--dysample-precision",
        "int8",
    ]);
    assert_eq!(v["input_dims"], serde_json::json!([1, 3, 6, 6]));
    assert_eq!(v["dysample_precision"], "int8");
    assert!(v["op_types"].is_null());
}

#[test]
fn model_dir_gives_the_graph_and_input_shape() {
    let v = bench_json(&[
        "--model",
        s(&root().join("models/person-seg")),
        "--variant",
        "lowered",
        "--iters",
        "1",
        "--warmup",
        "0",
        "--profile-runs",
        "1",
    ]);
    assert_eq!(v["input_dims"], serde_json::json!([1, 3, 256, 256]));
    assert!(v["model"].as_str().unwrap().ends_with("model_lowered.onnx"));
    let ops = v["op_types"].as_array().unwrap();
    // The lowered graph has no custom op left, and GridSample in its place.
    assert!(ops.iter().all(|o| o["op_type"] != "DySample"), "{ops:?}");
    assert!(ops.iter().any(|o| o["op_type"] == "GridSample"), "{ops:?}");
}

#[test]
fn bad_flags_are_one_line_errors() {
    let net = root().join("tests/fixtures/onnx/net.onnx");
    for (args, needle) in [
        (vec![], "give the model"),
        (vec![s(&net)], "not all fixed: give --shape or --input"),
        (
            vec![s(&net), "--shape", "1,3,0,4"],
            "every dim must be >= 1",
        ),
        (
            vec![s(&net), "--shape", "1,3,8,8", "--threads", "0"],
            "--threads must be in 1..=256",
        ),
        (
            vec![s(&net), "--shape", "1,3,8,8", "--iters", "0"],
            "--iters must be in",
        ),
        (
            vec![s(&net), "--shape", "1,3,8,8", "--ep", "gpu"],
            "unknown",
        ),
    ] {
        let mut a = vec!["onnx", "bench"];
        a.extend(&args);
        let out = output(&a);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{a:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{a:?}: {err}");
        assert!(
            err.starts_with("error: ") && err.contains(needle),
            "{a:?}: {err}"
        );
    }
}

#[test]
fn bench_save_onnx_writes_the_layer_for_onnx_bench() {
    // `dysample bench --save-onnx DIR`: the benchmarked layer as a one-node model and its input;
    // `onnx bench` runs them (bound input and output) with the DySample node on the CPU EP, and
    // in int8 as QuantizeLinear -> int8 node -> DequantizeLinear.
    for (precision, q_nodes) in [("f32", false), ("int8", true)] {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("one");
        let out = output(&[
            "bench",
            "--channels",
            "8",
            "--height",
            "5",
            "--width",
            "6",
            "--groups",
            "2",
            "--precision",
            precision,
            "--threads",
            "1",
            "--iters",
            "1",
            "--warmup",
            "0",
            "--save-onnx",
            s(&d),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v = bench_json(&[
            s(&d.join("layer.onnx")),
            "--input",
            s(&d.join("input.npy")),
            "--iters",
            "2",
            "--profile-runs",
            "1",
        ]);
        assert_eq!(
            v["input_dims"],
            serde_json::json!([1, 8, 5, 6]),
            "{precision}"
        );
        assert_eq!(
            v["output_dims"],
            serde_json::json!([1, 8, 10, 12]),
            "{precision}"
        );
        assert_eq!(v["io_binding"], true, "{precision}");
        let ops = v["op_types"].as_array().unwrap();
        assert!(
            ops.iter()
                .any(|o| o["op_type"] == "DySample" && o["nodes"] == 1),
            "{ops:?}"
        );
        assert_eq!(
            ops.iter().any(|o| o["op_type"] == "QuantizeLinear"),
            q_nodes,
            "{precision}: {ops:?}"
        );
    }
    // The custom op takes NCHW only: an NHWC layer is refused before anything is written.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("nhwc");
    let out = output(&[
        "bench",
        "--layout",
        "nhwc",
        "--iters",
        "1",
        "--save-onnx",
        s(&d),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.starts_with("error: ") && err.contains("--save-onnx needs --layout nchw"),
        "{err}"
    );
    assert!(!d.exists());
}
