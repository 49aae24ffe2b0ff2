//! `dysample onnx {info,lower,fuse,run,bench}`: DySample inside whole ONNX models.

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
    /// Time a whole single-input model in ONNX Runtime: median, p10/p90 of timed runs, and
    /// per-op-type kernel time from ORT's profiler (a separate, profiled session).
    Bench(BenchArgs),
}

#[derive(Args, Debug)]
struct BenchArgs {
    /// The ONNX model (or give --model DIR).
    #[arg(value_name = "MODEL")]
    file: Option<PathBuf>,
    /// Model folder (model.json): its graph (see --variant) and its input shape [1, 3, H, W].
    #[arg(long = "model", value_name = "DIR")]
    model_dir: Option<PathBuf>,
    /// With --model: which graph (default custom).
    #[arg(long, value_enum, requires = "model_dir")]
    variant: Option<crate::eval::VariantArg>,
    /// Input, a float32 .npy (default: uniform [0, 1) noise of --shape, model.json's or the
    /// model's declared input shape).
    #[arg(long)]
    input: Option<PathBuf>,
    /// Input shape for the generated input, comma-separated (e.g. 1,3,256,256).
    #[arg(long, value_delimiter = ',', conflicts_with = "input")]
    shape: Option<Vec<usize>>,
    /// Intra-op threads, shared with the DySample kernels.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Precision of the DySample nodes (int8: min/max calibrated on each call's input).
    #[arg(long, value_enum, default_value = "f32")]
    dysample_precision: crate::eval::PrecisionArg,
    /// Untimed runs first.
    #[arg(long, default_value_t = 5)]
    warmup: usize,
    /// Timed runs.
    #[arg(long, default_value_t = 30)]
    iters: usize,
    /// Runs of the separate profiled session for the per-op-type table (0: no table).
    #[arg(long, default_value_t = 10)]
    profile_runs: usize,
    /// Execution providers in priority order (see `onnx run`).
    #[arg(long, default_value = "cpu", value_delimiter = ',')]
    ep: Vec<String>,
    /// Let ORT's intra-op threads spin-wait between nodes (ORT's default; off in the SDK).
    #[arg(long)]
    ort_spinning: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// ONNX Runtime library (see `onnx run --help`).
    #[arg(long, value_name = "PATH")]
    ort_lib: Option<PathBuf>,
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
        OnnxCommand::Bench(a) => bench(a),
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

/// The model file, its input (data, dims) and what that input is, for `onnx bench`.
fn bench_input(a: &BenchArgs) -> Result<(PathBuf, Vec<f32>, Vec<usize>, String)> {
    let (model, json_dims) = match (&a.file, &a.model_dir) {
        (Some(_), Some(_)) => bail!("give either MODEL or --model DIR, not both"),
        (None, None) => bail!("give the model: MODEL or --model DIR"),
        (Some(f), None) => (f.clone(), None),
        (None, Some(d)) => {
            let dir = dysample_models::ModelDir::open(d).context("--model")?;
            let v = match a.variant.unwrap_or(crate::eval::VariantArg::Custom) {
                crate::eval::VariantArg::Custom => dysample_models::Variant::Custom,
                crate::eval::VariantArg::Lowered => dysample_models::Variant::Lowered,
                crate::eval::VariantArg::Bilinear => dysample_models::Variant::Bilinear,
            };
            let i = &dir.model.input;
            let dims = match i.layout {
                dysample_models::model::TensorLayout::Nchw => vec![1, 3, i.height, i.width],
                dysample_models::model::TensorLayout::Nhwc => vec![1, i.height, i.width, 3],
            };
            (dir.onnx_path(v)?, Some(dims))
        }
    };
    if let Some(p) = &a.input {
        let x = dysample::npy::read_f32(p).context("--input")?;
        dysample::tensor::check_finite(&format!("--input {}", p.display()), &x.data)?;
        return Ok((model, x.data, x.dims, p.display().to_string()));
    }
    let dims = match (&a.shape, json_dims) {
        (Some(s), _) => s.clone(),
        (None, Some(d)) => d,
        (None, None) => {
            let m = graph::load_model(&model)?;
            let info = graph::info(&m);
            let [inp] = info.inputs.as_slice() else {
                bail!(
                    "{}: has {} inputs; onnx bench runs single-input models",
                    model.display(),
                    info.inputs.len()
                );
            };
            inp.dims
                .iter()
                .map(|d| d.parse::<usize>().ok().filter(|&v| v > 0))
                .collect::<Option<Vec<_>>>()
                .with_context(|| {
                    format!(
                        "{}: input '{}' has dims [{}], not all fixed: give --shape or --input",
                        model.display(),
                        inp.name,
                        inp.dims.join(", ")
                    )
                })?
        }
    };
    if dims.is_empty() || dims.contains(&0) {
        bail!("--shape {dims:?}: every dim must be >= 1");
    }
    let n = dims
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .filter(|&n| n <= 1 << 30)
        .with_context(|| format!("--shape {dims:?}: more than 2^30 values"))?;
    use rand::{Rng, SeedableRng};
    let mut r = rand::rngs::StdRng::seed_from_u64(0);
    let data = (0..n).map(|_| r.gen_range(0.0f32..1.0)).collect();
    Ok((
        model,
        data,
        dims.clone(),
        format!("uniform [0, 1) noise {dims:?}"),
    ))
}

fn bench(a: BenchArgs) -> Result<()> {
    use crate::bench::{percentile, MAX_ITERS};
    let max = dysample::layer::MAX_THREADS;
    if !(1..=max).contains(&a.threads) {
        bail!("--threads must be in 1..={max}, got {}", a.threads);
    }
    if a.iters == 0 || a.iters > MAX_ITERS || a.warmup > MAX_ITERS || a.profile_runs > MAX_ITERS {
        bail!(
            "--iters must be in 1..={MAX_ITERS}, --warmup and --profile-runs at most {MAX_ITERS}"
        );
    }
    let providers =
        a.ep.iter()
            .map(|p| Provider::parse(p.trim()))
            .collect::<Result<Vec<_>, _>>()
            .context("--ep")?;
    let precision = match a.dysample_precision {
        crate::eval::PrecisionArg::F32 => dysample::onnx::session::DySamplePrecision::F32,
        crate::eval::PrecisionArg::F16 => dysample::onnx::session::DySamplePrecision::F16,
        crate::eval::PrecisionArg::Int8 => dysample::onnx::session::DySamplePrecision::Int8MinMax,
    };
    let (model, data, dims, input_desc) = bench_input(&a)?;
    let opts = SessionOptions {
        providers,
        threads: a.threads,
        ort_lib: a.ort_lib.clone(),
        ort_error_log: std::env::var_os("DYSAMPLE_LOG").is_some(),
        dysample_precision: precision,
        intra_op_spinning: a.ort_spinning,
        ..SessionOptions::default()
    };
    let run_ctx = || format!("running {}", model.display());

    // Timed runs: a session without the profiler, input and output bound once (IoBinding, as
    // the demos run a model), so a run's time is ORT's and the kernels', not a fresh output's
    // page faults or copies.
    let mut session = opts.build(&model)?;
    let mut run = session.prepare_f32(&dims).with_context(run_ctx)?;
    run.set_input(&data).with_context(run_ctx)?;
    run.run(&mut session).with_context(run_ctx)?;
    let (odims, bound) = (run.output_dims().to_vec(), run.is_bound());
    for _ in 1..a.warmup {
        run.run(&mut session).with_context(run_ctx)?;
    }
    let mut times = Vec::with_capacity(a.iters);
    for _ in 0..a.iters {
        let t0 = std::time::Instant::now();
        run.run(&mut session).with_context(run_ctx)?;
        times.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    drop(run);
    drop(session);
    times.sort_by(f64::total_cmp);
    let median = percentile(&times, 0.5);
    let (p10, p90) = (percentile(&times, 0.1), percentile(&times, 0.9));

    // Per-op-type time: a second session with ORT's profiler, warmed up by one run of its own
    // whose events are left out (the first run allocates).
    let by_op = if a.profile_runs > 0 {
        let mut prof = SessionOptions {
            record_placement: true,
            ..opts.clone()
        }
        .build(&model)?;
        let p = prof
            .run_profiled(&data, &dims, a.profile_runs + 1)
            .with_context(run_ctx)?;
        let trimmed = p.skip_runs(p.runs.len().saturating_sub(a.profile_runs));
        Some((trimmed.by_op_type(a.profile_runs), trimmed.runs))
    } else {
        None
    };

    if a.json {
        let v = serde_json::json!({
            "model": model.display().to_string(),
            "input": input_desc,
            "input_dims": dims,
            "output_dims": odims,
            "threads": a.threads,
            "providers": a.ep,
            "dysample_precision": precision.name(),
            "ort_spinning": a.ort_spinning,
            "io_binding": bound,
            "warmup": a.warmup,
            "iters": a.iters,
            "median_ms": median, "p10_ms": p10, "p90_ms": p90,
            "min_ms": times[0], "max_ms": times[times.len() - 1],
            "profile_runs": a.profile_runs,
            "profiled_run_median_ms": by_op.as_ref().map(|(_, r)| {
                let mut r = r.clone();
                r.sort_by(f64::total_cmp);
                if r.is_empty() { 0.0 } else { percentile(&r, 0.5) / 1e3 }
            }),
            "op_types": by_op.as_ref().map(|(t, _)| t),
        });
        println!("{v}");
        return Ok(());
    }
    println!(
        "{}  input {input_desc}  -> {odims:?}  threads {}  dysample {}",
        model.display(),
        a.threads,
        precision
    );
    println!(
        "median {median:.3} ms  (p10 {p10:.3}, p90 {p90:.3}, min {:.3}, max {:.3}; {} runs after {} warm-up)",
        times[0],
        times[times.len() - 1],
        a.iters,
        a.warmup
    );
    if let Some((table, runs)) = by_op {
        let mut r = runs;
        r.sort_by(f64::total_cmp);
        let prof_median = if r.is_empty() {
            0.0
        } else {
            percentile(&r, 0.5) / 1e3
        };
        println!(
            "kernel time per op type ({} profiled runs, separate session; model_run median {prof_median:.3} ms):",
            a.profile_runs
        );
        println!(
            "  {:<24} {:<26} {:>5} {:>10} {:>6}",
            "op type", "provider", "nodes", "ms/run", "%"
        );
        for t in table {
            println!(
                "  {:<24} {:<26} {:>5} {:>10.3} {:>5.1}%",
                t.op_type, t.provider, t.nodes, t.ms_per_run, t.percent
            );
        }
    }
    Ok(())
}
