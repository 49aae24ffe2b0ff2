//! Writes a model folder's f32 graph after the float rewrites of `dysample_calibrate::rewrite`
//! (Pad into Conv, ReduceMean → GlobalAveragePool, HardSwish → x · HardSigmoid(x)), the graph
//! the int8 model is built from, e.g. to time it against the shipped one with `bench_models`.
//!
//! `cargo run --release -p dysample-calibrate --example rewrite_model -- MODEL_DIR OUT.onnx`

use dysample_calibrate::collect::{float_shapes, RunOptions};
use dysample_calibrate::graph::{all_activations, to_bytes, Model};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a: Vec<String> = std::env::args().collect();
    if a.len() != 3 {
        return Err("usage: rewrite_model MODEL_DIR OUT.onnx".into());
    }
    let md = dysample_models::ModelDir::open(&a[1])?;
    let mut m = Model::load(&md.onnx_path(dysample_models::Variant::Custom)?)?;
    let spec = &md.model.input;
    let dims = [1, 3, spec.height, spec.width];
    let x = vec![0.5f32; dims.iter().product()];
    let run = RunOptions {
        threads: 2,
        ort_lib: None,
        progress: false,
    };
    let shapes = float_shapes(&m, &all_activations(&m), &x, &dims, &spec.name, &run)?;
    let r = dysample_calibrate::rewrite::apply(&mut m, &shapes);
    let bytes = to_bytes(&m.proto)?;
    dysample::io::write_atomic(std::path::Path::new(&a[2]), |w| w.write_all(&bytes))?;
    println!(
        "{}: {} pads folded, {} ReduceMean → GlobalAveragePool, {} HardSwish → x·HardSigmoid(x)",
        a[2], r.pads, r.reduce_means, r.hard_swishes
    );
    Ok(())
}
