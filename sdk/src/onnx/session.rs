//! ONNX Runtime sessions with the DySample custom op and explicit execution providers.
//!
//! ```no_run
//! use dysample::onnx::session::{Provider, SessionOptions};
//! let mut s = SessionOptions::new().provider(Provider::Cpu).threads(4).build("model.onnx".as_ref())?;
//! let (dims, y) = s.run_f32(&[0.0; 3 * 8 * 8], &[1, 3, 8, 8])?;
//! # Ok::<(), dysample::onnx::OnnxError>(())
//! ```

pub use super::precision::DySamplePrecision;
use super::{op, runtime, OnnxError, Result};
use ort::ep::{self, ExecutionProvider};
use ort::session::Session;
use ort::value::{Tensor, TensorElementType};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Execution providers the session builder knows, by CLI name and ORT name.
pub const PROVIDERS: &[(&str, &str)] = &[
    ("cpu", "CPUExecutionProvider"),
    ("cuda", "CUDAExecutionProvider"),
    ("tensorrt", "TensorrtExecutionProvider"),
    ("xnnpack", "XnnpackExecutionProvider"),
    ("acl", "ACLExecutionProvider"),
];

/// An execution provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Provider {
    Cpu,
    Cuda,
    TensorRt,
    Xnnpack,
    Acl,
}

impl Provider {
    /// Parses a CLI name (`cpu`, `cuda`, `tensorrt`/`trt`, `xnnpack`, `acl`).
    pub fn parse(name: &str) -> Result<Self> {
        Ok(match name.to_ascii_lowercase().as_str() {
            "cpu" => Provider::Cpu,
            "cuda" => Provider::Cuda,
            "tensorrt" | "trt" => Provider::TensorRt,
            "xnnpack" => Provider::Xnnpack,
            "acl" => Provider::Acl,
            other => {
                return Err(OnnxError::Provider {
                    provider: other.to_string(),
                    detail: "unknown (choose cpu, cuda, tensorrt, xnnpack or acl)".into(),
                })
            }
        })
    }

    /// ORT's name for it.
    pub fn ort_name(self) -> &'static str {
        match self {
            Provider::Cpu => ep::CPU::NAME,
            Provider::Cuda => ep::CUDA::NAME,
            Provider::TensorRt => ep::TensorRT::NAME,
            Provider::Xnnpack => ep::XNNPACK::NAME,
            Provider::Acl => ep::ACL::NAME,
        }
    }

    /// Whether the loaded ONNX Runtime was built with this provider.
    pub fn is_available(self) -> Result<bool> {
        Ok(match self {
            Provider::Cpu => true,
            Provider::Cuda => ep::CUDA::is_available()?,
            Provider::TensorRt => ep::TensorRT::is_available()?,
            Provider::Xnnpack => ep::XNNPACK::is_available()?,
            Provider::Acl => ep::ACL::is_available()?,
        })
    }
}

impl std::fmt::Display for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let short = PROVIDERS
            .iter()
            .find(|(_, n)| *n == self.ort_name())
            .map_or("?", |(s, _)| *s);
        f.write_str(short)
    }
}

/// TensorRT settings (ignored by the other providers).
#[derive(Clone, Debug, Default)]
pub struct TensorRtOptions {
    /// Build FP16 engines.
    pub fp16: bool,
    /// Build INT8 engines: from the model's QDQ nodes, or from `int8_calibration_table`.
    pub int8: bool,
    /// TensorRT calibration table for INT8 without QDQ nodes.
    pub int8_calibration_table: Option<PathBuf>,
    /// Cache built engines here (building takes minutes on a Jetson).
    pub engine_cache_dir: Option<PathBuf>,
    /// Builder workspace size in bytes.
    pub workspace_size: Option<usize>,
}

/// Settings for [`DySampleSession`].
#[derive(Clone, Debug)]
pub struct SessionOptions {
    /// Providers in priority order; ORT places each node on the first that supports it and
    /// falls back to CPU for the rest. Empty means CPU.
    pub providers: Vec<Provider>,
    /// Intra-op threads (shared by the DySample kernels). 0 = one per available core.
    pub threads: usize,
    /// Drop unavailable providers (with a warning) instead of failing.
    pub allow_cpu_fallback: bool,
    pub tensorrt: TensorRtOptions,
    /// GPU index for cuda/tensorrt.
    pub device_id: i32,
    /// Record which provider each node ran on (ORT's profiler); see [`DySampleSession::placement`].
    pub record_placement: bool,
    /// ONNX Runtime library to load (search step 1); see [`runtime`].
    pub ort_lib: Option<PathBuf>,
    /// Let ONNX Runtime log its own errors (they are returned as errors either way; a CLI that
    /// prints one line per error turns this off).
    pub ort_error_log: bool,
    /// Precision of the DySample nodes: the graph's own (`F32`), or f16 / int8 (min/max on each
    /// call's input) on an f32 graph; the other nodes are unaffected.
    pub dysample_precision: DySamplePrecision,
    /// Let ORT's intra-op workers spin-wait for work between nodes (ORT's default). Off by
    /// default here: while a DySample node runs on the SDK's pool, spinning workers take the
    /// same cores. Measured on the 2-vCPU CI VM under load, 2 threads, medians of 5
    /// interleaved rounds: person-seg (custom op) 29–63 ms spinning vs 6.4–26 ms not; its
    /// lowered graph 84–101 vs 47–78 ms.
    pub intra_op_spinning: bool,
}

impl Default for SessionOptions {
    fn default() -> Self {
        Self {
            providers: vec![Provider::Cpu],
            threads: 0,
            allow_cpu_fallback: false,
            tensorrt: TensorRtOptions::default(),
            device_id: 0,
            record_placement: false,
            ort_lib: None,
            ort_error_log: true,
            dysample_precision: DySamplePrecision::F32,
            intra_op_spinning: false,
        }
    }
}

impl SessionOptions {
    pub fn new() -> Self {
        Self {
            providers: Vec::new(),
            ..Self::default()
        }
    }
    pub fn provider(mut self, p: Provider) -> Self {
        self.providers.push(p);
        self
    }
    pub fn threads(mut self, n: usize) -> Self {
        self.threads = n;
        self
    }
    pub fn dysample_precision(mut self, p: DySamplePrecision) -> Self {
        self.dysample_precision = p;
        self
    }

    /// Loads ONNX Runtime if needed, registers the providers and the DySample op, loads the model.
    /// External data is resolved against the model file's directory and may not leave it
    /// (see [`super::external`]).
    pub fn build(&self, model: &Path) -> Result<DySampleSession> {
        let bytes = crate::io::read_limited(model, "ONNX model", crate::io::MAX_MODEL_BYTES)
            .map_err(|e| OnnxError::Model {
                path: model.display().to_string(),
                detail: match e {
                    crate::Error::Io { source, .. } => format!("cannot read: {source}"),
                    other => strip_path(&other.to_string(), model),
                },
            })?;
        let dir = match model.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        self.build_in(&bytes, Some(dir), model)
    }

    /// Like [`SessionOptions::build`] for a model in memory; `model` names it in messages.
    /// Such a model may not reference external data (there is no directory to resolve it in).
    pub fn build_from_bytes(&self, bytes: &[u8], model: &Path) -> Result<DySampleSession> {
        self.build_in(bytes, None, model)
    }

    fn build_in(&self, bytes: &[u8], dir: Option<&Path>, model: &Path) -> Result<DySampleSession> {
        if self.threads > crate::layer::MAX_THREADS {
            return Err(OnnxError::Data {
                what: "threads".into(),
                detail: format!(
                    "{} is more than the limit of {}",
                    self.threads,
                    crate::layer::MAX_THREADS
                ),
            });
        }
        let inlined = super::external::inline_external_data(bytes, dir, model)?;
        let bytes = inlined.as_deref().unwrap_or(bytes);
        let rt = runtime::load(self.ort_lib.as_deref())?;
        let threads = if self.threads == 0 {
            std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .min(crate::layer::MAX_THREADS)
        } else {
            self.threads
        };

        let mut eps = Vec::new();
        let mut used = Vec::new();
        let requested = if self.providers.is_empty() {
            vec![Provider::Cpu]
        } else {
            self.providers.clone()
        };
        for p in requested {
            if !p.is_available()? {
                let detail = format!(
                    "the ONNX Runtime at {} (version {}) was built without it{}",
                    rt.path.display(),
                    rt.version,
                    if matches!(p, Provider::TensorRt | Provider::Cuda) {
                        "; install onnxruntime-gpu (on Jetson: the JetPack wheel) and point --ort-lib at it"
                    } else {
                        ""
                    }
                );
                if self.allow_cpu_fallback {
                    tracing::warn!(provider = %p, "{detail}; continuing without it");
                    continue;
                }
                return Err(OnnxError::Provider {
                    provider: p.to_string(),
                    detail,
                });
            }
            eps.push(self.dispatch(p, threads).error_on_failure());
            used.push(p);
        }

        let mut builder = Session::builder(rt.env())?
            .with_intra_threads(threads)?
            .with_log_level(if self.ort_error_log {
                ort::logging::LogLevel::Warning
            } else {
                ort::logging::LogLevel::Fatal
            })?
            .with_operators(op::domain_with_precision(threads, self.dysample_precision)?)?;
        if !self.intra_op_spinning {
            builder = builder.with_intra_op_spinning(false)?;
        }
        // ORT writes its profile when profiling ends or the session is destroyed: into a private
        // directory that `ProfileDir` removes whatever happens.
        let profile_dir = if self.record_placement {
            let dir = ProfileDir::create()?;
            builder = builder.with_profiling(dir.0.join("profile"))?;
            Some(dir)
        } else {
            None
        };
        builder = builder.with_execution_providers(eps).map_err(|e| {
            let name = used
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(",");
            OnnxError::Provider {
                provider: name,
                detail: e.to_string().replace('\n', " "),
            }
        })?;
        // Creating a session registers the ai.dysample domain in ORT's process-wide schema
        // registry, which is not safe against concurrent registration ("the domain is already
        // exist with version range"): sessions built on several threads at once failed at random.
        static COMMIT: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _guard = COMMIT.lock().unwrap_or_else(|e| e.into_inner());
        let session = builder
            .commit_from_memory(bytes)
            .map_err(|e| OnnxError::Model {
                path: model.display().to_string(),
                detail: e.to_string().replace('\n', " "),
            })?;
        tracing::info!(model = %model.display(), threads, providers = ?used, dysample_precision = %self.dysample_precision, "ONNX Runtime session ready");
        Ok(DySampleSession {
            session,
            model: model.to_path_buf(),
            providers: used,
            threads,
            profiling: profile_dir.is_some(),
            placement: BTreeMap::new(),
            _profile_dir: profile_dir,
        })
    }

    fn dispatch(&self, p: Provider, threads: usize) -> ep::ExecutionProviderDispatch {
        match p {
            Provider::Cpu => ep::CPU::default().build(),
            Provider::Cuda => ep::CUDA::default().with_device_id(self.device_id).build(),
            Provider::Xnnpack => ep::XNNPACK::default()
                .with_intra_op_num_threads(
                    std::num::NonZeroUsize::new(threads).unwrap_or(std::num::NonZeroUsize::MIN),
                )
                .build(),
            Provider::Acl => ep::ACL::default().build(),
            Provider::TensorRt => {
                let o = &self.tensorrt;
                let mut t = ep::TensorRT::default()
                    .with_device_id(self.device_id)
                    .with_fp16(o.fp16)
                    .with_int8(o.int8);
                if let Some(table) = &o.int8_calibration_table {
                    t = t.with_int8_calibration_table_name(table.display());
                }
                if let Some(dir) = &o.engine_cache_dir {
                    t = t
                        .with_engine_cache(true)
                        .with_engine_cache_path(dir.display())
                        .with_timing_cache(true)
                        .with_timing_cache_path(dir.display());
                }
                if let Some(ws) = o.workspace_size {
                    t = t.with_max_workspace_size(ws);
                }
                t.build()
            }
        }
    }
}

/// A session over a model that may contain DySample nodes.
#[derive(Debug)]
pub struct DySampleSession {
    pub(super) session: Session,
    pub(super) model: PathBuf,
    providers: Vec<Provider>,
    threads: usize,
    pub(super) profiling: bool,
    placement: BTreeMap<String, (String, String)>,
    /// Declared after `session`, so it is removed after the session (which may still write its
    /// profile when dropped).
    _profile_dir: Option<ProfileDir>,
}

/// A private temporary directory for ORT's profile files, removed on drop.
#[derive(Debug)]
struct ProfileDir(PathBuf);

impl ProfileDir {
    fn create() -> Result<Self> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = std::env::temp_dir().join(format!(
            "dysample-ort-profile-{}-{nanos}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir(&dir).map_err(|e| {
            OnnxError::Runtime(format!(
                "cannot create profile directory {}: {e}",
                dir.display()
            ))
        })?;
        Ok(Self(dir))
    }
}

impl Drop for ProfileDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Drop for DySampleSession {
    fn drop(&mut self) {
        if self.profiling {
            // End profiling now so the file lands in the directory before it is removed.
            if let Ok(f) = self.session.end_profiling() {
                let _ = std::fs::remove_file(f);
            }
        }
    }
}

/// An error message without a leading `path: ` (the caller adds the path itself).
fn strip_path(msg: &str, path: &Path) -> String {
    let p = format!("{}: ", path.display());
    msg.strip_prefix(&p).unwrap_or(msg).to_string()
}

/// Output of a run: dims and f32 values (f16 outputs are widened losslessly).
pub type Output = (Vec<usize>, Vec<f32>);

impl DySampleSession {
    /// Providers registered, in priority order.
    pub fn providers(&self) -> &[Provider] {
        &self.providers
    }
    pub fn threads(&self) -> usize {
        self.threads
    }
    /// Names of the model's inputs.
    pub fn input_names(&self) -> Vec<String> {
        self.session
            .inputs()
            .iter()
            .map(|o| o.name().to_string())
            .collect()
    }

    /// The one input of a single-input model: its name and element type. With `dims`, also
    /// checks them against the input's declared shape (-1 = any dimension).
    pub(crate) fn single_input(
        &self,
        dims: Option<&[usize]>,
    ) -> Result<(String, Option<TensorElementType>)> {
        let inputs = self.session.inputs();
        if inputs.len() != 1 {
            return Err(OnnxError::Data {
                what: self.model.display().to_string(),
                detail: format!(
                    "has {} inputs ({}); only single-input models can be run",
                    inputs.len(),
                    self.input_names().join(", ")
                ),
            });
        }
        let name = inputs[0].name().to_string();
        let ty = inputs[0].dtype().tensor_type();
        if let (Some(dims), Some(shape)) = (dims, inputs[0].dtype().tensor_shape()) {
            // ORT reports an input of unknown rank with no dims, like a scalar: leave those to ORT.
            let ok = shape.is_empty()
                || shape.len() == dims.len()
                    && shape
                        .iter()
                        .zip(dims)
                        .all(|(&w, &d)| w < 0 || w as usize == d);
            if !ok {
                return Err(OnnxError::Data {
                    what: format!("input '{name}'"),
                    detail: format!(
                        "the model expects shape {:?} (-1 = any), got {dims:?}",
                        shape.to_vec()
                    ),
                });
            }
        }
        Ok((name, ty))
    }

    /// Runs a single-input model on f32 data (converted to f16 if the model's input is f16) and
    /// returns its first output.
    pub fn run_f32(&mut self, data: &[f32], dims: &[usize]) -> Result<Output> {
        let (name, ty) = self.single_input(Some(dims))?;
        let shape: Vec<i64> = dims.iter().map(|&d| d as i64).collect();
        let outputs = match ty {
            Some(TensorElementType::Float32) => {
                let t = Tensor::from_array((shape, data.to_vec()))?;
                self.session.run(ort::inputs![name.as_str() => t])?
            }
            Some(TensorElementType::Float16) => {
                crate::tensor::check_f16_range(&format!("input '{name}'"), data).map_err(|e| {
                    OnnxError::Data {
                        what: self.model.display().to_string(),
                        detail: e.to_string(),
                    }
                })?;
                let v: Vec<half::f16> = data.iter().map(|&x| half::f16::from_f32(x)).collect();
                let t = Tensor::from_array((shape, v))?;
                self.session.run(ort::inputs![name.as_str() => t])?
            }
            other => {
                return Err(OnnxError::Data {
                    what: format!("input '{name}'"),
                    detail: format!(
                        "has element type {other:?}; only float32 and float16 are supported"
                    ),
                })
            }
        };
        let first = &outputs[0];
        let result = if let Ok((s, v)) = first.try_extract_tensor::<f32>() {
            (s.iter().map(|&d| d as usize).collect(), v.to_vec())
        } else if let Ok((s, v)) = first.try_extract_tensor::<half::f16>() {
            (
                s.iter().map(|&d| d as usize).collect(),
                v.iter().map(|x| x.to_f32()).collect(),
            )
        } else {
            return Err(OnnxError::Data {
                what: "output 0".into(),
                detail: "is not a float32/float16 tensor".into(),
            });
        };
        drop(outputs);
        if self.profiling {
            self.collect_placement()?;
        }
        Ok(result)
    }

    /// Runs a single-input model whose input and first output are int8 (an int8 DySample node
    /// alone, say) and returns that output.
    pub fn run_i8(&mut self, data: &[i8], dims: &[usize]) -> Result<(Vec<usize>, Vec<i8>)> {
        let inputs = self.session.inputs();
        if inputs.len() != 1 || inputs[0].dtype().tensor_type() != Some(TensorElementType::Int8) {
            return Err(OnnxError::Data {
                what: self.model.display().to_string(),
                detail: "run_i8 needs a model with one int8 input".into(),
            });
        }
        let name = inputs[0].name().to_string();
        let shape: Vec<i64> = dims.iter().map(|&d| d as i64).collect();
        let t = Tensor::from_array((shape, data.to_vec()))?;
        let outputs = self.session.run(ort::inputs![name.as_str() => t])?;
        let (s, v) = outputs[0]
            .try_extract_tensor::<i8>()
            .map_err(|e| OnnxError::Data {
                what: "output 0".into(),
                detail: format!("is not an int8 tensor: {e}"),
            })?;
        let result = (s.iter().map(|&d| d as usize).collect(), v.to_vec());
        drop(outputs);
        if self.profiling {
            self.collect_placement()?;
        }
        Ok(result)
    }

    /// Runs the model `runs` times on `data` under ORT's profiler, through a bound
    /// [`PreparedRun`](super::prepared::PreparedRun) (output preallocated, as a video loop runs
    /// it, so node times do not include first-touch page faults of a fresh output), and returns
    /// the profile (and fills [`DySampleSession::placement`]). The profile starts with one more
    /// run when the output shape is not declared (`prepare_f32` finds it by running): keep its
    /// last `runs`. Needs a session built with [`SessionOptions::record_placement`] and not yet
    /// run: profiling ends here.
    pub fn run_profiled(
        &mut self,
        data: &[f32],
        dims: &[usize],
        runs: usize,
    ) -> Result<super::profile::Profile> {
        if !self.profiling {
            return Err(OnnxError::Runtime(
                "run_profiled needs a session built with record_placement, before its first run"
                    .into(),
            ));
        }
        // Keep the runs from ending the profile after the first one.
        self.profiling = false;
        let r = self.prepare_f32(dims).and_then(|mut run| {
            run.set_input(data)?;
            (0..runs.max(1)).try_for_each(|_| run.run(self).map(|_| ()))
        });
        self.profiling = true;
        r?;
        let file = self.session.end_profiling()?;
        self.profiling = false;
        let text = std::fs::read_to_string(&file)
            .map_err(|e| OnnxError::Runtime(format!("cannot read profile {file}: {e}")))?;
        let _ = std::fs::remove_file(&file);
        let p = super::profile::Profile::parse(&text, &file)?;
        self.placement = p.placement();
        Ok(p)
    }

    pub(super) fn collect_placement(&mut self) -> Result<()> {
        let file = self.session.end_profiling()?;
        self.profiling = false;
        let text = std::fs::read_to_string(&file)
            .map_err(|e| OnnxError::Runtime(format!("cannot read profile {file}: {e}")))?;
        let _ = std::fs::remove_file(&file);
        let events: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| OnnxError::Runtime(format!("profile {file}: {e}")))?;
        for ev in events.as_array().into_iter().flatten() {
            if ev["cat"] != "Node" {
                continue;
            }
            let args = &ev["args"];
            let (Some(op), Some(provider)) = (args["op_name"].as_str(), args["provider"].as_str())
            else {
                continue;
            };
            let name = ev["name"]
                .as_str()
                .unwrap_or("")
                .trim_end_matches("_kernel_time")
                .trim_end_matches("_fence_before")
                .trim_end_matches("_fence_after");
            self.placement
                .entry(name.to_string())
                .or_insert_with(|| (op.to_string(), provider.to_string()));
        }
        Ok(())
    }

    /// Node → (op type, provider) for the nodes that ran, as ORT's profiler reports them (only
    /// with [`SessionOptions::record_placement`], after the first run). Nodes a provider fused
    /// (TensorRT) appear as one node of that provider.
    pub fn placement(&self) -> &BTreeMap<String, (String, String)> {
        &self.placement
    }

    /// Runs a single-input model on f32 data and returns every output with its name, in the
    /// model's order (float32 and float16 outputs; others are skipped). The calibration tool
    /// adds the tensors it needs ranges for as extra outputs and reads them all here.
    pub fn run_f32_outputs(
        &mut self,
        data: &[f32],
        dims: &[usize],
    ) -> Result<Vec<(String, Output)>> {
        let (name, ty) = self.single_input(None)?;
        if ty != Some(TensorElementType::Float32) {
            return Err(OnnxError::Data {
                what: format!("input '{name}'"),
                detail: "is not float32".into(),
            });
        }
        let shape: Vec<i64> = dims.iter().map(|&d| d as i64).collect();
        let t = Tensor::from_array((shape, data.to_vec()))?;
        let outputs = self.session.run(ort::inputs![name.as_str() => t])?;
        let mut result = Vec::with_capacity(outputs.len());
        for (name, v) in outputs.iter() {
            if let Ok((s, x)) = v.try_extract_tensor::<f32>() {
                result.push((
                    name.to_string(),
                    (s.iter().map(|&d| d as usize).collect(), x.to_vec()),
                ));
            } else if let Ok((s, x)) = v.try_extract_tensor::<half::f16>() {
                result.push((
                    name.to_string(),
                    (
                        s.iter().map(|&d| d as usize).collect(),
                        x.iter().map(|h| h.to_f32()).collect(),
                    ),
                ));
            }
        }
        drop(outputs);
        if self.profiling {
            self.collect_placement()?;
        }
        Ok(result)
    }
}
