//! CI checks of every model folder `models/*/model.json` (SPEC.md), without PyTorch:
//!
//! 1. each listed ONNX graph loads and runs in ONNX Runtime (DySample as the SDK's custom op);
//! 2. `model.onnx` and `model_lowered.onnx` reproduce every committed
//!    `reference/output_K.npy` from `reference/input_K.npy`;
//! 3. the metrics stored in `model.json` are reproduced within 0.002 for every eval set listed
//!    and the rows `pytorch_f32`, `ort_custom_f32`, `sdk_f16`, `sdk_int8_minmax`,
//!    `ort_lowered_f32` (and `bilinear_pytorch_f32`, `bilinear_ort_f32` with a bilinear twin).
//!
//! The shipped models `person-seg` and `depth` are required. The same checks run on tiny models
//! written by `dysample_models::testkit`, and must catch tampered figures and references.
//!
//! Needs the ONNX Runtime library (python3's onnxruntime package or ORT_DYLIB_PATH).

use dysample_models::model::MetricsTable;
use dysample_models::{
    compare, evaluate, npy, row_setup, testkit, DySamplePrecision, EvalOptions, EvalSet, Metrics,
    ModelDir, Predictor, Task, Variant, CHECK_TOLERANCE,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Reference tolerance: `max |y − ref| ≤ 1e-4 · max |ref| + 1e-5`. PyTorch and ONNX Runtime
/// run the same f32 graph with different summation orders (and the SDK's DySample kernels
/// match their reference within 1e-5 relative): a few ulps per layer that compound over a
/// network's ~50 layers to ~1e-5 relative — 1e-4 leaves a margin of ten while a wrong weight,
/// layer or preprocessing step moves outputs by 1e-2 or more. The absolute 1e-5 covers outputs
/// near 0 (sigmoid tails).
const REF_REL: f32 = 1e-4;
const REF_ABS: f32 = 1e-5;

const SHIPPED: &[&str] = &["person-seg", "depth"];
const BASE_ROWS: &[&str] = &[
    "pytorch_f32",
    "ort_custom_f32",
    "sdk_f16",
    "sdk_int8_minmax",
    "ort_lowered_f32",
];
const BILINEAR_ROWS: &[&str] = &["bilinear_pytorch_f32", "bilinear_ort_f32"];

fn opts(variant: Variant, precision: DySamplePrecision) -> EvalOptions {
    EvalOptions {
        variant,
        precision,
        threads: 2,
        ort_lib: None,
    }
}

/// Checks 1–3 on one model folder; returns every problem found (empty = pass).
fn check_model_folder(dir: &Path, eval_root: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    let md = match ModelDir::open(dir) {
        Ok(m) => m,
        Err(e) => return vec![e.to_string()],
    };
    let name = md.model.name.clone();
    let pairs = match md.reference_pairs() {
        Ok(p) if p.is_empty() => {
            problems.push(format!("{name}: no reference/input_K.npy committed"));
            Vec::new()
        }
        Ok(p) => p,
        Err(e) => {
            problems.push(e.to_string());
            Vec::new()
        }
    };
    let has_bilinear = md.model.files.onnx_bilinear.is_some();
    for variant in [Variant::Custom, Variant::Lowered, Variant::Bilinear] {
        if md.model.variant_file(variant).is_none() {
            if variant == Variant::Lowered {
                problems.push(format!("{name}: files.onnx_lowered is required"));
            }
            continue;
        }
        let mut p = match Predictor::new(&md, &opts(variant, DySamplePrecision::F32)) {
            Ok(p) => p,
            Err(e) => {
                problems.push(format!("{name} ({variant}): {e}"));
                continue;
            }
        };
        for (input, output) in &pairs {
            let r = (|| -> Result<Option<String>, dysample_models::Error> {
                let x = npy::read_f32(input)?;
                let pred = p.run_tensor(&x.data, &x.shape)?;
                if variant == Variant::Bilinear {
                    // Another network: it only has to run.
                    return Ok(None);
                }
                let want = npy::read_f32(output)?;
                if want.data.len() != pred.values.len() {
                    return Ok(Some(format!(
                        "{} has {} values, the model output {}",
                        output.display(),
                        want.data.len(),
                        pred.values.len()
                    )));
                }
                let scale = want.data.iter().fold(0f32, |m, v| m.max(v.abs()));
                let diff = pred
                    .values
                    .iter()
                    .zip(&want.data)
                    .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
                let tol = REF_REL * scale + REF_ABS;
                Ok((diff.is_nan() || diff > tol).then(|| {
                    format!(
                        "{}: max |diff| {diff:.3e} > {tol:.3e} (1e-4 * max|ref| {scale:.3e} + 1e-5)",
                        output.display()
                    )
                }))
            })();
            match r {
                Ok(None) => {}
                Ok(Some(msg)) => problems.push(format!("{name} ({variant}) reference {msg}")),
                Err(e) => problems.push(format!("{name} ({variant}): {e}")),
            }
        }
    }
    if md.model.metrics.is_empty() {
        problems.push(format!("{name}: model.json has no metrics"));
    }
    let mut rows: Vec<&str> = BASE_ROWS.to_vec();
    if has_bilinear {
        rows.extend_from_slice(BILINEAR_ROWS);
    }
    for (set_name, stored_rows) in &md.model.metrics {
        let set = match EvalSet::open(eval_root.join(set_name)) {
            Ok(s) => s,
            Err(e) => {
                problems.push(format!("{name}: metrics[\"{set_name}\"]: {e}"));
                continue;
            }
        };
        if set.name() != set_name {
            problems.push(format!(
                "{name}: eval set folder {set_name} is named '{}' in its manifest",
                set.name()
            ));
        }
        // One evaluation per (variant, precision), shared by the rows measured with it.
        let mut measured: BTreeMap<(u8, u8), Metrics> = BTreeMap::new();
        for row in &rows {
            let Some(stored) = stored_rows.get(*row) else {
                problems.push(format!("{name}: metrics[\"{set_name}\"] lacks row {row}"));
                continue;
            };
            let (v, p) = row_setup(row).expect("known row");
            let key = (v as u8, p as u8);
            let got = match measured.entry(key) {
                std::collections::btree_map::Entry::Occupied(o) => o.into_mut(),
                std::collections::btree_map::Entry::Vacant(slot) => {
                    match evaluate(&md, &set, &opts(v, p)) {
                        Ok(r) => slot.insert(r.metrics),
                        Err(e) => {
                            problems.push(format!("{name} on {set_name} ({v}, {p}): {e}"));
                            continue;
                        }
                    }
                }
            };
            for m in compare(md.model.task, stored, got, CHECK_TOLERANCE) {
                problems.push(format!(
                    "{name}: metrics[\"{set_name}\"][\"{row}\"]: {m} (tolerance {CHECK_TOLERANCE})"
                ));
            }
        }
    }
    problems
}

fn models_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

/// The shipped models. Fails until `models/person-seg` and `models/depth` land.
#[test]
fn shipped_models_reproduce_references_and_metrics() {
    let root = models_root();
    let mut problems = Vec::new();
    for m in SHIPPED {
        if !root.join(m).join("model.json").is_file() {
            problems.push(format!(
                "models/{m}/model.json is missing (the shipped demo models are required)"
            ));
        }
    }
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("model.json").is_file())
        .collect();
    dirs.sort();
    for d in &dirs {
        problems.extend(check_model_folder(d, &root.join("eval")));
    }
    assert!(
        problems.is_empty(),
        "{} problem(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// Every committed eval set opens and every sample decodes (no ONNX Runtime needed).
#[test]
fn committed_eval_sets_are_valid() {
    let root = models_root().join("eval");
    let mut n = 0;
    for e in std::fs::read_dir(&root).into_iter().flatten().flatten() {
        if !e.path().join("manifest.json").is_file() {
            continue;
        }
        let set = EvalSet::open(e.path()).unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(
            set.name(),
            e.file_name().to_string_lossy(),
            "{}: the manifest's name is the folder's",
            e.path().display()
        );
        for i in 0..set.len() {
            set.load(i).unwrap_or_else(|err| panic!("{err}"));
        }
        n += 1;
    }
    eprintln!("{n} eval set(s) checked");
}

/// Writes a tiny model and eval set under `root` and fills every row the way the training
/// scripts will: SDK rows from `evaluate`, PyTorch rows = the f32 figures off by 0.001.
fn tiny_folder(root: &Path, task: Task, image_size: usize) -> (PathBuf, MetricsTable) {
    let name = format!("tiny-{}", task.name());
    let set_name = format!("tiny-{}-set", task.name());
    let dir = root.join(&name);
    testkit::write_model(&dir, &name, task, 32).unwrap();
    testkit::write_eval_set(
        &root.join("eval").join(&set_name),
        &set_name,
        task,
        5,
        image_size,
    )
    .unwrap();
    let mut md = ModelDir::open(&dir).unwrap();
    let set = EvalSet::open(root.join("eval").join(&set_name)).unwrap();
    for row in BASE_ROWS.iter().chain(BILINEAR_ROWS) {
        let (v, p) = row_setup(row).unwrap();
        let mut m = evaluate(&md, &set, &opts(v, p)).unwrap().metrics;
        if row.contains("pytorch") {
            m.values_mut().for_each(|x| *x += 0.001);
        }
        md.write_metrics(&set_name, row, &m).unwrap();
    }
    (dir, md.model.metrics)
}

#[test]
fn tiny_segmentation_model_passes_and_tampering_is_caught() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let (dir, metrics) = tiny_folder(root, Task::Segmentation, 32);
    let problems = check_model_folder(&dir, &root.join("eval"));
    assert!(problems.is_empty(), "{problems:?}");
    // The model finds the red shapes (so preprocessing, colour order, threshold and metrics
    // fit together); the precisions are close to f32 but not all identical.
    let rows = &metrics["tiny-segmentation-set"];
    let f32m = &rows["ort_custom_f32"];
    assert!(f32m["iou"] > 0.7 && f32m["boundary_f"] > 0.9, "{f32m:?}");
    assert!((f32m["iou"] - rows["ort_lowered_f32"]["iou"]).abs() < 1e-3);
    for row in ["sdk_f16", "sdk_int8_minmax", "bilinear_ort_f32"] {
        assert!(
            (f32m["iou"] - rows[row]["iou"]).abs() < 0.05,
            "{row}: {:?}",
            rows[row]
        );
    }

    // A stored figure 0.003 off is named with its row and metric.
    let json = dir.join("model.json");
    let text = std::fs::read_to_string(&json).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let cell = &mut v["metrics"]["tiny-segmentation-set"]["sdk_int8_minmax"]["miou"];
    *cell = serde_json::json!(cell.as_f64().unwrap() + 0.003);
    std::fs::write(&json, serde_json::to_string(&v).unwrap()).unwrap();
    let problems = check_model_folder(&dir, &root.join("eval"));
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].contains("sdk_int8_minmax") && problems[0].contains("miou"),
        "{problems:?}"
    );
    // A missing row is a problem too.
    v["metrics"]["tiny-segmentation-set"]
        .as_object_mut()
        .unwrap()
        .remove("sdk_f16");
    std::fs::write(&json, serde_json::to_string(&v).unwrap()).unwrap();
    let problems = check_model_folder(&dir, &root.join("eval"));
    assert!(
        problems.iter().any(|p| p.contains("lacks row sdk_f16")),
        "{problems:?}"
    );
    std::fs::write(&json, &text).unwrap();

    // A reference output off by 1e-3 somewhere is caught.
    let out = dir.join("reference/output_0.npy");
    let mut r = npy::read_f32(&out).unwrap();
    r.data[100] += 1e-3;
    npy::write_f32(&out, &r.shape, &r.data).unwrap();
    let problems = check_model_folder(&dir, &root.join("eval"));
    assert!(
        problems.len() == 2 && problems.iter().all(|p| p.contains("output_0.npy")),
        "custom and lowered both differ: {problems:?}"
    );
}

#[test]
fn tiny_depth_model_passes_with_resized_inputs() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    // Eval images 40x40 for a 32x32 model: input stretched, prediction resized back.
    let (dir, metrics) = tiny_folder(root, Task::Depth, 40);
    let problems = check_model_folder(&dir, &root.join("eval"));
    assert!(problems.is_empty(), "{problems:?}");
    let m = &metrics["tiny-depth-set"]["ort_custom_f32"];
    // Brightness codes inverse depth, the model is monotone in brightness: after alignment
    // it is close, but not exact (tanh/softplus bend the map, edges blur).
    assert!(m["absrel"] < 0.15 && m["absrel"] > 0.0, "{m:?}");
    assert!(m["delta1"] > 0.8, "{m:?}");
}

#[test]
fn precision_needs_the_custom_variant_and_tasks_must_match() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    testkit::write_model(&root.join("seg"), "seg", Task::Segmentation, 16).unwrap();
    testkit::write_eval_set(&root.join("depth-set"), "depth-set", Task::Depth, 1, 16).unwrap();
    let md = ModelDir::open(root.join("seg")).unwrap();
    let e = Predictor::new(&md, &opts(Variant::Lowered, DySamplePrecision::F16))
        .unwrap_err()
        .to_string();
    assert!(e.contains("custom variant"), "{e}");
    let set = EvalSet::open(root.join("depth-set")).unwrap();
    let e = evaluate(&md, &set, &opts(Variant::Custom, DySamplePrecision::F32))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("segmentation model") && e.contains("depth set"),
        "{e}"
    );
}
