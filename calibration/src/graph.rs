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
    // No int8 kernel: written as a QLinearAdd (see `qdq::write`).
    "HardSigmoid",
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
        let inits: HashSet<&str> = self
            .graph()
            .initializer
            .iter()
            .map(|t| t.name.as_str())
            .collect();
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
    /// Relu / Clip(0, M) nodes folded into the quantizer of the quantized op they alone follow
    /// (activation node → producer node). The producer then writes the activation's output,
    /// whose quantizer (calibrated on it: lo = 0, zero point −128) clamps negatives to exactly
    /// 0 — the same function with one rounding less and no extra Q/DQ pair, as ONNX Runtime's
    /// own quantizer does. Asymmetric CPU target only.
    pub folded: HashMap<usize, usize>,
    /// Upper bounds of the folded Clips (their range must not exceed them).
    pub caps: HashMap<String, f32>,
    /// Nodes excluded by name: they read their inputs in float, not through the producer's
    /// Q/DQ pair, so that excluding a layer really removes every quantizer it sees (only its
    /// weights otherwise: the input pair stays for a quantized producer's fusion).
    pub excluded: HashSet<usize>,
}

/// The Relu or Clip(0, M) node that alone consumes node `i`'s only output, with M (∞ for Relu).
fn foldable(
    m: &Model,
    i: usize,
    consumers: &HashMap<&str, Vec<usize>>,
    outputs: &HashSet<&str>,
) -> Option<(usize, f32)> {
    let gr = m.graph();
    let n = &gr.node[i];
    if n.output.len() != 1 || outputs.contains(n.output[0].as_str()) {
        return None;
    }
    let c = consumers
        .get(n.output[0].as_str())
        .filter(|c| c.len() == 1)?[0];
    let a = &gr.node[c];
    if !a.domain.is_empty() || !m.is_float(&a.output[0]) {
        return None;
    }
    let val = |k: usize| -> Option<f32> {
        let name = a.input.get(k).filter(|s| !s.is_empty())?;
        tensor_f32(m.initializer(name)?).ok()?.first().copied()
    };
    match a.op_type.as_str() {
        "Relu" => Some((c, f32::INFINITY)),
        "Clip" if val(1) == Some(0.0) => Some((c, val(2).unwrap_or(f32::INFINITY))),
        _ => None,
    }
}

/// Float activation inputs of a node (not initializers, not empty).
pub fn activation_inputs<'a>(m: &'a Model, n: &'a NodeProto) -> Vec<&'a str> {
    let inits: HashSet<&str> = m
        .graph()
        .initializer
        .iter()
        .map(|t| t.name.as_str())
        .collect();
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
        Self::with_folding(m, ops, exclude, int8_dysample, false)
    }

    /// [`Plan::new`], folding activations into quantizers when `fold` (see [`Plan::folded`]).
    pub fn with_folding(
        m: &Model,
        ops: &[&str],
        exclude: &BTreeSet<String>,
        int8_dysample: bool,
        fold: bool,
    ) -> Self {
        let gr = m.graph();
        let mut consumers: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, n) in gr.node.iter().enumerate() {
            for inp in &n.input {
                consumers.entry(inp.as_str()).or_default().push(i);
            }
        }
        let graph_outputs: HashSet<&str> = gr.output.iter().map(|o| o.name.as_str()).collect();
        let mut folded = HashMap::new();
        let mut caps = HashMap::new();
        let mut nodes = Vec::new();
        let mut dysample = Vec::new();
        let mut seen = HashSet::new();
        let mut tensors = Vec::new();
        let mut excluded = HashSet::new();
        let mut add = |t: &str, tensors: &mut Vec<String>| {
            if seen.insert(t.to_string()) {
                tensors.push(t.to_string());
            }
        };
        // The head: nodes whose every output is a graph output (the final Sigmoid of a
        // segmenter, a depth head's last op). They stay float: with a float output ONNX Runtime
        // has no int8 kernel to fuse them into, so a quantizer on their input only loses
        // precision — and there it is the costliest one (person-seg's logits span [−570, 210]:
        // a step of 3 around the 0.5 decision threshold cost 0.2 IoU on its own).
        let head: HashSet<usize> = gr
            .node
            .iter()
            .enumerate()
            .filter(|(_, n)| {
                let outs: Vec<&String> = n.output.iter().filter(|o| !o.is_empty()).collect();
                !outs.is_empty() && outs.iter().all(|o| graph_outputs.contains(o.as_str()))
            })
            .map(|(i, _)| i)
            .collect();
        let feeds_head_only = |t: &str| {
            consumers
                .get(t)
                .is_some_and(|c| !c.is_empty() && c.iter().all(|j| head.contains(j)))
        };
        for (i, n) in gr.node.iter().enumerate() {
            if exclude.contains(&m.node_name(i)) {
                excluded.insert(i);
                continue;
            }
            if ops != TRT_OPS && head.contains(&i) {
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
            if !activation_inputs(m, n).iter().all(|t| m.is_float(t))
                || !outs.clone().all(|o| m.is_float(o))
            {
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
            if fold {
                if let Some((a, cap)) = foldable(m, i, &consumers, &graph_outputs) {
                    folded.insert(a, i);
                    let out = &gr.node[a].output[0];
                    if cap.is_finite() {
                        caps.insert(out.clone(), cap);
                    }
                    add(out, &mut tensors);
                    continue;
                }
            }
            // A graph output stays float: its quantizer would only lose precision (and ONNX
            // Runtime fuses `op → Q` even when the op's output is also a graph output).
            for o in n.output.iter().filter(|o| {
                !o.is_empty() && !graph_outputs.contains(o.as_str()) && !feeds_head_only(o)
            }) {
                add(o, &mut tensors);
            }
        }
        Self {
            excluded,
            nodes,
            dysample,
            tensors,
            folded,
            caps,
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
    let have: HashSet<String> = gr
        .output
        .iter()
        .chain(&gr.input)
        .map(|o| o.name.clone())
        .collect();
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
