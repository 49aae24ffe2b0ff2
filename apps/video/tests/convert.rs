//! YUYV and JPEG decoding against reference conversions (OpenCV / libjpeg) of committed frames
//! made by tools/demo/make_test_frames.py from real photos, at odd sizes.

use dysample_video::convert::{yuyv_to_rgb, JpegDecoder};
use dysample_video::Frame;
use std::path::PathBuf;

fn data(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn diff(a: &[u8], b: &[u8]) -> (u8, f64) {
    assert_eq!(a.len(), b.len());
    let max = a.iter().zip(b).map(|(x, y)| x.abs_diff(*y)).max().unwrap();
    let mean = a
        .iter()
        .zip(b)
        .map(|(x, y)| x.abs_diff(*y) as f64)
        .sum::<f64>()
        / a.len() as f64;
    (max, mean)
}

#[test]
fn yuyv_matches_opencv_exactly() {
    for (w, h) in [(34, 25), (18, 7), (64, 48)] {
        let src = data(&format!("yuyv_{w}x{h}.yuyv"));
        let want = data(&format!("yuyv_{w}x{h}.rgb"));
        let mut f = Frame::new();
        yuyv_to_rgb(&src, w, h, w * 2, &mut f).unwrap();
        assert_eq!((f.width, f.height), (w, h));
        let (max, _) = diff(&f.data, &want);
        assert_eq!(
            max, 0,
            "{w}x{h}: OpenCV's cvtColor(YUV2RGB_YUY2) differs by {max}"
        );
    }
}

#[test]
fn yuyv_with_row_padding() {
    let (w, h) = (34, 25);
    let src = data(&format!("yuyv_{w}x{h}.yuyv"));
    let stride = w * 2 + 12;
    let mut padded = vec![0xAB; stride * h];
    for y in 0..h {
        padded[y * stride..y * stride + w * 2].copy_from_slice(&src[y * w * 2..(y + 1) * w * 2]);
    }
    let mut f = Frame::new();
    yuyv_to_rgb(&padded, w, h, stride, &mut f).unwrap();
    assert_eq!(f.data, data(&format!("yuyv_{w}x{h}.rgb")));
}

#[test]
fn short_yuyv_buffer_is_a_corrupt_frame() {
    let src = data("yuyv_34x25.yuyv");
    let mut f = Frame::new();
    let e = yuyv_to_rgb(&src[..src.len() - 1], 34, 25, 68, &mut f).unwrap_err();
    assert!(e.is_corrupt_frame(), "{e}");
}

#[test]
fn jpeg_matches_libjpeg() {
    let mut dec = JpegDecoder::new();
    for name in ["jpeg_33x21_420", "jpeg_31x17_444", "jpeg_97x61_420"] {
        let mut f = Frame::new();
        dec.decode(&data(&format!("{name}.jpg")), &mut f).unwrap();
        let want = data(&format!("{name}.rgb"));
        let (max, mean) = diff(&f.data, &want);
        // Both are IJG-compatible integer IDCTs but upsample chroma differently (libjpeg's
        // "fancy" triangle filter vs zune's); 4:4:4 has no upsampling and must be near-exact.
        if name.ends_with("444") {
            assert!(max <= 2 && mean < 0.3, "{name}: max {max} mean {mean:.3}");
        } else {
            assert!(max <= 24 && mean < 2.0, "{name}: max {max} mean {mean:.3}");
        }
    }
}

#[test]
fn corrupt_jpeg_is_reported_not_panicked() {
    let mut dec = JpegDecoder::new();
    let mut f = Frame::new();
    let e = dec.decode(&data("corrupt.jpg"), &mut f).unwrap_err();
    assert!(e.is_corrupt_frame(), "{e}");
    assert!(!e.to_string().contains('\n'));
    for bad in [&b""[..], &b"\xFF\xD8"[..], &b"not a jpeg at all"[..]] {
        assert!(dec.decode(bad, &mut f).unwrap_err().is_corrupt_frame());
    }
    // And the decoder still works afterwards.
    dec.decode(&data("jpeg_33x21_420.jpg"), &mut f).unwrap();
    assert_eq!((f.width, f.height), (33, 21));
}
