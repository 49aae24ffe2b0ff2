//! Memory layouts and the 4-D shape of a feature map.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Order of the four axes in memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// `[batch, channels, height, width]`, PyTorch's and ONNX's default.
    #[default]
    Nchw,
    /// `[batch, height, width, channels]`; the fast layout, since one sample point's taps are contiguous.
    Nhwc,
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Layout::Nchw => "nchw",
            Layout::Nhwc => "nhwc",
        })
    }
}

impl FromStr for Layout {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "nchw" => Ok(Layout::Nchw),
            "nhwc" => Ok(Layout::Nhwc),
            other => Err(Error::Other(format!(
                "layout must be 'nchw' or 'nhwc', got '{other}'"
            ))),
        }
    }
}

/// Logical shape of a feature map, independent of layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Shape {
    pub batch: usize,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
}

impl Shape {
    pub fn new(batch: usize, channels: usize, height: usize, width: usize) -> Self {
        Self {
            batch,
            channels,
            height,
            width,
        }
    }

    /// Interprets four dimensions given in `layout` order.
    pub fn from_dims(dims: [usize; 4], layout: Layout) -> Self {
        match layout {
            Layout::Nchw => Self::new(dims[0], dims[1], dims[2], dims[3]),
            Layout::Nhwc => Self::new(dims[0], dims[3], dims[1], dims[2]),
        }
    }

    /// The four dimensions in `layout` order.
    pub fn dims(&self, layout: Layout) -> [usize; 4] {
        match layout {
            Layout::Nchw => [self.batch, self.channels, self.height, self.width],
            Layout::Nhwc => [self.batch, self.height, self.width, self.channels],
        }
    }

    /// Number of elements, or `None` on overflow.
    pub fn checked_len(&self) -> Option<usize> {
        self.batch
            .checked_mul(self.channels)?
            .checked_mul(self.height)?
            .checked_mul(self.width)
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.batch * self.channels * self.height * self.width
    }

    /// True when any dimension is zero.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The shape after upsampling by `scale`.
    pub fn upsampled(&self, scale: usize) -> Self {
        Self::new(
            self.batch,
            self.channels,
            self.height * scale,
            self.width * scale,
        )
    }

    /// Strides (in elements) of batch, channel, row and column for `layout`.
    pub fn strides(&self, layout: Layout) -> [usize; 4] {
        let (c, h, w) = (self.channels, self.height, self.width);
        match layout {
            Layout::Nchw => [c * h * w, h * w, w, 1],
            Layout::Nhwc => [h * w * c, 1, w * c, c],
        }
    }

    /// Flat index of element `(b, c, y, x)` in `layout`.
    #[inline]
    pub fn index(&self, layout: Layout, b: usize, c: usize, y: usize, x: usize) -> usize {
        match layout {
            Layout::Nchw => ((b * self.channels + c) * self.height + y) * self.width + x,
            Layout::Nhwc => ((b * self.height + y) * self.width + x) * self.channels + c,
        }
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[B={} C={} H={} W={}]",
            self.batch, self.channels, self.height, self.width
        )
    }
}
