//! `--target sdk`: the SDK's [`QuantParams`] for every DySample layer, one JSON file per
//! layer (`dysample run --quant FILE`, or `QuantParams::from_json_file` in Rust).

use crate::error::{CalibError, Result};
use crate::graph::{is_dysample, Model};
use crate::methods::{Method, Range};
use dysample::onnx::graph::read_dysample;
use dysample::quant::{QuantParams, Symmetry};
use std::collections::HashMap;

/// `(node name, params)` for every DySample node; `ranges` must hold each node's input.
pub fn params(
    model: &Model,
    ranges: &HashMap<String, Range>,
    symmetry: Symmetry,
    method: Method,
    samples: usize,
) -> Result<Vec<(String, QuantParams)>> {
    let g = model.graph();
    let mut out = Vec::new();
    for (i, n) in g.node.iter().enumerate() {
        if !is_dysample(n) {
            continue;
        }
        let layer = read_dysample(g, n, i)?;
        let x = &n.input[0];
        let r = ranges.get(x).ok_or_else(|| {
            CalibError::msg(format!(
                "DySample node '{}': its input '{x}' has no calibrated range",
                model.node_name(i)
            ))
        })?;
        let mut p = QuantParams::new(layer.config, r.affine(symmetry));
        p.note = Some(format!(
            "dysample-calibrate {method} {symmetry:?} over {samples} sample(s) of the whole model: input '{x}' range [{}, {}]",
            r.lo, r.hi
        ));
        p.validate(&layer.config)?;
        out.push((model.node_name(i), p));
    }
    Ok(out)
}

/// A file name for a node (path separators and odd characters replaced).
pub fn file_name(node: &str) -> String {
    let s: String = node
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{}.quant.json", s.trim_start_matches('.'))
}
