//! The user-facing layers: configuration + weights + an execution engine.

use crate::config::DySampleConfig;
use crate::engine::{Engine, FloatPlan, IntPlan};
use crate::error::{Error, Result};
use crate::kernels::{Backend, BackendChoice};
use crate::quant::{Affine, QuantParams, QuantizedWeights};
use crate::tensor::{Layout, Shape};
use crate::weights::Weights;
use half::f16;
use ndarray::{Array4, ArrayView4, ArrayViewMut4};
use std::path::Path;
use std::sync::Arc;

/// Most worker threads one layer (or one ONNX Runtime session) may use. More threads than
/// cores only adds overhead, and each thread costs a stack.
pub const MAX_THREADS: usize = 256;

/// How a layer executes: which kernels and how many threads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExecOptions {
    pub backend: BackendChoice,
    /// Worker threads; `None` uses rayon's global pool (all cores).
    pub threads: Option<usize>,
}

/// A ready-to-run DySample layer (f32 and f16).
///
/// It owns its kernel choice, an optional private thread pool and pooled scratch memory,
/// so repeated calls allocate nothing but their output.
#[derive(Debug, Clone)]
pub struct DySample {
    cfg: DySampleConfig,
    weights: Weights,
    plan: Arc<FloatPlan>,
    exec: ExecOptions,
    engine: Engine,
}

impl DySample {
    /// Builds a layer from a config and matching weights, with the best backend for this CPU.
    pub fn new(cfg: DySampleConfig, weights: Weights) -> Result<Self> {
        // Re-check: `Weights` fields are public and may have been edited.
        let weights = Weights::new(
            &cfg,
            weights.offset_weight,
            weights.offset_bias,
            weights.scope_weight,
        )?;
        let exec = ExecOptions::default();
        Ok(Self {
            plan: Arc::new(FloatPlan::new(&cfg, &weights)),
            engine: Engine::new(exec.backend, exec.threads)?,
            exec,
            cfg,
            weights,
        })
    }

    /// Loads the layer at `prefix` from a PyTorch state_dict saved as safetensors.
    pub fn load(path: impl AsRef<Path>, prefix: &str, cfg: DySampleConfig) -> Result<Self> {
        Self::new(cfg, Weights::from_safetensors(path, prefix, &cfg)?)
    }

    /// A layer with random weights (std 0.3, like a trained model), for demos and benchmarks.
    pub fn random(cfg: DySampleConfig, seed: u64) -> Result<Self> {
        Self::new(cfg, Weights::random(&cfg, 0.3, seed)?)
    }

    /// Sets backend and threads. Fails if this CPU can't run the backend.
    pub fn with_exec(mut self, exec: ExecOptions) -> Result<Self> {
        self.engine = Engine::new(exec.backend, exec.threads)?;
        self.exec = exec;
        Ok(self)
    }

    #[cfg(feature = "onnxruntime")]
    /// Runs on a thread pool shared with other layers (the ONNX Runtime custom op gives every
    /// DySample node of a session the same pool).
    pub(crate) fn with_shared_pool(
        mut self,
        pool: std::sync::Arc<crate::pool::Pool>,
    ) -> Result<Self> {
        let threads = pool.threads();
        self.engine = Engine::with_pool(self.exec.backend, pool)?;
        self.exec.threads = Some(threads);
        Ok(self)
    }

    /// Chooses the kernel backend (`Auto` honours `DYSAMPLE_BACKEND`).
    pub fn with_backend(self, backend: BackendChoice) -> Result<Self> {
        let exec = ExecOptions {
            backend,
            ..self.exec
        };
        self.with_exec(exec)
    }

    /// Runs on a private pool of `threads` workers instead of the global one.
    pub fn with_threads(self, threads: usize) -> Result<Self> {
        let exec = ExecOptions {
            threads: Some(threads),
            ..self.exec
        };
        self.with_exec(exec)
    }

    pub fn config(&self) -> &DySampleConfig {
        &self.cfg
    }

    pub fn weights(&self) -> &Weights {
        &self.weights
    }

    /// The backend this layer's kernels come from.
    pub fn backend(&self) -> Backend {
        self.engine.kernels().backend
    }

    /// The engine: kernels and threads (for work at the layer's edges, e.g. conversions).
    pub(crate) fn engine(&self) -> &crate::engine::Engine {
        &self.engine
    }

    pub fn exec_options(&self) -> ExecOptions {
        self.exec
    }

    /// Checks an input's dimensions (given in `layout` order) and returns its logical shape.
    pub fn input_shape(&self, dims: [usize; 4], layout: Layout) -> Result<Shape> {
        check_input_shape(&self.cfg, dims, layout)
    }

    /// The output dimensions (in `layout` order) for input dimensions `dims`.
    pub fn output_dims(&self, dims: [usize; 4], layout: Layout) -> Result<[usize; 4]> {
        Ok(self
            .input_shape(dims, layout)?
            .upsampled(self.cfg.scale)
            .dims(layout))
    }

    /// Number of output values for input dimensions `dims`: what a caller must allocate
    /// (× 4 bytes for f32, × 2 for f16, × 1 for int8) before calling a `forward_slice`.
    pub fn output_len(&self, dims: [usize; 4], layout: Layout) -> Result<usize> {
        Ok(self
            .input_shape(dims, layout)?
            .upsampled(self.cfg.scale)
            .len())
    }

    /// Runs the layer on a flat f32 buffer with dimensions `dims` in `layout` order,
    /// writing the upsampled result (same layout) into `out`.
    pub fn forward_slice(
        &self,
        input: &[f32],
        dims: [usize; 4],
        layout: Layout,
        out: &mut [f32],
    ) -> Result<()> {
        let shape = self.input_shape(dims, layout)?;
        check_lengths(&self.cfg, shape, input.len(), out.len())?;
        let _span = tracing::debug_span!("dysample.forward", precision = "f32", %shape, %layout, backend = %self.backend()).entered();
        self.engine
            .forward_f32(&self.plan, input, shape, layout, out);
        Ok(())
    }

    /// Runs the layer on a flat f16 buffer (same contract as [`DySample::forward_slice`]).
    /// Offsets and interpolation are computed in f32; storage is half precision.
    pub fn forward_slice_f16(
        &self,
        input: &[f16],
        dims: [usize; 4],
        layout: Layout,
        out: &mut [f16],
    ) -> Result<()> {
        let shape = self.input_shape(dims, layout)?;
        check_lengths(&self.cfg, shape, input.len(), out.len())?;
        let _span = tracing::debug_span!("dysample.forward", precision = "f16", %shape, %layout, backend = %self.backend()).entered();
        self.engine
            .forward_f16(&self.plan, input, shape, layout, out);
        Ok(())
    }

    /// Runs the layer on an ndarray view (any strides) and returns a new array in the same layout.
    pub fn forward(&self, input: ArrayView4<'_, f32>, layout: Layout) -> Result<Array4<f32>> {
        let dims = dims_of(input.shape());
        let odims = self.output_dims(dims, layout)?;
        let buf = crate::io::try_alloc(0.0f32, self.output_len(dims, layout)?, "the output")?;
        let mut out = Array4::from_shape_vec(odims, buf)
            .map_err(|e| Error::shape("output", e.to_string()))?;
        self.forward_into(input, layout, out.view_mut())?;
        Ok(out)
    }

    /// Runs the layer into a caller-provided array (which must have the output's shape).
    pub fn forward_into(
        &self,
        input: ArrayView4<'_, f32>,
        layout: Layout,
        mut out: ArrayViewMut4<'_, f32>,
    ) -> Result<()> {
        let dims = dims_of(input.shape());
        let odims = self.output_dims(dims, layout)?;
        if out.shape() != odims {
            return Err(Error::shape(
                "output",
                format!("expected dims {odims:?}, got {:?}", out.shape()),
            ));
        }
        let input = input.as_standard_layout();
        let x = input.as_slice().expect("standard layout is contiguous");
        match out.as_slice_mut() {
            Some(o) => self.forward_slice(x, dims, layout, o),
            None => {
                let mut tmp = crate::io::try_alloc(0.0f32, out.len(), "the output")?;
                self.forward_slice(x, dims, layout, &mut tmp)?;
                out.iter_mut().zip(tmp).for_each(|(d, s)| *d = s);
                Ok(())
            }
        }
    }

    /// The int8 form of this layer under `params` (see [`crate::quant`] for the scheme).
    pub fn quantize(&self, params: &QuantParams) -> Result<QuantizedDySample> {
        let qw = QuantizedWeights::new(&self.cfg, &self.weights, params)?;
        Ok(QuantizedDySample {
            plan: Arc::new(IntPlan::new(qw)),
            engine: self.engine.clone(),
        })
    }
}

/// The integer-only int8 layer. Output bytes are identical on every backend and architecture.
#[derive(Debug, Clone)]
pub struct QuantizedDySample {
    plan: Arc<IntPlan>,
    engine: Engine,
}

impl QuantizedDySample {
    pub fn config(&self) -> &DySampleConfig {
        &self.plan.qw.cfg
    }

    pub fn params(&self) -> &QuantParams {
        &self.plan.qw.params
    }

    /// The integer parameters (for inspection and the int8 reference).
    pub fn quantized_weights(&self) -> &QuantizedWeights {
        &self.plan.qw
    }

    /// Input (and output) quantization.
    pub fn io_quant(&self) -> Affine {
        self.plan.qw.params.input
    }

    /// Re-quantizes the layer for a new input (and output) quantization in place
    /// ([`QuantizedWeights::set_input`]): the same layer as quantizing afresh with `input` and
    /// the same weight scales, without allocating (unless this layer's plan is shared with a
    /// clone, which then keeps the old one). On error the layer is unchanged.
    pub fn set_input_quant(&mut self, input: Affine) -> Result<()> {
        Arc::make_mut(&mut self.plan).qw.set_input(input)
    }

    pub fn backend(&self) -> Backend {
        self.engine.kernels().backend
    }

    /// Chooses backend and threads.
    pub fn with_exec(mut self, exec: ExecOptions) -> Result<Self> {
        self.engine = Engine::new(exec.backend, exec.threads)?;
        Ok(self)
    }

    /// The output dimensions (in `layout` order) for input dimensions `dims`, checked like a
    /// run's input.
    pub fn output_dims(&self, dims: [usize; 4], layout: Layout) -> Result<[usize; 4]> {
        let cfg = self.config();
        Ok(check_input_shape(cfg, dims, layout)?
            .upsampled(cfg.scale)
            .dims(layout))
    }

    /// Runs the int8 layer; input and output share [`QuantizedDySample::io_quant`].
    pub fn forward_slice(
        &self,
        input: &[i8],
        dims: [usize; 4],
        layout: Layout,
        out: &mut [i8],
    ) -> Result<()> {
        let cfg = self.config();
        let shape = check_input_shape(cfg, dims, layout)?;
        check_lengths(cfg, shape, input.len(), out.len())?;
        let _span = tracing::debug_span!("dysample.forward", precision = "int8", %shape, %layout, backend = %self.backend()).entered();
        self.engine
            .forward_i8(&self.plan, input, shape, layout, out);
        Ok(())
    }

    /// Quantizes an f32 input, runs in int8 and dequantizes: a convenience for float pipelines.
    /// Non-finite input values are an error (they have no int8 value).
    pub fn forward_f32(
        &self,
        input: &[f32],
        dims: [usize; 4],
        layout: Layout,
        out: &mut [f32],
    ) -> Result<()> {
        let cfg = self.config();
        let shape = check_input_shape(cfg, dims, layout)?;
        check_lengths(cfg, shape, input.len(), out.len())?;
        crate::tensor::check_finite("input", input)?;
        let q = self.io_quant();
        let mut xq = crate::io::try_alloc(0i8, input.len(), "the quantized input")?;
        q.quantize_slice(input, &mut xq);
        let mut yq = crate::io::try_alloc(0i8, out.len(), "the quantized output")?;
        self.forward_slice(&xq, dims, layout, &mut yq)?;
        q.dequantize_slice(&yq, out);
        Ok(())
    }
}

fn check_input_shape(cfg: &DySampleConfig, dims: [usize; 4], layout: Layout) -> Result<Shape> {
    let shape = Shape::from_dims(dims, layout);
    if shape.channels != cfg.channels {
        return Err(Error::shape(
            "input",
            format!(
                "dims {dims:?} ({layout}) have {} channels, but the layer has {}",
                shape.channels, cfg.channels
            ),
        ));
    }
    if shape.batch == 0 || shape.height == 0 || shape.width == 0 {
        return Err(Error::shape(
            "input",
            format!("dims {dims:?} ({layout}) must all be ≥ 1"),
        ));
    }
    // Sample-point offsets are u32 element indices into one image.
    let img_ok = shape
        .height
        .checked_mul(shape.width)
        .and_then(|v| v.checked_mul(shape.channels))
        .is_some_and(|v| v < u32::MAX as usize);
    let out_ok = shape
        .checked_upsampled(cfg.scale)
        .and_then(|s| s.checked_len())
        .is_some_and(|n| n <= isize::MAX as usize / 4);
    if !img_ok || !out_ok {
        return Err(Error::shape(
            "input",
            format!("dims {dims:?} are too large (one image must hold < 2^32 values)"),
        ));
    }
    Ok(shape)
}

fn check_lengths(cfg: &DySampleConfig, shape: Shape, in_len: usize, out_len: usize) -> Result<()> {
    if in_len != shape.len() {
        return Err(Error::shape(
            "input",
            format!(
                "{shape} needs {} values, the buffer has {in_len}",
                shape.len()
            ),
        ));
    }
    let oshape = shape.upsampled(cfg.scale);
    if out_len != oshape.len() {
        return Err(Error::shape(
            "output",
            format!(
                "{oshape} needs {} values, the buffer has {out_len}",
                oshape.len()
            ),
        ));
    }
    Ok(())
}

fn dims_of(shape: &[usize]) -> [usize; 4] {
    [shape[0], shape[1], shape[2], shape[3]]
}
