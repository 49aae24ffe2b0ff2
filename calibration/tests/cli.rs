//! End to end through the `dysample-calibrate` binary on the tiny test model of
//! `dysample_models::testkit` (AveragePool → Conv → Tanh → DySample → Conv → Sigmoid), and the
//! bad-input cases: each a one-line error naming the file, tensor or flag, and no output left.

use dysample::onnx::graph::{self, proto::tensor_proto::DataType};
use dysample::onnx::session::SessionOptions;
use dysample_calibrate::trt_cache;
use dysample_models::{testkit, Task};
use std::path::{Path, PathBuf};
use std::process::Command;

const S: usize = 16;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_dysample-calibrate"))
}

struct Fixture {
    _tmp: tempfile::TempDir,
    model: PathBuf,
    data: PathBuf,
    root: PathBuf,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    let model = root.join("model");
    testkit::write_model(&model, "tiny-seg", Task::Segmentation, S).unwrap();
    let data = root.join("calib");
    testkit::write_eval_set(&data, "tiny-calib", Task::Segmentation, 6, S).unwrap();
    Fixture {
        _tmp: tmp,
        model,
        data: data.join("image"),
        root,
    }
}

fn run(args: &[&str]) -> (i32, String, String) {
    let o = bin().args(args).arg("--quiet").output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn calibrates_the_tiny_model_for_every_target() {
    let f = fixture();
    let out = f.root.join("out");
    let (code, stdout, stderr) = run(&[
        "--model",
        s(&f.model),
        "--data",
        s(&f.data),
        "--method",
        &std::env::var("CALIB_TEST_METHOD").unwrap_or("minmax".into()),
        "--target",
        "cpu,tensorrt,sdk",
        "--out",
        s(&out),
        "--threads",
        "1",
        "--report",
        "--sensitivity",
        "--report-samples",
        "2",
        &std::env::var("CALIB_TEST_EXTRA").unwrap_or("--trt-version=8502".into()),
    ]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");

    // CPU model: Q/DQ around the convs, the DySample node int8 with its input's scale.
    let q = graph::load_model(&out.join("model_int8.onnx")).unwrap();
    let g = q.graph.as_ref().unwrap();
    let count = |op: &str| g.node.iter().filter(|n| n.op_type == op).count();
    assert!(
        count("QuantizeLinear") >= 4 && count("DequantizeLinear") >= 6,
        "{}",
        count("QuantizeLinear")
    );
    let dy: Vec<_> = g.node.iter().filter(|n| n.op_type == "DySample").collect();
    assert_eq!(dy.len(), 1);
    let x_scale = dy[0]
        .attribute
        .iter()
        .find(|a| a.name == "x_scale")
        .unwrap()
        .f;
    let x_zp = dy[0]
        .attribute
        .iter()
        .find(|a| a.name == "x_zero_point")
        .unwrap()
        .i;
    // Weights stored as int8, per output channel.
    assert!(g
        .initializer
        .iter()
        .any(|t| t.data_type == DataType::INT8 as i32 && t.dims.len() == 4));

    // The SDK parameters of that layer carry the same input quantization.
    let sdk: Vec<_> = std::fs::read_dir(out.join("sdk"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(sdk.len(), 1);
    let p = dysample::QuantParams::from_json_file(&sdk[0]).unwrap();
    assert_eq!((p.input.scale, p.input.zero_point as i64), (x_scale, x_zp));

    // The int8 model runs and stays close to fp32 on a calibration image.
    let img = dysample_models::preprocess::load_rgb(&f.data.join("0001.png")).unwrap();
    let spec = dysample_models::ModelDir::open(&f.model)
        .unwrap()
        .model
        .input;
    let (x, dims) = dysample_models::preprocess::preprocess(&img, &spec);
    let mut f32s = SessionOptions::new()
        .threads(1)
        .build(&f.model.join("model.onnx"))
        .unwrap();
    let mut i8s = SessionOptions::new()
        .threads(1)
        .build(&out.join("model_int8.onnx"))
        .unwrap();
    let (_, a) = f32s.run_f32(&x, &dims).unwrap();
    let (_, b) = i8s.run_f32(&x, &dims).unwrap();
    let (sig, err) = a.iter().zip(&b).fold((0f64, 0f64), |(s, e), (p, q)| {
        (s + (*p as f64).powi(2), e + (*p as f64 - *q as f64).powi(2))
    });
    let sqnr = 10.0 * (sig / err.max(1e-30)).log10();
    assert!(
        sqnr > 20.0,
        "int8 output SQNR {sqnr:.1} dB; {}",
        std::fs::read_to_string(out.join("report.json"))
            .unwrap_or_default()
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect::<String>()
            .split("\"tensors\"")
            .nth(1)
            .unwrap_or("")
    );

    // TensorRT: explicit QDQ with zero point 0 on the lowered model, and a cache whose
    // tensors exist in that model and whose scales are amax / 127 from ranges.json.
    let t = graph::load_model(&out.join("model_trt_qdq.onnx")).unwrap();
    let tg = t.graph.as_ref().unwrap();
    assert!(tg.node.iter().any(|n| n.op_type == "GridSample"));
    assert!(!tg.node.iter().any(|n| n.op_type == "DySample"));
    for n in tg.node.iter().filter(|n| n.op_type == "QuantizeLinear") {
        let zp = tg
            .initializer
            .iter()
            .find(|i| i.name == n.input[2])
            .unwrap();
        assert!(zp.raw_data.iter().all(|&b| b == 0), "{}", n.name);
    }
    let text = std::fs::read_to_string(out.join("calibration.cache")).unwrap();
    let (ver, cal, entries) = trt_cache::parse(&text).unwrap();
    assert_eq!(
        (ver, cal.as_str()),
        (trt_cache::DEFAULT_VERSION, "EntropyCalibration2")
    );
    let ranges: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("ranges.json")).unwrap()).unwrap();
    let names: std::collections::HashSet<String> = tg
        .node
        .iter()
        .flat_map(|n| n.output.clone())
        .chain(tg.input.iter().map(|i| i.name.clone()))
        .collect();
    assert!(!entries.is_empty());
    for (name, scale) in &entries {
        assert!(names.contains(name), "{name} not in the lowered model");
        let hi = ranges["tensors"][name]["symmetric_range"]["hi"]
            .as_f64()
            .unwrap() as f32;
        assert_eq!(
            *scale,
            if hi > 0.0 { hi / 127.0 } else { 1.0 / 127.0 },
            "{name}"
        );
    }

    // Report.
    let rep: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert!(!rep["tensors"].as_array().unwrap().is_empty());
    // AveragePool, two Convs, DySample, Sigmoid: each measured alone and left out.
    assert!(
        rep["sensitivity"].as_array().unwrap().len() >= 4,
        "{}",
        rep["sensitivity"]
    );
    let png = std::fs::read(out.join("sqnr.png")).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    assert!(!out
        .join(format!(".dysample-calibrate-{}", std::process::id()))
        .exists());
}

/// Runs a failing case: exit 2, one line on stderr containing every `needle`, no `out` left.
fn fails(args: &[&str], out: &Path, needles: &[&str]) {
    let (code, stdout, stderr) = run(args);
    assert_eq!(code, 2, "{stdout}\n{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    for n in needles {
        assert!(lines[0].contains(n), "'{n}' not in: {}", lines[0]);
    }
    assert!(
        !out.exists() || std::fs::read_dir(out).unwrap().next().is_none(),
        "{} left behind",
        out.display()
    );
}

#[test]
fn bad_inputs_fail_cleanly() {
    let f = fixture();
    let out = f.root.join("out");
    let m = s(&f.model);
    let o = s(&out);

    // An empty calibration set.
    let empty = f.root.join("empty");
    std::fs::create_dir(&empty).unwrap();
    fails(
        &["--model", m, "--data", s(&empty), "--out", o],
        &out,
        &["--data", "empty", "no calibration samples"],
    );
    // An unreadable image.
    let bad = f.root.join("bad");
    std::fs::create_dir(&bad).unwrap();
    std::fs::write(bad.join("broken.png"), b"not a png").unwrap();
    fails(
        &["--model", m, "--data", s(&bad), "--out", o],
        &out,
        &["broken.png"],
    );
    // A tensor of the wrong shape.
    let npy = f.root.join("npy");
    std::fs::create_dir(&npy).unwrap();
    dysample::npy::write_f32(
        &npy.join("x.npy"),
        &[1, 3, S + 2, S],
        &vec![0.5; 3 * (S + 2) * S],
    )
    .unwrap();
    fails(
        &["--model", m, "--data", s(&npy), "--out", o],
        &out,
        &["x.npy", "shape"],
    );
    // Activations that overflow to Inf: the tensor is named.
    let huge = f.root.join("huge");
    std::fs::create_dir(&huge).unwrap();
    dysample::npy::write_f32(&huge.join("x.npy"), &[1, 3, S, S], &vec![3.0e38; 3 * S * S]).unwrap();
    fails(
        &["--model", m, "--data", s(&huge), "--out", o],
        &out,
        &["tensor '", "non-finite"],
    );
    // A model without the input model.json names.
    let renamed = f.root.join("renamed");
    testkit::write_model(&renamed, "tiny-seg", Task::Segmentation, S).unwrap();
    let text = std::fs::read_to_string(renamed.join("model.json"))
        .unwrap()
        .replace("\"name\": \"input\"", "\"name\": \"pixels\"");
    assert!(text.contains("pixels"));
    std::fs::write(renamed.join("model.json"), text).unwrap();
    fails(
        &["--model", s(&renamed), "--data", s(&f.data), "--out", o],
        &out,
        &["model.onnx", "'pixels'"],
    );
    let onnx = f.model.join("model.onnx");
    // An op the targets do not support.
    let mut p = graph::load_model(&onnx).unwrap();
    let g = p.graph.as_mut().unwrap();
    let n = g.node.iter_mut().find(|n| n.op_type == "Tanh").unwrap();
    n.domain = "com.example".into();
    let odd_dir = f.root.join("odd");
    std::fs::create_dir(&odd_dir).unwrap();
    let odd = odd_dir.join("model.onnx");
    graph::save_model(&p, &odd).unwrap();
    fails(
        &[
            "--model",
            s(&odd),
            "--model-json",
            s(&f.model.join("model.json")),
            "--data",
            s(&f.data),
            "--out",
            o,
        ],
        &out,
        &["com.example::Tanh", "--target"],
    );
    // A bad method or percentile.
    fails(
        &[
            "--model",
            m,
            "--data",
            s(&f.data),
            "--method",
            "percentile:101",
            "--out",
            o,
        ],
        &out,
        &["--method", "percentile:101"],
    );
    fails(
        &[
            "--model",
            m,
            "--data",
            s(&f.data),
            "--method",
            "kl",
            "--out",
            o,
        ],
        &out,
        &["--method", "'kl'"],
    );
    fails(
        &[
            "--model",
            m,
            "--data",
            s(&f.data),
            "--target",
            "gpu",
            "--out",
            o,
        ],
        &out,
        &["--target", "gpu"],
    );
    // An output directory that cannot be created (its parent is a file).
    let file = f.root.join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let under = file.join("out");
    fails(
        &["--model", m, "--data", s(&f.data), "--out", s(&under)],
        &under,
        &["--out", "a-file"],
    );
}

/// `--max-drop` on a tiny model with one destructive quantizer: a 1x1 "spike" conv adds a
/// channel 1000× the first one, which the next conv ("consumer") multiplies by 0. In float the
/// spike changes nothing; int8 on the consumer's input gives that tensor a step of ~4 and wipes
/// out the real channels. Only keeping the consumer in float (it then reads the spike's float
/// output) repairs it — keeping the spike in float does not (its output is still quantized for
/// the consumer) — so the greedy search must pick exactly the consumer.
#[test]
fn max_drop_keeps_exactly_the_destructive_layer_in_float() {
    use dysample::onnx::graph::proto::NodeProto;
    let f = fixture();
    let path = f.model.join("model.onnx");
    let mut m = graph::load_model(&path).unwrap();
    let g = m.graph.as_mut().unwrap();
    let ci = g
        .node
        .iter()
        .position(|n| n.op_type == "Conv")
        .expect("the tiny model's first conv");
    let wname = g.node[ci].input[1].clone();
    let wi = g.initializer.iter().position(|t| t.name == wname).unwrap();
    let (w, dims) = (
        graph::tensor_f32(&g.initializer[wi]).unwrap(),
        g.initializer[wi].dims.clone(),
    );
    assert_eq!(dims[1], 3, "the first conv reads RGB");
    let (o, k) = (dims[0] as usize, (dims[2] * dims[3]) as usize);
    // The consumer's weight with a 4th input channel of zeros.
    let mut w4 = vec![0f32; o * 4 * k];
    for oc in 0..o {
        for c in 0..3 {
            w4[(oc * 4 + c) * k..(oc * 4 + c + 1) * k]
                .copy_from_slice(&w[(oc * 3 + c) * k..(oc * 3 + c + 1) * k]);
        }
    }
    g.initializer[wi] = graph::f32_tensor(&wname, &[dims[0], 4, dims[2], dims[3]], &w4);
    // The spike: channels 0–2 copied, channel 3 = 1000 × channel 0.
    let mut ws = vec![0f32; 12];
    for c in 0..3 {
        ws[c * 3 + c] = 1.0;
    }
    ws[9] = 1000.0;
    g.initializer
        .push(graph::f32_tensor("spike.weight", &[4, 3, 1, 1], &ws));
    let src = g.node[ci].input[0].clone();
    let mut spike = NodeProto::new();
    spike.op_type = "Conv".into();
    spike.name = "spike".into();
    spike.input = vec![src, "spike.weight".into()];
    spike.output = vec!["spiked".into()];
    g.node[ci].input[0] = "spiked".into();
    g.node[ci].name = "consumer".into();
    g.node.insert(ci, spike);
    graph::save_model(&m, &path).unwrap();

    let out = f.root.join("out-maxdrop");
    let (code, stdout, stderr) = run(&[
        "--model",
        s(&f.model),
        "--data",
        s(&f.data),
        "--target",
        "cpu",
        "--out",
        s(&out),
        "--threads",
        "1",
        "--report-samples",
        "4",
        "--max-drop",
        "0.05",
    ]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    let all = r["agreement_drop"]["all_int8"].as_f64().unwrap();
    assert!(
        all > 0.2,
        "the spike must be destructive in int8: drop {all}"
    );
    let sens = r["sensitivity"].as_array().unwrap();
    let except = |l: &str| {
        sens.iter().find(|x| x["layer"] == l).unwrap()["except_drop"]
            .as_f64()
            .unwrap()
    };
    assert!(except("consumer") <= 0.05, "{}", except("consumer"));
    assert!(except("spike") > 0.2, "{}", except("spike"));
    assert_eq!(r["excluded"], serde_json::json!(["consumer"]), "{r:#}");
    assert_eq!(r["budget_met"], serde_json::json!(true));
    assert!(r["agreement_drop"]["mixed"].as_f64().unwrap() <= 0.05);
    assert_eq!(r["greedy_steps"].as_array().unwrap().len(), 1);
    // The mixed model: the consumer reads the spike's float output, not a dequantized copy.
    let q = graph::load_model(&out.join("model_int8_mixed.onnx")).unwrap();
    let c = q
        .graph
        .as_ref()
        .unwrap()
        .node
        .iter()
        .find(|n| n.name == "consumer")
        .unwrap();
    assert_eq!(c.input[0], "spiked");
}
