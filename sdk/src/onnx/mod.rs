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

use crate::config::{DySampleConfig, Style};

#[cfg(feature = "onnx-graph")]
pub mod graph;
#[cfg(feature = "onnxruntime")]
pub mod op;
#[cfg(feature = "onnxruntime")]
pub mod precision;
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
            Style::Lp => conv_in,
            Style::Pl => conv_in * self.scale * self.scale,
        };
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
