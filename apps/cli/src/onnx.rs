//! `dysample onnx {info,lower,fuse,run}`: DySample inside whole ONNX models.

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use dysample::onnx::graph::{self, fuse};
use dysample::onnx::session::{Provider, SessionOptions, TensorRtOptions};
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
pub struct OnnxArgs {
    #[command(subcommand)]
    command: OnnxCommand,
}

#[derive(Subcommand, Debug)]
enum OnnxCommand {
    /// Inputs, outputs and the DySample nodes with their configs.
    Info {
        model: PathBuf,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Replace every DySample node by standard ONNX ops (GridSample, opset >= 16), e.g. for TensorRT.
    Lower { input: PathBuf, output: PathBuf },
    /// Replace the subgraphs torch.onnx.export wrote for DySample layers by DySample nodes.
    Fuse {
        input: PathBuf,
        output: PathBuf,
        /// Fuse on structure alone, without running each match in ONNX Runtime against the kernel.
        #[arg(long)]
        no_verify: bool,
        /// ONNX Runtime library for the verification (see `onnx run --help`).
        #[arg(long, value_name = "PATH")]
        ort_lib: Option<PathBuf>,
    },
    /// Run a single-input model in ONNX Runtime (DySample nodes on the SDK kernels); writes the first output.
    Run(RunArgs),
}

#[derive(Args, Debug)]
struct RunArgs {
    model: PathBuf,
    /// Input, a float32 .npy (converted to float16 if the model's input is float16).
    #[arg(long)]
    input: PathBuf,
    /// Where to write the first output as float32 .npy.
    #[arg(long)]
    output: PathBuf,
    /// Execution providers in priority order, comma-separated: cpu, cuda, tensorrt, xnnpack, acl.
    #[arg(long, default_value = "cpu", value_delimiter = ',')]
    ep: Vec<String>,
    /// Intra-op threads, 1 ..= 256, shared with the DySample kernels (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Skip requested providers this ONNX Runtime lacks instead of failing.
    #[arg(long)]
    allow_cpu_fallback: bool,
    /// GPU index for cuda/tensorrt.
    #[arg(long, default_value_t = 0)]
    device_id: i32,
    /// TensorRT: build FP16 engines.
    #[arg(long)]
    trt_fp16: bool,
    /// TensorRT: build INT8 engines (from QDQ nodes, or with --trt-calibration-table).
    #[arg(long)]
    trt_int8: bool,
    /// TensorRT: INT8 calibration table.
    #[arg(long, value_name = "FILE")]
    trt_calibration_table: Option<PathBuf>,
    /// TensorRT: cache built engines in this directory.
    #[arg(long, value_name = "DIR")]
    trt_engine_cache: Option<PathBuf>,
    /// TensorRT: builder workspace size in MiB.
    #[arg(long, value_name = "MIB")]
    trt_workspace_mib: Option<usize>,
    /// Print which provider each node ran on (from ORT's profiler).
    #[arg(long)]
    placement: bool,
    /// ONNX Runtime library (libonnxruntime.so*). Otherwise: ORT_DYLIB_PATH, lib/ next to the
    /// executable, the Python onnxruntime package, the system library paths.
    #[arg(long, value_name = "PATH")]
    ort_lib: Option<PathBuf>,
}

pub fn onnx(args: OnnxArgs) -> Result<()> {
    match args.command {
        OnnxCommand::Info { model, json } => info(&model, json),
        OnnxCommand::Lower { input, output } => lower(&input, &output),
        OnnxCommand::Fuse {
            input,
            output,
            no_verify,
            ort_lib,
        } => fuse_cmd(&input, &output, no_verify, ort_lib),
        OnnxCommand::Run(a) => run(a),
    }
}

fn info(path: &Path, json: bool) -> Result<()> {
    let model = graph::load_model(path)?;
    let info = graph::info(&model);
    if json {
        let desc = |v: &graph::ValueDesc| serde_json::json!({"name": v.name, "dtype": v.elem, "dims": v.dims});
        let nodes: Vec<serde_json::Value> = info
            .dysample
            .iter()
            .map(|n| match &n.config {
                Ok(c) => serde_json::json!({"name": n.name, "input": n.input, "output": n.output, "dtype": n.elem, "config": c,
                    "int8": n.quant.as_ref().map(|q| serde_json::json!({"x_scale": q.input.scale, "x_zero_point": q.input.zero_point,
                        "offset_weight_scales": q.offset_weight_scales, "scope_weight_scales": q.scope_weight_scales}))}),
                Err(e) => serde_json::json!({"name": n.name, "input": n.input, "output": n.output, "error": e}),
            })
            .collect();
        let v = serde_json::json!({
            "ir_version": info.ir_version,
            "opsets": info.opsets.iter().map(|(d, v)| serde_json::json!({"domain": d, "version": v})).collect::<Vec<_>>(),
            "nodes": info.nodes,
            "inputs": info.inputs.iter().map(desc).collect::<Vec<_>>(),
            "outputs": info.outputs.iter().map(desc).collect::<Vec<_>>(),
            "dysample": nodes,
        });
        println!("{v}");
    } else {
        print!("{info}");
    }
    Ok(())
}

fn lower(input: &Path, output: &Path) -> Result<()> {
    let mut model = graph::load_model(input)?;
    let report = graph::lower::lower(&mut model).with_context(|| input.display().to_string())?;
    graph::save_model(&model, output)?;
    eprintln!(
        "lowered {} DySample node(s){}{} -> {}",
        report.lowered.len(),
        if report.lowered.is_empty() {
            String::new()
        } else {
            format!(" ({})", report.lowered.join(", "))
        },
        if report.opset.0 != report.opset.1 {
            format!("; opset {} -> {}", report.opset.0, report.opset.1)
        } else {
            String::new()
        },
        output.display()
    );
    Ok(())
}

fn fuse_cmd(input: &Path, output: &Path, no_verify: bool, ort_lib: Option<PathBuf>) -> Result<()> {
    let mut model = graph::load_model(input)?;
    // DySample nodes already in the model are written out as they are: they must be valid.
    graph::check_dysample_nodes(&model).with_context(|| input.display().to_string())?;
    graph::refuse_int8_nodes(
        &model,
        "fuse works on the f32 model exported from PyTorch: fuse it, then quantize",
    )
    .with_context(|| input.display().to_string())?;
    let analysis = fuse::analyze(&model);
    let mut accepted = Vec::new();
    let mut skipped: Vec<(String, String)> = analysis
        .skipped
        .iter()
        .map(|s| (s.anchor.clone(), s.reason.clone()))
        .collect();
    let ort_error_log = std::env::var_os("DYSAMPLE_LOG").is_some();
    let opts = SessionOptions {
        threads: 1,
        ort_lib,
        ort_error_log,
        ..SessionOptions::default()
    };
    for m in analysis.matches {
        if no_verify {
            accepted.push((m, None));
            continue;
        }
        match dysample::onnx::verify::verify_match(&model, &m, &opts) {
            Ok(rel) => accepted.push((m, Some(rel))),
            Err(e @ dysample::onnx::OnnxError::Library(_)) => {
                return Err(e)
                    .context("verifying fused subgraphs needs ONNX Runtime (or pass --no-verify)")
            }
            Err(e) => skipped.push((m.anchor.clone(), format!("numerical check failed: {e}"))),
        }
    }
    let matches: Vec<_> = accepted.iter().map(|(m, _)| m.clone()).collect();
    let names = fuse::apply(&mut model, &matches);
    graph::save_model(&model, output)?;
    for ((m, rel), name) in accepted.iter().zip(&names) {
        let check = rel.map_or("not verified".to_string(), |r| {
            format!("verified, max rel diff {r:.1e}")
        });
        eprintln!("fused     {name}: {} ({check})", m.layer.config);
    }
    for (anchor, reason) in &skipped {
        eprintln!("left alone GridSample {anchor}: {reason}");
    }
    eprintln!(
        "fused {} DySample subgraph(s), left {} alone -> {}",
        names.len(),
        skipped.len(),
        output.display()
    );
    Ok(())
}

fn run(a: RunArgs) -> Result<()> {
    let providers =
        a.ep.iter()
            .map(|p| Provider::parse(p.trim()))
            .collect::<Result<Vec<_>, _>>()
            .context("--ep")?;
    if let Some(n) = a.threads {
        let max = dysample::layer::MAX_THREADS;
        if !(1..=max).contains(&n) {
            bail!("--threads must be in 1..={max}, got {n}");
        }
    }
    if a.trt_calibration_table.is_some() && !a.trt_int8 {
        bail!("--trt-calibration-table needs --trt-int8");
    }
    let opts = SessionOptions {
        providers,
        threads: a.threads.unwrap_or(0),
        allow_cpu_fallback: a.allow_cpu_fallback,
        tensorrt: TensorRtOptions {
            fp16: a.trt_fp16,
            int8: a.trt_int8,
            int8_calibration_table: a.trt_calibration_table.clone(),
            engine_cache_dir: a.trt_engine_cache.clone(),
            workspace_size: a.trt_workspace_mib.map(|m| m << 20),
        },
        device_id: a.device_id,
        record_placement: a.placement,
        ort_lib: a.ort_lib.clone(),
        // Errors come back as one line; ORT's own copy only with DYSAMPLE_LOG set.
        ort_error_log: std::env::var_os("DYSAMPLE_LOG").is_some(),
        ..SessionOptions::default()
    };
    let x = dysample::npy::read_f32(&a.input).context("--input")?;
    dysample::tensor::check_finite(&format!("--input {}", a.input.display()), &x.data)?;
    let (dims, data) = (x.dims.clone(), &x.data[..]);

    let mut session = opts.build(&a.model)?;
    let t0 = std::time::Instant::now();
    let (odims, y) = session
        .run_f32(data, &dims)
        .with_context(|| format!("running {}", a.model.display()))?;
    let ms = t0.elapsed().as_secs_f64() * 1e3;
    dysample::npy::write_f32(&a.output, &odims, &y).context("--output")?;
    if a.placement {
        for (node, (op, provider)) in session.placement() {
            println!("{provider:<28} {op:<16} {node}");
        }
    }
    let eps: Vec<String> = session.providers().iter().map(|p| p.to_string()).collect();
    eprintln!(
        "{} {:?} -> {:?} in {ms:.3} ms (providers {}, {} threads) -> {}",
        a.model.display(),
        dims,
        odims,
        eps.join(","),
        session.threads(),
        a.output.display()
    );
    Ok(())
}
