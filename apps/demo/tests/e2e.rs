//! `dysample-demo` end to end, headless, on `builtin://` and on files, with the shipped models.

mod common;
use common::*;
use dysample_video::avi::{AviReader, AviWriter};
use dysample_video::Frame;
use std::io::Cursor;

#[test]
fn segment_builtin_covers_the_pedestrians() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("frames/");
    let m = model("person-seg");
    let o = run(&[
        "segment",
        "builtin://",
        out.to_str().unwrap(),
        "--model",
        m.to_str().unwrap(),
        "--headless",
        "--json",
        "--quiet",
    ]);
    let j = json(&o);
    assert_eq!(j["frames"], 56, "{j}");
    assert_eq!(j["corrupt"], 0);
    assert_eq!(j["dropped"], 0, "files never drop frames");
    let cov: Vec<f64> = j["coverage"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(cov.len(), 56);
    // Every frame of the clip has several pedestrians; they cover a small part of the frame.
    let mean = cov.iter().sum::<f64>() / cov.len() as f64;
    assert!(
        cov.iter().all(|&c| c > 0.002),
        "a frame without person pixels: {cov:?}"
    );
    assert!(mean > 0.01 && mean < 0.35, "mean coverage {mean}");
    for s in [
        "capture",
        "decode",
        "preprocess",
        "network",
        "postprocess",
        "render",
        "display",
    ] {
        assert!(
            j["stages"][s]["p50_ms"].as_f64().unwrap() >= 0.0,
            "stage {s} missing: {j}"
        );
    }
    let files: Vec<_> = std::fs::read_dir(&out).unwrap().collect();
    assert_eq!(files.len(), 56);
    // The overlay tints person pixels towards the class colour (255, 64, 160).
    let (w, h, px) = png(&out.join("000010.png"));
    assert_eq!((w, h), (640, 480));
    let pink = px
        .chunks_exact(3)
        .enumerate()
        .filter(|(i, p)| {
            i % 640 > 200 && p[0] as i32 - p[1] as i32 > 60 && p[2] as i32 - p[1] as i32 > 30
        })
        .count();
    assert!(pink > 200, "only {pink} tinted pixels");
    assert!(stderr(&o).contains("wrote 56 frames"), "{}", stderr(&o));
}

#[test]
fn mask_and_composite_views_and_video_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let m = model("person-seg");
    let avi = dir.path().join("mask.avi");
    let o = run(&[
        "segment",
        "builtin://",
        avi.to_str().unwrap(),
        "--model",
        m.to_str().unwrap(),
        "--visualize",
        "mask",
        "--frames",
        "6",
        "--json",
        "--quiet",
    ]);
    let j = json(&o);
    assert_eq!(j["frames"], 6);
    let bytes = std::fs::read(&avi).unwrap();
    let r = AviReader::new(Cursor::new(bytes), "mask.avi").unwrap();
    assert_eq!(
        (r.info().width, r.info().height, r.info().frames),
        (640, 480, 6)
    );
    // composite = overlay | mask, twice as wide; Y4M output.
    let y4m = dir.path().join("c.y4m");
    let o = run(&[
        "segment",
        "builtin://",
        y4m.to_str().unwrap(),
        "--model",
        m.to_str().unwrap(),
        "--visualize",
        "overlay,mask",
        "--frames",
        "2",
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let head = std::fs::read(&y4m).unwrap();
    assert!(
        head.starts_with(b"YUV4MPEG2 W1280 H480 "),
        "{:?}",
        String::from_utf8_lossy(&head[..40])
    );
    // Background blur and replace write a picture per frame.
    let bg = dir.path().join("bg.png");
    image::save_buffer(
        &bg,
        &vec![30u8; 64 * 48 * 3],
        64,
        48,
        image::ExtendedColorType::Rgb8,
    )
    .unwrap();
    for b in ["blur".to_string(), format!("replace:{}", bg.display())] {
        let png_out = dir.path().join("b.png");
        let o = run(&[
            "segment",
            "builtin://",
            png_out.to_str().unwrap(),
            "--model",
            m.to_str().unwrap(),
            "--background",
            &b,
            "--frames",
            "3",
            "--quiet",
        ]);
        assert!(o.status.success(), "{b}: {}", stderr(&o));
        let (w, h, px) = png(&png_out);
        assert_eq!((w, h), (640, 480));
        if b.starts_with("replace") {
            // Most of the frame is background: the replacement's flat grey.
            let grey = px
                .chunks_exact(3)
                .filter(|p| p.iter().all(|&v| v.abs_diff(30) <= 2))
                .count();
            assert!(grey > 640 * 480 / 2, "{grey} background pixels");
        }
    }
}

#[test]
fn corrupt_frames_are_skipped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = AviWriter::new(Cursor::new(Vec::new()), 160, 120, 10, 90).unwrap();
    for k in 0..5u8 {
        let mut f = Frame::with_size(160, 120);
        f.data
            .iter_mut()
            .enumerate()
            .for_each(|(i, v)| *v = ((i / 3 % 160) as u8).wrapping_add(k * 9));
        w.write(&f).unwrap();
    }
    let mut bytes = w.finish().unwrap().into_inner();
    // Damage the JPEG data of frame 3 (chunk after the 'movi' list start).
    let movi = bytes.windows(4).position(|x| x == b"movi").unwrap() + 4;
    let mut p = movi;
    for _ in 0..3 {
        let n = u32::from_le_bytes(bytes[p + 4..p + 8].try_into().unwrap()) as usize;
        p += 8 + n + (n & 1);
    }
    let n = u32::from_le_bytes(bytes[p + 4..p + 8].try_into().unwrap()) as usize;
    bytes[p + 8 + n / 2..p + 8 + n].fill(0xFF);
    let input = dir.path().join("bad.avi");
    std::fs::write(&input, bytes).unwrap();
    let out = dir.path().join("o.png");
    let o = run(&[
        "segment",
        input.to_str().unwrap(),
        out.to_str().unwrap(),
        "--model",
        model("person-seg").to_str().unwrap(),
        "--json",
        "--quiet",
    ]);
    let j = json(&o);
    assert_eq!(
        (j["frames"].as_u64(), j["corrupt"].as_u64()),
        (Some(4), Some(1)),
        "{j}"
    );
    assert!(
        stderr(&o).contains("skipped a corrupt frame"),
        "{}",
        stderr(&o)
    );
}

/// A synthetic scene: a textured ground plane receding to a horizon under a plain sky.
fn ground_plane(w: usize, h: usize) -> Vec<u8> {
    let horizon = h as f64 * 0.35;
    let mut px = vec![0u8; w * h * 3];
    for y in 0..h {
        for x in 0..w {
            let i = (y * w + x) * 3;
            let c: [u8; 3] = if (y as f64) < horizon {
                let t = y as f64 / horizon;
                [(120.0 + 60.0 * t) as u8, (160.0 + 50.0 * t) as u8, 235]
            } else {
                // Ground: checkerboard in perspective (z ~ 1 / (y - horizon)).
                let z = 200.0 / (y as f64 - horizon + 1.0);
                let gx = (x as f64 - w as f64 / 2.0) * z / 200.0;
                let check = ((gx.floor() as i64 + z.floor() as i64) & 1) == 0;
                let shade = (1.0 / (1.0 + 0.05 * z)).clamp(0.3, 1.0);
                let base = if check {
                    [150.0, 120.0, 80.0]
                } else {
                    [90.0, 70.0, 50.0]
                };
                [
                    (base[0] * shade) as u8,
                    (base[1] * shade) as u8,
                    (base[2] * shade) as u8,
                ]
            };
            px[i..i + 3].copy_from_slice(&c);
        }
    }
    px
}

#[test]
fn depth_orders_a_synthetic_ground_plane() {
    let dir = tempfile::tempdir().unwrap();
    let (w, h) = (320usize, 240usize);
    let img = dir.path().join("plane.png");
    image::save_buffer(
        &img,
        &ground_plane(w, h),
        w as u32,
        h as u32,
        image::ExtendedColorType::Rgb8,
    )
    .unwrap();
    let ply = dir.path().join("plane.ply");
    let out = dir.path().join("d.png");
    let m = model("depth");
    let o = run(&[
        "depth",
        img.to_str().unwrap(),
        out.to_str().unwrap(),
        "--model",
        m.to_str().unwrap(),
        "--pointcloud",
        ply.to_str().unwrap(),
        "--fov",
        "70",
        "--json",
        "--quiet",
    ]);
    let j = json(&o);
    assert_eq!(j["frames"], 1);
    let (ow, oh, _) = png(&out);
    assert_eq!(
        (ow, oh),
        (2 * w as u32, h as u32),
        "input and depth side by side"
    );
    // The cloud: nearer at the bottom of the ground than just below the horizon.
    let b = std::fs::read(&ply).unwrap();
    let head = b"end_header\n";
    let at = b.windows(head.len()).position(|x| x == head).unwrap() + head.len();
    let text = String::from_utf8_lossy(&b[..at]).to_string();
    let n: usize = text
        .lines()
        .find_map(|l| l.strip_prefix("element vertex "))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(b.len() - at, n * 15);
    let pts: Vec<[f32; 3]> = b[at..]
        .chunks_exact(15)
        .map(|c| {
            std::array::from_fn(|k| f32::from_le_bytes(c[k * 4..k * 4 + 4].try_into().unwrap()))
        })
        .collect();
    // Rows of the model's output grid: y = v * z / fy + ..., so use the pixel order instead.
    let side = (n as f64).sqrt() as usize;
    let rows = n / side;
    let band = |r0: f64, r1: f64| {
        let (a, b) = ((rows as f64 * r0) as usize, (rows as f64 * r1) as usize);
        let zs: Vec<f32> = pts[a * side..b * side].iter().map(|p| p[2]).collect();
        zs.iter().sum::<f32>() / zs.len() as f32
    };
    let (near, mid) = (band(0.85, 1.0), band(0.45, 0.6));
    assert!(
        near < mid,
        "bottom of the ground ({near}) is not nearer than the middle ({mid})"
    );
}

#[test]
fn bench_reports_every_row() {
    let m = model("person-seg");
    let o = run(&[
        "segment",
        "--bench",
        "--frames",
        "4",
        "--warmup",
        "1",
        "--model",
        m.to_str().unwrap(),
        "--json",
    ]);
    let j = json(&o);
    let rows = j["bench"]["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 4, "{j}");
    for r in rows {
        if r.get("error").is_none() {
            assert!(r["fps"].as_f64().unwrap() > 0.0);
            assert_eq!(r["frames"], 4);
        }
    }
    assert!(
        rows[0].get("error").is_none() && rows[3].get("error").is_none(),
        "{j}"
    );
    let table = stderr(&o);
    assert!(
        table.contains("plain ORT, lowered (GridSample) f32") && table.contains("network"),
        "{table}"
    );
}
