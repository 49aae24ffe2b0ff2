//! Model folders, eval sets, preprocessing, metrics and evaluation for DySample models.
//!
//! The contract is `models/SPEC.md`: a model folder holds `model.json` ([`ModelJson`], opened
//! with [`ModelDir::open`]) and the ONNX files; an eval set holds `manifest.json`
//! ([`EvalSet::open`]) with images and targets. [`Predictor`] runs a model on an image as
//! `model.json` says (resize, colour order, mean/std); [`evaluate`] runs it over an eval set
//! and computes the SPEC's metrics ([`metrics`]). The CLI's `dysample eval`, the calibration
//! tool and the demo apps share this code.
//!
//! ```no_run
//! use dysample_models::{evaluate, EvalOptions, EvalSet, ModelDir, Variant};
//! let model = ModelDir::open("models/person-seg")?;
//! let set = EvalSet::open("models/eval/seg-composites")?;
//! let report = evaluate(&model, &set, &EvalOptions::new(Variant::Custom))?;
//! println!("{:?}", report.metrics);
//! # Ok::<(), dysample_models::Error>(())
//! ```
//!
//! Errors are one line and name the file (and the field) involved.

mod error;
pub mod eval_set;
pub mod metrics;
pub mod model;
pub mod npy;
pub mod preprocess;
pub mod runner;
#[cfg(feature = "testkit")]
pub mod testkit;

pub use dysample::onnx::session::DySamplePrecision;
pub use error::{Error, Result};
pub use eval_set::{EvalSet, Manifest, Sample, SetKind, Target, TargetKind};
/// The `image` crate this one decodes with ([`Predictor::predict`] takes its `RgbImage`).
pub use image;
pub use metrics::Metrics;
pub use model::{ModelDir, ModelJson, Task, Variant};
pub use runner::{
    compare, evaluate, row_setup, EvalOptions, EvalReport, Mismatch, Prediction, Predictor,
    CHECK_TOLERANCE,
};
