//! Shared helpers of the demo's end-to-end tests.
#![allow(dead_code)]

use dysample_calibrate::collect::RunOptions;
use dysample_calibrate::methods::Method;
use dysample_calibrate::pipeline::{self, Options, Target, CPU_MODEL};
use dysample_calibrate::qdq::WeightRange;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_dysample-demo"));
    c.env("RUST_LOG", "warn");
    c
}

/// The shipped model `name` (`models/<name>`, or `$DYSAMPLE_MODELS/<name>`). Missing models fail
/// the test: these tests are about the shipped models.
pub fn model(name: &str) -> PathBuf {
    let root = std::env::var_os("DYSAMPLE_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models"));
    let dir = root.join(name);
    assert!(
        dir.join("model.json").is_file(),
        "{} has no model.json",
        dir.display()
    );
    dir
}

pub fn run(args: &[&str]) -> Output {
    let out = bin().args(args).output().expect("run dysample-demo");
    out
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn json(o: &Output) -> serde_json::Value {
    assert!(o.status.success(), "exit {:?}: {}", o.status, stderr(o));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}",
            String::from_utf8_lossy(&o.stdout)
        )
    })
}

/// Asserts a failed run with exactly one line on stderr containing every `needle`.
pub fn one_line_error(o: &Output, needles: &[&str]) {
    let e = stderr(o);
    assert_eq!(
        o.status.code(),
        Some(1),
        "expected exit 1, got {:?}: {e}",
        o.status
    );
    let lines: Vec<&str> = e.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one line, got: {e}");
    assert!(lines[0].starts_with("error: "), "{e}");
    for n in needles {
        assert!(lines[0].contains(n), "'{n}' not in: {e}");
    }
}

/// RGB pixels of a PNG.
pub fn png(path: &Path) -> (u32, u32, Vec<u8>) {
    let img = image::open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .into_rgb8();
    (img.width(), img.height(), img.into_raw())
}

/// builtin://'s source frames (tools/demo/make_builtin_clip.py: --start 100 --frames 56).
const BUILTIN_VTEST: std::ops::Range<u64> = 100..156;

/// The first `n` calibration images not taken from builtin://'s frames, copied into `dir`.
fn calibration_images(dir: &Path, n: usize) -> PathBuf {
    let set = model("person-seg").join("../calib/person-seg");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(set.join("manifest.json")).unwrap()).unwrap();
    let data = dir.join("calib-data");
    std::fs::create_dir_all(&data).unwrap();
    let mut taken = 0;
    for s in manifest["samples"].as_array().unwrap() {
        let origin = s["origin"].as_str().unwrap();
        let in_clip = origin
            .split_once("vtest.avi#")
            .is_some_and(|(_, f)| BUILTIN_VTEST.contains(&f.parse::<u64>().unwrap()));
        if in_clip {
            continue;
        }
        let image = s["image"].as_str().unwrap();
        std::fs::copy(set.join(image), data.join(image)).unwrap();
        taken += 1;
        if taken == n {
            break;
        }
    }
    assert_eq!(taken, n, "{}: too few images", set.display());
    data
}

/// person-seg calibrated by dysample-calibrate's library (`--target cpu`, percentile) on 6
/// images of models/calib/person-seg outside builtin://'s frames: `dir/calib/model_int8.onnx`.
pub fn calibrated_person_seg(dir: &Path) -> PathBuf {
    let out = dir.join("calib");
    let m = model("person-seg");
    let data = calibration_images(dir, 6);
    let o = Options {
        model: m,
        model_json: None,
        input_spec: None,
        data: data.to_str().unwrap().into(),
        samples: None,
        method: Method::parse("percentile").unwrap(),
        symmetric: false,
        targets: vec![Target::Cpu],
        out: out.clone(),
        run: RunOptions {
            threads: 0,
            ort_lib: None,
            progress: false,
        },
        exclude: Default::default(),
        float_dysample: false,
        weight_range: WeightRange::parse("reduced").unwrap(),
        fusion: true,
        trt_version: dysample_calibrate::trt_cache::DEFAULT_VERSION,
        report: None,
    };
    pipeline::run(&o).expect("calibrate");
    out.join(CPU_MODEL)
}
