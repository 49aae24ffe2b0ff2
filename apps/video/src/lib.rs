//! The video pipeline of the DySample demo apps (`dysample-demo segment|depth`).
//!
//! - [`source`]: the [`FrameSource`](source::FrameSource) trait and its implementations:
//!   v4l2 cameras (feature `v4l2`), MJPEG AVI, Y4M, images and image directories, anything else
//!   through `ffmpeg`, and the `builtin://` clip; [`source::Reconnecting`] reopens a live source
//!   that went away, with backoff.
//! - [`sink`]: PNG, PNG directory, MJPEG AVI and Y4M writers, and the `display://0` window
//!   ([`window`], feature `window`).
//! - [`convert`]: YUYV, Y'CbCr and JPEG to RGB; [`preprocess`]: resize (fast_image_resize) and
//!   normalisation into the model's tensor; [`render`]: overlays, masks, background blur and
//!   replacement, colormaps and a legend; [`pointcloud`]: back-projection to PLY.
//! - [`queue`]: the bounded latest-frame-wins queue between threads, with drop counting;
//!   [`stats`]: per-stage timing (one-line status, p50/p99 table).
//!
//! Every buffer is allocated once for a given frame size; see `tests/no_alloc.rs`.

pub mod avi;
pub mod convert;
mod error;
pub mod frame;
pub mod pointcloud;
pub mod preprocess;
pub mod queue;
pub mod render;
pub mod sink;
pub mod source;
pub mod stats;
pub mod uri;
#[cfg(all(feature = "v4l2", target_os = "linux"))]
pub mod v4l2;
#[cfg(feature = "window")]
pub mod window;
pub mod y4m;

pub use error::{Result, VideoError};
pub use frame::Frame;

/// The `builtin://` clip: 56 frames of OpenCV's `vtest.avi` (pedestrians), 640x480 MJPEG, made
/// by `tools/demo/make_builtin_clip.py`.
pub static BUILTIN_CLIP: &[u8] = include_bytes!("../assets/builtin.avi");

/// Largest frame side any source accepts (bounds every allocation made from a header).
pub const MAX_SIDE: usize = 8192;
