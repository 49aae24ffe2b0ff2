//! Numerical check of `fuse` matches: the matched subgraph runs alone in ONNX Runtime (standard
//! ops) and must agree with the SDK kernel for the config the match implies.

use super::graph::fuse::{extract, FuseMatch};
use super::session::SessionOptions;
use super::{OnnxError, Result};
use crate::{DySample, Layout};
use onnx_protobuf::ModelProto;
use protobuf::Message;
use rand::{Rng, SeedableRng};
use std::path::Path;

/// Largest accepted `max|ort − kernel| / max|kernel|`: float rounding is ~1e-6; a wrong config
/// or a misread subgraph is off by O(1).
pub const TOLERANCE: f32 = 1e-4;

/// Runs match `m` of `model` both ways on a random input; returns the relative difference, or an
/// error when it exceeds [`TOLERANCE`] or cannot be computed.
pub fn verify_match(model: &ModelProto, m: &FuseMatch, opts: &SessionOptions) -> Result<f32> {
    let sub = extract(model, m);
    let bytes = sub
        .write_to_bytes()
        .map_err(|e| OnnxError::Runtime(format!("cannot serialize subgraph: {e}")))?;
    let label = format!("subgraph of {}", m.anchor);
    let mut session = opts.build_from_bytes(&bytes, Path::new(&label))?;
    let dims = m.sample_dims;
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x00d5_a3b1);
    let x: Vec<f32> = (0..dims.iter().product::<usize>())
        .map(|_| rng.gen_range(-2.0f32..2.0))
        .collect();
    let (odims, got) = session.run_f32(&x, &dims)?;
    let layer =
        DySample::new(m.layer.config, m.layer.weights.clone()).map_err(|e| OnnxError::Node {
            node: m.name.clone(),
            detail: e.to_string(),
        })?;
    let want_dims = layer
        .output_dims(dims, Layout::Nchw)
        .map_err(|e| OnnxError::Node {
            node: m.name.clone(),
            detail: e.to_string(),
        })?;
    if odims != want_dims {
        return Err(OnnxError::Node {
            node: m.name.clone(),
            detail: format!("subgraph output has shape {odims:?}, the layer gives {want_dims:?}"),
        });
    }
    let mut want = vec![0.0f32; got.len()];
    layer
        .forward_slice(&x, dims, Layout::Nchw, &mut want)
        .map_err(|e| OnnxError::Node {
            node: m.name.clone(),
            detail: e.to_string(),
        })?;
    let scale = want
        .iter()
        .fold(0.0f32, |a, v| a.max(v.abs()))
        .max(f32::MIN_POSITIVE);
    let diff = got
        .iter()
        .zip(&want)
        .fold(0.0f32, |a, (g, w)| a.max((g - w).abs()));
    let rel = diff / scale;
    if rel.is_nan() || rel > TOLERANCE {
        return Err(OnnxError::Node {
            node: m.name.clone(),
            detail: format!("the matched subgraph and a DySample layer with {} differ by {rel:.2e} (relative) on a random input", m.layer.config),
        });
    }
    Ok(rel)
}
