//! Writing the quantized model: QuantizeLinear/DequantizeLinear pairs on every calibrated
//! tensor, int8 per-output-channel weights behind a DequantizeLinear, int32 biases (CPU), and
//! each int8 DySample as the SDK's int8 custom-op node between Q and DQ with the input's scale
//! and zero point (`/work/int8_node_spec.md`: the output keeps them).

use crate::error::{CalibError, Result};
use crate::graph::{weighted, Model, Plan};
use dysample::onnx::graph::proto::tensor_proto::DataType;
use dysample::onnx::graph::proto::{ModelProto, NodeProto, TensorProto};
use dysample::onnx::graph::{attr_float, attr_int, tensor_f32};
use dysample::quant::Affine;
use std::collections::{HashMap, HashSet};

/// What the Q/DQ graph is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavour {
    /// ONNX Runtime CPU: inputs and outputs of every quantized op, int32 biases, int8 DySample.
    /// Activations are stored as uint8 with the zero point shifted by 128 (the same values:
    /// `clamp(round(x/s) + z + 128, 0, 255) − 128 = clamp(round(x/s) + z, −128, 127)`), because
    /// ONNX Runtime's x86 QDQ fusion turns every `DQ → Conv → Q` into QLinearConv only for
    /// U8S8; each int8 DySample gets its own int8 QuantizeLinear of the same scale, and its
    /// int8 output is dequantized and requantized to uint8 losslessly (same scale).
    Cpu,
    /// TensorRT explicit quantization: Q/DQ in front of the quantized ops only, zero point 0,
    /// float biases.
    TensorRt,
}

fn node(op: &str, name: &str, inputs: &[&str], outputs: &[&str]) -> NodeProto {
    let mut n = NodeProto::new();
    n.op_type = op.into();
    n.name = name.into();
    n.input = inputs.iter().map(|s| s.to_string()).collect();
    n.output = outputs.iter().map(|s| s.to_string()).collect();
    n
}

fn tensor(name: &str, dims: &[i64], ty: DataType, raw: Vec<u8>) -> TensorProto {
    let mut t = TensorProto::new();
    t.name = name.into();
    t.dims = dims.to_vec();
    t.data_type = ty as i32;
    t.raw_data = raw;
    t
}

fn f32s(name: &str, dims: &[i64], v: &[f32]) -> TensorProto {
    tensor(
        name,
        dims,
        DataType::FLOAT,
        v.iter().flat_map(|x| x.to_le_bytes()).collect(),
    )
}

fn i8s(name: &str, dims: &[i64], v: &[i8]) -> TensorProto {
    tensor(
        name,
        dims,
        DataType::INT8,
        v.iter().map(|&x| x as u8).collect(),
    )
}

fn u8s(name: &str, dims: &[i64], v: &[u8]) -> TensorProto {
    tensor(name, dims, DataType::UINT8, v.to_vec())
}

fn i32s(name: &str, dims: &[i64], v: &[i32]) -> TensorProto {
    tensor(
        name,
        dims,
        DataType::INT32,
        v.iter().flat_map(|x| x.to_le_bytes()).collect(),
    )
}

/// The integer range of the int8 weights.
///
/// ONNX Runtime's U8S8 kernels on x86 without VNNI (AVX2, AVX-512F/BW) multiply with
/// `vpmaddubsw`, which adds two `u8 × s8` products into a saturating i16: `2 · 255 · 127`
/// overflows it, and a saturated sum is silently wrong (ORT's own quantizer calls the cure
/// `reduce_range`). With weights in ±63, `2 · 255 · 63 = 32130` always fits. On this project's
/// AVX2 machine full-range weights cost person-seg 0.13–0.30 IoU; see docs/calibration/.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WeightRange {
    /// ±127: exact on VNNI / AMX / ARM (dot-product or widening) kernels and in TensorRT.
    Full,
    /// ±63 (7 bits): exact on every ONNX Runtime CPU kernel.
    Reduced,
}

impl WeightRange {
    pub fn qmax(self) -> f32 {
        match self {
            WeightRange::Full => 127.0,
            WeightRange::Reduced => 63.0,
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "full" | "8" => Ok(WeightRange::Full),
            "reduced" | "7" => Ok(WeightRange::Reduced),
            other => Err(CalibError::msg(format!(
                "--weight-range '{other}': expected full (±127) or reduced (±63)"
            ))),
        }
    }
}

impl std::fmt::Display for WeightRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            WeightRange::Full => "full",
            WeightRange::Reduced => "reduced",
        })
    }
}

/// Per-output-channel symmetric scales of a weight `[O, …]`: `max|w[o]| / 127` (1 for an
/// all-zero channel, which then quantizes to zeros exactly).
pub fn channel_scales(w: &[f32], o: usize) -> Vec<f32> {
    channel_scales_in(w, o, WeightRange::Full)
}

/// [`channel_scales`] for a weight range: `max|w[o]| / qmax`.
pub fn channel_scales_in(w: &[f32], o: usize, r: WeightRange) -> Vec<f32> {
    let qmax = r.qmax();
    let per = w.len() / o.max(1);
    (0..o)
        .map(|c| {
            let m = w[c * per..(c + 1) * per]
                .iter()
                .fold(0f32, |a, &x| a.max(x.abs()));
            if m > 0.0 {
                m / qmax
            } else {
                1.0
            }
        })
        .collect()
}

/// Quantizes a weight `[O, …]` with per-channel scales: `clamp(round(w / s[o]), −127, 127)`.
pub fn quantize_weight(w: &[f32], scales: &[f32]) -> Vec<i8> {
    quantize_weight_in(w, scales, WeightRange::Full)
}

/// [`quantize_weight`] clamped to the weight range's `±qmax`.
pub fn quantize_weight_in(w: &[f32], scales: &[f32], r: WeightRange) -> Vec<i8> {
    let per = w.len() / scales.len().max(1);
    let q = r.qmax();
    w.iter()
        .enumerate()
        .map(|(i, &x)| (x / scales[i / per]).round().clamp(-q, q) as i8)
        .collect()
}

/// Builds the quantized model. `affine`: the int8 parameters of every tensor in `plan.tensors`.
pub fn write(
    model: &Model,
    plan: &Plan,
    affine: &HashMap<String, Affine>,
    flavour: Flavour,
    weights: WeightRange,
) -> Result<ModelProto> {
    let src = model.graph();
    let inits: HashMap<&str, &TensorProto> = src
        .initializer
        .iter()
        .map(|t| (t.name.as_str(), t))
        .collect();
    let quantized: HashSet<usize> = plan.nodes.iter().copied().collect();
    let int8_dy: HashSet<usize> = plan.dysample.iter().copied().collect();
    let mut producer: HashMap<&str, usize> = src
        .node
        .iter()
        .enumerate()
        .flat_map(|(i, n)| n.output.iter().map(move |o| (o.as_str(), i)))
        .collect();
    for (&a, &p) in &plan.folded {
        producer.insert(src.node[a].output[0].as_str(), p);
    }
    let mut qset: HashSet<&str> = plan.tensors.iter().map(String::as_str).collect();
    // A DySample output has its input's scale and zero point.
    let mut affine = affine.clone();
    for &i in &plan.dysample {
        let n = &src.node[i];
        if let Some(a) = affine.get(&n.input[0]).copied() {
            affine.insert(n.output[0].clone(), a);
        }
        // Its quantized consumers read it through a uint8 Q/DQ pair of the same scale behind
        // the int8 DequantizeLinear (exact: the values are multiples of the scale): ONNX
        // Runtime's x86 QLinearConv / QLinearConcat fusions need uint8 on every input, and a
        // Conv behind an int8 DQ stayed float. ORT 1.31 keeps the DQ(int8) → Q(uint8) pair as
        // the two nodes it is (its Q/DQ cleanup compares zero-point types): tests/int8_graph.rs
        // checks the fusion, tests/cli.rs the int8 model's output (an earlier build saw int8
        // bytes reach a uint8 kernel here and read the DQ directly).
        if flavour == Flavour::TensorRt {
            qset.remove(n.output[0].as_str());
        }
    }
    let u8_act = flavour == Flavour::Cpu;
    // HardSigmoid(x) = clamp(αx + β, 0, 1) has no int8 kernel in ONNX Runtime. With its output
    // quantized at scale 1/255, zero point 0 (uint8), it is the quantization of x + β/α at
    // scale 1/(255α): `Add(x, β/α) → Q(1/(255α)) → DQ(1/255)`, which ORT fuses to one
    // QLinearAdd (the DQ's different scale is only a reinterpretation of the same integers),
    // and the `x · HardSigmoid(x)` of a HardSwish to QLinearAdd + QLinearMul. Only where every
    // reader goes through the output's DQ (none excluded, not a graph output, no folded Relu).
    let graph_outputs: HashSet<&str> = src.output.iter().map(|o| o.name.as_str()).collect();
    let mut readers: HashMap<&str, Vec<usize>> = HashMap::new();
    for (j, n) in src.node.iter().enumerate() {
        for t in &n.input {
            readers.entry(t.as_str()).or_default().push(j);
        }
    }
    let folds_into: HashSet<usize> = plan.folded.values().copied().collect();
    let mut hard_sigmoid: HashMap<usize, (f32, f32)> = HashMap::new();
    for &i in &plan.nodes {
        let n = &src.node[i];
        if !u8_act || n.op_type != "HardSigmoid" || n.output.len() != 1 || folds_into.contains(&i) {
            continue;
        }
        let y = n.output[0].as_str();
        let f = |name: &str, d: f32| {
            n.attribute
                .iter()
                .find(|a| a.name == name)
                .map_or(d, |a| a.f)
        };
        let (alpha, beta) = (f("alpha", 0.2), f("beta", 0.5));
        let ok = alpha > 0.0
            && alpha.is_finite()
            && beta.is_finite()
            && qset.contains(y)
            && !graph_outputs.contains(y)
            && readers
                .get(y)
                .is_some_and(|r| r.iter().all(|j| !plan.excluded.contains(j)));
        if ok {
            hard_sigmoid.insert(i, (alpha, beta));
            affine.insert(
                y.to_string(),
                Affine {
                    scale: 1.0 / 255.0,
                    zero_point: -128,
                },
            );
        }
    }
    let get = |t: &str| -> Result<Affine> {
        affine
            .get(t)
            .copied()
            .ok_or_else(|| CalibError::msg(format!("tensor '{t}' has no calibrated range")))
    };

    let mut new_inits: Vec<TensorProto> = Vec::new();
    let mut head: Vec<NodeProto> = Vec::new();
    let mut nodes: Vec<NodeProto> = Vec::new();
    let qdq = |t: &str, a: Affine, inits: &mut Vec<TensorProto>| -> Vec<NodeProto> {
        let (s, z) = (format!("{t}/scale"), format!("{t}/zero_point"));
        inits.push(f32s(&s, &[], &[a.scale]));
        if u8_act {
            inits.push(u8s(&z, &[], &[(a.zero_point + 128) as u8]));
        } else {
            inits.push(i8s(&z, &[], &[a.zero_point as i8]));
        }
        vec![
            node(
                "QuantizeLinear",
                &format!("{t}/QuantizeLinear"),
                &[t, &s, &z],
                &[&format!("{t}/q")],
            ),
            node(
                "DequantizeLinear",
                &format!("{t}/DequantizeLinear"),
                &[&format!("{t}/q"), &s, &z],
                &[&format!("{t}/dq")],
            ),
        ]
    };
    // Graph inputs first.
    for v in &src.input {
        if qset.contains(v.name.as_str()) {
            head.extend(qdq(&v.name, get(&v.name)?, &mut new_inits));
        }
    }
    let mut weights_done: HashMap<String, (String, Vec<f32>)> = HashMap::new();
    let folded_outs: HashSet<String> = plan
        .folded
        .keys()
        .map(|&a| src.node[a].output[0].clone())
        .collect();
    let fold_into: HashMap<usize, String> = plan
        .folded
        .iter()
        .map(|(&a, &p)| (p, src.node[a].output[0].clone()))
        .collect();
    for (i, n0) in src.node.iter().enumerate() {
        if plan.folded.contains_key(&i) {
            continue;
        }
        let mut n = n0.clone();
        if let Some(o) = fold_into.get(&i) {
            n.output[0] = o.clone();
        }
        let is_q = quantized.contains(&i);
        let is_dy8 = int8_dy.contains(&i);
        // Rewire activation inputs: quantized consumers, and every consumer of a quantized
        // producer's output (so ORT sees `op → Q` alone and fuses it).
        for inp in n.input.iter_mut() {
            if !qset.contains(inp.as_str()) {
                continue;
            }
            if is_dy8 {
                // The int8 QuantizeLinear of the DySample input (added below).
                *inp = format!("{inp}/q_int8");
                continue;
            }
            let from_q = producer
                .get(inp.as_str())
                .is_some_and(|p| quantized.contains(p));
            // An excluded node reads the float value, except a folded activation's output: that
            // name holds the producer's value before the quantizer's clamp (the Relu is gone).
            let float_read = plan.excluded.contains(&i) && !folded_outs.contains(inp.as_str());
            if is_q || (flavour == Flavour::Cpu && from_q && !float_read) {
                *inp = format!("{inp}/dq");
            }
        }
        if is_q && weighted(&n.op_type) {
            let wname = n0.input[1].clone();
            let w = inits.get(wname.as_str()).ok_or_else(|| {
                CalibError::msg(format!(
                    "node '{}': weight '{wname}' is not an initializer",
                    model.node_name(i)
                ))
            })?;
            let entry = match weights_done.get(&wname) {
                Some(e) => e.clone(),
                None => {
                    let v = tensor_f32(w).map_err(CalibError::msg)?;
                    // Conv: per output channel (axis 0). ConvTranspose ([Cin, Cout/g, …]),
                    // MatMul and Gemm: per tensor.
                    let per_channel = n.op_type == "Conv" && w.dims.len() >= 2;
                    let o = if per_channel { w.dims[0] as usize } else { 1 };
                    let scales = channel_scales_in(&v, o, weights);
                    let q = quantize_weight_in(&v, &scales, weights);
                    let (qn, sn, zn, dq) = (
                        format!("{wname}/int8"),
                        format!("{wname}/scale"),
                        format!("{wname}/zero_point"),
                        format!("{wname}/dq"),
                    );
                    new_inits.push(i8s(&qn, &w.dims, &q));
                    let sdims: Vec<i64> = if per_channel { vec![o as i64] } else { vec![] };
                    new_inits.push(f32s(&sn, &sdims, &scales));
                    new_inits.push(i8s(&zn, &sdims, &vec![0; o]));
                    let mut d = node(
                        "DequantizeLinear",
                        &format!("{wname}/DequantizeLinear"),
                        &[&qn, &sn, &zn],
                        &[&dq],
                    );
                    if per_channel {
                        d.attribute.push(attr_int("axis", 0));
                    }
                    head.push(d);
                    let e = (dq, scales);
                    weights_done.insert(wname.clone(), e.clone());
                    e
                }
            };
            n.input[1] = entry.0.clone();
            // Bias as int32 in the accumulator's scale (ORT's QLinearConv needs it so).
            if flavour == Flavour::Cpu
                && n.op_type == "Conv"
                && n.input.len() > 2
                && !n.input[2].is_empty()
            {
                let bname = n0.input[2].clone();
                if let Some(b) = inits.get(bname.as_str()) {
                    let xs = get(&n0.input[0])?.scale;
                    let bv = tensor_f32(b).map_err(CalibError::msg)?;
                    let ws = &entry.1;
                    if ws.len() == bv.len() {
                        let bs: Vec<f32> = ws.iter().map(|s| s * xs).collect();
                        let bq: Vec<i32> = bv
                            .iter()
                            .zip(&bs)
                            .map(|(v, s)| {
                                (*v as f64 / *s as f64)
                                    .round()
                                    .clamp(i32::MIN as f64, i32::MAX as f64)
                                    as i32
                            })
                            .collect();
                        let tag = format!("{bname}/{}", model.node_name(i));
                        let (qn, sn, zn, dq) = (
                            format!("{tag}/int32"),
                            format!("{tag}/scale"),
                            format!("{tag}/zero_point"),
                            format!("{tag}/dq"),
                        );
                        let o = bv.len() as i64;
                        new_inits.push(i32s(&qn, &[o], &bq));
                        new_inits.push(f32s(&sn, &[o], &bs));
                        new_inits.push(i32s(&zn, &[o], &vec![0; bv.len()]));
                        let mut d = node(
                            "DequantizeLinear",
                            &format!("{tag}/DequantizeLinear"),
                            &[&qn, &sn, &zn],
                            &[&dq],
                        );
                        d.attribute.push(attr_int("axis", 0));
                        head.push(d);
                        n.input[2] = dq;
                    }
                }
            }
        }
        if let Some(&(alpha, beta)) = hard_sigmoid.get(&i) {
            let y = n0.output[0].clone();
            let x = n.input[0].clone();
            let c = beta / alpha;
            let shifted = if c != 0.0 {
                // c exactly: 255 · |c|/255 (zero point 0) or (0 − 255) · |c|/255 (zero point 255).
                let (cq, cs, cz, cd) = (
                    format!("{y}/offset/uint8"),
                    format!("{y}/offset/scale"),
                    format!("{y}/offset/zero_point"),
                    format!("{y}/offset/dq"),
                );
                let (q, z) = if c > 0.0 { (255u8, 0u8) } else { (0u8, 255u8) };
                new_inits.push(u8s(&cq, &[], &[q]));
                new_inits.push(f32s(&cs, &[], &[c.abs() / 255.0]));
                new_inits.push(u8s(&cz, &[], &[z]));
                head.push(node(
                    "DequantizeLinear",
                    &format!("{y}/offset/DequantizeLinear"),
                    &[&cq, &cs, &cz],
                    &[&cd],
                ));
                let t = format!("{y}/shifted");
                nodes.push(node(
                    "Add",
                    &format!("{}/Add", model.node_name(i)),
                    &[&x, &cd],
                    &[&t],
                ));
                t
            } else {
                x
            };
            let (ts, s, z) = (
                format!("{y}/shifted/scale"),
                format!("{y}/scale"),
                format!("{y}/zero_point"),
            );
            new_inits.push(f32s(&ts, &[], &[1.0 / (255.0 * alpha)]));
            new_inits.push(f32s(&s, &[], &[1.0 / 255.0]));
            new_inits.push(u8s(&z, &[], &[0]));
            nodes.push(node(
                "QuantizeLinear",
                &format!("{y}/QuantizeLinear"),
                &[&shifted, &ts, &z],
                &[&format!("{y}/q")],
            ));
            nodes.push(node(
                "DequantizeLinear",
                &format!("{y}/DequantizeLinear"),
                &[&format!("{y}/q"), &s, &z],
                &[&format!("{y}/dq")],
            ));
            continue;
        }
        if is_dy8 {
            let x = &n0.input[0];
            let a = get(x)?;
            n.attribute.push(attr_float("x_scale", a.scale));
            n.attribute
                .push(attr_int("x_zero_point", a.zero_point as i64));
            let (xs, xz, xq) = (
                format!("{x}/scale_int8"),
                format!("{x}/zero_point_int8"),
                format!("{x}/q_int8"),
            );
            new_inits.push(f32s(&xs, &[], &[a.scale]));
            new_inits.push(i8s(&xz, &[], &[a.zero_point as i8]));
            // From the uint8 pair's dequantized value (exact multiples of the scale, so this
            // requantization is exact), leaving the producer's output to its own Q alone.
            let src_x = if qset.contains(x.as_str()) {
                format!("{x}/dq")
            } else {
                x.clone()
            };
            nodes.push(node(
                "QuantizeLinear",
                &format!("{x}/QuantizeLinear_int8"),
                &[&src_x, &xs, &xz],
                &[&xq],
            ));
            let y = n0.output[0].clone();
            let yq = format!("{y}/q_int8");
            n.output[0] = yq.clone();
            nodes.push(n);
            nodes.push(node(
                "DequantizeLinear",
                &format!("{y}/DequantizeLinear_int8"),
                &[&yq, &xs, &xz],
                &[&y],
            ));
            if u8_act && qset.contains(y.as_str()) {
                nodes.extend(qdq(&y, a, &mut new_inits));
            }
        } else {
            let outs: Vec<String> = n.output.clone();
            nodes.push(n);
            for o in outs.iter().filter(|o| qset.contains(o.as_str())) {
                nodes.extend(qdq(o, get(o)?, &mut new_inits));
            }
        }
    }
    let mut out = model.proto.clone();
    let g = out.graph.mut_or_insert_default();
    head.extend(nodes);
    g.node = head;
    g.initializer.extend(new_inits);
    // Weights now stored as int8: drop the f32 copies nothing reads any more.
    let used: HashSet<String> = g
        .node
        .iter()
        .flat_map(|n| n.input.iter().cloned())
        .collect();
    g.initializer.retain(|t| used.contains(&t.name));
    g.value_info.clear();
    if out.ir_version > 10 {
        out.ir_version = 10;
    }
    Ok(out)
}
