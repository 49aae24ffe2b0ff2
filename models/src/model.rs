//! `model.json` (schema 1) and the model folder it describes.

use crate::error::{parse_json, Error, Result};
use crate::metrics::Metrics;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The only `model.json` schema this crate reads.
pub const MODEL_SCHEMA: u32 = 1;

/// What a model predicts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    /// Person/background: one channel, P(person).
    Segmentation,
    /// Monocular relative inverse depth: one channel.
    Depth,
}

impl Task {
    pub fn name(self) -> &'static str {
        match self {
            Task::Segmentation => "segmentation",
            Task::Depth => "depth",
        }
    }

    /// The metrics SPEC.md defines for this task, in report order.
    pub fn metric_names(self) -> &'static [&'static str] {
        match self {
            Task::Segmentation => &["iou", "miou", "boundary_f"],
            Task::Depth => &["absrel", "delta1"],
        }
    }
}

impl std::fmt::Display for Task {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Which of the model's graphs to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Variant {
    /// `files.onnx`: DySample nodes on the SDK kernels (custom op).
    Custom,
    /// `files.onnx_lowered`: standard ops only (GridSample), plain ONNX Runtime.
    Lowered,
    /// `files.onnx_bilinear`: the bilinear twin (ablation).
    Bilinear,
}

impl Variant {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "custom" => Some(Variant::Custom),
            "lowered" => Some(Variant::Lowered),
            "bilinear" => Some(Variant::Bilinear),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Variant::Custom => "custom",
            Variant::Lowered => "lowered",
            Variant::Bilinear => "bilinear",
        }
    }

    /// The `files` key that names this variant's ONNX file.
    pub fn files_key(self) -> &'static str {
        match self {
            Variant::Custom => "onnx",
            Variant::Lowered => "onnx_lowered",
            Variant::Bilinear => "onnx_bilinear",
        }
    }
}

impl std::fmt::Display for Variant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// `files`: paths relative to the model folder.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Files {
    pub onnx: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub onnx_lowered: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub safetensors: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub onnx_bilinear: Option<String>,
}

/// Memory layout of the input tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TensorLayout {
    #[serde(rename = "NCHW")]
    Nchw,
    #[serde(rename = "NHWC")]
    Nhwc,
}

/// Channel order of the input tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ColorOrder {
    #[serde(rename = "RGB")]
    Rgb,
    #[serde(rename = "BGR")]
    Bgr,
}

/// How a frame is fitted to the input size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Resize {
    /// The whole frame resized to height × width (bilinear, half-pixel centres), aspect not kept.
    Stretch,
}

/// `input`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    pub name: String,
    pub layout: TensorLayout,
    pub height: usize,
    pub width: usize,
    pub color: ColorOrder,
    pub resize: Resize,
    /// `x = (pixel / 255 − mean[c]) / std[c]`, in the tensor's channel order.
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

/// What the output holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputKind {
    /// Segmentation: P(person) in [0, 1].
    Probability,
    /// Depth: larger = nearer, unknown scale and shift.
    RelativeInverseDepth,
}

/// `output`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    pub name: String,
    pub height: usize,
    pub width: usize,
    pub channels: usize,
    pub kind: OutputKind,
}

/// One entry of `classes`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassSpec {
    pub name: String,
    pub color: [u8; 3],
}

/// `training`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Training {
    pub command: String,
    pub seconds: f64,
    pub machine: String,
}

/// `metrics`: eval set name → row (`ort_custom_f32`, ...) → metric → value (a fraction).
pub type MetricsTable = BTreeMap<String, BTreeMap<String, Metrics>>;

/// `model.json`, schema 1 (SPEC.md). Unknown keys are errors.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelJson {
    pub schema: u32,
    pub name: String,
    pub task: Task,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub files: Files,
    pub input: InputSpec,
    pub output: OutputSpec,
    /// Segmentation only: class = prob > threshold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f32>,
    /// Segmentation only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classes: Option<Vec<ClassSpec>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dysample_layers: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training: Option<Training>,
    #[serde(default)]
    pub metrics: MetricsTable,
}

impl ModelJson {
    /// Parses and validates; `path` names the file in errors.
    pub fn from_json(path: &Path, text: &str) -> Result<Self> {
        let m: ModelJson = parse_json(path, text)?;
        m.validate().map_err(|detail| Error::file(path, detail))?;
        Ok(m)
    }

    /// Checks what serde cannot: schema, sizes, mean/std, task-specific fields, metric names.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.schema != MODEL_SCHEMA {
            return Err(format!(
                "field 'schema': {} is not supported (this build reads schema {MODEL_SCHEMA})",
                self.schema
            ));
        }
        if self.name.trim().is_empty() {
            return Err("field 'name': must not be empty".into());
        }
        let i = &self.input;
        if i.height == 0 || i.width == 0 || i.height > 16384 || i.width > 16384 {
            return Err(format!(
                "field 'input': height and width must be in 1..=16384, got {}x{}",
                i.height, i.width
            ));
        }
        for c in 0..3 {
            if !i.mean[c].is_finite() {
                return Err(format!("field 'input.mean[{c}]': must be finite"));
            }
            if !(i.std[c].is_finite() && i.std[c] > 0.0) {
                return Err(format!(
                    "field 'input.std[{c}]': must be finite and > 0, got {}",
                    i.std[c]
                ));
            }
        }
        let o = &self.output;
        if o.height == 0 || o.width == 0 || o.height > 16384 || o.width > 16384 {
            return Err(format!(
                "field 'output': height and width must be in 1..=16384, got {}x{}",
                o.height, o.width
            ));
        }
        if o.channels != 1 {
            return Err(format!(
                "field 'output.channels': must be 1 (one probability or inverse-depth map), got {}",
                o.channels
            ));
        }
        match self.task {
            Task::Segmentation => {
                if o.kind != OutputKind::Probability {
                    return Err(
                        "field 'output.kind': a segmentation model's output is \"probability\""
                            .into(),
                    );
                }
                match self.threshold {
                    Some(t) if t.is_finite() && t > 0.0 && t < 1.0 => {}
                    Some(t) => {
                        return Err(format!("field 'threshold': must be in (0, 1), got {t}"))
                    }
                    None => {
                        return Err("field 'threshold': required for a segmentation model".into())
                    }
                }
            }
            Task::Depth => {
                if o.kind != OutputKind::RelativeInverseDepth {
                    return Err(
                        "field 'output.kind': a depth model's output is \"relative_inverse_depth\""
                            .into(),
                    );
                }
                if self.threshold.is_some() {
                    return Err("field 'threshold': only for segmentation models".into());
                }
                if self.classes.is_some() {
                    return Err("field 'classes': only for segmentation models".into());
                }
            }
        }
        for (key, file) in self.file_entries() {
            check_relative(file).map_err(|e| format!("field 'files.{key}': {e}"))?;
        }
        let known = self.task.metric_names();
        for (set, rows) in &self.metrics {
            for (row, metrics) in rows {
                for (name, v) in metrics {
                    if !known.contains(&name.as_str()) {
                        return Err(format!(
                            "field 'metrics.{set}.{row}.{name}': not a {} metric (expected one of {})",
                            self.task,
                            known.join(", ")
                        ));
                    }
                    if !v.is_finite() {
                        return Err(format!(
                            "field 'metrics.{set}.{row}.{name}': must be a finite number"
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// `(files key, relative path)` of every listed file.
    pub fn file_entries(&self) -> Vec<(&'static str, &str)> {
        let f = &self.files;
        let mut v = vec![("onnx", f.onnx.as_str())];
        for (k, p) in [
            ("onnx_lowered", &f.onnx_lowered),
            ("safetensors", &f.safetensors),
            ("onnx_bilinear", &f.onnx_bilinear),
        ] {
            if let Some(p) = p {
                v.push((k, p.as_str()));
            }
        }
        v
    }

    /// The relative path of a variant's ONNX file, if listed.
    pub fn variant_file(&self, variant: Variant) -> Option<&str> {
        match variant {
            Variant::Custom => Some(self.files.onnx.as_str()),
            Variant::Lowered => self.files.onnx_lowered.as_deref(),
            Variant::Bilinear => self.files.onnx_bilinear.as_deref(),
        }
    }

    /// The JSON text this crate writes (pretty, two-space indent, trailing newline).
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("ModelJson always serializes");
        s.push('\n');
        s
    }
}

fn check_relative(p: &str) -> std::result::Result<(), String> {
    let path = Path::new(p);
    if p.is_empty() {
        return Err("must not be empty".into());
    }
    if path.is_absolute() {
        return Err(format!(
            "'{p}' must be relative to the model folder, not absolute"
        ));
    }
    Ok(())
}

/// A model folder: `model.json` and the files it names.
#[derive(Clone, Debug)]
pub struct ModelDir {
    /// The folder.
    pub dir: PathBuf,
    /// Its `model.json`.
    pub json_path: PathBuf,
    pub model: ModelJson,
}

impl ModelDir {
    /// Opens a model folder (or its `model.json`), validates `model.json` and checks that every
    /// file it lists exists.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let (dir, json_path) = if path.is_dir() {
            (path.to_path_buf(), path.join("model.json"))
        } else if path.file_name().is_some_and(|n| n == "model.json") {
            (
                path.parent().unwrap_or(Path::new(".")).to_path_buf(),
                path.to_path_buf(),
            )
        } else if !path.exists() {
            return Err(Error::file(path, "no such model folder"));
        } else {
            return Err(Error::file(
                path,
                "not a model folder (give the folder that holds model.json)",
            ));
        };
        if !json_path.is_file() {
            return Err(Error::file(
                &dir,
                "no model.json in this folder (a model folder holds model.json and model.onnx, see models/SPEC.md)",
            ));
        }
        let bytes =
            dysample::io::read_limited(&json_path, "model.json", dysample::io::MAX_JSON_BYTES)
                .map_err(|e| {
                    Error::file(
                        &json_path,
                        e.to_string()
                            .replace(&format!("{}: ", json_path.display()), ""),
                    )
                })?;
        let text = String::from_utf8(bytes)
            .map_err(|e| Error::file(&json_path, format_args!("not UTF-8 text ({e})")))?;
        let model = ModelJson::from_json(&json_path, &text)?;
        for (key, rel) in model.file_entries() {
            if !dir.join(rel).is_file() {
                return Err(Error::file(
                    &json_path,
                    format_args!(
                        "field 'files.{key}': {} does not exist",
                        dir.join(rel).display()
                    ),
                ));
            }
        }
        Ok(Self {
            dir,
            json_path,
            model,
        })
    }

    /// The ONNX file of `variant`.
    pub fn onnx_path(&self, variant: Variant) -> Result<PathBuf> {
        match self.model.variant_file(variant) {
            Some(rel) => Ok(self.dir.join(rel)),
            None => Err(Error::file(
                &self.json_path,
                format_args!(
                    "field 'files.{}' is not set, so the {variant} variant cannot run",
                    variant.files_key()
                ),
            )),
        }
    }

    /// The committed reference pairs `reference/input_K.npy` → `reference/output_K.npy`, by K.
    /// An input without its output is an error.
    pub fn reference_pairs(&self) -> Result<Vec<(PathBuf, PathBuf)>> {
        let dir = self.dir.join("reference");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Ok(Vec::new());
        };
        let mut ks: Vec<(u64, String)> = Vec::new();
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(k) = name
                .strip_prefix("input_")
                .and_then(|r| r.strip_suffix(".npy"))
            {
                let n = k.parse::<u64>().unwrap_or(u64::MAX);
                ks.push((n, k.to_string()));
            }
        }
        ks.sort();
        ks.into_iter()
            .map(|(_, k)| {
                let input = dir.join(format!("input_{k}.npy"));
                let output = dir.join(format!("output_{k}.npy"));
                if output.is_file() {
                    Ok((input, output))
                } else {
                    Err(Error::file(
                        &input,
                        format_args!("has no matching {}", output.display()),
                    ))
                }
            })
            .collect()
    }

    /// Sets `metrics[set][row]` in `model.json` and rewrites it atomically: under an exclusive
    /// lock on the model folder the file is read again (so rows written meanwhile by another
    /// process are kept), updated, written to a temporary file, fsynced and renamed over it.
    /// Values are rounded to 6 decimals.
    pub fn write_metrics(&mut self, set: &str, row: &str, metrics: &Metrics) -> Result<()> {
        // The folder itself is the lock (flock on its descriptor): model.json is replaced by
        // rename, so a lock on the file would guard a stale inode, and a lock file would be
        // left behind in the model folder.
        let lock = std::fs::File::open(&self.dir)
            .map_err(|e| Error::file(&self.dir, format_args!("cannot open: {e}")))?;
        lock.lock()
            .map_err(|e| Error::file(&self.dir, format_args!("cannot lock: {e}")))?;
        let text = std::fs::read_to_string(&self.json_path)
            .map_err(|e| Error::file(&self.json_path, format_args!("cannot read: {e}")))?;
        let mut model = ModelJson::from_json(&self.json_path, &text)?;
        let rounded: Metrics = metrics
            .iter()
            .map(|(k, v)| (k.clone(), (v * 1e6).round() / 1e6))
            .collect();
        model
            .metrics
            .entry(set.to_string())
            .or_default()
            .insert(row.to_string(), rounded);
        model
            .validate()
            .map_err(|e| Error::file(&self.json_path, e))?;
        write_atomic(&self.json_path, model.to_json().as_bytes())?;
        self.model = model;
        drop(lock);
        Ok(())
    }
}

/// Writes `bytes` to `path` through a temporary file in the same folder, fsync and rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map_or("file".into(), |n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let result = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        // The rename itself is durable once the folder is synced (best effort on other OSes).
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::file(path, format_args!("cannot write: {e}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const SEG_JSON: &str = r#"{
      "schema": 1, "name": "person-seg", "task": "segmentation", "description": "d",
      "files": {"onnx": "model.onnx", "onnx_lowered": "model_lowered.onnx",
                "safetensors": "model.safetensors", "onnx_bilinear": "bilinear/model.onnx"},
      "input": {"name": "input", "layout": "NCHW", "height": 256, "width": 256, "color": "RGB",
                "resize": "stretch", "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0]},
      "output": {"name": "output", "height": 256, "width": 256, "channels": 1, "kind": "probability"},
      "threshold": 0.5,
      "classes": [{"name": "background", "color": [0, 0, 0]}, {"name": "person", "color": [255, 64, 160]}],
      "dysample_layers": ["decoder.up1"], "source": "s", "license": "Apache-2.0",
      "training": {"command": "python3 tools/train/seg.py", "seconds": 10, "machine": "2 vCPU"},
      "metrics": {"seg-composites": {"pytorch_f32": {"iou": 0.91, "miou": 0.93, "boundary_f": 0.7}}}
    }"#;

    fn parse(text: &str) -> Result<ModelJson> {
        ModelJson::from_json(Path::new("m/model.json"), text)
    }

    #[test]
    fn spec_example_parses_and_round_trips() {
        let m = parse(SEG_JSON).unwrap();
        assert_eq!(m.task, Task::Segmentation);
        assert_eq!(m.input.height, 256);
        assert_eq!(m.metrics["seg-composites"]["pytorch_f32"]["iou"], 0.91);
        assert_eq!(parse(&m.to_json()).unwrap(), m);
    }

    #[test]
    fn unknown_key_is_named_with_the_file() {
        let text = SEG_JSON.replace(
            "\"threshold\": 0.5,",
            "\"threshold\": 0.5, \"thresold\": 1,",
        );
        let e = parse(&text).unwrap_err().to_string();
        assert!(
            e.starts_with("m/model.json: ") && e.contains("thresold"),
            "{e}"
        );
        let text = SEG_JSON.replace(
            "\"height\": 256, \"width\": 256, \"color\"",
            "\"height\": 256, \"width\": 256, \"colour\": 1, \"color\"",
        );
        let e = parse(&text).unwrap_err().to_string();
        assert!(e.contains("colour") && e.contains("input"), "{e}");
    }

    #[test]
    fn wrong_types_and_values_name_the_field() {
        let e = parse(&SEG_JSON.replace(
            "\"height\": 256, \"width\": 256, \"color\"",
            "\"height\": \"x\", \"width\": 256, \"color\"",
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("input.height"), "{e}");
        let e = parse(&SEG_JSON.replace("\"schema\": 1", "\"schema\": 2"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("'schema'"), "{e}");
        let e = parse(
            &SEG_JSON
                .replace("\"std\":  [1.0", "\"std\": [0.0")
                .replace("\"std\": [1.0", "\"std\": [0.0"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("input.std[0]"), "{e}");
        let e = parse(&SEG_JSON.replace("\"threshold\": 0.5,", ""))
            .unwrap_err()
            .to_string();
        assert!(e.contains("'threshold'"), "{e}");
        let e = parse(&SEG_JSON.replace("\"boundary_f\"", "\"absrel\""))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("metrics.seg-composites.pytorch_f32.absrel"),
            "{e}"
        );
        let e = parse(&SEG_JSON.replace("\"task\": \"segmentation\"", "\"task\": \"depth\""))
            .unwrap_err()
            .to_string();
        assert!(e.contains("output.kind"), "{e}");
        let e = parse("{\"schema\": 1,").unwrap_err().to_string();
        assert!(e.starts_with("m/model.json: ") && !e.contains('\n'), "{e}");
    }

    #[test]
    fn model_dir_checks_files_and_writes_metrics_atomically() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        let e = ModelDir::open(d).unwrap_err().to_string();
        assert!(e.contains("no model.json"), "{e}");
        std::fs::write(d.join("model.json"), SEG_JSON).unwrap();
        let e = ModelDir::open(d).unwrap_err().to_string();
        assert!(
            e.contains("files.onnx") && e.contains("does not exist"),
            "{e}"
        );
        for f in [
            "model.onnx",
            "model_lowered.onnx",
            "model.safetensors",
            "bilinear/model.onnx",
        ] {
            std::fs::create_dir_all(d.join(f).parent().unwrap()).unwrap();
            std::fs::write(d.join(f), b"x").unwrap();
        }
        let mut md = ModelDir::open(d).unwrap();
        assert_eq!(
            md.onnx_path(Variant::Bilinear).unwrap(),
            d.join("bilinear/model.onnx")
        );
        let mut m = Metrics::new();
        m.insert("iou".into(), 0.123_456_789);
        m.insert("miou".into(), 0.5);
        m.insert("boundary_f".into(), 0.25);
        md.write_metrics("seg-composites", "ort_custom_f32", &m)
            .unwrap();
        let again = ModelDir::open(d).unwrap();
        let rows = &again.model.metrics["seg-composites"];
        assert_eq!(rows["ort_custom_f32"]["iou"], 0.123457);
        assert_eq!(rows["pytorch_f32"]["iou"], 0.91, "other rows kept");
        assert_eq!(again.model.name, "person-seg");
        // No temporary file left behind.
        let left: Vec<_> = std::fs::read_dir(d)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".tmp"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
        // A metric the task does not have is refused and the file is unchanged.
        m.insert("absrel".into(), 0.1);
        let before = std::fs::read_to_string(d.join("model.json")).unwrap();
        assert!(md.write_metrics("seg-composites", "x", &m).is_err());
        assert_eq!(
            std::fs::read_to_string(d.join("model.json")).unwrap(),
            before
        );
    }

    /// Concurrent writers (the training scripts run evals in parallel) lose no row.
    #[test]
    fn concurrent_metric_writes_keep_every_row() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().to_path_buf();
        std::fs::write(d.join("model.json"), SEG_JSON).unwrap();
        for f in [
            "model.onnx",
            "model_lowered.onnx",
            "model.safetensors",
            "bilinear/model.onnx",
        ] {
            std::fs::create_dir_all(d.join(f).parent().unwrap()).unwrap();
            std::fs::write(d.join(f), b"x").unwrap();
        }
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let d = d.clone();
                std::thread::spawn(move || {
                    let mut md = ModelDir::open(&d).unwrap();
                    let m = Metrics::from([("iou".to_string(), i as f64 / 10.0)]);
                    md.write_metrics("s", &format!("row{i}"), &m).unwrap();
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let md = ModelDir::open(&d).unwrap();
        assert_eq!(md.model.metrics["s"].len(), 8, "{:?}", md.model.metrics);
        assert_eq!(md.model.metrics["s"]["row7"]["iou"], 0.7);
    }

    #[test]
    fn reference_pairs_sorted_and_complete() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        std::fs::write(d.join("model.json"), SEG_JSON.replace(", \"onnx_lowered\": \"model_lowered.onnx\",\n                \"safetensors\": \"model.safetensors\", \"onnx_bilinear\": \"bilinear/model.onnx\"", "")).unwrap();
        std::fs::write(d.join("model.onnx"), b"x").unwrap();
        let md = ModelDir::open(d).unwrap();
        assert!(md
            .onnx_path(Variant::Lowered)
            .unwrap_err()
            .to_string()
            .contains("files.onnx_lowered"));
        assert!(md.reference_pairs().unwrap().is_empty());
        std::fs::create_dir(d.join("reference")).unwrap();
        for f in [
            "input_10.npy",
            "output_10.npy",
            "input_2.npy",
            "output_2.npy",
        ] {
            std::fs::write(d.join("reference").join(f), b"").unwrap();
        }
        let p = md.reference_pairs().unwrap();
        assert_eq!(p.len(), 2);
        assert!(p[0].0.ends_with("input_2.npy") && p[1].1.ends_with("output_10.npy"));
        std::fs::write(d.join("reference/input_3.npy"), b"").unwrap();
        let e = md.reference_pairs().unwrap_err().to_string();
        assert!(
            e.contains("input_3.npy") && e.contains("output_3.npy"),
            "{e}"
        );
    }
}
