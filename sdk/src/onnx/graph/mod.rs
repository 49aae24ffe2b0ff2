//! Reading, inspecting and editing ONNX files in pure Rust (`onnx-protobuf`, no native code).
//!
//! - [`info`]: inputs, outputs and DySample nodes with their configs;
//! - [`lower::lower`]: every DySample node → standard ONNX ops (GridSample, opset ≥ 16);
//! - [`fuse::analyze`] + [`fuse::apply`]: the subgraph `torch.onnx.export` writes for the
//!   authors' module → one node.

pub mod fuse;
pub mod lower;

use super::{conv_weight_dims, Int8Attrs, NodeAttrs, OnnxError, Result, DOMAIN, OP_TYPE};
use crate::config::DySampleConfig;
use crate::quant::QuantParams;
use crate::weights::Weights;
use onnx_protobuf::tensor_proto::DataType;
use onnx_protobuf::{
    AttributeProto, GraphProto, ModelProto, NodeProto, TensorProto, ValueInfoProto,
};
use protobuf::Message;
use std::fmt;
use std::path::Path;

pub use onnx_protobuf as proto;

/// Reads and parses an ONNX file (a regular file of at most [`crate::io::MAX_MODEL_BYTES`]).
pub fn load_model(path: &Path) -> Result<ModelProto> {
    let bytes =
        crate::io::read_limited(path, "ONNX model", crate::io::MAX_MODEL_BYTES).map_err(|e| {
            OnnxError::Model {
                path: path.display().to_string(),
                detail: match e {
                    crate::Error::Io { source, .. } => format!("cannot read: {source}"),
                    other => {
                        let m = other.to_string();
                        let p = format!("{}: ", path.display());
                        m.strip_prefix(&p).unwrap_or(&m).to_string()
                    }
                },
            }
        })?;
    parse_model(&bytes, path)
}

/// Parses ONNX bytes and checks the main graph's structure ([`check_graph`]); `path` is only
/// used in messages.
pub fn parse_model(bytes: &[u8], path: &Path) -> Result<ModelProto> {
    let bad = |detail: String| OnnxError::Model {
        path: path.display().to_string(),
        detail,
    };
    let model = ModelProto::parse_from_bytes(bytes).map_err(|e| {
        bad(format!(
            "not a valid ONNX model (truncated or not ONNX?): {e}"
        ))
    })?;
    if model.graph.is_none() || model.ir_version <= 0 || model.opset_import.is_empty() {
        return Err(bad(
            "not a valid ONNX model: no graph, IR version or opset".into()
        ));
    }
    check_graph(graph(&model)).map_err(bad)?;
    Ok(model)
}

/// Structural checks of a graph that ONNX Runtime would reject (or that would make `lower` and
/// `fuse` write a broken model): no attribute twice in a node, every value produced once, no
/// duplicate graph outputs, every node input defined, and no cycle.
pub fn check_graph(g: &GraphProto) -> std::result::Result<(), String> {
    use std::collections::{HashMap, HashSet};
    let mut produced: HashMap<&str, String> = HashMap::new();
    for v in &g.input {
        produced.insert(v.name.as_str(), format!("graph input '{}'", v.name));
    }
    for t in &g.initializer {
        // Older exporters list initializers as graph inputs too: that is not a duplicate.
        produced
            .entry(t.name.as_str())
            .or_insert_with(|| format!("initializer '{}'", t.name));
    }
    for (i, n) in g.node.iter().enumerate() {
        let mut attrs = HashSet::new();
        for a in &n.attribute {
            if !attrs.insert(a.name.as_str()) {
                return Err(format!(
                    "node {} has attribute '{}' twice",
                    node_label(n, i),
                    a.name
                ));
            }
        }
        for o in n.output.iter().filter(|o| !o.is_empty()) {
            if let Some(prev) = produced.insert(o.as_str(), format!("node {}", node_label(n, i))) {
                return Err(format!(
                    "value '{o}' is produced twice (by {prev} and by node {})",
                    node_label(n, i)
                ));
            }
        }
    }
    for t in &g.initializer {
        let width = match data_type(t) {
            Some(DataType::FLOAT | DataType::INT32 | DataType::UINT32) => 4,
            Some(DataType::FLOAT16 | DataType::BFLOAT16 | DataType::INT16 | DataType::UINT16) => 2,
            Some(DataType::DOUBLE | DataType::INT64 | DataType::UINT64) => 8,
            Some(DataType::INT8 | DataType::UINT8 | DataType::BOOL) => 1,
            _ => continue,
        };
        if !t.raw_data.is_empty() {
            let n = element_count(t)?;
            check_raw_len(t, n, width)?;
        }
    }
    let mut outs = HashSet::new();
    for o in &g.output {
        if !outs.insert(o.name.as_str()) {
            return Err(format!("graph output '{}' is listed twice", o.name));
        }
        if !produced.contains_key(o.name.as_str()) {
            return Err(format!(
                "graph output '{}' is not produced by any node, input or initializer",
                o.name
            ));
        }
    }
    // Kahn's algorithm over node → node edges.
    let producer: HashMap<&str, usize> = g
        .node
        .iter()
        .enumerate()
        .flat_map(|(i, n)| {
            n.output
                .iter()
                .filter(|o| !o.is_empty())
                .map(move |o| (o.as_str(), i))
        })
        .collect();
    let mut indegree = vec![0usize; g.node.len()];
    let mut users: Vec<Vec<usize>> = vec![Vec::new(); g.node.len()];
    for (i, n) in g.node.iter().enumerate() {
        for inp in n.input.iter().filter(|s| !s.is_empty()) {
            match producer.get(inp.as_str()) {
                Some(&p) => {
                    indegree[i] += 1;
                    users[p].push(i);
                }
                None if produced.contains_key(inp.as_str()) => {}
                None => {
                    return Err(format!(
                        "node {} reads '{inp}', which no node, graph input or initializer provides",
                        node_label(n, i)
                    ))
                }
            }
        }
    }
    let mut ready: Vec<usize> = (0..g.node.len()).filter(|&i| indegree[i] == 0).collect();
    let mut done = 0;
    while let Some(i) = ready.pop() {
        done += 1;
        for &u in &users[i] {
            indegree[u] -= 1;
            if indegree[u] == 0 {
                ready.push(u);
            }
        }
    }
    if done != g.node.len() {
        let i = indegree.iter().position(|&d| d > 0).unwrap_or(0);
        return Err(format!(
            "the graph has a cycle (through node {})",
            node_label(&g.node[i], i)
        ));
    }
    Ok(())
}

/// Writes a model atomically (temporary file, fsync, rename; see [`crate::io::write_atomic`]).
pub fn save_model(model: &ModelProto, path: &Path) -> Result<()> {
    let bytes = model.write_to_bytes().map_err(|e| OnnxError::Model {
        path: path.display().to_string(),
        detail: format!("cannot serialize: {e}"),
    })?;
    crate::io::write_bytes_atomic(path, &bytes).map_err(|e| OnnxError::Model {
        path: path.display().to_string(),
        detail: {
            let m = e.to_string();
            let p = format!("cannot write {}: ", path.display());
            format!("cannot write: {}", m.strip_prefix(&p).unwrap_or(&m))
        },
    })
}

/// The graph of a model that [`parse_model`] accepted.
pub(crate) fn graph(model: &ModelProto) -> &GraphProto {
    model
        .graph
        .as_ref()
        .unwrap_or_else(|| GraphProto::default_instance())
}

/// Opset version of `domain` ("" = the default ONNX domain).
pub fn opset(model: &ModelProto, domain: &str) -> Option<i64> {
    model
        .opset_import
        .iter()
        .find(|o| o.domain == domain || (domain.is_empty() && o.domain == "ai.onnx"))
        .map(|o| o.version)
}

/// Whether a node is a DySample node.
pub fn is_dysample(node: &NodeProto) -> bool {
    node.domain == DOMAIN && node.op_type == OP_TYPE
}

pub(crate) fn node_label(node: &NodeProto, index: usize) -> String {
    if node.name.is_empty() {
        format!(
            "#{index} (unnamed, output '{}')",
            node.output.first().map_or("", |s| s.as_str())
        )
    } else {
        node.name.clone()
    }
}

/// The node's attribute `name`, if it has one.
pub fn attr<'a>(node: &'a NodeProto, name: &str) -> Option<&'a AttributeProto> {
    node.attribute.iter().find(|a| a.name == name)
}

pub(crate) fn attr_i(node: &NodeProto, name: &str) -> Option<i64> {
    attr(node, name).map(|a| a.i)
}

pub(crate) fn attr_s(node: &NodeProto, name: &str) -> Option<String> {
    attr(node, name).map(|a| String::from_utf8_lossy(&a.s).into_owned())
}

pub(crate) fn attr_ints(node: &NodeProto, name: &str) -> Option<Vec<i64>> {
    attr(node, name).map(|a| a.ints.clone())
}

pub(crate) fn attr_f(node: &NodeProto, name: &str) -> Option<f32> {
    attr(node, name).map(|a| a.f)
}

pub(crate) fn attr_floats(node: &NodeProto, name: &str) -> Option<Vec<f32>> {
    attr(node, name).map(|a| a.floats.clone())
}

/// The int8 attributes of a node as written (see [`Int8Attrs`]).
pub fn int8_attrs(node: &NodeProto) -> Int8Attrs {
    Int8Attrs {
        x_scale: attr_f(node, "x_scale"),
        x_zero_point: attr_i(node, "x_zero_point"),
        offset_weight_scales: attr_floats(node, "offset_weight_scales"),
        scope_weight_scales: attr_floats(node, "scope_weight_scales"),
    }
}

/// A DySample node for `cfg`: f32/f16 when `quant` is `None`, else the int8 node with the
/// parameters' attributes (`x_scale`, `x_zero_point` and the weight scales they carry). Inputs:
/// X, offset_weight, offset_bias and, with dyscope, scope_weight.
pub fn dysample_node(
    name: &str,
    inputs: &[&str],
    output: &str,
    cfg: &DySampleConfig,
    quant: Option<&QuantParams>,
) -> NodeProto {
    let mut attrs = vec![
        attr_int("scale", cfg.scale as i64),
        attr_str("style", &cfg.style.to_string()),
        attr_int("groups", cfg.groups as i64),
        attr_int("dyscope", cfg.dyscope as i64),
    ];
    if let Some(p) = quant {
        attrs.push(attr_float("x_scale", p.input.scale));
        attrs.push(attr_int("x_zero_point", p.input.zero_point as i64));
        if let Some(v) = &p.offset_weight_scales {
            attrs.push(attr_floats_new("offset_weight_scales", v));
        }
        if let Some(v) = &p.scope_weight_scales {
            attrs.push(attr_floats_new("scope_weight_scales", v));
        }
    }
    let mut n = make_node(OP_TYPE, name.to_string(), inputs, &[output], attrs);
    n.domain = DOMAIN.to_string();
    n
}

/// Element type of a tensor, as ONNX's enum.
pub(crate) fn data_type(t: &TensorProto) -> Option<DataType> {
    protobuf::Enum::from_i32(t.data_type)
}

/// Tensor values as f32 (from f32, f16 or f64 storage, raw or typed fields).
pub fn tensor_f32(t: &TensorProto) -> std::result::Result<Vec<f32>, String> {
    let n = checked_len(t, |ty| match ty {
        Some(DataType::FLOAT) => 4,
        Some(DataType::FLOAT16) => 2,
        Some(DataType::DOUBLE) => 8,
        _ => 1,
    })?;
    let out: Vec<f32> = match data_type(t) {
        Some(DataType::FLOAT) if !t.raw_data.is_empty() => t
            .raw_data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Some(DataType::FLOAT) => t.float_data.clone(),
        Some(DataType::FLOAT16) if !t.raw_data.is_empty() => t
            .raw_data
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Some(DataType::FLOAT16) => t
            .int32_data
            .iter()
            .map(|&v| half::f16::from_bits(v as u16).to_f32())
            .collect(),
        Some(DataType::DOUBLE) if !t.raw_data.is_empty() => t
            .raw_data
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])) as f32)
            .collect(),
        Some(DataType::DOUBLE) => t.double_data.iter().map(|&v| v as f32).collect(),
        other => {
            return Err(format!(
                "tensor '{}' has element type {other:?}, expected a float type",
                t.name
            ))
        }
    };
    check_count(t, out.len(), n)?;
    Ok(out)
}

/// Most values one tensor read by the graph tools may hold (2^31).
pub const MAX_TENSOR_VALUES: usize = 1 << 31;

/// `Π dims`, checked: no negative dims, no overflow, at most [`MAX_TENSOR_VALUES`].
pub fn element_count(t: &TensorProto) -> std::result::Result<usize, String> {
    let mut n: usize = 1;
    for &d in &t.dims {
        let d = usize::try_from(d).map_err(|_| {
            format!(
                "tensor '{}' has a negative dimension in {:?}",
                t.name, t.dims
            )
        })?;
        n = n
            .checked_mul(d)
            .filter(|&n| n <= MAX_TENSOR_VALUES)
            .ok_or_else(|| {
                format!(
                    "tensor '{}' has dims {:?}, more than {MAX_TENSOR_VALUES} values",
                    t.name, t.dims
                )
            })?;
    }
    Ok(n)
}

/// Raw data, when present, must hold exactly `n` elements of `width` bytes.
fn check_raw_len(t: &TensorProto, n: usize, width: usize) -> std::result::Result<(), String> {
    if !t.raw_data.is_empty() && t.raw_data.len() != n * width {
        return Err(format!(
            "tensor '{}' has {} bytes of raw data, but its dims {:?} need {n} values ({} bytes)",
            t.name,
            t.raw_data.len(),
            t.dims,
            n * width
        ));
    }
    Ok(())
}

/// Tensor values as i64 (int64 or int32 storage).
pub fn tensor_i64(t: &TensorProto) -> std::result::Result<Vec<i64>, String> {
    let n = checked_len(t, |ty| match ty {
        Some(DataType::INT64) => 8,
        _ => 4,
    })?;
    let v = tensor_i64_values(t)?;
    check_count(t, v.len(), n)?;
    Ok(v)
}

/// The checks every typed read starts with: inline data only, a bounded element count, and raw
/// data (when present) of exactly that many elements of `width(type)` bytes. Returns the count.
fn checked_len(
    t: &TensorProto,
    width: impl Fn(Option<DataType>) -> usize,
) -> std::result::Result<usize, String> {
    if !t.external_data.is_empty() {
        return Err(format!(
            "tensor '{}' uses external data, which is not supported",
            t.name
        ));
    }
    let n = element_count(t)?;
    check_raw_len(t, n, width(data_type(t)))?;
    Ok(n)
}

/// Typed fields are not checked by `checked_len`: the decoded count must match the dims.
fn check_count(t: &TensorProto, got: usize, n: usize) -> std::result::Result<(), String> {
    if got != n {
        return Err(format!(
            "tensor '{}' holds {got} values but its dims {:?} need {n}",
            t.name, t.dims
        ));
    }
    Ok(())
}

fn tensor_i64_values(t: &TensorProto) -> std::result::Result<Vec<i64>, String> {
    match data_type(t) {
        Some(DataType::INT64) if !t.raw_data.is_empty() => Ok(t
            .raw_data
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
            .collect()),
        Some(DataType::INT64) => Ok(t.int64_data.clone()),
        Some(DataType::INT32) if !t.raw_data.is_empty() => Ok(t
            .raw_data
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i64)
            .collect()),
        Some(DataType::INT32) => Ok(t.int32_data.iter().map(|&v| v as i64).collect()),
        other => Err(format!(
            "tensor '{}' has element type {other:?}, expected an integer type",
            t.name
        )),
    }
}

/// An f32 tensor.
pub fn f32_tensor(name: &str, dims: &[i64], data: &[f32]) -> TensorProto {
    let mut t = TensorProto::new();
    t.name = name.to_string();
    t.dims = dims.to_vec();
    t.data_type = DataType::FLOAT as i32;
    t.raw_data = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    t
}

/// An i64 tensor.
pub fn i64_tensor(name: &str, dims: &[i64], data: &[i64]) -> TensorProto {
    let mut t = TensorProto::new();
    t.name = name.to_string();
    t.dims = dims.to_vec();
    t.data_type = DataType::INT64 as i32;
    t.raw_data = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    t
}

/// Constant values in a graph: initializers and `Constant` node outputs, by name.
pub(crate) struct Constants<'g> {
    graph: &'g GraphProto,
    constant_nodes: std::collections::HashMap<&'g str, &'g TensorProto>,
}

impl<'g> Constants<'g> {
    pub(crate) fn new(graph: &'g GraphProto) -> Self {
        let mut constant_nodes = std::collections::HashMap::new();
        for n in &graph.node {
            if n.op_type == "Constant" && n.domain.is_empty() {
                if let (Some(out), Some(a)) = (n.output.first(), attr(n, "value")) {
                    if let Some(t) = a.t.as_ref() {
                        constant_nodes.insert(out.as_str(), t);
                    }
                }
            }
        }
        Self {
            graph,
            constant_nodes,
        }
    }

    pub(crate) fn initializer(&self, name: &str) -> Option<&'g TensorProto> {
        self.graph.initializer.iter().find(|t| t.name == name)
    }

    pub(crate) fn get(&self, name: &str) -> Option<&'g TensorProto> {
        self.initializer(name)
            .or_else(|| self.constant_nodes.get(name).copied())
    }
}

/// A DySample node's layer: config and weights, read from its attributes and initializers.
#[derive(Clone, Debug)]
pub struct NodeLayer {
    pub config: DySampleConfig,
    pub weights: Weights,
    /// Element type of the node: FLOAT or FLOAT16 (X, weights and Y alike), or INT8 (X and Y;
    /// the weights are FLOAT).
    pub elem: DataType,
    /// The int8 node's parameters (from its attributes); `None` for f32/f16 nodes.
    pub quant: Option<QuantParams>,
}

impl NodeLayer {
    /// Whether this is an int8 node.
    pub fn is_int8(&self) -> bool {
        self.quant.is_some()
    }
}

/// Reads and validates a DySample node (`index` is its position, for messages).
pub fn read_dysample(graph: &GraphProto, node: &NodeProto, index: usize) -> Result<NodeLayer> {
    let label = node_label(node, index);
    let bad = |detail: String| OnnxError::Node {
        node: label.clone(),
        detail,
    };
    let attrs = NodeAttrs::parse(
        attr_i(node, "scale"),
        attr_s(node, "style").as_deref(),
        attr_i(node, "groups"),
        attr_i(node, "dyscope"),
    )
    .map_err(bad)?;
    let inputs: Vec<&str> = node.input.iter().map(String::as_str).collect();
    let has_scope = inputs.len() >= 4 && !inputs[3].is_empty();
    if inputs.len() < 3 || inputs[..3].iter().any(|s| s.is_empty()) {
        return Err(bad(format!(
            "needs inputs X, offset_weight, offset_bias; got {inputs:?}"
        )));
    }
    if attrs.dyscope != has_scope {
        return Err(bad(if attrs.dyscope {
            "dyscope=1 but input 3 (scope_weight) is missing".into()
        } else {
            "dyscope=0 but a scope_weight input is given".into()
        }));
    }
    let consts = Constants::new(graph);
    let init = |idx: usize, what: &str| -> Result<&TensorProto> {
        consts.initializer(inputs[idx]).ok_or_else(|| bad(format!("input {idx} ({what}) '{}' is not an initializer; DySample weights must be initializers", inputs[idx])))
    };
    let w = init(1, "offset_weight")?;
    let b = init(2, "offset_bias")?;
    let elem = data_type(w).unwrap_or(DataType::UNDEFINED);
    // The float nodes have one type constraint T for X, the weights and Y (f32 or f16); the
    // int8 node has int8 X and Y and f32 weights.
    if !matches!(elem, DataType::FLOAT | DataType::FLOAT16) {
        return Err(bad(format!(
            "offset_weight has element type {elem:?}; DySample takes FLOAT or FLOAT16 weights"
        )));
    }
    let mut typed = vec![("offset_bias", b)];
    if has_scope {
        typed.push(("scope_weight", init(3, "scope_weight")?));
    }
    for (what, t) in typed {
        let e = data_type(t).unwrap_or(DataType::UNDEFINED);
        if e != elem {
            return Err(bad(format!(
                "{what} is {e:?} but offset_weight is {elem:?}; the DySample weights share one element type"
            )));
        }
    }
    let int8 = int8_attrs(node);
    let x_elem = x_elem_type(graph, inputs[0]);
    let is_int8 = match x_elem {
        Some(DataType::INT8) => true,
        Some(x) if x == elem => false,
        Some(x @ (DataType::FLOAT | DataType::FLOAT16)) => {
            return Err(bad(format!(
                "input X '{}' is {x:?} but the weights are {elem:?}; all DySample inputs share one element type (convert the initializers)",
                inputs[0]
            )))
        }
        Some(x) => {
            return Err(bad(format!(
                "input X '{}' is {x:?}; DySample takes FLOAT, FLOAT16 or INT8 (QuantizeLinear with an int8 zero point)",
                inputs[0]
            )))
        }
        // X's type is not declared and not evident from its producer: the attributes decide.
        None => int8.any(),
    };
    if is_int8 && elem != DataType::FLOAT {
        return Err(bad(format!(
            "X is INT8 but the weights are {elem:?}; the int8 DySample takes FLOAT weights"
        )));
    }
    let (o, cin) = conv_weight_dims(&w.dims).map_err(|e| bad(format!("offset_weight: {e}")))?;
    if b.dims != [o as i64] {
        return Err(bad(format!(
            "offset_bias has shape {:?}, expected [{o}]",
            b.dims
        )));
    }
    let cfg = attrs.config(o, cin).map_err(bad)?;
    let wv = tensor_f32(w).map_err(bad)?;
    let bv = tensor_f32(b).map_err(bad)?;
    let sv = if has_scope {
        let s = init(3, "scope_weight")?;
        if conv_weight_dims(&s.dims).ok() != Some((o, cin)) {
            return Err(bad(format!(
                "scope_weight has shape {:?}, expected [{o}, {cin}, 1, 1]",
                s.dims
            )));
        }
        Some(tensor_f32(s).map_err(bad)?)
    } else {
        None
    };
    let weights = Weights::new(&cfg, wv, bv, sv).map_err(|e| bad(e.to_string()))?;
    let quant = if is_int8 {
        Some(int8.params(&cfg).map_err(bad)?)
    } else {
        int8.refuse_on_float(&format!("{elem:?}")).map_err(bad)?;
        None
    };
    Ok(NodeLayer {
        config: cfg,
        weights,
        elem: if is_int8 { DataType::INT8 } else { elem },
        quant,
    })
}

/// The element type of a DySample node's X: as declared, or as evident from its producer
/// (`QuantizeLinear`: its zero point's type, else UINT8 or `output_dtype`; another DySample
/// node: that node's X type).
fn x_elem_type(g: &GraphProto, name: &str) -> Option<DataType> {
    let mut name = name;
    // Bounded: the graph is acyclic (check_graph), the bound only guards the walk's cost.
    for _ in 0..g.node.len().min(1 << 16) + 1 {
        if let Some(t) = value_elem_type(g, name) {
            return Some(t);
        }
        let p = g.node.iter().find(|n| n.output.iter().any(|o| o == name))?;
        if p.op_type == "QuantizeLinear" && (p.domain.is_empty() || p.domain == "ai.onnx") {
            if let Some(z) = p.input.get(2).filter(|z| !z.is_empty()) {
                return Constants::new(g).get(z).and_then(data_type);
            }
            return match attr_i(p, "output_dtype") {
                Some(t) if t != 0 => protobuf::Enum::from_i32(t as i32),
                _ => Some(DataType::UINT8),
            };
        }
        if is_dysample(p) {
            name = p.input.first()?;
            continue;
        }
        return None;
    }
    None
}

/// Inputs and outputs of a [`layer_model`].
#[derive(Clone, Debug)]
pub enum LayerIo {
    /// `X` and `Y` FLOAT: the f32 node.
    F32,
    /// `X` and `Y` INT8: the int8 node alone.
    Int8(QuantParams),
    /// `X` and `Y` FLOAT around `QuantizeLinear -> DySample(int8) -> DequantizeLinear`, with
    /// the parameters' scale and zero point on both sides: the QDQ form of a calibrated model.
    Qdq(QuantParams),
}

/// A model holding one DySample layer (input `X` `[batch, C, height, width]`, output `Y`), IR
/// version 10, opset 17: for tests, fixtures and benchmarks of the node in any ONNX Runtime.
pub fn layer_model(cfg: &DySampleConfig, weights: &Weights, io: &LayerIo) -> ModelProto {
    use onnx_protobuf::tensor_shape_proto::{dimension::Value as Dim, Dimension};
    use onnx_protobuf::type_proto::{Tensor, Value};
    let value = |name: &str, elem: DataType, dims: Vec<Dim>| {
        let mut t = Tensor::new();
        t.elem_type = elem as i32;
        let mut shape = onnx_protobuf::TensorShapeProto::new();
        shape.dim = dims
            .into_iter()
            .map(|d| {
                let mut dim = Dimension::new();
                dim.value = Some(d);
                dim
            })
            .collect();
        t.shape = Some(shape).into();
        let mut ty = onnx_protobuf::TypeProto::new();
        ty.value = Some(Value::TensorType(t));
        let mut v = ValueInfoProto::new();
        v.name = name.to_string();
        v.type_ = Some(ty).into();
        v
    };
    let dims = |c: usize| {
        vec![
            Dim::DimParam("batch".into()),
            Dim::DimValue(c as i64),
            Dim::DimParam("height".into()),
            Dim::DimParam("width".into()),
        ]
    };
    let (o, cin) = (cfg.conv_out_channels(), cfg.conv_in_channels());
    let mut g = GraphProto::new();
    g.name = "dysample_layer".into();
    g.initializer.push(f32_tensor(
        "offset_weight",
        &[o as i64, cin as i64, 1, 1],
        &weights.offset_weight,
    ));
    g.initializer
        .push(f32_tensor("offset_bias", &[o as i64], &weights.offset_bias));
    let mut inputs = vec!["X", "offset_weight", "offset_bias"];
    if let Some(s) = &weights.scope_weight {
        g.initializer
            .push(f32_tensor("scope_weight", &[o as i64, cin as i64, 1, 1], s));
        inputs.push("scope_weight");
    }
    let (elem, quant) = match io {
        LayerIo::F32 => (DataType::FLOAT, None),
        LayerIo::Int8(p) => (DataType::INT8, Some(p)),
        LayerIo::Qdq(p) => (DataType::FLOAT, Some(p)),
    };
    if let LayerIo::Qdq(p) = io {
        let mut z = TensorProto::new();
        z.name = "x_zero_point".into();
        z.data_type = DataType::INT8 as i32;
        z.raw_data = vec![p.input.zero_point as i8 as u8];
        g.initializer
            .push(f32_tensor("x_scale", &[], &[p.input.scale]));
        g.initializer.push(z);
        g.node.push(make_node(
            "QuantizeLinear",
            "quantize".into(),
            &["X", "x_scale", "x_zero_point"],
            &["X_q"],
            Vec::new(),
        ));
        inputs[0] = "X_q";
        g.node
            .push(dysample_node("dysample", &inputs, "Y_q", cfg, quant));
        g.node.push(make_node(
            "DequantizeLinear",
            "dequantize".into(),
            &["Y_q", "x_scale", "x_zero_point"],
            &["Y"],
            Vec::new(),
        ));
    } else {
        g.node
            .push(dysample_node("dysample", &inputs, "Y", cfg, quant));
    }
    g.input.push(value("X", elem, dims(cfg.channels)));
    let mut out = dims(cfg.channels);
    out[2] = Dim::DimParam("out_height".into());
    out[3] = Dim::DimParam("out_width".into());
    g.output.push(value("Y", elem, out));
    let mut m = ModelProto::new();
    m.ir_version = 10;
    m.producer_name = "dysample".into();
    m.graph = Some(g).into();
    set_opset(&mut m, "", 17);
    set_opset(&mut m, DOMAIN, 1);
    m
}

/// Refuses int8 DySample nodes with a one-line error naming the first; `why` says what the
/// caller needs instead.
pub fn refuse_int8_nodes(model: &ModelProto, why: &str) -> Result<()> {
    let g = graph(model);
    for (i, n) in g.node.iter().enumerate() {
        if is_dysample(n) && read_dysample(g, n, i)?.is_int8() {
            return Err(OnnxError::Node {
                node: node_label(n, i),
                detail: format!("is an int8 node (X is INT8); {why}"),
            });
        }
    }
    Ok(())
}

/// The element type of a value, where the graph declares it (inputs, outputs, value_info,
/// initializers).
pub(crate) fn value_elem_type(g: &GraphProto, name: &str) -> Option<DataType> {
    use onnx_protobuf::type_proto::Value;
    if let Some(t) = g.initializer.iter().find(|t| t.name == name) {
        return data_type(t);
    }
    g.input
        .iter()
        .chain(&g.value_info)
        .chain(&g.output)
        .find(|v| v.name == name)
        .and_then(|v| match v.type_.as_ref()?.value.as_ref()? {
            Value::TensorType(t) => protobuf::Enum::from_i32(t.elem_type),
            _ => None,
        })
}

/// Validates every DySample node of the main graph ([`read_dysample`]); the first error.
pub fn check_dysample_nodes(model: &ModelProto) -> Result<()> {
    let g = graph(model);
    for (i, n) in g.node.iter().enumerate() {
        if is_dysample(n) {
            read_dysample(g, n, i)?;
        }
    }
    Ok(())
}

/// A graph input or output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValueDesc {
    pub name: String,
    /// Element type, e.g. "FLOAT".
    pub elem: String,
    /// Dims; symbolic ones by name, unknown ones as "?".
    pub dims: Vec<String>,
}

impl fmt::Display for ValueDesc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} [{}]", self.name, self.elem, self.dims.join(", "))
    }
}

fn describe(v: &ValueInfoProto) -> ValueDesc {
    use onnx_protobuf::tensor_shape_proto::dimension::Value as Dim;
    use onnx_protobuf::type_proto::Value;
    let (elem, dims) = match v.type_.as_ref().and_then(|t| t.value.as_ref()) {
        Some(Value::TensorType(t)) => {
            let elem = protobuf::Enum::from_i32(t.elem_type).map_or_else(
                || format!("type{}", t.elem_type),
                |d: DataType| format!("{d:?}"),
            );
            let dims = t
                .shape
                .as_ref()
                .map(|s| {
                    s.dim
                        .iter()
                        .map(|d| match &d.value {
                            Some(Dim::DimValue(v)) => v.to_string(),
                            Some(Dim::DimParam(p)) => p.clone(),
                            _ => "?".to_string(),
                        })
                        .collect()
                })
                .unwrap_or_default();
            (elem, dims)
        }
        _ => ("?".to_string(), Vec::new()),
    };
    ValueDesc {
        name: v.name.clone(),
        elem,
        dims,
    }
}

/// One DySample node as `info` reports it.
#[derive(Clone, Debug)]
pub struct DySampleNode {
    pub name: String,
    pub input: String,
    pub output: String,
    /// The config, or why the node is invalid.
    pub config: std::result::Result<DySampleConfig, String>,
    pub elem: String,
    /// The int8 node's parameters; `None` for f32/f16 (and invalid) nodes.
    pub quant: Option<QuantParams>,
}

/// What `dysample onnx info` prints.
#[derive(Clone, Debug)]
pub struct ModelInfo {
    pub ir_version: i64,
    pub opsets: Vec<(String, i64)>,
    pub inputs: Vec<ValueDesc>,
    pub outputs: Vec<ValueDesc>,
    pub nodes: usize,
    pub dysample: Vec<DySampleNode>,
}

/// Summarizes a model.
pub fn info(model: &ModelProto) -> ModelInfo {
    let g = graph(model);
    let init: std::collections::HashSet<&str> =
        g.initializer.iter().map(|t| t.name.as_str()).collect();
    let dysample = g
        .node
        .iter()
        .enumerate()
        .filter(|(_, n)| is_dysample(n))
        .map(|(i, n)| {
            let r = read_dysample(g, n, i);
            DySampleNode {
                name: node_label(n, i),
                input: n.input.first().cloned().unwrap_or_default(),
                output: n.output.first().cloned().unwrap_or_default(),
                elem: r.as_ref().map_or("?".into(), |l| format!("{:?}", l.elem)),
                quant: r.as_ref().ok().and_then(|l| l.quant.clone()),
                config: r.map(|l| l.config).map_err(|e| e.to_string()),
            }
        })
        .collect();
    ModelInfo {
        ir_version: model.ir_version,
        opsets: model
            .opset_import
            .iter()
            .map(|o| {
                (
                    if o.domain.is_empty() {
                        "ai.onnx".to_string()
                    } else {
                        o.domain.clone()
                    },
                    o.version,
                )
            })
            .collect(),
        // Older exporters list initializers as inputs too; those are not real inputs.
        inputs: g
            .input
            .iter()
            .filter(|v| !init.contains(v.name.as_str()))
            .map(describe)
            .collect(),
        outputs: g.output.iter().map(describe).collect(),
        nodes: g.node.len(),
        dysample,
    }
}

impl fmt::Display for ModelInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let opsets: Vec<String> = self
            .opsets
            .iter()
            .map(|(d, v)| format!("{d} {v}"))
            .collect();
        writeln!(f, "ir_version  {}", self.ir_version)?;
        writeln!(f, "opsets      {}", opsets.join(", "))?;
        writeln!(f, "nodes       {}", self.nodes)?;
        for i in &self.inputs {
            writeln!(f, "input       {i}")?;
        }
        for o in &self.outputs {
            writeln!(f, "output      {o}")?;
        }
        writeln!(f, "dysample    {} node(s)", self.dysample.len())?;
        for n in &self.dysample {
            match &n.config {
                Ok(c) => {
                    let q = n.quant.as_ref().map_or(String::new(), |q| {
                        format!(
                            " x_scale={} x_zero_point={}{}",
                            q.input.scale,
                            q.input.zero_point,
                            if q.offset_weight_scales.is_some() {
                                " (weight scales given)"
                            } else {
                                " (weight scales from the weights)"
                            }
                        )
                    });
                    writeln!(
                        f,
                        "  {}: {c} dtype={}{q} ({} -> {})",
                        n.name, n.elem, n.input, n.output
                    )?
                }
                Err(e) => writeln!(f, "  {}: INVALID: {e}", n.name)?,
            }
        }
        Ok(())
    }
}

/// A fresh node.
pub(crate) fn make_node(
    op: &str,
    name: String,
    inputs: &[&str],
    outputs: &[&str],
    attrs: Vec<AttributeProto>,
) -> NodeProto {
    let mut n = NodeProto::new();
    n.op_type = op.to_string();
    n.name = name;
    n.input = inputs.iter().map(|s| s.to_string()).collect();
    n.output = outputs.iter().map(|s| s.to_string()).collect();
    n.attribute = attrs;
    n
}

/// An INT attribute.
pub fn attr_int(name: &str, v: i64) -> AttributeProto {
    let mut a = AttributeProto::new();
    a.name = name.into();
    a.type_ = onnx_protobuf::attribute_proto::AttributeType::INT.into();
    a.i = v;
    a
}

pub(crate) fn attr_str(name: &str, v: &str) -> AttributeProto {
    let mut a = AttributeProto::new();
    a.name = name.into();
    a.type_ = onnx_protobuf::attribute_proto::AttributeType::STRING.into();
    a.s = v.as_bytes().to_vec();
    a
}

/// A FLOAT attribute.
pub fn attr_float(name: &str, v: f32) -> AttributeProto {
    let mut a = AttributeProto::new();
    a.name = name.into();
    a.type_ = onnx_protobuf::attribute_proto::AttributeType::FLOAT.into();
    a.f = v;
    a
}

pub(crate) fn attr_floats_new(name: &str, v: &[f32]) -> AttributeProto {
    let mut a = AttributeProto::new();
    a.name = name.into();
    a.type_ = onnx_protobuf::attribute_proto::AttributeType::FLOATS.into();
    a.floats = v.to_vec();
    a
}

/// An INTS attribute.
pub fn attr_ints_new(name: &str, v: &[i64]) -> AttributeProto {
    let mut a = AttributeProto::new();
    a.name = name.into();
    a.type_ = onnx_protobuf::attribute_proto::AttributeType::INTS.into();
    a.ints = v.to_vec();
    a
}

/// Sets (or adds) the version of an opset domain.
pub(crate) fn set_opset(model: &mut ModelProto, domain: &str, version: i64) {
    if let Some(o) = model
        .opset_import
        .iter_mut()
        .find(|o| o.domain == domain || (domain.is_empty() && o.domain == "ai.onnx"))
    {
        o.version = version;
    } else {
        let mut o = onnx_protobuf::OperatorSetIdProto::new();
        o.domain = domain.to_string();
        o.version = version;
        model.opset_import.push(o);
    }
}

/// Names not yet used in the graph, made from `base`.
pub(crate) struct Namer {
    used: std::collections::HashSet<String>,
}

impl Namer {
    pub(crate) fn new(g: &GraphProto) -> Self {
        let mut used = std::collections::HashSet::new();
        for n in &g.node {
            used.extend(n.output.iter().cloned());
            used.extend(n.input.iter().cloned());
            used.insert(n.name.clone());
        }
        used.extend(g.initializer.iter().map(|t| t.name.clone()));
        used.extend(g.input.iter().map(|v| v.name.clone()));
        used.extend(g.output.iter().map(|v| v.name.clone()));
        Self { used }
    }

    pub(crate) fn fresh(&mut self, base: &str) -> String {
        let mut name = base.to_string();
        let mut i = 1;
        while self.used.contains(&name) {
            name = format!("{base}_{i}");
            i += 1;
        }
        self.used.insert(name.clone());
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_a_clear_error() {
        let e = parse_model(b"this is not an ONNX model", Path::new("x.onnx"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("x.onnx: not a valid ONNX model"), "{e}");
        let e = parse_model(b"", Path::new("empty.onnx"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("empty.onnx"), "{e}");
    }

    #[test]
    fn tensor_roundtrip() {
        let t = f32_tensor("w", &[2, 1], &[1.5, -2.0]);
        assert_eq!(tensor_f32(&t).unwrap(), vec![1.5, -2.0]);
        let t = i64_tensor("s", &[3], &[1, -1, 4]);
        assert_eq!(tensor_i64(&t).unwrap(), vec![1, -1, 4]);
        let mut bad = f32_tensor("w", &[3], &[1.0]);
        assert!(tensor_f32(&bad).unwrap_err().contains("need 3"));
        bad.data_type = DataType::STRING as i32;
        assert!(tensor_f32(&bad).is_err());
    }
}

#[cfg(test)]
mod fixture_tests;
