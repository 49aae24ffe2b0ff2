//! Back-projection of a relative depth map to a coloured point cloud (binary PLY).
//!
//! The model's output is relative inverse depth (larger = nearer, unknown scale and shift),
//! so the map is first stretched to the `[near, far]` range in inverse depth:
//! `1/z = n · (1/near − 1/far) + 1/far` with `n ∈ [0, 1]` the min/max-normalised value, then
//! each pixel centre goes through `K⁻¹` (pinhole intrinsics).

use crate::{Result, VideoError};
use nalgebra::{Matrix3, Vector3};
use std::io::Write;
use std::path::Path;

/// Pinhole camera intrinsics in pixels.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Intrinsics {
    pub fx: f64,
    pub fy: f64,
    pub cx: f64,
    pub cy: f64,
}

impl Intrinsics {
    /// From a horizontal field of view in degrees (square pixels, centred principal point).
    pub fn from_fov(width: usize, height: usize, hfov_deg: f64) -> Result<Self> {
        if !(hfov_deg > 1.0 && hfov_deg < 179.0) {
            return Err(VideoError::Usage(format!(
                "--fov {hfov_deg}: give a horizontal field of view between 1 and 179 degrees"
            )));
        }
        let f = width as f64 / 2.0 / (hfov_deg.to_radians() / 2.0).tan();
        Ok(Self {
            fx: f,
            fy: f,
            cx: width as f64 / 2.0,
            cy: height as f64 / 2.0,
        })
    }

    /// The same camera for an image resized from `from` to `to` (width, height).
    pub fn scaled(&self, from: (usize, usize), to: (usize, usize)) -> Self {
        let (sx, sy) = (to.0 as f64 / from.0 as f64, to.1 as f64 / from.1 as f64);
        Self {
            fx: self.fx * sx,
            fy: self.fy * sy,
            cx: self.cx * sx,
            cy: self.cy * sy,
        }
    }

    pub fn matrix(&self) -> Matrix3<f64> {
        Matrix3::new(self.fx, 0.0, self.cx, 0.0, self.fy, self.cy, 0.0, 0.0, 1.0)
    }
}

/// Points of `inv_depth` (`width x height`, relative inverse depth) coloured by `rgb` (same
/// size), as (x, y, z, r, g, b) in camera coordinates (x right, y down, z forward).
pub fn back_project(
    inv_depth: &[f32],
    rgb: &[u8],
    width: usize,
    height: usize,
    k: &Intrinsics,
    near: f64,
    far: f64,
) -> Result<Vec<([f32; 3], [u8; 3])>> {
    if !(near > 0.0 && far > near) {
        return Err(VideoError::Usage(format!(
            "point cloud range: need 0 < near < far, got {near}..{far}"
        )));
    }
    if inv_depth.len() != width * height || rgb.len() != width * height * 3 {
        return Err(VideoError::Usage(
            "point cloud: depth and colour sizes differ".into(),
        ));
    }
    let kinv = k
        .matrix()
        .try_inverse()
        .ok_or_else(|| VideoError::Usage("camera matrix is singular (fx or fy is 0)".into()))?;
    let (lo, hi) = inv_depth
        .iter()
        .filter(|v| v.is_finite())
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    let span = if hi > lo { (hi - lo) as f64 } else { 1.0 };
    let (inear, ifar) = (1.0 / near, 1.0 / far);
    let mut pts = Vec::with_capacity(width * height);
    for v in 0..height {
        for u in 0..width {
            let d = inv_depth[v * width + u];
            if !d.is_finite() {
                continue;
            }
            let n = ((d - lo) as f64 / span).clamp(0.0, 1.0);
            let z = 1.0 / (n * (inear - ifar) + ifar);
            let p: Vector3<f64> = kinv * Vector3::new(u as f64 + 0.5, v as f64 + 0.5, 1.0) * z;
            let i = (v * width + u) * 3;
            pts.push((
                [p.x as f32, p.y as f32, p.z as f32],
                [rgb[i], rgb[i + 1], rgb[i + 2]],
            ));
        }
    }
    Ok(pts)
}

/// Writes points as a binary little-endian PLY (written to a temporary name, then renamed).
pub fn write_ply(path: &Path, points: &[([f32; 3], [u8; 3])]) -> Result<()> {
    let what = path.display().to_string();
    let tmp = path.with_extension("ply.tmp");
    let write = || -> std::io::Result<()> {
        let mut w = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
        write!(
            w,
            "ply\nformat binary_little_endian 1.0\ncomment made by dysample-demo depth\nelement vertex {}\n\
             property float x\nproperty float y\nproperty float z\n\
             property uchar red\nproperty uchar green\nproperty uchar blue\nend_header\n",
            points.len()
        )?;
        for (p, c) in points {
            for v in p {
                w.write_all(&v.to_le_bytes())?;
            }
            w.write_all(c)?;
        }
        w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        VideoError::io(&what, e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn centre_pixel_lies_on_the_axis_and_near_is_near() {
        let k = Intrinsics::from_fov(4, 2, 90.0).unwrap();
        assert!((k.fx - 2.0).abs() < 1e-12);
        // Left column near (large inverse depth), right column far.
        let d = [1.0f32, 0.5, 0.25, 0.0, 1.0, 0.5, 0.25, 0.0];
        let pts = back_project(&d, &[0; 24], 4, 2, &k, 1.0, 10.0).unwrap();
        assert_eq!(pts.len(), 8);
        assert!((pts[0].0[2] - 1.0).abs() < 1e-6 && (pts[3].0[2] - 10.0).abs() < 1e-4);
        // x = (u + 0.5 - cx) / fx * z: pixel 0 → (0.5 - 2) / 2 = -0.75 at z = 1.
        assert!((pts[0].0[0] + 0.75).abs() < 1e-6);
        assert!(Intrinsics::from_fov(4, 2, 0.0).is_err());
        assert!(back_project(&d, &[0; 24], 4, 2, &k, 2.0, 1.0).is_err());
    }

    #[test]
    fn ply_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.ply");
        write_ply(&p, &[([1.0, 2.0, 3.0], [4, 5, 6])]).unwrap();
        let b = std::fs::read(&p).unwrap();
        let head = b"end_header\n";
        let at = b.windows(head.len()).position(|w| w == head).unwrap() + head.len();
        assert_eq!(b.len() - at, 15);
        assert_eq!(&b[at + 12..], &[4, 5, 6]);
        assert!(String::from_utf8_lossy(&b[..at]).contains("element vertex 1"));
    }
}
