//! `dysample run` and `dysample demo`.

use crate::{ExecArgs, LayerArgs, Precision};
use anyhow::{Context, Result};
use clap::Args;
use dysample::io::try_alloc;
use dysample::{DySample, Layout, QuantParams, Shape, Symmetry};
use half::f16;
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

/// A 4-D float32 `.npy` input, checked for NaN/Inf (the non-finite policy: reject).
fn read_npy4(path: &Path) -> Result<([usize; 4], Vec<f32>)> {
    let a = dysample::npy::read_f32(path)?;
    let dims: [usize; 4] = a.dims.as_slice().try_into().map_err(|_| {
        anyhow::anyhow!(
            "{}: not a 4-D float32 .npy array (it has shape {:?})",
            path.display(),
            a.dims
        )
    })?;
    dysample::tensor::check_finite(&format!("input {}", path.display()), &a.data)?;
    Ok((dims, a.data))
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
            dysample::tensor::check_f16_range("input", x)?;
            let mut xh = try_alloc(f16::ZERO, x.len(), "the float16 input")?;
            xh.iter_mut()
                .zip(x)
                .for_each(|(h, &v)| *h = f16::from_f32(v));
            let mut yh = try_alloc(f16::ZERO, out.len(), "the float16 output")?;
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
            if quant.is_some() {
                let n = params.input.saturated(x);
                if n > 0 {
                    eprintln!(
                        "warning: {n} of {} input values ({:.2}%) lie outside the int8 range of the --quant input scale ({} .. {}) and saturate",
                        x.len(),
                        100.0 * n as f64 / x.len() as f64,
                        params.input.dequantize(-128),
                        params.input.dequantize(127)
                    );
                }
            }
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
    if args.symmetric && args.quant.is_some() {
        anyhow::bail!("--symmetric applies to the built-in calibration; with --quant the file's input scale and zero point are used (drop one of the two)");
    }
    let quant = args
        .quant
        .as_ref()
        .map(|p| QuantParams::from_json_file(p).with_context(|| "--quant".to_string()))
        .transpose()?;
    let (dims, xs) = read_npy4(&args.input)?;
    let channels = Shape::from_dims(dims, layout).channels;
    let cfg = args.layer.config(channels)?;
    let layer = DySample::load(&args.weights, &args.prefix, cfg)?.with_exec(exec)?;
    let ctx = || format!("input {}", args.input.display());
    let odims = layer.output_dims(dims, layout).with_context(ctx)?;
    let n_out = layer.output_len(dims, layout).with_context(ctx)?;
    let mut y = try_alloc(0.0f32, n_out, &format!("the output {odims:?}")).with_context(ctx)?;
    let t0 = Instant::now();
    let used = forward_at(
        &layer,
        args.exec.precision,
        &xs,
        dims,
        layout,
        &mut y,
        quant.as_ref(),
        args.symmetric,
    )
    .with_context(ctx)?;
    let elapsed = t0.elapsed();
    // The output first, the side file last: a failure leaves neither half-written.
    dysample::npy::write_f32(&args.output, &odims, &y)?;
    if let (Some(path), Some(p)) = (&args.dump_quant, &used) {
        dysample::io::write_bytes_atomic(path, (p.to_json() + "\n").as_bytes())?;
    }
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
    // Sizes first (checked), then fallible allocations.
    let odims = layer.output_dims(dims, Layout::Nchw)?;
    let n_out = layer.output_len(dims, Layout::Nchw)?;
    let mut x = try_alloc(
        0.0f32,
        args.channels * args.height * args.width,
        "the input",
    )?;
    // Deterministic input so the checksum is reproducible across runs and machines.
    let (h, w) = (args.height, args.width);
    for (i, v) in x.iter_mut().enumerate() {
        let (c, y, xx) = (i / (h * w), i / w % h, i % w);
        *v = ((c * 7 + y * 3 + xx * 5) % 23) as f32 / 11.0 - 1.0;
    }
    let mut out = try_alloc(0.0f32, n_out, &format!("the output {odims:?}"))?;
    // The first call starts worker threads and fills scratch pools: time the calls after it.
    let mut times = Vec::new();
    for _ in 0..6 {
        let t0 = Instant::now();
        forward_at(
            &layer,
            args.exec.precision,
            &x,
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
