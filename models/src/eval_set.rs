//! Eval sets: `models/eval/<set>/manifest.json` with images and targets (SPEC.md).

use crate::error::{parse_json, Error, Result};
use crate::model::Task;
use crate::npy;
use crate::preprocess;
use image::RgbImage;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// The only manifest schema this crate reads.
pub const MANIFEST_SCHEMA: u32 = 1;

/// Where a set's targets come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SetKind {
    /// Segmentation, exact masks of pasted cut-outs.
    Composite,
    /// Segmentation, a teacher's masks (the metrics are agreement with it).
    Teacher,
    /// Depth, rendered.
    Synthetic,
    /// Depth, Middlebury disparity.
    Middlebury,
}

impl SetKind {
    fn task(self) -> Task {
        match self {
            SetKind::Composite | SetKind::Teacher => Task::Segmentation,
            SetKind::Synthetic | SetKind::Middlebury => Task::Depth,
        }
    }
}

/// What a depth target holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    /// Metric depth: the target inverse depth is `1/depth`.
    Depth,
    /// Disparity: used as the target inverse depth directly.
    Disparity,
}

/// One entry of `samples`. Keys beyond `id`, `image` and `target` (provenance) are kept in
/// [`SampleEntry::extra`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SampleEntry {
    pub id: String,
    /// 8-bit RGB PNG (or JPEG), relative to the set folder.
    pub image: String,
    /// Segmentation: 8-bit grey PNG; depth: float32 `.npy` of shape (H, W).
    pub target: String,
    /// Other keys, unread.
    #[serde(flatten)]
    pub extra: std::collections::BTreeMap<String, serde_json::Value>,
}

/// `manifest.json`. Keys beyond SPEC.md's (provenance such as a list of held-out sources) are
/// kept in [`Manifest::extra`]; a missing or mistyped SPEC key is still an error.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub schema: u32,
    pub name: String,
    pub task: Task,
    pub kind: SetKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
    /// Depth sets only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_kind: Option<TargetKind>,
    pub samples: Vec<SampleEntry>,
    /// Other top-level keys, unread.
    #[serde(flatten)]
    pub extra: std::collections::BTreeMap<String, serde_json::Value>,
}

impl Manifest {
    /// Checks what serde cannot (schema, task/kind agreement, unique ids).
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.schema != MANIFEST_SCHEMA {
            return Err(format!(
                "field 'schema': {} is not supported (this build reads schema {MANIFEST_SCHEMA})",
                self.schema
            ));
        }
        if self.name.trim().is_empty() {
            return Err("field 'name': must not be empty".into());
        }
        if self.kind.task() != self.task {
            return Err(format!(
                "field 'kind': {:?} is not a {} set kind",
                self.kind, self.task
            ));
        }
        match (self.task, self.target_kind) {
            (Task::Depth, None) => {
                return Err(
                    "field 'target_kind': required for a depth set (\"depth\" or \"disparity\")"
                        .into(),
                )
            }
            (Task::Segmentation, Some(_)) => {
                return Err("field 'target_kind': only for depth sets".into())
            }
            _ => {}
        }
        if self.samples.is_empty() {
            return Err("field 'samples': the set is empty".into());
        }
        let mut ids = HashSet::new();
        for (i, s) in self.samples.iter().enumerate() {
            if !ids.insert(s.id.as_str()) {
                return Err(format!("field 'samples[{i}].id': '{}' appears twice", s.id));
            }
            for (k, p) in [("image", &s.image), ("target", &s.target)] {
                if p.is_empty() || Path::new(p).is_absolute() {
                    return Err(format!(
                        "field 'samples[{i}].{k}': must be a path relative to the set folder"
                    ));
                }
            }
        }
        Ok(())
    }
}

/// A sample's ground truth.
#[derive(Clone, Debug, PartialEq)]
pub enum Target {
    /// Person mask (`value ≥ 128`), row-major.
    Mask {
        height: usize,
        width: usize,
        mask: Vec<bool>,
    },
    /// Depth or disparity (manifest's `target_kind`), row-major; invalid = 0 or non-finite.
    Depth {
        height: usize,
        width: usize,
        values: Vec<f32>,
    },
}

impl Target {
    pub fn size(&self) -> (usize, usize) {
        match self {
            Target::Mask { height, width, .. } | Target::Depth { height, width, .. } => {
                (*height, *width)
            }
        }
    }
}

/// One loaded sample.
#[derive(Clone, Debug)]
pub struct Sample {
    pub id: String,
    pub image_path: PathBuf,
    pub target_path: PathBuf,
    pub image: RgbImage,
    pub target: Target,
}

/// An eval set folder, checked on opening.
#[derive(Clone, Debug)]
pub struct EvalSet {
    pub dir: PathBuf,
    pub manifest_path: PathBuf,
    pub manifest: Manifest,
}

impl EvalSet {
    /// Opens `dir/manifest.json`, validates it, and checks every sample without decoding pixels:
    /// the files exist, image headers are readable, each target has its image's size (PNG
    /// header, or `.npy` header: float32, shape (H, W)).
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let (dir, manifest_path) = if dir.is_dir() {
            (dir.to_path_buf(), dir.join("manifest.json"))
        } else if dir.file_name().is_some_and(|n| n == "manifest.json") {
            (
                dir.parent().unwrap_or(Path::new(".")).to_path_buf(),
                dir.to_path_buf(),
            )
        } else {
            return Err(Error::file(dir, "no such eval set folder"));
        };
        if !manifest_path.is_file() {
            return Err(Error::file(
                &dir,
                "no manifest.json in this folder (an eval set holds manifest.json, see models/SPEC.md)",
            ));
        }
        let text = std::fs::read_to_string(&manifest_path)
            .map_err(|e| Error::file(&manifest_path, format_args!("cannot read: {e}")))?;
        let manifest: Manifest = parse_json(&manifest_path, &text)?;
        manifest
            .validate()
            .map_err(|e| Error::file(&manifest_path, e))?;
        let set = Self {
            dir,
            manifest_path,
            manifest,
        };
        for i in 0..set.len() {
            set.check_sample(i)?;
        }
        Ok(set)
    }

    pub fn name(&self) -> &str {
        &self.manifest.name
    }

    pub fn task(&self) -> Task {
        self.manifest.task
    }

    pub fn len(&self) -> usize {
        self.manifest.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.manifest.samples.is_empty()
    }

    fn paths(&self, i: usize) -> (PathBuf, PathBuf) {
        let s = &self.manifest.samples[i];
        (self.dir.join(&s.image), self.dir.join(&s.target))
    }

    fn check_sample(&self, i: usize) -> Result<()> {
        let s = &self.manifest.samples[i];
        let (img, tgt) = self.paths(i);
        for (what, p) in [("image", &img), ("target", &tgt)] {
            if !p.is_file() {
                return Err(Error::file(
                    &self.manifest_path,
                    format_args!("sample '{}': {what} {} does not exist", s.id, p.display()),
                ));
            }
        }
        let (w, h) = preprocess::image_size(&img)?;
        let (th, tw) = match self.manifest.task {
            Task::Segmentation => {
                let (tw, th) = preprocess::image_size(&tgt)?;
                (th, tw)
            }
            Task::Depth => {
                let hd = npy::read_header(&tgt)?;
                if hd.descr != "<f4" && hd.descr != "=f4" {
                    return Err(Error::file(
                        &tgt,
                        format_args!(
                            "dtype is {}, a depth target must be float32",
                            hd.dtype_name()
                        ),
                    ));
                }
                match hd.shape[..] {
                    [th, tw] => (th, tw),
                    _ => {
                        return Err(Error::file(
                            &tgt,
                            format_args!(
                                "shape is {}, a depth target must be (H, W) = ({h}, {w}) like its image",
                                hd.shape_str()
                            ),
                        ))
                    }
                }
            }
        };
        if (th, tw) != (h, w) {
            return Err(Error::file(
                &tgt,
                format_args!(
                    "is {tw}x{th} (WxH), but its image {} is {w}x{h}",
                    img.display()
                ),
            ));
        }
        Ok(())
    }

    /// Decodes sample `i` (image and target), checking sizes and formats again.
    pub fn load(&self, i: usize) -> Result<Sample> {
        let entry = &self.manifest.samples[i];
        let (image_path, target_path) = self.paths(i);
        let image = preprocess::load_rgb(&image_path)?;
        let (w, h) = (image.width() as usize, image.height() as usize);
        let target = match self.manifest.task {
            Task::Segmentation => {
                let g = preprocess::load_grey8(&target_path)?;
                Target::Mask {
                    height: g.height() as usize,
                    width: g.width() as usize,
                    mask: g.as_raw().iter().map(|&v| v >= 128).collect(),
                }
            }
            Task::Depth => {
                let a = npy::read_f32(&target_path)?;
                match a.shape[..] {
                    [th, tw] => Target::Depth {
                        height: th,
                        width: tw,
                        values: a.data,
                    },
                    _ => {
                        return Err(Error::file(
                            &target_path,
                            format_args!(
                                "shape is {}, a depth target must be (H, W) = ({h}, {w}) like its image",
                                npy::shape_str(&a.shape)
                            ),
                        ))
                    }
                }
            }
        };
        if target.size() != (h, w) {
            let (th, tw) = target.size();
            return Err(Error::file(
                &target_path,
                format_args!(
                    "is {tw}x{th} (WxH), but its image {} is {w}x{h}",
                    image_path.display()
                ),
            ));
        }
        Ok(Sample {
            id: entry.id.clone(),
            image_path,
            target_path,
            image,
            target,
        })
    }

    /// The depth target kind (depth sets).
    pub fn target_kind(&self) -> Option<TargetKind> {
        self.manifest.target_kind
    }
}
