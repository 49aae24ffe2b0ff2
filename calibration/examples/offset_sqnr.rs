//! DySample's offset branch on a trained model: the int8 offsets (SDK integer scheme, Q11) of
//! every DySample node against the f32 ones, on real activations from calibration images.
//!
//! `cargo run --release -p dysample-calibrate --example offset_sqnr -- MODEL_DIR DATA RANGES.json [N]`
//!
//! RANGES.json: a `dysample-calibrate` run's `ranges.json` (its DySample input affines). For each
//! node it prints the SQNR of the dynamic part of the offsets (the conv term, `init_pos` removed)
//! and the error in low-res pixels, twice: int8 against f32 on the float input (what the int8 node
//! changes), and f32 on the int8-dequantized input against f32 (the input quantizer's share).

use dysample::onnx::graph::read_dysample;
use dysample::quant::{Affine, QuantParams, QuantizedWeights};
use dysample::reference::pixel_offsets;
use dysample::Style;
use dysample_calibrate::collect::{outputs, RunOptions};
use dysample_calibrate::data::{self, DataSet, Preprocess};
use dysample_calibrate::graph::{is_dysample, with_outputs, Model};

#[derive(Default)]
struct Acc {
    sig: f64,
    err: f64,
    max: f64,
    n: usize,
}

impl Acc {
    fn add(&mut self, dyn_f: f64, e: f64) {
        self.sig += dyn_f * dyn_f;
        self.err += e * e;
        self.max = self.max.max(e.abs());
        self.n += 1;
    }
    fn line(&self) -> String {
        format!(
            "SQNR {:6.2} dB, error rms {:.4} px, max {:.4} px",
            10.0 * (self.sig / self.err.max(1e-300)).log10(),
            (self.err / self.n.max(1) as f64).sqrt(),
            self.max
        )
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a: Vec<String> = std::env::args().collect();
    if a.len() < 4 {
        return Err("usage: offset_sqnr MODEL_DIR DATA RANGES.json [N]".into());
    }
    let md = dysample_models::ModelDir::open(&a[1])?;
    let n: usize = a.get(4).map_or(Ok(8), |s| s.parse())?;
    let ranges: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&a[3])?)?;
    let model = Model::load(&md.onnx_path(dysample_models::Variant::Custom)?)?;
    let pre = Preprocess {
        spec: md.model.input.clone(),
        exact_size: false,
    };
    let set = DataSet::open(&a[2], Some(n))?;
    let inputs: Vec<_> = set
        .items
        .iter()
        .map(|it| data::load(it, &pre))
        .collect::<Result<_, _>>()?;
    let g = model.graph();
    let nodes: Vec<usize> = (0..g.node.len())
        .filter(|&i| is_dysample(&g.node[i]))
        .collect();
    let names: Vec<String> = nodes.iter().map(|&i| g.node[i].input[0].clone()).collect();
    let run = RunOptions {
        threads: 2,
        ort_lib: None,
        progress: false,
    };
    let outs = outputs(
        &model,
        &with_outputs(&model, &names),
        &inputs,
        &pre.spec.name,
        &run,
    )?;
    println!(
        "{}: {} DySample nodes, {} calibration images",
        a[1],
        nodes.len(),
        inputs.len()
    );
    for (&i, xname) in nodes.iter().zip(&names) {
        let layer = read_dysample(g, &g.node[i], i)?;
        let cfg = layer.config;
        let af: Affine = serde_json::from_value(ranges["tensors"][xname]["affine"].clone())
            .map_err(|e| format!("{}: no affine for '{xname}': {e}", a[3]))?;
        let qw = QuantizedWeights::new(&cfg, &layer.weights, &QuantParams::new(cfg, af))?;
        let init = cfg.init_pos();
        let (cin, s2) = (cfg.conv_in_channels(), cfg.s2());
        let (mut int8, mut input_q) = (Acc::default(), Acc::default());
        for o in &outs {
            let x = &o
                .iter()
                .find(|(t, _)| t == xname)
                .ok_or("missing output")?
                .1;
            let hw = x.len() / cfg.channels;
            let xq: Vec<i8> = x.iter().map(|&v| af.quantize(v)).collect();
            let xd: Vec<f32> = xq.iter().map(|&q| af.dequantize(q)).collect();
            let mut off = vec![0i32; cfg.offset_channels()];
            for p in 0..hw {
                let f = pixel_offsets::<f64>(&cfg, &layer.weights, &init, |k| x[k * hw + p] as f64);
                let fd =
                    pixel_offsets::<f64>(&cfg, &layer.weights, &init, |k| xd[k * hw + p] as f64);
                let subs = if cfg.style == Style::Lp { 1 } else { s2 };
                for ij in 0..subs {
                    let read = |k: usize| {
                        let c = if subs == 1 { k } else { k * s2 + ij };
                        xq[c * hw + p] as i32
                    };
                    for oc in 0..cfg.conv_out_channels() {
                        let dot = |w: &[i8]| -> i32 {
                            (0..cin).map(|k| w[oc * cin + k] as i32 * read(k)).sum()
                        };
                        let d = dot(&qw.offset_q);
                        let sd = qw.scope_q.as_deref().map_or(0, dot);
                        let ch = qw.offset_channel(oc, ij);
                        off[ch] = qw.offset_q11(oc, ch, d, sd);
                    }
                }
                for ch in 0..off.len() {
                    let dynf = f[ch] - init[ch] as f64;
                    int8.add(dynf, off[ch] as f64 / 2048.0 - f[ch]);
                    input_q.add(dynf, fd[ch] - f[ch]);
                }
            }
        }
        println!(
            "{} ({cfg}): int8 offsets {} | f32 offsets on the int8 input {}",
            model.node_name(i),
            int8.line(),
            input_q.line()
        );
    }
    Ok(())
}
