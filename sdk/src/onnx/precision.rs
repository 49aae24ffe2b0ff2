//! The precision the custom op computes each DySample node in, whatever the graph's element type.
//!
//! An f32 graph can run its DySample layers in f16 ([`DySample::forward_slice_f16`]: inputs and
//! outputs converted to half precision and back) or in int8 with min/max parameters calibrated
//! on each call's own input ([`QuantParams::calibrate_minmax`], asymmetric, then
//! [`QuantizedDySample::forward_f32`]). The rest of the graph stays in ONNX Runtime's f32. This
//! is how an app measures what the SDK's f16 and int8 kernels cost in accuracy on a whole model.

use super::op::Element;
use crate::engine::grow;
use crate::quant::{affine_from_range, Affine};
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

/// Runs one node's layer in the chosen precision; keeps the int8 layer and the conversion
/// buffers between calls, so that a steady stream of same-sized inputs allocates nothing.
#[derive(Debug)]
pub(crate) struct PrecisionExec {
    precision: DySamplePrecision,
    /// The int8 layer, re-quantized in place for each call's input range.
    int8: Option<QuantizedDySample>,
    /// Conversion buffers (grow-only): f16 input and output, int8 input and output.
    xh: Vec<f16>,
    yh: Vec<f16>,
    xq: Vec<i8>,
    yq: Vec<i8>,
}

impl PrecisionExec {
    pub(crate) fn new(precision: DySamplePrecision) -> Self {
        Self {
            precision,
            int8: None,
            xh: Vec::new(),
            yh: Vec::new(),
            xq: Vec::new(),
            yq: Vec::new(),
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
                let xh = grow(&mut self.xh, x.len());
                for (h, v) in xh.iter_mut().zip(x) {
                    *h = f16::from_f32(v.to_f32());
                }
                let yh = grow(&mut self.yh, out.len());
                layer.forward_slice_f16(xh, dims, Layout::Nchw, yh)?;
                for (o, v) in out.iter_mut().zip(yh.iter()) {
                    *o = T::from_f32(v.to_f32());
                }
                Ok(())
            }
            DySamplePrecision::Int8MinMax => {
                let input = minmax_affine(x)?;
                let q = quantized(&mut self.int8, layer, input)?;
                // What `QuantizedDySample::forward_f32` does, in the kept buffers.
                let xq = grow(&mut self.xq, x.len());
                for (o, v) in xq.iter_mut().zip(x) {
                    *o = input.quantize(v.to_f32());
                }
                let yq = grow(&mut self.yq, out.len());
                q.forward_slice(xq, dims, Layout::Nchw, yq)?;
                for (o, &v) in out.iter_mut().zip(yq.iter()) {
                    *o = T::from_f32(input.dequantize(v));
                }
                Ok(())
            }
        }
    }
}

/// The int8 layer for input quantization `input`: the one `kept`, re-quantized in place when
/// `input` differs from its own (weight scales depend on the weights alone, so this equals
/// quantizing the layer afresh).
fn quantized<'a>(
    kept: &'a mut Option<QuantizedDySample>,
    layer: &DySample,
    input: Affine,
) -> crate::Result<&'a QuantizedDySample> {
    match kept {
        Some(q) if q.io_quant() == input => {}
        Some(q) => {
            tracing::trace!(?input, "re-quantizing DySample layer for this call's range");
            q.set_input_quant(input)?;
        }
        None => {
            tracing::debug!(?input, "quantizing DySample layer");
            let params = QuantParams::new(*layer.config(), input);
            *kept = Some(layer.quantize(&params)?);
        }
    }
    Ok(kept.as_ref().expect("set above"))
}

/// Asymmetric min/max input quantization of `x` (what [`QuantParams::calibrate_minmax`] gives
/// for this one sample), without copying it to f32 first; non-finite values are an error.
fn minmax_affine<T: Element>(x: &[T]) -> crate::Result<Affine> {
    let (mut lo, mut hi, mut bad) = (0.0f32, 0.0f32, 0usize);
    for v in x {
        let v = v.to_f32();
        bad += usize::from(!v.is_finite());
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if bad > 0 {
        let index = x.iter().position(|v| !v.to_f32().is_finite()).unwrap_or(0);
        return Err(crate::Error::NonFinite {
            what: "calibration sample 0".into(),
            count: bad,
            index,
        });
    }
    Ok(affine_from_range(lo, hi, Symmetry::Asymmetric))
}
