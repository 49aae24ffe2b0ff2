//! `dysample bench`: time the layer's own work on random weights and input.

use crate::{ExecArgs, LayerArgs, Precision};
use anyhow::{Context, Result};
use clap::Args;
use dysample::io::try_alloc;
use dysample::{Affine, DySample, Layout, QuantParams, Shape};
use half::f16;
use rand::{rngs::StdRng, Rng, SeedableRng};
use std::time::Instant;

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[arg(long, default_value_t = 256)]
    channels: usize,
    #[arg(long, default_value_t = 120)]
    height: usize,
    #[arg(long, default_value_t = 120)]
    width: usize,
    #[arg(long, default_value_t = 1)]
    batch: usize,
    #[command(flatten)]
    layer: LayerArgs,
    #[command(flatten)]
    exec: ExecArgs,
    /// Memory layout of input and output.
    #[arg(long, default_value = "nchw")]
    layout: String,
    /// Timed iterations (1 ..= 1000000).
    #[arg(long, default_value_t = 50)]
    iters: usize,
    /// Untimed warm-up iterations (≤ 1000000).
    #[arg(long, default_value_t = 5)]
    warmup: usize,
    /// End with one JSON object on its own line.
    #[arg(long)]
    json: bool,
    /// Also write this exact layer as a one-node ONNX model, DIR/layer.onnx, and the input as
    /// DIR/input.npy (f32, NCHW), for `dysample onnx bench DIR/layer.onnx --input
    /// DIR/input.npy`: the same weights and data through ONNX Runtime, so the two times show
    /// the custom op's overhead. An f32 node for f32 and f16 (run it with
    /// `--dysample-precision f16`), QuantizeLinear → int8 node → DequantizeLinear for int8.
    /// Needs --layout nchw (the custom op's layout).
    #[arg(long, value_name = "DIR")]
    save_onnx: Option<std::path::PathBuf>,
    /// Before each iteration (untimed), write and read a 64 MiB buffer, so that the layer's
    /// input and output are no longer in the caches: as in a network, where other layers ran
    /// in between (an ONNX Runtime node is timed that way). Without it, a layer whose input and
    /// output fit in the last-level cache together is timed with them still there.
    #[arg(long)]
    cold_caches: bool,
}

/// Bytes of the buffer that `--cold-caches` sweeps: above the last-level cache of the CPUs we
/// target (this machine: 32 MiB L3).
const SWEEP_BYTES: usize = 64 << 20;

/// Writes, then reads, every line of `buf`, evicting whatever the caches held.
fn sweep(buf: &mut [u8], round: u8) -> u64 {
    buf.fill(round);
    buf.iter().step_by(64).map(|&b| b as u64).sum()
}

/// Peak resident set size of this process, from /proc (Linux only).
fn peak_rss_mib() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// `--save-onnx`: the layer as a one-node model and its input, for `dysample onnx bench`.
fn save_onnx(
    dir: &std::path::Path,
    layer: &DySample,
    q: Affine,
    x: &[f32],
    dims: [usize; 4],
    layout: Layout,
    precision: Precision,
) -> Result<()> {
    use dysample::onnx::graph::{layer_model, save_model, LayerIo};
    anyhow::ensure!(
        layout == Layout::Nchw,
        "--save-onnx needs --layout nchw (ONNX Runtime hands the custom op NCHW tensors)"
    );
    std::fs::create_dir_all(dir)
        .with_context(|| format!("--save-onnx: cannot create {}", dir.display()))?;
    let cfg = *layer.config();
    let io = match precision {
        Precision::Int8 => LayerIo::Qdq(QuantParams::new(cfg, q)),
        Precision::F32 | Precision::F16 => LayerIo::F32,
    };
    let model = dir.join("layer.onnx");
    save_model(&layer_model(&cfg, layer.weights(), &io), &model)
        .with_context(|| format!("--save-onnx: {}", model.display()))?;
    let input = dir.join("input.npy");
    dysample::npy::write_f32(&input, &dims, x)
        .with_context(|| format!("--save-onnx: {}", input.display()))?;
    eprintln!("wrote {} and {}", model.display(), input.display());
    Ok(())
}

pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

/// Most `--iters` / `--warmup` accepted.
pub(crate) const MAX_ITERS: usize = 1_000_000;

pub fn bench(a: BenchArgs) -> Result<()> {
    anyhow::ensure!(
        (1..=MAX_ITERS).contains(&a.iters),
        "--iters must be in 1..={MAX_ITERS}, got {}",
        a.iters
    );
    anyhow::ensure!(
        a.warmup <= MAX_ITERS,
        "--warmup must be at most {MAX_ITERS}, got {}",
        a.warmup
    );
    let exec = a.exec.options()?;
    let layout: Layout = a.layout.parse().context("--layout")?;
    let cfg = a.layer.config(a.channels)?;
    let layer = DySample::random(cfg, 1)?.with_exec(exec)?;
    let shape = Shape::new(a.batch, a.channels, a.height, a.width);
    let dims = shape.dims(layout);
    // Sizes first (checked against the layer's limits), then fallible allocations.
    let odims = layer.output_dims(dims, layout)?;
    let (n_in, n_out) = (shape.len(), layer.output_len(dims, layout)?);
    let mut rng = StdRng::seed_from_u64(2);
    let mut x = try_alloc(0.0f32, n_in, "the input")?;
    x.iter_mut().for_each(|v| *v = rng.gen_range(-2.0..2.0));
    // The int8 input quantization: x lies in [-2, 2).
    let q = Affine {
        scale: 2.0 / 127.0,
        zero_point: 0,
    };
    if let Some(dir) = &a.save_onnx {
        save_onnx(dir, &layer, q, &x, dims, layout, a.exec.precision)?;
    }

    // Only the layer call is timed: conversions at the edges happen once, outside.
    let mut run: Box<dyn FnMut() -> Result<()>> = match a.exec.precision {
        Precision::F32 => {
            let mut y = try_alloc(0.0f32, n_out, &format!("the output {odims:?}"))?;
            Box::new(move || Ok(layer.forward_slice(&x, dims, layout, &mut y)?))
        }
        Precision::F16 => {
            let mut xh = try_alloc(f16::ZERO, n_in, "the input")?;
            xh.iter_mut()
                .zip(&x)
                .for_each(|(h, &v)| *h = f16::from_f32(v));
            let mut y = try_alloc(f16::ZERO, n_out, &format!("the output {odims:?}"))?;
            Box::new(move || Ok(layer.forward_slice_f16(&xh, dims, layout, &mut y)?))
        }
        Precision::Int8 => {
            let ql = layer.quantize(&QuantParams::new(cfg, q))?;
            let mut xq = try_alloc(0i8, n_in, "the input")?;
            q.quantize_slice(&x, &mut xq);
            let mut y = try_alloc(0i8, n_out, &format!("the output {odims:?}"))?;
            Box::new(move || Ok(ql.forward_slice(&xq, dims, layout, &mut y)?))
        }
    };
    let mut sweep_buf = if a.cold_caches {
        try_alloc(0u8, SWEEP_BYTES, "the --cold-caches buffer")?
    } else {
        Vec::new()
    };
    for _ in 0..a.warmup {
        run()?;
    }
    let mut times = Vec::with_capacity(a.iters);
    for i in 0..a.iters {
        if a.cold_caches {
            std::hint::black_box(sweep(&mut sweep_buf, i as u8));
        }
        let t = Instant::now();
        run()?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(|p, q| p.total_cmp(q));
    let median = percentile(&times, 0.5);
    let (p10, p90) = (percentile(&times, 0.1), percentile(&times, 0.9));
    let out_px = (n_out / a.channels) as f64;
    let mpix = out_px / (median * 1e-3) / 1e6;
    let elem = match a.exec.precision {
        Precision::F32 => 4,
        Precision::F16 => 2,
        Precision::Int8 => 1,
    };
    let bytes = ((n_in + n_out) * elem) as f64;
    let backend = BackendName(exec.backend.resolve()?.backend.name());
    let threads = exec.threads.unwrap_or_else(rayon_threads);
    let peak = peak_rss_mib();
    println!(
        "{cfg} B={} {}x{} {layout} {:?} backend={} threads={threads}{}",
        a.batch,
        a.height,
        a.width,
        a.exec.precision,
        backend.0,
        if a.cold_caches { " cold caches" } else { "" }
    );
    println!(
        "median {median:.3} ms  (min {:.3}, p10 {p10:.3}, p90 {p90:.3}, max {:.3}; {} iters)",
        times[0],
        times[times.len() - 1],
        a.iters
    );
    println!(
        "{mpix:.1} output Mpix/s, {:.1} GB/s effective (input + output once), peak RSS {}",
        bytes / (median * 1e-3) / 1e9,
        peak.map_or("n/a".into(), |m| format!("{m:.1} MiB"))
    );
    if a.json {
        let v = serde_json::json!({
            "median_ms": median, "min_ms": times[0], "p10_ms": p10, "p90_ms": p90, "max_ms": times[times.len() - 1],
            "iters": a.iters, "mpix_per_s": mpix, "effective_gb_per_s": bytes / (median * 1e-3) / 1e9,
            "peak_rss_mib": peak, "backend": backend.0, "threads": threads,
            "precision": format!("{:?}", a.exec.precision).to_lowercase(), "layout": layout.to_string(),
            "batch": a.batch, "channels": a.channels, "height": a.height, "width": a.width,
            "scale": cfg.scale, "style": cfg.style.to_string(), "groups": cfg.groups, "dyscope": cfg.dyscope,
            "cold_caches": a.cold_caches,
        });
        println!("{v}");
    }
    Ok(())
}

struct BackendName(&'static str);

fn rayon_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
