//! Shared helpers of the demo's end-to-end tests.
#![allow(dead_code)]

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
