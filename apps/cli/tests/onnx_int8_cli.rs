//! The int8 DySample node against `dysample run --precision int8 --quant params.json` on the
//! layers of a real nested PyTorch module (tests/fixtures/module): the one-node int8 model in
//! ONNX Runtime and the QDQ model through `dysample onnx run` give the same bytes; `onnx info`
//! shows the node as int8, `--placement` shows it on the CPU EP, `lower` and `fuse` refuse it.
//!
//! Needs the ONNX Runtime library (python3's onnxruntime package or ORT_DYLIB_PATH).

use dysample::onnx::graph::{self, LayerIo};
use dysample::onnx::session::SessionOptions;
use dysample::{DySampleConfig, QuantParams, Style, Symmetry, Weights};
use ndarray::ArrayD;

mod common;
use common::*;

fn bits(a: &ArrayD<f32>) -> Vec<u32> {
    a.iter().map(|v| v.to_bits()).collect()
}

struct Layer {
    prefix: &'static str,
    cfg: DySampleConfig,
    flags: Vec<&'static str>,
}

fn layers() -> Vec<Layer> {
    vec![
        Layer {
            prefix: "decoder.stage2.up",
            cfg: DySampleConfig::new(16, 2, Style::Lp, 4, true).unwrap(),
            flags: vec![
                "--scale",
                "2",
                "--style",
                "lp",
                "--groups",
                "4",
                "--dyscope",
            ],
        },
        Layer {
            prefix: "decoder.stage3.up",
            cfg: DySampleConfig::new(16, 2, Style::Pl, 2, false).unwrap(),
            flags: vec!["--scale", "2", "--style", "pl", "--groups", "2"],
        },
    ]
}

#[test]
fn int8_node_in_ort_equals_dysample_run_int8_quant() {
    let dir = tempfile::tempdir().unwrap();
    let w = module().join("net.safetensors");
    let xpath = module().join("input.npy");
    let x: ArrayD<f32> = ndarray_npy::read_npy(&xpath).unwrap();
    assert_eq!(x.shape()[0], 2, "batch > 1");
    let dims: Vec<usize> = x.shape().to_vec();
    let xs = x.as_slice().unwrap();
    for l in layers() {
        let weights = Weights::from_safetensors(&w, l.prefix, &l.cfg).unwrap();
        for sym in [Symmetry::Asymmetric, Symmetry::Symmetric] {
            let p = QuantParams::calibrate_minmax(l.cfg, [xs], sym).unwrap();
            assert_eq!(p.input.zero_point == 0, sym == Symmetry::Symmetric);
            let tag = format!("{}_{sym:?}", l.prefix);
            let qjson = dir.path().join(format!("{tag}.json"));
            std::fs::write(&qjson, p.to_json()).unwrap();
            let y_cli = dir.path().join(format!("{tag}_cli.npy"));
            let mut a = vec![
                "run",
                "--weights",
                s(&w),
                "--prefix",
                l.prefix,
                "--input",
                s(&xpath),
                "--output",
                s(&y_cli),
                "--precision",
                "int8",
                "--quant",
                s(&qjson),
            ];
            a.extend(l.flags.iter());
            ok(&a);
            let y_cli: ArrayD<f32> = ndarray_npy::read_npy(&y_cli).unwrap();

            // The one-node int8 model, on the input quantized as `dysample run` does.
            let model = dir.path().join(format!("{tag}_int8.onnx"));
            graph::save_model(
                &graph::layer_model(&l.cfg, &weights, &LayerIo::Int8(p.clone())),
                &model,
            )
            .unwrap();
            let mut xq = vec![0i8; xs.len()];
            p.input.quantize_slice(xs, &mut xq);
            let mut sess = SessionOptions::default().threads(2).build(&model).unwrap();
            let (odims, yq) = sess.run_i8(&xq, &dims).unwrap();
            assert_eq!(odims, y_cli.shape());
            let mut y_ort = vec![0f32; yq.len()];
            p.input.dequantize_slice(&yq, &mut y_ort);
            assert!(
                y_ort.iter().map(|v| v.to_bits()).eq(bits(&y_cli)),
                "{tag}: ORT int8 node differs from dysample run --precision int8 --quant"
            );

            // `onnx info` calls it int8.
            let info = ok(&["onnx", "info", s(&model)]);
            let info = String::from_utf8_lossy(&info.stdout);
            assert!(info.contains("dtype=INT8"), "{info}");
            let j = ok(&["onnx", "info", "--json", s(&model)]);
            let j: serde_json::Value = serde_json::from_slice(&j.stdout).unwrap();
            assert_eq!(j["dysample"][0]["dtype"], "INT8");
            assert_eq!(j["dysample"][0]["int8"]["x_zero_point"], p.input.zero_point);
        }
    }
}

/// `dysample onnx run` on the QDQ model equals `dysample run --precision int8 --quant` where
/// the input has no rounding ties (ORT's QuantizeLinear rounds half to even, the SDK half away
/// from zero), and `--placement` shows the custom op on the CPU EP between Q and DQ.
#[test]
fn qdq_model_through_onnx_run_equals_dysample_run() {
    let dir = tempfile::tempdir().unwrap();
    let w = module().join("net.safetensors");
    let x: ArrayD<f32> = ndarray_npy::read_npy(module().join("input.npy")).unwrap();
    for l in layers() {
        let weights = Weights::from_safetensors(&w, l.prefix, &l.cfg).unwrap();
        let p = QuantParams::calibrate_minmax(l.cfg, [x.as_slice().unwrap()], Symmetry::Asymmetric)
            .unwrap();
        // Move every value to the middle of its int8 step's lower or upper quarter.
        let a = p.input;
        let xo = x.mapv(|v| {
            let t = v / a.scale;
            let k = t.floor();
            (k + if t - k < 0.5 { 0.25 } else { 0.75 }) * a.scale
        });
        let xpath = dir.path().join("x.npy");
        ndarray_npy::write_npy(&xpath, &xo).unwrap();
        let qjson = dir.path().join("q.json");
        std::fs::write(&qjson, p.to_json()).unwrap();
        let y_cli = dir.path().join("y_cli.npy");
        let mut args = vec![
            "run",
            "--weights",
            s(&w),
            "--prefix",
            l.prefix,
            "--input",
            s(&xpath),
            "--output",
            s(&y_cli),
            "--precision",
            "int8",
            "--quant",
            s(&qjson),
        ];
        args.extend(l.flags.iter());
        ok(&args);
        let model = dir.path().join("qdq.onnx");
        graph::save_model(
            &graph::layer_model(&l.cfg, &weights, &LayerIo::Qdq(p.clone())),
            &model,
        )
        .unwrap();
        let y_ort = dir.path().join("y_ort.npy");
        let out = ok(&[
            "onnx",
            "run",
            s(&model),
            "--input",
            s(&xpath),
            "--output",
            s(&y_ort),
            "--threads",
            "2",
            "--placement",
        ]);
        let y_cli: ArrayD<f32> = ndarray_npy::read_npy(&y_cli).unwrap();
        let y_ort: ArrayD<f32> = ndarray_npy::read_npy(&y_ort).unwrap();
        assert_eq!(y_cli.shape(), y_ort.shape());
        assert!(
            bits(&y_cli) == bits(&y_ort),
            "{}: QDQ model differs from dysample run",
            l.prefix
        );
        let placement = String::from_utf8_lossy(&out.stdout);
        let row = placement
            .lines()
            .find(|r| r.ends_with(" dysample"))
            .unwrap_or_else(|| panic!("no dysample row in {placement}"));
        let cols: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(
            cols,
            ["CPUExecutionProvider", "DySample", "dysample"],
            "{placement}"
        );
    }
}

#[test]
fn lower_and_fuse_refuse_int8_nodes() {
    let dir = tempfile::tempdir().unwrap();
    let l = &layers()[0];
    let weights =
        Weights::from_safetensors(module().join("net.safetensors"), l.prefix, &l.cfg).unwrap();
    let p = QuantParams::new(
        l.cfg,
        dysample::Affine {
            scale: 0.05,
            zero_point: 0,
        },
    );
    let model = dir.path().join("int8.onnx");
    graph::save_model(
        &graph::layer_model(&l.cfg, &weights, &LayerIo::Int8(p)),
        &model,
    )
    .unwrap();
    let outp = dir.path().join("out.onnx");
    for (cmd, needle) in [
        ("lower", "lower the f32 model"),
        ("fuse", "fuse it, then quantize"),
    ] {
        let mut a = vec!["onnx", cmd, s(&model), s(&outp)];
        if cmd == "fuse" {
            a.push("--no-verify");
        }
        let out = output(&a);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{cmd}: {err}");
        assert_eq!(err.lines().count(), 1, "{cmd}: {err}");
        assert!(
            err.starts_with("error: ")
                && err.contains("DySample node 'dysample': is an int8 node")
                && err.contains(needle),
            "{cmd}: {err}"
        );
        assert!(!outp.exists(), "{cmd} wrote an output");
    }
}
