//! DySample in ONNX models.
//!
//! - feature `onnxruntime`: [`runtime`] finds and loads the ONNX Runtime library, [`session`]
//!   builds sessions with execution providers, [`op`] is the `ai.dysample::DySample` custom op.
//! - feature `onnx-graph`: [`graph`] reads and edits ONNX files in pure Rust: `info`, `lower`
//!   (DySample node → standard ops) and `fuse` (exported subgraph → DySample node).
//!
//! The node: domain `ai.dysample`, op type `DySample`, attributes `scale` (int), `style`
//! ("lp"/"pl"), `groups` (int), `dyscope` (int 0/1); inputs X, offset_weight `[O, Cin, 1, 1]`,
//! offset_bias `[O]`, optional scope_weight `[O, Cin, 1, 1]`; one output Y `[B, C, sH, sW]`.
//!
//! **int8 node** (same domain and op type, told apart by X's element type): X and Y are
//! `tensor(int8)` in one scale and zero point, the weights stay float initializers, and the
//! attributes `x_scale` (float, required), `x_zero_point` (int, default 0, in [-128, 127]),
//! `offset_weight_scales` and `scope_weight_scales` (floats of length O, optional; the latter only
//! with dyscope) map 1:1 onto [`crate::QuantParams`] ([`Int8Attrs`]). The node computes exactly
//! `DySample::quantize(&params)?.forward_slice(x, dims, Layout::Nchw, y)`.

use crate::config::{DySampleConfig, Style};
use crate::quant::{Affine, QuantParams};

#[cfg(feature = "onnxruntime")]
pub mod external;
#[cfg(feature = "onnx-graph")]
pub mod graph;
#[cfg(feature = "onnxruntime")]
mod kernel_io;
#[cfg(feature = "onnxruntime")]
pub mod op;
#[cfg(feature = "onnxruntime")]
pub mod precision;
#[cfg(feature = "onnxruntime")]
pub mod prepared;
#[cfg(feature = "onnxruntime")]
pub mod profile;
#[cfg(feature = "onnxruntime")]
pub mod runtime;
#[cfg(feature = "onnxruntime")]
pub mod session;
#[cfg(all(feature = "onnxruntime", feature = "onnx-graph"))]
pub mod verify;

/// Operator domain of the DySample node.
pub const DOMAIN: &str = "ai.dysample";
/// Op type of the DySample node.
pub const OP_TYPE: &str = "DySample";

/// Everything that can go wrong with ONNX models and ONNX Runtime. Messages are one line and
/// name the file, node, input or flag involved.
#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    /// The ONNX Runtime library could not be found or loaded.
    #[error("{0}")]
    Library(String),
    /// A model file cannot be read or parsed.
    #[error("{path}: {detail}")]
    Model { path: String, detail: String },
    /// A DySample node is malformed.
    #[error("DySample node '{node}': {detail}")]
    Node { node: String, detail: String },
    /// A requested execution provider is not usable.
    #[error("execution provider '{provider}' is not available: {detail}")]
    Provider { provider: String, detail: String },
    /// Input/output data does not fit the model.
    #[error("{what}: {detail}")]
    Data { what: String, detail: String },
    /// An error reported by ONNX Runtime.
    #[error("onnxruntime: {0}")]
    Runtime(String),
}

/// Result alias for this module.
pub type Result<T, E = OnnxError> = std::result::Result<T, E>;

#[cfg(feature = "onnxruntime")]
impl<R> From<ort::Error<R>> for OnnxError {
    fn from(e: ort::Error<R>) -> Self {
        // ORT messages may span lines; keep the CLI's one-line promise.
        OnnxError::Runtime(e.to_string().replace('\n', " "))
    }
}

/// The attributes of one DySample node, before the channel count is known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeAttrs {
    pub scale: usize,
    pub style: Style,
    pub groups: usize,
    pub dyscope: bool,
}

impl NodeAttrs {
    /// Validates raw attribute values (as read from a node); `None` means the attribute is absent.
    pub fn parse(
        scale: Option<i64>,
        style: Option<&str>,
        groups: Option<i64>,
        dyscope: Option<i64>,
    ) -> std::result::Result<Self, String> {
        let mut problems = Vec::new();
        let scale = match scale {
            None => {
                problems.push("attribute 'scale' is missing".to_string());
                0
            }
            Some(s) if !(2..=16).contains(&s) => {
                problems.push(format!(
                    "attribute 'scale' must be an integer in 2..=16, got {s}"
                ));
                0
            }
            Some(s) => s as usize,
        };
        let style = match style {
            None => {
                problems.push("attribute 'style' is missing".to_string());
                Style::Lp
            }
            Some("lp") => Style::Lp,
            Some("pl") => Style::Pl,
            Some(other) => {
                problems.push(format!(
                    "attribute 'style' must be \"lp\" or \"pl\", got \"{other}\""
                ));
                Style::Lp
            }
        };
        let groups = match groups {
            None => {
                problems.push("attribute 'groups' is missing".to_string());
                0
            }
            Some(g) if !(1..=1 << 20).contains(&g) => {
                problems.push(format!("attribute 'groups' must be ≥ 1, got {g}"));
                0
            }
            Some(g) => g as usize,
        };
        let dyscope = match dyscope.unwrap_or(0) {
            0 => false,
            1 => true,
            d => {
                problems.push(format!("attribute 'dyscope' must be 0 or 1, got {d}"));
                false
            }
        };
        if problems.is_empty() {
            Ok(Self {
                scale,
                style,
                groups,
                dyscope,
            })
        } else {
            Err(problems.join("; "))
        }
    }

    /// The full layer config, with the channel count derived from the offset conv's input
    /// channels (`Cin = C` for lp, `C / s²` for pl), checked against its output channels.
    pub fn config(
        &self,
        conv_out: usize,
        conv_in: usize,
    ) -> std::result::Result<DySampleConfig, String> {
        let channels = match self.style {
            Style::Lp => Some(conv_in),
            Style::Pl => conv_in.checked_mul(self.scale * self.scale),
        }
        .filter(|&c| c <= crate::config::MAX_CHANNELS)
        .ok_or_else(|| {
            format!(
                "offset_weight has {conv_in} input channels: the layer would have more than {} channels",
                crate::config::MAX_CHANNELS
            )
        })?;
        let cfg = DySampleConfig::new(channels, self.scale, self.style, self.groups, self.dyscope)
            .map_err(|e| e.to_string())?;
        if cfg.conv_out_channels() != conv_out {
            return Err(format!(
                "offset_weight has {conv_out} output channels, but scale={} style={} groups={} needs {}",
                self.scale,
                self.style,
                self.groups,
                cfg.conv_out_channels()
            ));
        }
        Ok(cfg)
    }
}

/// Names of the int8 node's extra attributes.
pub const INT8_ATTRS: [&str; 4] = [
    "x_scale",
    "x_zero_point",
    "offset_weight_scales",
    "scope_weight_scales",
];

/// The int8 attributes of a DySample node, as read (`None` = absent).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Int8Attrs {
    pub x_scale: Option<f32>,
    pub x_zero_point: Option<i64>,
    pub offset_weight_scales: Option<Vec<f32>>,
    pub scope_weight_scales: Option<Vec<f32>>,
}

impl Int8Attrs {
    /// Whether any int8 attribute is present.
    pub fn any(&self) -> bool {
        self.x_scale.is_some()
            || self.x_zero_point.is_some()
            || self.offset_weight_scales.is_some()
            || self.scope_weight_scales.is_some()
    }

    /// The attributes of `params` (what a QDQ writer puts on the node); weight scales only
    /// when the parameters carry them.
    pub fn from_params(params: &QuantParams) -> Self {
        Self {
            x_scale: Some(params.input.scale),
            x_zero_point: Some(params.input.zero_point as i64),
            offset_weight_scales: params.offset_weight_scales.clone(),
            scope_weight_scales: params.scope_weight_scales.clone(),
        }
    }

    /// Validates the attributes against the layer and returns its int8 parameters; every
    /// problem in one line, naming the attribute.
    pub fn params(&self, cfg: &DySampleConfig) -> std::result::Result<QuantParams, String> {
        let mut problems = Vec::new();
        let scale = match self.x_scale {
            None => {
                problems.push(
                    "attribute 'x_scale' (float) is missing; an int8 DySample node needs the scale of X"
                        .to_string(),
                );
                1.0
            }
            Some(s) if !s.is_finite() || s <= 0.0 => {
                problems.push(format!(
                    "attribute 'x_scale' must be finite and > 0, got {s}"
                ));
                1.0
            }
            Some(s) => s,
        };
        let zero_point = match self.x_zero_point.unwrap_or(0) {
            z @ -128..=127 => z as i32,
            z => {
                problems.push(format!(
                    "attribute 'x_zero_point' must be in [-128, 127], got {z}"
                ));
                0
            }
        };
        let o = cfg.conv_out_channels();
        for (name, v) in [
            ("offset_weight_scales", &self.offset_weight_scales),
            ("scope_weight_scales", &self.scope_weight_scales),
        ] {
            let Some(v) = v else { continue };
            if name == "scope_weight_scales" && !cfg.dyscope {
                problems.push(
                    "attribute 'scope_weight_scales' is given but the node has dyscope=0".into(),
                );
            } else if v.len() != o {
                problems.push(format!(
                    "attribute '{name}' has {} values, the offset conv has {o} output channels",
                    v.len()
                ));
            } else if let Some((i, s)) = v
                .iter()
                .enumerate()
                .find(|(_, s)| !s.is_finite() || **s <= 0.0)
            {
                problems.push(format!(
                    "attribute '{name}'[{i}] must be finite and > 0, got {s}"
                ));
            }
        }
        if !problems.is_empty() {
            return Err(problems.join("; "));
        }
        let mut p = QuantParams::new(*cfg, Affine { scale, zero_point });
        p.offset_weight_scales = self.offset_weight_scales.clone();
        p.scope_weight_scales = self.scope_weight_scales.clone();
        // The checks above cover QuantParams::validate; keep it as the final word.
        p.validate(cfg).map_err(|e| e.to_string())?;
        Ok(p)
    }

    /// An f32/f16 node must not carry int8 attributes (they would be silently ignored).
    pub fn refuse_on_float(&self, elem: &str) -> std::result::Result<(), String> {
        if self.any() {
            let names: Vec<&str> = INT8_ATTRS
                .iter()
                .copied()
                .zip([
                    self.x_scale.is_some(),
                    self.x_zero_point.is_some(),
                    self.offset_weight_scales.is_some(),
                    self.scope_weight_scales.is_some(),
                ])
                .filter_map(|(n, present)| present.then_some(n))
                .collect();
            return Err(format!(
                "has int8 attribute(s) {} but X is {elem}; they only apply when X is int8",
                names.join(", ")
            ));
        }
        Ok(())
    }
}

/// `[O, Cin]` of a conv weight given as `[O, Cin, 1, 1]` or `[O, Cin]`.
pub fn conv_weight_dims(dims: &[i64]) -> std::result::Result<(usize, usize), String> {
    match dims {
        [o, c, 1, 1] | [o, c] if *o > 0 && *c > 0 => Ok((*o as usize, *c as usize)),
        other => Err(format!(
            "expected a 1x1 conv weight of shape [O, Cin, 1, 1], got {other:?}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attrs_report_every_problem() {
        let e = NodeAttrs::parse(Some(1), Some("xy"), Some(0), Some(2)).unwrap_err();
        assert!(
            e.contains("'scale'")
                && e.contains("'style'")
                && e.contains("'groups'")
                && e.contains("'dyscope'"),
            "{e}"
        );
        let e = NodeAttrs::parse(None, Some("lp"), Some(1), None).unwrap_err();
        assert!(e.contains("'scale' is missing"), "{e}");
    }

    #[test]
    fn huge_channel_counts_are_refused() {
        let a = NodeAttrs::parse(Some(2), Some("pl"), Some(1), None).unwrap();
        assert!(a.config(2, 1 << 59).unwrap_err().contains("more than"));
        let a = NodeAttrs::parse(Some(2), Some("lp"), Some(1), None).unwrap();
        assert!(a.config(8, 1 << 59).unwrap_err().contains("more than"));
    }

    #[test]
    fn int8_attrs_map_onto_quant_params() {
        let a = NodeAttrs::parse(Some(2), Some("lp"), Some(1), Some(1)).unwrap();
        let cfg = a.config(8, 4).unwrap();
        let attrs = Int8Attrs {
            x_scale: Some(0.05),
            x_zero_point: Some(-3),
            offset_weight_scales: Some(vec![0.01; 8]),
            scope_weight_scales: Some(vec![0.02; 8]),
        };
        let p = attrs.params(&cfg).unwrap();
        assert_eq!(
            p.input,
            Affine {
                scale: 0.05,
                zero_point: -3
            }
        );
        assert_eq!(p.offset_weight_scales.as_deref(), Some(&[0.01f32; 8][..]));
        assert_eq!(Int8Attrs::from_params(&p), attrs);
        // Defaults: zero point 0, weight scales derived later.
        let p = Int8Attrs {
            x_scale: Some(1.0),
            ..Default::default()
        }
        .params(&cfg)
        .unwrap();
        assert_eq!((p.input.zero_point, p.offset_weight_scales), (0, None));
    }

    #[test]
    fn bad_int8_attrs_name_the_attribute() {
        let lp = NodeAttrs::parse(Some(2), Some("lp"), Some(1), None).unwrap();
        let cfg = lp.config(8, 4).unwrap();
        let e = Int8Attrs::default().params(&cfg).unwrap_err();
        assert!(e.contains("'x_scale'") && e.contains("missing"), "{e}");
        for s in [0.0, -1.0, f32::NAN, f32::INFINITY] {
            let e = Int8Attrs {
                x_scale: Some(s),
                ..Default::default()
            }
            .params(&cfg)
            .unwrap_err();
            assert!(e.contains("'x_scale' must be finite and > 0"), "{e}");
        }
        for z in [128, -129, 1 << 40] {
            let e = Int8Attrs {
                x_scale: Some(1.0),
                x_zero_point: Some(z),
                ..Default::default()
            }
            .params(&cfg)
            .unwrap_err();
            assert!(e.contains("'x_zero_point' must be in [-128, 127]"), "{e}");
        }
        let e = Int8Attrs {
            x_scale: Some(1.0),
            offset_weight_scales: Some(vec![1.0; 7]),
            ..Default::default()
        }
        .params(&cfg)
        .unwrap_err();
        assert!(
            e.contains("'offset_weight_scales' has 7 values") && e.contains("8 output channels"),
            "{e}"
        );
        let e = Int8Attrs {
            x_scale: Some(1.0),
            offset_weight_scales: Some(vec![0.0; 8]),
            ..Default::default()
        }
        .params(&cfg)
        .unwrap_err();
        assert!(
            e.contains("'offset_weight_scales'[0] must be finite and > 0"),
            "{e}"
        );
        let e = Int8Attrs {
            x_scale: Some(1.0),
            scope_weight_scales: Some(vec![1.0; 8]),
            ..Default::default()
        }
        .params(&cfg)
        .unwrap_err();
        assert!(
            e.contains("'scope_weight_scales' is given but the node has dyscope=0"),
            "{e}"
        );
        let e = Int8Attrs {
            x_scale: Some(1.0),
            ..Default::default()
        }
        .refuse_on_float("FLOAT")
        .unwrap_err();
        assert!(e.contains("x_scale") && e.contains("X is FLOAT"), "{e}");
        assert!(Int8Attrs::default().refuse_on_float("FLOAT").is_ok());
    }

    #[test]
    fn config_from_weights() {
        let a = NodeAttrs::parse(Some(2), Some("pl"), Some(2), Some(1)).unwrap();
        let cfg = a.config(4, 4).unwrap();
        assert_eq!((cfg.channels, cfg.dyscope), (16, true));
        assert!(a.config(8, 4).unwrap_err().contains("needs 4"));
        let a = NodeAttrs::parse(Some(2), Some("lp"), Some(3), None).unwrap();
        assert!(a
            .config(24, 16)
            .unwrap_err()
            .contains("divisible by groups"));
        assert_eq!(conv_weight_dims(&[4, 3, 1, 1]).unwrap(), (4, 3));
        assert!(conv_weight_dims(&[4, 3, 3, 3]).is_err());
    }
}
