//! `--onnx FILE`: a model file run in place of the model folder's own (a calibrated int8 QDQ
//! model from `dysample-calibrate`, say), checked against `model.json` before any session is
//! built, and described for the title, status line and summary.

use crate::model::Model;
use dysample::onnx::graph::{self, ValueDesc};
use std::path::{Path, PathBuf};

/// An `--onnx` file whose input and output agree with `model.json`.
#[derive(Clone, Debug)]
pub struct OnnxFile {
    pub path: PathBuf,
    /// QuantizeLinear and DequantizeLinear nodes.
    pub qdq_nodes: usize,
    /// DySample nodes, and how many of them are the SDK's int8 node.
    pub dysample_nodes: usize,
    pub int8_dysample_nodes: usize,
}

impl OnnxFile {
    /// Reads `path` and checks its one input and its first output against `model`'s
    /// `model.json`; errors are one line naming the file and the tensor.
    pub fn open(path: &Path, model: &Model) -> Result<Self, String> {
        let file = path.display();
        if !path.is_file() {
            return Err(format!("--onnx {file}: no such file"));
        }
        // The error names the file already.
        let proto = graph::load_model(path).map_err(|e| format!("--onnx: {e}"))?;
        let info = graph::info(&proto);
        let json = model.dir.join("model.json");
        let json = json.display();
        let i = &model.json.input;
        let o = &model.json.output;
        match info.inputs.as_slice() {
            [x] => check_value(
                x,
                "input",
                &i.name,
                &[1, 3, i.height, i.width],
                &format!("{file}"),
                &format!("{json}"),
            )?,
            xs => {
                return Err(format!(
                    "{file}: has {} inputs ({}); model.json ({json}) describes one, '{}'",
                    xs.len(),
                    names(xs),
                    i.name
                ))
            }
        }
        // The network stage takes the first output.
        let first = info.outputs.first().ok_or_else(|| {
            format!(
                "{file}: has no outputs; model.json ({json}) names '{}'",
                o.name
            )
        })?;
        if first.name != o.name {
            return Err(format!(
                "{file}: first output is '{}' (outputs: {}), model.json ({json}) names '{}'",
                first.name,
                names(&info.outputs),
                o.name
            ));
        }
        let want = if first.dims.len() == 3 && o.channels == 1 {
            vec![1, o.height, o.width]
        } else {
            vec![1, o.channels, o.height, o.width]
        };
        check_value(
            first,
            "output",
            &o.name,
            &want,
            &format!("{file}"),
            &format!("{json}"),
        )?;
        let g = proto
            .graph
            .as_ref()
            .ok_or_else(|| format!("--onnx {file}: the model has no graph"))?;
        let qdq_nodes = g
            .node
            .iter()
            .filter(|n| {
                (n.domain.is_empty() || n.domain == "ai.onnx")
                    && matches!(n.op_type.as_str(), "QuantizeLinear" | "DequantizeLinear")
            })
            .count();
        Ok(Self {
            path: path.to_path_buf(),
            qdq_nodes,
            dysample_nodes: info.dysample.len(),
            int8_dysample_nodes: info.dysample.iter().filter(|n| n.quant.is_some()).count(),
        })
    }

    /// Whether the file is quantized: Q/DQ nodes or int8 DySample nodes.
    pub fn is_int8(&self) -> bool {
        self.qdq_nodes > 0 || self.int8_dysample_nodes > 0
    }

    /// `int8 QDQ` or `float`.
    pub fn kind(&self) -> &'static str {
        if self.is_int8() {
            "int8 QDQ"
        } else {
            "float"
        }
    }

    /// The file's name, for titles and table rows.
    pub fn name(&self) -> String {
        self.path.file_name().map_or_else(
            || self.path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        )
    }

    /// `int8 QDQ model_int8.onnx (3/3 int8 DySample, 180 Q/DQ)` or `float model.onnx (3 DySample)`.
    pub fn label(&self) -> String {
        if !self.is_int8() {
            return format!("float {} ({} DySample)", self.name(), self.dysample_nodes);
        }
        format!(
            "{} {} ({}/{} int8 DySample, {} Q/DQ)",
            self.kind(),
            self.name(),
            self.int8_dysample_nodes,
            self.dysample_nodes,
            self.qdq_nodes
        )
    }
}

fn names(vs: &[ValueDesc]) -> String {
    vs.iter()
        .map(|v| format!("'{}'", v.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Name, element type (f32: the pipeline feeds and reads f32) and dims (symbolic dims pass; a
/// fixed dim must equal model.json's).
fn check_value(
    v: &ValueDesc,
    role: &str,
    want_name: &str,
    want_dims: &[usize],
    file: &str,
    json: &str,
) -> Result<(), String> {
    if v.name != want_name {
        return Err(format!(
            "{file}: {role} '{}' does not match model.json's {role} name '{want_name}' ({json})",
            v.name
        ));
    }
    if v.elem != "FLOAT" {
        return Err(format!(
            "{file}: {role} '{}' is {}, the demo feeds and reads FLOAT",
            v.name, v.elem
        ));
    }
    let fixed_ok = |d: &String, w: &usize| d.parse::<usize>().map_or(true, |d| d == *w);
    // No shape at all (an exporter that wrote none) is left to the run to check.
    let shape_ok = v.dims.is_empty()
        || (v.dims.len() == want_dims.len()
            && v.dims.iter().zip(want_dims).all(|(d, w)| fixed_ok(d, w)));
    if !shape_ok {
        return Err(format!(
            "{file}: {role} '{}' has shape [{}], model.json ({json}) says {want_dims:?}",
            v.name,
            v.dims.join(", ")
        ));
    }
    Ok(())
}
