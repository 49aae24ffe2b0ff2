//! MJPEG in AVI (RIFF): a reader that walks the `movi` list chunk by chunk (no index needed,
//! OpenDML `AVIX` extensions followed) and a writer with an `idx1` index.
//!
//! Every size read from the file is checked against the bytes that are left and against the
//! largest JPEG a frame of the declared size can need, so a damaged file costs at most one
//! bounded buffer, never an unbounded allocation.

use crate::{Frame, Result, VideoError, MAX_SIDE};
use std::io::{Read, Seek, SeekFrom, Write};

/// FourCCs of MJPEG video streams.
const MJPEG: &[&[u8; 4]] = &[
    b"MJPG", b"mjpg", b"JPEG", b"jpeg", b"AVRn", b"dmb1", b"MJLS",
];

/// What the headers say about the video stream.
#[derive(Clone, Debug, PartialEq)]
pub struct AviInfo {
    pub width: usize,
    pub height: usize,
    /// Frames per second (from the stream header, else the main header).
    pub fps: f64,
    /// Frame count from the main header (0 if unknown).
    pub frames: usize,
    /// Compression FourCC of the video stream.
    pub codec: String,
    /// Index of the video stream (chunk ids `NNdc` / `NNdb`).
    pub stream: usize,
}

fn fourcc(b: &[u8]) -> String {
    b.iter()
        .map(|&c| {
            if c.is_ascii_graphic() || c == b' ' {
                c as char
            } else {
                '?'
            }
        })
        .collect()
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Reads the JPEG frames of an MJPEG AVI.
#[derive(Debug)]
pub struct AviReader<R> {
    r: R,
    name: String,
    info: AviInfo,
    /// (start, end) of the `movi` payload being read; later `AVIX` RIFFs are found from `end`.
    movi: (u64, u64),
    first_movi: (u64, u64),
    file_len: u64,
    pos: u64,
    max_frame: usize,
    video_ids: [[u8; 4]; 2],
}

impl<R: Read + Seek> AviReader<R> {
    /// Parses the headers; `name` is used in messages.
    pub fn new(mut r: R, name: &str) -> Result<Self> {
        let bad = |d: &str| VideoError::format(name, d);
        let file_len = r
            .seek(SeekFrom::End(0))
            .map_err(|e| VideoError::io(name, e))?;
        r.seek(SeekFrom::Start(0))
            .map_err(|e| VideoError::io(name, e))?;
        let mut head = [0u8; 12];
        r.read_exact(&mut head)
            .map_err(|_| bad("not an AVI file (shorter than a RIFF header)"))?;
        if &head[0..4] != b"RIFF" || &head[8..12] != b"AVI " {
            return Err(bad("not an AVI file (no RIFF/AVI header)"));
        }
        let riff_end = (8 + le32(&head, 4) as u64).min(file_len);
        let mut pos = 12u64;
        let mut avih: Option<(f64, usize, usize, usize)> = None;
        let mut video: Option<(usize, f64, String, usize, usize)> = None;
        let mut stream_index = 0usize;
        let mut movi = None;
        // Top-level and hdrl chunks: small, read whole (bounded).
        while pos + 8 <= riff_end {
            let mut ch = [0u8; 12];
            r.seek(SeekFrom::Start(pos))
                .map_err(|e| VideoError::io(name, e))?;
            r.read_exact(&mut ch[..8])
                .map_err(|e| VideoError::io(name, e))?;
            let size = le32(&ch, 4) as u64;
            let body = pos + 8;
            let is_list = &ch[0..4] == b"LIST" && size >= 4;
            if is_list {
                r.read_exact(&mut ch[8..12])
                    .map_err(|e| VideoError::io(name, e))?;
            }
            if is_list && &ch[8..12] == b"movi" {
                // A recording cut short still has its first frames: read up to the end.
                movi = Some((body + 4, (body + size).min(riff_end)));
                break;
            }
            if body + size > riff_end {
                return Err(bad(&format!(
                    "chunk '{}' runs past the end of the file",
                    fourcc(&ch[0..4])
                )));
            }
            if is_list && &ch[8..12] == b"hdrl" {
                if size > 1 << 20 {
                    return Err(bad("header list larger than 1 MiB"));
                }
                let mut h = vec![0u8; size as usize - 4];
                r.read_exact(&mut h).map_err(|e| VideoError::io(name, e))?;
                parse_hdrl(&h, &mut avih, &mut video, &mut stream_index);
            }
            pos = body + size + (size & 1);
        }
        let (us, frames, aw, ah) = avih.ok_or_else(|| bad("no 'avih' main header"))?;
        let (stream, rate, codec, sw, sh) = video.ok_or_else(|| bad("no video stream"))?;
        if !MJPEG.iter().any(|c| c.as_slice() == codec.as_bytes()) {
            return Err(bad(&format!(
                "video codec '{codec}' is not MJPEG (natively only MJPEG AVIs are read; install ffmpeg for others)"
            )));
        }
        let (width, height) = if sw > 0 && sh > 0 { (sw, sh) } else { (aw, ah) };
        if width == 0 || height == 0 || width > MAX_SIDE || height > MAX_SIDE {
            return Err(bad(&format!(
                "frame size {width}x{height} out of range (1..={MAX_SIDE})"
            )));
        }
        let fps = if rate > 0.0 {
            rate
        } else if us > 0.0 {
            1e6 / us
        } else {
            30.0
        };
        let movi = movi.ok_or_else(|| bad("no 'movi' list"))?;
        let id = |s: &[u8; 2]| {
            let d = format!("{stream:02}");
            let d = d.as_bytes();
            [d[0], d[1], s[0], s[1]]
        };
        Ok(Self {
            r,
            name: name.to_string(),
            info: AviInfo {
                width,
                height,
                fps,
                frames,
                codec,
                stream,
            },
            movi,
            first_movi: movi,
            file_len,
            pos: movi.0,
            // A JPEG is far below 4 bytes per pixel; anything bigger is damage.
            max_frame: width * height * 4 + 65536,
            video_ids: [id(b"dc"), id(b"db")],
        })
    }

    pub fn info(&self) -> &AviInfo {
        &self.info
    }

    /// Back to the first frame.
    pub fn rewind(&mut self) {
        self.movi = self.first_movi;
        self.pos = self.movi.0;
    }

    /// Reads the next video frame's bytes into `buf`; `false` at the end of the file.
    pub fn next_frame(&mut self, buf: &mut Vec<u8>) -> Result<bool> {
        loop {
            if self.pos + 8 > self.movi.1 {
                if !self.next_riff()? {
                    return Ok(false);
                }
                continue;
            }
            let mut ch = [0u8; 8];
            self.r
                .seek(SeekFrom::Start(self.pos))
                .map_err(|e| VideoError::io(&self.name, e))?;
            if self.r.read_exact(&mut ch).is_err() {
                return Ok(false); // cut short: the frames so far were good
            }
            let size = le32(&ch, 4) as u64;
            let body = self.pos + 8;
            if &ch[0..4] == b"LIST" {
                // 'rec ' groups: step inside.
                self.pos = body + 4;
                continue;
            }
            if body + size > self.movi.1 {
                tracing::warn!(file = %self.name, "chunk runs past the end of 'movi'; stopping");
                return Ok(false);
            }
            self.pos = body + size + (size & 1);
            if size == 0 || !self.video_ids.iter().any(|id| id[..] == ch[0..4]) {
                continue; // audio, JUNK, index, or a dropped-frame marker
            }
            if size as usize > self.max_frame {
                return Err(VideoError::Corrupt(format!(
                    "{}: frame chunk of {size} bytes (more than {} for {}x{})",
                    self.name, self.max_frame, self.info.width, self.info.height
                )));
            }
            buf.resize(size as usize, 0);
            self.r
                .read_exact(buf)
                .map_err(|e| VideoError::io(&self.name, e))?;
            return Ok(true);
        }
    }

    /// Moves to the `movi` list of the next `RIFF AVIX` (OpenDML); `false` if there is none.
    fn next_riff(&mut self) -> Result<bool> {
        let mut pos = self.movi.1 + (self.movi.1 & 1);
        // Find the RIFF chunk that holds the current movi's end, then the next top-level RIFF.
        let mut h = [0u8; 24];
        while pos + 24 <= self.file_len {
            self.r
                .seek(SeekFrom::Start(pos))
                .map_err(|e| VideoError::io(&self.name, e))?;
            self.r
                .read_exact(&mut h)
                .map_err(|e| VideoError::io(&self.name, e))?;
            if &h[0..4] == b"RIFF"
                && &h[8..12] == b"AVIX"
                && &h[12..16] == b"LIST"
                && &h[20..24] == b"movi"
            {
                let end = (pos + 20 + le32(&h, 16) as u64).min(self.file_len);
                self.movi = (pos + 24, end);
                self.pos = self.movi.0;
                return Ok(true);
            }
            let size = le32(&h, 4) as u64;
            if size == 0 {
                return Ok(false);
            }
            pos += 8 + size + (size & 1);
        }
        Ok(false)
    }
}

fn parse_hdrl(
    h: &[u8],
    avih: &mut Option<(f64, usize, usize, usize)>,
    video: &mut Option<(usize, f64, String, usize, usize)>,
    stream_index: &mut usize,
) {
    let mut p = 0usize;
    while p + 8 <= h.len() {
        let id = &h[p..p + 4];
        let size = le32(h, p + 4) as usize;
        let body = p + 8;
        let end = (body + size).min(h.len());
        match id {
            b"avih" if end - body >= 40 => {
                let b = &h[body..end];
                *avih = Some((
                    le32(b, 0) as f64,
                    le32(b, 16) as usize,
                    le32(b, 32) as usize,
                    le32(b, 36) as usize,
                ));
            }
            b"LIST" if end - body >= 4 && &h[body..body + 4] == b"strl" => {
                let s = &h[body + 4..end];
                let mut q = 0usize;
                let mut is_video = false;
                let (mut rate, mut codec, mut w, mut hh) = (0.0, String::new(), 0usize, 0usize);
                while q + 8 <= s.len() {
                    let sid = &s[q..q + 4];
                    let ssize = le32(s, q + 4) as usize;
                    let sb = &s[q + 8..(q + 8 + ssize).min(s.len())];
                    if sid == b"strh" && sb.len() >= 28 {
                        is_video = &sb[0..4] == b"vids";
                        codec = fourcc(&sb[4..8]);
                        let (scale, r) = (le32(sb, 20), le32(sb, 24));
                        if scale > 0 {
                            rate = r as f64 / scale as f64;
                        }
                    } else if sid == b"strf" && sb.len() >= 20 && is_video {
                        w = (le32(sb, 4) as i32).unsigned_abs() as usize;
                        hh = (le32(sb, 8) as i32).unsigned_abs() as usize;
                        codec = fourcc(&sb[16..20]);
                    }
                    q += 8 + ssize + (ssize & 1);
                }
                if is_video && video.is_none() {
                    *video = Some((*stream_index, rate, codec, w, hh));
                }
                *stream_index += 1;
            }
            _ => {}
        }
        p = body + size + (size & 1);
    }
}

/// Writes RGB frames as an MJPEG AVI (JPEG quality `quality`), with an `idx1` index. Stops with
/// an error before the 1 GiB AVI 1.0 limit.
#[derive(Debug)]
pub struct AviWriter<W: Write + Seek> {
    w: W,
    width: usize,
    height: usize,
    fps: u32,
    quality: u8,
    frames: u32,
    index: Vec<(u32, u32)>,
    jpeg: Vec<u8>,
    movi_start: u64,
    pos: u64,
    max_bytes: usize,
}

const HDR_LEN: usize = 12 + 8 + 4 + 64 + 12 + 64 + 48 + 12;

impl<W: Write + Seek> AviWriter<W> {
    /// Starts a file for `width x height` frames at `fps`.
    pub fn new(
        mut w: W,
        width: usize,
        height: usize,
        fps: u32,
        quality: u8,
    ) -> std::io::Result<Self> {
        w.write_all(&[0u8; HDR_LEN])?; // rewritten by finish()
        Ok(Self {
            w,
            width,
            height,
            fps: fps.max(1),
            quality,
            frames: 0,
            index: Vec::with_capacity(1024),
            jpeg: Vec::with_capacity(width * height),
            movi_start: HDR_LEN as u64 - 4,
            pos: HDR_LEN as u64,
            max_bytes: 1 << 30,
        })
    }

    /// Appends a frame; it must have the size given to [`AviWriter::new`].
    pub fn write(&mut self, frame: &Frame) -> Result<()> {
        if frame.width != self.width || frame.height != self.height {
            return Err(VideoError::Usage(format!(
                "AVI frames must all be {}x{}, got {}x{}",
                self.width, self.height, frame.width, frame.height
            )));
        }
        self.jpeg.clear();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut self.jpeg, self.quality)
            .encode(
                &frame.data,
                frame.width as u32,
                frame.height as u32,
                image::ExtendedColorType::Rgb8,
            )
            .map_err(|e| VideoError::io("JPEG encoder", e))?;
        if self.pos as usize + self.jpeg.len() + 16 * (self.index.len() + 2) > self.max_bytes {
            return Err(VideoError::Usage(
                "AVI output reached the 1 GiB limit of AVI 1.0".into(),
            ));
        }
        let n = self.jpeg.len() as u32;
        let io = |e| VideoError::io("AVI output", e);
        self.w.write_all(b"00dc").map_err(io)?;
        self.w.write_all(&n.to_le_bytes()).map_err(io)?;
        self.w.write_all(&self.jpeg).map_err(io)?;
        if n & 1 == 1 {
            self.w.write_all(&[0]).map_err(io)?;
        }
        self.index.push(((self.pos - self.movi_start) as u32, n));
        self.pos += 8 + n as u64 + (n & 1) as u64;
        self.frames += 1;
        Ok(())
    }

    /// Writes the index and the headers; returns the writer.
    pub fn finish(mut self) -> std::io::Result<W> {
        self.w.write_all(b"idx1")?;
        self.w
            .write_all(&((self.index.len() * 16) as u32).to_le_bytes())?;
        for &(off, len) in &self.index {
            self.w.write_all(b"00dc")?;
            self.w.write_all(&0x10u32.to_le_bytes())?; // AVIIF_KEYFRAME
            self.w.write_all(&off.to_le_bytes())?;
            self.w.write_all(&len.to_le_bytes())?;
        }
        let total = self.pos + 8 + self.index.len() as u64 * 16;
        let mut h = Vec::with_capacity(HDR_LEN);
        let u = |h: &mut Vec<u8>, v: u32| h.extend_from_slice(&v.to_le_bytes());
        let (w, hh) = (self.width as u32, self.height as u32);
        h.extend_from_slice(b"RIFF");
        u(&mut h, (total - 8) as u32);
        h.extend_from_slice(b"AVI LIST");
        u(&mut h, 4 + 64 + 12 + 64 + 48);
        h.extend_from_slice(b"hdrlavih");
        u(&mut h, 56);
        for v in [
            1_000_000 / self.fps,
            0,
            0,
            0x10,
            self.frames,
            0,
            1,
            w * hh * 3,
            w,
            hh,
            0,
            0,
            0,
            0,
        ] {
            u(&mut h, v);
        }
        h.extend_from_slice(b"LIST");
        u(&mut h, 4 + 64 + 48);
        h.extend_from_slice(b"strlstrh");
        u(&mut h, 56);
        h.extend_from_slice(b"vidsMJPG");
        for v in [
            0,
            0,
            0,
            1,
            self.fps,
            0,
            self.frames,
            w * hh * 3,
            u32::MAX,
            0,
        ] {
            u(&mut h, v);
        }
        u(&mut h, 0);
        u(&mut h, (hh << 16) | w);
        h.extend_from_slice(b"strf");
        u(&mut h, 40);
        for v in [40, w, hh] {
            u(&mut h, v);
        }
        h.extend_from_slice(&1u16.to_le_bytes());
        h.extend_from_slice(&24u16.to_le_bytes());
        h.extend_from_slice(b"MJPG");
        for v in [w * hh * 3, 0, 0, 0, 0] {
            u(&mut h, v);
        }
        h.extend_from_slice(b"LIST");
        u(&mut h, (self.pos - self.movi_start) as u32);
        h.extend_from_slice(b"movi");
        debug_assert_eq!(h.len(), HDR_LEN);
        self.w.seek(SeekFrom::Start(0))?;
        self.w.write_all(&h)?;
        self.w.flush()?;
        Ok(self.w)
    }

    pub fn frames(&self) -> u32 {
        self.frames
    }
}
