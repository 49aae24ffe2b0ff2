//! What a camera or a video file hands the demos: JPEG (MJPEG) frames, packed YUYV frames of
//! any size and stride, Y4M streams and MJPEG AVI containers. The first byte picks the parser.
//! Every input gives frames or an error, bounded in time and memory; every decoded frame holds
//! exactly width × height × 3 bytes.
#![no_main]
use dysample_video::avi::AviReader;
use dysample_video::convert::{yuyv_to_rgb, JpegDecoder};
use dysample_video::y4m::Y4mReader;
use dysample_video::Frame;
use libfuzzer_sys::fuzz_target;
use std::io::Cursor;

fn check(f: &Frame) {
    assert_eq!(f.data.len(), f.width * f.height * 3, "frame buffer size");
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut frame = Frame::new();
    let mut jpeg = JpegDecoder::new();
    match mode % 4 {
        0 => {
            if jpeg.decode(rest, &mut frame).is_ok() {
                check(&frame);
            }
        }
        1 => {
            // width, height and stride from the next bytes; the rest is the frame.
            if rest.len() < 4 {
                return;
            }
            let w = rest[0] as usize * 2;
            let h = rest[1] as usize;
            let stride = w + rest[2] as usize % 8 * 2;
            let _ = rest[3];
            if yuyv_to_rgb(&rest[4..], w, h, stride, &mut frame).is_ok() {
                assert_eq!((frame.width, frame.height), (w, h));
                check(&frame);
            }
        }
        2 => {
            let Ok(mut r) = Y4mReader::new(Cursor::new(rest), "fuzz.y4m") else {
                return;
            };
            let mut buf = Vec::new();
            for _ in 0..4 {
                match r.next_frame(&mut buf) {
                    Ok(true) => {
                        if r.decode(&buf, &mut frame).is_ok() {
                            check(&frame);
                        }
                    }
                    _ => break,
                }
            }
        }
        _ => {
            let Ok(mut r) = AviReader::new(Cursor::new(rest), "fuzz.avi") else {
                return;
            };
            let mut buf = Vec::new();
            for _ in 0..4 {
                match r.next_frame(&mut buf) {
                    Ok(true) => {
                        if jpeg.decode(&buf, &mut frame).is_ok() {
                            check(&frame);
                        }
                    }
                    _ => break,
                }
            }
            r.rewind();
        }
    }
});
