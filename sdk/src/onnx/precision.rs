//! The precision the custom op computes each DySample node in, whatever the graph's element type.
//!
//! An f32 graph can run its DySample layers in f16 ([`DySample::forward_slice_f16`]: inputs and
//! outputs converted to half precision and back) or in int8 with min/max parameters calibrated
//! on each call's own input ([`QuantParams::calibrate_minmax`], asymmetric, then
//! [`QuantizedDySample::forward_f32`]). The rest of the graph stays in ONNX Runtime's f32. This
//! is how an app measures what the SDK's f16 and int8 kernels cost in accuracy on a whole model.

use super::op::Element;
use crate::{DySample, Layout, QuantParams, QuantizedDySample, Symmetry};
use half::f16;
use ort::value::TensorElementType;

/// Precision of the DySample layers inside a session (`SessionOptions::dysample_precision`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum DySamplePrecision {
    /// The graph's own element type (f32 for an f32 graph, f16 for an f16 graph).
    #[default]
    F32,
    /// f16 storage, f32 arithmetic (native fp16 on ARMv8.2): [`DySample::forward_slice_f16`].
    F16,
    /// int8, per-call min/max calibration of the input (asymmetric, weights per channel).
    Int8MinMax,
}

impl DySamplePrecision {
    /// Parses `f32`, `f16` or `int8` (also `int8-minmax`).
    pub fn parse(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "f32" | "fp32" => Some(Self::F32),
            "f16" | "fp16" => Some(Self::F16),
            "int8" | "int8-minmax" | "int8_minmax" => Some(Self::Int8MinMax),
            _ => None,
        }
    }

    /// The short name: `f32`, `f16` or `int8`.
    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::F16 => "f16",
            Self::Int8MinMax => "int8",
        }
    }
}

impl std::fmt::Display for DySamplePrecision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Runs one node's layer in the chosen precision; keeps the last int8 layer for reuse.
#[derive(Debug)]
pub(crate) struct PrecisionExec {
    precision: DySamplePrecision,
    /// The int8 layer of the last call and the parameters it was quantized with.
    int8: Option<QuantizedDySample>,
}

impl PrecisionExec {
    pub(crate) fn new(precision: DySamplePrecision) -> Self {
        Self {
            precision,
            int8: None,
        }
    }

    /// `layer` on NCHW `x` with dims `dims` into `out`, in this precision.
    pub(crate) fn forward<T: Element>(
        &mut self,
        layer: &DySample,
        x: &[T],
        dims: [usize; 4],
        out: &mut [T],
    ) -> crate::Result<()> {
        match self.precision {
            DySamplePrecision::F32 => T::forward(layer, x, dims, out),
            // An f16 graph already runs the f16 kernels.
            DySamplePrecision::F16 if matches!(T::TYPE, TensorElementType::Float16) => {
                T::forward(layer, x, dims, out)
            }
            DySamplePrecision::F16 => {
                let xh: Vec<f16> = x.iter().map(|v| f16::from_f32(v.to_f32())).collect();
                let mut yh = vec![f16::ZERO; out.len()];
                layer.forward_slice_f16(&xh, dims, Layout::Nchw, &mut yh)?;
                for (o, v) in out.iter_mut().zip(&yh) {
                    *o = T::from_f32(v.to_f32());
                }
                Ok(())
            }
            DySamplePrecision::Int8MinMax => {
                let xf: Vec<f32> = x.iter().map(|v| v.to_f32()).collect();
                let q = self.quantized(layer, &xf)?;
                let mut yf = vec![0f32; out.len()];
                q.forward_f32(&xf, dims, Layout::Nchw, &mut yf)?;
                for (o, &v) in out.iter_mut().zip(&yf) {
                    *o = T::from_f32(v);
                }
                Ok(())
            }
        }
    }

    /// The int8 layer for min/max parameters of `x`: the cached one when they repeat (weight
    /// scales depend on the weights alone, so equal input parameters mean an equal layer).
    fn quantized(&mut self, layer: &DySample, x: &[f32]) -> crate::Result<&QuantizedDySample> {
        let params = QuantParams::calibrate_minmax(*layer.config(), [x], Symmetry::Asymmetric)?;
        let reuse = self
            .int8
            .as_ref()
            .is_some_and(|q| q.params().input == params.input);
        if !reuse {
            tracing::debug!(input = ?params.input, "quantizing DySample layer for this call's range");
            self.int8 = Some(layer.quantize(&params)?);
        }
        Ok(self.int8.as_ref().expect("set above"))
    }
}
