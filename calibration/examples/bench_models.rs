//! Whole-model speed, fp32 against int8, side by side in interleaved rounds through the SDK's
//! ONNX Runtime session (DySample on the SDK kernels), with a per-op-type profile of one run.
//!
//! `cargo run --release -p dysample-calibrate --example bench_models -- MODEL_DIR INT8.onnx [MORE.onnx …] [THREADS] [ROUNDS]`
//!
//! Every model after the first `.onnx` is timed in the same interleaved rounds (a before/after
//! pair of int8 graphs, or the rewritten fp32 graph), each against the fp32 `model.onnx`.

use dysample::onnx::session::SessionOptions;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a: Vec<String> = std::env::args().collect();
    if a.len() < 3 {
        return Err(
            "usage: bench_models MODEL_DIR INT8.onnx [MORE.onnx …] [THREADS] [ROUNDS]".into(),
        );
    }
    let md = dysample_models::ModelDir::open(&a[1])?;
    let models: Vec<&String> = a[2..].iter().take_while(|s| s.ends_with(".onnx")).collect();
    let rest = &a[2 + models.len()..];
    let threads: usize = rest.first().map_or(Ok(2), |s| s.parse())?;
    let rounds: usize = rest.get(1).map_or(Ok(5), |s| s.parse())?;
    let spec = &md.model.input;
    let dims = [1, 3, spec.height, spec.width];
    let x: Vec<f32> = (0..3 * spec.height * spec.width)
        .map(|i| ((i * 7919) % 255) as f32 / 255.0)
        .collect();
    let mut files = vec![(
        "fp32".to_string(),
        md.onnx_path(dysample_models::Variant::Custom)?,
    )];
    for (k, m) in models.iter().enumerate() {
        let name = if models.len() == 1 {
            "int8".to_string()
        } else {
            format!("#{} {m}", k + 1)
        };
        files.push((name, (*m).into()));
    }
    let mut sessions = Vec::new();
    for (name, f) in &files {
        let mut s = SessionOptions::new().threads(threads).build(f)?;
        for _ in 0..5 {
            s.run_f32(&x, &dims)?;
        }
        sessions.push((name, s));
    }
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); files.len()];
    for _ in 0..rounds {
        for (k, (_, s)) in sessions.iter_mut().enumerate() {
            for _ in 0..10 {
                let t = Instant::now();
                s.run_f32(&x, &dims)?;
                times[k].push(t.elapsed().as_secs_f64() * 1e3);
            }
        }
    }
    let stat = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        let q = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
        (q(0.5), q(0.1), q(0.9))
    };
    println!(
        "model {} threads {threads}, {} runs each, interleaved",
        md.model.name,
        rounds * 10
    );
    println!("| model | median ms | p10 ms | p90 ms | speed-up vs fp32 (median) |\n|---|---|---|---|---|");
    let (m0, _, _) = stat(&mut times[0]);
    for (k, (name, _)) in sessions.iter().enumerate() {
        let (m, p10, p90) = stat(&mut times[k]);
        println!("| {name} | {m:.2} | {p10:.2} | {p90:.2} | {:.2}x |", m0 / m);
    }
    // Which kernels ran: ORT's profile of one run.
    for (name, f) in &files {
        let mut o = SessionOptions::new().threads(threads);
        o.record_placement = true;
        let mut s = o.build(f)?;
        s.run_f32(&x, &dims)?;
        let mut ops = std::collections::BTreeMap::<String, usize>::new();
        for (op, _) in s.placement().values() {
            *ops.entry(op.clone()).or_default() += 1;
        }
        println!("{name} nodes by op type: {ops:?}");
    }
    Ok(())
}
