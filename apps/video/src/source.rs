//! Frame sources behind one trait: capture (read the encoded frame) and decode (to RGB) are two
//! calls, so they are timed as two stages.

use crate::avi::AviReader;
use crate::convert::JpegDecoder;
use crate::uri::InputUri;
use crate::y4m::Y4mReader;
use crate::{Frame, Result, VideoError};
use std::fs::File;
use std::io::{BufReader, Cursor, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// What [`FrameSource::grab`] got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grab {
    /// A frame was read; [`FrameSource::decode`] turns it into RGB.
    Frame,
    /// The stream ended (files; [`FrameSource::rewind`] starts over).
    End,
}

/// A stream of frames.
pub trait FrameSource: Send {
    /// Short name for messages (a path or URI).
    fn name(&self) -> &str;
    /// One line on what is being read (format, size, rate).
    fn describe(&self) -> String {
        self.name().to_string()
    }
    /// Reads the next encoded frame (blocking on a camera).
    fn grab(&mut self) -> Result<Grab>;
    /// Decodes the frame last grabbed into `out`. [`VideoError::Corrupt`] means this frame is
    /// lost but the stream goes on.
    fn decode(&mut self, out: &mut Frame) -> Result<()>;
    /// Starts over from the first frame (`--loop`); `false` if this source cannot.
    fn rewind(&mut self) -> Result<bool> {
        Ok(false)
    }
    /// Nominal frame rate, if known.
    fn fps(&self) -> Option<f64> {
        None
    }
    /// A live source drops frames when the consumer is slow (latest wins); a file waits.
    fn is_live(&self) -> bool {
        false
    }
}

/// Camera settings (`--input-width/--input-height/--input-rate/--input-codec`).
#[derive(Clone, Debug, Default)]
pub struct SourceOptions {
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub rate: Option<u32>,
    /// `yuyv` or `mjpeg`; `None` picks YUYV when offered, else MJPEG.
    pub codec: Option<String>,
    /// Set to stop a reconnecting source waiting.
    pub stop: Arc<AtomicBool>,
}

/// An MJPEG AVI, from a file or from memory.
#[derive(Debug)]
pub struct AviSource<R> {
    reader: AviReader<R>,
    name: String,
    buf: Vec<u8>,
    jpeg: JpegDecoder,
}

impl<R: std::io::Read + Seek + Send> AviSource<R> {
    pub fn new(r: R, name: &str) -> Result<Self> {
        let reader = AviReader::new(r, name)?;
        let info = reader.info();
        let buf = Vec::with_capacity(info.width * info.height);
        Ok(Self {
            reader,
            name: name.into(),
            buf,
            jpeg: JpegDecoder::new(),
        })
    }
}

impl<R: std::io::Read + Seek + Send> FrameSource for AviSource<R> {
    fn name(&self) -> &str {
        &self.name
    }
    fn describe(&self) -> String {
        let i = self.reader.info();
        format!(
            "{}: MJPEG AVI {}x{} @ {:.3} fps, {} frames",
            self.name, i.width, i.height, i.fps, i.frames
        )
    }
    fn grab(&mut self) -> Result<Grab> {
        Ok(if self.reader.next_frame(&mut self.buf)? {
            Grab::Frame
        } else {
            Grab::End
        })
    }
    fn decode(&mut self, out: &mut Frame) -> Result<()> {
        self.jpeg.decode(&self.buf, out)
    }
    fn rewind(&mut self) -> Result<bool> {
        self.reader.rewind();
        Ok(true)
    }
    fn fps(&self) -> Option<f64> {
        Some(self.reader.info().fps)
    }
}

/// The `builtin://` clip.
pub fn builtin() -> Result<AviSource<Cursor<&'static [u8]>>> {
    AviSource::new(Cursor::new(crate::BUILTIN_CLIP), "builtin://")
}

/// A Y4M file.
#[derive(Debug)]
pub struct Y4mSource {
    reader: Y4mReader<BufReader<File>>,
    name: String,
    buf: Vec<u8>,
}

impl Y4mSource {
    pub fn open(path: &Path) -> Result<Self> {
        let name = path.display().to_string();
        let f = File::open(path).map_err(|e| VideoError::io(&name, e))?;
        let reader = Y4mReader::new(BufReader::with_capacity(1 << 16, f), &name)?;
        Ok(Self {
            reader,
            name,
            buf: Vec::new(),
        })
    }
}

impl FrameSource for Y4mSource {
    fn name(&self) -> &str {
        &self.name
    }
    fn describe(&self) -> String {
        let i = self.reader.info();
        format!(
            "{}: Y4M {:?} {}x{} @ {:.3} fps",
            self.name, i.chroma, i.width, i.height, i.fps
        )
    }
    fn grab(&mut self) -> Result<Grab> {
        Ok(if self.reader.next_frame(&mut self.buf)? {
            Grab::Frame
        } else {
            Grab::End
        })
    }
    fn decode(&mut self, out: &mut Frame) -> Result<()> {
        self.reader.decode(&self.buf, out)
    }
    fn rewind(&mut self) -> Result<bool> {
        let at = self.reader.data_start;
        self.reader
            .get_mut()
            .seek(SeekFrom::Start(at))
            .map_err(|e| VideoError::io(&self.name, e))?;
        Ok(true)
    }
    fn fps(&self) -> Option<f64> {
        Some(self.reader.info().fps)
    }
}

/// The ffmpeg program: `$DYSAMPLE_FFMPEG`, else `ffmpeg` on the PATH.
pub fn ffmpeg_program() -> String {
    std::env::var("DYSAMPLE_FFMPEG").unwrap_or_else(|_| "ffmpeg".into())
}

/// Whether ffmpeg can be run.
pub fn ffmpeg_available() -> bool {
    Command::new(ffmpeg_program())
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Any container ffmpeg reads, piped to us as Y4M (`ffmpeg -f yuv4mpegpipe`).
#[derive(Debug)]
pub struct FfmpegSource {
    input: String,
    name: String,
    child: Child,
    reader: Y4mReader<BufReader<ChildStdout>>,
    buf: Vec<u8>,
    live: bool,
}

impl FfmpegSource {
    pub fn open(input: &str, live: bool) -> Result<Self> {
        let name = input.to_string();
        let mut child = Command::new(ffmpeg_program())
            .args([
                "-nostdin",
                "-loglevel",
                "error",
                "-i",
                input,
                "-f",
                "yuv4mpegpipe",
                "-pix_fmt",
                "yuv420p",
                "-",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| VideoError::io(format!("{name}: cannot run {}", ffmpeg_program()), e))?;
        let out = child.stdout.take().expect("piped");
        let reader = match Y4mReader::new(BufReader::with_capacity(1 << 16, out), &name) {
            Ok(r) => r,
            Err(e) => {
                let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
                return Err(VideoError::format(
                    &name,
                    format!("ffmpeg could not read it ({status}; {e})"),
                ));
            }
        };
        Ok(Self {
            input: input.into(),
            name,
            child,
            reader,
            buf: Vec::new(),
            live,
        })
    }
}

impl Drop for FfmpegSource {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl FrameSource for FfmpegSource {
    fn name(&self) -> &str {
        &self.name
    }
    fn describe(&self) -> String {
        let i = self.reader.info();
        format!(
            "{} (through ffmpeg): {}x{} @ {:.3} fps",
            self.name, i.width, i.height, i.fps
        )
    }
    fn grab(&mut self) -> Result<Grab> {
        match self.reader.next_frame(&mut self.buf) {
            Ok(true) => Ok(Grab::Frame),
            Ok(false) if self.live => Err(VideoError::Disconnected {
                what: self.name.clone(),
                detail: "stream ended".into(),
            }),
            Ok(false) => Ok(Grab::End),
            Err(e) => Err(e),
        }
    }
    fn decode(&mut self, out: &mut Frame) -> Result<()> {
        self.reader.decode(&self.buf, out)
    }
    fn rewind(&mut self) -> Result<bool> {
        *self = FfmpegSource::open(&self.input, self.live)?;
        Ok(true)
    }
    fn fps(&self) -> Option<f64> {
        Some(self.reader.info().fps)
    }
    fn is_live(&self) -> bool {
        self.live
    }
}

const IMAGE_EXTS: &[&str] = &[
    "png", "jpg", "jpeg", "bmp", "pnm", "ppm", "tga", "tif", "tiff", "webp", "gif",
];

fn ext_lower(p: &Path) -> String {
    p.extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase()
}

/// Largest image file a source reads, in bytes.
pub const MAX_IMAGE_BYTES: u64 = 256 << 20;

/// Reads a regular image file of at most [`MAX_IMAGE_BYTES`] into `buf` (reusing its
/// capacity): a FIFO, a device or `/dev/zero` is refused instead of read until memory runs out.
fn read_image_file(path: &Path, buf: &mut Vec<u8>) -> Result<()> {
    use std::io::Read;
    let name = &path.display().to_string();
    // Look before opening (opening a FIFO for reading blocks until a writer appears), and again
    // on the opened file in case the path was swapped in between.
    if !std::fs::metadata(path)
        .map_err(|e| VideoError::io(name, e))?
        .is_file()
    {
        return Err(VideoError::format(name, "not a regular file"));
    }
    let f = File::open(path).map_err(|e| VideoError::io(name, e))?;
    let meta = f.metadata().map_err(|e| VideoError::io(name, e))?;
    if !meta.is_file() {
        return Err(VideoError::format(name, "not a regular file"));
    }
    if meta.len() > MAX_IMAGE_BYTES {
        return Err(VideoError::format(
            name,
            format!(
                "{} bytes is more than the {MAX_IMAGE_BYTES}-byte limit for an image",
                meta.len()
            ),
        ));
    }
    buf.clear();
    // `take` bounds the read even if the file grows meanwhile.
    f.take(MAX_IMAGE_BYTES)
        .read_to_end(buf)
        .map_err(|e| VideoError::io(name, e))?;
    Ok(())
}

/// Decodes an image file's bytes into `out`: JPEG (by extension) through `jpeg`, other formats
/// through `image`, with the dimensions limited to [`crate::MAX_SIDE`] before any pixel is
/// decoded.
pub fn decode_image(
    bytes: &[u8],
    path: &Path,
    jpeg: &mut JpegDecoder,
    out: &mut Frame,
) -> Result<()> {
    if matches!(ext_lower(path).as_str(), "jpg" | "jpeg") {
        return jpeg.decode(bytes, out);
    }
    let mut reader = image::ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| VideoError::Corrupt(format!("{}: {e}", path.display())))?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(crate::MAX_SIDE as u32);
    limits.max_image_height = Some(crate::MAX_SIDE as u32);
    reader.limits(limits);
    let img = reader
        .decode()
        .map_err(|e| VideoError::Corrupt(format!("{}: {e}", path.display())))?
        .into_rgb8();
    let (w, h) = (img.width() as usize, img.height() as usize);
    if w > crate::MAX_SIDE || h > crate::MAX_SIDE {
        return Err(VideoError::Corrupt(format!(
            "{}: {w}x{h} is larger than {}",
            path.display(),
            crate::MAX_SIDE
        )));
    }
    out.reshape(w, h);
    out.data.copy_from_slice(img.as_raw());
    Ok(())
}

/// One image file: one frame (again and again with `--loop`).
#[derive(Debug)]
pub struct ImageSource {
    name: String,
    frame: Frame,
    given: bool,
}

impl ImageSource {
    pub fn open(path: &Path) -> Result<Self> {
        let name = path.display().to_string();
        let mut bytes = Vec::new();
        read_image_file(path, &mut bytes)?;
        let mut frame = Frame::new();
        decode_image(&bytes, path, &mut JpegDecoder::new(), &mut frame)
            .map_err(|e| VideoError::format(&name, format!("cannot decode the image ({e})")))?;
        Ok(Self {
            name,
            frame,
            given: false,
        })
    }
}

impl FrameSource for ImageSource {
    fn name(&self) -> &str {
        &self.name
    }
    fn describe(&self) -> String {
        format!(
            "{}: image {}x{}",
            self.name, self.frame.width, self.frame.height
        )
    }
    fn grab(&mut self) -> Result<Grab> {
        if self.given {
            return Ok(Grab::End);
        }
        self.given = true;
        Ok(Grab::Frame)
    }
    fn decode(&mut self, out: &mut Frame) -> Result<()> {
        out.reshape(self.frame.width, self.frame.height);
        out.data.copy_from_slice(&self.frame.data);
        Ok(())
    }
    fn rewind(&mut self) -> Result<bool> {
        self.given = false;
        Ok(true)
    }
}

/// The images of a directory, in file-name order.
#[derive(Debug)]
pub struct ImageDirSource {
    name: String,
    files: Vec<PathBuf>,
    next: usize,
    bytes: Vec<u8>,
    jpeg: JpegDecoder,
}

impl ImageDirSource {
    pub fn open(dir: &Path) -> Result<Self> {
        let name = dir.display().to_string();
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| VideoError::io(&name, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && IMAGE_EXTS.contains(&ext_lower(p).as_str()))
            .collect();
        if files.is_empty() {
            return Err(VideoError::format(
                &name,
                format!("directory holds no images ({})", IMAGE_EXTS.join(", ")),
            ));
        }
        files.sort();
        Ok(Self {
            name,
            files,
            next: 0,
            bytes: Vec::new(),
            jpeg: JpegDecoder::new(),
        })
    }
}

impl FrameSource for ImageDirSource {
    fn name(&self) -> &str {
        &self.name
    }
    fn describe(&self) -> String {
        format!("{}: {} images", self.name, self.files.len())
    }
    fn grab(&mut self) -> Result<Grab> {
        let Some(p) = self.files.get(self.next) else {
            return Ok(Grab::End);
        };
        self.next += 1;
        read_image_file(p, &mut self.bytes)?;
        Ok(Grab::Frame)
    }
    fn decode(&mut self, out: &mut Frame) -> Result<()> {
        let p = &self.files[self.next - 1];
        decode_image(&self.bytes, p, &mut self.jpeg, out)
    }
    fn rewind(&mut self) -> Result<bool> {
        self.next = 0;
        Ok(true)
    }
}

/// Opens `uri`; files are recognised by extension (directories by being one), and what is not
/// read natively goes through ffmpeg when it is installed.
pub fn open_source(uri: &InputUri, opts: &SourceOptions) -> Result<Box<dyn FrameSource>> {
    match uri {
        InputUri::Builtin => Ok(Box::new(builtin()?)),
        InputUri::Camera(dev) => open_camera(dev, opts),
        InputUri::Network(url) => {
            if !ffmpeg_available() {
                return Err(VideoError::Usage(format!(
                    "{url}: network streams are read through ffmpeg, which is not installed"
                )));
            }
            let (url, stop) = (url.clone(), opts.stop.clone());
            let first = FfmpegSource::open(&url, true)?;
            Ok(Box::new(Reconnecting::new(
                url.clone(),
                Box::new(first),
                Box::new(move || {
                    Ok(Box::new(FfmpegSource::open(&url, true)?) as Box<dyn FrameSource>)
                }),
                stop,
            )))
        }
        InputUri::File(path) => open_file(path),
    }
}

fn open_file(path: &Path) -> Result<Box<dyn FrameSource>> {
    let name = path.display().to_string();
    if !path.exists() {
        return Err(VideoError::Io {
            what: name,
            detail: "no such file or directory".into(),
        });
    }
    if path.is_dir() {
        return Ok(Box::new(ImageDirSource::open(path)?));
    }
    let ext = ext_lower(path);
    if IMAGE_EXTS.contains(&ext.as_str()) {
        return Ok(Box::new(ImageSource::open(path)?));
    }
    let native = match ext.as_str() {
        "avi" => {
            let f = File::open(path).map_err(|e| VideoError::io(&name, e))?;
            AviSource::new(BufReader::with_capacity(1 << 16, f), &name)
                .map(|s| Box::new(s) as Box<dyn FrameSource>)
        }
        "y4m" => Y4mSource::open(path).map(|s| Box::new(s) as Box<dyn FrameSource>),
        _ => Err(VideoError::format(
            &name,
            format!(
                ".{ext} is not read natively (MJPEG .avi, .y4m, images and image directories are)"
            ),
        )),
    };
    match native {
        Ok(s) => Ok(s),
        Err(e @ VideoError::Format { .. }) => {
            if ffmpeg_available() {
                tracing::info!(file = %name, "{e}; reading it through ffmpeg");
                Ok(Box::new(FfmpegSource::open(&name, false)?))
            } else {
                Err(VideoError::format(
                    &name,
                    format!(
                        "{}; ffmpeg is not installed",
                        e.to_string().trim_start_matches(&format!("{name}: "))
                    ),
                ))
            }
        }
        Err(e) => Err(e),
    }
}

#[cfg(all(feature = "v4l2", target_os = "linux"))]
fn open_camera(dev: &Path, opts: &SourceOptions) -> Result<Box<dyn FrameSource>> {
    let name = dev.display().to_string();
    let (d, o) = (dev.to_path_buf(), opts.clone());
    let first = crate::v4l2::V4l2Source::open(dev, opts)?;
    eprintln!("{}", first.describe());
    Ok(Box::new(Reconnecting::new(
        name,
        Box::new(first),
        Box::new(move || {
            Ok(Box::new(crate::v4l2::V4l2Source::open(&d, &o)?) as Box<dyn FrameSource>)
        }),
        opts.stop.clone(),
    )))
}

#[cfg(not(all(feature = "v4l2", target_os = "linux")))]
fn open_camera(dev: &Path, _opts: &SourceOptions) -> Result<Box<dyn FrameSource>> {
    Err(VideoError::Usage(format!(
        "{}: this build has no v4l2 support (feature 'v4l2')",
        dev.display()
    )))
}

/// Exponential backoff: `initial`, doubling, at most `max`.
#[derive(Clone, Debug)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
    next: Duration,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            next: initial,
        }
    }
    /// The next wait.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d
    }
    pub fn reset(&mut self) {
        self.next = self.initial;
    }
}

/// Opens a source again.
pub type Opener = Box<dyn FnMut() -> Result<Box<dyn FrameSource>> + Send>;
/// Waits (replaceable in tests).
pub type Sleeper = Box<dyn FnMut(Duration) + Send>;

/// A live source that comes back: when it disconnects (or its device errors), it is dropped,
/// a message is printed, and it is reopened with [`Backoff`] until it works or `stop` is set.
pub struct Reconnecting {
    name: String,
    current: Option<Box<dyn FrameSource>>,
    open: Opener,
    sleep: Sleeper,
    backoff: Backoff,
    stop: Arc<AtomicBool>,
    reconnects: u64,
    describe: String,
}

impl std::fmt::Debug for Reconnecting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reconnecting")
            .field("name", &self.name)
            .field("reconnects", &self.reconnects)
            .finish()
    }
}

impl Reconnecting {
    pub fn new(
        name: String,
        first: Box<dyn FrameSource>,
        open: Opener,
        stop: Arc<AtomicBool>,
    ) -> Self {
        let describe = first.describe();
        let stop2 = stop.clone();
        Self {
            name,
            current: Some(first),
            open,
            // Sleep in slices so that Ctrl-C is not held up by a long backoff.
            sleep: Box::new(move |d| {
                let end = std::time::Instant::now() + d;
                while !stop2.load(Ordering::Relaxed) {
                    let now = std::time::Instant::now();
                    if now >= end {
                        break;
                    }
                    std::thread::sleep((end - now).min(Duration::from_millis(50)));
                }
            }),
            backoff: Backoff::new(Duration::from_millis(250), Duration::from_secs(4)),
            stop,
            reconnects: 0,
            describe,
        }
    }

    /// Replaces the wait function and the backoff (tests).
    pub fn with_sleeper(mut self, sleep: Sleeper, backoff: Backoff) -> Self {
        self.sleep = sleep;
        self.backoff = backoff;
        self
    }

    /// Successful reconnections so far.
    pub fn reconnects(&self) -> u64 {
        self.reconnects
    }

    fn drop_current(&mut self, e: &VideoError) {
        eprintln!("{}: {e}; reconnecting", self.name);
        self.current = None;
    }
}

impl FrameSource for Reconnecting {
    fn name(&self) -> &str {
        &self.name
    }
    fn describe(&self) -> String {
        self.describe.clone()
    }
    fn grab(&mut self) -> Result<Grab> {
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return Ok(Grab::End);
            }
            let Some(src) = self.current.as_mut() else {
                match (self.open)() {
                    Ok(s) => {
                        self.reconnects += 1;
                        self.backoff.reset();
                        self.describe = s.describe();
                        eprintln!("{}: reconnected ({})", self.name, self.describe);
                        self.current = Some(s);
                    }
                    Err(e) => {
                        let d = self.backoff.next_delay();
                        eprintln!("{}: {e}; retrying in {:.1} s", self.name, d.as_secs_f64());
                        (self.sleep)(d);
                    }
                }
                continue;
            };
            match src.grab() {
                Ok(Grab::Frame) => return Ok(Grab::Frame),
                Ok(Grab::End) => {
                    let e = VideoError::Disconnected {
                        what: "stream".into(),
                        detail: "ended".into(),
                    };
                    self.drop_current(&e);
                }
                Err(e @ (VideoError::Disconnected { .. } | VideoError::Io { .. })) => {
                    self.drop_current(&e)
                }
                Err(e) => return Err(e),
            }
        }
    }
    fn decode(&mut self, out: &mut Frame) -> Result<()> {
        match self.current.as_mut() {
            Some(s) => s.decode(out),
            None => Err(VideoError::Corrupt(
                "source reconnected between grab and decode".into(),
            )),
        }
    }
    fn fps(&self) -> Option<f64> {
        self.current.as_ref().and_then(|s| s.fps())
    }
    fn is_live(&self) -> bool {
        true
    }
}
