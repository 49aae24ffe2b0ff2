//! `dysample eval`: a model folder's metrics on an eval set (models/SPEC.md), through ONNX
//! Runtime with DySample on the SDK kernels; `--check ROW` compares with `model.json`,
//! `--write ROW` stores them there.

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use dysample_models::{
    compare, evaluate, row_setup, DySamplePrecision, EvalOptions, EvalReport, EvalSet, ModelDir,
    Variant, CHECK_TOLERANCE,
};
use std::path::PathBuf;

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum VariantArg {
    /// model.onnx: DySample nodes as the SDK's custom op.
    Custom,
    /// model_lowered.onnx: standard ops only.
    Lowered,
    /// bilinear/model.onnx: the bilinear twin.
    Bilinear,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrecisionArg {
    F32,
    F16,
    /// int8 with min/max parameters calibrated on each call's input.
    Int8,
}

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// Model folder (holds model.json).
    #[arg(long, value_name = "DIR")]
    model: PathBuf,
    /// Eval set folder (holds manifest.json).
    #[arg(long, value_name = "DIR")]
    set: PathBuf,
    /// Which graph to run (default: custom, or what --check/--write ROW is measured with).
    #[arg(long, value_enum)]
    variant: Option<VariantArg>,
    /// Precision of the DySample nodes (custom variant; default f32, or as ROW says).
    #[arg(long, value_enum)]
    dysample_precision: Option<PrecisionArg>,
    /// Intra-op threads, shared with the DySample kernels (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// ONNX Runtime library (otherwise ORT_DYLIB_PATH, lib/ beside the binary, python3's onnxruntime, system paths).
    #[arg(long, value_name = "PATH")]
    ort_lib: Option<PathBuf>,
    /// Evaluate this ONNX file instead of the folder's (e.g. the int8 model dysample-calibrate
    /// wrote), with the folder's model.json for preprocessing and output; implies --variant custom.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["variant", "write", "check"])]
    onnx: Option<PathBuf>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// Compare with model.json's metrics of this set's ROW; exit 1 naming each metric that differs by more than 0.002.
    #[arg(long, value_name = "ROW", conflicts_with = "write")]
    check: Option<String>,
    /// Store the metrics as model.json's metrics of this set's ROW (atomic rewrite).
    #[arg(long, value_name = "ROW")]
    write: Option<String>,
}

/// `--check` found metrics that differ: exit status 1 (errors are 2).
#[derive(Debug)]
pub struct CheckFailed(pub String);

impl std::fmt::Display for CheckFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CheckFailed {}

fn variant_of(v: VariantArg) -> Variant {
    match v {
        VariantArg::Custom => Variant::Custom,
        VariantArg::Lowered => Variant::Lowered,
        VariantArg::Bilinear => Variant::Bilinear,
    }
}

fn precision_of(p: PrecisionArg) -> DySamplePrecision {
    match p {
        PrecisionArg::F32 => DySamplePrecision::F32,
        PrecisionArg::F16 => DySamplePrecision::F16,
        PrecisionArg::Int8 => DySamplePrecision::Int8MinMax,
    }
}

/// The variant and precision to run: the flags, or what ROW is measured with (flags that
/// contradict a known row are an error, so a row is never filled by the wrong setup).
fn setup(a: &EvalArgs) -> Result<(Variant, DySamplePrecision)> {
    let flag_v = a.variant.map(variant_of);
    let flag_p = a.dysample_precision.map(precision_of);
    let row = a.check.as_deref().or(a.write.as_deref());
    let flag = if a.check.is_some() {
        "--check"
    } else {
        "--write"
    };
    if let Some((rv, rp)) = row.and_then(row_setup) {
        let row = row.unwrap_or_default();
        if flag_v.is_some_and(|v| v != rv) || flag_p.is_some_and(|p| p != rp) {
            bail!(
                "{flag} {row}: that row is measured with --variant {rv} --dysample-precision {rp}, not --variant {} --dysample-precision {}",
                flag_v.unwrap_or(rv),
                flag_p.unwrap_or(rp)
            );
        }
        if a.write.is_some() && row.contains("pytorch") {
            bail!("--write {row}: that row is PyTorch's own figure (the training scripts write it); dysample eval can only --check against it");
        }
        return Ok((rv, rp));
    }
    Ok((
        flag_v.unwrap_or(Variant::Custom),
        flag_p.unwrap_or(DySamplePrecision::F32),
    ))
}

pub fn eval(a: EvalArgs) -> Result<()> {
    if a.threads == Some(0) {
        bail!("--threads must be >= 1");
    }
    for (flag, row) in [("--check", &a.check), ("--write", &a.write)] {
        if row.as_deref().is_some_and(|r| r.trim().is_empty()) {
            bail!("{flag}: the row name must not be empty");
        }
    }
    let (variant, precision) = setup(&a)?;
    let mut model = ModelDir::open(&a.model)?;
    if let Some(f) = &a.onnx {
        if !f.is_file() {
            bail!("--onnx {}: no such file", f.display());
        }
        let abs = std::path::absolute(f).with_context(|| format!("--onnx {}", f.display()))?;
        model.model.files.onnx = abs.display().to_string();
    }
    let set = EvalSet::open(&a.set)?;
    let stored = match &a.check {
        Some(row) => Some(
            model
                .model
                .metrics
                .get(set.name())
                .and_then(|rows| rows.get(row))
                .cloned()
                .with_context(|| {
                    format!(
                        "--check {row}: {} has no metrics[\"{}\"][\"{row}\"]",
                        model.json_path.display(),
                        set.name()
                    )
                })?,
        ),
        None => None,
    };
    let opts = EvalOptions {
        variant,
        precision,
        threads: a.threads.unwrap_or(0),
        ort_lib: a.ort_lib.clone(),
    };
    let report = evaluate(&model, &set, &opts)?;
    let mismatches = stored
        .as_ref()
        .map(|s| compare(report.task, s, &report.metrics, CHECK_TOLERANCE))
        .unwrap_or_default();

    if a.json {
        let mut v = serde_json::json!({
            "model": report.model,
            "set": report.set,
            "task": report.task.name(),
            "variant": report.variant.name(),
            "dysample_precision": report.precision.name(),
            "images": report.images,
            "seconds": report.seconds,
            "metrics": report.metrics,
        });
        if let (Some(row), Some(s)) = (&a.check, &stored) {
            v["check"] = serde_json::json!({
                "row": row,
                "stored": s,
                "tolerance": CHECK_TOLERANCE,
                "ok": mismatches.is_empty(),
                "failed": mismatches.iter().map(|m| m.metric.clone()).collect::<Vec<_>>(),
            });
        }
        println!("{v}");
    } else {
        print_table(&report, &set, stored.as_ref());
    }

    if let Some(row) = &a.write {
        model.write_metrics(set.name(), row, &report.metrics)?;
        eprintln!(
            "wrote metrics[\"{}\"][\"{row}\"] to {}",
            set.name(),
            model.json_path.display()
        );
    }
    if !mismatches.is_empty() {
        let list: Vec<String> = mismatches.iter().map(|m| m.to_string()).collect();
        return Err(CheckFailed(format!(
            "--check {}: {} (tolerance {CHECK_TOLERANCE}, {})",
            a.check.as_deref().unwrap_or_default(),
            list.join("; "),
            model.json_path.display()
        ))
        .into());
    }
    Ok(())
}

fn print_table(r: &EvalReport, set: &EvalSet, stored: Option<&dysample_models::Metrics>) {
    println!(
        "model {}  set {} ({:?}, {} images)  variant {}  dysample precision {}  {:.2} s",
        r.model, r.set, set.manifest.kind, r.images, r.variant, r.precision, r.seconds
    );
    match stored {
        None => {
            println!("{:<12} {:>8}", "metric", "value");
            for name in r.task.metric_names() {
                println!("{name:<12} {:>8.4}", r.metrics[*name]);
            }
        }
        Some(s) => {
            println!(
                "{:<12} {:>8} {:>8} {:>8}",
                "metric", "value", "stored", "diff"
            );
            for name in r.task.metric_names() {
                let v = r.metrics[*name];
                match s.get(*name) {
                    Some(sv) => println!(
                        "{name:<12} {v:>8.4} {sv:>8.4} {:>+8.4}{}",
                        v - sv,
                        if (v - sv).abs() <= CHECK_TOLERANCE {
                            ""
                        } else {
                            "  FAIL"
                        }
                    ),
                    None => println!("{name:<12} {v:>8.4} {:>8} {:>8}  FAIL", "-", "-"),
                }
            }
        }
    }
}
