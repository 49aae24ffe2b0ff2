//! The pipeline: a capture thread (grab + decode) feeding the main thread (preprocess,
//! network, postprocess, render) through a latest-frame-wins queue, and a sink (the window
//! has its own thread). Every stage is timed.

use crate::model::Model;
use crate::onnx_file::OnnxFile;
use crate::tasks::TaskRenderer;
use dysample::onnx::prepared::PreparedRun;
use dysample::onnx::session::{DySamplePrecision, DySampleSession, Provider, SessionOptions};
use dysample_video::preprocess::Preprocessor;
use dysample_video::queue::{LatestQueue, Pop};
use dysample_video::sink::FrameSink;
use dysample_video::source::{FrameSource, Grab};
use dysample_video::stats::{ns_since, Stage, Stats};
use dysample_video::Frame;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Precision of the DySample layers (`--precision`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    F32,
    F16,
    Int8,
}

impl Precision {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "f32" | "fp32" => Ok(Precision::F32),
            "f16" | "fp16" => Ok(Precision::F16),
            "int8" | "i8" => Ok(Precision::Int8),
            _ => Err(format!("--precision {s}: choose f32, f16 or int8")),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::F16 => "f16",
            Precision::Int8 => "int8",
        }
    }
}

/// Sets the DySample precision of a session (f16 kernels, or int8 with min/max parameters
/// from each frame's own input until calibrated parameters ship).
fn set_precision(opts: &mut SessionOptions, p: Precision) {
    opts.dysample_precision = match p {
        Precision::F32 => DySamplePrecision::F32,
        Precision::F16 => DySamplePrecision::F16,
        Precision::Int8 => DySamplePrecision::Int8MinMax,
    };
}

/// The network: an ONNX Runtime session over the model's custom-op or lowered ONNX file.
#[derive(Debug)]
pub struct Network {
    session: DySampleSession,
    /// Input/output tensors bound once for the frame shape (made on the first run), so the
    /// network stage allocates nothing per frame.
    prepared: Option<PreparedRun>,
    pub path: PathBuf,
    pub precision: Precision,
    pub provider: Provider,
    pub lowered: bool,
    /// What runs the DySample layers: the SDK kernel backend, or ONNX Runtime's GridSample.
    pub backend: String,
    /// `--onnx FILE`: the file run in place of the folder's own.
    pub onnx: Option<OnnxFile>,
}

impl Network {
    /// Opens the model for `precision` on `provider`. GPU providers and `lowered` use the
    /// standard-op (GridSample) file through plain ONNX Runtime. `onnx` (`--onnx FILE`, checked
    /// against `model.json`) replaces the folder's file and runs as given, through the same
    /// SDK session (its DySample nodes, int8 ones included, on the SDK's kernels); an int8 file
    /// carries its own quantization, so `precision` must then be f32.
    #[allow(clippy::too_many_arguments)]
    pub fn open(
        model: &Model,
        precision: Precision,
        provider: Provider,
        threads: usize,
        lowered: bool,
        ort_lib: Option<PathBuf>,
        onnx: Option<&OnnxFile>,
    ) -> Result<Self, String> {
        if let Some(f) = onnx {
            if lowered {
                return Err(format!(
                    "--lowered with --onnx {}: --onnx names the file to run; drop --lowered",
                    f.path.display()
                ));
            }
            if f.is_int8() && precision != Precision::F32 {
                return Err(format!(
                    "--precision {} with --onnx {}: the file is int8 QDQ and carries its own quantization; drop --precision",
                    precision.name(),
                    f.path.display()
                ));
            }
        }
        let lowered =
            onnx.is_none() && (lowered || matches!(provider, Provider::Cuda | Provider::TensorRt));
        let path = match onnx {
            Some(f) => f.path.clone(),
            None => model.onnx(lowered)?,
        };
        let found = crate::ort::ensure(ort_lib.as_deref())?;
        let mut opts = SessionOptions::new().provider(provider).threads(threads);
        opts.ort_lib = ort_lib.or(found);
        opts.ort_error_log = false;
        if provider != Provider::Cpu {
            opts.providers.push(Provider::Cpu);
        }
        if provider == Provider::TensorRt && onnx.is_some() {
            // The file runs as given (dysample-calibrate's model_trt_qdq.onnx for TensorRT).
            opts.tensorrt.int8 = onnx.is_some_and(OnnxFile::is_int8);
            match precision {
                Precision::F32 => {}
                Precision::F16 => opts.tensorrt.fp16 = true,
                Precision::Int8 => return Err("--precision int8 --ep tensorrt: TensorRT int8 needs a calibrated (QDQ) model; give dysample-calibrate's model_trt_qdq.onnx with --onnx".into()),
            }
            opts.tensorrt.engine_cache_dir =
                std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/dysample-trt"));
        } else if provider == Provider::TensorRt {
            match precision {
                Precision::F32 => {}
                Precision::F16 => opts.tensorrt.fp16 = true,
                Precision::Int8 => {
                    return Err("--precision int8 --ep tensorrt: TensorRT int8 needs a calibrated (QDQ) model; use f16 on TensorRT or int8 on the CPU".into())
                }
            }
            opts.tensorrt.engine_cache_dir =
                std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/dysample-trt"));
        } else if lowered {
            if precision != Precision::F32 {
                return Err(format!(
                    "--precision {} applies to the SDK's DySample kernels; the lowered model runs in plain ONNX Runtime in f32",
                    precision.name()
                ));
            }
        } else {
            set_precision(&mut opts, precision);
        }
        let session = opts.build(&path).map_err(|e| e.to_string())?;
        let backend = if lowered {
            "ort-gridsample".to_string()
        } else {
            dysample::BackendChoice::Auto
                .resolve()
                .map(|k| k.backend.name().to_string())
                .unwrap_or_else(|_| "?".into())
        };
        Ok(Self {
            session,
            prepared: None,
            path,
            precision,
            provider,
            lowered,
            backend,
            onnx: onnx.cloned(),
        })
    }

    /// Runs the model on an NCHW tensor and returns its first output's dims and values (in
    /// buffers reused from frame to frame).
    pub fn run(&mut self, x: &[f32], dims: &[usize]) -> Result<(&[usize], &[f32]), String> {
        let stale = self
            .prepared
            .as_ref()
            .is_none_or(|p| p.input_dims() != dims);
        if stale {
            self.prepared = None;
            self.prepared = Some(self.session.prepare_f32(dims).map_err(|e| e.to_string())?);
        }
        let p = self
            .prepared
            .as_mut()
            .ok_or("the network run was not prepared")?;
        let input = p.input_mut();
        if input.len() != x.len() {
            return Err(format!(
                "network input: {} values for dims {dims:?}, which hold {}",
                x.len(),
                input.len()
            ));
        }
        input.copy_from_slice(x);
        p.run(&mut self.session).map_err(|e| e.to_string())?;
        Ok(p.output())
    }

    /// `int8 · cpu/avx512-amx` and the like.
    pub fn label(&self) -> String {
        if let Some(f) = &self.onnx {
            // A float file's DySample layers run in --precision; an int8 file's as quantized.
            let precision = if f.is_int8() {
                ""
            } else {
                self.precision.name()
            };
            return format!(
                "{}{}{} | {} | {}",
                f.label(),
                if precision.is_empty() { "" } else { " " },
                precision,
                self.provider,
                self.backend
            );
        }
        let form = if self.lowered { "lowered" } else { "custom op" };
        format!(
            "{} | {} {form} | {}",
            self.precision.name(),
            self.provider,
            self.backend
        )
    }
}

/// How to run.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Start over at the end of a file (`--loop`).
    pub looping: bool,
    /// Stop after this many frames (warm-up included).
    pub max_frames: Option<u64>,
    /// Print a status line each second.
    pub status: bool,
    /// Frames not counted in the timing (warm-up).
    pub warmup: u64,
    /// Window title prefix.
    pub title: String,
}

/// What a run did.
#[derive(Debug)]
pub struct RunReport {
    pub stats: Stats,
    pub frames: u64,
    pub dropped: u64,
    pub corrupt: u64,
    /// Per-frame task metric (segmentation: person coverage).
    pub metrics: Vec<f64>,
    pub sink_summary: String,
    pub task_summary: Option<String>,
    pub interrupted: bool,
    pub source: String,
}

/// Runs `source` through the model into `sink` until the source ends, `max_frames`, the window
/// closes or `stop` is set (Ctrl-C).
#[allow(clippy::too_many_arguments)]
pub fn run(
    cfg: &RunConfig,
    mut source: Box<dyn FrameSource>,
    net: &mut Network,
    pre: &mut Preprocessor,
    task: &mut dyn TaskRenderer,
    mut sink: Box<dyn FrameSink>,
    stop: Arc<AtomicBool>,
) -> Result<RunReport, String> {
    let source_name = source.describe();
    let live = source.is_live();
    let queue = Arc::new(LatestQueue::new(3, Frame::new));
    let corrupt = Arc::new(AtomicU64::new(0));
    let capture_error: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
    let halt = Arc::new(AtomicBool::new(false));

    let capture = {
        let (q, corrupt, err, halt, stop) = (
            queue.clone(),
            corrupt.clone(),
            capture_error.clone(),
            halt.clone(),
            stop.clone(),
        );
        let looping = cfg.looping;
        std::thread::Builder::new()
            .name("capture".into())
            .spawn(move || {
                let mut seq = 0u64;
                let fail = |e: String| *err.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                let note_corrupt = |e: &dysample_video::VideoError| {
                    let n = corrupt.fetch_add(1, Ordering::Relaxed) + 1;
                    if n <= 3 {
                        eprintln!(
                            "skipped a {e}{}",
                            if n == 3 {
                                " (further ones are only counted)"
                            } else {
                                ""
                            }
                        );
                    }
                };
                while !halt.load(Ordering::Relaxed) && !stop.load(Ordering::Relaxed) {
                    let _span = tracing::trace_span!("capture").entered();
                    let t0 = Instant::now();
                    match source.grab() {
                        Ok(Grab::Frame) => {}
                        Ok(Grab::End) => {
                            if looping {
                                match source.rewind() {
                                    Ok(true) => continue,
                                    Ok(false) => {}
                                    Err(e) => fail(e.to_string()),
                                }
                            }
                            break;
                        }
                        Err(e) if e.is_corrupt_frame() => {
                            note_corrupt(&e);
                            continue;
                        }
                        Err(e) => {
                            fail(e.to_string());
                            break;
                        }
                    }
                    let cap = ns_since(t0);
                    drop(_span);
                    let _span = tracing::trace_span!("decode").entered();
                    let mut f = q.take_free().unwrap_or_default();
                    let t1 = Instant::now();
                    match source.decode(&mut f) {
                        Ok(()) => {}
                        Err(e) if e.is_corrupt_frame() => {
                            note_corrupt(&e);
                            q.recycle(f);
                            continue;
                        }
                        Err(e) => {
                            fail(e.to_string());
                            break;
                        }
                    }
                    f.decode_ns = ns_since(t1);
                    f.capture_ns = cap;
                    f.seq = seq;
                    seq += 1;
                    let ok = if live {
                        q.push_latest(f)
                    } else {
                        q.push_wait(f)
                    };
                    if !ok {
                        break;
                    }
                }
                q.close();
            })
            .map_err(|e| format!("cannot start the capture thread: {e}"))?
    };

    let controls = sink.controls();
    let mut stats = Stats::new();
    let mut rendered = Frame::new();
    let mut metrics = Vec::with_capacity(4096);
    let mut interrupted = false;
    let mut result: Result<(), String> = Ok(());
    let mut title = String::with_capacity(160);
    let mut last_title = Instant::now();
    let mut last_frame_seen = false;
    let mut done = 0u64;
    let dims = pre.dims();
    // Made once: the status line names what runs without formatting it every frame.
    let net_label = net.label();
    loop {
        if stop.load(Ordering::Relaxed) {
            interrupted = true;
            break;
        }
        if let Some(c) = &controls {
            if c.quit_requested() {
                break;
            }
            if c.is_paused() {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
        }
        let f = match queue.pop(Duration::from_millis(200)) {
            Pop::Item(f) => f,
            Pop::Timeout => continue,
            Pop::Closed => break,
        };
        last_frame_seen = true;
        stats.record(Stage::Capture, f.capture_ns);
        stats.record(Stage::Decode, f.decode_ns);
        let step = (|| -> Result<(), String> {
            let t = Instant::now();
            let tensor = {
                let _s = tracing::trace_span!("preprocess").entered();
                pre.run(&f).map_err(|e| e.to_string())?
            };
            stats.record(Stage::Preprocess, ns_since(t));
            let t = Instant::now();
            let (odims, out) = {
                let _s = tracing::trace_span!("network").entered();
                net.run(tensor, &dims)?
            };
            stats.record(Stage::Network, ns_since(t));
            let t = Instant::now();
            {
                let _s = tracing::trace_span!("postprocess").entered();
                task.postprocess(out, odims, &f)
                    .map_err(|e| e.to_string())?;
            }
            stats.record(Stage::Postprocess, ns_since(t));
            if let Some(m) = task.frame_metric() {
                metrics.push(m);
            }
            let t = Instant::now();
            let view = controls
                .as_ref()
                .map_or(0, |c| c.cycle.load(Ordering::Relaxed) as usize);
            {
                let _s = tracing::trace_span!("render").entered();
                task.render(&f, view, &mut rendered)
                    .map_err(|e| e.to_string())?;
            }
            stats.record(Stage::Render, ns_since(t));
            let t = Instant::now();
            {
                let _s = tracing::trace_span!("display").entered();
                sink.write(&rendered).map_err(|e| e.to_string())?;
            }
            stats.record(Stage::Display, ns_since(t));
            Ok(())
        })();
        queue.recycle(f);
        if let Err(e) = step {
            result = Err(e);
            break;
        }
        stats.frame_done();
        done += 1;
        if done == cfg.warmup {
            stats.reset();
        }
        if cfg.status {
            let (d, c) = (queue.dropped(), corrupt.load(Ordering::Relaxed));
            if let Some(line) =
                stats.status_line(format_args!("dropped {d} corrupt {c} | {net_label}"))
            {
                eprintln!("{line}");
            }
        }
        if let Some(c) = &controls {
            if last_title.elapsed() >= Duration::from_secs(1) {
                use std::fmt::Write as _;
                last_title = Instant::now();
                title.clear();
                let view = c.cycle.load(Ordering::Relaxed) as usize;
                let _ = write!(
                    title,
                    "{} | {} | {:.1} fps | {}",
                    cfg.title,
                    net.label(),
                    stats.fps(),
                    task.view_name(view)
                );
                c.set_title(&title);
            }
        }
        if cfg.max_frames.is_some_and(|m| done >= m) {
            break;
        }
    }
    stats.stop();
    halt.store(true, Ordering::Relaxed);
    queue.close();
    if live {
        // A camera may sit in a blocking read; do not wait long for it.
        let t = Instant::now();
        while !capture.is_finished() && t.elapsed() < Duration::from_secs(2) {
            std::thread::sleep(Duration::from_millis(10));
        }
        if capture.is_finished() {
            let _ = capture.join();
        }
    } else {
        let _ = capture.join();
    }
    if let Some(h) = sink.display_histogram() {
        *stats.histogram_mut(Stage::Display) = h;
    }
    let sink_summary = sink.finish().map_err(|e| e.to_string());
    result?;
    if let Some(e) = capture_error
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take()
    {
        if !last_frame_seen {
            return Err(e);
        }
        eprintln!("input stopped: {e}");
    }
    let task_summary = task
        .finish(pre.resized(), dims[3], dims[2])
        .map_err(|e| e.to_string())?;
    Ok(RunReport {
        frames: stats.frames(),
        stats,
        dropped: queue.dropped(),
        corrupt: corrupt.load(Ordering::Relaxed),
        metrics,
        sink_summary: sink_summary?,
        task_summary,
        interrupted,
        source: source_name,
    })
}
