//! Graph tools on the committed fixtures (pure Rust: no ONNX Runtime needed).

use super::fuse::{analyze, apply};
use super::lower::lower;
use super::*;
use std::path::PathBuf;

fn fx(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/onnx")
        .join(name)
}

fn node_layer(path: &str) -> NodeLayer {
    let m = load_model(&fx(path)).unwrap();
    let g = graph(&m);
    let (i, n) = g
        .node
        .iter()
        .enumerate()
        .find(|(_, n)| is_dysample(n))
        .unwrap();
    read_dysample(g, n, i).unwrap()
}

const PLAIN: &[(&str, &str)] = &[
    ("lp_static", "layer_lp_static_plain_opset16.onnx"),
    ("lp_dyscope", "layer_lp_dyscope_plain_opset17.onnx"),
    ("pl_static", "layer_pl_static_plain_opset18.onnx"),
    ("pl_dyscope", "layer_pl_dyscope_plain_opset20.onnx"),
];

#[test]
fn analyze_recovers_config_and_weights_of_plain_exports() {
    for (name, plain) in PLAIN {
        let want = node_layer(&format!("layer_{name}.onnx"));
        for file in [
            plain.to_string(),
            format!("layer_{name}_authors_opset17.onnx"),
        ] {
            let m = load_model(&fx(&file)).unwrap();
            let a = analyze(&m);
            assert!(a.skipped.is_empty(), "{file}: {:?}", a.skipped);
            assert_eq!(a.matches.len(), 1, "{file}");
            let got = &a.matches[0];
            assert_eq!(got.layer.config, want.config, "{file}");
            assert_eq!(got.layer.weights, want.weights, "{file}");
            assert_eq!(got.sample_dims[1], want.config.channels);
        }
    }
}

#[test]
fn apply_leaves_one_node_and_only_used_initializers() {
    let mut m = load_model(&fx("layer_pl_dyscope_plain_opset20.onnx")).unwrap();
    let a = analyze(&m);
    let names = apply(&mut m, &a.matches);
    assert_eq!(names, ["dysample"]);
    let g = graph(&m);
    assert_eq!(g.node.len(), 1);
    assert_eq!(g.node[0].input.len(), 4);
    assert_eq!(
        g.initializer.len(),
        3,
        "init_pos and grid constants must be pruned"
    );
    assert_eq!(opset(&m, crate::onnx::DOMAIN), Some(1));
    assert_eq!(g.node[0].output[0], g.output[0].name);
}

#[test]
fn lower_then_fuse_round_trips_every_variant() {
    for (name, _) in PLAIN {
        let want = node_layer(&format!("layer_{name}.onnx"));
        let mut m = load_model(&fx(&format!("layer_{name}.onnx"))).unwrap();
        let r = lower(&mut m).unwrap();
        assert_eq!(r.lowered.len(), 1);
        assert!(graph(&m).node.iter().all(|n| !is_dysample(n)));
        assert!(graph(&m).node.iter().any(|n| n.op_type == "GridSample"));
        let a = analyze(&m);
        assert_eq!(a.matches.len(), 1, "{name}: {:?}", a.skipped);
        assert_eq!(a.matches[0].layer.config, want.config);
        assert_eq!(a.matches[0].layer.weights, want.weights);
    }
}

#[test]
fn lower_refuses_invalid_nodes_and_leaves_model_untouched() {
    for (file, needle) in [
        ("bad_attr_scale.onnx", "'scale'"),
        ("bad_missing_initializer.onnx", "not an initializer"),
    ] {
        let mut m = load_model(&fx(file)).unwrap();
        let before = m.clone();
        let e = lower(&mut m).unwrap_err().to_string();
        assert!(
            e.starts_with("DySample node 'dysample'") && e.contains(needle),
            "{e}"
        );
        assert_eq!(m, before);
    }
}

#[test]
fn info_lists_nested_nodes() {
    let m = load_model(&fx("net.onnx")).unwrap();
    let i = info(&m);
    assert_eq!(i.inputs.len(), 1);
    assert_eq!(i.inputs[0].dims, ["batch", "3", "height", "width"]);
    let names: Vec<&str> = i.dysample.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["up1", "stage.1.up"]);
    let text = i.to_string();
    assert!(
        text.contains("stage.1.up: channels=16 scale=2 style=pl groups=2 dyscope=true"),
        "{text}"
    );
}

/// The inputs the `onnx_graph` fuzz target once crashed on (kept as `regress-*` seeds): each
/// parses or is refused, and info, lower and fuse return instead of panicking.
#[test]
fn fuzz_regressions_return_errors_not_panics() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds/onnx_graph");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with("regress-") {
            continue;
        }
        n += 1;
        let bytes = std::fs::read(e.path()).unwrap();
        let Ok(model) = parse_model(&bytes, &e.path()) else {
            continue;
        };
        let _ = info(&model).to_string();
        let mut lowered = model.clone();
        let _ = lower(&mut lowered);
        let mut fused = model.clone();
        let a = analyze(&fused);
        apply(&mut fused, &a.matches);
    }
    assert!(n >= 1, "no regress-* seeds in {}", dir.display());
}
