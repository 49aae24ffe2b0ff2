//! Running a model folder through ONNX Runtime (DySample as the SDK's custom op) and evaluating
//! it on an eval set.

use crate::error::{Error, Result};
use crate::eval_set::{EvalSet, Target, TargetKind};
use crate::metrics::{DepthMetrics, Metrics, SegmentationMetrics};
use crate::model::{ModelDir, Task, Variant};
use crate::preprocess::{preprocess, resize_bilinear};
use dysample::onnx::session::{DySamplePrecision, DySampleSession, SessionOptions};
use image::RgbImage;
use std::path::PathBuf;
use std::time::Instant;

/// `--check` tolerance: 0.2 points (SPEC.md: Python and Rust agree to well within this).
pub const CHECK_TOLERANCE: f64 = 0.002;

/// How to run a model.
#[derive(Clone, Debug, PartialEq)]
pub struct EvalOptions {
    pub variant: Variant,
    /// Precision of the DySample nodes (custom variant only; the others have none).
    pub precision: DySamplePrecision,
    /// Intra-op threads, 0 = all cores.
    pub threads: usize,
    /// ONNX Runtime library (otherwise the usual search, see `dysample::onnx::runtime`).
    pub ort_lib: Option<PathBuf>,
}

impl EvalOptions {
    pub fn new(variant: Variant) -> Self {
        Self {
            variant,
            precision: DySamplePrecision::F32,
            threads: 0,
            ort_lib: None,
        }
    }
}

/// How a `metrics` row of SPEC.md is measured: `(variant, precision)`. PyTorch's rows are
/// reproduced by the f32 ONNX graphs.
pub fn row_setup(row: &str) -> Option<(Variant, DySamplePrecision)> {
    Some(match row {
        "pytorch_f32" | "ort_custom_f32" => (Variant::Custom, DySamplePrecision::F32),
        "sdk_f16" => (Variant::Custom, DySamplePrecision::F16),
        "sdk_int8_minmax" => (Variant::Custom, DySamplePrecision::Int8MinMax),
        "ort_lowered_f32" => (Variant::Lowered, DySamplePrecision::F32),
        "bilinear_pytorch_f32" | "bilinear_ort_f32" => (Variant::Bilinear, DySamplePrecision::F32),
        _ => return None,
    })
}

/// One model output as a single-channel `height × width` map.
#[derive(Clone, Debug, PartialEq)]
pub struct Prediction {
    pub height: usize,
    pub width: usize,
    pub values: Vec<f32>,
}

impl Prediction {
    /// Resized (bilinear, half-pixel centres) to `height × width`.
    pub fn resized(&self, height: usize, width: usize) -> Prediction {
        Prediction {
            height,
            width,
            values: resize_bilinear(&self.values, self.height, self.width, height, width),
        }
    }
}

/// A model ready to run on images, as `model.json` says.
#[derive(Debug)]
pub struct Predictor {
    model: ModelDir,
    variant: Variant,
    onnx: PathBuf,
    session: DySampleSession,
}

impl Predictor {
    /// Builds the ONNX Runtime session of `opts.variant`.
    pub fn new(model: &ModelDir, opts: &EvalOptions) -> Result<Self> {
        if opts.variant != Variant::Custom && opts.precision != DySamplePrecision::F32 {
            return Err(Error::Invalid(format!(
                "DySample precision {} needs the custom variant: the {} graph has no DySample nodes",
                opts.precision, opts.variant
            )));
        }
        let onnx = model.onnx_path(opts.variant)?;
        let session = SessionOptions {
            threads: opts.threads,
            ort_lib: opts.ort_lib.clone(),
            ort_error_log: std::env::var_os("DYSAMPLE_LOG").is_some(),
            dysample_precision: opts.precision,
            ..SessionOptions::default()
        }
        .build(&onnx)?;
        let names = session.input_names();
        let want = &model.model.input.name;
        if names.len() != 1 || &names[0] != want {
            return Err(Error::file(
                &onnx,
                format_args!(
                    "has inputs [{}], but model.json's input.name is '{want}'",
                    names.join(", ")
                ),
            ));
        }
        Ok(Self {
            model: model.clone(),
            variant: opts.variant,
            onnx,
            session,
        })
    }

    pub fn variant(&self) -> Variant {
        self.variant
    }

    pub fn session(&self) -> &DySampleSession {
        &self.session
    }

    /// Runs a preprocessed input tensor; returns the output checked against `model.json`.
    pub fn run_tensor(&mut self, x: &[f32], dims: &[usize]) -> Result<Prediction> {
        let (odims, values) = self.session.run_f32(x, dims)?;
        let o = &self.model.model.output;
        let ok = matches!(odims[..], [1, 1, h, w] | [1, h, w, 1] | [1, h, w] | [h, w] if (h, w) == (o.height, o.width));
        if !ok {
            return Err(Error::file(
                &self.onnx,
                format_args!(
                    "output has shape {odims:?}, but model.json says 1x{}x{}x{} (output.channels x height x width)",
                    o.channels, o.height, o.width
                ),
            ));
        }
        Ok(Prediction {
            height: o.height,
            width: o.width,
            values,
        })
    }

    /// Preprocesses an RGB frame (stretch, colour order, mean/std) and runs the model.
    pub fn predict(&mut self, img: &RgbImage) -> Result<Prediction> {
        let (x, dims) = preprocess(img, &self.model.model.input);
        self.run_tensor(&x, &dims)
    }
}

/// The result of [`evaluate`].
#[derive(Clone, Debug, PartialEq)]
pub struct EvalReport {
    pub model: String,
    pub set: String,
    pub task: Task,
    pub variant: Variant,
    pub precision: DySamplePrecision,
    pub images: usize,
    /// Wall time of the whole evaluation (decode, preprocess, inference, metrics).
    pub seconds: f64,
    pub metrics: Metrics,
}

/// Runs `model` on every sample of `set` and computes the set's metrics (SPEC.md).
pub fn evaluate(model: &ModelDir, set: &EvalSet, opts: &EvalOptions) -> Result<EvalReport> {
    if model.model.task != set.task() {
        return Err(Error::Invalid(format!(
            "{} is a {} model but {} is a {} set",
            model.json_path.display(),
            model.model.task,
            set.manifest_path.display(),
            set.task()
        )));
    }
    let t0 = Instant::now();
    let mut predictor = Predictor::new(model, opts)?;
    let mut seg = SegmentationMetrics::new();
    let mut depth = DepthMetrics::new();
    let threshold = model.model.threshold.unwrap_or(0.5);
    for i in 0..set.len() {
        let sample = set.load(i)?;
        let pred = predictor.predict(&sample.image).map_err(|e| match e {
            Error::Onnx(o) => Error::Invalid(format!("sample '{}': {o}", sample.id)),
            other => other,
        })?;
        let (th, tw) = sample.target.size();
        let pred = pred.resized(th, tw);
        match &sample.target {
            Target::Mask { mask, .. } => {
                let p: Vec<bool> = pred.values.iter().map(|&v| v > threshold).collect();
                let f = seg.add(&p, mask, th, tw);
                tracing::debug!(id = %sample.id, boundary_f = f, "segmentation sample");
            }
            Target::Depth { values, .. } => {
                let kind = set.target_kind().unwrap_or(TargetKind::Depth);
                let r = depth
                    .add(&pred.values, values, kind)
                    .map_err(|e| Error::file(&sample.target_path, e))?;
                tracing::debug!(id = %sample.id, absrel = r.absrel, delta1 = r.delta1, scale = r.scale, shift = r.shift, "depth sample");
            }
        }
    }
    let metrics = match set.task() {
        Task::Segmentation => seg.finish(),
        Task::Depth => depth.finish(),
    };
    let seconds = t0.elapsed().as_secs_f64();
    tracing::info!(model = %model.model.name, set = %set.name(), variant = %opts.variant, precision = %opts.precision, images = set.len(), seconds, "evaluated");
    Ok(EvalReport {
        model: model.model.name.clone(),
        set: set.name().to_string(),
        task: set.task(),
        variant: opts.variant,
        precision: opts.precision,
        images: set.len(),
        seconds,
        metrics,
    })
}

/// A metric that differs from its stored value by more than the tolerance, or is missing.
#[derive(Clone, Debug, PartialEq)]
pub struct Mismatch {
    pub metric: String,
    pub stored: Option<f64>,
    pub measured: Option<f64>,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.stored, self.measured) {
            (Some(s), Some(m)) => write!(
                f,
                "{} {m:.4} differs from the stored {s:.4} by {:.4}",
                self.metric,
                (m - s).abs()
            ),
            (None, Some(m)) => write!(f, "{} {m:.4} is not stored", self.metric),
            (Some(s), None) => write!(f, "{} (stored {s:.4}) was not measured", self.metric),
            (None, None) => write!(f, "{} missing", self.metric),
        }
    }
}

/// Every metric of `task` whose measured and stored values differ by more than `tol` (or that
/// one side lacks).
pub fn compare(task: Task, stored: &Metrics, measured: &Metrics, tol: f64) -> Vec<Mismatch> {
    task.metric_names()
        .iter()
        .filter_map(|&name| {
            let (s, m) = (stored.get(name).copied(), measured.get(name).copied());
            let bad = match (s, m) {
                (Some(s), Some(m)) => (s - m).abs().is_nan() || (s - m).abs() > tol,
                _ => true,
            };
            bad.then(|| Mismatch {
                metric: name.to_string(),
                stored: s,
                measured: m,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_map_to_variants() {
        assert_eq!(
            row_setup("sdk_int8_minmax"),
            Some((Variant::Custom, DySamplePrecision::Int8MinMax))
        );
        assert_eq!(
            row_setup("bilinear_ort_f32"),
            Some((Variant::Bilinear, DySamplePrecision::F32))
        );
        assert_eq!(row_setup("nope"), None);
    }

    #[test]
    fn compare_uses_the_tolerance_and_names_the_metric() {
        let stored = Metrics::from([("absrel".into(), 0.100), ("delta1".into(), 0.900)]);
        let measured = Metrics::from([("absrel".into(), 0.1019), ("delta1".into(), 0.8970)]);
        let m = compare(Task::Depth, &stored, &measured, CHECK_TOLERANCE);
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].metric, "delta1");
        assert!(m[0].to_string().contains("delta1 0.8970"), "{}", m[0]);
        let measured = Metrics::from([("absrel".into(), f64::NAN)]);
        let m = compare(Task::Depth, &stored, &measured, CHECK_TOLERANCE);
        assert_eq!(m.len(), 2, "NaN and missing both fail");
    }
}
