//! Tiny model folders and eval sets, written on the fly for tests (feature `testkit`).
//!
//! The model follows SPEC.md's folder layout with all three graphs:
//! `input [1,3,S,S] → AveragePool 2×2 → Conv 1×1 (3→8) → Tanh → up ×2 → Conv 1×1 (8→1) →
//! Sigmoid (segmentation) / Softplus (depth)`, where "up" is one `ai.dysample::DySample` node
//! (lp, 2 groups) in `model.onnx`, its standard-op lowering in `model_lowered.onnx`, and a
//! bilinear `Resize` in `bilinear/model.onnx`. The weights are chosen by hand so the output
//! means something: segmentation finds red regions, depth is monotone in brightness; the eval
//! sets hold red shapes with exact masks, and brightness-coded depth.
//!
//! `reference/output_0.npy` is computed here in f64 without ONNX Runtime or the SDK's kernels
//! (plain loops and `dysample::reference`), so it checks both.

use crate::error::{Error, Result};
use crate::model::Task;
use crate::npy;
use crate::preprocess::preprocess;
use dysample::onnx::graph::proto::{
    attribute_proto::AttributeType, tensor_shape_proto, type_proto, AttributeProto, GraphProto,
    ModelProto, NodeProto, OperatorSetIdProto, TensorShapeProto, TypeProto, ValueInfoProto,
};
use dysample::onnx::graph::{self, f32_tensor};
use dysample::{reference, DySampleConfig, Layout, Shape, Style, Weights};
use image::{GrayImage, RgbImage};
use std::path::Path;

/// Channels of the tiny model's features.
const C: usize = 8;

/// A deterministic value in [-1, 1) from an index and a salt.
fn hash_unit(i: usize, salt: u64) -> f32 {
    let mut x = (i as u64)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(salt.wrapping_mul(0xD1B5_4A32_D192_ED03));
    x ^= x >> 31;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 29;
    ((x >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
}

/// The tiny model's weights.
#[derive(Clone, Debug)]
pub struct TinyWeights {
    pub task: Task,
    /// `[C][3]`, `[C]`.
    pub w1: Vec<f32>,
    pub b1: Vec<f32>,
    pub dysample: Weights,
    pub cfg: DySampleConfig,
    /// `[C]`, one bias.
    pub w2: Vec<f32>,
    pub b2: f32,
}

impl TinyWeights {
    pub fn new(task: Task) -> Self {
        let cfg = DySampleConfig::new(C, 2, Style::Lp, 2, false).expect("valid config");
        let (w1, b1, w2, b2) = match task {
            // Redness R − (G + B)/2, at 8 slopes and offsets.
            Task::Segmentation => {
                let mut w1 = Vec::new();
                let mut b1 = Vec::new();
                for k in 0..C {
                    let a = 2.0 + 0.25 * k as f32;
                    w1.extend_from_slice(&[a, -0.5 * a, -0.5 * a]);
                    b1.push(-0.4 * a + 0.05 * k as f32);
                }
                (w1, b1, vec![1.5; C], -2.0)
            }
            // Brightness.
            Task::Depth => {
                let mut w1 = Vec::new();
                let mut b1 = Vec::new();
                for k in 0..C {
                    let a = 0.3 + 0.05 * k as f32;
                    w1.extend_from_slice(&[a, a, a]);
                    b1.push(-0.4);
                }
                (w1, b1, vec![0.6; C], 0.1)
            }
        };
        let o = cfg.conv_out_channels();
        let ow: Vec<f32> = (0..o * C).map(|i| 0.15 * hash_unit(i, 7)).collect();
        let ob: Vec<f32> = (0..o).map(|i| 0.1 * hash_unit(i, 11)).collect();
        let dysample = Weights::new(&cfg, ow, ob, None).expect("valid weights");
        Self {
            task,
            w1,
            b1,
            dysample,
            cfg,
            w2,
            b2,
        }
    }

    /// The model's output for an NCHW input `[1, 3, s, s]`, in f64 with plain loops and
    /// `dysample::reference`; `dysample = false` uses bilinear ×2 (half-pixel) instead.
    pub fn reference_forward(&self, x: &[f32], s: usize, dysample: bool) -> Vec<f32> {
        let h = s / 2;
        let hw = h * h;
        // AveragePool 2x2.
        let mut p = vec![0f64; 3 * hw];
        for c in 0..3 {
            for y in 0..h {
                for xx in 0..h {
                    let at =
                        |dy: usize, dx: usize| x[c * s * s + (2 * y + dy) * s + 2 * xx + dx] as f64;
                    p[c * hw + y * h + xx] = (at(0, 0) + at(0, 1) + at(1, 0) + at(1, 1)) / 4.0;
                }
            }
        }
        // Conv 3 -> C, tanh.
        let mut f = vec![0f64; C * hw];
        for k in 0..C {
            for i in 0..hw {
                let mut acc = self.b1[k] as f64;
                for c in 0..3 {
                    acc += self.w1[k * 3 + c] as f64 * p[c * hw + i];
                }
                f[k * hw + i] = acc.tanh();
            }
        }
        // Up x2.
        let hw2 = 4 * hw;
        let mut u = vec![0f64; C * hw2];
        if dysample {
            reference::forward::<f64>(
                &self.cfg,
                &self.dysample,
                &f,
                Shape::from_dims([1, C, h, h], Layout::Nchw),
                Layout::Nchw,
                &mut u,
            );
        } else {
            for k in 0..C {
                let plane: Vec<f32> = f[k * hw..(k + 1) * hw].iter().map(|&v| v as f32).collect();
                let up = crate::preprocess::resize_bilinear(&plane, h, h, 2 * h, 2 * h);
                for (d, v) in u[k * hw2..(k + 1) * hw2].iter_mut().zip(up) {
                    *d = v as f64;
                }
            }
        }
        // Conv C -> 1, head.
        (0..hw2)
            .map(|i| {
                let mut z = self.b2 as f64;
                for k in 0..C {
                    z += self.w2[k] as f64 * u[k * hw2 + i];
                }
                let y = match self.task {
                    Task::Segmentation => 1.0 / (1.0 + (-z).exp()),
                    Task::Depth => z.exp().ln_1p(),
                };
                y as f32
            })
            .collect()
    }
}

fn attr_int(name: &str, v: i64) -> AttributeProto {
    let mut a = AttributeProto::new();
    a.name = name.into();
    a.type_ = AttributeType::INT.into();
    a.i = v;
    a
}

fn attr_ints(name: &str, v: &[i64]) -> AttributeProto {
    let mut a = AttributeProto::new();
    a.name = name.into();
    a.type_ = AttributeType::INTS.into();
    a.ints = v.to_vec();
    a
}

fn attr_str(name: &str, v: &str) -> AttributeProto {
    let mut a = AttributeProto::new();
    a.name = name.into();
    a.type_ = AttributeType::STRING.into();
    a.s = v.as_bytes().to_vec();
    a
}

fn node(
    op: &str,
    domain: &str,
    inputs: &[&str],
    output: &str,
    attrs: Vec<AttributeProto>,
) -> NodeProto {
    let mut n = NodeProto::new();
    n.op_type = op.into();
    n.domain = domain.into();
    n.name = format!("{op}_{output}");
    n.input = inputs.iter().map(|s| s.to_string()).collect();
    n.output = vec![output.to_string()];
    n.attribute = attrs;
    n
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
    t.elem_type = 1; // FLOAT
    t.shape = Some(shape).into();
    let mut ty = TypeProto::new();
    ty.value = Some(type_proto::Value::TensorType(t));
    let mut v = ValueInfoProto::new();
    v.name = name.into();
    v.type_ = Some(ty).into();
    v
}

/// Which graph to build.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Up {
    DySample,
    Bilinear,
}

fn build_model(w: &TinyWeights, s: usize, up: Up) -> ModelProto {
    let s = s as i64;
    let mut g = GraphProto::new();
    g.name = "tiny".into();
    let c = C as i64;
    g.initializer = vec![
        f32_tensor("w1", &[c, 3, 1, 1], &w.w1),
        f32_tensor("b1", &[c], &w.b1),
        f32_tensor("w2", &[1, c, 1, 1], &w.w2),
        f32_tensor("b2", &[1], &[w.b2]),
    ];
    let mut nodes = vec![
        node(
            "AveragePool",
            "",
            &["input"],
            "pooled",
            vec![
                attr_ints("kernel_shape", &[2, 2]),
                attr_ints("strides", &[2, 2]),
            ],
        ),
        node("Conv", "", &["pooled", "w1", "b1"], "c1", vec![]),
        node("Tanh", "", &["c1"], "feat", vec![]),
    ];
    match up {
        Up::DySample => {
            let o = w.cfg.conv_out_channels() as i64;
            g.initializer.push(f32_tensor(
                "up.offset.weight",
                &[o, c, 1, 1],
                &w.dysample.offset_weight,
            ));
            g.initializer
                .push(f32_tensor("up.offset.bias", &[o], &w.dysample.offset_bias));
            nodes.push(node(
                "DySample",
                dysample::onnx::DOMAIN,
                &["feat", "up.offset.weight", "up.offset.bias"],
                "up",
                vec![
                    attr_int("scale", 2),
                    attr_str("style", "lp"),
                    attr_int("groups", w.cfg.groups as i64),
                    attr_int("dyscope", 0),
                ],
            ));
        }
        Up::Bilinear => {
            g.initializer
                .push(f32_tensor("scales", &[4], &[1.0, 1.0, 2.0, 2.0]));
            nodes.push(node(
                "Resize",
                "",
                &["feat", "", "scales"],
                "up",
                vec![
                    attr_str("mode", "linear"),
                    attr_str("coordinate_transformation_mode", "half_pixel"),
                ],
            ));
        }
    }
    nodes.push(node("Conv", "", &["up", "w2", "b2"], "z", vec![]));
    let head = match w.task {
        Task::Segmentation => "Sigmoid",
        Task::Depth => "Softplus",
    };
    nodes.push(node(head, "", &["z"], "output", vec![]));
    g.node = nodes;
    g.input = vec![value_info("input", &[1, 3, s, s])];
    g.output = vec![value_info("output", &[1, 1, s, s])];
    let mut m = ModelProto::new();
    m.ir_version = 8;
    m.producer_name = "dysample-models testkit".into();
    let mut std_op = OperatorSetIdProto::new();
    std_op.version = 17;
    m.opset_import = vec![std_op];
    if up == Up::DySample {
        let mut ds = OperatorSetIdProto::new();
        ds.domain = dysample::onnx::DOMAIN.into();
        ds.version = 1;
        m.opset_import.push(ds);
    }
    m.graph = Some(g).into();
    m
}

fn model_json(name: &str, task: Task, s: usize) -> serde_json::Value {
    let mut v = serde_json::json!({
        "schema": 1,
        "name": name,
        "task": task.name(),
        "description": "tiny test model written by dysample_models::testkit",
        "files": {"onnx": "model.onnx", "onnx_lowered": "model_lowered.onnx",
                  "onnx_bilinear": "bilinear/model.onnx"},
        "input": {"name": "input", "layout": "NCHW", "height": s, "width": s, "color": "RGB",
                  "resize": "stretch", "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0]},
        "output": {"name": "output", "height": s, "width": s, "channels": 1,
                   "kind": if task == Task::Segmentation { "probability" } else { "relative_inverse_depth" }},
        "dysample_layers": ["up"],
        "source": "synthetic", "license": "MIT OR Apache-2.0",
        "metrics": {}
    });
    if task == Task::Segmentation {
        v["threshold"] = serde_json::json!(0.5);
        v["classes"] = serde_json::json!([
            {"name": "background", "color": [0, 0, 0]},
            {"name": "person", "color": [255, 64, 160]}
        ]);
    }
    v
}

fn io(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::file(path, e)
}

/// Writes a complete model folder for `task` with input and output size `s × s` (`s` even):
/// model.json (no metrics yet), the three graphs, and `reference/input_0.npy` /
/// `output_0.npy` from `reference_image`.
pub fn write_model(dir: &Path, name: &str, task: Task, s: usize) -> Result<TinyWeights> {
    assert!(s >= 2 && s.is_multiple_of(2), "size must be even");
    let w = TinyWeights::new(task);
    std::fs::create_dir_all(dir.join("bilinear")).map_err(|e| io(dir, e))?;
    std::fs::create_dir_all(dir.join("reference")).map_err(|e| io(dir, e))?;
    let custom = build_model(&w, s, Up::DySample);
    graph::save_model(&custom, &dir.join("model.onnx"))?;
    let mut lowered = custom.clone();
    graph::lower::lower(&mut lowered)?;
    graph::save_model(&lowered, &dir.join("model_lowered.onnx"))?;
    graph::save_model(
        &build_model(&w, s, Up::Bilinear),
        &dir.join("bilinear/model.onnx"),
    )?;
    let json = serde_json::to_string_pretty(&model_json(name, task, s)).expect("json");
    std::fs::write(dir.join("model.json"), json).map_err(|e| io(dir, e))?;
    let img = match task {
        Task::Segmentation => seg_sample(1, s).0,
        Task::Depth => depth_sample(1, s).0,
    };
    let spec: crate::model::InputSpec =
        serde_json::from_value(model_json(name, task, s)["input"].clone()).expect("input spec");
    let (x, dims) = preprocess(&img, &spec);
    npy::write_f32(&dir.join("reference/input_0.npy"), &dims, &x)?;
    let y = w.reference_forward(&x, s, true);
    npy::write_f32(&dir.join("reference/output_0.npy"), &[1, 1, s, s], &y)?;
    Ok(w)
}

/// Segmentation sample `k`: a blue-green textured background with red shapes (a disk and,
/// for odd `k`, a rectangle), and its exact mask. Sample 0 has no red shape.
pub fn seg_sample(k: usize, s: usize) -> (RgbImage, GrayImage) {
    let mut img = RgbImage::new(s as u32, s as u32);
    let mut mask = GrayImage::new(s as u32, s as u32);
    let sf = s as f32;
    let (cx, cy, r) = (
        sf * (0.3 + 0.1 * (k % 4) as f32),
        sf * (0.4 + 0.07 * (k % 3) as f32),
        sf * (0.15 + 0.03 * (k % 2) as f32),
    );
    for y in 0..s {
        for x in 0..s {
            let (xf, yf) = (x as f32, y as f32);
            let n = hash_unit(y * s + x, k as u64 + 100);
            let bg = [
                (30.0 + 20.0 * n) as u8,
                (90.0 + 60.0 * (xf / sf) + 20.0 * n) as u8,
                (120.0 + 80.0 * (yf / sf)) as u8,
            ];
            let in_disk = k > 0 && (xf - cx).powi(2) + (yf - cy).powi(2) <= r * r;
            let in_rect = k % 2 == 1
                && (xf >= sf * 0.65 && xf < sf * 0.9 && yf >= sf * 0.6 && yf < sf * 0.85);
            let person = in_disk || in_rect;
            let px = if person {
                [(220.0 + 30.0 * n) as u8, (40.0 + 20.0 * n) as u8, 50]
            } else {
                bg
            };
            img.put_pixel(x as u32, y as u32, image::Rgb(px));
            mask.put_pixel(
                x as u32,
                y as u32,
                image::Luma([if person { 255 } else { 0 }]),
            );
        }
    }
    (img, mask)
}

/// Depth sample `k`: brightness codes inverse depth (a ramp "floor" and two boxes); target
/// depth `1 / (0.3 + brightness)`, with an invalid (0) border row and a NaN pixel.
pub fn depth_sample(k: usize, s: usize) -> (RgbImage, Vec<f32>) {
    let mut img = RgbImage::new(s as u32, s as u32);
    let mut depth = vec![0f32; s * s];
    let sf = s as f32;
    for y in 0..s {
        for x in 0..s {
            let (xf, yf) = (x as f32 / sf, y as f32 / sf);
            let mut b = 0.2 + 0.5 * yf + 0.05 * (k % 3) as f32;
            if (0.1..0.4).contains(&xf) && (0.2..0.5 + 0.05 * (k % 2) as f32).contains(&yf) {
                b = 0.85;
            }
            if (0.6..0.9).contains(&xf) && (0.1..0.3).contains(&yf) {
                b = 0.1 + 0.02 * k as f32;
            }
            let v = (b * 255.0).round().clamp(0.0, 255.0) as u8;
            img.put_pixel(x as u32, y as u32, image::Rgb([v, v, v]));
            depth[y * s + x] = 1.0 / (0.3 + v as f32 / 255.0);
        }
    }
    for x in 0..s {
        depth[x] = 0.0;
    }
    depth[s * s / 2 + 1] = f32::NAN;
    (img, depth)
}

/// Writes an eval set of `n` samples of `s × s` for `task` (depth: `target_kind` "depth").
pub fn write_eval_set(dir: &Path, name: &str, task: Task, n: usize, s: usize) -> Result<()> {
    std::fs::create_dir_all(dir.join("image")).map_err(|e| io(dir, e))?;
    std::fs::create_dir_all(dir.join("target")).map_err(|e| io(dir, e))?;
    let mut samples = Vec::new();
    for k in 0..n {
        let id = format!("{k:04}");
        let image = format!("image/{id}.png");
        let target = match task {
            Task::Segmentation => {
                let (img, mask) = seg_sample(k, s);
                img.save(dir.join(&image))
                    .map_err(|e| io(&dir.join(&image), e))?;
                let t = format!("target/{id}.png");
                mask.save(dir.join(&t)).map_err(|e| io(&dir.join(&t), e))?;
                t
            }
            Task::Depth => {
                let (img, depth) = depth_sample(k, s);
                img.save(dir.join(&image))
                    .map_err(|e| io(&dir.join(&image), e))?;
                let t = format!("target/{id}.npy");
                npy::write_f32(&dir.join(&t), &[s, s], &depth)?;
                t
            }
        };
        samples.push(serde_json::json!({"id": id, "image": image, "target": target}));
    }
    let mut m = serde_json::json!({
        "schema": 1, "name": name, "task": task.name(),
        "kind": if task == Task::Segmentation { "composite" } else { "synthetic" },
        "source": "dysample_models::testkit", "license": "MIT OR Apache-2.0",
        "samples": samples,
    });
    if task == Task::Depth {
        m["target_kind"] = serde_json::json!("depth");
    }
    std::fs::write(
        dir.join("manifest.json"),
        serde_json::to_string_pretty(&m).expect("json"),
    )
    .map_err(|e| io(dir, e))
}
