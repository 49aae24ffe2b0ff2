//! The model folder, opened through `dysample-models` (`model.json` per models/SPEC.md).

use dysample_models::model::ColorOrder;
pub use dysample_models::{ModelDir, ModelJson, Task, Variant};
use std::path::{Path, PathBuf};

/// A legend entry: class name and colour.
pub type Legend = (String, [u8; 3]);

/// An opened model folder.
#[derive(Clone, Debug)]
pub struct Model {
    pub dir: PathBuf,
    pub json: ModelJson,
    pub task: Task,
    inner: ModelDir,
}

impl Model {
    /// Reads and checks `DIR/model.json` and the files it lists; errors are one line naming
    /// the file and field.
    pub fn open(dir: &Path) -> Result<Self, String> {
        let inner = ModelDir::open(dir).map_err(|e| e.to_string())?;
        Ok(Self {
            dir: inner.dir.clone(),
            json: inner.model.clone(),
            task: inner.model.task,
            inner,
        })
    }

    /// The ONNX file to run: the custom-op form, or the lowered (standard-op) form.
    pub fn onnx(&self, lowered: bool) -> Result<PathBuf, String> {
        self.inner
            .onnx_path(if lowered {
                Variant::Lowered
            } else {
                Variant::Custom
            })
            .map_err(|e| e.to_string())
    }

    /// Whether the tensor's channels are B, G, R.
    pub fn bgr(&self) -> bool {
        self.json.input.color == ColorOrder::Bgr
    }

    /// The person colour, the background colour and the legend entries.
    pub fn seg_colors(&self) -> ([u8; 3], [u8; 3], Vec<Legend>) {
        let classes = self.json.classes.as_deref().unwrap_or(&[]);
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
