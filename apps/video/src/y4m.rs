//! YUV4MPEG2 (`.y4m`): a reader for 8-bit 4:2:0, 4:2:2, 4:4:4 and mono streams (files or an
//! `ffmpeg -f yuv4mpegpipe` pipe) and a 4:4:4 writer.

use crate::convert::{rgb_to_yuv444, yuv_planar_to_rgb, Chroma};
use crate::{Frame, Result, VideoError, MAX_SIDE};
use std::io::{BufRead, Read, Write};

/// Stream parameters from the header line.
#[derive(Clone, Debug, PartialEq)]
pub struct Y4mInfo {
    pub width: usize,
    pub height: usize,
    pub fps: f64,
    pub chroma: Chroma,
}

/// Reads one `\n`-terminated line of at most `max` bytes into `line` (without the newline);
/// `Ok(false)` at a clean end of stream.
fn read_line<R: BufRead>(r: &mut R, line: &mut Vec<u8>, max: usize, what: &str) -> Result<bool> {
    line.clear();
    loop {
        let buf = r.fill_buf().map_err(|e| VideoError::io(what, e))?;
        if buf.is_empty() {
            if line.is_empty() {
                return Ok(false);
            }
            return Err(VideoError::format(what, "stream ends inside a header line"));
        }
        let (take, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        if line.len() + take > max {
            return Err(VideoError::format(
                what,
                format!("header line longer than {max} bytes"),
            ));
        }
        line.extend_from_slice(&buf[..take]);
        r.consume(take);
        if done {
            line.pop();
            return Ok(true);
        }
    }
}

/// Parses a `YUV4MPEG2 W.. H.. F..:.. C...` header line.
pub fn parse_header(line: &[u8], what: &str) -> Result<Y4mInfo> {
    let text =
        std::str::from_utf8(line).map_err(|_| VideoError::format(what, "header is not ASCII"))?;
    let mut it = text.split(' ');
    if it.next() != Some("YUV4MPEG2") {
        return Err(VideoError::format(
            what,
            "not a Y4M stream (no YUV4MPEG2 signature)",
        ));
    }
    let (mut w, mut h, mut fps, mut chroma) = (0usize, 0usize, 25.0, Chroma::C420);
    for tok in it.filter(|t| !t.is_empty()) {
        let (tag, val) = tok.split_at(1);
        match tag {
            "W" => {
                w = val
                    .parse()
                    .map_err(|_| VideoError::format(what, format!("bad width '{val}'")))?
            }
            "H" => {
                h = val
                    .parse()
                    .map_err(|_| VideoError::format(what, format!("bad height '{val}'")))?
            }
            "F" => {
                let (n, d) = val.split_once(':').unwrap_or((val, "1"));
                let (n, d): (f64, f64) = (n.parse().unwrap_or(0.0), d.parse().unwrap_or(0.0));
                if n > 0.0 && d > 0.0 {
                    fps = n / d;
                }
            }
            "C" => {
                chroma = match val {
                    "420" | "420jpeg" | "420paldv" | "420mpeg2" => Chroma::C420,
                    "422" => Chroma::C422,
                    "444" => Chroma::C444,
                    "mono" => Chroma::Mono,
                    other => {
                        return Err(VideoError::format(
                            what,
                            format!(
                        "colour space C{other} not supported (8-bit 420, 422, 444 and mono are)"
                    ),
                        ))
                    }
                }
            }
            "I" if val != "p" && val != "?" => {
                tracing::warn!(
                    stream = what,
                    "interlaced Y4M ({tok}) is shown as progressive"
                );
            }
            _ => {}
        }
    }
    if w == 0 || h == 0 || w > MAX_SIDE || h > MAX_SIDE {
        return Err(VideoError::format(
            what,
            format!("frame size {w}x{h} out of range (1..={MAX_SIDE})"),
        ));
    }
    Ok(Y4mInfo {
        width: w,
        height: h,
        fps,
        chroma,
    })
}

/// Reads Y4M frames from a byte stream.
#[derive(Debug)]
pub struct Y4mReader<R> {
    r: R,
    name: String,
    info: Y4mInfo,
    line: Vec<u8>,
    /// Bytes after the stream header (for rewinding seekable files).
    pub data_start: u64,
}

impl<R: BufRead> Y4mReader<R> {
    pub fn new(mut r: R, name: &str) -> Result<Self> {
        let mut line = Vec::with_capacity(256);
        if !read_line(&mut r, &mut line, 1024, name)? {
            return Err(VideoError::format(name, "empty file"));
        }
        let info = parse_header(&line, name)?;
        Ok(Self {
            data_start: line.len() as u64 + 1,
            r,
            name: name.to_string(),
            info,
            line,
        })
    }

    pub fn info(&self) -> &Y4mInfo {
        &self.info
    }

    /// The inner reader (to seek it back to [`Y4mReader::data_start`]).
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.r
    }

    /// Reads the next frame's planes into `buf`; `false` at the end of the stream.
    pub fn next_frame(&mut self, buf: &mut Vec<u8>) -> Result<bool> {
        if !read_line(&mut self.r, &mut self.line, 1024, &self.name)? {
            return Ok(false);
        }
        if !self.line.starts_with(b"FRAME") {
            return Err(VideoError::format(&self.name, "expected a FRAME marker"));
        }
        let n = self
            .info
            .chroma
            .frame_bytes(self.info.width, self.info.height);
        // Read through `take` rather than into a buffer sized from the header first, so a short
        // file cannot make us allocate a whole 8192x8192 frame (the buffer keeps its capacity
        // from frame to frame, so steady state still allocates nothing).
        buf.clear();
        (&mut self.r)
            .take(n as u64)
            .read_to_end(buf)
            .map_err(|e| VideoError::io(&self.name, e))?;
        if buf.len() != n {
            return Err(VideoError::Corrupt(format!(
                "{}: last frame is cut short",
                self.name
            )));
        }
        Ok(true)
    }

    /// Converts a frame read by [`Y4mReader::next_frame`] to RGB.
    pub fn decode(&self, buf: &[u8], out: &mut Frame) -> Result<()> {
        yuv_planar_to_rgb(
            buf,
            self.info.width,
            self.info.height,
            self.info.chroma,
            out,
        )
    }
}

/// Writes RGB frames as a 4:4:4 Y4M stream (BT.601 limited range).
#[derive(Debug)]
pub struct Y4mWriter<W: Write> {
    w: W,
    width: usize,
    height: usize,
    yuv: Vec<u8>,
    frames: u64,
}

impl<W: Write> Y4mWriter<W> {
    pub fn new(mut w: W, width: usize, height: usize, fps: u32) -> std::io::Result<Self> {
        writeln!(
            w,
            "YUV4MPEG2 W{width} H{height} F{}:1 Ip A1:1 C444",
            fps.max(1)
        )?;
        Ok(Self {
            w,
            width,
            height,
            yuv: Vec::with_capacity(width * height * 3),
            frames: 0,
        })
    }

    pub fn write(&mut self, frame: &Frame) -> Result<()> {
        if frame.width != self.width || frame.height != self.height {
            return Err(VideoError::Usage(format!(
                "Y4M frames must all be {}x{}, got {}x{}",
                self.width, self.height, frame.width, frame.height
            )));
        }
        rgb_to_yuv444(&frame.data, &mut self.yuv);
        let io = |e| VideoError::io("Y4M output", e);
        self.w.write_all(b"FRAME\n").map_err(io)?;
        self.w.write_all(&self.yuv).map_err(io)?;
        self.frames += 1;
        Ok(())
    }

    pub fn finish(mut self) -> std::io::Result<W> {
        self.w.flush()?;
        Ok(self.w)
    }

    pub fn frames(&self) -> u64 {
        self.frames
    }
}
