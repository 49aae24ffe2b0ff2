use std::path::Path;

/// Everything that can go wrong; every message is one line and names the file involved.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file is missing, unreadable or malformed (`detail` names the field where there is one).
    #[error("{path}: {detail}")]
    File { path: String, detail: String },
    /// ONNX Runtime or a model file (the message names the file).
    #[error(transparent)]
    Onnx(#[from] dysample::onnx::OnnxError),
    /// Inputs that do not fit together (e.g. a depth model on a segmentation set).
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    pub(crate) fn file(path: &Path, detail: impl std::fmt::Display) -> Self {
        Error::File {
            path: path.display().to_string(),
            detail: one_line(&detail.to_string()),
        }
    }
}

/// Collapses a message onto one line.
pub(crate) fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Parses JSON into `T`, naming the field path (`input.height`) in errors.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(path: &Path, text: &str) -> Result<T> {
    let de = &mut serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let field = e.path().to_string();
        let inner = e.into_inner();
        if field == "." || field.is_empty() {
            Error::file(path, inner)
        } else {
            Error::file(path, format_args!("field '{field}': {inner}"))
        }
    })
}
