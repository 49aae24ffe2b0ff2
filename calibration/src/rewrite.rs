//! Float-exact rewrites of the f32 graph, made before calibration so that ONNX Runtime can fuse
//! the int8 graph into its int8 kernels. Its QDQ selectors turn `DQ → op → Q` into a QLinear*
//! kernel for Conv, Add, Mul, Concat, Sigmoid, GlobalAveragePool, AveragePool, … but not for
//! Pad, ReduceMean or HardSwish: those stay float, each between a DequantizeLinear and a
//! QuantizeLinear over the whole tensor (person-seg: 4 Pads, 10 ReduceMeans, 11 HardSwishes).
//!
//! - A zero-constant `Pad` whose only readers are 2-D `Conv`s goes into their `pads`
//!   attribute (ORT's PadFusion does so for a float graph, never across Q/DQ).
//! - `ReduceMean` over every spatial axis of an N-C-spatial tensor, keepdims, becomes
//!   `GlobalAveragePool` (→ QLinearGlobalAveragePool).
//! - `HardSwish(x)` becomes `Mul(x, HardSigmoid(x))` with α = 1/6, β = 1/2: its ONNX definition,
//!   and what ORT expands it to anyway. The Mul then fuses to QLinearMul, and [`crate::qdq`]
//!   writes the HardSigmoid as a QLinearAdd (see there).
//!
//! Every tensor that is not removed keeps its name, so ranges and exclusions still match. The
//! shipped models give the same outputs within 1e-5 before and after (`tests/rewrite.rs`).

use crate::graph::Model;
use dysample::onnx::graph::proto::{GraphProto, NodeProto, TensorProto};
use dysample::onnx::graph::{attr, attr_float, attr_ints_new, tensor_f32, tensor_i64};
use std::collections::{HashMap, HashSet};

/// What [`apply`] changed.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Rewrites {
    /// Pads folded into the Convs that read them.
    pub pads: usize,
    /// ReduceMeans made GlobalAveragePools.
    pub reduce_means: usize,
    /// HardSwishes made `x · HardSigmoid(x)`.
    pub hard_swishes: usize,
    /// Float tensors the rewrites added (the HardSigmoid outputs).
    pub new_tensors: Vec<String>,
}

/// Applies every rewrite. `shapes`: the dims of the float activations (a probe run's outputs);
/// a ReduceMean whose input rank is not known there is left alone.
pub fn apply(m: &mut Model, shapes: &HashMap<String, Vec<usize>>) -> Rewrites {
    let mut r = Rewrites::default();
    let gr = m.proto.graph.mut_or_insert_default();
    r.pads = fold_pads(gr);
    r.reduce_means = reduce_mean_to_gap(gr, shapes);
    r.new_tensors = hard_swish_to_mul(gr);
    r.hard_swishes = r.new_tensors.len();
    remove_dead_nodes(gr);
    if let Some(f) = m.floats.as_mut() {
        f.extend(r.new_tensors.iter().cloned());
    }
    tracing::info!(
        pads = r.pads,
        reduce_means = r.reduce_means,
        hard_swishes = r.hard_swishes,
        "float graph rewritten for int8 fusion"
    );
    r
}

/// A small int64 tensor.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Ints {
    dims: Vec<usize>,
    v: Vec<i64>,
}

/// Most elements a constant-evaluated int64 tensor may have (shape arithmetic is tiny).
const MAX_CONST: usize = 4096;

fn count(dims: &[usize]) -> Option<usize> {
    dims.iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .filter(|&n| n <= MAX_CONST)
}

fn strides(dims: &[usize]) -> Vec<usize> {
    let mut s = vec![1; dims.len()];
    for i in (0..dims.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * dims[i + 1];
    }
    s
}

/// Evaluates the int64 shape arithmetic exporters emit for padding (torch's `F.pad`:
/// ConstantOfShape → Concat → Reshape → Slice → Transpose → Reshape → Cast) from initializers.
/// `None` for anything else: the rewrite that asked is then skipped.
struct ConstEval<'g> {
    inits: HashMap<&'g str, &'g TensorProto>,
    producer: HashMap<&'g str, &'g NodeProto>,
}

impl<'g> ConstEval<'g> {
    fn new(gr: &'g GraphProto) -> Self {
        Self {
            inits: gr
                .initializer
                .iter()
                .map(|t| (t.name.as_str(), t))
                .collect(),
            producer: gr
                .node
                .iter()
                .flat_map(|n| n.output.iter().map(move |o| (o.as_str(), n)))
                .collect(),
        }
    }

    fn tensor(t: &TensorProto) -> Option<Ints> {
        let dims: Vec<usize> = t
            .dims
            .iter()
            .map(|&d| usize::try_from(d).ok())
            .collect::<Option<_>>()?;
        count(&dims)?;
        let v = tensor_i64(t).ok()?;
        Some(Ints { dims, v })
    }

    fn eval(&self, name: &str, depth: usize) -> Option<Ints> {
        if depth > 32 || name.is_empty() {
            return None;
        }
        if let Some(t) = self.inits.get(name) {
            return Self::tensor(t);
        }
        let n = *self.producer.get(name)?;
        if !n.domain.is_empty() || n.output.len() != 1 {
            return None;
        }
        let arg = |k: usize| self.eval(n.input.get(k)?, depth + 1);
        let int_attr = |a: &str| attr(n, a).map(|a| a.i);
        match n.op_type.as_str() {
            "ConstantOfShape" => {
                let s = arg(0)?;
                let dims: Vec<usize> =
                    s.v.iter()
                        .map(|&d| usize::try_from(d).ok())
                        .collect::<Option<_>>()?;
                let len = count(&dims)?;
                let value = match attr(n, "value").and_then(|a| a.t.as_ref()) {
                    None => 0,
                    Some(t) => match tensor_i64(t) {
                        Ok(v) => *v.first()?,
                        Err(_) => {
                            let f = *tensor_f32(t).ok()?.first()?;
                            if f.fract() != 0.0 {
                                return None;
                            }
                            f as i64
                        }
                    },
                };
                Some(Ints {
                    dims,
                    v: vec![value; len],
                })
            }
            "Concat" => {
                // 1-D only (shape vectors).
                let axis = int_attr("axis")?;
                if axis != 0 && axis != -1 {
                    return None;
                }
                let mut v = Vec::new();
                for k in 0..n.input.len() {
                    let t = arg(k)?;
                    if t.dims.len() != 1 {
                        return None;
                    }
                    v.extend(t.v);
                }
                count(&[v.len()])?;
                Some(Ints {
                    dims: vec![v.len()],
                    v,
                })
            }
            "Reshape" => {
                let x = arg(0)?;
                let s = arg(1)?;
                let allowzero = int_attr("allowzero").unwrap_or(0) != 0;
                let mut dims = Vec::with_capacity(s.v.len());
                let mut infer = None;
                for (i, &d) in s.v.iter().enumerate() {
                    match d {
                        -1 if infer.is_none() => {
                            infer = Some(i);
                            dims.push(1);
                        }
                        0 if !allowzero => dims.push(*x.dims.get(i)?),
                        d if d >= 0 => dims.push(d as usize),
                        _ => return None,
                    }
                }
                let known = count(&dims)?;
                if let Some(i) = infer {
                    if known == 0 || x.v.len() % known != 0 {
                        return None;
                    }
                    dims[i] = x.v.len() / known;
                }
                (count(&dims)? == x.v.len()).then_some(Ints { dims, v: x.v })
            }
            "Transpose" => {
                let x = arg(0)?;
                let r = x.dims.len();
                let perm: Vec<usize> = match attr(n, "perm") {
                    Some(a) => a
                        .ints
                        .iter()
                        .map(|&p| usize::try_from(p).ok().filter(|&p| p < r))
                        .collect::<Option<_>>()?,
                    None => (0..r).rev().collect(),
                };
                let mut seen = vec![false; r];
                for &p in &perm {
                    if std::mem::replace(&mut seen[p], true) {
                        return None;
                    }
                }
                if perm.len() != r {
                    return None;
                }
                let dims: Vec<usize> = perm.iter().map(|&p| x.dims[p]).collect();
                let (si, so) = (strides(&x.dims), strides(&dims));
                let v = (0..x.v.len())
                    .map(|o| {
                        let src: usize = (0..r).map(|k| (o / so[k]) % dims[k] * si[perm[k]]).sum();
                        x.v[src]
                    })
                    .collect();
                Some(Ints { dims, v })
            }
            "Slice" => {
                let x = arg(0)?;
                let r = x.dims.len();
                let starts = arg(1)?.v;
                let ends = arg(2)?.v;
                let axes: Vec<i64> = match n.input.get(3).filter(|s| !s.is_empty()) {
                    Some(_) => arg(3)?.v,
                    None => (0..starts.len() as i64).collect(),
                };
                let steps: Vec<i64> = match n.input.get(4).filter(|s| !s.is_empty()) {
                    Some(_) => arg(4)?.v,
                    None => vec![1; starts.len()],
                };
                if ends.len() != starts.len()
                    || axes.len() != starts.len()
                    || steps.len() != starts.len()
                {
                    return None;
                }
                // Per axis, the source indices it keeps.
                let mut idx: Vec<Vec<usize>> = x.dims.iter().map(|&d| (0..d).collect()).collect();
                for k in 0..starts.len() {
                    let a = if axes[k] < 0 {
                        axes[k] + r as i64
                    } else {
                        axes[k]
                    };
                    let a = usize::try_from(a).ok().filter(|&a| a < r)?;
                    let d = x.dims[a] as i64;
                    let step = steps[k];
                    if step == 0 {
                        return None;
                    }
                    let fix = |v: i64| if v < 0 { v.saturating_add(d) } else { v };
                    let (s, e) = (fix(starts[k]), fix(ends[k]));
                    let mut keep = Vec::new();
                    if step > 0 {
                        let (mut i, e) = (s.clamp(0, d), e.clamp(0, d));
                        while i < e {
                            keep.push(i as usize);
                            i += step;
                        }
                    } else {
                        let (mut i, e) = (s.clamp(0, d - 1), e.clamp(-1, d - 1));
                        while i > e {
                            keep.push(i as usize);
                            i += step;
                        }
                    }
                    idx[a] = keep;
                }
                let dims: Vec<usize> = idx.iter().map(Vec::len).collect();
                let len = count(&dims)?;
                let (si, so) = (strides(&x.dims), strides(&dims));
                let v = (0..len)
                    .map(|o| {
                        let src: usize =
                            (0..r).map(|k| idx[k][(o / so[k]) % dims[k]] * si[k]).sum();
                        x.v[src]
                    })
                    .collect();
                Some(Ints { dims, v })
            }
            "Cast" => {
                use dysample::onnx::graph::proto::tensor_proto::DataType;
                let to = int_attr("to")?;
                (to == DataType::INT64 as i64 || to == DataType::INT32 as i64)
                    .then(|| arg(0))
                    .flatten()
            }
            _ => None,
        }
    }
}

/// A float scalar constant input is exactly `v` (absent counts as 0).
fn is_zero_value(gr: &GraphProto, name: Option<&String>) -> bool {
    let Some(name) = name.filter(|s| !s.is_empty()) else {
        return true;
    };
    gr.initializer
        .iter()
        .find(|t| &t.name == name)
        .and_then(|t| tensor_f32(t).ok())
        .is_some_and(|v| v.iter().all(|&x| x == 0.0))
}

/// The (begin H, begin W, end H, end W) zero padding of a 4-D constant `Pad` that pads only the
/// spatial axes, or `None`.
fn spatial_pads(gr: &GraphProto, ev: &ConstEval, n: &NodeProto) -> Option<[i64; 4]> {
    if !n.domain.is_empty() || n.op_type != "Pad" || n.output.len() != 1 {
        return None;
    }
    let mode = attr(n, "mode")
        .map(|a| a.s.as_slice())
        .unwrap_or(b"constant");
    if mode != b"constant" {
        return None;
    }
    let pads: Vec<i64> = match n.input.get(1).filter(|s| !s.is_empty()) {
        Some(p) => ev.eval(p, 0)?.v,
        // opset < 11: attributes.
        None => attr(n, "pads")?.ints.clone(),
    };
    let value_zero = match attr(n, "value") {
        Some(a) => a.f == 0.0,
        None => is_zero_value(gr, n.input.get(2)),
    };
    // An `axes` input (opset 18) would reorder the pads: not handled.
    if !value_zero || n.input.get(3).is_some_and(|s| !s.is_empty()) || pads.len() != 8 {
        return None;
    }
    let ok = pads.iter().all(|&p| p >= 0)
        && pads[0] == 0
        && pads[1] == 0
        && pads[4] == 0
        && pads[5] == 0;
    ok.then_some([pads[2], pads[3], pads[6], pads[7]])
}

/// A plain 2-D Conv (4-D weight, explicit pads) that reads `t` as its data input only.
fn foldable_conv(gr: &GraphProto, c: &NodeProto, t: &str) -> bool {
    let explicit = attr(c, "auto_pad").is_none_or(|a| a.s.is_empty() || a.s == b"NOTSET");
    let pads_ok = attr(c, "pads").is_none_or(|a| a.ints.len() == 4);
    let w4 = c
        .input
        .get(1)
        .and_then(|w| gr.initializer.iter().find(|i| &i.name == w))
        .is_some_and(|w| w.dims.len() == 4)
        || attr(c, "kernel_shape").is_some_and(|a| a.ints.len() == 2);
    c.domain.is_empty()
        && c.op_type == "Conv"
        && c.input.first().is_some_and(|i| i == t)
        && c.input.iter().skip(1).all(|i| i != t)
        && explicit
        && pads_ok
        && w4
}

fn fold_pads(gr: &mut GraphProto) -> usize {
    let outputs: HashSet<String> = gr.output.iter().map(|o| o.name.clone()).collect();
    let mut plan: Vec<(usize, [i64; 4], Vec<usize>)> = Vec::new();
    {
        let ev = ConstEval::new(gr);
        let mut readers: HashMap<&str, Vec<usize>> = HashMap::new();
        for (j, n) in gr.node.iter().enumerate() {
            for i in &n.input {
                readers.entry(i.as_str()).or_default().push(j);
            }
        }
        for (i, n) in gr.node.iter().enumerate() {
            let Some(p) = spatial_pads(gr, &ev, n) else {
                continue;
            };
            let y = n.output[0].as_str();
            let rs = readers.get(y).cloned().unwrap_or_default();
            if outputs.contains(y) || rs.is_empty() {
                continue;
            }
            if rs.iter().all(|&j| foldable_conv(gr, &gr.node[j], y)) {
                plan.push((i, p, rs));
            }
        }
    }
    let mut drop = HashSet::new();
    for (i, p, convs) in &plan {
        let x = gr.node[*i].input[0].clone();
        for &j in convs {
            let c = &mut gr.node[j];
            let old = attr(c, "pads")
                .map(|a| a.ints.clone())
                .unwrap_or(vec![0; 4]);
            let new: Vec<i64> = old.iter().zip(p).map(|(a, b)| a + b).collect();
            c.attribute.retain(|a| a.name != "pads");
            c.attribute.push(attr_ints_new("pads", &new));
            c.input[0] = x.clone();
        }
        drop.insert(*i);
    }
    let mut k = 0;
    gr.node.retain(|_| {
        k += 1;
        !drop.contains(&(k - 1))
    });
    plan.len()
}

fn reduce_mean_to_gap(gr: &mut GraphProto, shapes: &HashMap<String, Vec<usize>>) -> usize {
    let mut todo = Vec::new();
    {
        let ev = ConstEval::new(gr);
        for (i, n) in gr.node.iter().enumerate() {
            if !n.domain.is_empty() || n.op_type != "ReduceMean" || n.output.len() != 1 {
                continue;
            }
            let Some(rank) = n.input.first().and_then(|x| shapes.get(x)).map(Vec::len) else {
                continue;
            };
            if rank < 3 || attr(n, "keepdims").is_some_and(|a| a.i != 1) {
                continue;
            }
            let axes = match attr(n, "axes") {
                Some(a) => Some(a.ints.clone()),
                // opset 18: an input.
                None => n
                    .input
                    .get(1)
                    .filter(|s| !s.is_empty())
                    .and_then(|a| ev.eval(a, 0))
                    .map(|t| t.v),
            };
            let Some(axes) = axes else { continue };
            let mut axes: Vec<i64> = axes
                .iter()
                .map(|&a| if a < 0 { a + rank as i64 } else { a })
                .collect();
            axes.sort_unstable();
            if axes == (2..rank as i64).collect::<Vec<_>>() {
                todo.push(i);
            }
        }
    }
    for &i in &todo {
        let n = &mut gr.node[i];
        n.op_type = "GlobalAveragePool".into();
        n.input.truncate(1);
        n.attribute.clear();
    }
    todo.len()
}

/// Returns the HardSigmoid outputs it made.
fn hard_swish_to_mul(gr: &mut GraphProto) -> Vec<String> {
    let mut made = Vec::new();
    let mut nodes = Vec::with_capacity(gr.node.len());
    for (i, n) in std::mem::take(&mut gr.node).into_iter().enumerate() {
        if !n.domain.is_empty()
            || n.op_type != "HardSwish"
            || n.input.len() != 1
            || n.output.len() != 1
        {
            nodes.push(n);
            continue;
        }
        let name = if n.name.is_empty() {
            format!("HardSwish#{i}")
        } else {
            n.name.clone()
        };
        let (x, y) = (n.input[0].clone(), n.output[0].clone());
        let h = format!("{y}/hardsigmoid");
        let mut hs = NodeProto::new();
        hs.op_type = "HardSigmoid".into();
        hs.name = format!("{name}/HardSigmoid");
        hs.input = vec![x.clone()];
        hs.output = vec![h.clone()];
        hs.attribute = vec![attr_float("alpha", 1.0 / 6.0), attr_float("beta", 0.5)];
        let mut mul = NodeProto::new();
        mul.op_type = "Mul".into();
        mul.name = format!("{name}/Mul");
        mul.input = vec![x, h.clone()];
        mul.output = vec![y];
        nodes.push(hs);
        nodes.push(mul);
        made.push(h);
    }
    gr.node = nodes;
    made
}

/// Drops nodes none of whose outputs is read (the shape arithmetic of folded Pads), then the
/// initializers nothing reads.
fn remove_dead_nodes(gr: &mut GraphProto) {
    loop {
        let used: HashSet<String> = gr
            .node
            .iter()
            .flat_map(|n| n.input.iter().cloned())
            .chain(gr.output.iter().map(|o| o.name.clone()))
            .collect();
        let before = gr.node.len();
        gr.node
            .retain(|n| n.output.iter().any(|o| !o.is_empty() && used.contains(o)));
        if gr.node.len() == before {
            let inputs: HashSet<String> = gr.input.iter().map(|v| v.name.clone()).collect();
            gr.initializer
                .retain(|t| used.contains(&t.name) || inputs.contains(&t.name));
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dysample::onnx::graph::i64_tensor;

    fn node(op: &str, inputs: &[&str], out: &str) -> NodeProto {
        let mut n = NodeProto::new();
        n.op_type = op.into();
        n.input = inputs.iter().map(|s| s.to_string()).collect();
        n.output = vec![out.into()];
        n
    }

    /// torch's `F.pad(x, [l, r, t, b])` export, evaluated by hand: pads
    /// `[0, 0, t, l, 0, 0, b, r]`.
    #[test]
    fn evaluates_torch_pad_arithmetic() {
        let mut g = GraphProto::new();
        g.initializer.push(i64_tensor("c1", &[4], &[1, 2, 3, 4])); // l, r, t, b
        g.initializer.push(i64_tensor("len", &[1], &[4]));
        g.initializer.push(i64_tensor("shape2", &[2], &[-1, 2]));
        g.initializer.push(i64_tensor("st", &[1], &[-1]));
        g.initializer.push(i64_tensor("en", &[1], &[i64::MIN + 1]));
        g.initializer.push(i64_tensor("ax", &[1], &[0]));
        g.initializer.push(i64_tensor("sp", &[1], &[-1]));
        g.initializer.push(i64_tensor("flat", &[1], &[-1]));
        g.node.push(node("ConstantOfShape", &["len"], "zeros"));
        let mut cat = node("Concat", &["c1", "zeros"], "cat");
        cat.attribute
            .push(dysample::onnx::graph::attr_int("axis", 0));
        g.node.push(cat);
        g.node.push(node("Reshape", &["cat", "shape2"], "r"));
        g.node
            .push(node("Slice", &["r", "st", "en", "ax", "sp"], "s"));
        let mut tr = node("Transpose", &["s"], "t");
        tr.attribute.push(attr_ints_new("perm", &[1, 0]));
        g.node.push(tr);
        g.node.push(node("Reshape", &["t", "flat"], "pads"));
        let ev = ConstEval::new(&g);
        // [[1,2],[3,4],[0,0],[0,0]] reversed → [[0,0],[0,0],[3,4],[1,2]], transposed and
        // flattened → [0,0,3,1, 0,0,4,2].
        assert_eq!(ev.eval("pads", 0).unwrap().v, vec![0, 0, 3, 1, 0, 0, 4, 2]);
        assert_eq!(ev.eval("r", 0).unwrap().dims, vec![4, 2]);
        // A non-constant input is not evaluated.
        assert!(ev.eval("x", 0).is_none());
    }

    #[test]
    fn slice_clamps_like_onnx() {
        let mut g = GraphProto::new();
        g.initializer
            .push(i64_tensor("x", &[5], &[10, 11, 12, 13, 14]));
        g.initializer.push(i64_tensor("s", &[1], &[1]));
        g.initializer.push(i64_tensor("e", &[1], &[100]));
        g.initializer.push(i64_tensor("st", &[1], &[2]));
        g.initializer.push(i64_tensor("a", &[1], &[0]));
        g.node.push(node("Slice", &["x", "s", "e", "a", "st"], "y"));
        g.initializer.push(i64_tensor("s2", &[1], &[-2]));
        g.initializer.push(i64_tensor("e2", &[1], &[-100]));
        g.initializer.push(i64_tensor("m1", &[1], &[-1]));
        g.node
            .push(node("Slice", &["x", "s2", "e2", "a", "m1"], "z"));
        let ev = ConstEval::new(&g);
        assert_eq!(ev.eval("y", 0).unwrap().v, vec![11, 13]);
        assert_eq!(ev.eval("z", 0).unwrap().v, vec![13, 12, 11, 10]);
    }
}
