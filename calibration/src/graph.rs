//! The f32 model as the calibration sees it: constant folding, which nodes are quantized, which
//! tensors need ranges, and the copy with those tensors as extra graph outputs.

use crate::error::{CalibError, Result};
use dysample::onnx::graph::proto::tensor_proto::DataType;
use dysample::onnx::graph::proto::{
    GraphProto, ModelProto, NodeProto, TensorProto, ValueInfoProto,
};
use dysample::onnx::graph::{self as g, tensor_f32};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::Path;

/// Ops whose activations the CPU target quantizes (ONNX Runtime's QDQ fusions for the CPU
/// provider turn `DQ → op → Q` into QLinearConv, QLinearAdd, …).
pub const CPU_OPS: &[&str] = &[
    "Conv",
    "ConvTranspose",
    "MatMul",
    "Gemm",
    "Add",
    "Mul",
    "Concat",
    "Sigmoid",
    "GlobalAveragePool",
    "AveragePool",
];

/// Ops the TensorRT target puts Q/DQ in front of (TensorRT fuses the rest itself).
pub const TRT_OPS: &[&str] = &["Conv", "ConvTranspose", "MatMul", "Gemm"];

/// Ops with a weight initializer as input 1 (per-output-channel symmetric int8).
pub fn weighted(op: &str) -> bool {
    matches!(op, "Conv" | "ConvTranspose" | "MatMul" | "Gemm")
}

/// A loaded and folded f32 model.
#[derive(Clone, Debug)]
pub struct Model {
    pub proto: ModelProto,
    pub path: std::path::PathBuf,
    /// The float activations (known after a probe run; `None` = assume every tensor is).
    pub floats: Option<HashSet<String>>,
}

pub(crate) fn graph(m: &ModelProto) -> &GraphProto {
    m.graph
        .as_ref()
        .unwrap_or_else(|| <GraphProto as protobuf::Message>::default_instance())
}

impl Model {
    /// Loads an f32 ONNX model and folds `Constant` nodes and `Cast`s of initializers into
    /// initializers (exporters store weights as f16 + Cast; quantizing needs them as data).
    pub fn load(path: &Path) -> Result<Self> {
        let proto = g::load_model(path)?;
        let mut m = Self {
            proto,
            path: path.to_path_buf(),
            floats: None,
        };
        m.fold();
        Ok(m)
    }

    pub fn graph(&self) -> &GraphProto {
        graph(&self.proto)
    }

    pub fn input_names(&self) -> Vec<String> {
        let inits: HashSet<&str> = self.graph().initializer.iter().map(|t| t.name.as_str()).collect();
        self.graph()
            .input
            .iter()
            .filter(|v| !inits.contains(v.name.as_str()))
            .map(|v| v.name.clone())
            .collect()
    }

    fn fold(&mut self) {
        let gr = self.proto.graph.mut_or_insert_default();
        let mut inits: HashMap<String, usize> = gr
            .initializer
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i))
            .collect();
        let mut keep = Vec::with_capacity(gr.node.len());
        let mut folded = 0usize;
        for n in std::mem::take(&mut gr.node) {
            if n.op_type == "Constant" && n.domain.is_empty() && n.output.len() == 1 {
                if let Some(a) = n.attribute.iter().find(|a| a.name == "value") {
                    if let Some(t) = a.t.as_ref() {
                        let mut t = t.clone();
                        t.name = n.output[0].clone();
                        inits.insert(t.name.clone(), gr.initializer.len());
                        gr.initializer.push(t);
                        folded += 1;
                        continue;
                    }
                }
            }
            if n.op_type == "Cast" && n.domain.is_empty() && n.input.len() == 1 {
                let to = n.attribute.iter().find(|a| a.name == "to").map(|a| a.i);
                if to == Some(DataType::FLOAT as i64) {
                    if let Some(&i) = inits.get(&n.input[0]) {
                        if let Ok(v) = tensor_f32(&gr.initializer[i]) {
                            let t = g::f32_tensor(&n.output[0], &gr.initializer[i].dims, &v);
                            inits.insert(t.name.clone(), gr.initializer.len());
                            gr.initializer.push(t);
                            folded += 1;
                            continue;
                        }
                    }
                }
            }
            keep.push(n);
        }
        gr.node = keep;
        // Drop initializers nothing reads any more (the f16 copies).
        let used: HashSet<String> = gr
            .node
            .iter()
            .flat_map(|n| n.input.iter().cloned())
            .chain(gr.output.iter().map(|o| o.name.clone()))
            .collect();
        gr.initializer.retain(|t| used.contains(&t.name));
        tracing::debug!(folded, "folded constants and casts");
    }

    /// Whether a tensor is a float activation (see [`Model::floats`]).
    pub fn is_float(&self, t: &str) -> bool {
        self.floats.as_ref().is_none_or(|f| f.contains(t))
    }

    /// Initializer by name.
    pub fn initializer(&self, name: &str) -> Option<&TensorProto> {
        self.graph().initializer.iter().find(|t| t.name == name)
    }

    /// A display name for node `i` (its name, or `op#i`).
    pub fn node_name(&self, i: usize) -> String {
        let n = &self.graph().node[i];
        if n.name.is_empty() {
            format!("{}#{i}", n.op_type)
        } else {
            n.name.clone()
        }
    }
}

/// Whether a node is the SDK's DySample op.
pub fn is_dysample(n: &NodeProto) -> bool {
    g::is_dysample(n)
}

/// Which nodes are quantized and which tensors need ranges.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Indices of quantized nodes (ops of the target's list, not excluded).
    pub nodes: Vec<usize>,
    /// Indices of DySample nodes run in int8 (CPU target).
    pub dysample: Vec<usize>,
    /// Activation tensors that get a range, in graph order.
    pub tensors: Vec<String>,
}

/// Float activation inputs of a node (not initializers, not empty).
pub fn activation_inputs<'a>(m: &'a Model, n: &'a NodeProto) -> Vec<&'a str> {
    let inits: HashSet<&str> = m.graph().initializer.iter().map(|t| t.name.as_str()).collect();
    let take = match n.op_type.as_str() {
        // Only the data input; weights and biases are initializers.
        "Conv" | "ConvTranspose" => 1,
        _ if is_dysample(n) => 1,
        _ => n.input.len(),
    };
    n.input
        .iter()
        .take(take)
        .map(String::as_str)
        .filter(|s| !s.is_empty() && !inits.contains(s))
        .collect()
}

impl Plan {
    /// `ops`: the target's quantizable ops; `exclude`: node names kept in float;
    /// `int8_dysample`: DySample nodes become int8 (CPU target).
    pub fn new(m: &Model, ops: &[&str], exclude: &BTreeSet<String>, int8_dysample: bool) -> Self {
        let gr = m.graph();
        let mut nodes = Vec::new();
        let mut dysample = Vec::new();
        let mut seen = HashSet::new();
        let mut tensors = Vec::new();
        let mut add = |t: &str, tensors: &mut Vec<String>| {
            if seen.insert(t.to_string()) {
                tensors.push(t.to_string());
            }
        };
        for (i, n) in gr.node.iter().enumerate() {
            if exclude.contains(&m.node_name(i)) {
                continue;
            }
            if is_dysample(n) {
                if int8_dysample {
                    dysample.push(i);
                    for t in activation_inputs(m, n) {
                        add(t, &mut tensors);
                    }
                }
                continue;
            }
            if !n.domain.is_empty() || !ops.contains(&n.op_type.as_str()) {
                continue;
            }
            if weighted(&n.op_type) && m.initializer(n.input.get(1).map_or("", |s| s)).is_none() {
                // A weight computed at run time: leave the node in float.
                continue;
            }
            let outs = n.output.iter().filter(|o| !o.is_empty());
            if !activation_inputs(m, n).iter().all(|t| m.is_float(t)) || !outs.clone().all(|o| m.is_float(o)) {
                // Shape arithmetic (int64) and the like stay as they are.
                continue;
            }
            nodes.push(i);
            for t in activation_inputs(m, n) {
                add(t, &mut tensors);
            }
            if ops == TRT_OPS {
                continue;
            }
            for o in n.output.iter().filter(|o| !o.is_empty()) {
                add(o, &mut tensors);
            }
        }
        Self {
            nodes,
            dysample,
            tensors,
        }
    }
}

/// Every float activation a node produces, and the graph inputs (the TensorRT cache wants a
/// scale for every tensor of the network).
pub fn all_activations(m: &Model) -> Vec<String> {
    let mut v = m.input_names();
    for n in &m.graph().node {
        v.extend(n.output.iter().filter(|o| !o.is_empty()).cloned());
    }
    v
}

/// The model with `tensors` added as graph outputs (types left to ONNX Runtime's inference).
pub fn with_outputs(m: &Model, tensors: &[String]) -> ModelProto {
    let mut p = m.proto.clone();
    let gr = p.graph.mut_or_insert_default();
    // Graph inputs are read from the data itself, not returned by ONNX Runtime.
    let have: HashSet<String> = gr.output.iter().chain(&gr.input).map(|o| o.name.clone()).collect();
    for t in tensors {
        if !have.contains(t) {
            let mut v = ValueInfoProto::new();
            v.name = t.clone();
            gr.output.push(v);
        }
    }
    p
}

/// Serializes a model for [`dysample::onnx::session::SessionOptions::build_from_bytes`].
pub fn to_bytes(p: &ModelProto) -> Result<Vec<u8>> {
    use protobuf::Message;
    p.write_to_bytes()
        .map_err(|e| CalibError::msg(format!("cannot serialize the model: {e}")))
}

/// For asymmetric int8 on the CPU: a Relu (or Clip with min 0) that alone consumes a quantized
/// op's output is dropped, and the op writes the activation's output directly. Its quantizer,
/// calibrated on the activation's output (lo = 0, so the zero point is −128), then clamps
/// negative values to exactly 0: the same function with one rounding less and no extra pair of
/// Q/DQ nodes, as ONNX Runtime's own quantizer does. Returns the new model and, for each
/// dropped Clip, its upper bound (the range must not exceed it).
pub fn fold_activations(m: &Model, ops: &[&str]) -> (Model, HashMap<String, f32>) {
    let gr = m.graph();
    let mut consumers: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, n) in gr.node.iter().enumerate() {
        for inp in &n.input {
            consumers.entry(inp.as_str()).or_default().push(i);
        }
    }
    let outputs: HashSet<&str> = gr.output.iter().map(|o| o.name.as_str()).collect();
    let mut drop = HashSet::new();
    let mut rename: HashMap<usize, String> = HashMap::new();
    let mut caps = HashMap::new();
    for (i, n) in gr.node.iter().enumerate() {
        if !n.domain.is_empty() || !ops.contains(&n.op_type.as_str()) || n.output.len() != 1 {
            continue;
        }
        let t = n.output[0].as_str();
        let Some(c) = consumers.get(t).filter(|c| c.len() == 1).map(|c| c[0]) else { continue };
        if outputs.contains(t) {
            continue;
        }
        let a = &gr.node[c];
        let cap = match a.op_type.as_str() {
            "Relu" if a.domain.is_empty() => Some(f32::INFINITY),
            "Clip" if a.domain.is_empty() => {
                let val = |k: usize| -> Option<f32> {
                    let name = a.input.get(k).filter(|s| !s.is_empty())?;
                    let t = m.initializer(name)?;
                    tensor_f32(t).ok()?.first().copied()
                };
                match (val(1), a.input.get(2).is_none_or(|s| s.is_empty())) {
                    (Some(lo), true) if lo == 0.0 => Some(f32::INFINITY),
                    (Some(lo), false) if lo == 0.0 => val(2),
                    _ => None,
                }
            }
            _ => None,
        };
        if let Some(cap) = cap {
            drop.insert(c);
            rename.insert(i, a.output[0].clone());
            if cap.is_finite() {
                caps.insert(a.output[0].clone(), cap);
            }
        }
    }
    let mut p = m.proto.clone();
    let g = p.graph.mut_or_insert_default();
    let mut nodes = Vec::with_capacity(g.node.len());
    for (i, mut n) in std::mem::take(&mut g.node).into_iter().enumerate() {
        if drop.contains(&i) {
            continue;
        }
        if let Some(o) = rename.get(&i) {
            n.output[0] = o.clone();
        }
        nodes.push(n);
    }
    g.node = nodes;
    tracing::debug!(folded = drop.len(), "activations folded into quantizers");
    (Model { proto: p, path: m.path.clone(), floats: m.floats.clone() }, caps)
}
