//! The model folder: `model.json` (models/SPEC.md) and its ONNX files.

use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The parts of `model.json` the demo uses.
#[derive(Clone, Debug, Deserialize)]
pub struct ModelJson {
    pub name: String,
    pub task: String,
    #[serde(default)]
    pub description: String,
    pub files: Files,
    pub input: Input,
    pub output: Output,
    #[serde(default)]
    pub threshold: Option<f32>,
    #[serde(default)]
    pub classes: Vec<Class>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Files {
    pub onnx: String,
    #[serde(default)]
    pub onnx_lowered: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Input {
    #[serde(default = "nchw")]
    pub layout: String,
    pub height: usize,
    pub width: usize,
    #[serde(default = "rgb")]
    pub color: String,
    #[serde(default = "stretch")]
    pub resize: String,
    #[serde(default = "zeros")]
    pub mean: [f32; 3],
    #[serde(default = "ones")]
    pub std: [f32; 3],
}

fn nchw() -> String {
    "NCHW".into()
}
fn rgb() -> String {
    "RGB".into()
}
fn stretch() -> String {
    "stretch".into()
}
fn zeros() -> [f32; 3] {
    [0.0; 3]
}
fn ones() -> [f32; 3] {
    [1.0; 3]
}

#[derive(Clone, Debug, Deserialize)]
pub struct Output {
    #[serde(default)]
    pub height: usize,
    #[serde(default)]
    pub width: usize,
    #[serde(default = "one")]
    pub channels: usize,
    pub kind: String,
}

fn one() -> usize {
    1
}

#[derive(Clone, Debug, Deserialize)]
pub struct Class {
    pub name: String,
    pub color: [u8; 3],
}

/// What the demo runs: segmentation or depth.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Task {
    Segmentation,
    Depth,
}

impl Task {
    pub fn name(self) -> &'static str {
        match self {
            Task::Segmentation => "segmentation",
            Task::Depth => "depth",
        }
    }
}

/// An opened model folder.
#[derive(Clone, Debug)]
pub struct Model {
    pub dir: PathBuf,
    pub json: ModelJson,
    pub task: Task,
}

impl Model {
    /// Reads and checks `DIR/model.json`; errors are one line naming the file.
    pub fn open(dir: &Path) -> Result<Self, String> {
        if !dir.is_dir() {
            return Err(format!("model directory {} does not exist (give --model DIR with a model.json)", dir.display()));
        }
        let path = dir.join("model.json");
        let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
        if text.len() > 1 << 22 {
            return Err(format!("{}: larger than 4 MiB", path.display()));
        }
        let json: ModelJson = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let bad = |d: String| format!("{}: {d}", path.display());
        let task = match json.task.as_str() {
            "segmentation" => Task::Segmentation,
            "depth" => Task::Depth,
            other => return Err(bad(format!("task \"{other}\" is not \"segmentation\" or \"depth\""))),
        };
        let i = &json.input;
        if i.layout != "NCHW" {
            return Err(bad(format!("input.layout \"{}\": only NCHW is supported", i.layout)));
        }
        if !(1..=4096).contains(&i.height) || !(1..=4096).contains(&i.width) {
            return Err(bad(format!("input size {}x{} out of range", i.width, i.height)));
        }
        if i.color != "RGB" && i.color != "BGR" {
            return Err(bad(format!("input.color \"{}\" is not \"RGB\" or \"BGR\"", i.color)));
        }
        if i.resize != "stretch" {
            return Err(bad(format!("input.resize \"{}\": only \"stretch\" is supported", i.resize)));
        }
        if i.std.iter().any(|s| !(s.is_finite() && *s != 0.0)) || i.mean.iter().any(|m| !m.is_finite()) {
            return Err(bad("input.std must be finite and non-zero, input.mean finite".into()));
        }
        match task {
            Task::Segmentation => {
                if json.output.kind != "probability" || json.output.channels != 1 {
                    return Err(bad(format!(
                        "segmentation output must be kind \"probability\" with 1 channel, got \"{}\" with {}",
                        json.output.kind, json.output.channels
                    )));
                }
                if let Some(t) = json.threshold {
                    if !(0.0..=1.0).contains(&t) {
                        return Err(bad(format!("threshold {t} is not in [0, 1]")));
                    }
                }
            }
            Task::Depth => {
                if json.output.channels != 1 {
                    return Err(bad(format!("depth output must have 1 channel, got {}", json.output.channels)));
                }
            }
        }
        let onnx = dir.join(&json.files.onnx);
        if !onnx.is_file() {
            return Err(bad(format!("files.onnx: {} does not exist", onnx.display())));
        }
        Ok(Self { dir: dir.to_path_buf(), json, task })
    }

    /// The ONNX file to run: the custom-op form, or the lowered (standard-op) form.
    pub fn onnx(&self, lowered: bool) -> Result<PathBuf, String> {
        if !lowered {
            return Ok(self.dir.join(&self.json.files.onnx));
        }
        let f = self.json.files.onnx_lowered.as_ref().ok_or_else(|| {
            format!("{}: has no files.onnx_lowered (make one with `dysample onnx lower`)", self.dir.join("model.json").display())
        })?;
        let p = self.dir.join(f);
        if !p.is_file() {
            return Err(format!("{}: files.onnx_lowered {} does not exist", self.dir.join("model.json").display(), p.display()));
        }
        Ok(p)
    }

    /// (name, colour) of the person class and the background class.
    pub fn seg_colors(&self) -> ([u8; 3], [u8; 3], Vec<(String, [u8; 3])>) {
        let classes = &self.json.classes;
        let fg = classes.get(1).map_or([255, 64, 160], |c| c.color);
        let bg = classes.first().map_or([0, 0, 0], |c| c.color);
        let legend = if classes.is_empty() {
            vec![("background".into(), bg), ("person".into(), fg)]
        } else {
            classes.iter().map(|c| (c.name.clone(), c.color)).collect()
        };
        (fg, bg, legend)
    }
}

/// Where `--model` defaults to: `$DYSAMPLE_MODELS/<name>`, `./models/<name>`, then
/// `models/<name>` above the executable (a checkout's `target/release/`).
pub fn default_model_dir(name: &str) -> PathBuf {
    if let Some(root) = std::env::var_os("DYSAMPLE_MODELS") {
        return PathBuf::from(root).join(name);
    }
    let local = PathBuf::from("models").join(name);
    if local.join("model.json").is_file() {
        return local;
    }
    if let Ok(exe) = std::env::current_exe() {
        for dir in exe.ancestors().skip(1) {
            let cand = dir.join("models").join(name);
            if cand.join("model.json").is_file() {
                return cand;
            }
        }
    }
    local
}
