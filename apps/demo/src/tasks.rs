//! What happens to the network's output: segmentation masks and depth maps, drawn in the
//! chosen visualization.

use crate::model::Model;
use dysample_video::pointcloud::{back_project, write_ply, Intrinsics};
use dysample_video::preprocess::{resize_once, Resizer};
use dysample_video::render::{
    blend_mask, colorize_mask, composite_over, draw_legend, normalize_robust_to_u8, prob_to_u8,
    side_by_side, Blur, Colormap,
};
use dysample_video::source::FrameSource;
use dysample_video::{Frame, Result, VideoError};
use std::path::PathBuf;

/// Segmentation views, in the order `v` cycles them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SegView {
    Overlay,
    Mask,
    Composite,
}

impl SegView {
    pub const ALL: [SegView; 3] = [SegView::Overlay, SegView::Mask, SegView::Composite];
    /// `overlay`, `mask`, `composite`, or jetson-inference's `overlay,mask` (= composite).
    pub fn parse(s: &str) -> std::result::Result<Self, String> {
        let mut parts: Vec<&str> = s
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .collect();
        parts.sort_unstable();
        parts.dedup();
        match parts.as_slice() {
            ["overlay"] => Ok(SegView::Overlay),
            ["mask"] => Ok(SegView::Mask),
            ["composite"] | ["mask", "overlay"] => Ok(SegView::Composite),
            _ => Err(format!(
                "--visualize {s}: choose overlay, mask or composite (overlay,mask)"
            )),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            SegView::Overlay => "overlay",
            SegView::Mask => "mask",
            SegView::Composite => "composite",
        }
    }
}

/// Depth views, in the order `v` cycles them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DepthView {
    /// Input and depth side by side.
    Composite,
    Depth,
}

impl DepthView {
    pub const ALL: [DepthView; 2] = [DepthView::Composite, DepthView::Depth];
    /// `composite` (= jetson-inference's `input,depth`) or `depth`.
    pub fn parse(s: &str) -> std::result::Result<Self, String> {
        let mut parts: Vec<&str> = s
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .collect();
        parts.sort_unstable();
        parts.dedup();
        match parts.as_slice() {
            ["composite"] | ["depth", "input"] => Ok(DepthView::Composite),
            ["depth"] => Ok(DepthView::Depth),
            _ => Err(format!(
                "--visualize {s}: choose composite (input,depth) or depth"
            )),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            DepthView::Composite => "composite",
            DepthView::Depth => "depth",
        }
    }
}

/// `--background`.
#[derive(Clone, Debug, PartialEq)]
pub enum Background {
    None,
    Blur,
    Replace(PathBuf),
}

impl Background {
    pub fn parse(s: &str) -> std::result::Result<Self, String> {
        if s == "blur" {
            Ok(Background::Blur)
        } else if let Some(p) = s.strip_prefix("replace:") {
            if p.is_empty() {
                return Err("--background replace:IMAGE needs an image path".into());
            }
            Ok(Background::Replace(p.into()))
        } else if s == "none" {
            Ok(Background::None)
        } else {
            Err(format!(
                "--background {s}: choose blur, replace:IMAGE or none"
            ))
        }
    }
}

/// Per-task output handling.
pub trait TaskRenderer: Send {
    /// Turns the network output (`dims`, values) into this task's maps at the frame's size.
    fn postprocess(&mut self, out: &[f32], dims: &[usize], frame: &Frame) -> Result<()>;
    /// Draws view number `view` (counting from the chosen one, cycling) of the last
    /// postprocessed frame into `out`.
    fn render(&mut self, frame: &Frame, view: usize, out: &mut Frame) -> Result<()>;
    fn view_name(&self, view: usize) -> &'static str;
    /// A per-frame figure for the summary (segmentation: person coverage; depth: none).
    fn frame_metric(&self) -> Option<f64> {
        None
    }
    /// Called once at the end with the last frame's model-input RGB (`rgb_w x rgb_h`), for `--pointcloud`.
    fn finish(
        &mut self,
        _model_rgb: &[u8],
        _rgb_w: usize,
        _rgb_h: usize,
    ) -> Result<Option<String>> {
        Ok(None)
    }
}

fn check_dims(dims: &[usize], len: usize, h: usize, w: usize) -> Result<(usize, usize)> {
    let (oh, ow) = match dims {
        [1, 1, oh, ow] | [1, oh, ow] | [oh, ow] => (*oh, *ow),
        _ => {
            return Err(VideoError::Usage(format!(
                "model output has shape {dims:?}; expected [1, 1, H, W]"
            )))
        }
    };
    if oh * ow != len || oh == 0 || ow == 0 {
        return Err(VideoError::Usage(format!(
            "model output shape {dims:?} does not match its {len} values"
        )));
    }
    if (h, w) != (0, 0) && (h, w) != (oh, ow) {
        tracing::debug!("model.json says output {w}x{h}, the model gives {ow}x{oh}");
    }
    Ok((oh, ow))
}

/// Person segmentation.
#[derive(Debug)]
pub struct Segmenter {
    fg: [u8; 3],
    bg: [u8; 3],
    legend: Vec<(String, [u8; 3])>,
    alpha: u8,
    threshold: f32,
    background: Background,
    initial: usize,
    out_hw: (usize, usize),
    small: Vec<u8>,
    mask: Vec<u8>,
    resizer: Resizer,
    blur: Blur,
    bg_image: Option<(Frame, Frame)>,
    back: Vec<u8>,
    main: Frame,
    mask_rgb: Frame,
    coverage: f64,
}

impl Segmenter {
    pub fn new(model: &Model, view: SegView, alpha: u8, background: Background) -> Result<Self> {
        let (fg, bg, legend) = model.seg_colors();
        let bg_image = match &background {
            Background::Replace(p) => {
                // The same bounded, size-limited reader as an image input.
                let mut src = dysample_video::source::ImageSource::open(p)
                    .map_err(|e| VideoError::Usage(format!("--background replace:{}", e)))?;
                let mut f = Frame::new();
                src.decode(&mut f)?;
                Some((f, Frame::new()))
            }
            _ => None,
        };
        Ok(Self {
            fg,
            bg,
            legend,
            alpha,
            threshold: model.json.threshold.unwrap_or(0.5),
            background,
            initial: SegView::ALL.iter().position(|&v| v == view).unwrap_or(0),
            out_hw: (model.json.output.height, model.json.output.width),
            small: Vec::new(),
            mask: Vec::new(),
            resizer: Resizer::bilinear(),
            blur: Blur::new(16),
            bg_image,
            back: Vec::new(),
            main: Frame::new(),
            mask_rgb: Frame::new(),
            coverage: 0.0,
        })
    }
}

impl TaskRenderer for Segmenter {
    fn postprocess(&mut self, out: &[f32], dims: &[usize], frame: &Frame) -> Result<()> {
        let (oh, ow) = check_dims(dims, out.len(), self.out_hw.0, self.out_hw.1)?;
        prob_to_u8(out, &mut self.small);
        let t = (self.threshold * 255.0).round() as u8;
        self.coverage =
            self.small.iter().filter(|&&v| v > t).count() as f64 / self.small.len() as f64;
        self.resizer.resize(
            &self.small,
            ow,
            oh,
            &mut self.mask,
            frame.width,
            frame.height,
            1,
        )
    }

    fn render(&mut self, frame: &Frame, view: usize, out: &mut Frame) -> Result<()> {
        let view = SegView::ALL[(self.initial + view) % SegView::ALL.len()];
        let (w, h) = (frame.width, frame.height);
        // The main picture: the frame over its new background, or with the overlay.
        self.main.reshape(w, h);
        match &self.background {
            Background::None => blend_mask(
                &frame.data,
                &self.mask,
                self.fg,
                self.alpha,
                &mut self.main.data,
            ),
            Background::Blur => {
                self.blur.run(frame, &mut self.back)?;
                composite_over(&frame.data, &self.back, &self.mask, &mut self.main.data);
            }
            Background::Replace(_) => {
                let (src, scaled) = self.bg_image.as_mut().expect("loaded in new()");
                if (scaled.width, scaled.height) != (w, h) {
                    scaled.data = resize_once(&src.data, src.width, src.height, w, h)?;
                    (scaled.width, scaled.height) = (w, h);
                }
                composite_over(&frame.data, &scaled.data, &self.mask, &mut self.main.data);
            }
        }
        if view != SegView::Overlay {
            self.mask_rgb.reshape(w, h);
            colorize_mask(&self.mask, self.fg, self.bg, &mut self.mask_rgb.data);
        }
        match view {
            SegView::Overlay => out.copy_from(&self.main),
            SegView::Mask => out.copy_from(&self.mask_rgb),
            SegView::Composite => side_by_side(&self.main.data, &self.mask_rgb.data, w, h, out),
        }
        if self.background == Background::None || view != SegView::Overlay {
            let entries: [(&str, [u8; 3]); 4] = std::array::from_fn(|i| {
                self.legend
                    .get(i)
                    .map_or(("", [0; 3]), |(n, c)| (n.as_str(), *c))
            });
            draw_legend(out, &entries[..self.legend.len().min(4)]);
        }
        Ok(())
    }

    fn view_name(&self, view: usize) -> &'static str {
        SegView::ALL[(self.initial + view) % SegView::ALL.len()].name()
    }
    fn frame_metric(&self) -> Option<f64> {
        Some(self.coverage)
    }
}

/// `--pointcloud` settings.
#[derive(Clone, Debug)]
pub struct PointCloud {
    pub path: PathBuf,
    /// Intrinsics for the input frame size (scaled to the model's).
    pub intrinsics: Option<Intrinsics>,
    pub fov: f64,
    pub near: f64,
    pub far: f64,
}

/// Monocular depth.
#[derive(Debug)]
pub struct DepthMapper {
    cmap: Colormap,
    initial: usize,
    out_hw: (usize, usize),
    raw: Vec<f32>,
    scratch: Vec<f32>,
    raw_hw: (usize, usize),
    small: Vec<u8>,
    full: Vec<u8>,
    color: Frame,
    resizer: Resizer,
    cloud: Option<PointCloud>,
    frame_hw: (usize, usize),
    range: (f32, f32),
}

impl DepthMapper {
    pub fn new(model: &Model, view: DepthView, cmap: Colormap, cloud: Option<PointCloud>) -> Self {
        Self {
            cmap,
            initial: DepthView::ALL.iter().position(|&v| v == view).unwrap_or(0),
            out_hw: (model.json.output.height, model.json.output.width),
            raw: Vec::new(),
            scratch: Vec::new(),
            raw_hw: (0, 0),
            small: Vec::new(),
            full: Vec::new(),
            color: Frame::new(),
            resizer: Resizer::bilinear(),
            cloud,
            frame_hw: (0, 0),
            range: (0.0, 0.0),
        }
    }
}

impl TaskRenderer for DepthMapper {
    fn postprocess(&mut self, out: &[f32], dims: &[usize], frame: &Frame) -> Result<()> {
        let (oh, ow) = check_dims(dims, out.len(), self.out_hw.0, self.out_hw.1)?;
        self.range = normalize_robust_to_u8(out, 0.01, &mut self.scratch, &mut self.small);
        if self.cloud.is_some() {
            self.raw.clear();
            self.raw.extend_from_slice(out);
            self.raw_hw = (oh, ow);
        }
        self.frame_hw = (frame.height, frame.width);
        self.resizer.resize(
            &self.small,
            ow,
            oh,
            &mut self.full,
            frame.width,
            frame.height,
            1,
        )?;
        self.color.reshape(frame.width, frame.height);
        self.cmap.apply(&self.full, &mut self.color.data);
        Ok(())
    }

    fn render(&mut self, frame: &Frame, view: usize, out: &mut Frame) -> Result<()> {
        match DepthView::ALL[(self.initial + view) % DepthView::ALL.len()] {
            DepthView::Composite => side_by_side(
                &frame.data,
                &self.color.data,
                frame.width,
                frame.height,
                out,
            ),
            DepthView::Depth => out.copy_from(&self.color),
        }
        Ok(())
    }

    fn view_name(&self, view: usize) -> &'static str {
        DepthView::ALL[(self.initial + view) % DepthView::ALL.len()].name()
    }

    fn finish(&mut self, model_rgb: &[u8], rgb_w: usize, rgb_h: usize) -> Result<Option<String>> {
        let Some(pc) = &self.cloud else {
            return Ok(None);
        };
        let (oh, ow) = self.raw_hw;
        if oh == 0 {
            return Ok(Some(format!(
                "{}: no frame, no point cloud",
                pc.path.display()
            )));
        }
        let (fh, fw) = self.frame_hw;
        let k = match pc.intrinsics {
            Some(k) => k,
            None => Intrinsics::from_fov(fw, fh, pc.fov)?,
        }
        .scaled((fw, fh), (ow, oh));
        // Colours: the model-resolution input (same size as the output when they agree).
        let mut rgb = Vec::new();
        Resizer::bilinear().resize(model_rgb, rgb_w, rgb_h, &mut rgb, ow, oh, 3)?;
        let pts = back_project(&self.raw, &rgb, ow, oh, &k, pc.near, pc.far)?;
        write_ply(&pc.path, &pts)?;
        Ok(Some(format!(
            "wrote {} points to {} (fx {:.1} fy {:.1} cx {:.1} cy {:.1} at {ow}x{oh}, depth {}..{})",
            pts.len(),
            pc.path.display(),
            k.fx,
            k.fy,
            k.cx,
            k.cy,
            pc.near,
            pc.far
        )))
    }
}
