//! Helpers shared by the conformance tests.
#![allow(dead_code)]

use dysample::{DySampleConfig, Layout, Style};
use safetensors::SafeTensors;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// One golden case written by tools/make_fixtures.py.
pub struct Golden {
    pub name: String,
    pub path: PathBuf,
    pub cfg: DySampleConfig,
    pub layout: Layout,
    pub prefix: String,
    pub dims: [usize; 4],
    pub input: Vec<f32>,
    pub output: Vec<f32>,
}

fn f32s(st: &SafeTensors<'_>, name: &str) -> (Vec<usize>, Vec<f32>) {
    let t = st
        .tensor(name)
        .unwrap_or_else(|_| panic!("fixture lacks '{name}'"));
    let v = t
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    (t.shape().to_vec(), v)
}

pub fn load_golden(path: &Path) -> Golden {
    let bytes = std::fs::read(path).unwrap();
    let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
    let m: HashMap<String, String> = meta.metadata().clone().expect("fixture metadata");
    let get = |k: &str| m.get(k).unwrap_or_else(|| panic!("metadata '{k}'")).clone();
    let num = |k: &str| get(k).parse::<usize>().unwrap();
    let style: Style = get("style").parse().unwrap();
    let cfg = DySampleConfig::new(
        num("channels"),
        num("scale"),
        style,
        num("groups"),
        get("dyscope") == "true",
    )
    .unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let (ishape, input) = f32s(&st, "input");
    let (_, output) = f32s(&st, "output");
    Golden {
        name: path.file_stem().unwrap().to_string_lossy().into_owned(),
        path: path.to_path_buf(),
        cfg,
        layout: get("layout").parse().unwrap(),
        prefix: get("prefix"),
        dims: [ishape[0], ishape[1], ishape[2], ishape[3]],
        input,
        output,
    }
}

pub fn golden_cases() -> Vec<Golden> {
    let dir = fixtures().join("golden");
    let names: Vec<String> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    names
        .iter()
        .map(|n| load_golden(&dir.join(format!("{n}.safetensors"))))
        .collect()
}

/// The acceptance criterion: max|y − ref| ≤ rel · max|ref|.
pub fn check_close(actual: &[f32], expected: &[f32], rel: f32) -> Result<(), String> {
    if actual.len() != expected.len() {
        return Err(format!("length {} vs {}", actual.len(), expected.len()));
    }
    let scale = expected
        .iter()
        .fold(0.0f32, |m, v| m.max(v.abs()))
        .max(f32::MIN_POSITIVE);
    let (mut worst, mut at) = (0.0f32, 0);
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        let d = (a - e).abs();
        if d > worst || d.is_nan() {
            worst = if d.is_nan() { f32::INFINITY } else { d };
            at = i;
        }
    }
    if worst <= rel * scale {
        Ok(())
    } else {
        Err(format!(
            "max |diff| = {worst:e} at {at} (got {}, want {}), limit {:e}",
            actual[at],
            expected[at],
            rel * scale
        ))
    }
}

pub fn read_npy(path: &Path) -> ndarray::ArrayD<f32> {
    ndarray_npy::read_npy(path).unwrap()
}
