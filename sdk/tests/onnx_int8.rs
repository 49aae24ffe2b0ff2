//! The int8 `ai.dysample::DySample` node inside ONNX Runtime: one-node int8 models and the QDQ
//! sandwich `QuantizeLinear -> DySample(int8) -> DequantizeLinear` give exactly the bytes of
//! `QuantizedDySample::forward_slice` for lp/pl, dyscope on/off, zero point 0 and non-zero,
//! given and derived weight scales, batch > 1; malformed int8 nodes fail at session creation
//! with one line naming the node and the attribute; the graph tools see the node as int8.
//!
//! Models are written here with `graph::layer_model` (onnx-protobuf); the expected bytes come
//! from the SDK's int8 layer run directly, the oracle the int8 golden tests pin.
//! Needs the ONNX Runtime library (python3's onnxruntime package or ORT_DYLIB_PATH).
#![cfg(all(feature = "onnxruntime", feature = "onnx-graph"))]

use dysample::onnx::graph::{self, LayerIo};
use dysample::onnx::session::SessionOptions;
use dysample::{
    Affine, DySample, DySampleConfig, Layout, QuantParams, QuantizedDySample, Style, Symmetry,
};
use rand::{Rng, SeedableRng};
use std::path::{Path, PathBuf};

/// (style, scale, groups, dyscope, channels)
const CONFIGS: &[(Style, usize, usize, bool, usize)] = &[
    (Style::Lp, 2, 4, false, 16),
    (Style::Lp, 3, 2, true, 8),
    (Style::Pl, 2, 2, false, 8),
    (Style::Pl, 2, 1, true, 12),
];

fn layer(i: usize) -> DySample {
    let (style, scale, groups, dyscope, c) = CONFIGS[i];
    let cfg = DySampleConfig::new(c, scale, style, groups, dyscope).unwrap();
    DySample::random(cfg, 100 + i as u64).unwrap()
}

/// Smooth-ish input with a few large values, so offsets are not all tiny.
fn input(c: usize, dims: [usize; 4], seed: u64) -> Vec<f32> {
    let mut r = rand::rngs::StdRng::seed_from_u64(seed);
    let [b, _, h, w] = dims;
    let mut x = Vec::with_capacity(b * c * h * w);
    for bi in 0..b {
        for ci in 0..c {
            for y in 0..h {
                for xx in 0..w {
                    let v = ((y as f32 * 0.7 + xx as f32 * 0.3 + ci as f32).sin()
                        + bi as f32 * 0.5)
                        * 2.0
                        + r.gen_range(-0.5..0.5);
                    x.push(v);
                }
            }
        }
    }
    x
}

/// The parameter sets each config is checked under: asymmetric min/max (non-zero zero point),
/// symmetric (zero point 0), and explicit per-channel weight scales (not the derived ones).
fn param_sets(l: &DySample, x: &[f32]) -> Vec<(&'static str, QuantParams)> {
    let cfg = *l.config();
    let asym = QuantParams::calibrate_minmax(cfg, [x], Symmetry::Asymmetric).unwrap();
    let sym = QuantParams::calibrate_minmax(cfg, [x], Symmetry::Symmetric).unwrap();
    assert_ne!(
        asym.input.zero_point, 0,
        "the asymmetric case must test a zero point"
    );
    assert_eq!(sym.input.zero_point, 0);
    let mut given = asym.clone();
    let o = cfg.conv_out_channels();
    let wmax = |w: &[f32], k: usize| {
        let cin = w.len() / o;
        w[k * cin..(k + 1) * cin]
            .iter()
            .fold(0f32, |m, v| m.max(v.abs()))
    };
    // 1.3x the max-abs scale: differs from what QuantParams derives, so a node that ignored
    // the attribute would give other bytes.
    given.offset_weight_scales = Some(
        (0..o)
            .map(|k| 1.3 * wmax(&l.weights().offset_weight, k) / 127.0)
            .collect(),
    );
    if let Some(s) = &l.weights().scope_weight {
        given.scope_weight_scales = Some((0..o).map(|k| 1.3 * wmax(s, k) / 127.0).collect());
    }
    vec![
        ("asymmetric", asym),
        ("symmetric", sym),
        ("weight scales given", given),
    ]
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("dysample-onnx-int8-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

fn save(m: &graph::proto::ModelProto, name: &str) -> PathBuf {
    let p = tmp(name);
    graph::save_model(m, &p).unwrap();
    p
}

fn quantized(l: &DySample, p: &QuantParams) -> QuantizedDySample {
    l.quantize(p).unwrap()
}

fn expected_i8(q: &QuantizedDySample, x: &[i8], dims: [usize; 4]) -> Vec<i8> {
    let mut y = vec![0i8; x.len() * q.config().scale * q.config().scale];
    q.forward_slice(x, dims, Layout::Nchw, &mut y).unwrap();
    y
}

#[test]
fn int8_node_equals_quantized_dysample_bytes() {
    let mut checked = 0;
    for i in 0..CONFIGS.len() {
        let l = layer(i);
        let c = l.config().channels;
        let dims = [2, c, 5, 7];
        let x = input(c, dims, i as u64);
        for (what, p) in param_sets(&l, &x) {
            let q = quantized(&l, &p);
            let mut xq = vec![0i8; x.len()];
            p.input.quantize_slice(&x, &mut xq);
            let want = expected_i8(&q, &xq, dims);
            // The weight scales must matter (else "given" would test nothing).
            if what == "weight scales given" {
                let mut derived = p.clone();
                derived.offset_weight_scales = None;
                derived.scope_weight_scales = None;
                assert_ne!(
                    want,
                    expected_i8(&quantized(&l, &derived), &xq, dims),
                    "config {i}: explicit weight scales did not change the output"
                );
            }
            let model = graph::layer_model(l.config(), l.weights(), &LayerIo::Int8(p.clone()));
            let path = save(&model, &format!("int8_{i}_{}.onnx", what.replace(' ', "_")));
            for threads in [1, 2] {
                let mut s = SessionOptions::default()
                    .threads(threads)
                    .build(&path)
                    .unwrap();
                let (odims, got) = s.run_i8(&xq, &dims).unwrap();
                assert_eq!(odims, l.output_dims(dims, Layout::Nchw).unwrap().to_vec());
                assert!(got == want, "config {i} ({}), {what}, {threads} threads: ORT int8 node differs from QuantizedDySample", l.config());
                checked += 1;
            }
        }
    }
    assert_eq!(checked, CONFIGS.len() * 3 * 2);
}

/// x away from rounding ties: `(k + u) * s` with u in [0.15, 0.35] ∪ [0.65, 0.85], so
/// `QuantizeLinear` (round half to even) and the SDK's `Affine::quantize` (round half away from
/// zero) agree.
fn off_tie_input(a: Affine, n: usize, seed: u64) -> Vec<f32> {
    let mut r = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let k = r.gen_range(-120i32..120) - a.zero_point;
            let u = r.gen_range(0.15f32..0.35) + if r.gen_bool(0.5) { 0.5 } else { 0.0 };
            (k as f32 + u) * a.scale
        })
        .collect()
}

#[test]
fn qdq_sandwich_runs_the_int8_node_and_equals_the_sdk() {
    for i in 0..CONFIGS.len() {
        let l = layer(i);
        let c = l.config().channels;
        let dims = [2, c, 4, 6];
        for (what, p) in param_sets(&l, &input(c, dims, 7 + i as u64)) {
            let x = off_tie_input(p.input, dims.iter().product(), i as u64);
            let q = quantized(&l, &p);
            let mut want = vec![0f32; x.len() * l.config().scale * l.config().scale];
            q.forward_f32(&x, dims, Layout::Nchw, &mut want).unwrap();
            let model = graph::layer_model(l.config(), l.weights(), &LayerIo::Qdq(p.clone()));
            let path = save(&model, &format!("qdq_{i}_{}.onnx", what.replace(' ', "_")));
            let mut s = SessionOptions {
                record_placement: true,
                ..SessionOptions::default()
            }
            .threads(2)
            .build(&path)
            .unwrap();
            let (_, got) = s.run_f32(&x, &dims).unwrap();
            assert_eq!(
                got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                want.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                "config {i}, {what}: QDQ model differs from QuantizedDySample::forward_f32"
            );
            // ORT kept the sandwich: the custom op ran, on the CPU EP, between Q and DQ.
            let pl = s.placement();
            assert_eq!(
                pl.get("dysample")
                    .map(|(op, ep)| (op.as_str(), ep.as_str())),
                Some(("DySample", "CPUExecutionProvider")),
                "placement: {pl:?}"
            );
            for n in ["quantize", "dequantize"] {
                assert!(pl.contains_key(n), "{n} missing from placement {pl:?}");
            }
        }
    }
}

/// The int8 node with a hand-edited attribute list.
fn edited(edit: impl FnOnce(&mut graph::proto::NodeProto)) -> PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let l = layer(1); // lp, dyscope
    let p = QuantParams::new(
        *l.config(),
        Affine {
            scale: 0.05,
            zero_point: 3,
        },
    );
    let mut m = graph::layer_model(l.config(), l.weights(), &LayerIo::Int8(p));
    let g = m.graph.as_mut().unwrap();
    let node = g.node.iter_mut().find(|n| graph::is_dysample(n)).unwrap();
    node.name = "up1".into();
    edit(node);
    save(
        &m,
        &format!("bad_{}.onnx", N.fetch_add(1, Ordering::Relaxed)),
    )
}

fn set_attr(
    node: &mut graph::proto::NodeProto,
    name: &str,
    f: impl FnOnce(&mut graph::proto::AttributeProto),
) {
    use graph::proto::attribute_proto::AttributeType;
    let a = match node.attribute.iter().position(|a| a.name == name) {
        Some(i) => &mut node.attribute[i],
        None => {
            let mut a = graph::proto::AttributeProto::new();
            a.name = name.into();
            node.attribute.push(a);
            node.attribute.last_mut().unwrap()
        }
    };
    f(a);
    if !a.floats.is_empty() {
        a.type_ = AttributeType::FLOATS.into();
    }
}

fn remove_attr(node: &mut graph::proto::NodeProto, name: &str) {
    node.attribute.retain(|a| a.name != name);
}

#[test]
fn bad_int8_attributes_fail_with_one_line_naming_node_and_attribute() {
    let o = layer(1).config().conv_out_channels();
    let cases: Vec<(PathBuf, &[&str])> = vec![
        (
            edited(|n| remove_attr(n, "x_scale")),
            &["'x_scale'", "missing"],
        ),
        (
            edited(|n| set_attr(n, "x_scale", |a| a.f = 0.0)),
            &["'x_scale' must be finite and > 0"],
        ),
        (
            edited(|n| set_attr(n, "x_scale", |a| a.f = f32::NAN)),
            &["'x_scale' must be finite and > 0"],
        ),
        (
            edited(|n| set_attr(n, "x_zero_point", |a| a.i = 200)),
            &["'x_zero_point' must be in [-128, 127], got 200"],
        ),
        (
            edited(|n| set_attr(n, "offset_weight_scales", |a| a.floats = vec![0.01; 3])),
            &["'offset_weight_scales' has 3 values"],
        ),
        (
            edited(|n| set_attr(n, "scope_weight_scales", |a| a.floats = vec![0.01; o + 1])),
            &["'scope_weight_scales' has"],
        ),
    ];
    for (path, needles) in &cases {
        check_fails(path, needles);
    }
    // scope scales on a node without dyscope.
    let l = layer(0);
    let mut p = QuantParams::new(
        *l.config(),
        Affine {
            scale: 0.05,
            zero_point: 0,
        },
    );
    let o0 = l.config().conv_out_channels();
    p.scope_weight_scales = Some(vec![0.01; o0]);
    let mut m = graph::layer_model(l.config(), l.weights(), &LayerIo::Int8(p.clone()));
    m.graph.as_mut().unwrap().node[0].name = "up1".into();
    check_fails(
        &save(&m, "scope_no_dyscope.onnx"),
        &["'scope_weight_scales' is given but the node has dyscope=0"],
    );
    // int8 attributes on an f32 node.
    let mut m = graph::layer_model(l.config(), l.weights(), &LayerIo::F32);
    let n = &mut m.graph.as_mut().unwrap().node[0];
    n.name = "up1".into();
    set_attr(n, "x_scale", |a| {
        a.f = 0.1;
        a.type_ = graph::proto::attribute_proto::AttributeType::FLOAT.into();
    });
    check_fails(
        &save(&m, "f32_with_scale.onnx"),
        &["x_scale", "only apply when X is int8"],
    );
}

fn check_fails(path: &Path, needles: &[&str]) {
    let e = SessionOptions {
        ort_error_log: false,
        ..SessionOptions::default()
    }
    .threads(1)
    .build(path)
    .map(|_| ())
    .unwrap_err()
    .to_string();
    assert!(!e.contains('\n'), "not one line: {e}");
    assert!(e.contains("DySample node 'up1'"), "node not named: {e}");
    for n in needles {
        assert!(e.contains(n), "'{n}' not in: {e}");
    }
    // The pure-Rust tools refuse it alike (same validation).
    let m = graph::load_model(path).unwrap();
    let e = graph::check_dysample_nodes(&m).unwrap_err().to_string();
    assert!(e.contains("up1"), "{e}");
    for n in needles {
        assert!(e.contains(n), "graph tools: '{n}' not in: {e}");
    }
}

#[test]
fn graph_tools_see_int8_and_lower_refuses_it() {
    let l = layer(3);
    let p = QuantParams::new(
        *l.config(),
        Affine {
            scale: 0.02,
            zero_point: -5,
        },
    );
    for (io, form) in [
        (LayerIo::Int8(p.clone()), "int8"),
        (LayerIo::Qdq(p.clone()), "qdq"),
    ] {
        let mut m = graph::layer_model(l.config(), l.weights(), &io);
        if form == "qdq" {
            // X_q's type is only evident from the QuantizeLinear producing it.
            assert!(m.graph.as_ref().unwrap().value_info.is_empty());
        }
        let info = graph::info(&m);
        assert_eq!(info.dysample.len(), 1);
        let n = &info.dysample[0];
        assert_eq!(n.elem, "INT8", "{form}");
        assert_eq!(n.quant.as_ref().map(|q| q.input), Some(p.input), "{form}");
        assert!(
            format!("{info}").contains("dtype=INT8 x_scale=0.02 x_zero_point=-5"),
            "{info}"
        );
        let e = graph::lower::lower(&mut m).unwrap_err().to_string();
        assert!(
            e.starts_with("DySample node 'dysample': is an int8 node") && !e.contains('\n'),
            "{e}"
        );
        let e = graph::refuse_int8_nodes(&m, "fuse it first")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("'dysample'") && e.contains("fuse it first"),
            "{e}"
        );
    }
    // The f32 form is untouched: float, and lowerable.
    let mut m = graph::layer_model(l.config(), l.weights(), &LayerIo::F32);
    assert_eq!(graph::info(&m).dysample[0].elem, "FLOAT");
    assert!(graph::refuse_int8_nodes(&m, "").is_ok());
    graph::lower::lower(&mut m).unwrap();
}
