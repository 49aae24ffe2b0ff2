//! One error type for the pipeline; every message is one line and names the file, device or
//! setting involved.

/// What went wrong in a source, sink or conversion.
#[derive(Debug, thiserror::Error)]
pub enum VideoError {
    /// A file or device cannot be opened, read or written.
    #[error("{what}: {detail}")]
    Io { what: String, detail: String },
    /// A container or stream is malformed or uses something this reader does not support.
    #[error("{what}: {detail}")]
    Format { what: String, detail: String },
    /// One frame cannot be decoded; the stream itself goes on (the frame is skipped and counted).
    #[error("corrupt frame: {0}")]
    Corrupt(String),
    /// A live source went away (camera unplugged); a reconnecting source tries again.
    #[error("{what} disconnected: {detail}")]
    Disconnected { what: String, detail: String },
    /// A setting the user gave cannot be honoured.
    #[error("{0}")]
    Usage(String),
}

impl VideoError {
    pub(crate) fn io(what: impl std::fmt::Display, e: impl std::fmt::Display) -> Self {
        VideoError::Io {
            what: what.to_string(),
            detail: one_line(e),
        }
    }
    pub(crate) fn format(what: impl std::fmt::Display, detail: impl std::fmt::Display) -> Self {
        VideoError::Format {
            what: what.to_string(),
            detail: one_line(detail),
        }
    }
    /// Whether the stream can go on after this error (a corrupt frame).
    pub fn is_corrupt_frame(&self) -> bool {
        matches!(self, VideoError::Corrupt(_))
    }
}

pub(crate) fn one_line(e: impl std::fmt::Display) -> String {
    e.to_string().replace('\n', " ")
}

/// Result alias of this crate.
pub type Result<T, E = VideoError> = std::result::Result<T, E>;
