//! The `--target cpu` graph as ONNX Runtime runs it: the float rewrites of `rewrite.rs` are
//! exact on the shipped models, the int8 graph of person-seg and depth fuses to int8 kernels
//! (no float island between a DequantizeLinear and a QuantizeLinear but around the int8
//! DySample nodes and the float head), and the HardSigmoid written as a QLinearAdd computes
//! the quantized HardSigmoid.

use dysample::onnx::graph::attr_float;
use dysample::onnx::graph::proto::{
    tensor_shape_proto, type_proto, AttributeProto, GraphProto, ModelProto, NodeProto,
    OperatorSetIdProto, TensorShapeProto, TypeProto, ValueInfoProto,
};
use dysample::onnx::session::SessionOptions;
use dysample::quant::Affine;
use dysample_calibrate::collect::{float_shapes, session, RunOptions};
use dysample_calibrate::graph::{all_activations, to_bytes, with_outputs, Model, Plan, CPU_OPS};
use dysample_calibrate::pipeline::{self, Options, Target};
use dysample_calibrate::qdq::{self, Flavour, WeightRange};
use dysample_calibrate::rewrite;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn run_opts() -> RunOptions {
    RunOptions {
        threads: 2,
        ort_lib: None,
        progress: false,
    }
}

fn reference_input(model: &str, k: usize) -> (Vec<f32>, Vec<usize>) {
    let a =
        dysample::npy::read_f32(&root().join(format!("models/{model}/reference/input_{k}.npy")))
            .unwrap();
    (a.data, a.dims)
}

fn run_all(m: &Model, x: &[f32], dims: &[usize]) -> Vec<(String, Vec<f32>)> {
    let mut s = session(m, &m.proto, "input", &run_opts()).unwrap();
    s.run_f32_outputs(x, dims)
        .unwrap()
        .into_iter()
        .map(|(n, (_, v))| (n, v))
        .collect()
}

fn ops(m: &Model) -> BTreeMap<String, usize> {
    let mut c = BTreeMap::new();
    for n in &m.graph().node {
        *c.entry(n.op_type.clone()).or_default() += 1;
    }
    c
}

/// (model, pads folded, ReduceMeans, HardSwishes): counted by hand from the exported graphs.
const SHIPPED: [(&str, usize, usize, usize); 2] = [("person-seg", 4, 10, 11), ("depth", 13, 0, 0)];

/// The nodes of `m` that compute `y` from tensors `orig` also has, as a model of its own with
/// that one activation input (every rewrite here reads one).
fn local_model(
    m: &Model,
    orig_names: &HashSet<String>,
    y: &str,
    shapes: &HashMap<String, Vec<usize>>,
) -> (Model, String) {
    let g = m.graph();
    let inits: HashSet<&str> = g.initializer.iter().map(|t| t.name.as_str()).collect();
    let producer: HashMap<&str, &NodeProto> = g
        .node
        .iter()
        .flat_map(|n| n.output.iter().map(move |o| (o.as_str(), n)))
        .collect();
    let (mut nodes, mut inputs, mut todo) = (Vec::new(), BTreeSet::new(), vec![y.to_string()]);
    while let Some(t) = todo.pop() {
        let n = producer[t.as_str()];
        if nodes.iter().any(|k: &NodeProto| k.output == n.output) {
            continue;
        }
        nodes.insert(0, n.clone());
        for i in n
            .input
            .iter()
            .filter(|i| !i.is_empty() && !inits.contains(i.as_str()))
        {
            if orig_names.contains(i) {
                inputs.insert(i.clone());
            } else {
                todo.push(i.clone());
            }
        }
    }
    assert_eq!(inputs.len(), 1, "{y}: inputs {inputs:?}");
    let x = inputs.into_iter().next().unwrap();
    let dims: Vec<i64> = shapes[&x].iter().map(|&d| d as i64).collect();
    let used: HashSet<&String> = nodes.iter().flat_map(|n| n.input.iter()).collect();
    let mut sub = GraphProto::new();
    sub.initializer = g
        .initializer
        .iter()
        .filter(|t| used.contains(&t.name))
        .cloned()
        .collect();
    sub.node = nodes;
    sub.input = vec![value_info(&x, &dims)];
    let mut out = ValueInfoProto::new();
    out.name = y.to_string();
    sub.output = vec![out];
    let mut p = m.proto.clone();
    p.graph = Some(sub).into();
    (
        Model {
            proto: p,
            ..m.clone()
        },
        x,
    )
}

/// Each rewrite alone: the rewritten nodes fed the original graph's own input tensor give
/// its output tensor within 1e-5 of the tensor's largest value (only summation order
/// differs). The whole rewritten graph then stays within 1e-4 on every tensor: person-seg
/// amplifies the last bits of its SE means (GlobalAveragePool sums in another order than
/// ReduceMean) to 2e-5 on the deepest tensors; ONNX Runtime's own graph optimizations move its
/// output by 4e-6. Depth (Pads only) is bit-exact.
#[test]
fn rewrites_are_exact_on_the_shipped_models() {
    for (name, pads, means, swishes) in SHIPPED {
        let path = root().join(format!("models/{name}/model.onnx"));
        let orig = Model::load(&path).unwrap();
        let (x0, d0) = reference_input(name, 0);
        let shapes = float_shapes(
            &orig,
            &all_activations(&orig),
            &x0,
            &d0,
            "input",
            &run_opts(),
        )
        .unwrap();
        let mut m = orig.clone();
        let r = rewrite::apply(&mut m, &shapes);
        assert_eq!(
            (r.pads, r.reduce_means, r.hard_swishes),
            (pads, means, swishes),
            "{name}: {r:?}"
        );
        let after = ops(&m);
        for gone in ["Pad", "ReduceMean", "HardSwish"] {
            assert!(!after.contains_key(gone), "{name}: {gone} left: {after:?}");
        }
        // The pads' shape arithmetic went with them.
        if pads > 0 {
            assert!(!after.contains_key("ConstantOfShape"), "{name}: {after:?}");
        }
        // Every tensor both graphs have.
        let kept: HashSet<String> = all_activations(&m).into_iter().collect();
        let orig_names: HashSet<String> = all_activations(&orig).into_iter().collect();
        let common: Vec<String> = all_activations(&orig)
            .into_iter()
            .filter(|t| kept.contains(t) && shapes.contains_key(t))
            .collect();
        let (orig_all, m_all) = (
            Model {
                proto: with_outputs(&orig, &common),
                ..orig.clone()
            },
            Model {
                proto: with_outputs(&m, &common),
                ..m.clone()
            },
        );
        // The tensors a rewritten node computes: their producer differs.
        let producer = |g: &GraphProto, t: &str| {
            g.node
                .iter()
                .find(|n| n.output.iter().any(|o| o == t))
                .cloned()
        };
        let changed: Vec<String> = common
            .iter()
            .filter(|t| producer(orig.graph(), t) != producer(m.graph(), t))
            .cloned()
            .collect();
        assert!(
            changed.len() >= pads + means + swishes,
            "{name}: {changed:?}"
        );
        for k in 0..2 {
            let (x, d) = reference_input(name, k);
            let a: HashMap<String, Vec<f32>> = run_all(&orig_all, &x, &d).into_iter().collect();
            let b = run_all(&m_all, &x, &d);
            assert_eq!(a.len(), b.len());
            let rel = |va: &[f32], vb: &[f32]| {
                assert_eq!(va.len(), vb.len());
                let scale = va.iter().fold(f32::MIN_POSITIVE, |s, v| s.max(v.abs()));
                va.iter()
                    .zip(vb)
                    .map(|(p, q)| (p - q).abs())
                    .fold(0f32, f32::max)
                    / scale
            };
            for (t, vb) in &b {
                let e = rel(&a[t], vb);
                assert!(
                    e <= 1e-4,
                    "{name} input {k} tensor {t}: relative error {e:e}"
                );
                if pads + means + swishes == pads {
                    assert_eq!(e, 0.0, "{name} input {k} tensor {t}");
                }
            }
            for t in &changed {
                let (lm, xin) = local_model(&m, &orig_names, t, &shapes);
                let mut s = session(&lm, &lm.proto, &xin, &run_opts()).unwrap();
                let xv = if xin == "input" { &x } else { &a[&xin] };
                let (_, got) = s.run_f32(xv, &shapes[&xin]).unwrap();
                let e = rel(&a[t], &got);
                assert!(
                    e <= 1e-5,
                    "{name} input {k}: rewritten {t}: relative error {e:e}"
                );
            }
        }
    }
}

/// Op types ORT ran, from its profiler.
fn placement(model: &Path, dims: &[usize]) -> BTreeMap<String, usize> {
    let mut o = SessionOptions::new().threads(2);
    o.record_placement = true;
    let mut s = o.build(model).unwrap();
    let n: usize = dims.iter().product();
    let x: Vec<f32> = (0..n).map(|i| (i % 251) as f32 / 251.0).collect();
    s.run_f32(&x, dims).unwrap();
    let mut c = BTreeMap::new();
    for (op, _) in s.placement().values() {
        *c.entry(op.clone()).or_default() += 1;
    }
    c
}

/// `--target cpu` on a shipped model with 4 calibration samples, into `out`.
fn cpu_options(name: &str, out: &Path, fusion: bool) -> Options {
    Options {
        model: root().join(format!("models/{name}")),
        model_json: None,
        input_spec: None,
        data: root()
            .join(format!("models/calib/{name}"))
            .display()
            .to_string(),
        samples: Some(4),
        method: dysample_calibrate::methods::Method::parse("percentile").unwrap(),
        symmetric: false,
        targets: vec![Target::Cpu],
        out: out.to_path_buf(),
        run: run_opts(),
        exclude: BTreeSet::new(),
        float_dysample: false,
        weight_range: WeightRange::Reduced,
        fusion,
        trt_version: 8601,
        report: None,
    }
}

#[test]
fn no_fusion_keeps_the_graph_as_exported() {
    // `--no-fusion`: person-seg's ReduceMean and HardSwish stay float ops between Q/DQ pairs
    // (what the QAT model was trained for); with fusion they become int8 kernels.
    let tmp = tempfile::tempdir().unwrap();
    let dims = [1, 3, 256, 256];
    let mut ran = Vec::new();
    for fusion in [false, true] {
        let out = tmp.path().join(format!("out-{fusion}"));
        pipeline::run(&cpu_options("person-seg", &out, fusion)).unwrap();
        ran.push(placement(&out.join(pipeline::CPU_MODEL), &dims));
    }
    let n = |m: &BTreeMap<String, usize>, op: &str| m.get(op).copied().unwrap_or(0);
    assert_eq!(n(&ran[0], "ReduceMean"), 10, "{:?}", ran[0]);
    assert_eq!(n(&ran[0], "QLinearGlobalAveragePool"), 0, "{:?}", ran[0]);
    assert!(n(&ran[0], "QuantizeLinear") > 20, "{:?}", ran[0]);
    assert_eq!(n(&ran[1], "ReduceMean"), 0, "{:?}", ran[1]);
    assert_eq!(n(&ran[1], "QLinearGlobalAveragePool"), 10, "{:?}", ran[1]);
}

#[test]
fn int8_graph_of_the_shipped_models_fuses() {
    for (name, head_ops) in [
        ("person-seg", &["ConvTranspose", "Sigmoid"][..]),
        ("depth", &["Conv", "Softplus"][..]),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("out");
        let o = cpu_options(name, &out, true);
        pipeline::run(&o).unwrap();
        let md = dysample_models::ModelDir::open(root().join(format!("models/{name}"))).unwrap();
        let dims = [1, 3, md.model.input.height, md.model.input.width];
        let ran = placement(&out.join(pipeline::CPU_MODEL), &dims);
        let dysamples = ran.get("DySample").copied().unwrap_or(0);
        assert!(dysamples > 0, "{name}: {ran:?}");
        // Float work allowed: the DySample nodes' int8 ⇄ uint8 conversions (DQ → Q on each side),
        // the input's quantizer, the head's DQs (activation, weight, bias), and the NHWC transposes ORT puts around the
        // custom op; everything else an int8 kernel.
        let qdq = ran.get("QuantizeLinear").copied().unwrap_or(0)
            + ran.get("DequantizeLinear").copied().unwrap_or(0);
        assert!(
            qdq <= 4 * dysamples + 4,
            "{name}: {qdq} Q/DQ nodes: {ran:?}"
        );
        for (op, count) in &ran {
            let int8 = op.starts_with("QLinear");
            let allowed = int8
                || [
                    "QuantizeLinear",
                    "DequantizeLinear",
                    "DySample",
                    "Transpose",
                ]
                .contains(&op.as_str())
                || (head_ops.contains(&op.as_str()) && *count == 1);
            assert!(
                allowed,
                "{name}: {count} {op} node(s) ran in float: {ran:?}"
            );
        }
        assert!(ran.contains_key("QLinearConv"), "{name}: {ran:?}");
    }
}

fn value_info(name: &str, dims: &[i64]) -> ValueInfoProto {
    let mut shape = TensorShapeProto::new();
    shape.dim = dims
        .iter()
        .map(|&d| {
            let mut dim = tensor_shape_proto::Dimension::new();
            dim.value = Some(tensor_shape_proto::dimension::Value::DimValue(d));
            dim
        })
        .collect();
    let mut t = type_proto::Tensor::new();
    t.elem_type = 1;
    t.shape = Some(shape).into();
    let mut ty = TypeProto::new();
    ty.value = Some(type_proto::Value::TensorType(t));
    let mut v = ValueInfoProto::new();
    v.name = name.into();
    v.type_ = Some(ty).into();
    v
}

fn node(op: &str, inputs: &[&str], out: &str, attrs: Vec<AttributeProto>) -> NodeProto {
    let mut n = NodeProto::new();
    n.op_type = op.into();
    n.name = format!("{op}_{out}");
    n.input = inputs.iter().map(|s| s.to_string()).collect();
    n.output = vec![out.into()];
    n.attribute = attrs;
    n
}

/// `y = Mul(x, HardSigmoid(x))` through the CPU writer: HardSigmoid becomes
/// `Add(x, β/α) → Q(1/(255α)) → DQ(1/255)`. Each product must equal `x̂ · ĥ` with x̂ the
/// dequantized input and ĥ = clamp(round(255(αx̂ + β)), 0, 255)/255 computed here in f64; the
/// f32 arithmetic in ORT may land a tie (x̂ on a half step of ĥ) on the other side, so ĥ may
/// differ by one step where 255(αx̂ + β) is within 1e-3 of a half.
#[test]
fn hard_sigmoid_is_written_as_a_quantized_add() {
    for (alpha, beta) in [(1.0f32 / 6.0, 0.5f32), (0.2, 0.5), (0.25, -0.3)] {
        let n = 512usize;
        let mut g = GraphProto::new();
        g.node = vec![
            node(
                "HardSigmoid",
                &["x"],
                "h",
                vec![attr_float("alpha", alpha), attr_float("beta", beta)],
            ),
            node("Mul", &["x", "h"], "y", vec![]),
            // A head that stays float and folds nothing: `y` keeps no quantizer.
            node("Identity", &["y"], "output", vec![]),
        ];
        g.input = vec![value_info("input", &[1, 1, 1, n as i64])];
        g.node.insert(0, node("Identity", &["input"], "x", vec![]));
        g.output = vec![value_info("output", &[1, 1, 1, n as i64])];
        let mut p = ModelProto::new();
        p.ir_version = 8;
        let mut op = OperatorSetIdProto::new();
        op.version = 17;
        p.opset_import = vec![op];
        p.graph = Some(g).into();
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("hs.onnx");
        std::fs::write(&path, to_bytes(&p).unwrap()).unwrap();
        let m = Model::load(&path).unwrap();
        let plan = Plan::with_folding(&m, CPU_OPS, &BTreeSet::new(), true, true);
        let xa = Affine {
            // Not a multiple of 6/255: few exact ties of the HardSigmoid's rounding.
            scale: 0.0371,
            zero_point: -5,
        };
        let mut aff = HashMap::new();
        for t in &plan.tensors {
            // The HardSigmoid's output affine is the writer's own (1/255); give it a wrong one.
            aff.insert(
                t.clone(),
                if t == "h" {
                    Affine {
                        scale: 0.3,
                        zero_point: 7,
                    }
                } else {
                    xa
                },
            );
        }
        assert!(
            aff.contains_key("h") && aff.contains_key("x"),
            "{:?}",
            plan.tensors
        );
        let q = qdq::write(&m, &plan, &aff, Flavour::Cpu, WeightRange::Reduced).unwrap();
        let qp = tmp.path().join("hs_int8.onnx");
        std::fs::write(&qp, to_bytes(&q).unwrap()).unwrap();
        let gq = q.graph.as_ref().unwrap();
        assert!(gq.node.iter().all(|n| n.op_type != "HardSigmoid"));
        let mut s = SessionOptions::new().threads(1).build(&qp).unwrap();
        let x: Vec<f32> = (0..n).map(|i| -6.0 + 12.0 * i as f32 / n as f32).collect();
        let (_, y) = s.run_f32(&x, &[1, 1, 1, n]).unwrap();
        let (mut exact, mut ties) = (0, 0);
        for (i, (&xv, &yv)) in x.iter().zip(&y).enumerate() {
            let z = xa.zero_point as f64 + 128.0;
            let xq = ((xv as f64 / xa.scale as f64).round_ties_even() + z).clamp(0.0, 255.0);
            let xh = (xq - z) * xa.scale as f64;
            let pre = 255.0 * (alpha as f64 * xh + beta as f64);
            let hh = pre.round_ties_even().clamp(0.0, 255.0) / 255.0;
            let want = xh * hh;
            let err = (yv as f64 - want).abs();
            if err <= 1e-6 * (1.0 + want.abs()) {
                exact += 1;
            } else {
                let near_half = (pre - pre.floor() - 0.5).abs() < 1e-3;
                assert!(
                    near_half && err <= xh.abs() / 255.0 + 1e-6,
                    "alpha {alpha} beta {beta} x {xv} (#{i}): got {yv}, want {want}"
                );
                ties += 1;
            }
        }
        assert!(exact > n * 9 / 10, "{exact} exact, {ties} ties");
    }
}
