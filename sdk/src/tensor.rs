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

    /// The shape after upsampling by `scale`, or `None` when a dimension overflows.
    pub fn checked_upsampled(&self, scale: usize) -> Option<Self> {
        Some(Self::new(
            self.batch,
            self.channels,
            self.height.checked_mul(scale)?,
            self.width.checked_mul(scale)?,
        ))
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

/// Checks that every value is finite; the error names `what`, how many values are NaN or
/// infinite and where the first one is. This is the SDK's non-finite policy for data read from
/// files (see the README): reject, never compute on NaN/Inf silently.
pub fn check_finite(what: &str, data: &[f32]) -> Result<()> {
    // Branch-free count first (vectorizes); the index only on failure.
    let count = data.iter().filter(|v| !v.is_finite()).count();
    if count == 0 {
        return Ok(());
    }
    let index = data.iter().position(|v| !v.is_finite()).unwrap_or(0);
    Err(Error::NonFinite {
        what: what.to_string(),
        count,
        index,
    })
}

/// Checks that every value fits float16 (|v| ≤ 65504) so a conversion cannot overflow to ±inf.
pub fn check_f16_range(what: &str, data: &[f32]) -> Result<()> {
    let max = half::f16::MAX.to_f32();
    let over = |v: &f32| v.abs() > max;
    let count = data.iter().filter(|v| over(v)).count();
    if count == 0 {
        return Ok(());
    }
    let index = data.iter().position(over).unwrap_or(0);
    Err(Error::Other(format!(
        "{what}: {count} value(s) exceed the float16 range (|v| > 65504), the first at index {index} ({}); use --precision f32",
        data[index]
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finite_and_f16_checks_count() {
        assert!(check_finite("x", &[1.0, 2.0]).is_ok());
        let e = check_finite("x", &[1.0, f32::NAN, f32::INFINITY])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("x") && e.contains("2 non-finite") && e.contains("index 1"),
            "{e}"
        );
        let e = check_f16_range("x", &[1.0, 1e38, -7e4])
            .unwrap_err()
            .to_string();
        assert!(e.contains("2 value(s) exceed the float16 range"), "{e}");
        assert!(check_f16_range("x", &[65504.0, -65504.0]).is_ok());
        assert!(Shape::new(1, 1, usize::MAX / 2, 1)
            .checked_upsampled(4)
            .is_none());
    }
}
