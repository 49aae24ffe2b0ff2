//! `ai.dysample::DySample` as an ONNX Runtime custom operator, computed by the SDK kernels.
//!
//! Weights must be initializers: they are read once, when ORT creates the kernel, together with
//! the attributes, so a malformed node fails at session creation with an error naming it.
//! Threads: every DySample node of a session runs on **one** pool sized to the session's
//! intra-op thread count, started when the first node is created (a model with a thousand
//! DySample nodes still has one pool). ORT executes one node at a time (sequential executor),
//! so while a DySample node runs the pool replaces ORT's rather than adding to it; `--threads N`
//! stays the total.
//!
//! Three operators share the name: f32 and f16 (X, weights and Y of one type) and int8 (X and Y
//! `tensor(int8)`, float weights, parameters in attributes; see [`super::Int8Attrs`]). The int8
//! layer is quantized once, when the kernel is created. Panics inside a kernel are caught and
//! returned to ORT as errors (they must not unwind through its C frames).

use super::kernel_io::{self, IoError};
use super::precision::{DySamplePrecision, PrecisionExec};
use super::{conv_weight_dims, Int8Attrs, NodeAttrs, DOMAIN, OP_TYPE};
use crate::kernels::Kernels;
use crate::pool::Pool;
use crate::{DySample, Layout, QuantizedDySample, Weights};
use ort::operator::{
    ComputeContext, Kernel, KernelContext, Operator, OperatorDomain, OperatorInput, OperatorOutput,
};
use ort::value::{DynValueTypeMarker, PrimitiveTensorElementType, TensorElementType};
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};

/// The session's pool, shared by the f32 and f16 operators and all their kernels.
#[derive(Debug)]
struct SharedPool {
    threads: usize,
    pool: Mutex<Option<Arc<Pool>>>,
}

impl SharedPool {
    fn get(&self) -> Result<Arc<Pool>, String> {
        let mut p = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(pool) = p.as_ref() {
            return Ok(pool.clone());
        }
        let pool = Arc::new(Pool::new(
            rayon::ThreadPoolBuilder::new()
                .num_threads(self.threads)
                .thread_name(|i| format!("dysample-ort-{i}"))
                .build()
                .map_err(|e| format!("cannot start {} threads: {e}", self.threads))?,
        ));
        *p = Some(pool.clone());
        Ok(pool)
    }
}

/// Element types the operator is registered for.
pub trait Element:
    PrimitiveTensorElementType + Copy + Send + Sync + std::fmt::Debug + 'static
{
    const TYPE: TensorElementType;
    /// `src` as f16 into `dst` (same length): f32 through the backend's converts.
    fn to_f16_slice(k: &Kernels, src: &[Self], dst: &mut [half::f16]);
    /// `src` into `dst` (same length): f32 through the backend's converts.
    fn from_f16_slice(k: &Kernels, src: &[half::f16], dst: &mut [Self]);
    fn to_f32(self) -> f32;
    fn from_f32(v: f32) -> Self;
    fn forward(
        layer: &DySample,
        x: &[Self],
        dims: [usize; 4],
        out: &mut [Self],
    ) -> crate::Result<()>;
}

impl Element for f32 {
    const TYPE: TensorElementType = TensorElementType::Float32;
    fn to_f16_slice(k: &Kernels, src: &[Self], dst: &mut [half::f16]) {
        (k.cvt_f32_f16)(src, dst)
    }
    fn from_f16_slice(k: &Kernels, src: &[half::f16], dst: &mut [Self]) {
        (k.cvt_f16_f32)(src, dst)
    }
    fn to_f32(self) -> f32 {
        self
    }
    fn from_f32(v: f32) -> Self {
        v
    }
    fn forward(
        layer: &DySample,
        x: &[f32],
        dims: [usize; 4],
        out: &mut [f32],
    ) -> crate::Result<()> {
        layer.forward_slice(x, dims, Layout::Nchw, out)
    }
}

impl Element for half::f16 {
    const TYPE: TensorElementType = TensorElementType::Float16;
    fn to_f16_slice(_: &Kernels, src: &[Self], dst: &mut [half::f16]) {
        dst.copy_from_slice(src)
    }
    fn from_f16_slice(_: &Kernels, src: &[half::f16], dst: &mut [Self]) {
        dst.copy_from_slice(src)
    }
    fn to_f32(self) -> f32 {
        half::f16::to_f32(self)
    }
    fn from_f32(v: f32) -> Self {
        half::f16::from_f32(v)
    }
    fn forward(
        layer: &DySample,
        x: &[Self],
        dims: [usize; 4],
        out: &mut [Self],
    ) -> crate::Result<()> {
        layer.forward_slice_f16(x, dims, Layout::Nchw, out)
    }
}

/// The operator for one element type; register both with [`domain`].
#[derive(Debug)]
pub struct DySampleOp<T> {
    /// The session's intra-op thread count, in one pool for all kernels.
    pool: Arc<SharedPool>,
    /// Precision the kernels compute in (see [`super::precision`]).
    precision: DySamplePrecision,
    _t: PhantomData<fn() -> T>,
}

impl<T> DySampleOp<T> {
    /// An operator whose kernels share one pool of `threads` workers.
    pub fn new(threads: usize) -> Self {
        let threads = threads.clamp(1, crate::layer::MAX_THREADS);
        Self::with_pool(Arc::new(SharedPool {
            threads,
            pool: Mutex::new(None),
        }))
    }

    fn with_pool(pool: Arc<SharedPool>) -> Self {
        Self {
            pool,
            precision: DySamplePrecision::F32,
            _t: PhantomData,
        }
    }

    /// Computes every DySample node in `precision` instead of the graph's element type.
    pub fn with_precision(mut self, precision: DySamplePrecision) -> Self {
        self.precision = precision;
        self
    }
}

/// The `ai.dysample` operator domain with DySample for f32, f16 and int8; `threads` should equal the
/// session's intra-op threads (`SessionBuilder::with_intra_threads`).
pub fn domain(threads: usize) -> super::Result<OperatorDomain> {
    domain_with_precision(threads, DySamplePrecision::F32)
}

/// Like [`domain`], with every float DySample node computed in `precision` (int8 nodes always
/// run in int8 with their own parameters); all three operators (and so every kernel of the
/// session) share one pool.
pub fn domain_with_precision(
    threads: usize,
    precision: DySamplePrecision,
) -> super::Result<OperatorDomain> {
    let f32_op = DySampleOp::<f32>::new(threads).with_precision(precision);
    let f16_op = DySampleOp::<half::f16>::with_pool(f32_op.pool.clone()).with_precision(precision);
    let i8_op = DySampleInt8Op {
        pool: f32_op.pool.clone(),
    };
    Ok(OperatorDomain::new(DOMAIN)?
        .add(f32_op)?
        .add(f16_op)?
        .add(i8_op)?)
}

/// The int8 operator: X and Y `tensor(int8)`, float weight initializers.
#[derive(Debug)]
pub struct DySampleInt8Op {
    pool: Arc<SharedPool>,
}

impl DySampleInt8Op {
    /// An operator whose kernels share one pool of `threads` workers.
    pub fn new(threads: usize) -> Self {
        Self {
            pool: DySampleOp::<f32>::new(threads).pool,
        }
    }
}

/// One int8 node's kernel: the layer quantized with the node's parameters.
#[derive(Debug)]
pub struct DySampleInt8Kernel {
    node: String,
    layer: QuantizedDySample,
}

/// One node's kernel: the layer built from the node's attributes and initializers.
#[derive(Debug)]
pub struct DySampleKernel<T> {
    node: String,
    layer: DySample,
    exec: PrecisionExec,
    _t: PhantomData<fn() -> T>,
}

fn err(node: &str, detail: impl std::fmt::Display) -> ort::Error {
    // One line, and no NUL (ORT needs a C string; ort would panic making one).
    ort::Error::new(format!("DySample node '{node}': {detail}").replace(['\n', '\0'], " "))
}

fn read_weight<T: Element>(
    kctx: &KernelContext<'_>,
    node: &str,
    idx: usize,
    name: &str,
) -> ort::Result<(Vec<i64>, Vec<f32>)> {
    let value = kctx
        .constant_input::<DynValueTypeMarker>(idx)
        .map_err(|_| err(node, format_args!("input {idx} ({name}) must be an initializer (a constant), not a computed value or graph input")))?;
    let (shape, data) = value
        .try_extract_tensor::<T>()
        .map_err(|e| err(node, format_args!("input {idx} ({name}): {e}")))?;
    Ok((shape.to_vec(), data.iter().map(|v| v.to_f32()).collect()))
}

fn node_name(kctx: &KernelContext<'_>) -> String {
    match kctx.node_name() {
        Ok(n) if !n.is_empty() => n,
        _ => "<unnamed>".to_string(),
    }
}

fn int8_attrs(kctx: &KernelContext<'_>) -> Int8Attrs {
    Int8Attrs {
        x_scale: kctx.get::<f32>("x_scale"),
        x_zero_point: kctx.get::<i64>("x_zero_point"),
        offset_weight_scales: kctx.get::<Vec<f32>>("offset_weight_scales"),
        scope_weight_scales: kctx.get::<Vec<f32>>("scope_weight_scales"),
    }
}

/// Runs `f`, turning a panic into an error naming the node: a panic must not unwind into
/// ONNX Runtime's C++ frames (that aborts the host process).
fn guarded<R>(node: &str, f: impl FnOnce() -> ort::Result<R>) -> ort::Result<R> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(p) => {
            let msg = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(err(
                node,
                format_args!("internal error (panic): {}", msg.replace('\n', " ")),
            ))
        }
    }
}

/// Builds the layer from the node, validating everything ORT lets us see before the first run;
/// `T` is the weights' element type.
fn build_layer<T: Element>(
    kctx: &KernelContext<'_>,
    pool: &SharedPool,
) -> ort::Result<(String, DySample)> {
    let threads = pool.threads;
    let node = node_name(kctx);
    let attrs = NodeAttrs::parse(
        kctx.get::<i64>("scale"),
        kctx.get::<String>("style").as_deref(),
        kctx.get::<i64>("groups"),
        kctx.get::<i64>("dyscope"),
    )
    .map_err(|e| err(&node, e))?;
    let n_inputs = kctx.inputs()?.len();
    let has_scope = n_inputs >= 4;
    if n_inputs < 3 {
        return Err(err(
            &node,
            format_args!("needs inputs X, offset_weight, offset_bias, got {n_inputs}"),
        ));
    }
    if attrs.dyscope != has_scope {
        return Err(err(
            &node,
            if attrs.dyscope {
                "dyscope=1 but input 3 (scope_weight) is missing"
            } else {
                "dyscope=0 but a scope_weight input is given"
            },
        ));
    }
    let (w_dims, w) = read_weight::<T>(kctx, &node, 1, "offset_weight")?;
    let (b_dims, b) = read_weight::<T>(kctx, &node, 2, "offset_bias")?;
    let (o, cin) =
        conv_weight_dims(&w_dims).map_err(|e| err(&node, format_args!("offset_weight: {e}")))?;
    if b_dims != [o as i64] {
        return Err(err(
            &node,
            format_args!("offset_bias has shape {b_dims:?}, expected [{o}]"),
        ));
    }
    let scope = if has_scope {
        let (s_dims, s) = read_weight::<T>(kctx, &node, 3, "scope_weight")?;
        if conv_weight_dims(&s_dims).ok() != Some((o, cin)) {
            return Err(err(&node, format_args!("scope_weight has shape {s_dims:?}, expected [{o}, {cin}, 1, 1] like offset_weight")));
        }
        Some(s)
    } else {
        None
    };
    let cfg = attrs.config(o, cin).map_err(|e| err(&node, e))?;
    let weights = Weights::new(&cfg, w, b, scope).map_err(|e| err(&node, e))?;
    // The session's shared pool, never rayon's global one (all cores); one thread runs inline.
    let layer = DySample::new(cfg, weights).map_err(|e| err(&node, e))?;
    let layer = if threads <= 1 {
        layer.with_threads(1)
    } else {
        let pool = pool.get().map_err(|e| err(&node, e))?;
        layer.with_shared_pool(pool)
    }
    .map_err(|e| err(&node, e))?;
    tracing::debug!(node = %node, config = %cfg, threads, backend = ?layer.backend(), "created DySample kernel");
    Ok((node, layer))
}

impl<T: Element> Operator for DySampleOp<T> {
    type Kernel<'attr> = DySampleKernel<T>;

    fn name(&self) -> &str {
        OP_TYPE
    }

    fn inputs(&self) -> impl IntoIterator<Item = OperatorInput> {
        [
            OperatorInput::required(T::TYPE),
            OperatorInput::required(T::TYPE),
            OperatorInput::required(T::TYPE),
            OperatorInput::optional(T::TYPE),
        ]
    }

    fn outputs(&self) -> impl IntoIterator<Item = OperatorOutput> {
        [OperatorOutput::required(T::TYPE)]
    }

    fn create_kernel<'attr>(
        &self,
        kctx: &KernelContext<'attr>,
    ) -> ort::Result<Self::Kernel<'attr>> {
        guarded(&node_name(kctx), || {
            let (node, layer) = build_layer::<T>(kctx, &self.pool)?;
            let elem = if matches!(T::TYPE, TensorElementType::Float16) {
                "float16"
            } else {
                "float"
            };
            int8_attrs(kctx)
                .refuse_on_float(elem)
                .map_err(|e| err(&node, e))?;
            Ok(DySampleKernel {
                node,
                layer,
                exec: PrecisionExec::new(self.precision),
                _t: PhantomData,
            })
        })
    }
}

/// X's dims as `[B, C, H, W]`.
fn nchw_dims(node: &str, shape: &[i64]) -> ort::Result<[usize; 4]> {
    let bad = || {
        err(
            node,
            format_args!("input X must be 4-D [B, C, H, W], got shape {shape:?}"),
        )
    };
    let &[b, c, h, w] = shape else {
        return Err(bad());
    };
    let d = |v: i64| usize::try_from(v).map_err(|_| bad());
    Ok([d(b)?, d(c)?, d(h)?, d(w)?])
}

/// Runs `forward` on input 0 (element type `T`) into output 0 (element type `U`), shaped by
/// `output_dims`. Tensors are read through [`kernel_io`] (no heap allocation per call).
fn compute_nchw<T: PrimitiveTensorElementType, U: PrimitiveTensorElementType>(
    node: &str,
    ctx: &ComputeContext,
    output_dims: impl FnOnce([usize; 4]) -> crate::Result<[usize; 4]>,
    forward: impl FnOnce(&[T], [usize; 4], &mut [U]) -> crate::Result<()>,
) -> ort::Result<()> {
    let (shape, xs) = match kernel_io::input::<T>(ctx, 0) {
        Ok(Some(x)) => x,
        Ok(None) => return Err(err(node, "input X is missing")),
        Err(IoError::Rank(n)) => {
            return Err(err(
                node,
                format_args!("input X must be 4-D [B, C, H, W], got {n} dims"),
            ))
        }
        Err(e) => return Err(err(node, format_args!("input X: {e}"))),
    };
    let dims = nchw_dims(node, shape.as_slice())?;
    let odims = output_dims(dims).map_err(|e| err(node, e))?;
    // Output dims come from a validated layer shape (each < 2^32 · scale²), so they fit i64.
    // SAFETY: output 0 is taken once in this compute call.
    let ys = unsafe { kernel_io::output::<U>(ctx, 0, &odims.map(|d| d as i64)) }
        .map_err(|e| err(node, format_args!("output Y: {e}")))?
        .ok_or_else(|| err(node, "output Y is not requested"))?;
    forward(xs, dims, ys).map_err(|e| err(node, e))
}

impl<T: Element> Kernel for DySampleKernel<T> {
    fn compute(&mut self, ctx: &ComputeContext) -> ort::Result<()> {
        let (node, layer, exec) = (&self.node, &self.layer, &mut self.exec);
        guarded(node, || {
            compute_nchw::<T, T>(
                node,
                ctx,
                |d| layer.output_dims(d, Layout::Nchw),
                |x, d, y| exec.forward(layer, x, d, y),
            )
        })
    }
}

impl Operator for DySampleInt8Op {
    type Kernel<'attr> = DySampleInt8Kernel;

    fn name(&self) -> &str {
        OP_TYPE
    }

    fn inputs(&self) -> impl IntoIterator<Item = OperatorInput> {
        [
            OperatorInput::required(TensorElementType::Int8),
            OperatorInput::required(TensorElementType::Float32),
            OperatorInput::required(TensorElementType::Float32),
            OperatorInput::optional(TensorElementType::Float32),
        ]
    }

    fn outputs(&self) -> impl IntoIterator<Item = OperatorOutput> {
        [OperatorOutput::required(TensorElementType::Int8)]
    }

    fn create_kernel<'attr>(
        &self,
        kctx: &KernelContext<'attr>,
    ) -> ort::Result<Self::Kernel<'attr>> {
        guarded(&node_name(kctx), || {
            let (node, layer) = build_layer::<f32>(kctx, &self.pool)?;
            let params = int8_attrs(kctx)
                .params(layer.config())
                .map_err(|e| err(&node, e))?;
            let layer = layer.quantize(&params).map_err(|e| err(&node, e))?;
            tracing::debug!(node = %node, input = ?params.input, "created int8 DySample kernel");
            Ok(DySampleInt8Kernel { node, layer })
        })
    }
}

impl Kernel for DySampleInt8Kernel {
    fn compute(&mut self, ctx: &ComputeContext) -> ort::Result<()> {
        let (node, layer) = (&self.node, &self.layer);
        guarded(node, || {
            compute_nchw::<i8, i8>(
                node,
                ctx,
                |d| layer.output_dims(d, Layout::Nchw),
                |x, d, y| layer.forward_slice(x, d, Layout::Nchw, y),
            )
        })
    }
}
