//! Calibration data: an image directory or glob preprocessed as `model.json` says (or as flags
//! say), or `.npy` / `.npz` tensors already preprocessed. Samples are decoded one at a time, so
//! memory does not grow with their number.

use crate::error::{CalibError, Result};
use dysample_models::model::InputSpec;
use dysample_models::preprocess::{image_size, load_rgb, preprocess};
use std::path::{Path, PathBuf};

/// Largest image accepted (pixels), checked from the header before decoding.
pub const MAX_IMAGE_PIXELS: usize = 64 << 20;

/// One sample source.
#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    Image(PathBuf),
    Npy(PathBuf),
    /// An entry of an `.npz` archive.
    Npz(PathBuf, String),
}

impl Item {
    pub fn label(&self) -> String {
        match self {
            Item::Image(p) | Item::Npy(p) => p.display().to_string(),
            Item::Npz(p, e) => format!("{}:{e}", p.display()),
        }
    }
}

/// How images become tensors.
#[derive(Clone, Debug)]
pub struct Preprocess {
    pub spec: InputSpec,
    /// Images must already be `height × width` (flags without `model.json`); otherwise they
    /// are resized as `spec.resize` says.
    pub exact_size: bool,
}

/// The calibration set: the items, in sorted order, at most `--samples`.
#[derive(Clone, Debug)]
pub struct DataSet {
    pub items: Vec<Item>,
    pub source: String,
}

fn is_image(p: &Path) -> bool {
    matches!(
        p.extension()
            .and_then(|e| e.to_str())
            .map(|e| e.to_ascii_lowercase())
            .as_deref(),
        Some("png" | "jpg" | "jpeg")
    )
}

fn ext(p: &Path) -> Option<String> {
    p.extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase())
}

impl DataSet {
    /// `source`: a directory (its images, `.npy` and `.npz` files), a glob, or one file.
    pub fn open(source: &str, samples: Option<usize>) -> Result<Self> {
        let flag = "--data";
        let p = Path::new(source);
        let mut files: Vec<PathBuf> = if p.is_dir() {
            std::fs::read_dir(p)
                .map_err(|e| {
                    CalibError::msg(format!("{flag} {source}: cannot read the directory: {e}"))
                })?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.is_file())
                .collect()
        } else if p.is_file() {
            vec![p.to_path_buf()]
        } else if source.contains(['*', '?', '[']) {
            glob::glob(source)
                .map_err(|e| CalibError::msg(format!("{flag} {source}: bad glob pattern: {e}")))?
                .filter_map(|r| r.ok())
                .filter(|f| f.is_file())
                .collect()
        } else {
            return Err(CalibError::msg(format!(
                "{flag} {source}: no such file or directory"
            )));
        };
        files.sort();
        let mut items = Vec::new();
        for f in files {
            match ext(&f).as_deref() {
                _ if is_image(&f) => items.push(Item::Image(f)),
                Some("npy") => items.push(Item::Npy(f)),
                Some("npz") => {
                    for name in npz_entries(&f)? {
                        items.push(Item::Npz(f.clone(), name));
                    }
                }
                _ => {}
            }
        }
        if items.is_empty() {
            return Err(CalibError::msg(format!(
                "{flag} {source}: no calibration samples (PNG/JPEG images, .npy or .npz tensors) found"
            )));
        }
        if let Some(n) = samples {
            if n == 0 {
                return Err(CalibError::msg("--samples 0: need at least one sample"));
            }
            if n > items.len() {
                tracing::warn!(
                    requested = n,
                    available = items.len(),
                    "--samples is more than the set holds; using all"
                );
            }
            items.truncate(n);
        }
        Ok(Self {
            items,
            source: source.to_string(),
        })
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

fn npz_entries(path: &Path) -> Result<Vec<String>> {
    let f = std::fs::File::open(path)
        .map_err(|e| CalibError::msg(format!("{}: cannot open: {e}", path.display())))?;
    let z = zip::ZipArchive::new(f).map_err(|e| {
        CalibError::msg(format!(
            "{}: not a readable .npz archive: {e}",
            path.display()
        ))
    })?;
    let mut names: Vec<String> = z
        .file_names()
        .filter(|n| n.ends_with(".npy"))
        .map(String::from)
        .collect();
    names.sort();
    Ok(names)
}

/// Most bytes one tensor entry may hold (1 GiB).
const MAX_TENSOR_BYTES: u64 = 1 << 30;

/// Loads one sample as an NCHW f32 tensor of the expected `dims`.
pub fn load(item: &Item, pre: &Preprocess) -> Result<(Vec<f32>, [usize; 4])> {
    let spec = &pre.spec;
    let want = [1, 3, spec.height, spec.width];
    let check = |label: String,
                 shape: &[usize],
                 data: Vec<f32>|
     -> Result<(Vec<f32>, [usize; 4])> {
        let dims: Vec<usize> = if shape.len() == 3 {
            std::iter::once(1).chain(shape.iter().copied()).collect()
        } else {
            shape.to_vec()
        };
        if dims != want {
            return Err(CalibError::msg(format!(
                "{label}: tensor of shape {shape:?}, the model's input '{}' needs {want:?} (NCHW float32, preprocessed)",
                spec.name
            )));
        }
        if let Some(i) = data.iter().position(|v| !v.is_finite()) {
            return Err(CalibError::msg(format!(
                "{label}: value {i} is {} (not finite)",
                data[i]
            )));
        }
        Ok((data, want))
    };
    match item {
        Item::Image(p) => {
            let (w, h) = image_size(p)?;
            if w.saturating_mul(h) > MAX_IMAGE_PIXELS {
                return Err(CalibError::msg(format!(
                    "{}: {w}x{h} pixels is more than the limit of {MAX_IMAGE_PIXELS}",
                    p.display()
                )));
            }
            if pre.exact_size && (h, w) != (spec.height, spec.width) {
                return Err(CalibError::msg(format!(
                    "{}: image is {w}x{h}, the model's input is {}x{} (width x height; give a model.json to resize)",
                    p.display(),
                    spec.width,
                    spec.height
                )));
            }
            let img = load_rgb(p)?;
            let (x, dims) = preprocess(&img, spec);
            Ok((x, dims))
        }
        Item::Npy(p) => {
            let a = dysample::npy::read_f32(p).map_err(|e| {
                CalibError::msg(format!("{}: {}", p.display(), strip(&e.to_string(), p)))
            })?;
            check(p.display().to_string(), &a.dims, a.data)
        }
        Item::Npz(p, name) => {
            use std::io::Read;
            let label = item.label();
            let f = std::fs::File::open(p)
                .map_err(|e| CalibError::msg(format!("{}: cannot open: {e}", p.display())))?;
            let mut z = zip::ZipArchive::new(f).map_err(|e| {
                CalibError::msg(format!("{}: not a readable .npz archive: {e}", p.display()))
            })?;
            let mut entry = z
                .by_name(name)
                .map_err(|e| CalibError::msg(format!("{label}: {e}")))?;
            if entry.size() > MAX_TENSOR_BYTES {
                return Err(CalibError::msg(format!(
                    "{label}: {} bytes is more than the limit of {MAX_TENSOR_BYTES}",
                    entry.size()
                )));
            }
            let mut bytes = Vec::new();
            (&mut entry)
                .take(MAX_TENSOR_BYTES + 1)
                .read_to_end(&mut bytes)
                .map_err(|e| CalibError::msg(format!("{label}: cannot read: {e}")))?;
            let a = dysample::npy::parse(&bytes)
                .map_err(|e| CalibError::msg(format!("{label}: {e}")))?;
            check(label, &a.dims, a.data)
        }
    }
}

fn strip(msg: &str, p: &Path) -> String {
    let pre = format!("{}: ", p.display());
    msg.strip_prefix(&pre).unwrap_or(msg).to_string()
}
