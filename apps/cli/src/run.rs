//! `dysample run` and `dysample demo`.

use crate::{ExecArgs, LayerArgs, Precision};
use anyhow::{Context, Result};
use clap::Args;
use dysample::{DySample, Layout, QuantParams, Shape, Symmetry};
use half::f16;
use ndarray::Array4;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Args, Debug)]
pub struct RunArgs {
    /// PyTorch state_dict saved as .safetensors.
    #[arg(long)]
    weights: PathBuf,
    /// Key prefix of the layer inside the state_dict, e.g. `decode_head.up1`.
    #[arg(long, default_value = "")]
    prefix: String,
    #[command(flatten)]
    layer: LayerArgs,
    /// Input feature map, float32 .npy.
    #[arg(long)]
    input: PathBuf,
    /// Where to write the upsampled float32 .npy.
    #[arg(long)]
    output: PathBuf,
    /// Memory layout of input and output.
    #[arg(long, default_value = "nchw")]
    layout: String,
    #[command(flatten)]
    exec: ExecArgs,
    /// int8 parameters (JSON) to use instead of calibrating min/max on the input.
    #[arg(long)]
    quant: Option<PathBuf>,
    /// Write the int8 parameters that were used (JSON) to this file.
    #[arg(long)]
    dump_quant: Option<PathBuf>,
    /// With built-in calibration, use a symmetric (zero point 0) input range.
    #[arg(long)]
    symmetric: bool,
}

#[derive(Args, Debug)]
pub struct DemoArgs {
    #[arg(long, default_value_t = 64)]
    channels: usize,
    #[arg(long, default_value_t = 64)]
    height: usize,
    #[arg(long, default_value_t = 64)]
    width: usize,
    #[command(flatten)]
    layer: LayerArgs,
    #[command(flatten)]
    exec: ExecArgs,
}

fn read_npy4(path: &Path) -> Result<Array4<f32>> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    ndarray_npy::ReadNpyExt::read_npy(file)
        .map_err(|e| anyhow::anyhow!("{}: not a 4-D float32 .npy array ({e})", path.display()))
}

/// Runs `layer` at `precision` on f32 data, converting at the edges. Returns the parameters used for int8.
pub fn forward_at(
    layer: &DySample,
    precision: Precision,
    x: &[f32],
    dims: [usize; 4],
    layout: Layout,
    out: &mut [f32],
    quant: Option<&QuantParams>,
    symmetric: bool,
) -> Result<Option<QuantParams>> {
    match precision {
        Precision::F32 => {
            layer.forward_slice(x, dims, layout, out)?;
            Ok(None)
        }
        Precision::F16 => {
            let xh: Vec<f16> = x.iter().map(|&v| f16::from_f32(v)).collect();
            let mut yh = vec![f16::ZERO; out.len()];
            layer.forward_slice_f16(&xh, dims, layout, &mut yh)?;
            out.iter_mut().zip(&yh).for_each(|(o, v)| *o = v.to_f32());
            Ok(None)
        }
        Precision::Int8 => {
            let params = match quant {
                Some(p) => p.clone(),
                None => QuantParams::calibrate_minmax(
                    *layer.config(),
                    [x],
                    if symmetric {
                        Symmetry::Symmetric
                    } else {
                        Symmetry::Asymmetric
                    },
                )?,
            };
            let q = layer.quantize(&params)?;
            q.forward_f32(x, dims, layout, out)?;
            Ok(Some(params))
        }
    }
}

pub fn run(args: RunArgs) -> Result<()> {
    let exec = args.exec.options()?;
    let layout: Layout = args.layout.parse().context("--layout")?;
    if args.precision_needs_quant_only() && args.exec.precision != Precision::Int8 {
        anyhow::bail!("--quant/--dump-quant/--symmetric only apply with --precision int8");
    }
    let quant = args
        .quant
        .as_ref()
        .map(|p| QuantParams::from_json_file(p).with_context(|| "--quant".to_string()))
        .transpose()?;
    let x = read_npy4(&args.input)?;
    let dims = [x.shape()[0], x.shape()[1], x.shape()[2], x.shape()[3]];
    let channels = Shape::from_dims(dims, layout).channels;
    let cfg = args.layer.config(channels)?;
    let layer = DySample::load(&args.weights, &args.prefix, cfg)?.with_exec(exec)?;
    let x = x.as_standard_layout();
    let xs = x.as_slice().expect("standard layout");
    let odims = layer
        .output_dims(dims, layout)
        .with_context(|| format!("input {}", args.input.display()))?;
    let mut y = Array4::<f32>::zeros(odims);
    let t0 = Instant::now();
    let used = forward_at(
        &layer,
        args.exec.precision,
        xs,
        dims,
        layout,
        y.as_slice_mut().expect("fresh array"),
        quant.as_ref(),
        args.symmetric,
    )
    .with_context(|| format!("input {}", args.input.display()))?;
    let elapsed = t0.elapsed();
    if let (Some(path), Some(p)) = (&args.dump_quant, &used) {
        std::fs::write(path, p.to_json() + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let file = std::fs::File::create(&args.output)
        .with_context(|| format!("cannot create {}", args.output.display()))?;
    ndarray_npy::WriteNpyExt::write_npy(&y, std::io::BufWriter::new(file))
        .with_context(|| format!("cannot write {}", args.output.display()))?;
    eprintln!(
        "{cfg} {:?} {dims:?} -> {odims:?} [{:?}, {}] in {:.3} ms -> {}",
        layout,
        args.exec.precision,
        layer.backend(),
        elapsed.as_secs_f64() * 1e3,
        args.output.display()
    );
    Ok(())
}

impl RunArgs {
    fn precision_needs_quant_only(&self) -> bool {
        self.quant.is_some() || self.dump_quant.is_some() || self.symmetric
    }
}

pub fn demo(args: DemoArgs) -> Result<()> {
    let exec = args.exec.options()?;
    let cfg = args.layer.config(args.channels)?;
    let layer = DySample::random(cfg, 42)?.with_exec(exec)?;
    let dims = [1, args.channels, args.height, args.width];
    let mut x = Array4::<f32>::zeros(dims);
    // Deterministic input so the checksum is reproducible across runs and machines.
    for ((b, c, y, xx), v) in x.indexed_iter_mut() {
        *v = ((c * 7 + y * 3 + xx * 5 + b) % 23) as f32 / 11.0 - 1.0;
    }
    let odims = layer.output_dims(dims, Layout::Nchw)?;
    let mut out = vec![0.0f32; odims.iter().product()];
    // The first call starts worker threads and fills scratch pools: time the calls after it.
    let mut times = Vec::new();
    for _ in 0..6 {
        let t0 = Instant::now();
        forward_at(
            &layer,
            args.exec.precision,
            x.as_slice().unwrap(),
            dims,
            Layout::Nchw,
            &mut out,
            None,
            false,
        )?;
        times.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    let first = times.remove(0);
    times.sort_by(f64::total_cmp);
    let ms = times[times.len() / 2];
    let checksum: f64 = out.iter().map(|&v| v as f64).sum();
    println!("layer     {cfg}");
    println!("backend   {} ({:?})", layer.backend(), args.exec.precision);
    println!("input     {dims:?} (nchw)");
    println!("output    {odims:?}");
    println!("time      {ms:.3} ms (median of 5 calls; first call {first:.3} ms)");
    println!("checksum  {checksum:.6}");
    Ok(())
}
