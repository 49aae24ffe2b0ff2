//! Input and output URIs, as jetson-inference's video_source / video_output spell them.

use crate::{Result, VideoError};
use std::path::{Path, PathBuf};

/// Where frames come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InputUri {
    /// `v4l2:///dev/videoN` or a bare `/dev/videoN`.
    Camera(PathBuf),
    /// `file://PATH` or a bare path: an image, a directory of images, an MJPEG AVI, a Y4M
    /// file, or (through ffmpeg) any other video.
    File(PathBuf),
    /// `rtsp://`, `rtmp://`, `http(s)://`: through ffmpeg.
    Network(String),
    /// `builtin://`: the clip compiled into the crate.
    Builtin,
}

/// Where rendered frames go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OutputUri {
    /// `display://0`: a window.
    Display,
    /// `file://PATH` or a bare path: `.png` (the last frame), a directory (one PNG per frame),
    /// `.avi` (MJPEG) or `.y4m`.
    File(PathBuf),
    /// No output (benchmarks).
    Null,
}

impl std::fmt::Display for InputUri {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InputUri::Camera(p) => write!(f, "v4l2://{}", p.display()),
            InputUri::File(p) => write!(f, "file://{}", p.display()),
            InputUri::Network(u) => f.write_str(u),
            InputUri::Builtin => f.write_str("builtin://"),
        }
    }
}

impl std::fmt::Display for OutputUri {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OutputUri::Display => f.write_str("display://0"),
            OutputUri::File(p) => write!(f, "file://{}", p.display()),
            OutputUri::Null => f.write_str("null://"),
        }
    }
}

/// Parses an input URI.
pub fn parse_input(s: &str) -> Result<InputUri> {
    let s = s.trim();
    if s.is_empty() {
        return Err(VideoError::Usage("empty input URI".into()));
    }
    if s == "builtin://" || s == "builtin" || s.starts_with("builtin://") {
        return Ok(InputUri::Builtin);
    }
    if let Some(p) = s.strip_prefix("v4l2://") {
        if p.is_empty() {
            return Ok(InputUri::Camera("/dev/video0".into()));
        }
        if let Ok(n) = p.parse::<u32>() {
            return Ok(InputUri::Camera(format!("/dev/video{n}").into()));
        }
        return Ok(InputUri::Camera(p.into()));
    }
    if s.starts_with("/dev/video") {
        return Ok(InputUri::Camera(s.into()));
    }
    if let Some(p) = s.strip_prefix("file://") {
        return Ok(InputUri::File(p.into()));
    }
    for scheme in ["rtsp://", "rtmp://", "http://", "https://"] {
        if s.starts_with(scheme) {
            return Ok(InputUri::Network(s.into()));
        }
    }
    if s.starts_with("csi://") {
        return Err(VideoError::Usage(format!(
            "{s}: MIPI CSI cameras are not supported; use a USB camera (v4l2:///dev/videoN) or a file"
        )));
    }
    if let Some((scheme, _)) = s.split_once("://") {
        return Err(VideoError::Usage(format!(
            "{s}: unknown input scheme '{scheme}://' (use v4l2://, file://, builtin:// or rtsp://)"
        )));
    }
    Ok(InputUri::File(s.into()))
}

/// Parses an output URI.
pub fn parse_output(s: &str) -> Result<OutputUri> {
    let s = s.trim();
    if s.starts_with("display://") || s == "display" {
        return Ok(OutputUri::Display);
    }
    if s == "null://" || s == "null" {
        return Ok(OutputUri::Null);
    }
    let p = s.strip_prefix("file://").unwrap_or(s);
    if p.is_empty() {
        return Err(VideoError::Usage("empty output URI".into()));
    }
    if let Some((scheme, _)) = p.split_once("://") {
        return Err(VideoError::Usage(format!(
            "{s}: unknown output scheme '{scheme}://' (use display://0 or file://)"
        )));
    }
    Ok(OutputUri::File(p.into()))
}

/// The first `/dev/videoN` that is a capture device, if any.
pub fn first_camera() -> Option<PathBuf> {
    let mut nodes: Vec<(u32, PathBuf)> = std::fs::read_dir("/dev")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let n = name.strip_prefix("video")?.parse().ok()?;
            Some((n, e.path()))
        })
        .collect();
    nodes.sort();
    nodes
        .into_iter()
        .map(|(_, p)| p)
        .find(|p| is_capture_device(p))
}

#[cfg(all(feature = "v4l2", target_os = "linux"))]
fn is_capture_device(p: &Path) -> bool {
    crate::v4l2::is_capture_device(p)
}

#[cfg(not(all(feature = "v4l2", target_os = "linux")))]
fn is_capture_device(_p: &Path) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs() {
        assert_eq!(parse_input("builtin://").unwrap(), InputUri::Builtin);
        assert_eq!(
            parse_input("/dev/video2").unwrap(),
            InputUri::Camera("/dev/video2".into())
        );
        assert_eq!(
            parse_input("v4l2:///dev/video1").unwrap(),
            InputUri::Camera("/dev/video1".into())
        );
        assert_eq!(
            parse_input("v4l2://3").unwrap(),
            InputUri::Camera("/dev/video3".into())
        );
        assert_eq!(
            parse_input("file:///a/b.avi").unwrap(),
            InputUri::File("/a/b.avi".into())
        );
        assert_eq!(
            parse_input("x.y4m").unwrap(),
            InputUri::File("x.y4m".into())
        );
        assert!(matches!(
            parse_input("rtsp://h/s").unwrap(),
            InputUri::Network(_)
        ));
        assert!(parse_input("csi://0")
            .unwrap_err()
            .to_string()
            .contains("not supported"));
        assert!(parse_input("gopher://x")
            .unwrap_err()
            .to_string()
            .contains("unknown input scheme"));
    }

    #[test]
    fn outputs() {
        assert_eq!(parse_output("display://0").unwrap(), OutputUri::Display);
        assert_eq!(
            parse_output("file://o.avi").unwrap(),
            OutputUri::File("o.avi".into())
        );
        assert_eq!(
            parse_output("out/").unwrap(),
            OutputUri::File("out/".into())
        );
        assert!(parse_output("rtp://x").is_err());
    }
}
