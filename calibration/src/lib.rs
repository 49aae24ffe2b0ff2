//! `dysample-calibrate`: int8 scales for a whole trained DySample network, and what each
//! runtime needs from them.
//!
//! 1. [`graph`]: the f32 model (custom-op or lowered form), constants folded; [`graph::Plan`]
//!    says which nodes are quantized and which tensors need a range; [`rewrite`]: float-exact
//!    rewrites (Pad into Conv, ReduceMean → GlobalAveragePool, HardSwish → x · HardSigmoid(x))
//!    so that ONNX Runtime fuses the int8 graph.
//! 2. [`collect`]: ONNX Runtime through the SDK's session builder over the calibration set
//!    ([`data`]), the tensors as extra outputs, one streamed [`hist::Histogram`] per tensor.
//! 3. [`methods`]: minmax, percentile, entropy (TensorRT's), mse → a range per tensor.
//! 4. Targets: [`qdq`] (int8 QDQ ONNX for the CPU with int8 DySample nodes; explicit QDQ for
//!    TensorRT), [`trt_cache`] (TensorRT calibration cache), [`sdk_params`] (QuantParams JSON).
//! 5. [`report`]: per-tensor SQNR, per-layer sensitivity, greedy exclusions under a budget.

pub mod collect;
pub mod data;
mod error;
pub mod graph;
pub mod hist;
pub mod methods;
pub mod output;
pub mod pipeline;
pub mod plot;
pub mod qdq;
pub mod report;
pub mod rewrite;
pub mod sdk_params;
pub mod trt_cache;

pub use error::{CalibError, Result};
