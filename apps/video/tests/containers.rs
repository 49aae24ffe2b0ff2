//! MJPEG AVI and Y4M: round trips through the writers and readers, the builtin clip, damaged
//! files (corrupt frames skipped and counted, bad sizes bounded, unsupported codecs named).

use dysample_video::avi::{AviReader, AviWriter};
use dysample_video::source::{builtin, open_source, AviSource, FrameSource, Grab, SourceOptions};
use dysample_video::uri::InputUri;
use dysample_video::y4m::{Y4mReader, Y4mWriter};
use dysample_video::Frame;
use std::io::Cursor;

/// A smooth test picture (JPEG-friendly) that changes with `k`.
fn picture(w: usize, h: usize, k: usize) -> Frame {
    let mut f = Frame::with_size(w, h);
    for y in 0..h {
        for x in 0..w {
            let i = (y * w + x) * 3;
            f.data[i] = ((x * 255) / w) as u8;
            f.data[i + 1] = ((y * 255) / h) as u8;
            f.data[i + 2] = ((k * 40) % 256) as u8;
        }
    }
    f
}

fn mean_abs(a: &[u8], b: &[u8]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| x.abs_diff(*y) as f64)
        .sum::<f64>()
        / a.len() as f64
}

fn avi_bytes(frames: &[Frame], fps: u32) -> Vec<u8> {
    let mut w = AviWriter::new(
        Cursor::new(Vec::new()),
        frames[0].width,
        frames[0].height,
        fps,
        90,
    )
    .unwrap();
    for f in frames {
        w.write(f).unwrap();
    }
    w.finish().unwrap().into_inner()
}

fn read_all(src: &mut dyn FrameSource) -> (Vec<Frame>, usize) {
    let (mut out, mut corrupt) = (Vec::new(), 0);
    loop {
        match src.grab().unwrap() {
            Grab::End => break,
            Grab::Frame => {
                let mut f = Frame::new();
                match src.decode(&mut f) {
                    Ok(()) => out.push(f),
                    Err(e) if e.is_corrupt_frame() => corrupt += 1,
                    Err(e) => panic!("{e}"),
                }
            }
        }
    }
    (out, corrupt)
}

#[test]
fn avi_round_trip() {
    let frames: Vec<Frame> = (0..5).map(|k| picture(65, 37, k)).collect();
    let bytes = avi_bytes(&frames, 12);
    let r = AviReader::new(Cursor::new(bytes.clone()), "t.avi").unwrap();
    let i = r.info();
    assert_eq!(
        (i.width, i.height, i.frames, i.codec.as_str()),
        (65, 37, 5, "MJPG")
    );
    assert!((i.fps - 12.0).abs() < 1e-9);
    let mut src = AviSource::new(Cursor::new(bytes), "t.avi").unwrap();
    let (got, corrupt) = read_all(&mut src);
    assert_eq!((got.len(), corrupt), (5, 0));
    for (a, b) in got.iter().zip(&frames) {
        assert_eq!((a.width, a.height), (65, 37));
        let d = mean_abs(&a.data, &b.data);
        assert!(d < 3.0, "JPEG q90 round trip mean error {d}");
    }
    // Frames differ from each other (the reader really advances).
    assert!(mean_abs(&got[0].data, &got[4].data) > 20.0);
    // Rewind starts over.
    assert!(src.rewind().unwrap());
    assert_eq!(read_all(&mut src).0.len(), 5);
}

#[test]
fn opencv_written_builtin_clip() {
    let mut src = builtin().unwrap();
    assert!(src.describe().contains("640x480"), "{}", src.describe());
    let (frames, corrupt) = read_all(&mut src);
    assert_eq!((frames.len(), corrupt), (56, 0));
    assert!(frames.iter().all(|f| (f.width, f.height) == (640, 480)));
    // A real scene: not flat.
    let f = &frames[0];
    let mean = f.data.iter().map(|&v| v as f64).sum::<f64>() / f.data.len() as f64;
    let var = f
        .data
        .iter()
        .map(|&v| (v as f64 - mean).powi(2))
        .sum::<f64>()
        / f.data.len() as f64;
    assert!(var.sqrt() > 20.0, "std {}", var.sqrt());
    let via_uri = open_source(&InputUri::Builtin, &SourceOptions::default()).unwrap();
    assert_eq!(via_uri.fps(), Some(10.0));
}

/// Finds the byte offset of frame chunk `n` ("00dc") in a file made by AviWriter.
fn chunk_offset(bytes: &[u8], n: usize) -> usize {
    let mut seen = 0;
    let mut p = bytes.windows(4).position(|w| w == b"movi").unwrap() + 4;
    loop {
        assert_eq!(&bytes[p..p + 4], b"00dc");
        let size = u32::from_le_bytes(bytes[p + 4..p + 8].try_into().unwrap()) as usize;
        if seen == n {
            return p;
        }
        seen += 1;
        p += 8 + size + (size & 1);
    }
}

#[test]
fn corrupt_frame_is_skipped_and_counted() {
    let frames: Vec<Frame> = (0..4).map(|k| picture(48, 32, k)).collect();
    let mut bytes = avi_bytes(&frames, 10);
    let p = chunk_offset(&bytes, 2);
    let size = u32::from_le_bytes(bytes[p + 4..p + 8].try_into().unwrap()) as usize;
    // Scramble the entropy-coded data of frame 2 and cut its end marker.
    for b in &mut bytes[p + 8 + size / 2..p + 8 + size] {
        *b = 0xFF;
    }
    let mut src = AviSource::new(Cursor::new(bytes), "bad.avi").unwrap();
    let (got, corrupt) = read_all(&mut src);
    assert_eq!((got.len(), corrupt), (3, 1));
    assert!(
        mean_abs(&got[2].data, &frames[3].data) < 3.0,
        "the frame after the bad one is intact"
    );
}

#[test]
fn damaged_files_are_bounded_errors() {
    let frames: Vec<Frame> = (0..3).map(|k| picture(32, 16, k)).collect();
    let bytes = avi_bytes(&frames, 10);
    // A frame chunk claiming 3 GiB: a corrupt-frame error or the end, never a huge allocation.
    let mut huge = bytes.clone();
    let p = chunk_offset(&huge, 1);
    huge[p + 4..p + 8].copy_from_slice(&0xC000_0000u32.to_le_bytes());
    let mut src = AviSource::new(Cursor::new(huge), "huge.avi").unwrap();
    assert_eq!(src.grab().unwrap(), Grab::Frame);
    assert!(!matches!(src.grab(), Ok(Grab::Frame)));
    // Cut in the middle of frame 2: the first frames still come, then the end.
    let cut = chunk_offset(&bytes, 2) + 20;
    let mut src = AviSource::new(Cursor::new(bytes[..cut].to_vec()), "cut.avi").unwrap();
    let (got, _) = read_all(&mut src);
    assert_eq!(got.len(), 2);
    // Not an AVI / not MJPEG / empty.
    let e = AviReader::new(Cursor::new(b"RIFX....WAVE".to_vec()), "x.avi")
        .unwrap_err()
        .to_string();
    assert!(e.contains("not an AVI"), "{e}");
    assert!(AviReader::new(Cursor::new(Vec::new()), "e.avi").is_err());
    let mut div3 = bytes.clone();
    for fourcc in div3
        .windows(4)
        .enumerate()
        .filter(|(_, w)| *w == b"MJPG")
        .map(|(i, _)| i)
        .collect::<Vec<_>>()
    {
        div3[fourcc..fourcc + 4].copy_from_slice(b"DIV3");
    }
    let e = AviReader::new(Cursor::new(div3), "div3.avi")
        .unwrap_err()
        .to_string();
    assert!(e.contains("'DIV3'") && e.contains("ffmpeg"), "{e}");
    // A header chunk running past the end.
    let mut trunc = bytes[..100].to_vec();
    trunc[4..8].copy_from_slice(&92u32.to_le_bytes());
    assert!(AviReader::new(Cursor::new(trunc), "t.avi").is_err());
}

#[test]
fn y4m_round_trip_444() {
    let frames: Vec<Frame> = (0..3).map(|k| picture(21, 13, k)).collect();
    let mut w = Y4mWriter::new(Vec::new(), 21, 13, 25).unwrap();
    for f in &frames {
        w.write(f).unwrap();
    }
    let bytes = w.finish().unwrap();
    let mut r = Y4mReader::new(Cursor::new(bytes), "t.y4m").unwrap();
    assert_eq!(
        (r.info().width, r.info().height, r.info().fps),
        (21, 13, 25.0)
    );
    let (mut buf, mut f) = (Vec::new(), Frame::new());
    for want in &frames {
        assert!(r.next_frame(&mut buf).unwrap());
        r.decode(&buf, &mut f).unwrap();
        let worst = f
            .data
            .iter()
            .zip(&want.data)
            .map(|(a, b)| a.abs_diff(*b))
            .max()
            .unwrap();
        assert!(worst <= 3, "worst {worst}");
    }
    assert!(!r.next_frame(&mut buf).unwrap());
}

#[test]
fn y4m_420_odd_size_and_bad_headers() {
    // 3x3 4:2:0: chroma planes 2x2. Grey Y=126, neutral chroma.
    let mut s = b"YUV4MPEG2 W3 H3 F30000:1001 Ip C420jpeg XYSCSS=420JPEG\nFRAME\n".to_vec();
    s.extend(std::iter::repeat_n(126u8, 9));
    s.extend(std::iter::repeat_n(128u8, 8));
    let mut r = Y4mReader::new(Cursor::new(s.clone()), "g.y4m").unwrap();
    assert!((r.info().fps - 29.97).abs() < 0.01);
    let (mut buf, mut f) = (Vec::new(), Frame::new());
    assert!(r.next_frame(&mut buf).unwrap());
    r.decode(&buf, &mut f).unwrap();
    assert!(f.data.iter().all(|&v| v == 128), "{:?}", &f.data[..6]);
    // Cut short: a corrupt (last) frame.
    let mut r = Y4mReader::new(Cursor::new(s[..s.len() - 3].to_vec()), "c.y4m").unwrap();
    assert!(r.next_frame(&mut buf).unwrap_err().is_corrupt_frame());
    for (bad, msg) in [
        (&b"YUV4MPEG2 W0 H3\n"[..], "out of range"),
        (&b"YUV4MPEG2 W99999 H3\n"[..], "out of range"),
        (&b"YUV4MPEG2 W4 H4 C420p10\n"[..], "not supported"),
        (&b"P6 4 4 255\n"[..], "not a Y4M"),
        (&b"YUV4MPEG2 W4 H4"[..], "inside a header"),
    ] {
        let e = Y4mReader::new(Cursor::new(bad.to_vec()), "b.y4m")
            .unwrap_err()
            .to_string();
        assert!(e.contains(msg), "{e}");
    }
    let long = [b"YUV4MPEG2 ".to_vec(), vec![b'X'; 5000]].concat();
    assert!(Y4mReader::new(Cursor::new(long), "l.y4m")
        .unwrap_err()
        .to_string()
        .contains("longer than"));
}

#[test]
fn file_sources_by_uri() {
    let dir = tempfile::tempdir().unwrap();
    // An image directory, sorted by name, with a non-image file and an undecodable one.
    for (i, k) in [(2, 0), (0, 1), (1, 2)] {
        image::save_buffer(
            dir.path().join(format!("f{i}.png")),
            &picture(20, 10, k).data,
            20,
            10,
            image::ExtendedColorType::Rgb8,
        )
        .unwrap();
    }
    std::fs::write(dir.path().join("notes.txt"), "x").unwrap();
    std::fs::write(dir.path().join("f3.png"), "not a png").unwrap();
    let mut src = open_source(
        &InputUri::File(dir.path().into()),
        &SourceOptions::default(),
    )
    .unwrap();
    let (got, corrupt) = read_all(src.as_mut());
    assert_eq!((got.len(), corrupt), (3, 1));
    assert_eq!(got[0].data, picture(20, 10, 1).data, "f0.png first");
    // One image, again with rewind.
    let one = dir.path().join("f0.png");
    let mut src = open_source(&InputUri::File(one), &SourceOptions::default()).unwrap();
    assert_eq!(read_all(src.as_mut()).0.len(), 1);
    assert!(src.rewind().unwrap());
    assert_eq!(read_all(src.as_mut()).0.len(), 1);
    // Errors name the file.
    let missing = dir.path().join("nope.avi");
    let e = open_source(&InputUri::File(missing), &SourceOptions::default())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("nope.avi") && e.contains("no such file"), "{e}");
    let empty = tempfile::tempdir().unwrap();
    let e = open_source(
        &InputUri::File(empty.path().into()),
        &SourceOptions::default(),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(e.contains("no images"), "{e}");
    let bad = dir.path().join("bad.png");
    std::fs::write(&bad, "nope").unwrap();
    let e = open_source(&InputUri::File(bad), &SourceOptions::default())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("cannot decode"), "{e}");
}

/// A Y4M header with a multi-byte UTF-8 character where a tag letter goes panicked at a char
/// boundary (found by the video_frames fuzz target; its input is the seed
/// fuzz/seeds/video_frames/regress-y4m-non-ascii-tag). Now it is an error.
#[test]
fn y4m_header_with_non_ascii_tag_is_an_error() {
    let seed = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fuzz/seeds/video_frames/regress-y4m-non-ascii-tag"),
    )
    .unwrap();
    // The fuzz target's first byte picks the parser (2 = Y4M).
    assert_eq!(seed[0], 2);
    let e = dysample_video::y4m::Y4mReader::new(std::io::Cursor::new(&seed[1..]), "regress.y4m")
        .unwrap_err()
        .to_string();
    assert!(e.contains("regress.y4m") && e.contains("not ASCII"), "{e}");
    let e = dysample_video::y4m::parse_header("YUV4MPEG2 W4 H2 ǩ2".as_bytes(), "h")
        .unwrap_err()
        .to_string();
    assert!(e.contains("not ASCII"), "{e}");
}
