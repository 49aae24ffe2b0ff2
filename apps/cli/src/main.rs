//! `dysample`: run, inspect and benchmark DySample layers from the command line.

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use dysample::{CpuFeatures, DySample, DySampleConfig, Layout, Style};
use ndarray::Array4;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

#[derive(Parser, Debug)]
#[command(name = "dysample", version, about = "DySample dynamic upsampling on the CPU", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run one DySample layer from a safetensors checkpoint on a float32 .npy input.
    Run(RunArgs),
    /// Show the version, detected CPU features and available backends.
    Info {
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Run a built-in random layer on a random input: shape, time and checksum, no files needed.
    Demo(DemoArgs),
}

#[derive(Args, Debug)]
struct LayerArgs {
    /// Upsampling factor (integer ≥ 2).
    #[arg(long, default_value_t = 2)]
    scale: usize,
    /// Offset-generation style: lp (conv then shuffle) or pl (shuffle then conv).
    #[arg(long, default_value = "lp")]
    style: String,
    /// Number of offset groups.
    #[arg(long, default_value_t = 4)]
    groups: usize,
    /// The layer has a dynamic scope conv (scope.weight).
    #[arg(long)]
    dyscope: bool,
}

impl LayerArgs {
    fn config(&self, channels: usize) -> Result<DySampleConfig> {
        let style: Style = self.style.parse().context("--style")?;
        Ok(DySampleConfig::new(
            channels,
            self.scale,
            style,
            self.groups,
            self.dyscope,
        )?)
    }
}

#[derive(Args, Debug)]
struct ExecArgs {
    /// Numeric precision of the computation.
    #[arg(long, default_value = "f32")]
    precision: String,
    /// Kernel backend: `auto` picks the fastest this CPU supports.
    #[arg(long, default_value = "auto")]
    backend: String,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
}

impl ExecArgs {
    fn apply(&self) -> Result<()> {
        if self.precision != "f32" {
            bail!(
                "--precision {}: only f32 is supported by this build",
                self.precision
            );
        }
        if !matches!(self.backend.as_str(), "auto" | "scalar") {
            bail!(
                "--backend {}: unknown backend (available: auto, scalar)",
                self.backend
            );
        }
        if let Some(n) = self.threads {
            if n == 0 {
                bail!("--threads must be ≥ 1");
            }
        }
        Ok(())
    }
}

#[derive(Args, Debug)]
struct RunArgs {
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
}

#[derive(Args, Debug)]
struct DemoArgs {
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

fn read_npy4(path: &PathBuf) -> Result<Array4<f32>> {
    let file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    ndarray_npy::ReadNpyExt::read_npy(file).map_err(|e| {
        anyhow::anyhow!(
            "{}: not a 4-D float32 .npy array ({e})",
            path.display()
        )
    })
}

fn run(args: RunArgs) -> Result<()> {
    args.exec.apply()?;
    let layout: Layout = args.layout.parse().context("--layout")?;
    let x = read_npy4(&args.input)?;
    let dims = [x.shape()[0], x.shape()[1], x.shape()[2], x.shape()[3]];
    let channels = dysample::Shape::from_dims(dims, layout).channels;
    let cfg = args.layer.config(channels)?;
    let layer = DySample::load(&args.weights, &args.prefix, cfg)?;
    let t0 = Instant::now();
    let y = layer
        .forward(x.view(), layout)
        .with_context(|| format!("input {}", args.input.display()))?;
    let elapsed = t0.elapsed();
    let file = std::fs::File::create(&args.output)
        .with_context(|| format!("cannot create {}", args.output.display()))?;
    ndarray_npy::WriteNpyExt::write_npy(&y, std::io::BufWriter::new(file))
        .with_context(|| format!("cannot write {}", args.output.display()))?;
    eprintln!(
        "{} {:?} -> {:?} in {:.3} ms -> {}",
        cfg,
        x.shape(),
        y.shape(),
        elapsed.as_secs_f64() * 1e3,
        args.output.display()
    );
    Ok(())
}

fn demo(args: DemoArgs) -> Result<()> {
    args.exec.apply()?;
    let cfg = args.layer.config(args.channels)?;
    let layer = DySample::random(cfg, 42)?;
    let dims = [1, args.channels, args.height, args.width];
    let mut x = Array4::<f32>::zeros(dims);
    // Deterministic, smooth-ish input so the checksum is reproducible across runs.
    for ((b, c, y, xx), v) in x.indexed_iter_mut() {
        *v = ((c * 7 + y * 3 + xx * 5 + b) % 23) as f32 / 11.0 - 1.0;
    }
    let t0 = Instant::now();
    let out = layer.forward(x.view(), Layout::Nchw)?;
    let ms = t0.elapsed().as_secs_f64() * 1e3;
    let checksum: f64 = out.iter().map(|&v| v as f64).sum();
    println!("layer     {cfg}");
    println!("input     {:?} (nchw)", x.shape());
    println!("output    {:?}", out.shape());
    println!("time      {ms:.3} ms");
    println!("checksum  {checksum:.6}");
    Ok(())
}

fn info(json: bool) -> Result<()> {
    let f = CpuFeatures::get();
    let backends = ["scalar"];
    if json {
        let v = serde_json::json!({
            "version": env!("CARGO_PKG_VERSION"),
            "arch": f.arch,
            "cpu_features": f.names(),
            "backends": backends.iter().map(|b| serde_json::json!({"name": b, "usable": true})).collect::<Vec<_>>(),
        });
        println!("{v}");
    } else {
        println!("dysample {}", env!("CARGO_PKG_VERSION"));
        println!("arch          {}", f.arch);
        println!("cpu features  {}", f.names().join(" "));
        println!("backends      {}", backends.join(" "));
    }
    Ok(())
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("DYSAMPLE_LOG"))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(a) => run(a),
        Command::Info { json } => info(json),
        Command::Demo(a) => demo(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One readable line: the context chain joined, no backtrace.
            let msg: Vec<String> = e.chain().map(|c| c.to_string()).collect();
            eprintln!("error: {}", msg.join(": "));
            ExitCode::from(2)
        }
    }
}
