//! Regression tests of issue 12 (hardening): hostile inputs give one clear error line, never a
//! panic, abort, hang or unbounded allocation; nothing is loaded from the current directory;
//! outputs are replaced atomically.
//!
//! The ONNX Runtime tests need the library (>= 1.17) like tests/onnx_cli.rs: found through
//! python3, or ORT_DYLIB_PATH.

use dysample::onnx::graph::{self, proto};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

mod common;
use common::*;

/// Runs under a 4 GB address-space cap, like the probes.
fn capped(args: &[&str]) -> Output {
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg("ulimit -v 4000000 && exec \"$0\" \"$@\"")
        .arg(exe())
        .args(args)
        .env_remove("DYSAMPLE_LOG");
    run_limited(c, Duration::from_secs(60))
}

fn npy_with_header(dict: &str, data: &[u8]) -> Vec<u8> {
    let mut v = b"\x93NUMPY\x01\x00".to_vec();
    v.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    v.extend_from_slice(dict.as_bytes());
    v.extend_from_slice(data);
    v
}

fn write_npy(path: &Path, dims: &[usize], data: &[f32]) {
    std::fs::write(path, dysample::npy::encode_f32(dims, data)).unwrap();
}

fn layer_args<'a>(w: &'a str, x: &'a str, y: &'a str) -> Vec<&'a str> {
    vec![
        "run",
        "--weights",
        w,
        "--prefix",
        "decoder.stage3.up",
        "--scale",
        "2",
        "--style",
        "pl",
        "--groups",
        "2",
        "--input",
        x,
        "--output",
        y,
    ]
}

fn module_weights() -> PathBuf {
    fixtures().join("module/net.safetensors")
}

/// A valid input for the `decoder.stage3.up` layer of the module fixture.
fn module_input() -> PathBuf {
    fixtures().join("module/input.npy")
}

// ---------------------------------------------------------------- security

#[cfg(target_os = "linux")]
#[test]
fn no_library_or_python_is_loaded_from_the_current_directory() {
    let cwd = tempfile::tempdir().unwrap();
    let marker = cwd.path().join("PLANTED_CODE_RAN");
    // A library whose constructor proves it was loaded, planted where the old search looked:
    // a fake Python package (python puts the cwd first on sys.path) and the bare file name.
    let src = cwd.path().join("planted.c");
    std::fs::write(
        &src,
        format!(
            "#include <stdio.h>\n__attribute__((constructor)) static void planted(void) {{ FILE *f = fopen(\"{}\", \"w\"); if (f) fclose(f); }}\n",
            marker.display()
        ),
    )
    .unwrap();
    let capi = cwd.path().join("onnxruntime/capi");
    std::fs::create_dir_all(&capi).unwrap();
    std::fs::write(cwd.path().join("onnxruntime/__init__.py"), "").unwrap();
    let lib = capi.join("libonnxruntime.so.1.99.0");
    let built = Command::new("cc")
        .args(["-shared", "-fPIC", "-o", s(&lib), s(&src)])
        .status()
        .is_ok_and(|st| st.success());
    if !built {
        // No C compiler: a file that must not be dlopened still tells on itself in the error.
        std::fs::write(&lib, b"not a library").unwrap();
    }
    std::fs::copy(&lib, cwd.path().join("libonnxruntime.so")).unwrap();
    std::fs::copy(&lib, cwd.path().join("libonnxruntime.so.1")).unwrap();
    // A fake python3, reachable through an empty PATH entry (= the current directory).
    let py = cwd.path().join("python3");
    std::fs::write(&py, format!("#!/bin/sh\ntouch {}\n", marker.display())).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&py, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let out_path = cwd.path().join("y.npy");
    let path = format!(":{}", std::env::var("PATH").unwrap_or_default());
    let model = fx("layer_lp_static.onnx");
    let input = fx("layer_lp_static_input.npy");
    for env_python in [None, Some("python3")] {
        let mut c = bin();
        c.current_dir(cwd.path())
            .args(["onnx", "run", s(&model), "--input", s(&input), "--output"])
            .arg(&out_path)
            .env_remove("ORT_DYLIB_PATH")
            .env("PATH", &path)
            .env("LD_LIBRARY_PATH", "")
            .env("PYTHONPATH", cwd.path());
        if let Some(p) = env_python {
            c.env("DYSAMPLE_PYTHON", p);
        } else {
            c.env_remove("DYSAMPLE_PYTHON");
        }
        let out = run_limited(c, Duration::from_secs(60));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !marker.exists(),
            "code planted in the current directory ran (compiled: {built}); stderr: {err}"
        );
        let cwd_str = cwd.path().to_str().unwrap();
        // With ORT found elsewhere the run succeeds; without, the error must not list the cwd.
        assert!(
            out.status.success() || !err.contains(&format!("{cwd_str}/onnxruntime")),
            "the search looked in the current directory: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
    // Naming the planted library explicitly is the user's choice, and is honoured.
    if built {
        let mut c = bin();
        c.current_dir(cwd.path())
            .args(["onnx", "run", s(&model), "--input", s(&input), "--output"])
            .arg(&out_path)
            .args(["--ort-lib", "./libonnxruntime.so"]);
        let _ = run_limited(c, Duration::from_secs(60));
        assert!(
            marker.exists(),
            "an explicitly named library was not loaded"
        );
    }
}

/// `model` with the offset weight moved to external data at `location` (written to `data`).
fn with_external_weight(model: &Path, location: &str, data: Option<&Path>) -> proto::ModelProto {
    let mut m = graph::load_model(model).unwrap();
    let g = m.graph.as_mut().unwrap();
    let w = g
        .initializer
        .iter_mut()
        .find(|t| t.dims.len() == 4)
        .expect("a conv weight");
    if let Some(p) = data {
        std::fs::write(p, &w.raw_data).unwrap();
    }
    let len = w.raw_data.len();
    w.raw_data.clear();
    w.data_location = proto::tensor_proto::DataLocation::EXTERNAL.into();
    for (k, v) in [
        ("location", location.to_string()),
        ("length", len.to_string()),
    ] {
        let mut e = proto::StringStringEntryProto::new();
        e.key = k.into();
        e.value = v;
        w.external_data.push(e);
    }
    m
}

#[test]
fn external_data_resolves_next_to_the_model_and_never_outside() {
    let base = tempfile::tempdir().unwrap();
    let dir = base.path().join("models");
    std::fs::create_dir_all(&dir).unwrap();
    let elsewhere = base.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let (src, input) = (fx("layer_lp_static.onnx"), fx("layer_lp_static_input.npy"));
    let y = elsewhere.join("y.npy");

    // Legitimate: model.onnx + model.onnx.data side by side, run from another directory.
    let good = dir.join("model.onnx");
    let m = with_external_weight(&src, "model.onnx.data", Some(&dir.join("model.onnx.data")));
    graph::save_model(&m, &good).unwrap();
    let mut c = bin();
    c.current_dir(&elsewhere).args([
        "onnx",
        "run",
        s(&good),
        "--input",
        s(&input),
        "--output",
        s(&y),
    ]);
    let out = run_limited(c, Duration::from_secs(60));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want = dysample::npy::read_f32(&fx("layer_lp_static_expected.npy")).unwrap();
    let got = dysample::npy::read_f32(&y).unwrap();
    assert_eq!(got.dims, want.dims);
    let diff = got
        .data
        .iter()
        .zip(&want.data)
        .fold(0.0f32, |a, (g, w)| a.max((g - w).abs()));
    assert!(diff < 1e-4, "external-data model differs by {diff}");

    // Hostile: a reference that leaves the model's directory, with the "secret" planted both
    // beside the model's directory and in the caller's directory.
    std::fs::write(base.path().join("secret.bin"), vec![7u8; 4096]).unwrap();
    std::fs::write(elsewhere.join("secret.bin"), vec![7u8; 4096]).unwrap();
    for (loc, needle) in [
        ("../secret.bin", "leaves the model's directory"),
        ("/etc/passwd", "is absolute"),
        ("secret.bin", "secret.bin"), // only in the cwd, not next to the model: not found
    ] {
        let bad = dir.join("bad.onnx");
        graph::save_model(&with_external_weight(&src, loc, None), &bad).unwrap();
        let mut c = bin();
        c.current_dir(&elsewhere).args([
            "onnx",
            "run",
            s(&bad),
            "--input",
            s(&input),
            "--output",
            s(&y),
        ]);
        let out = run_limited(c, Duration::from_secs(60));
        check_err(&out, loc, &["bad.onnx", needle]);
    }
}

// ---------------------------------------------------------------- hangs and aborts

#[test]
fn hostile_npy_headers_fail_fast_without_allocating() {
    let tmp = tempfile::tempdir().unwrap();
    let y = tmp.path().join("y.npy");
    let w = module_weights();
    let nested = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': {}1{}, }}\n",
        "(".repeat(25),
        ")".repeat(25)
    );
    let mut big_header = b"\x93NUMPY\x02\x00".to_vec();
    big_header.extend_from_slice(&u32::MAX.to_le_bytes());
    big_header.extend_from_slice(&[b' '; 1000]);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("nested", npy_with_header(&nested, &[0; 1000]), "not a float32 .npy"),
        ("4 GiB header", big_header, "longer than the limit"),
        (
            "320 GB shape",
            npy_with_header(
                "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 8, 100000, 100000), }\n",
                &[0; 1000],
            ),
            "the file holds 1000",
        ),
        (
            "overflowing shape",
            npy_with_header(
                "{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 4, 1, 1), }\n",
                &[0; 16],
            ),
            "too large",
        ),
    ];
    for (what, bytes, needle) in cases {
        let x = tmp.path().join(format!("{}.npy", what.replace(' ', "_")));
        std::fs::write(&x, bytes).unwrap();
        let t0 = Instant::now();
        let out = capped(&layer_args(s(&w), s(&x), s(&y)));
        check_err(&out, what, &[needle, s(&x)]);
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "{what} took {:?}",
            t0.elapsed()
        );
        let out = capped(&[
            "onnx",
            "run",
            s(&fx("layer_lp_static.onnx")),
            "--input",
            s(&x),
            "--output",
            s(&y),
        ]);
        check_err(&out, what, &[needle]);
    }
}

#[test]
fn huge_sizes_are_refused_before_allocating() {
    let cases: &[&[&str]] = &[
        &[
            "bench",
            "--channels",
            "2305843009213693952",
            "--groups",
            "1",
        ],
        &["demo", "--channels", "2305843009213693952", "--groups", "1"],
        &["bench", "--channels", "8", "--batch", "4611686018427387904"],
        &["bench", "--channels", "8", "--width", "4611686018427387904"],
        &[
            "demo",
            "--channels",
            "8",
            "--height",
            "1000000",
            "--width",
            "1000000",
        ],
        &[
            "bench",
            "--channels",
            "8",
            "--groups",
            "1",
            "--iters",
            "18446744073709551615",
        ],
        &[
            "bench",
            "--channels",
            "8",
            "--groups",
            "1",
            "--warmup",
            "18446744073709551615",
        ],
        &[
            "demo",
            "--channels",
            "8",
            "--groups",
            "1",
            "--threads",
            "100000",
        ],
        &[
            "demo",
            "--channels",
            "8",
            "--groups",
            "1",
            "--threads",
            "257",
        ],
    ];
    for args in cases {
        let t0 = Instant::now();
        let out = capped(args);
        check_err(&out, &format!("{args:?}"), &[]);
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "{args:?} took {:?}",
            t0.elapsed()
        );
    }
    // A scale-16 layer turning a 23 MB input into a 5.9 GB output, under a 4 GB cap: a clear
    // allocation error, not an abort.
    let out = capped(&[
        "demo",
        "--channels",
        "16",
        "--groups",
        "1",
        "--scale",
        "16",
        "--height",
        "600",
        "--width",
        "600",
    ]);
    check_err(&out, "scale 16", &["cannot allocate", "5.9 GB", "output"]);
}

#[test]
fn special_files_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let y = tmp.path().join("y.npy");
    let x = module_input();
    let w = module_weights();
    let mut a = layer_args("/dev/zero", s(&x), s(&y));
    fails(&a, &["/dev/zero", "regular file"]);
    a = layer_args(s(&w), "/dev/zero", s(&y));
    fails(&a, &["/dev/zero", "regular file"]);
    let mut q = layer_args(s(&w), s(&x), s(&y));
    q.extend(["--precision", "int8", "--quant", "/dev/zero"]);
    fails(&q, &["/dev/zero", "regular file"]);
    for sub in ["info", "lower"] {
        let mut v = vec!["onnx", sub, "/dev/zero"];
        if sub == "lower" {
            v.push(s(&y));
        }
        fails(&v, &["/dev/zero", "regular file"]);
    }
    fails(
        &[
            "onnx",
            "run",
            "/dev/zero",
            "--input",
            s(&x),
            "--output",
            s(&y),
        ],
        &["/dev/zero", "regular file"],
    );
}

/// A model with `n` DySample nodes reading the same input, summed into one output.
fn many_node_model(n: usize) -> proto::ModelProto {
    let mut m = graph::load_model(&fx("layer_lp_static.onnx")).unwrap();
    let g = m.graph.as_mut().unwrap();
    let node = g.node[0].clone();
    let out_name = node.output[0].clone();
    g.node.clear();
    let mut sum = proto::NodeProto::new();
    sum.op_type = "Sum".into();
    sum.name = "sum".into();
    sum.output = vec![out_name];
    for i in 0..n {
        let mut d = node.clone();
        d.name = format!("dysample_{i}");
        d.output = vec![format!("y{i}")];
        sum.input.push(format!("y{i}"));
        g.node.push(d);
    }
    g.node.push(sum);
    m
}

#[test]
fn a_thousand_dysample_nodes_share_one_pool() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("many.onnx");
    graph::save_model(&many_node_model(1000), &model).unwrap();
    let y = tmp.path().join("y.npy");
    // 1000 private pools of 4 threads would need 4000 thread stacks (8 GB of address space).
    let out = capped(&[
        "onnx",
        "run",
        s(&model),
        "--input",
        s(&fx("layer_lp_static_input.npy")),
        "--output",
        s(&y),
        "--threads",
        "4",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let one = dysample::npy::read_f32(&fx("layer_lp_static_expected.npy")).unwrap();
    let got = dysample::npy::read_f32(&y).unwrap();
    let rel = got
        .data
        .iter()
        .zip(&one.data)
        .fold(0.0f32, |a, (g, w)| a.max((g - 1000.0 * w).abs()))
        / one.data.iter().fold(0.0f32, |a, v| a.max(1000.0 * v.abs()));
    assert!(rel < 1e-4, "sum of 1000 nodes is off by {rel}");
    fails(
        &[
            "onnx",
            "run",
            s(&model),
            "--input",
            s(&fx("layer_lp_static_input.npy")),
            "--output",
            s(&y),
            "--threads",
            "100000",
        ],
        &["--threads"],
    );
}

// ---------------------------------------------------------------- silent garbage

#[test]
fn non_finite_and_f16_overflow_inputs_are_rejected_at_every_precision() {
    let tmp = tempfile::tempdir().unwrap();
    let y = tmp.path().join("y.npy");
    let w = module_weights();
    let good = dysample::npy::read_f32(&module_input()).unwrap();
    for (tag, bad) in [("nan", f32::NAN), ("inf", f32::INFINITY)] {
        let mut d = good.data.clone();
        d[3] = bad;
        d[10] = bad;
        let x = tmp.path().join(format!("{tag}.npy"));
        write_npy(&x, &good.dims, &d);
        for p in ["f32", "f16", "int8"] {
            let mut a = layer_args(s(&w), s(&x), s(&y));
            a.extend(["--precision", p]);
            fails(&a, &["2 non-finite", "index 3", &format!("{tag}.npy")]);
        }
        // With given parameters (no calibration) too.
        let qp = tmp.path().join("q.json");
        let good_x = module_input();
        let mut a = layer_args(s(&w), s(&good_x), s(&y));
        a.extend(["--precision", "int8", "--dump-quant", s(&qp)]);
        ok(&a);
        let mut q = layer_args(s(&w), s(&x), s(&y));
        q.extend(["--precision", "int8", "--quant", s(&qp)]);
        fails(&q, &["2 non-finite", &format!("{tag}.npy")]);
    }
    let mut d = good.data.clone();
    d[5] = 1e38;
    let x = tmp.path().join("big.npy");
    write_npy(&x, &good.dims, &d);
    let mut a = layer_args(s(&w), s(&x), s(&y));
    a.extend(["--precision", "f16"]);
    fails(&a, &["float16 range", "1 value"]);
    // f32 computes it fine.
    ok(&layer_args(s(&w), s(&x), s(&y)));
    // The ONNX path applies the same policy.
    let f = dysample::npy::read_f32(&fx("layer_lp_static_input.npy")).unwrap();
    let mut d = f.data.clone();
    d[0] = f32::NAN;
    let xn = tmp.path().join("onnx_nan.npy");
    write_npy(&xn, &f.dims, &d);
    fails(
        &[
            "onnx",
            "run",
            s(&fx("layer_lp_static.onnx")),
            "--input",
            s(&xn),
            "--output",
            s(&y),
        ],
        &["non-finite", "onnx_nan.npy"],
    );
    let f = dysample::npy::read_f32(&fx("layer_f16_input.npy")).unwrap();
    let mut d = f.data.clone();
    d[0] = 1e38;
    let xb = tmp.path().join("onnx_big.npy");
    write_npy(&xb, &f.dims, &d);
    fails(
        &[
            "onnx",
            "run",
            s(&fx("layer_f16.onnx")),
            "--input",
            s(&xb),
            "--output",
            s(&y),
        ],
        &["float16 range"],
    );
}

#[test]
fn quant_json_is_strict_and_saturation_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let y = tmp.path().join("y.npy");
    let (w, x) = (module_weights(), module_input());
    let dump = tmp.path().join("q.json");
    let mut a = layer_args(s(&w), s(&x), s(&y));
    a.extend(["--precision", "int8", "--dump-quant", s(&dump)]);
    ok(&a);
    let text = std::fs::read_to_string(&dump).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    // A typo'd key is an error, not silently ignored.
    v["offset_weight_scale"] = serde_json::json!([1.0]);
    let typo = tmp.path().join("typo.json");
    std::fs::write(&typo, v.to_string()).unwrap();
    let mut a = layer_args(s(&w), s(&x), s(&y));
    a.extend(["--precision", "int8", "--quant", s(&typo)]);
    fails(&a, &["typo.json", "offset_weight_scale"]);
    // An input scale far below the data's range: a warning with the saturated fraction.
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["input"]["scale"] = serde_json::json!(1e-4);
    let small = tmp.path().join("small.json");
    std::fs::write(&small, v.to_string()).unwrap();
    let mut a = layer_args(s(&w), s(&x), s(&y));
    a.extend(["--precision", "int8", "--quant", s(&small)]);
    let out = ok(&a);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("warning:") && err.contains("saturate") && err.contains('%'),
        "{err}"
    );
    // --symmetric does nothing with --quant: an error instead of silently ignored.
    let mut a = layer_args(s(&w), s(&x), s(&y));
    a.extend(["--precision", "int8", "--quant", s(&dump), "--symmetric"]);
    fails(&a, &["--symmetric", "--quant"]);
}

fn tweak(name: &str, f: impl FnOnce(&mut proto::ModelProto)) -> proto::ModelProto {
    let mut m = graph::load_model(&fx(name)).unwrap();
    f(&mut m);
    m
}

#[test]
fn malformed_onnx_graphs_are_refused_by_info_lower_and_fuse() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out.onnx");
    let cases: Vec<(&str, proto::ModelProto, &str)> = vec![
        (
            "f16 initializer in an f32 graph",
            tweak("layer_lp_static.onnx", |m| {
                for t in &mut m.graph.as_mut().unwrap().initializer {
                    let v = graph::tensor_f32(t).unwrap();
                    t.raw_data = v
                        .iter()
                        .flat_map(|x| half::f16::from_f32(*x).to_le_bytes())
                        .collect();
                    t.data_type = proto::tensor_proto::DataType::FLOAT16 as i32;
                }
            }),
            "share one element type",
        ),
        (
            "cycle",
            tweak("net.onnx", |m| {
                let g = m.graph.as_mut().unwrap();
                let last_out = g.node.last().unwrap().output[0].clone();
                let first_in = g.node[0].input[0].clone();
                // The first node now reads the last node's output.
                for inp in g.node[0].input.iter_mut() {
                    if *inp == first_in {
                        *inp = last_out.clone();
                    }
                }
            }),
            "cycle",
        ),
        (
            "duplicate output name",
            tweak("net.onnx", |m| {
                let g = m.graph.as_mut().unwrap();
                let o = g.node[0].output[0].clone();
                g.node[1].output[0] = o;
            }),
            "produced twice",
        ),
        (
            "duplicate graph output",
            tweak("layer_lp_static.onnx", |m| {
                let g = m.graph.as_mut().unwrap();
                let o = g.output[0].clone();
                g.output.push(o);
            }),
            "listed twice",
        ),
        (
            "duplicate attribute",
            tweak("layer_lp_static.onnx", |m| {
                let n = &mut m.graph.as_mut().unwrap().node[0];
                let mut a = n.attribute[0].clone();
                a.i += 1;
                n.attribute.push(a);
            }),
            "twice",
        ),
        (
            "raw data not a multiple of the element size",
            tweak("layer_lp_static.onnx", |m| {
                let t = m
                    .graph
                    .as_mut()
                    .unwrap()
                    .initializer
                    .iter_mut()
                    .find(|t| t.dims.len() == 1)
                    .unwrap();
                t.raw_data.extend_from_slice(&[0, 0]);
            }),
            "bytes of raw data",
        ),
        (
            "2^59 channels",
            tweak("layer_lp_static.onnx", |m| {
                let t = m
                    .graph
                    .as_mut()
                    .unwrap()
                    .initializer
                    .iter_mut()
                    .find(|t| t.dims.len() == 4)
                    .unwrap();
                // 32 × 2^59 wraps to 0 values in 64 bits: the empty data used to "match".
                t.dims[1] = 1 << 59;
                t.raw_data.clear();
                t.float_data.clear();
            }),
            "channels",
        ),
    ];
    for (what, model, needle) in cases {
        let p = tmp.path().join("bad.onnx");
        graph::save_model(&model, &p).unwrap();
        // info refuses a broken graph, or lists the node as invalid, never as valid.
        let mut c = bin();
        c.args(["onnx", "info", s(&p), "--json"]);
        let info = run_limited(c, Duration::from_secs(60));
        if info.status.success() {
            let v: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
            let nodes = v["dysample"].as_array().unwrap();
            assert!(!nodes.is_empty(), "{what}");
            for n in nodes {
                let e = n["error"].as_str();
                assert!(
                    e.is_some_and(|e| e.contains(needle)),
                    "{what}: info says {n}"
                );
            }
        } else {
            check_err(&info, what, &["bad.onnx", needle]);
        }
        fails(&["onnx", "lower", s(&p), s(&out)], &["bad.onnx", needle]);
        fails(
            &["onnx", "fuse", s(&p), s(&out), "--no-verify"],
            &["bad.onnx", needle],
        );
        assert!(!out.exists(), "{what}: an output was written");
    }
}

#[test]
fn an_input_of_unknown_rank_accepts_a_4d_tensor() {
    let tmp = tempfile::tempdir().unwrap();
    let m = tweak("layer_lp_static.onnx", |m| {
        let g = m.graph.as_mut().unwrap();
        let t = g.input[0].type_.as_mut().unwrap();
        match t.value.as_mut().unwrap() {
            proto::type_proto::Value::TensorType(tt) => tt.shape.clear(),
            _ => unreachable!(),
        }
    });
    let p = tmp.path().join("any_rank.onnx");
    graph::save_model(&m, &p).unwrap();
    let y = tmp.path().join("y.npy");
    ok(&[
        "onnx",
        "run",
        s(&p),
        "--input",
        s(&fx("layer_lp_static_input.npy")),
        "--output",
        s(&y),
    ]);
    let want = dysample::npy::read_f32(&fx("layer_lp_static_expected.npy")).unwrap();
    assert_eq!(dysample::npy::read_f32(&y).unwrap().dims, want.dims);
}

// ---------------------------------------------------------------- lost data

/// `path` holds `old` and shares its inode with a second name: writing in place (truncate +
/// write) would change the second name too, an atomic rename does not.
fn linked_old_file(path: &Path, old: &[u8]) -> PathBuf {
    std::fs::write(path, old).unwrap();
    let link = path.with_extension("link");
    std::fs::hard_link(path, &link).unwrap();
    link
}

fn no_temp_files(dir: &Path) {
    let left: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect();
    assert!(left.is_empty(), "temporary files left behind: {left:?}");
}

#[test]
fn outputs_are_replaced_atomically_and_side_files_last() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let (w, x) = (module_weights(), module_input());
    // run: the output is replaced by a rename, never rewritten in place.
    let y = d.join("y.npy");
    let link = linked_old_file(&y, b"old output");
    ok(&layer_args(s(&w), s(&x), s(&y)));
    assert_eq!(
        std::fs::read(&link).unwrap(),
        b"old output",
        "run rewrote the old file in place"
    );
    assert!(dysample::npy::read_f32(&y).is_ok());
    // --dump-quant is written after the output: a run whose output cannot be written leaves it.
    let q = d.join("q.json");
    std::fs::write(&q, b"old params").unwrap();
    let mut a = layer_args(s(&w), s(&x), "/nonexistent-dir/y.npy");
    a.extend(["--precision", "int8", "--dump-quant", s(&q)]);
    fails(&a, &["/nonexistent-dir/y.npy"]);
    assert_eq!(
        std::fs::read(&q).unwrap(),
        b"old params",
        "--dump-quant written before the output"
    );
    // A failed rename (the target is a directory) leaves no temporary file.
    let dir_target = d.join("is_a_dir");
    std::fs::create_dir(&dir_target).unwrap();
    fails(&layer_args(s(&w), s(&x), s(&dir_target)), &["is_a_dir"]);
    no_temp_files(d);

    // onnx lower / fuse / run.
    let out = d.join("m.onnx");
    let link = linked_old_file(&out, b"old model");
    ok(&["onnx", "lower", s(&fx("layer_lp_static.onnx")), s(&out)]);
    assert_eq!(
        std::fs::read(&link).unwrap(),
        b"old model",
        "lower rewrote in place"
    );
    std::fs::remove_file(&link).unwrap();
    let link = linked_old_file(&out, b"old model");
    ok(&[
        "onnx",
        "fuse",
        s(&fx("layer_lp_static_plain_opset16.onnx")),
        s(&out),
        "--no-verify",
    ]);
    assert_eq!(
        std::fs::read(&link).unwrap(),
        b"old model",
        "fuse rewrote in place"
    );
    let oy = d.join("oy.npy");
    let link = linked_old_file(&oy, b"old output");
    ok(&[
        "onnx",
        "run",
        s(&fx("layer_lp_static.onnx")),
        "--input",
        s(&fx("layer_lp_static_input.npy")),
        "--output",
        s(&oy),
    ]);
    assert_eq!(
        std::fs::read(&link).unwrap(),
        b"old output",
        "onnx run rewrote in place"
    );
    no_temp_files(d);
}

/// ORT profile files (or our private profile directories) in `dir`. (ONNX Runtime may also
/// leave a `.ses` session-id file of its own, unrelated to profiling.)
fn profiles_left(dir: &Path) {
    let left: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("profile") || n.ends_with(".json"))
        .collect();
    assert!(left.is_empty(), "profile files left in TMPDIR: {left:?}");
}

#[test]
fn placement_profiles_are_removed_when_a_run_fails() {
    let tmp = tempfile::tempdir().unwrap();
    let tmpdir = tmp.path().join("tmp");
    std::fs::create_dir(&tmpdir).unwrap();
    // The wrong channel count fails after the session (and its profiler) started.
    let x = tmp.path().join("x.npy");
    write_npy(&x, &[1, 8, 6, 8], &[0.5; 8 * 6 * 8]);
    let y = tmp.path().join("y.npy");
    let mut c = bin();
    c.env("TMPDIR", &tmpdir).args([
        "onnx",
        "run",
        s(&fx("layer_lp_static.onnx")),
        "--input",
        s(&x),
        "--output",
        s(&y),
        "--placement",
    ]);
    let out = run_limited(c, Duration::from_secs(60));
    check_err(&out, "placement", &["input"]);
    profiles_left(&tmpdir);
    // And a successful run leaves nothing either.
    let mut c = bin();
    c.env("TMPDIR", &tmpdir).args([
        "onnx",
        "run",
        s(&fx("layer_lp_static.onnx")),
        "--input",
        s(&fx("layer_lp_static_input.npy")),
        "--output",
        s(&y),
        "--placement",
    ]);
    let out = run_limited(c, Duration::from_secs(60));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    profiles_left(&tmpdir);
}
