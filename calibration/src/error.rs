//! One error type; every message is one line and names the file, tensor or flag involved.

/// A calibration error.
#[derive(Debug, thiserror::Error)]
pub enum CalibError {
    #[error("{0}")]
    Msg(String),
    #[error(transparent)]
    Onnx(#[from] dysample::onnx::OnnxError),
    #[error(transparent)]
    Models(#[from] dysample_models::Error),
    #[error(transparent)]
    Sdk(#[from] dysample::Error),
}

impl CalibError {
    pub fn msg(s: impl Into<String>) -> Self {
        let s: String = s.into();
        CalibError::Msg(s.split_whitespace().collect::<Vec<_>>().join(" "))
    }
}

pub type Result<T, E = CalibError> = std::result::Result<T, E>;
