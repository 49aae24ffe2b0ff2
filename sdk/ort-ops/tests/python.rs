//! Runs tests/python/test_ort_ops.py: the built `libdysample_ort_ops.so` loaded by the Python
//! `onnxruntime` wheel with `SessionOptions.register_custom_ops_library`, checked against the
//! committed PyTorch-made fixtures (f32, f16, whole network) and against int8 / QDQ cases this
//! test writes with the SDK's own bytes as the expected output.
//!
//! Needs python3 with numpy and onnxruntime >= 1.17 (`DYSAMPLE_PYTHON` picks the interpreter);
//! tools/setup.sh installs them.

use dysample::onnx::graph::{self, LayerIo};
use dysample::{Affine, DySample, DySampleConfig, Layout, QuantParams, Style, Symmetry};
use ndarray::ArrayD;
use rand::{Rng, SeedableRng};
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The cdylib cargo built with this test: `cargo test` leaves it in the deps directory beside
/// the test binary (only `cargo build` copies it up to the profile directory).
fn library() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap();
    let name = format!(
        "{}dysample_ort_ops{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    );
    let candidates = [deps.join(&name), deps.parent().unwrap().join(&name)];
    candidates
        .iter()
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "{} not built (cargo builds the cdylib with this test)",
                candidates[0].display()
            )
        })
        .clone()
}

fn input(n: usize, seed: u64) -> Vec<f32> {
    let mut r = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n)
        .map(|i| (i as f32 * 0.37).sin() * 2.0 + r.gen_range(-0.5..0.5))
        .collect()
}

/// x moved to the lower or upper quarter of its int8 step: no rounding ties, so ORT's
/// QuantizeLinear (half to even) and the SDK (half away from zero) quantize alike.
fn off_tie(x: &[f32], a: Affine) -> Vec<f32> {
    x.iter()
        .map(|&v| {
            let t = v / a.scale;
            let k = t.floor();
            (k + if t - k < 0.5 { 0.25 } else { 0.75 }) * a.scale
        })
        .collect()
}

fn npy<T: ndarray_npy::WritableElement>(path: &Path, dims: &[usize], v: Vec<T>) {
    let a = ArrayD::from_shape_vec(dims.to_vec(), v).unwrap();
    ndarray_npy::write_npy(path, &a).unwrap();
}

fn write_cases(dir: &Path) -> usize {
    let configs = [
        (Style::Lp, 2, 4, false, 16),
        (Style::Lp, 3, 2, true, 8),
        (Style::Pl, 2, 2, false, 8),
        (Style::Pl, 2, 1, true, 12),
    ];
    let mut cases = Vec::new();
    for (i, &(style, scale, groups, dyscope, c)) in configs.iter().enumerate() {
        let cfg = DySampleConfig::new(c, scale, style, groups, dyscope).unwrap();
        let layer = DySample::random(cfg, 40 + i as u64).unwrap();
        let dims = [2, c, 5, 6];
        let odims = layer.output_dims(dims, Layout::Nchw).unwrap();
        let x = input(dims.iter().product(), i as u64);
        let asym = QuantParams::calibrate_minmax(cfg, [&x[..]], Symmetry::Asymmetric).unwrap();
        let sym = QuantParams::calibrate_minmax(cfg, [&x[..]], Symmetry::Symmetric).unwrap();
        let mut given = asym.clone();
        let o = cfg.conv_out_channels();
        given.offset_weight_scales = Some((0..o).map(|k| 0.004 + 0.0003 * k as f32).collect());
        if dyscope {
            given.scope_weight_scales = Some((0..o).map(|k| 0.005 + 0.0002 * k as f32).collect());
        }
        for (pname, p) in [("asym", asym), ("sym", sym), ("given", given)] {
            let q = layer.quantize(&p).unwrap();
            let name = format!("{i}_{cfg}_{pname}").replace([' ', '='], "_");
            // int8 node alone.
            let mut xq = vec![0i8; x.len()];
            p.input.quantize_slice(&x, &mut xq);
            let mut yq = vec![0i8; odims.iter().product()];
            q.forward_slice(&xq, dims, Layout::Nchw, &mut yq).unwrap();
            let model = format!("{name}_int8.onnx");
            graph::save_model(
                &graph::layer_model(&cfg, layer.weights(), &LayerIo::Int8(p.clone())),
                &dir.join(&model),
            )
            .unwrap();
            npy(&dir.join(format!("{name}_xq.npy")), &dims, xq);
            npy(&dir.join(format!("{name}_yq.npy")), &odims, yq);
            cases.push(
                serde_json::json!({"name": name, "kind": "int8", "model": model,
                "input": format!("{name}_xq.npy"), "expected": format!("{name}_yq.npy"),
                "threads": 1 + i % 2}),
            );
            // QDQ sandwich, f32 in and out.
            let xo = off_tie(&x, p.input);
            let mut y = vec![0f32; odims.iter().product()];
            q.forward_f32(&xo, dims, Layout::Nchw, &mut y).unwrap();
            let model = format!("{name}_qdq.onnx");
            graph::save_model(
                &graph::layer_model(&cfg, layer.weights(), &LayerIo::Qdq(p.clone())),
                &dir.join(&model),
            )
            .unwrap();
            npy(&dir.join(format!("{name}_x.npy")), &dims, xo);
            npy(&dir.join(format!("{name}_y.npy")), &odims, y);
            cases.push(
                serde_json::json!({"name": name, "kind": "qdq", "model": model,
                "input": format!("{name}_x.npy"), "expected": format!("{name}_y.npy")}),
            );
        }
    }
    // Malformed int8 nodes: refused at session creation, naming node and attribute.
    let cfg = DySampleConfig::new(8, 2, Style::Lp, 2, false).unwrap();
    let layer = DySample::random(cfg, 9).unwrap();
    let ok = QuantParams::new(
        cfg,
        Affine {
            scale: 0.05,
            zero_point: 0,
        },
    );
    let mut bad = Vec::new();
    let mut add = |file: &str, edit: &dyn Fn(&mut graph::proto::NodeProto), needles: &[&str]| {
        let mut m = graph::layer_model(&cfg, layer.weights(), &LayerIo::Int8(ok.clone()));
        let n = &mut m.graph.as_mut().unwrap().node[0];
        edit(n);
        graph::save_model(&m, &dir.join(file)).unwrap();
        bad.push(serde_json::json!({"model": file, "needles": needles}));
    };
    add(
        "bad_no_scale.onnx",
        &|n| n.attribute.retain(|a| a.name != "x_scale"),
        &["DySample node 'dysample'", "'x_scale'", "missing"],
    );
    add(
        "bad_zero_point.onnx",
        &|n| {
            n.attribute
                .iter_mut()
                .filter(|a| a.name == "x_zero_point")
                .for_each(|a| a.i = -300)
        },
        &[
            "DySample node 'dysample'",
            "'x_zero_point' must be in [-128, 127], got -300",
        ],
    );
    let mut wrong_len = ok.clone();
    wrong_len.offset_weight_scales = Some(vec![0.01; 3]);
    let mut scope_no_dyscope = ok.clone();
    scope_no_dyscope.scope_weight_scales = Some(vec![0.01; cfg.conv_out_channels()]);
    for (file, p, needle) in [
        (
            "bad_scale_len.onnx",
            wrong_len,
            "'offset_weight_scales' has 3 values",
        ),
        (
            "bad_scope_scales.onnx",
            scope_no_dyscope,
            "'scope_weight_scales' is given but the node has dyscope=0",
        ),
    ] {
        let m = graph::layer_model(&cfg, layer.weights(), &LayerIo::Int8(p));
        graph::save_model(&m, &dir.join(file)).unwrap();
        bad.push(
            serde_json::json!({"model": file, "needles": ["DySample node 'dysample'", needle]}),
        );
    }
    // Models with the channel dim left open, so a wrong one reaches the kernel at run time.
    let mut open = Vec::new();
    for (kind, io) in [("f32", LayerIo::F32), ("int8", LayerIo::Int8(ok.clone()))] {
        let mut m = graph::layer_model(&cfg, layer.weights(), &io);
        use graph::proto::tensor_shape_proto::dimension::Value;
        let g = m.graph.as_mut().unwrap();
        let t = match g.input[0].type_.as_mut().unwrap().value.as_mut().unwrap() {
            graph::proto::type_proto::Value::TensorType(t) => t,
            _ => unreachable!(),
        };
        t.shape.as_mut().unwrap().dim[1].value = Some(Value::DimParam("channels".into()));
        let file = format!("open_channels_{kind}.onnx");
        graph::save_model(&m, &dir.join(&file)).unwrap();
        open.push(serde_json::json!({"model": file, "kind": kind, "channels": cfg.channels}));
    }
    let n = cases.len();
    std::fs::write(
        dir.join("cases.json"),
        serde_json::to_string_pretty(
            &serde_json::json!({"cases": cases, "bad": bad, "open_channels": open}),
        )
        .unwrap(),
    )
    .unwrap();
    n
}

#[test]
fn python_onnxruntime_loads_the_library_and_matches_the_sdk() {
    let lib = library();
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(write_cases(dir.path()), 24);
    let python = std::env::var("DYSAMPLE_PYTHON").unwrap_or_else(|_| "python3".into());
    let out = Command::new(&python)
        .arg(repo().join("tests/python/test_ort_ops.py"))
        .arg("--lib")
        .arg(&lib)
        .arg("--fixtures")
        .arg(repo().join("tests/fixtures/onnx"))
        .arg("--cases")
        .arg(dir.path())
        // The pool size the script's sessions get; also exercises the variable.
        .env(dysample_ort_ops::THREADS_ENV, "2")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python} (set DYSAMPLE_PYTHON): {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "tests/python/test_ort_ops.py failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    // Every case ran (the script prints one `ok` line per check).
    let oks = stdout.lines().filter(|l| l.starts_with("ok ")).count();
    assert!(oks >= 24 + 10, "only {oks} checks ran:\n{stdout}");
    assert!(stdout.contains("all checks passed"), "{stdout}");
}

/// A bad pool size in the environment is a registration error from Python, one line.
#[test]
fn bad_thread_variable_is_a_registration_error() {
    let lib = library();
    let python = std::env::var("DYSAMPLE_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = format!(
        "import onnxruntime as ort\nso = ort.SessionOptions()\ntry:\n    so.register_custom_ops_library({:?})\n    print('REGISTERED')\nexcept Exception as e:\n    print('ERROR', e)\n",
        lib.to_str().unwrap()
    );
    let out = Command::new(&python)
        .args(["-c", &script])
        .env(dysample_ort_ops::THREADS_ENV, "0")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.starts_with("ERROR")
            && stdout
                .contains("DYSAMPLE_ORT_OPS_THREADS=\"0\": expected a thread count in 1..=256"),
        "{stdout}"
    );
}
