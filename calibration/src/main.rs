//! `dysample-calibrate`: see the crate docs and `--help`.

use clap::Parser;
use dysample_calibrate::collect::RunOptions;
use dysample_calibrate::methods::Method;
use dysample_calibrate::pipeline::{self, Options, Target};
use dysample_calibrate::report::ReportOptions;
use std::path::PathBuf;
use std::process::ExitCode;

/// Picks int8 scales for a whole trained DySample model and writes what each runtime needs.
#[derive(Parser, Debug)]
#[command(name = "dysample-calibrate", version)]
struct Cli {
    /// f32 ONNX model (custom-op or lowered form), or a model folder holding model.json.
    #[arg(long, value_name = "FILE|DIR")]
    model: PathBuf,
    /// model.json saying how images are preprocessed (default: beside the model).
    #[arg(long, value_name = "FILE")]
    model_json: Option<PathBuf>,
    /// Calibration data: a directory or glob of PNG/JPEG images, or .npy/.npz tensors (NCHW f32, preprocessed).
    #[arg(long, value_name = "DIR|GLOB")]
    data: String,
    /// Use at most N samples (in sorted order).
    #[arg(long, value_name = "N")]
    samples: Option<usize>,
    /// minmax, percentile[:P] (default P = 99.99), entropy (TensorRT's KL divergence) or mse.
    /// The default, percentile, had the smallest agreement drop on the calibration samples of
    /// both shipped models (docs/calibration/README.md).
    #[arg(long, default_value = "percentile")]
    method: String,
    /// Zero point 0 for the CPU target and the SDK parameters (always so for tensorrt).
    #[arg(long)]
    symmetric: bool,
    /// What to write, comma-separated: cpu, tensorrt, sdk.
    #[arg(long, value_delimiter = ',', default_value = "cpu,sdk")]
    target: Vec<String>,
    /// Output directory (written all at once at the end; nothing is left on error).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Nodes to keep in float, comma-separated (names as in report.md).
    #[arg(long, value_delimiter = ',')]
    exclude: Vec<String>,
    /// Keep the DySample nodes f32 in the CPU model (between DequantizeLinear and QuantizeLinear).
    #[arg(long)]
    float_dysample: bool,
    /// CPU model's int8 weights: reduced (±63; ONNX Runtime's U8S8 kernels on x86 without VNNI
    /// saturate with ±127) or full (±127, for VNNI/AMX/ARM hosts). TensorRT's are always full.
    #[arg(long, default_value = "reduced")]
    weight_range: String,
    /// Leave the float graph as it is instead of rewriting it so that ONNX Runtime fuses the
    /// int8 graph end to end (zero Pads into Convs, ReduceMean → GlobalAveragePool, HardSwish →
    /// x·HardSigmoid(x), all exact in float). Faster int8 with the rewrites; without them the
    /// HardSwish and squeeze-excite means stay float, which costs speed but, on person-seg,
    /// less accuracy (docs/calibration/README.md), and is what the QAT model was trained for.
    #[arg(long)]
    no_fusion: bool,
    /// TensorRT version for the cache's first line (major*1000 + minor*100 + patch; 8502 = JetPack 5.1).
    #[arg(long, default_value_t = dysample_calibrate::trt_cache::DEFAULT_VERSION)]
    trt_version: u32,
    /// Write report.md, report.json and sqnr.png (per-tensor SQNR; with --sensitivity per layer).
    #[arg(long)]
    report: bool,
    /// Per-layer sensitivity in the report: only this layer int8, everything but this layer int8.
    #[arg(long)]
    sensitivity: bool,
    /// Calibration samples used for the SQNR and sensitivity measurements.
    #[arg(long, default_value_t = 8)]
    report_samples: usize,
    /// Eval set folder(s) for the report's task metric (fp32, all-int8, with exclusions).
    #[arg(long, value_name = "DIR")]
    eval_set: Vec<PathBuf>,
    /// Exclude layers greedily (most helpful first) until the agreement drop with fp32 on the
    /// report samples is at most X (segmentation: 1 - IoU; depth: AbsRel); writes model_int8_mixed.onnx.
    #[arg(long, value_name = "X")]
    max_drop: Option<f64>,
    /// Intra-op threads (default: all cores).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// ONNX Runtime library (otherwise ORT_DYLIB_PATH, python3's onnxruntime, system paths).
    #[arg(long, value_name = "PATH")]
    ort_lib: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

fn options(c: Cli) -> dysample_calibrate::Result<Options> {
    let method = Method::parse(&c.method).map_err(dysample_calibrate::CalibError::msg)?;
    let targets = c
        .target
        .iter()
        .map(|t| Target::parse(t))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(x) = c.max_drop {
        if !(x.is_finite() && x >= 0.0) {
            return Err(dysample_calibrate::CalibError::msg(format!(
                "--max-drop {x}: must be a number >= 0"
            )));
        }
    }
    let report = (c.report || c.sensitivity || c.max_drop.is_some() || !c.eval_set.is_empty())
        .then(|| ReportOptions {
            eval_sets: c.eval_set.clone(),
            sensitivity: c.sensitivity,
            samples: c.report_samples,
            max_drop: c.max_drop,
        });
    Ok(Options {
        model: c.model,
        model_json: c.model_json,
        input_spec: None,
        data: c.data,
        samples: c.samples,
        method,
        symmetric: c.symmetric,
        targets,
        out: c.out,
        run: RunOptions {
            threads: c.threads,
            ort_lib: c.ort_lib,
            progress: !c.quiet,
        },
        exclude: c.exclude.into_iter().collect(),
        float_dysample: c.float_dysample,
        weight_range: dysample_calibrate::qdq::WeightRange::parse(&c.weight_range)?,
        fusion: !c.no_fusion,
        trt_version: c.trt_version,
        report,
    })
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("DYSAMPLE_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let res = options(cli).and_then(|o| pipeline::run(&o));
    match res {
        Ok(s) => {
            println!(
                "calibrated {} tensors on {} samples in {:.1} s",
                s.tensors, s.samples, s.seconds
            );
            for f in s.files {
                println!("wrote {}", f.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
