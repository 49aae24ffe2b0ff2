//! `dysample-demo`: live person segmentation and monocular depth with DySample models, in the
//! manner of jetson-inference's `segnet` and `depthnet`.
//!
//! ```text
//! dysample-demo segment [INPUT] [OUTPUT] [--visualize overlay|mask|composite] [--background blur|replace:IMG]
//! dysample-demo depth   [INPUT] [OUTPUT] [--colormap inferno] [--pointcloud out.ply --fov 60]
//! ```
//! INPUT: `v4l2:///dev/video0`, `/dev/video0`, `file://PATH` (image, image directory, MJPEG
//! AVI, Y4M, anything else through ffmpeg), `rtsp://...`, `builtin://`. Default: the first
//! camera, else `builtin://`. OUTPUT: `display://0`, `file://PATH` (`.png`, a directory,
//! `.avi`, `.y4m`). Default: a window when there is a display, else a PNG directory.
//! `--onnx FILE` runs another ONNX file (a calibrated int8 QDQ model) with `--model`'s
//! `model.json`.

mod app;
mod model;
mod onnx_file;
mod ort;
mod tasks;

use app::{Network, Precision, RunConfig, RunReport};
use clap::{Args, Parser, Subcommand};
use dysample::onnx::session::Provider;
use dysample_video::preprocess::{Normalize, Preprocessor};
use dysample_video::render::Colormap;
use dysample_video::sink::{display_available, open_sink};
use dysample_video::source::{open_source, SourceOptions};
use dysample_video::stats::Stage;
use dysample_video::uri::{first_camera, parse_input, parse_output, InputUri, OutputUri};
use model::{default_model_dir, Model, Task};
use onnx_file::OnnxFile;
use serde_json::json;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tasks::{Background, DepthMapper, DepthView, PointCloud, SegView, Segmenter, TaskRenderer};

#[derive(Parser, Debug)]
#[command(
    name = "dysample-demo",
    version,
    about = "Live camera person segmentation and depth with DySample models"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Person segmentation (segnet): overlay, mask, composite, background blur/replace.
    Segment(SegArgs),
    /// Monocular relative depth (depthnet): colormapped depth beside the input, point clouds.
    Depth(DepthArgs),
}

#[derive(Args, Debug, Clone)]
struct Common {
    /// Input: v4l2:///dev/videoN, /dev/videoN, file://PATH, PATH, rtsp://..., builtin://
    /// [default: the first camera, else builtin://]
    input: Option<String>,
    /// Output: display://0, file://PATH (.png, DIR/, .avi, .y4m) [default: display://0 when
    /// there is a display, else dysample-demo-out/segment/ or depth/]
    output: Option<String>,
    /// Model folder with model.json [default: models/person-seg or models/depth]
    #[arg(long)]
    model: Option<PathBuf>,
    /// Run this ONNX file instead of the model folder's own (e.g. dysample-calibrate's
    /// model_int8.onnx); pre/post-processing and classes still come from --model's model.json.
    /// An int8 QDQ file carries its own quantization: --precision must stay f32.
    #[arg(long, value_name = "FILE")]
    onnx: Option<PathBuf>,
    /// No window: write files (or nothing with --bench).
    #[arg(long)]
    headless: bool,
    /// Precision of the DySample layers: f32, f16 or int8.
    #[arg(long, default_value = "f32")]
    precision: String,
    /// Execution provider: cpu, cuda or tensorrt (GPU providers run the lowered model).
    #[arg(long, default_value = "cpu")]
    ep: String,
    /// Threads for ONNX Runtime and the DySample kernels (0 = one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Run the lowered (GridSample) model through plain ONNX Runtime instead of the SDK op.
    #[arg(long)]
    lowered: bool,
    /// Start files over at their end.
    #[arg(long = "loop")]
    looping: bool,
    /// Stop after this many frames.
    #[arg(long)]
    frames: Option<u64>,
    /// Camera width to ask for.
    #[arg(long)]
    input_width: Option<u32>,
    /// Camera height to ask for.
    #[arg(long)]
    input_height: Option<u32>,
    /// Camera frame rate to ask for.
    #[arg(long)]
    input_rate: Option<u32>,
    /// Camera pixel format: yuyv or mjpeg [default: YUYV when offered].
    #[arg(long)]
    input_codec: Option<String>,
    /// The ONNX Runtime library (else ORT_DYLIB_PATH, the Python onnxruntime package, system paths).
    #[arg(long)]
    ort_lib: Option<PathBuf>,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// No status line each second.
    #[arg(long)]
    quiet: bool,
    /// Benchmark: headless, every precision and the lowered model (and the --onnx file), per-stage times.
    #[arg(long)]
    bench: bool,
    /// Frames left out of the timing at the start (--bench).
    #[arg(long, default_value_t = 10)]
    warmup: u64,
}

#[derive(Args, Debug)]
struct SegArgs {
    #[command(flatten)]
    common: Common,
    /// overlay, mask, or composite (overlay and mask side by side; also "overlay,mask").
    #[arg(long, default_value = "overlay")]
    visualize: String,
    /// Overlay opacity, 0-255.
    #[arg(long, default_value_t = 150)]
    alpha: u8,
    /// blur, or replace:IMAGE: put the person on a blurred or another background.
    #[arg(long)]
    background: Option<String>,
}

#[derive(Args, Debug)]
struct DepthArgs {
    #[command(flatten)]
    common: Common,
    /// viridis, inferno, magma, plasma, turbo, each also -inverted.
    #[arg(long, default_value = "inferno")]
    colormap: String,
    /// composite (input and depth side by side; also "input,depth") or depth.
    #[arg(long, default_value = "composite")]
    visualize: String,
    /// Write the last frame as a coloured point cloud (binary PLY).
    #[arg(long)]
    pointcloud: Option<PathBuf>,
    /// Horizontal field of view in degrees, for the point cloud.
    #[arg(long, default_value_t = 60.0)]
    fov: f64,
    /// Focal length x in pixels of the input frame (with --fy, --cx, --cy instead of --fov).
    #[arg(long)]
    fx: Option<f64>,
    #[arg(long)]
    fy: Option<f64>,
    #[arg(long)]
    cx: Option<f64>,
    #[arg(long)]
    cy: Option<f64>,
    /// Depth of the nearest point of the cloud (relative depth has no scale).
    #[arg(long, default_value_t = 0.5)]
    near: f64,
    /// Depth of the farthest point of the cloud.
    #[arg(long, default_value_t = 10.0)]
    far: f64,
}

fn main() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        let r = ctrlc::set_handler(move || {
            if stop.swap(true, Ordering::SeqCst) {
                eprintln!("interrupted again; exiting now");
                std::process::exit(130);
            }
            eprintln!("interrupted; finishing (Ctrl-C again to exit at once)");
        });
        if let Err(e) = r {
            tracing::warn!("cannot install the Ctrl-C handler: {e}");
        }
    }
    match run(cli, stop) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("error: {}", e.replace('\n', " "));
            std::process::exit(1);
        }
    }
}

/// Builds the task's renderer for a model.
type MakeRenderer = Box<dyn Fn(&Model) -> Result<Box<dyn TaskRenderer>, String>>;

/// Everything task-specific the generic code needs.
struct TaskSetup {
    task: Task,
    model: Model,
    make: MakeRenderer,
}

fn run(cli: Cli, stop: Arc<AtomicBool>) -> Result<i32, String> {
    let (common, setup) = match cli.cmd {
        Cmd::Segment(a) => {
            let view = SegView::parse(&a.visualize)?;
            let background = a
                .background
                .as_deref()
                .map(Background::parse)
                .transpose()?
                .unwrap_or(Background::None);
            let model = open_model(a.common.model.clone(), "person-seg", Task::Segmentation)?;
            let alpha = a.alpha;
            let make = Box::new(move |m: &Model| -> Result<Box<dyn TaskRenderer>, String> {
                Ok(Box::new(
                    Segmenter::new(m, view, alpha, background.clone())
                        .map_err(|e| e.to_string())?,
                ))
            });
            (
                a.common,
                TaskSetup {
                    task: Task::Segmentation,
                    model,
                    make,
                },
            )
        }
        Cmd::Depth(a) => {
            let view = DepthView::parse(&a.visualize)?;
            let cmap = Colormap::parse(&a.colormap).map_err(|e| e.to_string())?;
            let model = open_model(a.common.model.clone(), "depth", Task::Depth)?;
            let intrinsics = match (a.fx, a.fy, a.cx, a.cy) {
                (None, None, None, None) => None,
                (Some(fx), Some(fy), Some(cx), Some(cy)) if fx > 0.0 && fy > 0.0 => {
                    Some(dysample_video::pointcloud::Intrinsics { fx, fy, cx, cy })
                }
                _ => {
                    return Err(
                        "--fx, --fy, --cx and --cy go together (fx, fy > 0), or give --fov".into(),
                    )
                }
            };
            if !(a.near > 0.0 && a.far > a.near) {
                return Err(format!(
                    "--near {} --far {}: need 0 < near < far",
                    a.near, a.far
                ));
            }
            let cloud = a.pointcloud.map(|path| PointCloud {
                path,
                intrinsics,
                fov: a.fov,
                near: a.near,
                far: a.far,
            });
            if cloud.is_some() && intrinsics.is_none() {
                dysample_video::pointcloud::Intrinsics::from_fov(640, 480, a.fov)
                    .map_err(|e| e.to_string())?;
            }
            let make = Box::new(move |m: &Model| -> Result<Box<dyn TaskRenderer>, String> {
                Ok(Box::new(DepthMapper::new(
                    m,
                    view,
                    cmap.clone(),
                    cloud.clone(),
                )))
            });
            (
                a.common,
                TaskSetup {
                    task: Task::Depth,
                    model,
                    make,
                },
            )
        }
    };
    let precision = Precision::parse(&common.precision)?;
    let onnx = common
        .onnx
        .as_deref()
        .map(|p| OnnxFile::open(p, &setup.model))
        .transpose()?;
    // --precision and --lowered against --onnx: checked in Network::open (--bench runs its own).
    let provider = Provider::parse(&common.ep).map_err(|e| e.to_string())?;
    if !matches!(
        provider,
        Provider::Cpu | Provider::Cuda | Provider::TensorRt
    ) {
        return Err(format!("--ep {}: choose cpu, cuda or tensorrt", common.ep));
    }
    if let Some(c) = &common.input_codec {
        if !matches!(
            c.to_ascii_lowercase().as_str(),
            "yuyv" | "yuy2" | "mjpeg" | "mjpg"
        ) {
            return Err(format!("--input-codec {c}: choose yuyv or mjpeg"));
        }
    }
    let input = match &common.input {
        Some(s) => parse_input(s).map_err(|e| e.to_string())?,
        None => match first_camera() {
            Some(cam) => InputUri::Camera(cam),
            None => {
                eprintln!("no camera found; using builtin:// (56 frames of pedestrians from OpenCV's vtest.avi)");
                InputUri::Builtin
            }
        },
    };
    let source_opts = SourceOptions {
        width: common.input_width,
        height: common.input_height,
        rate: common.input_rate,
        codec: common.input_codec.clone(),
        stop: stop.clone(),
    };
    if common.bench {
        return bench(&common, &setup, onnx.as_ref(), &input, &source_opts, stop);
    }
    let output = match &common.output {
        Some(s) => parse_output(s).map_err(|e| e.to_string())?,
        None if !common.headless && display_available() => OutputUri::Display,
        None => OutputUri::File(PathBuf::from(format!(
            "dysample-demo-out/{}/",
            match setup.task {
                Task::Segmentation => "segment",
                Task::Depth => "depth",
            }
        ))),
    };
    if common.headless && output == OutputUri::Display {
        return Err("--headless with display://0: give a file output or drop --headless".into());
    }
    let mut net = Network::open(
        &setup.model,
        precision,
        provider,
        common.threads,
        common.lowered,
        common.ort_lib.clone(),
        onnx.as_ref(),
    )?;
    let mut renderer = (setup.make)(&setup.model)?;
    let mut pre = preprocessor(&setup.model);
    let source = open_source(&input, &source_opts).map_err(|e| e.to_string())?;
    let fps = source.fps().unwrap_or(30.0).round().max(1.0) as u32;
    let title = format!(
        "dysample-demo {} | {}",
        setup.task.name(),
        setup.model.json.name
    );
    let sink = open_sink(&output, fps, &format!("{title} | {}", net.label()))
        .map_err(|e| e.to_string())?;
    eprintln!(
        "{} -> {} | {} | {}",
        source.describe(),
        output,
        setup.model.json.name,
        net.label()
    );
    let cfg = RunConfig {
        looping: common.looping,
        max_frames: common.frames,
        status: !common.quiet,
        warmup: 0,
        title,
    };
    let report = app::run(
        &cfg,
        source,
        &mut net,
        &mut pre,
        renderer.as_mut(),
        sink,
        stop,
    )?;
    eprintln!("{}", report.stats.table());
    eprintln!(
        "{} frames{}, {} dropped, {} corrupt skipped{}",
        report.frames,
        if report.interrupted {
            " (interrupted)"
        } else {
            ""
        },
        report.dropped,
        report.corrupt,
        coverage_note(&report)
    );
    eprintln!("{}", report.sink_summary);
    if let Some(s) = &report.task_summary {
        eprintln!("{s}");
    }
    if common.json {
        let j = json!({
            "task": setup.task.name(),
            "model": setup.model.json.name,
            "model_dir": setup.model.dir.display().to_string(),
            "onnx": net.path.display().to_string(),
            "onnx_override": onnx.is_some(),
            "onnx_kind": onnx.as_ref().map(OnnxFile::kind),
            "qdq_nodes": onnx.as_ref().map(|f| f.qdq_nodes),
            "int8_dysample_nodes": onnx.as_ref().map(|f| f.int8_dysample_nodes),
            "network": net.label(),
            "precision": precision.name(),
            "ep": provider.to_string(),
            "backend": net.backend,
            "input": input.to_string(),
            "source": report.source,
            "output": output.to_string(),
            "frames": report.frames,
            "fps": report.stats.fps(),
            "dropped": report.dropped,
            "corrupt": report.corrupt,
            "interrupted": report.interrupted,
            "stages": stages_json(&report),
            "coverage": report.metrics,
            "output_summary": report.sink_summary,
            "task_summary": report.task_summary,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&j).map_err(|e| e.to_string())?
        );
    }
    Ok(if report.interrupted { 130 } else { 0 })
}

fn coverage_note(r: &RunReport) -> String {
    if r.metrics.is_empty() {
        return String::new();
    }
    let mean = r.metrics.iter().sum::<f64>() / r.metrics.len() as f64;
    format!(", person coverage {:.1}% on average", mean * 100.0)
}

fn stages_json(r: &RunReport) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    for s in Stage::ALL {
        let h = r.stats.histogram(s);
        if h.count() == 0 {
            continue;
        }
        m.insert(
            s.name().into(),
            json!({"count": h.count(), "mean_ms": h.mean_ms(), "p50_ms": h.quantile_ms(0.5), "p99_ms": h.quantile_ms(0.99), "max_ms": h.max_ms()}),
        );
    }
    serde_json::Value::Object(m)
}

fn open_model(dir: Option<PathBuf>, default: &str, want: Task) -> Result<Model, String> {
    let dir = dir.unwrap_or_else(|| default_model_dir(default));
    let m = Model::open(&dir)?;
    if m.task != want {
        return Err(format!(
            "{}: is a {} model; run it with `dysample-demo {}`",
            dir.join("model.json").display(),
            m.task.name(),
            if m.task == Task::Depth {
                "depth"
            } else {
                "segment"
            }
        ));
    }
    Ok(m)
}

fn preprocessor(m: &Model) -> Preprocessor {
    let i = &m.json.input;
    Preprocessor::new(
        i.width,
        i.height,
        Normalize {
            mean: i.mean,
            std: i.std,
            bgr: m.bgr(),
        },
    )
}

/// `--bench`: the same pipeline, headless into nothing, once per precision with the SDK's
/// custom op and once with the lowered model through plain ONNX Runtime.
fn bench(
    common: &Common,
    setup: &TaskSetup,
    onnx: Option<&OnnxFile>,
    input: &InputUri,
    sopts: &SourceOptions,
    stop: Arc<AtomicBool>,
) -> Result<i32, String> {
    let provider = Provider::parse(&common.ep).map_err(|e| e.to_string())?;
    let n = common.frames.unwrap_or(200);
    let mut rows = Vec::new();
    let mut configs: Vec<(Precision, bool, Option<&OnnxFile>, String)> = vec![
        (Precision::F32, false, None, "SDK custom op f32".into()),
        (Precision::F16, false, None, "SDK custom op f16".into()),
        (Precision::Int8, false, None, "SDK custom op int8".into()),
        (
            Precision::F32,
            true,
            None,
            "plain ORT, lowered (GridSample) f32".into(),
        ),
    ];
    if let Some(f) = onnx {
        let label = if f.is_int8() {
            format!("calibrated int8 QDQ ({})", f.path.display())
        } else {
            format!("--onnx float ({})", f.path.display())
        };
        configs.push((Precision::F32, false, Some(f), label));
    }
    let cfg = RunConfig {
        looping: true,
        max_frames: Some(common.warmup + n),
        status: false,
        warmup: common.warmup,
        title: String::new(),
    };
    eprintln!(
        "bench: {} on {input}, {} threads, {} warm-up + {n} frames per row, headless",
        setup.model.json.name,
        if common.threads == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            common.threads
        },
        common.warmup
    );
    for (precision, lowered, file, label) in configs {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let row = (|| -> Result<(RunReport, String), String> {
            let mut net = Network::open(
                &setup.model,
                precision,
                provider,
                common.threads,
                lowered,
                common.ort_lib.clone(),
                file,
            )?;
            let mut renderer = (setup.make)(&setup.model)?;
            let mut pre = preprocessor(&setup.model);
            let source = open_source(input, sopts).map_err(|e| e.to_string())?;
            let sink = open_sink(&OutputUri::Null, 30, "").map_err(|e| e.to_string())?;
            let backend = net.backend.clone();
            Ok((
                app::run(
                    &cfg,
                    source,
                    &mut net,
                    &mut pre,
                    renderer.as_mut(),
                    sink,
                    stop.clone(),
                )?,
                backend,
            ))
        })();
        match row {
            Ok((r, backend)) => rows.push((label, precision, lowered, Ok((r, backend)))),
            Err(e) => rows.push((label, precision, lowered, Err(e))),
        }
    }
    let stages = [
        Stage::Capture,
        Stage::Decode,
        Stage::Preprocess,
        Stage::Network,
        Stage::Postprocess,
        Stage::Render,
        Stage::Display,
    ];
    let width = rows
        .iter()
        .map(|r| match &r.3 {
            Ok((_, backend)) => r.0.len() + backend.len() + 3,
            Err(_) => r.0.len(),
        })
        .max()
        .unwrap_or(0)
        .max(38);
    let mut table = format!("{:<width$} {:>7}", "pipeline (median ms per stage)", "fps");
    for s in stages {
        table.push_str(&format!(" {:>8}", &s.name()[..s.name().len().min(8)]));
    }
    table.push_str(&format!(" {:>9}", "net p99"));
    let mut json_rows = Vec::new();
    for (label, precision, lowered, r) in &rows {
        match r {
            Ok((rep, backend)) => {
                table.push_str(&format!(
                    "\n{:<width$} {:>7.1}",
                    format!("{label} [{backend}]"),
                    rep.stats.fps()
                ));
                for s in stages {
                    table.push_str(&format!(
                        " {:>8.2}",
                        rep.stats.histogram(s).quantile_ms(0.5)
                    ));
                }
                table.push_str(&format!(
                    " {:>9.2}",
                    rep.stats.histogram(Stage::Network).quantile_ms(0.99)
                ));
                json_rows.push(json!({"row": label, "precision": precision.name(), "lowered": lowered, "backend": backend,
                    "frames": rep.frames, "fps": rep.stats.fps(), "stages": stages_json(rep)}));
            }
            Err(e) => {
                table.push_str(&format!("\n{:<width$} not run: {e}", label));
                json_rows.push(json!({"row": label, "precision": precision.name(), "lowered": lowered, "error": e}));
            }
        }
    }
    eprintln!("{table}");
    if common.json {
        let j = json!({"bench": {"task": setup.task.name(), "model": setup.model.json.name, "input": input.to_string(),
            "threads": common.threads, "warmup": common.warmup, "frames": n, "rows": json_rows}});
        println!(
            "{}",
            serde_json::to_string_pretty(&j).map_err(|e| e.to_string())?
        );
    }
    Ok(if rows.iter().any(|r| r.3.is_ok()) {
        0
    } else {
        1
    })
}
