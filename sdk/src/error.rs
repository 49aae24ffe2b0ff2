//! One error type for the whole SDK. Every variant names the file, tensor or
//! parameter involved so that a CLI can print it as a single readable line.

use std::path::PathBuf;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong when configuring, loading or running a layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The layer configuration breaks one of DySample's constraints.
    #[error("invalid DySample config: {0}")]
    InvalidConfig(String),

    /// A tensor handed to `forward` has the wrong shape or length.
    #[error("shape mismatch for {what}: {detail}")]
    Shape { what: String, detail: String },

    /// The weights file could not be read at all.
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The weights file is not a valid safetensors file (truncated, corrupt header, ...).
    #[error("{path} is not a valid safetensors file: {detail}")]
    CorruptFile { path: PathBuf, detail: String },

    /// A tensor that the config needs is absent from the file.
    #[error("{path}: missing tensor '{tensor}'{hint}")]
    MissingTensor {
        path: PathBuf,
        tensor: String,
        hint: String,
    },

    /// A tensor exists but does not have the shape the config implies.
    #[error("{path}: tensor '{tensor}' has shape {found:?}, expected {expected:?} ({why})")]
    TensorShape {
        path: PathBuf,
        tensor: String,
        found: Vec<usize>,
        expected: Vec<usize>,
        why: String,
    },

    /// A tensor has a dtype we cannot convert to f32.
    #[error("{path}: tensor '{tensor}' has dtype {dtype}, expected F32, F16 or BF16")]
    TensorDtype {
        path: PathBuf,
        tensor: String,
        dtype: String,
    },

    /// No tensors match the requested prefix.
    #[error("{path}: no DySample layer at prefix '{prefix}'; {available}")]
    UnknownPrefix {
        path: PathBuf,
        prefix: String,
        available: String,
    },

    /// The checkpoint's `init_pos` buffer does not match the configured scale/groups.
    #[error("{path}: tensor '{tensor}' differs from the init_pos implied by scale={scale}, groups={groups} at index {index} (found {found}, expected {expected}); check --scale/--groups")]
    InitPos {
        path: PathBuf,
        tensor: String,
        scale: usize,
        groups: usize,
        index: usize,
        found: f32,
        expected: f32,
    },

    /// A tensor holds NaN or infinite values.
    #[error(
        "{what} contains {count} non-finite value(s) (NaN or ±inf), the first at index {index}"
    )]
    NonFinite {
        what: String,
        /// How many values are NaN or infinite.
        count: usize,
        /// Index of the first.
        index: usize,
    },

    /// Quantization parameters are unusable (bad scale, zero point, or they don't fit the layer).
    #[error("invalid quantization parameters: {0}")]
    Quant(String),

    /// The requested backend cannot run on this CPU or is unknown.
    #[error("backend '{backend}' is not usable: {reason}")]
    Backend { backend: String, reason: String },

    /// Anything else with a self-explanatory message.
    #[error("{0}")]
    Other(String),
}

impl Error {
    pub(crate) fn shape(what: impl Into<String>, detail: impl Into<String>) -> Self {
        Error::Shape {
            what: what.into(),
            detail: detail.into(),
        }
    }
}
