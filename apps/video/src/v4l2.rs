//! USB cameras through V4L2 (the `v4l` crate): mmap streaming of YUYV or MJPEG.
//!
//! Kept thin on purpose: format negotiation is the pure [`choose_format`] (tested without a
//! device), decoding is [`crate::convert`], and unplugging is handled by
//! [`crate::source::Reconnecting`] above this source.

use crate::convert::{yuyv_to_rgb, JpegDecoder};
use crate::source::{FrameSource, Grab, SourceOptions};
use crate::{Frame, Result, VideoError};
use std::path::Path;
use std::time::Duration;
use v4l::buffer::Type;
use v4l::io::mmap::Stream;
use v4l::io::traits::CaptureStream;
use v4l::video::Capture;
use v4l::{Device, FourCC};

/// Pixel formats the demo decodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PixFmt {
    Yuyv,
    Mjpeg,
}

impl PixFmt {
    pub fn fourcc(self) -> [u8; 4] {
        match self {
            PixFmt::Yuyv => *b"YUYV",
            PixFmt::Mjpeg => *b"MJPG",
        }
    }
}

/// Picks the format to ask for from what the camera offers (`(fourcc, description)` pairs):
/// the one named by `wanted` (`yuyv`/`mjpeg`), else YUYV, else MJPEG. The error lists what is
/// offered.
pub fn choose_format(
    device: &str,
    offered: &[(String, String)],
    wanted: Option<&str>,
) -> Result<PixFmt> {
    let has = |f: PixFmt| {
        offered
            .iter()
            .any(|(c, _)| c.as_bytes() == f.fourcc() || (f == PixFmt::Mjpeg && c == "JPEG"))
    };
    let list = || {
        if offered.is_empty() {
            "nothing".to_string()
        } else {
            offered
                .iter()
                .map(|(c, d)| format!("{c} ({d})"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    let pick = match wanted.map(|w| w.to_ascii_lowercase()) {
        Some(w) if w == "yuyv" || w == "yuy2" => Some(PixFmt::Yuyv).filter(|&f| has(f)),
        Some(w) if w == "mjpeg" || w == "mjpg" => Some(PixFmt::Mjpeg).filter(|&f| has(f)),
        Some(w) => {
            return Err(VideoError::Usage(format!(
                "--input-codec {w}: choose yuyv or mjpeg"
            )))
        }
        None => [PixFmt::Yuyv, PixFmt::Mjpeg].into_iter().find(|&f| has(f)),
    };
    pick.ok_or_else(|| {
        VideoError::Usage(format!(
            "{device}: unsupported pixel format{}: the camera offers {}; the demo reads YUYV and MJPG",
            wanted.map(|w| format!(" '{w}'")).unwrap_or_default(),
            list()
        ))
    })
}

/// Whether `p` is a V4L2 video capture node.
pub fn is_capture_device(p: &Path) -> bool {
    Device::with_path(p)
        .and_then(|d| d.query_caps())
        .map(|c| {
            c.capabilities
                .contains(v4l::capability::Flags::VIDEO_CAPTURE)
        })
        .unwrap_or(false)
}

/// A streaming camera.
pub struct V4l2Source {
    name: String,
    stream: Stream<'static>,
    fmt: PixFmt,
    width: usize,
    height: usize,
    stride: usize,
    fps: Option<f64>,
    buf: Vec<u8>,
    jpeg: JpegDecoder,
    describe: String,
}

impl std::fmt::Debug for V4l2Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe)
    }
}

impl V4l2Source {
    /// Opens the device, negotiates the format and size, and maps 4 buffers.
    pub fn open(dev_path: &Path, opts: &SourceOptions) -> Result<Self> {
        let name = dev_path.display().to_string();
        let dev = Device::with_path(dev_path)
            .map_err(|e| VideoError::io(format!("{name}: cannot open the camera"), e))?;
        let offered: Vec<(String, String)> = dev
            .enum_formats()
            .map_err(|e| VideoError::io(&name, e))?
            .into_iter()
            .map(|d| (d.fourcc.str().unwrap_or("????").to_string(), d.description))
            .collect();
        let fmt = choose_format(&name, &offered, opts.codec.as_deref())?;
        let mut want = dev.format().map_err(|e| VideoError::io(&name, e))?;
        want.width = opts.width.unwrap_or(640);
        want.height = opts.height.unwrap_or(480);
        want.fourcc = FourCC::new(&fmt.fourcc());
        let got = dev
            .set_format(&want)
            .map_err(|e| VideoError::io(format!("{name}: setting the format"), e))?;
        if got.fourcc != want.fourcc {
            return Err(VideoError::Usage(format!(
                "{name}: asked for {} but the driver set {}",
                want.fourcc, got.fourcc
            )));
        }
        let mut fps = None;
        if let Some(rate) = opts.rate {
            match dev.set_params(&v4l::video::capture::Parameters::with_fps(rate)) {
                Ok(p) if p.interval.numerator > 0 => {
                    fps = Some(p.interval.denominator as f64 / p.interval.numerator as f64)
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(device = %name, "cannot set {rate} fps: {e}"),
            }
        } else if let Ok(p) = dev.params() {
            if p.interval.numerator > 0 {
                fps = Some(p.interval.denominator as f64 / p.interval.numerator as f64);
            }
        }
        let (width, height) = (got.width as usize, got.height as usize);
        if width == 0 || height == 0 || width > crate::MAX_SIDE || height > crate::MAX_SIDE {
            return Err(VideoError::Usage(format!(
                "{name}: driver set an unusable size {width}x{height}"
            )));
        }
        let stride = if got.stride > 0 {
            got.stride as usize
        } else {
            width * 2
        };
        let mut stream = Stream::with_buffers(&dev, Type::VideoCapture, 4)
            .map_err(|e| VideoError::io(format!("{name}: mapping buffers"), e))?;
        stream.set_timeout(Duration::from_secs(3));
        let asked = match (opts.width, opts.height) {
            (Some(w), Some(h)) if (w as usize, h as usize) != (width, height) => {
                format!(" (asked {w}x{h})")
            }
            _ => String::new(),
        };
        let describe = format!(
            "{name}: {} {width}x{height}{asked} @ {} (camera offers {})",
            got.fourcc,
            fps.map_or("? fps".into(), |f| format!("{f:.1} fps")),
            offered
                .iter()
                .map(|(c, _)| c.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        Ok(Self {
            name,
            stream,
            fmt,
            width,
            height,
            stride,
            fps,
            buf: Vec::with_capacity(got.size.max(1) as usize),
            jpeg: JpegDecoder::new(),
            describe,
        })
    }
}

impl FrameSource for V4l2Source {
    fn name(&self) -> &str {
        &self.name
    }
    fn describe(&self) -> String {
        self.describe.clone()
    }
    fn grab(&mut self) -> Result<Grab> {
        let (data, meta) =
            CaptureStream::next(&mut self.stream).map_err(|e| VideoError::Disconnected {
                what: self.name.clone(),
                detail: e.to_string(),
            })?;
        let used = (meta.bytesused as usize).min(data.len());
        self.buf.clear();
        self.buf
            .extend_from_slice(&data[..if used > 0 { used } else { data.len() }]);
        Ok(Grab::Frame)
    }
    fn decode(&mut self, out: &mut Frame) -> Result<()> {
        match self.fmt {
            PixFmt::Yuyv => yuyv_to_rgb(&self.buf, self.width, self.height, self.stride, out),
            PixFmt::Mjpeg => self.jpeg.decode(&self.buf, out),
        }
    }
    fn fps(&self) -> Option<f64> {
        self.fps
    }
    fn is_live(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(list: &[&str]) -> Vec<(String, String)> {
        list.iter()
            .map(|c| (c.to_string(), format!("{c} desc")))
            .collect()
    }

    #[test]
    fn negotiation() {
        assert_eq!(
            choose_format("cam", &offer(&["MJPG", "YUYV"]), None).unwrap(),
            PixFmt::Yuyv
        );
        assert_eq!(
            choose_format("cam", &offer(&["MJPG", "YUYV"]), Some("mjpeg")).unwrap(),
            PixFmt::Mjpeg
        );
        assert_eq!(
            choose_format("cam", &offer(&["MJPG"]), None).unwrap(),
            PixFmt::Mjpeg
        );
        let e = choose_format("/dev/video0", &offer(&["GREY", "Y16 "]), None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("unsupported pixel format")
                && e.contains("GREY (GREY desc)")
                && e.contains("Y16"),
            "{e}"
        );
        assert!(!e.contains('\n'));
        let e = choose_format("cam", &offer(&["MJPG"]), Some("yuyv"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("'yuyv'") && e.contains("MJPG"), "{e}");
        assert!(choose_format("cam", &offer(&["MJPG"]), Some("h264")).is_err());
    }
}
