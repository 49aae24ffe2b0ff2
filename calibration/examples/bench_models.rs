//! Whole-model speed, fp32 against int8, side by side in interleaved rounds through the SDK's
//! ONNX Runtime session (DySample on the SDK kernels), with a per-op-type profile of one run.
//!
//! `cargo run --release -p dysample-calibrate --example bench_models -- MODEL_DIR INT8.onnx [THREADS] [ROUNDS]`

use dysample::onnx::session::SessionOptions;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a: Vec<String> = std::env::args().collect();
    if a.len() < 3 {
        return Err("usage: bench_models MODEL_DIR INT8.onnx [THREADS] [ROUNDS]".into());
    }
    let md = dysample_models::ModelDir::open(&a[1])?;
    let threads: usize = a.get(3).map_or(Ok(2), |s| s.parse())?;
    let rounds: usize = a.get(4).map_or(Ok(5), |s| s.parse())?;
    let spec = &md.model.input;
    let dims = [1, 3, spec.height, spec.width];
    let x: Vec<f32> = (0..3 * spec.height * spec.width)
        .map(|i| ((i * 7919) % 255) as f32 / 255.0)
        .collect();
    let files = [
        ("fp32", md.onnx_path(dysample_models::Variant::Custom)?),
        ("int8", a[2].clone().into()),
    ];
    let mut sessions = Vec::new();
    for (name, f) in &files {
        let mut s = SessionOptions::new().threads(threads).build(f)?;
        for _ in 0..5 {
            s.run_f32(&x, &dims)?;
        }
        sessions.push((name, s));
    }
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); 2];
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
    let (m0, a0, b0) = stat(&mut times[0]);
    let (m1, a1, b1) = stat(&mut times[1]);
    println!(
        "model {} threads {threads}, {} runs each, interleaved",
        md.model.name,
        rounds * 10
    );
    println!("| model | median ms | p10 ms | p90 ms |\n|---|---|---|---|");
    println!("| fp32 | {m0:.2} | {a0:.2} | {b0:.2} |\n| int8 | {m1:.2} | {a1:.2} | {b1:.2} |");
    println!("int8 speed-up (median): {:.2}x", m0 / m1);
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
