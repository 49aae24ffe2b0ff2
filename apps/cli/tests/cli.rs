//! End-to-end tests of the `dysample` binary: real checkpoints, and every bad-input path.

use ndarray::{ArrayD, IxDyn};
use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;
use std::path::{Path, PathBuf};

mod common;
use common::*;

fn args(v: &[String]) -> Vec<&str> {
    v.iter().map(|a| a.as_str()).collect()
}

fn max_rel_diff(a: &ArrayD<f32>, b: &ArrayD<f32>) -> f32 {
    assert_eq!(a.shape(), b.shape());
    let m = b.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    a.iter()
        .zip(b.iter())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
        / m
}

fn read(p: &Path) -> ArrayD<f32> {
    ndarray_npy::read_npy(p).unwrap()
}

#[test]
fn runs_layers_of_a_real_nested_torch_module() {
    let dir = tempfile::tempdir().unwrap();
    let w = module().join("net.safetensors");
    let x = module().join("input.npy");
    for (prefix, args, expected) in [
        (
            "decoder.stage2.up",
            vec![
                "--scale",
                "2",
                "--style",
                "lp",
                "--groups",
                "4",
                "--dyscope",
            ],
            "stage2_up_output.npy",
        ),
        (
            "decoder.stage3.up.",
            vec!["--scale", "2", "--style", "pl", "--groups", "2"],
            "stage3_up_output.npy",
        ),
    ] {
        for backend in ["scalar", "auto"] {
            let y = dir.path().join(format!("{backend}.npy"));
            let mut a = vec![
                "run",
                "--weights",
                s(&w),
                "--prefix",
                prefix,
                "--input",
                s(&x),
                "--output",
                s(&y),
                "--backend",
                backend,
            ];
            a.extend(args.iter());
            ok(&a);
            let d = max_rel_diff(&read(&y), &read(&module().join(expected)));
            assert!(d <= 1e-5, "{prefix} on {backend}: relative error {d}");
        }
    }
    // Half-precision checkpoints are converted on load.
    for f in ["net_f16.safetensors", "net_bf16.safetensors"] {
        let y = dir.path().join("h.npy");
        ok(&[
            "run",
            "--weights",
            s(&module().join(f)),
            "--prefix",
            "decoder.stage2.up",
            "--scale",
            "2",
            "--groups",
            "4",
            "--dyscope",
            "--input",
            s(&x),
            "--output",
            s(&y),
        ]);
        let d = max_rel_diff(&read(&y), &read(&module().join("stage2_up_output.npy")));
        assert!(d < 0.05, "{f}: relative error {d}");
    }
}

#[test]
fn every_precision_runs_and_int8_params_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let w = module().join("net.safetensors");
    let x = module().join("input.npy");
    let base = [
        "run",
        "--weights",
        s(&w),
        "--prefix",
        "decoder.stage2.up",
        "--scale",
        "2",
        "--groups",
        "4",
        "--dyscope",
        "--input",
        s(&x),
    ];
    let want = read(&module().join("stage2_up_output.npy"));
    let y16 = dir.path().join("f16.npy");
    ok(&[&base[..], &["--output", s(&y16), "--precision", "f16"]].concat());
    assert!(max_rel_diff(&read(&y16), &want) < 5e-3);
    let (y8, q) = (dir.path().join("i8.npy"), dir.path().join("q.json"));
    ok(&[
        &base[..],
        &[
            "--output",
            s(&y8),
            "--precision",
            "int8",
            "--dump-quant",
            s(&q),
        ],
    ]
    .concat());
    assert!(max_rel_diff(&read(&y8), &want) < 0.1);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&q).unwrap()).unwrap();
    assert_eq!(json["version"], 1);
    let y8b = dir.path().join("i8b.npy");
    ok(&[
        &base[..],
        &[
            "--output",
            s(&y8b),
            "--precision",
            "int8",
            "--quant",
            s(&q),
            "--backend",
            "scalar",
        ],
    ]
    .concat());
    assert_eq!(
        read(&y8),
        read(&y8b),
        "same parameters must give identical int8 results"
    );
}

/// Writes a copy of the nested-module checkpoint with `edit` applied to its tensors.
fn edited_checkpoint(
    dir: &Path,
    name: &str,
    edit: impl Fn(&mut Vec<(String, Dtype, Vec<usize>, Vec<u8>)>),
) -> PathBuf {
    let bytes = std::fs::read(module().join("net.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = st
        .tensors()
        .into_iter()
        .map(|(n, t)| (n, t.dtype(), t.shape().to_vec(), t.data().to_vec()))
        .collect();
    edit(&mut tensors);
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    let p = dir.join(name);
    safetensors::serialize_to_file(views, &None, &p).unwrap();
    p
}

#[test]
fn bad_inputs_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let w = module().join("net.safetensors");
    let x = module().join("input.npy");
    let y = d.join("y.npy");
    let run = |weights: &Path, prefix: &str, extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = [
            "run",
            "--weights",
            s(weights),
            "--prefix",
            prefix,
            "--input",
            s(&x),
            "--output",
            s(&y),
        ]
        .iter()
        .map(|a| a.to_string())
        .collect();
        // Defaults for the stage2 layer, unless the case overrides them.
        for (flag, val) in [
            ("--scale", Some("2")),
            ("--groups", Some("4")),
            ("--dyscope", None),
        ] {
            let overridden =
                extra.contains(&flag) || (flag == "--dyscope" && extra.contains(&"--style"));
            if !overridden {
                v.push(flag.to_string());
                v.extend(val.map(str::to_string));
            }
        }
        v.extend(extra.iter().map(|a| a.to_string()));
        v
    };

    // Unknown prefix: the message lists the layers the file does hold.
    fails(
        &args(&run(&w, "decoder.nope", &[])),
        &["decoder.nope", "decoder.stage2.up", "decoder.stage3.up"],
    );
    // Missing tensor.
    let no_bias = edited_checkpoint(d, "nobias.safetensors", |t| {
        t.retain(|(n, ..)| n != "decoder.stage2.up.offset.bias")
    });
    fails(
        &args(&run(&no_bias, "decoder.stage2.up", &[])),
        &[
            "missing tensor",
            "decoder.stage2.up.offset.bias",
            "nobias.safetensors",
        ],
    );
    // dyscope given but the layer has no scope conv.
    fails(
        &args(&run(
            &w,
            "decoder.stage3.up",
            &["--style", "pl", "--groups", "2", "--dyscope"],
        )),
        &["decoder.stage3.up.scope.weight"],
    );
    // A layer trained with dyscope, loaded without it.
    fails(
        &args(&run(&w, "decoder.stage2.up", &["--style", "lp"])),
        &["dyscope"],
    );
    // Wrong shape (wrong --groups).
    fails(
        &args(&run(&w, "decoder.stage2.up", &["--groups", "2"])),
        &["decoder.stage2.up.offset.weight", "shape"],
    );
    // Wrong dtype.
    let int_w = edited_checkpoint(d, "int.safetensors", |t| {
        for e in t
            .iter_mut()
            .filter(|e| e.0 == "decoder.stage2.up.offset.bias")
        {
            e.1 = Dtype::I32;
        }
    });
    fails(
        &args(&run(&int_w, "decoder.stage2.up", &[])),
        &["dtype", "decoder.stage2.up.offset.bias"],
    );
    // init_pos that does not match the config.
    let bad_init = edited_checkpoint(d, "init.safetensors", |t| {
        for e in t.iter_mut().filter(|e| e.0 == "decoder.stage2.up.init_pos") {
            e.3[0..4].copy_from_slice(&0.4f32.to_le_bytes());
        }
    });
    fails(
        &args(&run(&bad_init, "decoder.stage2.up", &[])),
        &["init_pos", "init.safetensors", "index 0"],
    );
    // NaN in weights.
    let nan_w = edited_checkpoint(d, "nan.safetensors", |t| {
        for e in t
            .iter_mut()
            .filter(|e| e.0 == "decoder.stage2.up.offset.weight")
        {
            e.3[8..12].copy_from_slice(&f32::NAN.to_le_bytes());
        }
    });
    fails(
        &args(&run(&nan_w, "decoder.stage2.up", &[])),
        &["non-finite", "decoder.stage2.up.offset.weight"],
    );
    // Truncated and corrupt files.
    let bytes = std::fs::read(&w).unwrap();
    let trunc = d.join("trunc.safetensors");
    std::fs::write(&trunc, &bytes[..bytes.len() / 2]).unwrap();
    fails(
        &args(&run(&trunc, "decoder.stage2.up", &[])),
        &["trunc.safetensors", "not a valid safetensors"],
    );
    let junk = d.join("junk.safetensors");
    std::fs::write(&junk, b"\xff\xff\xff\xff\xff\xff\xff\x7fgarbage").unwrap();
    fails(
        &args(&run(&junk, "decoder.stage2.up", &[])),
        &["junk.safetensors"],
    );
    fails(
        &args(&run(&d.join("absent.safetensors"), "x", &[])),
        &["absent.safetensors"],
    );
    // Bad config values.
    fails(
        &args(&run(&w, "decoder.stage2.up", &["--scale", "1"])),
        &["scale"],
    );
    fails(
        &args(&run(&w, "decoder.stage2.up", &["--style", "xy"])),
        &["--style", "xy"],
    );
    fails(
        &args(&run(&w, "decoder.stage2.up", &["--groups", "3"])),
        &["divisible by groups"],
    );
    fails(
        &args(&run(&w, "decoder.stage2.up", &["--layout", "chw"])),
        &["--layout"],
    );
    // Input files: not .npy, wrong rank, wrong dtype, wrong channel count.
    let txt = d.join("x.txt");
    std::fs::write(&txt, "hello").unwrap();
    let mut a = run(&w, "decoder.stage2.up", &[]);
    a[6] = s(&txt).to_string();
    fails(&args(&a), &["x.txt"]);
    let x3 = d.join("x3.npy");
    ndarray_npy::write_npy(&x3, &ndarray::Array3::<f32>::zeros((2, 3, 4))).unwrap();
    a[6] = s(&x3).to_string();
    fails(&args(&a), &["x3.npy", "4-D float32"]);
    let x64 = d.join("x64.npy");
    ndarray_npy::write_npy(&x64, &ndarray::Array4::<f64>::zeros((1, 16, 2, 2))).unwrap();
    a[6] = s(&x64).to_string();
    fails(&args(&a), &["x64.npy", "float32"]);
    let x8 = d.join("x8.npy");
    ndarray_npy::write_npy(&x8, &ArrayD::<f32>::zeros(IxDyn(&[1, 8, 2, 2]))).unwrap();
    a[6] = s(&x8).to_string();
    fails(&args(&a), &["offset.weight"]);
    // Backends and threads.
    fails(
        &args(&run(&w, "decoder.stage2.up", &["--backend", "bogus"])),
        &["--backend", "bogus", "unknown"],
    );
    let other = if cfg!(target_arch = "x86_64") {
        "neon"
    } else {
        "avx2"
    };
    fails(
        &args(&run(&w, "decoder.stage2.up", &["--backend", other])),
        &["--backend", other, "lacks"],
    );
    fails(
        &args(&run(&w, "decoder.stage2.up", &["--threads", "0"])),
        &["--threads"],
    );
    let out = bin()
        .env("DYSAMPLE_BACKEND", "bogus")
        .args(args(&run(&w, "decoder.stage2.up", &[])))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("DYSAMPLE_BACKEND"),
        "{err}"
    );
    // Quant parameters.
    let q = d.join("q.json");
    std::fs::write(&q, r#"{"version":1,"layer":{"channels":16,"scale":2,"style":"lp","groups":4,"dyscope":true},"input":{"scale":0.0,"zero_point":0}}"#).unwrap();
    fails(
        &args(&run(
            &w,
            "decoder.stage2.up",
            &["--precision", "int8", "--quant", s(&q)],
        )),
        &["input.scale"],
    );
    std::fs::write(&q, r#"{"version":1,"layer":{"channels":16,"scale":2,"style":"lp","groups":4,"dyscope":true},"input":{"scale":0.1,"zero_point":300}}"#).unwrap();
    fails(
        &args(&run(
            &w,
            "decoder.stage2.up",
            &["--precision", "int8", "--quant", s(&q)],
        )),
        &["zero_point"],
    );
    std::fs::write(&q, r#"{"version":1,"layer":{"channels":16,"scale":2,"style":"lp","groups":2,"dyscope":true},"input":{"scale":0.1,"zero_point":0}}"#).unwrap();
    fails(
        &args(&run(
            &w,
            "decoder.stage2.up",
            &["--precision", "int8", "--quant", s(&q)],
        )),
        &["made for layer"],
    );
    std::fs::write(&q, "{not json").unwrap();
    fails(
        &args(&run(
            &w,
            "decoder.stage2.up",
            &["--precision", "int8", "--quant", s(&q)],
        )),
        &["q.json", "bad JSON"],
    );
    fails(
        &args(&run(&w, "decoder.stage2.up", &["--quant", s(&q)])),
        &["--precision int8"],
    );
}

#[test]
fn info_bench_and_demo() {
    let out = ok(&["info", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let backends = v["backends"].as_array().unwrap();
    assert_eq!(backends.len(), dysample::kernels::Backend::ALL.len());
    assert!(backends
        .iter()
        .any(|b| b["name"] == "scalar" && b["usable"] == true));
    assert!(backends
        .iter()
        .any(|b| b["usable"] == false && b["reason"].as_str().unwrap().contains("lacks")));
    let text = String::from_utf8(ok(&["info"]).stdout).unwrap();
    assert!(text.contains("cpu features") && text.contains("scalar"));

    for p in ["f32", "f16", "int8"] {
        let out = ok(&[
            "bench",
            "--channels",
            "16",
            "--height",
            "9",
            "--width",
            "7",
            "--groups",
            "2",
            "--dyscope",
            "--precision",
            p,
            "--layout",
            "nhwc",
            "--iters",
            "3",
            "--warmup",
            "1",
            "--threads",
            "2",
            "--json",
        ]);
        let stdout = String::from_utf8(out.stdout).unwrap();
        let last: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
        assert!(last["median_ms"].as_f64().unwrap() > 0.0, "{stdout}");
        assert!(last["peak_rss_mib"].as_f64().unwrap() > 0.0);
        assert_eq!(last["cold_caches"], false, "{stdout}");
    }
    // --cold-caches sweeps a 64 MiB buffer before each timed iteration and says so.
    let out = ok(&[
        "bench",
        "--channels",
        "8",
        "--height",
        "6",
        "--width",
        "5",
        "--precision",
        "int8",
        "--iters",
        "2",
        "--warmup",
        "0",
        "--cold-caches",
        "--json",
    ]);
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("cold caches"), "{stdout}");
    let last: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(last["cold_caches"], true, "{stdout}");
    assert!(
        last["peak_rss_mib"].as_f64().unwrap() > 64.0,
        "the sweep buffer is resident: {stdout}"
    );
    let demo = String::from_utf8(
        ok(&["demo", "--channels", "16", "--height", "8", "--width", "8"]).stdout,
    )
    .unwrap();
    assert!(
        demo.contains("checksum") && demo.contains("[1, 16, 16, 16]"),
        "{demo}"
    );
}
