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
                // The edges run on the layer's threads with the backend's F16C/NEON converts:
                // done serially they took 3x the layer's own time at the reference shape.
                let (eng, k) = (layer.engine(), layer.engine().kernels());
                let xh = grow(&mut self.xh, x.len());
                eng.par_zip(x, xh, |a, b| T::to_f16_slice(k, a, b));
                let yh = grow(&mut self.yh, out.len());
                layer.forward_slice_f16(xh, dims, Layout::Nchw, yh)?;
                eng.par_zip(yh, out, |a, b| T::from_f16_slice(k, a, b));
                Ok(())
            }
            DySamplePrecision::Int8MinMax => {
                let eng = layer.engine();
                let input = minmax_affine(eng, x)?;
                let q = quantized(&mut self.int8, layer, input)?;
                // What `QuantizedDySample::forward_f32` does, in the kept buffers.
                let xq = grow(&mut self.xq, x.len());
                eng.par_zip(x, xq, |a, b| {
                    b.iter_mut()
                        .zip(a)
                        .for_each(|(o, v)| *o = input.quantize(v.to_f32()))
                });
                let yq = grow(&mut self.yq, out.len());
                q.forward_slice(xq, dims, Layout::Nchw, yq)?;
                eng.par_zip(yq, out, |a, b| {
                    b.iter_mut()
                        .zip(a)
                        .for_each(|(o, &v)| *o = T::from_f32(input.dequantize(v)))
                });
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
/// for this one sample), on the layer's threads, without copying it to f32 first; non-finite
/// values are an error.
fn minmax_affine<T: Element>(eng: &crate::engine::Engine, x: &[T]) -> crate::Result<Affine> {
    // (min, max, non-finite count); min/max start at 0 as in `minmax_affine` (the range always
    // holds zero), and f32::min/max skip NaN, so the order of the pieces does not matter.
    let (lo, hi, bad) = eng.par_fold(
        x,
        (0.0f32, 0.0f32, 0usize),
        |c| {
            // Eight independent lanes, so that the loop vectorizes (one chain is latency-bound).
            let (mut lo, mut hi, mut bad) = ([0.0f32; 8], [0.0f32; 8], [0u32; 8]);
            let mut it = c.chunks_exact(8);
            for v in &mut it {
                for i in 0..8 {
                    let v = v[i].to_f32();
                    lo[i] = lo[i].min(v);
                    hi[i] = hi[i].max(v);
                    bad[i] += u32::from(!v.is_finite());
                }
            }
            let tail = it
                .remainder()
                .iter()
                .fold((0.0f32, 0.0f32, 0usize), |(l, h, b), v| {
                    let v = v.to_f32();
                    (l.min(v), h.max(v), b + usize::from(!v.is_finite()))
                });
            (
                lo.iter().fold(tail.0, |a, &b| a.min(b)),
                hi.iter().fold(tail.1, |a, &b| a.max(b)),
                tail.2 + bad.iter().map(|&b| b as usize).sum::<usize>(),
            )
        },
        |a, b| (a.0.min(b.0), a.1.max(b.1), a.2 + b.2),
    );
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DySampleConfig, Style};
    use rand::{rngs::StdRng, Rng, SeedableRng};

    /// The serial min/max the parallel one replaced, kept as its oracle.
    fn serial_minmax_affine<T: Element>(x: &[T]) -> crate::Result<Affine> {
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

    /// The parallel f32 min/max (pieces folded on 2 threads) equals the serial reference,
    /// and counts non-finite values the same way.
    #[test]
    fn parallel_minmax_equals_serial() {
        let cfg = DySampleConfig::new(8, 2, Style::Lp, 2, false).unwrap();
        let layer = DySample::random(cfg, 3).unwrap().with_threads(2).unwrap();
        let mut rng = StdRng::seed_from_u64(9);
        let mut x: Vec<f32> = (0..1_000_003).map(|_| rng.gen_range(-3.0..5.0)).collect();
        x[777_777] = -7.5;
        let want = serial_minmax_affine(&x).unwrap();
        assert_eq!(minmax_affine(layer.engine(), &x).unwrap(), want);
        let all_neg: Vec<f32> = x.iter().map(|v| -v.abs() - 1.0).collect();
        assert_eq!(
            minmax_affine(layer.engine(), &all_neg).unwrap(),
            serial_minmax_affine(&all_neg).unwrap()
        );
        x[500_001] = f32::NAN;
        x[900_000] = f32::INFINITY;
        let e = minmax_affine(layer.engine(), &x).unwrap_err().to_string();
        assert_eq!(e, serial_minmax_affine(&x).unwrap_err().to_string());
        assert!(e.contains('2') && e.contains("500001"), "{e}");
    }
}
