//! `fuse`: finds the subgraph `torch.onnx.export` (TorchScript exporter, opsets 16–20) writes for
//! the authors' DySample and replaces it by one `ai.dysample::DySample` node.
//!
//! Matching is structural, not a fixed node list, so the authors' code and re-implementations
//! with a differently built base grid match alike:
//! 1. anchor on every `GridSample` (bilinear, `align_corners=0`, `padding_mode=border`) whose
//!    input is `Reshape(X)` and whose output feeds one `Reshape` (Y);
//! 2. take everything Y depends on back to X (stopping at constants); it must be self-contained:
//!    no other graph input, no intermediate value used outside it;
//! 3. in it, find the 1x1 offset conv (with bias) and optional scope conv (no bias, → Sigmoid)
//!    reading X (lp) or `DepthToSpace(X)` (pl), the pixel-shuffle `DepthToSpace` (scale), the
//!    `× 0.25` / `× 0.5` factor and the `init_pos` constant, and check them against the config
//!    they imply.
//!
//! Anything that does not match exactly is left alone and reported. [`crate::onnx::verify`]
//! additionally runs each matched subgraph in ONNX Runtime against the SDK kernel.

use super::{
    attr_i, attr_ints, attr_s, graph, node_label, set_opset, tensor_f32, tensor_i64, Constants,
    Namer, NodeLayer,
};
use crate::config::{DySampleConfig, Style};
use crate::onnx::{NodeAttrs, DOMAIN};
use crate::weights::Weights;
use onnx_protobuf::tensor_proto::DataType;
use onnx_protobuf::{GraphProto, ModelProto, NodeProto};
use std::collections::{BTreeSet, HashMap, HashSet};

/// One matched subgraph.
#[derive(Clone, Debug)]
pub struct FuseMatch {
    /// Name for the new node (from the offset conv's weight name when it has one).
    pub name: String,
    /// The GridSample node the match is anchored on.
    pub anchor: String,
    pub layer: NodeLayer,
    /// Input X and output Y of the subgraph.
    pub input: String,
    pub output: String,
    /// Initializer names of offset weight, bias and scope weight.
    pub weight_names: (String, String, Option<String>),
    /// Indices of the subgraph's nodes in the graph, ascending.
    pub nodes: Vec<usize>,
    /// An input shape the subgraph accepts (from its Reshape constants), for verification.
    pub sample_dims: [usize; 4],
}

/// A GridSample that was not fused, and why.
#[derive(Clone, Debug)]
pub struct Skipped {
    pub anchor: String,
    pub reason: String,
}

/// Matches and non-matches in a model.
#[derive(Clone, Debug, Default)]
pub struct Analysis {
    pub matches: Vec<FuseMatch>,
    pub skipped: Vec<Skipped>,
}

struct Index<'g> {
    g: &'g GraphProto,
    producer: HashMap<&'g str, usize>,
    consumers: HashMap<&'g str, Vec<usize>>,
    graph_inputs: HashSet<&'g str>,
    graph_outputs: HashSet<&'g str>,
    consts: Constants<'g>,
}

impl<'g> Index<'g> {
    fn new(g: &'g GraphProto) -> Self {
        let mut producer = HashMap::new();
        let mut consumers: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, n) in g.node.iter().enumerate() {
            for o in &n.output {
                producer.insert(o.as_str(), i);
            }
            for inp in n.input.iter().filter(|s| !s.is_empty()) {
                consumers.entry(inp.as_str()).or_default().push(i);
            }
        }
        let inits: HashSet<&str> = g.initializer.iter().map(|t| t.name.as_str()).collect();
        Self {
            g,
            producer,
            consumers,
            graph_inputs: g
                .input
                .iter()
                .map(|v| v.name.as_str())
                .filter(|n| !inits.contains(n))
                .collect(),
            graph_outputs: g.output.iter().map(|v| v.name.as_str()).collect(),
            consts: Constants::new(g),
        }
    }

    fn node(&self, i: usize) -> &'g NodeProto {
        &self.g.node[i]
    }

    fn single_consumer(&self, value: &str) -> Option<usize> {
        match self.consumers.get(value).map(Vec::as_slice) {
            Some([one]) if !self.graph_outputs.contains(value) => Some(*one),
            _ => None,
        }
    }

    fn const_f32(&self, name: &str) -> Option<Vec<f32>> {
        self.consts.get(name).and_then(|t| tensor_f32(t).ok())
    }
}

/// Finds every fusable DySample subgraph in the main graph.
pub fn analyze(model: &ModelProto) -> Analysis {
    let g = graph(model);
    let ix = Index::new(g);
    let mut out = Analysis::default();
    let mut taken: HashSet<usize> = HashSet::new();
    for (i, n) in g.node.iter().enumerate() {
        if n.op_type != "GridSample" || !n.domain.is_empty() {
            continue;
        }
        let anchor = node_label(n, i);
        match match_at(&ix, i) {
            Ok(m) if m.nodes.iter().any(|k| taken.contains(k)) => out.skipped.push(Skipped {
                anchor,
                reason: "overlaps another match".into(),
            }),
            Ok(mut m) => {
                taken.extend(m.nodes.iter().copied());
                m.anchor = anchor;
                out.matches.push(m);
            }
            Err(reason) => out.skipped.push(Skipped { anchor, reason }),
        }
    }
    out
}

fn match_at(ix: &Index<'_>, gs: usize) -> std::result::Result<FuseMatch, String> {
    let gsn = ix.node(gs);
    // 1. The anchor and its reshapes.
    let mode = attr_s(gsn, "mode").unwrap_or_else(|| "bilinear".into());
    let padding = attr_s(gsn, "padding_mode").unwrap_or_else(|| "zeros".into());
    let align = attr_i(gsn, "align_corners").unwrap_or(0);
    if !matches!(mode.as_str(), "bilinear" | "linear") || padding != "border" || align != 0 {
        return Err(format!("GridSample has mode={mode}, padding_mode={padding}, align_corners={align}; DySample uses bilinear/border/0"));
    }
    if gsn.input.len() != 2 {
        return Err("GridSample does not have 2 inputs".into());
    }
    let rx = *ix
        .producer
        .get(gsn.input[0].as_str())
        .ok_or("GridSample input is not computed by a Reshape")?;
    let rxn = ix.node(rx);
    if rxn.op_type != "Reshape" {
        return Err(format!(
            "GridSample input comes from {}, not a Reshape of the layer input",
            rxn.op_type
        ));
    }
    let x = rxn.input[0].clone();
    let ry = ix
        .single_consumer(&gsn.output[0])
        .ok_or("GridSample output is not used by exactly one node")?;
    let ryn = ix.node(ry);
    if ryn.op_type != "Reshape" {
        return Err(format!(
            "GridSample output goes to {}, not a Reshape",
            ryn.op_type
        ));
    }
    let y = ryn.output[0].clone();

    // 2. The cone of Y back to X.
    let mut nodes: BTreeSet<usize> = BTreeSet::new();
    let mut stack = vec![ry];
    while let Some(k) = stack.pop() {
        if !nodes.insert(k) {
            continue;
        }
        if nodes.len() > 400 {
            return Err(
                "the subgraph before GridSample is too large to be a DySample layer".into(),
            );
        }
        for inp in ix.node(k).input.iter().filter(|s| !s.is_empty()) {
            if *inp == x || ix.consts.initializer(inp).is_some() {
                continue;
            }
            match ix.producer.get(inp.as_str()) {
                Some(&p) => stack.push(p),
                None if ix.graph_inputs.contains(inp.as_str()) => {
                    return Err(format!("the sampling grid depends on graph input '{inp}' besides the layer input '{x}'"))
                }
                None => return Err(format!("value '{inp}' has no producer")),
            }
        }
    }
    for &k in &nodes {
        if k == ry {
            continue;
        }
        for o in &ix.node(k).output {
            if ix.graph_outputs.contains(o.as_str()) {
                return Err(format!("intermediate value '{o}' is a graph output"));
            }
            if let Some(users) = ix.consumers.get(o.as_str()) {
                if let Some(u) = users.iter().find(|u| !nodes.contains(u)) {
                    return Err(format!(
                        "intermediate value '{o}' is also used by node {}",
                        node_label(ix.node(*u), *u)
                    ));
                }
            }
        }
    }

    // 3. The parts.
    let in_set = |k: usize| nodes.contains(&k);
    let ops = |op: &'static str| {
        nodes
            .iter()
            .copied()
            .filter(move |&k| ix.node(k).op_type == op && ix.node(k).domain.is_empty())
    };
    let d2s_of_x: Vec<usize> = ops("DepthToSpace")
        .filter(|&k| ix.node(k).input[0] == x)
        .collect();
    let conv_inputs: HashSet<String> = std::iter::once(x.clone())
        .chain(d2s_of_x.iter().map(|&k| ix.node(k).output[0].clone()))
        .collect();
    let convs: Vec<usize> = ops("Conv").collect();
    if convs
        .iter()
        .any(|&k| !conv_inputs.contains(&ix.node(k).input[0]))
    {
        return Err("a Conv in the subgraph does not read the layer input".into());
    }
    let offset: Vec<usize> = convs
        .iter()
        .copied()
        .filter(|&k| ix.node(k).input.len() >= 3 && !ix.node(k).input[2].is_empty())
        .collect();
    let scope: Vec<usize> = convs
        .iter()
        .copied()
        .filter(|k| !offset.contains(k))
        .collect();
    let [oc] = offset[..] else {
        return Err(format!(
            "expected one offset Conv with bias, found {}",
            offset.len()
        ));
    };
    if scope.len() > 1 {
        return Err(format!(
            "expected at most one scope Conv, found {}",
            scope.len()
        ));
    }
    let sc = scope.first().copied();
    for &k in offset.iter().chain(&scope) {
        check_1x1(ix, k)?;
    }
    let ocn = ix.node(oc);
    let style = if ocn.input[0] == x {
        Style::Lp
    } else {
        Style::Pl
    };
    if let Some(k) = sc {
        if ix.node(k).input[0] != ocn.input[0] {
            return Err("the scope Conv reads a different tensor than the offset Conv".into());
        }
        let sig = ix
            .consumers
            .get(ix.node(k).output[0].as_str())
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        if !matches!(sig, [u] if in_set(*u) && ix.node(*u).op_type == "Sigmoid") {
            return Err("the scope Conv is not followed by a Sigmoid".into());
        }
    }
    let shuffles: Vec<usize> = ops("DepthToSpace")
        .filter(|k| !d2s_of_x.contains(k))
        .collect();
    let [sh] = shuffles[..] else {
        return Err(format!(
            "expected one pixel-shuffle DepthToSpace on the grid, found {}",
            shuffles.len()
        ));
    };
    let mut blocks = vec![sh];
    blocks.extend(&d2s_of_x);
    for &k in &blocks {
        let m = attr_s(ix.node(k), "mode").unwrap_or_else(|| "DCR".into());
        if m != "CRD" {
            return Err(format!(
                "DepthToSpace mode {m}; pixel_shuffle exports as CRD"
            ));
        }
    }
    let scale = attr_i(ix.node(sh), "blocksize").unwrap_or(0);
    if d2s_of_x
        .iter()
        .any(|&k| attr_i(ix.node(k), "blocksize") != Some(scale))
    {
        return Err(
            "the pl pixel shuffle and the grid's pixel shuffle have different scales".into(),
        );
    }

    let w_name = ocn.input[1].clone();
    let b_name = ocn.input[2].clone();
    let w = ix
        .consts
        .initializer(&w_name)
        .ok_or_else(|| format!("offset Conv weight '{w_name}' is not an initializer"))?;
    let b = ix
        .consts
        .initializer(&b_name)
        .ok_or_else(|| format!("offset Conv bias '{b_name}' is not an initializer"))?;
    let (o, cin) = crate::onnx::conv_weight_dims(&w.dims)?;
    let s2 = (scale * scale).max(1) as usize;
    let groups = match style {
        Style::Lp if o % (2 * s2) == 0 => o / (2 * s2),
        Style::Pl if o % 2 == 0 => o / 2,
        _ => {
            return Err(format!(
                "offset Conv has {o} output channels, not 2·groups{} for scale {scale}",
                if style == Style::Lp { "·scale²" } else { "" }
            ))
        }
    };
    let attrs = NodeAttrs::parse(
        Some(scale),
        Some(if style == Style::Lp { "lp" } else { "pl" }),
        Some(groups as i64),
        Some(sc.is_some() as i64),
    )?;
    let cfg: DySampleConfig = attrs.config(o, cin)?;

    // The constants that pin the config down.
    let factor = cfg.offset_factor();
    let has_factor = ops("Mul").any(|k| {
        ix.node(k).input.iter().any(|i| {
            ix.const_f32(i)
                .is_some_and(|v| v.len() == 1 && v[0] == factor)
        })
    });
    if !has_factor {
        return Err(format!(
            "no multiplication by {factor} (the {} offset factor)",
            if cfg.dyscope { "dyscope" } else { "static" }
        ));
    }
    let want = cfg.init_pos();
    let init_pos_ok = ops("Add").any(|k| {
        ix.node(k).input.iter().any(|i| {
            ix.const_f32(i).is_some_and(|v| {
                v.len() == want.len() && v.iter().zip(&want).all(|(a, b)| (a - b).abs() <= 1e-6)
            })
        })
    });
    if !init_pos_ok {
        return Err(format!(
            "no init_pos constant matching scale={scale}, groups={groups}"
        ));
    }

    let wv = tensor_f32(w)?;
    let bv = tensor_f32(b)?;
    let (sv, s_name) = match sc {
        Some(k) => {
            let n = ix.node(k).input[1].clone();
            let t = ix
                .consts
                .initializer(&n)
                .ok_or_else(|| format!("scope Conv weight '{n}' is not an initializer"))?;
            if crate::onnx::conv_weight_dims(&t.dims)? != (o, cin) {
                return Err("scope Conv weight shape differs from the offset Conv's".into());
            }
            (Some(tensor_f32(t)?), Some(n))
        }
        None => (None, None),
    };
    let weights = Weights::new(&cfg, wv, bv, sv).map_err(|e| e.to_string())?;
    let elem = super::data_type(w).unwrap_or(DataType::FLOAT);

    // A shape the subgraph takes: the exporter bakes [B·g, C/g, H, W] into the Reshape of X.
    let rshape = ix
        .consts
        .get(&rxn.input[1])
        .and_then(|t| tensor_i64(t).ok())
        .unwrap_or_default();
    let pick = |i: usize, dflt: usize| {
        rshape
            .get(i)
            .copied()
            .filter(|&v| v > 0)
            .map_or(dflt, |v| v as usize)
    };
    let batch = pick(0, groups) / groups;
    let sample_dims = [batch.max(1), cfg.channels, pick(2, 5), pick(3, 7)];

    let base = w_name
        .strip_suffix("offset.weight")
        .map(|p| p.trim_end_matches('.'))
        .filter(|p| !p.is_empty())
        .unwrap_or("dysample");
    Ok(FuseMatch {
        name: base.to_string(),
        anchor: String::new(),
        layer: NodeLayer {
            config: cfg,
            weights,
            elem,
            quant: None,
        },
        input: x,
        output: y,
        weight_names: (w_name, b_name, s_name),
        nodes: nodes.into_iter().collect(),
        sample_dims,
    })
}

fn check_1x1(ix: &Index<'_>, k: usize) -> std::result::Result<(), String> {
    let n = ix.node(k);
    let ones = |a: &str| attr_ints(n, a).is_none_or(|v| v.iter().all(|&x| x == 1));
    let zeros = attr_ints(n, "pads").is_none_or(|v| v.iter().all(|&x| x == 0));
    let ks = attr_ints(n, "kernel_shape").is_none_or(|v| v == [1, 1]);
    let auto_pad = attr_s(n, "auto_pad").is_none_or(|p| p == "NOTSET" || p == "VALID");
    if ks
        && ones("strides")
        && ones("dilations")
        && zeros
        && auto_pad
        && attr_i(n, "group").unwrap_or(1) == 1
    {
        Ok(())
    } else {
        Err(format!(
            "Conv {} is not a plain 1x1 convolution",
            node_label(n, k)
        ))
    }
}

/// Replaces the given matches (from [`analyze`] on this same model) by DySample nodes.
pub fn apply(model: &mut ModelProto, matches: &[FuseMatch]) -> Vec<String> {
    if matches.is_empty() {
        return Vec::new();
    }
    let g = graph(model);
    let mut namer = Namer::new(g);
    let remove: HashSet<usize> = matches
        .iter()
        .flat_map(|m| m.nodes.iter().copied())
        .collect();
    // The new node takes the place of the subgraph's last node (its Reshape to Y).
    let mut at: HashMap<usize, NodeProto> = HashMap::new();
    let mut names = Vec::new();
    for m in matches {
        let cfg = &m.layer.config;
        let name = namer.fresh(&m.name);
        let (w, b, s) = &m.weight_names;
        let mut inputs = vec![m.input.as_str(), w.as_str(), b.as_str()];
        if let Some(s) = s {
            inputs.push(s.as_str());
        }
        let node = super::dysample_node(&name, &inputs, &m.output, cfg, None);
        let last = *m.nodes.last().unwrap_or(&0);
        at.insert(last, node);
        names.push(name);
    }
    let old = std::mem::take(&mut model.graph.mut_or_insert_default().node);
    let removed_inputs: HashSet<String> = remove
        .iter()
        .flat_map(|&k| old[k].input.iter().cloned())
        .collect();
    let mut nodes = Vec::with_capacity(old.len());
    for (i, n) in old.into_iter().enumerate() {
        if let Some(new) = at.remove(&i) {
            nodes.push(new);
        } else if !remove.contains(&i) {
            nodes.push(n);
        }
    }
    let g = model.graph.mut_or_insert_default();
    g.node = nodes;
    prune_initializers(g, &removed_inputs);
    set_opset(model, DOMAIN, 1);
    names
}

/// Drops initializers among `candidates` that no node uses any more.
pub(crate) fn prune_initializers(g: &mut GraphProto, candidates: &HashSet<String>) {
    let used: HashSet<&str> = g
        .node
        .iter()
        .flat_map(|n| n.input.iter().map(String::as_str))
        .chain(g.output.iter().map(|o| o.name.as_str()))
        .collect();
    let drop: HashSet<String> = g
        .initializer
        .iter()
        .map(|t| t.name.clone())
        .filter(|n| candidates.contains(n) && !used.contains(n.as_str()))
        .collect();
    g.initializer.retain(|t| !drop.contains(&t.name));
    g.input.retain(|v| !drop.contains(&v.name));
}

/// A standalone model of one match (input X with `sample_dims`, output Y), to run it alone.
pub fn extract(model: &ModelProto, m: &FuseMatch) -> ModelProto {
    let g = graph(model);
    let mut sub = GraphProto::new();
    sub.name = format!("{}_subgraph", m.name);
    sub.node = m.nodes.iter().map(|&k| g.node[k].clone()).collect();
    let used: HashSet<&str> = sub
        .node
        .iter()
        .flat_map(|n| n.input.iter().map(String::as_str))
        .collect();
    sub.initializer = g
        .initializer
        .iter()
        .filter(|t| used.contains(t.name.as_str()))
        .cloned()
        .collect();
    let elem = if m.layer.elem == DataType::FLOAT16 {
        DataType::FLOAT16
    } else {
        DataType::FLOAT
    };
    sub.input
        .push(value_info(&m.input, elem, Some(&m.sample_dims)));
    sub.output.push(value_info(&m.output, elem, None));
    let mut out = ModelProto::new();
    out.ir_version = model.ir_version;
    out.opset_import = model.opset_import.clone();
    out.producer_name = "dysample onnx fuse (verification)".into();
    out.graph = protobuf::MessageField::some(sub);
    out
}

fn value_info(
    name: &str,
    elem: DataType,
    dims: Option<&[usize; 4]>,
) -> onnx_protobuf::ValueInfoProto {
    use onnx_protobuf::tensor_shape_proto::{dimension::Value as Dim, Dimension};
    use onnx_protobuf::type_proto::{Tensor, Value};
    let mut t = Tensor::new();
    t.elem_type = elem as i32;
    if let Some(d) = dims {
        let mut shape = onnx_protobuf::TensorShapeProto::new();
        shape.dim = d
            .iter()
            .map(|&v| {
                let mut x = Dimension::new();
                x.value = Some(Dim::DimValue(v as i64));
                x
            })
            .collect();
        t.shape = protobuf::MessageField::some(shape);
    }
    let mut ty = onnx_protobuf::TypeProto::new();
    ty.value = Some(Value::TensorType(t));
    let mut v = onnx_protobuf::ValueInfoProto::new();
    v.name = name.to_string();
    v.type_ = protobuf::MessageField::some(ty);
    v
}
