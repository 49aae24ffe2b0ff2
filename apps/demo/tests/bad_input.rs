//! Every bad input is a one-line error with exit status 1, never a panic or a hang.

mod common;
use common::*;
use std::path::Path;

#[test]
fn model_problems() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let missing = d.join("nope");
    one_line_error(
        &run(&[
            "segment",
            "builtin://",
            "--headless",
            "--model",
            missing.to_str().unwrap(),
        ]),
        &["nope", "no such model folder"],
    );
    let empty = d.join("empty");
    std::fs::create_dir(&empty).unwrap();
    one_line_error(
        &run(&[
            "segment",
            "builtin://",
            "--headless",
            "--model",
            empty.to_str().unwrap(),
        ]),
        &["no model.json"],
    );
    let bad = d.join("bad");
    std::fs::create_dir(&bad).unwrap();
    std::fs::write(bad.join("model.json"), "{\"name\": \"x\",\n \"task\": ").unwrap();
    one_line_error(
        &run(&[
            "segment",
            "builtin://",
            "--headless",
            "--model",
            bad.to_str().unwrap(),
        ]),
        &["bad/model.json", "line 2"],
    );
    let seg = model("person-seg");
    let text = std::fs::read_to_string(seg.join("model.json")).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    // A model.json whose ONNX file is missing.
    v["files"]["onnx"] = "gone.onnx".into();
    let g = d.join("gone");
    std::fs::create_dir(&g).unwrap();
    std::fs::write(g.join("model.json"), v.to_string()).unwrap();
    one_line_error(
        &run(&[
            "segment",
            "builtin://",
            "--headless",
            "--model",
            g.to_str().unwrap(),
        ]),
        &["files.onnx", "gone.onnx", "does not exist"],
    );
    // Wrong task for the subcommand.
    one_line_error(
        &run(&[
            "depth",
            "builtin://",
            "--headless",
            "--model",
            seg.to_str().unwrap(),
        ]),
        &["segmentation model", "dysample-demo segment"],
    );
    // A model file that is not ONNX.
    let junk = d.join("junk");
    std::fs::create_dir(&junk).unwrap();
    v["files"] = serde_json::json!({"onnx": "model.onnx"});
    std::fs::write(junk.join("model.json"), v.to_string()).unwrap();
    std::fs::write(junk.join("model.onnx"), "not a protobuf").unwrap();
    one_line_error(
        &run(&[
            "segment",
            "builtin://",
            "--headless",
            "--model",
            junk.to_str().unwrap(),
        ]),
        &["model.onnx"],
    );
}

#[test]
fn input_output_and_flag_problems() {
    let seg = model("person-seg");
    let m = seg.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.png");
    let o = out.to_str().unwrap();
    one_line_error(
        &run(&["segment", "/no/such/clip.avi", o, "--model", m]),
        &["/no/such/clip.avi", "no such file"],
    );
    one_line_error(
        &run(&["segment", "gopher://x", o, "--model", m]),
        &["unknown input scheme"],
    );
    one_line_error(
        &run(&["segment", "csi://0", o, "--model", m]),
        &["not supported"],
    );
    one_line_error(
        &run(&["segment", "builtin://", "out.mkv", "--model", m]),
        &["cannot write .mkv"],
    );
    one_line_error(
        &run(&[
            "segment",
            "builtin://",
            o,
            "--model",
            m,
            "--visualize",
            "sparkles",
        ]),
        &["--visualize sparkles"],
    );
    one_line_error(
        &run(&[
            "segment",
            "builtin://",
            o,
            "--model",
            m,
            "--background",
            "paint",
        ]),
        &["--background paint"],
    );
    one_line_error(
        &run(&[
            "segment",
            "builtin://",
            o,
            "--model",
            m,
            "--background",
            "replace:/no/bg.png",
        ]),
        &["/no/bg.png"],
    );
    one_line_error(
        &run(&[
            "segment",
            "builtin://",
            o,
            "--model",
            m,
            "--precision",
            "f64",
        ]),
        &["--precision f64"],
    );
    one_line_error(
        &run(&["segment", "builtin://", o, "--model", m, "--ep", "quantum"]),
        &["quantum"],
    );
    one_line_error(
        &run(&[
            "segment",
            "builtin://",
            o,
            "--model",
            m,
            "--input-codec",
            "h264",
        ]),
        &["--input-codec h264"],
    );
    one_line_error(
        &run(&[
            "segment",
            "builtin://",
            "display://0",
            "--headless",
            "--model",
            m,
        ]),
        &["--headless"],
    );
    let dm = model("depth");
    let d = dm.to_str().unwrap();
    one_line_error(
        &run(&["depth", "builtin://", o, "--model", d, "--colormap", "jet"]),
        &["--colormap jet", "viridis"],
    );
    one_line_error(
        &run(&[
            "depth",
            "builtin://",
            o,
            "--model",
            d,
            "--pointcloud",
            "p.ply",
            "--fx",
            "500",
        ]),
        &["--fx"],
    );
    one_line_error(
        &run(&[
            "depth",
            "builtin://",
            o,
            "--model",
            d,
            "--pointcloud",
            "p.ply",
            "--fov",
            "200",
        ]),
        &["--fov 200"],
    );
    // An image that does not decode, and a directory without images.
    let bad = dir.path().join("bad.jpg");
    std::fs::write(&bad, "nope").unwrap();
    one_line_error(
        &run(&["segment", bad.to_str().unwrap(), o, "--model", m]),
        &["bad.jpg"],
    );
    let empty = tempfile::tempdir().unwrap();
    one_line_error(
        &run(&["segment", empty.path().to_str().unwrap(), o, "--model", m]),
        &["no images"],
    );
    // A non-MJPEG AVI without ffmpeg names the codec.
    let div3 = dir.path().join("x.avi");
    let mut b = dysample_video::BUILTIN_CLIP.to_vec();
    for i in 0..8192 {
        if &b[i..i + 4] == b"MJPG" {
            b[i..i + 4].copy_from_slice(b"DIV3");
        }
    }
    std::fs::write(&div3, b).unwrap();
    let mut c = bin();
    c.env("DYSAMPLE_FFMPEG", "/no/ffmpeg").args([
        "segment",
        div3.to_str().unwrap(),
        o,
        "--model",
        m,
    ]);
    one_line_error(&c.output().unwrap(), &["'DIV3'", "ffmpeg"]);
}

/// Files that are not regular files, or are too large, are refused before they are read: an
/// image input or background that is `/dev/zero` (read until memory ran out before), a FIFO
/// (blocked forever), and a model.json above the 16 MiB JSON limit.
#[test]
fn special_and_huge_files_are_refused() {
    let seg = model("person-seg");
    let m = seg.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let o = d.join("o.png");
    let o = o.to_str().unwrap();
    let zero = d.join("zero.png");
    std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
    let z = zero.to_str().unwrap();
    one_line_error(
        &run(&["segment", z, o, "--model", m]),
        &["zero.png", "not a regular file"],
    );
    let bg = format!("replace:{z}");
    one_line_error(
        &run(&[
            "segment",
            "builtin://",
            o,
            "--model",
            m,
            "--background",
            &bg,
        ]),
        &["--background", "zero.png", "not a regular file"],
    );
    let fifo = d.join("pipe.jpg");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    one_line_error(
        &run(&["segment", fifo.to_str().unwrap(), o, "--model", m]),
        &["pipe.jpg", "not a regular file"],
    );
    // model.json of 17 MiB (sparse: costs no disk).
    let big = d.join("big");
    std::fs::create_dir(&big).unwrap();
    let f = std::fs::File::create(big.join("model.json")).unwrap();
    f.set_len(17 << 20).unwrap();
    one_line_error(
        &run(&["segment", "builtin://", o, "--model", big.to_str().unwrap()]),
        &["model.json", "limit"],
    );
    assert!(!Path::new(o).exists(), "a failed run left {o}");
}
