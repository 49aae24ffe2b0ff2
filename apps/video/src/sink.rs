//! Where rendered frames go: files (PNG, PNG directory, MJPEG AVI, Y4M) or the window.

use crate::avi::AviWriter;
use crate::uri::OutputUri;
use crate::y4m::Y4mWriter;
use crate::{Frame, Result, VideoError};
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

/// What a window's user asked for; the pipeline polls it.
#[derive(Debug, Default)]
pub struct Controls {
    /// `q`, Esc or the window closed.
    pub quit: AtomicBool,
    /// Space toggles it.
    pub paused: AtomicBool,
    /// `v` increments it: the pipeline shows visualization `cycle % n`.
    pub cycle: AtomicU32,
    /// The window title (model, precision, backend, fps), updated about once a second.
    pub title: Mutex<String>,
}

impl Controls {
    pub fn quit_requested(&self) -> bool {
        self.quit.load(Ordering::Relaxed)
    }
    pub fn is_paused(&self) -> bool {
        self.paused.load(Ordering::Relaxed)
    }
    pub fn set_title(&self, t: &str) {
        let mut g = self.title.lock().unwrap_or_else(|p| p.into_inner());
        g.clear();
        g.push_str(t);
    }
}

/// A destination for rendered frames.
pub trait FrameSink: Send {
    /// Where the frames go, for messages.
    fn name(&self) -> String;
    /// Takes one frame.
    fn write(&mut self, frame: &Frame) -> Result<()>;
    /// Flushes and closes; returns a one-line summary naming what was written.
    fn finish(&mut self) -> Result<String>;
    /// The window's controls, for a window.
    fn controls(&self) -> Option<Arc<Controls>> {
        None
    }
    /// Time the window thread spent showing frames (only a window has one).
    fn display_histogram(&self) -> Option<crate::stats::Histogram> {
        None
    }
}

fn encode_png(frame: &Frame, buf: &mut Vec<u8>) -> Result<()> {
    use image::ImageEncoder;
    buf.clear();
    image::codecs::png::PngEncoder::new_with_quality(
        &mut *buf,
        image::codecs::png::CompressionType::Fast,
        image::codecs::png::FilterType::Sub,
    )
    .write_image(
        &frame.data,
        frame.width as u32,
        frame.height as u32,
        image::ExtendedColorType::Rgb8,
    )
    .map_err(|e| VideoError::io("PNG encoder", e))
}

/// Writes `bytes` to a temporary name beside `path`, then renames it over `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, bytes)
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            VideoError::io(path.display(), e)
        })
}

/// A single `.png`: the last frame written (at [`FrameSink::finish`]).
#[derive(Debug)]
pub struct PngFile {
    path: PathBuf,
    last: Frame,
    frames: u64,
    buf: Vec<u8>,
}

impl FrameSink for PngFile {
    fn name(&self) -> String {
        self.path.display().to_string()
    }
    fn write(&mut self, frame: &Frame) -> Result<()> {
        self.last.copy_from(frame);
        self.frames += 1;
        Ok(())
    }
    fn finish(&mut self) -> Result<String> {
        if self.frames == 0 {
            return Ok(format!(
                "{}: no frames, nothing written",
                self.path.display()
            ));
        }
        encode_png(&self.last, &mut self.buf)?;
        write_atomic(&self.path, &self.buf)?;
        Ok(format!(
            "wrote the last of {} frames to {}",
            self.frames,
            self.path.display()
        ))
    }
}

/// A directory of `000000.png`, `000001.png`, ...
#[derive(Debug)]
pub struct PngDir {
    dir: PathBuf,
    frames: u64,
    buf: Vec<u8>,
    path: PathBuf,
}

impl FrameSink for PngDir {
    fn name(&self) -> String {
        format!("{}/", self.dir.display())
    }
    fn write(&mut self, frame: &Frame) -> Result<()> {
        encode_png(frame, &mut self.buf)?;
        self.path.clear();
        self.path.push(&self.dir);
        self.path.push(format!("{:06}.png", self.frames));
        write_atomic(&self.path, &self.buf)?;
        self.frames += 1;
        Ok(())
    }
    fn finish(&mut self) -> Result<String> {
        Ok(format!(
            "wrote {} frames to {}/ (000000.png ...)",
            self.frames,
            self.dir.display()
        ))
    }
}

/// An MJPEG `.avi`, written under `NAME.tmp` and renamed when finished.
#[derive(Debug)]
pub struct AviFile {
    path: PathBuf,
    tmp: PathBuf,
    fps: u32,
    w: Option<AviWriter<BufWriter<File>>>,
    done: u32,
}

impl FrameSink for AviFile {
    fn name(&self) -> String {
        self.path.display().to_string()
    }
    fn write(&mut self, frame: &Frame) -> Result<()> {
        if self.w.is_none() {
            let f = File::create(&self.tmp).map_err(|e| VideoError::io(self.tmp.display(), e))?;
            let w = AviWriter::new(
                BufWriter::with_capacity(1 << 20, f),
                frame.width,
                frame.height,
                self.fps,
                85,
            )
            .map_err(|e| VideoError::io(self.tmp.display(), e))?;
            self.w = Some(w);
        }
        self.w.as_mut().expect("set above").write(frame)
    }
    fn finish(&mut self) -> Result<String> {
        let Some(w) = self.w.take() else {
            return Ok(format!(
                "{}: no frames, nothing written",
                self.path.display()
            ));
        };
        self.done = w.frames();
        let f = w
            .finish()
            .map_err(|e| VideoError::io(self.tmp.display(), e))?;
        f.into_inner()
            .map_err(|e| VideoError::io(self.tmp.display(), e.into_error()))?
            .sync_all()
            .and_then(|_| std::fs::rename(&self.tmp, &self.path))
            .map_err(|e| VideoError::io(self.path.display(), e))?;
        Ok(format!(
            "wrote {} frames to {} (MJPEG AVI)",
            self.done,
            self.path.display()
        ))
    }
}

impl Drop for AviFile {
    fn drop(&mut self) {
        if self.w.is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// A `.y4m` (4:4:4), written under `NAME.tmp` and renamed when finished.
#[derive(Debug)]
pub struct Y4mFile {
    path: PathBuf,
    tmp: PathBuf,
    fps: u32,
    w: Option<Y4mWriter<BufWriter<File>>>,
}

impl FrameSink for Y4mFile {
    fn name(&self) -> String {
        self.path.display().to_string()
    }
    fn write(&mut self, frame: &Frame) -> Result<()> {
        if self.w.is_none() {
            let f = File::create(&self.tmp).map_err(|e| VideoError::io(self.tmp.display(), e))?;
            let w = Y4mWriter::new(
                BufWriter::with_capacity(1 << 20, f),
                frame.width,
                frame.height,
                self.fps,
            )
            .map_err(|e| VideoError::io(self.tmp.display(), e))?;
            self.w = Some(w);
        }
        self.w.as_mut().expect("set above").write(frame)
    }
    fn finish(&mut self) -> Result<String> {
        let Some(w) = self.w.take() else {
            return Ok(format!(
                "{}: no frames, nothing written",
                self.path.display()
            ));
        };
        let n = w.frames();
        let f = w
            .finish()
            .map_err(|e| VideoError::io(self.tmp.display(), e))?;
        f.into_inner()
            .map_err(|e| VideoError::io(self.tmp.display(), e.into_error()))?
            .sync_all()
            .and_then(|_| std::fs::rename(&self.tmp, &self.path))
            .map_err(|e| VideoError::io(self.path.display(), e))?;
        Ok(format!(
            "wrote {n} frames to {} (Y4M 4:4:4)",
            self.path.display()
        ))
    }
}

impl Drop for Y4mFile {
    fn drop(&mut self) {
        if self.w.is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Discards frames (benchmarks).
#[derive(Debug, Default)]
pub struct NullSink {
    frames: u64,
}

impl FrameSink for NullSink {
    fn name(&self) -> String {
        "null://".into()
    }
    fn write(&mut self, _frame: &Frame) -> Result<()> {
        self.frames += 1;
        Ok(())
    }
    fn finish(&mut self) -> Result<String> {
        Ok(format!("{} frames rendered (not saved)", self.frames))
    }
}

/// Opens a file output: `.png` → [`PngFile`], `.avi` → [`AviFile`], `.y4m` → [`Y4mFile`], a
/// path ending in `/` or an existing directory or a name without extension → [`PngDir`]
/// (created). `fps` is the rate written into video headers.
pub fn open_file_sink(path: &Path, fps: u32) -> Result<Box<dyn FrameSink>> {
    let s = path.to_string_lossy();
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase());
    let is_dir = s.ends_with('/') || path.is_dir() || ext.is_none();
    let parent_ok = |p: &Path| -> Result<()> {
        match p.parent() {
            Some(d) if !d.as_os_str().is_empty() && !d.is_dir() => {
                std::fs::create_dir_all(d).map_err(|e| VideoError::io(d.display(), e))
            }
            _ => Ok(()),
        }
    };
    if is_dir {
        std::fs::create_dir_all(path).map_err(|e| VideoError::io(path.display(), e))?;
        let dir = PathBuf::from(s.trim_end_matches('/'));
        return Ok(Box::new(PngDir {
            dir,
            frames: 0,
            buf: Vec::new(),
            path: PathBuf::new(),
        }));
    }
    parent_ok(path)?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    match ext.as_deref() {
        Some("png") => Ok(Box::new(PngFile { path: path.into(), last: Frame::new(), frames: 0, buf: Vec::new() })),
        Some("avi") => Ok(Box::new(AviFile { path: path.into(), tmp, fps, w: None, done: 0 })),
        Some("y4m") => Ok(Box::new(Y4mFile { path: path.into(), tmp, fps, w: None })),
        Some(other) => Err(VideoError::Usage(format!(
            "{}: cannot write .{other} (outputs: .png, a directory of PNGs, .avi (MJPEG), .y4m, display://0)",
            path.display()
        ))),
        None => unreachable!("no extension is a directory"),
    }
}

/// Opens any output URI; `title` is the window's first title.
pub fn open_sink(uri: &OutputUri, fps: u32, title: &str) -> Result<Box<dyn FrameSink>> {
    match uri {
        OutputUri::File(p) => open_file_sink(p, fps),
        OutputUri::Null => Ok(Box::new(NullSink::default())),
        #[cfg(feature = "window")]
        OutputUri::Display => Ok(Box::new(crate::window::WindowSink::open(title)?)),
        #[cfg(not(feature = "window"))]
        OutputUri::Display => {
            let _ = title;
            Err(VideoError::Usage(
                "display://0: this build has no window support (feature 'window')".into(),
            ))
        }
    }
}

/// Whether a display server is reachable (`$DISPLAY` set: the window is X11, XWayland included).
pub fn display_available() -> bool {
    cfg!(feature = "window") && std::env::var_os("DISPLAY").is_some_and(|s| !s.is_empty())
}
