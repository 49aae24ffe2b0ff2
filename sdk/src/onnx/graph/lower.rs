//! `lower`: each `ai.dysample::DySample` node → standard ONNX ops (opset ≥ 16, GridSample).
//!
//! The ops repeat the authors' module step for step (offset conv, scope, `init_pos`, base grid,
//! normalisation, pixel shuffle, grid_sample with `align_corners=0`, `padding_mode=border`), so
//! results equal PyTorch's up to float rounding. Shapes are computed at run time from the input,
//! so dynamic batch/height/width keep working. f16 nodes compute in f32 between two Casts, like
//! the SDK kernels. This is the form for TensorRT and for runtimes without the custom op.

use super::{
    attr_int, attr_ints_new, attr_str, f32_tensor, graph, i64_tensor, is_dysample, make_node,
    node_label, opset, read_dysample, set_opset, Namer, NodeLayer, Result,
};
use crate::config::Style;
use crate::onnx::DOMAIN;
use onnx_protobuf::tensor_proto::DataType;
use onnx_protobuf::{ModelProto, NodeProto, TensorProto};

/// What `lower` did.
#[derive(Clone, Debug, Default)]
pub struct LowerReport {
    /// Names of the lowered nodes.
    pub lowered: Vec<String>,
    /// The default-domain opset before and after (raised to 16 when lower).
    pub opset: (i64, i64),
}

/// Minimum opset for GridSample.
pub const MIN_OPSET: i64 = 16;

/// Replaces every DySample node of `model` (main graph) by standard ops.
pub fn lower(model: &mut ModelProto) -> Result<LowerReport> {
    let g = graph(model);
    // Validate every node first so a bad one leaves the model untouched.
    let mut layers = Vec::new();
    for (i, n) in g.node.iter().enumerate() {
        if is_dysample(n) {
            let layer = read_dysample(g, n, i)?;
            if layer.is_int8() {
                return Err(super::OnnxError::Node {
                    node: node_label(n, i),
                    detail: "is an int8 node (X is INT8), which lower does not take: lower the f32 model, then quantize it (the TensorRT target adds QDQ after lowering)".into(),
                });
            }
            layers.push((i, layer));
        }
    }
    let before = opset(model, "").unwrap_or(0);
    let after = before.max(MIN_OPSET);
    if after != before {
        tracing::warn!(
            from = before,
            to = after,
            "raising the model's opset for GridSample"
        );
    }
    let mut namer = Namer::new(g);
    let mut report = LowerReport {
        lowered: Vec::new(),
        opset: (before, after),
    };
    let old_nodes = g.node.clone();
    let g = graph(model);
    let mut nodes = Vec::with_capacity(old_nodes.len() + layers.len() * 50);
    let mut inits: Vec<TensorProto> = Vec::new();
    let mut next = layers.into_iter().peekable();
    for (i, n) in old_nodes.into_iter().enumerate() {
        match next.peek() {
            Some((j, _)) if *j == i => {
                let (_, layer) = next.next().unwrap_or_else(|| unreachable!());
                let label = node_label(&n, i);
                let mut b = Builder {
                    prefix: label.replace(['/', ' ', '#'], "_"),
                    namer: &mut namer,
                    nodes: Vec::new(),
                    inits: Vec::new(),
                    opset: after,
                };
                b.lower_node(&n, &layer);
                tracing::debug!(node = %label, ops = b.nodes.len(), "lowered DySample node");
                nodes.extend(b.nodes);
                inits.extend(b.inits);
                report.lowered.push(label);
            }
            _ => nodes.push(n),
        }
    }
    let replaced: std::collections::HashSet<String> = g
        .node
        .iter()
        .filter(|n| is_dysample(n))
        .flat_map(|n| n.input.iter().skip(1).cloned())
        .collect();
    let g = model.graph.mut_or_insert_default();
    g.node = nodes;
    g.initializer.extend(inits);
    super::fuse::prune_initializers(g, &replaced);
    set_opset(model, "", after);
    model.opset_import.retain(|o| o.domain != DOMAIN);
    Ok(report)
}

struct Builder<'a> {
    prefix: String,
    namer: &'a mut Namer,
    nodes: Vec<NodeProto>,
    inits: Vec<TensorProto>,
    opset: i64,
}

impl Builder<'_> {
    fn name(&mut self, what: &str) -> String {
        self.namer.fresh(&format!("{}/{what}", self.prefix))
    }

    fn op(
        &mut self,
        op: &str,
        inputs: &[&str],
        attrs: Vec<onnx_protobuf::AttributeProto>,
    ) -> String {
        let out = self.name(&format!("{op}_out"));
        let name = self.name(op);
        self.nodes.push(make_node(op, name, inputs, &[&out], attrs));
        out
    }

    fn f32c(&mut self, what: &str, dims: &[i64], data: &[f32]) -> String {
        let name = self.name(what);
        self.inits.push(f32_tensor(&name, dims, data));
        name
    }

    fn i64c(&mut self, what: &str, data: &[i64]) -> String {
        let name = self.name(what);
        self.inits
            .push(i64_tensor(&name, &[data.len() as i64], data));
        name
    }

    fn concat(&mut self, parts: &[&str]) -> String {
        self.op("Concat", parts, vec![attr_int("axis", 0)])
    }

    fn lower_node(&mut self, node: &NodeProto, layer: &NodeLayer) {
        let cfg = &layer.config;
        let (s, g, c) = (cfg.scale as i64, cfg.groups as i64, cfg.channels as i64);
        let (o, cin) = (
            cfg.conv_out_channels() as i64,
            cfg.conv_in_channels() as i64,
        );
        let f16 = layer.elem == DataType::FLOAT16;
        let x_in = node.input[0].clone();
        let y_out = node.output[0].clone();

        let x = if f16 {
            self.op(
                "Cast",
                &[&x_in],
                vec![attr_int("to", DataType::FLOAT as i64)],
            )
        } else {
            x_in
        };
        let w = &layer.weights;
        let wo = self.f32c("offset_weight", &[o, cin, 1, 1], &w.offset_weight);
        let bo = self.f32c("offset_bias", &[o], &w.offset_bias);
        let ws = w
            .scope_weight
            .as_ref()
            .map(|sw| self.f32c("scope_weight", &[o, cin, 1, 1], sw));
        let factor = self.f32c("factor", &[], &[cfg.offset_factor()]);
        let init_pos = self.f32c(
            "init_pos",
            &[1, cfg.offset_channels() as i64, 1, 1],
            &cfg.init_pos(),
        );
        let conv_attrs = || vec![attr_ints_new("kernel_shape", &[1, 1])];

        // Runtime dims of X: B, H, W as [1]-shaped int64.
        let shape = self.op("Shape", &[&x], vec![]);
        let idx = [
            self.i64c("i0", &[0]),
            self.i64c("i2", &[2]),
            self.i64c("i3", &[3]),
        ];
        let bb = self.op("Gather", &[&shape, &idx[0]], vec![attr_int("axis", 0)]);
        let hh = self.op("Gather", &[&shape, &idx[1]], vec![attr_int("axis", 0)]);
        let ww = self.op("Gather", &[&shape, &idx[2]], vec![attr_int("axis", 0)]);
        let k_s = self.i64c("s", &[s]);
        let k_2 = self.i64c("two", &[2]);
        let k_m1 = self.i64c("minus_one", &[-1]);

        // Offsets: conv (× sigmoid(scope)) × factor + init_pos, in the module's order.
        let offset = match cfg.style {
            Style::Lp => {
                let mut t = self.op("Conv", &[&x, &wo, &bo], conv_attrs());
                if let Some(ws) = &ws {
                    let sc = self.op("Conv", &[&x, ws], conv_attrs());
                    let sig = self.op("Sigmoid", &[&sc], vec![]);
                    t = self.op("Mul", &[&t, &sig], vec![]);
                }
                self.op("Mul", &[&t, &factor], vec![])
            }
            Style::Pl => {
                let xs = self.op(
                    "DepthToSpace",
                    &[&x],
                    vec![attr_int("blocksize", s), attr_str("mode", "CRD")],
                );
                let mut t = self.op("Conv", &[&xs, &wo, &bo], conv_attrs());
                if let Some(ws) = &ws {
                    let sc = self.op("Conv", &[&xs, ws], conv_attrs());
                    let sig = self.op("Sigmoid", &[&sc], vec![]);
                    t = self.op("Mul", &[&t, &sig], vec![]);
                }
                // pixel_unshuffle: [B, 2g, H·s, W·s] → [B, 2g, H, s, W, s] → [B, 2g·s², H, W].
                let k_2g = self.i64c("two_g", &[2 * g]);
                let s6 = self.concat(&[&bb, &k_2g, &hh, &k_s, &ww, &k_s]);
                let t6 = self.op("Reshape", &[&t, &s6], vec![]);
                let tt = self.op(
                    "Transpose",
                    &[&t6],
                    vec![attr_ints_new("perm", &[0, 1, 3, 5, 2, 4])],
                );
                let s4 = self.concat(&[&bb, &k_m1, &hh, &ww]);
                let u = self.op("Reshape", &[&tt, &s4], vec![]);
                self.op("Mul", &[&u, &factor], vec![])
            }
        };
        let offset = self.op("Add", &[&offset, &init_pos], vec![]);

        // Base grid: pixel centres (j + 0.5, i + 0.5) as [1, 2, 1, H, W].
        let hf = self.op("Cast", &[&hh], vec![attr_int("to", DataType::FLOAT as i64)]);
        let wf = self.op("Cast", &[&ww], vec![attr_int("to", DataType::FLOAT as i64)]);
        let scalar = self.i64c("scalar_shape", &[]);
        let half = self.f32c("half", &[], &[0.5]);
        let one = self.f32c("one", &[], &[1.0]);
        let two = self.f32c("two_f", &[], &[2.0]);
        let hs = self.op("Reshape", &[&hf, &scalar], vec![]);
        let wsc = self.op("Reshape", &[&wf, &scalar], vec![]);
        let hlim = self.op("Add", &[&hs, &half], vec![]);
        let wlim = self.op("Add", &[&wsc, &half], vec![]);
        let cy = self.op("Range", &[&half, &hlim, &one], vec![]);
        let cx = self.op("Range", &[&half, &wlim, &one], vec![]);
        let k_1 = self.i64c("one_i", &[1]);
        let k_111 = self.i64c("ones3", &[1, 1, 1]);
        let s5 = self.concat(&[&k_111, &hh, &ww]);
        let hw = self.concat(&[&hh, &ww]);
        let row = self.concat(&[&k_1, &ww]);
        let col = self.concat(&[&hh, &k_1]);
        let cx2 = self.op("Reshape", &[&cx, &row], vec![]);
        let cy2 = self.op("Reshape", &[&cy, &col], vec![]);
        let bx = self.op("Expand", &[&cx2, &hw], vec![]);
        let by = self.op("Expand", &[&cy2, &hw], vec![]);
        let bx5 = self.op("Reshape", &[&bx, &s5], vec![]);
        let by5 = self.op("Reshape", &[&by, &s5], vec![]);
        let base = self.op("Concat", &[&bx5, &by5], vec![attr_int("axis", 1)]);
        let norm2 = self.op("Concat", &[&wf, &hf], vec![attr_int("axis", 0)]);
        let norm_shape = self.i64c("norm_shape", &[1, 2, 1, 1, 1]);
        let norm = self.op("Reshape", &[&norm2, &norm_shape], vec![]);

        // coords = 2·(base + offset)/[W, H] − 1, then pixel shuffle to [B·g, sH, sW, 2].
        let off_shape = self.concat(&[&bb, &k_2, &k_m1, &hh, &ww]);
        let off5 = self.op("Reshape", &[&offset, &off_shape], vec![]);
        let sum = self.op("Add", &[&base, &off5], vec![]);
        let dbl = self.op("Mul", &[&sum, &two], vec![]);
        let div = self.op("Div", &[&dbl, &norm], vec![]);
        let coords = self.op("Sub", &[&div, &one], vec![]);
        let s4 = self.concat(&[&bb, &k_m1, &hh, &ww]);
        let c4 = self.op("Reshape", &[&coords, &s4], vec![]);
        let shuffled = self.op(
            "DepthToSpace",
            &[&c4],
            vec![attr_int("blocksize", s), attr_str("mode", "CRD")],
        );
        let sh = self.op("Mul", &[&hh, &k_s], vec![]);
        let sw = self.op("Mul", &[&ww, &k_s], vec![]);
        let k_g = self.i64c("g", &[g]);
        let s5b = self.concat(&[&bb, &k_2, &k_g, &sh, &sw]);
        let c5 = self.op("Reshape", &[&shuffled, &s5b], vec![]);
        let ct = self.op(
            "Transpose",
            &[&c5],
            vec![attr_ints_new("perm", &[0, 2, 3, 4, 1])],
        );
        let grid_shape = self.concat(&[&k_m1, &sh, &sw, &k_2]);
        let grid = self.op("Reshape", &[&ct, &grid_shape], vec![]);

        // Sample each group's channels at its points.
        let k_cg = self.i64c("c_per_group", &[c / g]);
        let xg_shape = self.concat(&[&k_m1, &k_cg, &hh, &ww]);
        let xg = self.op("Reshape", &[&x, &xg_shape], vec![]);
        let mode = if self.opset >= 20 {
            "linear"
        } else {
            "bilinear"
        };
        let sampled = self.op(
            "GridSample",
            &[&xg, &grid],
            vec![
                attr_int("align_corners", 0),
                attr_str("mode", mode),
                attr_str("padding_mode", "border"),
            ],
        );
        let k_c = self.i64c("c", &[c]);
        let y_shape = self.concat(&[&bb, &k_c, &sh, &sw]);
        if f16 {
            let yf = self.op("Reshape", &[&sampled, &y_shape], vec![]);
            let name = self.name("Cast");
            self.nodes.push(make_node(
                "Cast",
                name,
                &[&yf],
                &[&y_out],
                vec![attr_int("to", DataType::FLOAT16 as i64)],
            ));
        } else {
            let name = self.name("Reshape");
            self.nodes.push(make_node(
                "Reshape",
                name,
                &[&sampled, &y_shape],
                &[&y_out],
                vec![],
            ));
        }
    }
}
