//! Image loading and preprocessing to the model's input tensor, and the bilinear resize SPEC.md
//! uses for inputs and predictions.
//!
//! The resize is bilinear with half-pixel centres and no antialiasing — exactly
//! `torch.nn.functional.interpolate(mode="bilinear", align_corners=False)` — so Python and Rust
//! agree on any size; general-purpose image resizers (`image`'s triangle filter,
//! `fast_image_resize`'s convolution) widen the filter when shrinking and would not.

use crate::error::{Error, Result};
use crate::model::{ColorOrder, InputSpec, TensorLayout};
use image::RgbImage;
use std::path::Path;

/// Largest image file read (bytes) and largest side decoded (pixels): every allocation an image
/// header can ask for is bounded before any pixel is decoded.
pub const MAX_IMAGE_BYTES: u64 = 256 << 20;
/// Largest width or height of an image that is decoded.
pub const MAX_IMAGE_SIDE: u32 = 16384;

/// A reader over a regular image file of bounded size, with decoding limits on its dimensions
/// and allocations (a FIFO, a device or a 60000×60000 PNG header is refused, not attempted).
fn open_image(path: &Path) -> Result<image::ImageReader<std::io::BufReader<std::fs::File>>> {
    let (file, _) = dysample::io::open_regular(path, "image", MAX_IMAGE_BYTES)
        .map_err(|e| Error::file(path, strip_prefix(&e.to_string(), path)))?;
    let mut reader = image::ImageReader::new(std::io::BufReader::new(file))
        .with_guessed_format()
        .map_err(|e| Error::file(path, format_args!("cannot read: {e}")))?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    reader.limits(limits);
    Ok(reader)
}

/// `msg` without a leading `path: ` (the SDK's I/O errors name the path themselves).
fn strip_prefix(msg: &str, path: &Path) -> String {
    let p = format!("{}: ", path.display());
    msg.strip_prefix(&p).unwrap_or(msg).to_string()
}

/// Decodes an image file (PNG or JPEG) to 8-bit RGB (grey and alpha images are converted).
pub fn load_rgb(path: &Path) -> Result<RgbImage> {
    let reader = open_image(path)?;
    let img = reader
        .decode()
        .map_err(|e| Error::file(path, format_args!("cannot decode image: {e}")))?;
    Ok(img.to_rgb8())
}

/// Decodes an 8-bit grey image (a segmentation target). Other formats are refused rather than
/// converted, so an RGB or 16-bit mask is noticed.
pub fn load_grey8(path: &Path) -> Result<image::GrayImage> {
    let reader = open_image(path)?;
    let img = reader
        .decode()
        .map_err(|e| Error::file(path, format_args!("cannot decode image: {e}")))?;
    match img {
        image::DynamicImage::ImageLuma8(g) => Ok(g),
        other => Err(Error::file(
            path,
            format_args!(
                "a target mask must be an 8-bit grey PNG, this one is {:?}",
                other.color()
            ),
        )),
    }
}

/// Width and height from the file's header, without decoding the pixels.
pub fn image_size(path: &Path) -> Result<(usize, usize)> {
    let (w, h) = open_image(path)?
        .into_dimensions()
        .map_err(|e| Error::file(path, format_args!("cannot decode image: {e}")))?;
    Ok((w as usize, h as usize))
}

/// Bilinear resize of one `sh × sw` plane to `dh × dw`, half-pixel centres, edge clamped:
/// source coordinate `(x + 0.5)·sw/dw − 0.5`, clamped at 0, neighbours clamped to the edge.
pub fn resize_bilinear(src: &[f32], sh: usize, sw: usize, dh: usize, dw: usize) -> Vec<f32> {
    assert_eq!(src.len(), sh * sw, "plane size");
    if (sh, sw) == (dh, dw) {
        return src.to_vec();
    }
    let axis = |d: usize, s: usize, dd: usize| -> (usize, usize, f32) {
        let scale = s as f32 / dd as f32;
        let x = ((d as f32 + 0.5) * scale - 0.5).max(0.0);
        let x0 = (x as usize).min(s - 1);
        let x1 = if x0 + 1 < s { x0 + 1 } else { x0 };
        (x0, x1, x - x0 as f32)
    };
    let cols: Vec<(usize, usize, f32)> = (0..dw).map(|x| axis(x, sw, dw)).collect();
    let mut out = Vec::with_capacity(dh * dw);
    for y in 0..dh {
        let (y0, y1, ly) = axis(y, sh, dh);
        let (r0, r1) = (&src[y0 * sw..(y0 + 1) * sw], &src[y1 * sw..(y1 + 1) * sw]);
        for &(x0, x1, lx) in &cols {
            let top = r0[x0] * (1.0 - lx) + r0[x1] * lx;
            let bottom = r1[x0] * (1.0 - lx) + r1[x1] * lx;
            out.push(top * (1.0 - ly) + bottom * ly);
        }
    }
    out
}

/// The model's input tensor for `img`: `[1, 3, H, W]` (or `[1, H, W, 3]` for NHWC) with
/// `x = (pixel / 255 − mean[c]) / std[c]` in the tensor's channel order, the frame stretched to
/// the input size if it differs. Returns the data and its dims.
pub fn preprocess(img: &RgbImage, spec: &InputSpec) -> (Vec<f32>, [usize; 4]) {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let (oh, ow) = (spec.height, spec.width);
    let order: [usize; 3] = match spec.color {
        ColorOrder::Rgb => [0, 1, 2],
        ColorOrder::Bgr => [2, 1, 0],
    };
    let raw = img.as_raw();
    let planes: Vec<Vec<f32>> = order
        .iter()
        .map(|&src_c| {
            let plane: Vec<f32> = (0..h * w)
                .map(|i| raw[i * 3 + src_c] as f32 / 255.0)
                .collect();
            resize_bilinear(&plane, h, w, oh, ow)
        })
        .collect();
    let norm = |c: usize, v: f32| (v - spec.mean[c]) / spec.std[c];
    match spec.layout {
        TensorLayout::Nchw => {
            let mut out = Vec::with_capacity(3 * oh * ow);
            for (c, p) in planes.iter().enumerate() {
                out.extend(p.iter().map(|&v| norm(c, v)));
            }
            (out, [1, 3, oh, ow])
        }
        TensorLayout::Nhwc => {
            let mut out = Vec::with_capacity(3 * oh * ow);
            for i in 0..oh * ow {
                for (c, p) in planes.iter().enumerate() {
                    out.push(norm(c, p[i]));
                }
            }
            (out, [1, oh, ow, 3])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Resize;

    #[test]
    fn resize_matches_hand_computed_half_pixel_values() {
        // 1x2 -> 1x4: src x = (x + 0.5)/2 - 0.5 = -0.25 (clamped to 0), 0.25, 0.75, 1.25 (x0 = 1,
        // x1 clamped to 1). With values [0, 4]: 0, 1, 3, 4.
        assert_eq!(resize_bilinear(&[0., 4.], 1, 2, 1, 4), vec![0., 1., 3., 4.]);
        // 4 -> 2 (shrink, no antialiasing): src x = (x + 0.5)*2 - 0.5 = 0.5, 2.5: the means of
        // neighbours 0,1 and 2,3: [1, 2, 3, 4] -> [1.5, 3.5].
        assert_eq!(
            resize_bilinear(&[1., 2., 3., 4.], 1, 4, 1, 2),
            vec![1.5, 3.5]
        );
        // 2x2 -> 1x1: the centre, mean of all four.
        assert_eq!(resize_bilinear(&[0., 2., 4., 6.], 2, 2, 1, 1), vec![3.0]);
        // Same size: unchanged.
        assert_eq!(resize_bilinear(&[5., 6.], 1, 2, 1, 2), vec![5., 6.]);
    }

    fn spec(layout: TensorLayout, color: ColorOrder, h: usize, w: usize) -> InputSpec {
        InputSpec {
            name: "input".into(),
            layout,
            height: h,
            width: w,
            color,
            resize: Resize::Stretch,
            mean: [0.5, 0.0, 0.0],
            std: [0.5, 1.0, 2.0],
        }
    }

    #[test]
    fn preprocess_orders_and_normalizes() {
        // One pixel (R, G, B) = (255, 51, 0): /255 = (1, 0.2, 0).
        let img = RgbImage::from_raw(1, 1, vec![255, 51, 0]).unwrap();
        let (x, d) = preprocess(&img, &spec(TensorLayout::Nchw, ColorOrder::Rgb, 1, 1));
        assert_eq!(d, [1, 3, 1, 1]);
        // ((1 - 0.5)/0.5, (0.2 - 0)/1, (0 - 0)/2) = (1, 0.2, 0).
        assert!(
            (x[0] - 1.0).abs() < 1e-6 && (x[1] - 0.2).abs() < 1e-6 && x[2] == 0.0,
            "{x:?}"
        );
        // BGR: channel 0 is blue: ((0 - 0.5)/0.5, 0.2, (1 - 0)/2) = (-1, 0.2, 0.5).
        let (x, _) = preprocess(&img, &spec(TensorLayout::Nchw, ColorOrder::Bgr, 1, 1));
        assert!(
            (x[0] + 1.0).abs() < 1e-6 && (x[2] - 0.5).abs() < 1e-6,
            "{x:?}"
        );
        // Two pixels, NHWC interleaves, NCHW is planar.
        let img = RgbImage::from_raw(2, 1, vec![255, 0, 0, 0, 0, 255]).unwrap();
        let (x, d) = preprocess(&img, &spec(TensorLayout::Nhwc, ColorOrder::Rgb, 1, 2));
        assert_eq!(d, [1, 1, 2, 3]);
        assert_eq!(x, vec![1.0, 0.0, 0.0, -1.0, 0.0, 0.5]);
        let (x, _) = preprocess(&img, &spec(TensorLayout::Nchw, ColorOrder::Rgb, 1, 2));
        assert_eq!(x, vec![1.0, -1.0, 0.0, 0.0, 0.0, 0.5]);
        // Stretched to 1x1: the mean of both pixels, then normalized: R = 0.5 -> 0.
        let (x, _) = preprocess(&img, &spec(TensorLayout::Nchw, ColorOrder::Rgb, 1, 1));
        assert_eq!(x, vec![0.0, 0.0, 0.25]);
    }
}
