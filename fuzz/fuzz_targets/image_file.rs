//! Image files the demos and the calibration tool read (PNG through `image`, JPEG through
//! `zune-jpeg`, chosen by extension as for a `file://` input): a frame or an error, with the
//! dimensions bounded before any pixel is decoded.
#![no_main]
use dysample_video::convert::JpegDecoder;
use dysample_video::source::decode_image;
use dysample_video::{Frame, MAX_SIDE};
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let path = Path::new(if mode % 2 == 0 {
        "fuzz.png"
    } else {
        "fuzz.jpg"
    });
    let mut frame = Frame::new();
    if decode_image(rest, path, &mut JpegDecoder::new(), &mut frame).is_ok() {
        assert!(frame.width <= MAX_SIDE && frame.height <= MAX_SIDE);
        assert_eq!(frame.data.len(), frame.width * frame.height * 3);
    }
});
