//! DySample ("Learning to Upsample by Learning to Sample", ICCV 2023) for edge inference.
//!
//! A DySample layer predicts a sampling offset for every output pixel with a 1x1 convolution
//! and bilinearly samples its input there. This crate loads the layer's weights straight from
//! PyTorch checkpoints (safetensors) and runs it on the CPU.
//!
//! ```
//! use dysample::{DySample, DySampleConfig, Layout, Style};
//! let cfg = DySampleConfig::new(16, 2, Style::Lp, 4, false)?;
//! let layer = DySample::random(cfg, 0)?;
//! let x = ndarray::Array4::<f32>::ones((1, 16, 8, 8));
//! let y = layer.forward(x.view(), Layout::Nchw)?;
//! assert_eq!(y.shape(), &[1, 16, 16, 16]);
//! # Ok::<(), dysample::Error>(())
//! ```

pub mod config;
pub mod cpu;
mod engine;
pub mod error;
pub mod io;
pub mod kernels;
pub mod layer;
pub mod npy;
#[cfg(any(feature = "onnxruntime", feature = "onnx-graph"))]
pub mod onnx;
mod points;
mod pool;
pub mod quant;
pub mod reference;
pub mod tensor;
mod vmath;
pub mod weights;

pub use config::{DySampleConfig, Style};
pub use cpu::CpuFeatures;
pub use engine::{stream_nchw_output, NCHW_STREAM_ENV};
pub use error::{Error, Result};
pub use kernels::{Backend, BackendChoice};
pub use layer::{DySample, ExecOptions, QuantizedDySample};
pub use quant::{Affine, QuantParams, Symmetry};
pub use tensor::{Layout, Shape};
pub use weights::{list_layers, Weights};
