//! `ai.dysample::DySample` as an ONNX Runtime custom operator, computed by the SDK kernels.
//!
//! Weights must be initializers: they are read once, when ORT creates the kernel, together with
//! the attributes, so a malformed node fails at session creation with an error naming it.
//! Threads: each kernel runs on a private pool sized to the session's intra-op thread count.
//! ORT executes one node at a time (sequential executor), so while a DySample node runs its
//! pool replaces ORT's rather than adding to it; `--threads N` stays the total.

use super::precision::{DySamplePrecision, PrecisionExec};
use super::{conv_weight_dims, NodeAttrs, DOMAIN, OP_TYPE};
use crate::{DySample, Layout, Weights};
use ort::operator::{
    ComputeContext, Kernel, KernelContext, Operator, OperatorDomain, OperatorInput, OperatorOutput,
};
use ort::value::{DynValueTypeMarker, PrimitiveTensorElementType, TensorElementType};
use std::marker::PhantomData;

/// Element types the operator is registered for.
pub trait Element:
    PrimitiveTensorElementType + Copy + Send + Sync + std::fmt::Debug + 'static
{
    const TYPE: TensorElementType;
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
    /// Worker threads per kernel: the session's intra-op thread count.
    threads: usize,
    /// Precision the kernels compute in (see [`super::precision`]).
    precision: DySamplePrecision,
    _t: PhantomData<fn() -> T>,
}

impl<T> DySampleOp<T> {
    pub fn new(threads: usize) -> Self {
        Self {
            threads: threads.max(1),
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

/// The `ai.dysample` operator domain with DySample for f32 and f16; `threads` should equal the
/// session's intra-op threads (`SessionBuilder::with_intra_threads`).
pub fn domain(threads: usize) -> super::Result<OperatorDomain> {
    domain_with_precision(threads, DySamplePrecision::F32)
}

/// Like [`domain`], with every DySample node computed in `precision`.
pub fn domain_with_precision(
    threads: usize,
    precision: DySamplePrecision,
) -> super::Result<OperatorDomain> {
    Ok(OperatorDomain::new(DOMAIN)?
        .add(DySampleOp::<f32>::new(threads).with_precision(precision))?
        .add(DySampleOp::<half::f16>::new(threads).with_precision(precision))?)
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
    ort::Error::new(format!("DySample node '{node}': {detail}"))
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

/// Builds the layer from the node, validating everything ORT lets us see before the first run.
fn build_layer<T: Element>(
    kctx: &KernelContext<'_>,
    threads: usize,
) -> ort::Result<(String, DySample)> {
    let node = kctx.node_name().unwrap_or_default();
    let node = if node.is_empty() {
        "<unnamed>".to_string()
    } else {
        node
    };
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
    // A private pool of the session's size, never rayon's global one (all cores).
    let layer = DySample::new(cfg, weights)
        .and_then(|l| l.with_threads(threads.max(1)))
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
        let (node, layer) = build_layer::<T>(kctx, self.threads)?;
        Ok(DySampleKernel {
            node,
            layer,
            exec: PrecisionExec::new(self.precision),
            _t: PhantomData,
        })
    }
}

impl<T: Element> Kernel for DySampleKernel<T> {
    fn compute(&mut self, ctx: &ComputeContext) -> ort::Result<()> {
        let node = &self.node;
        let x = ctx
            .input(0)?
            .ok_or_else(|| err(node, "input X is missing"))?;
        let (shape, xs) = x
            .try_extract_tensor::<T>()
            .map_err(|e| err(node, format_args!("input X: {e}")))?;
        let dims: [usize; 4] = match shape
            .iter()
            .map(|&d| usize::try_from(d).ok())
            .collect::<Option<Vec<_>>>()
            .as_deref()
        {
            Some(&[b, c, h, w]) => [b, c, h, w],
            _ => {
                return Err(err(
                    node,
                    format_args!(
                        "input X must be 4-D [B, C, H, W], got shape {:?}",
                        shape.to_vec()
                    ),
                ))
            }
        };
        let odims = self
            .layer
            .output_dims(dims, Layout::Nchw)
            .map_err(|e| err(node, e))?;
        let mut y = ctx
            .output(0, odims.iter().map(|&d| d as i64).collect::<Vec<_>>())?
            .ok_or_else(|| err(node, "output Y is not requested"))?;
        let (_, ys) = y.try_extract_tensor_mut::<T>()?;

        self.exec
            .forward(&self.layer, xs, dims, ys)
            .map_err(|e| err(node, e))
    }
}
