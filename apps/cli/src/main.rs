//! `dysample`: run, inspect and benchmark DySample layers from the command line.

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use dysample::{Backend, BackendChoice, CpuFeatures, DySampleConfig, ExecOptions, Style};
use std::process::ExitCode;

mod bench;
mod eval;
mod onnx;
mod run;

#[derive(Parser, Debug)]
#[command(name = "dysample", version, about = "DySample dynamic upsampling on the CPU", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run one DySample layer from a safetensors checkpoint on a float32 .npy input.
    Run(run::RunArgs),
    /// Time the layer on random weights and input.
    Bench(bench::BenchArgs),
    /// Show the version, detected CPU features and every backend with whether it is usable here.
    Info {
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Run a built-in random layer on a random input: shape, time and checksum, no files needed.
    Demo(run::DemoArgs),
    /// ONNX models: info, lower, fuse and run (DySample as an ONNX Runtime custom op).
    Onnx(onnx::OnnxArgs),
    /// A model folder's metrics on an eval set (models/SPEC.md); --check / --write model.json rows.
    Eval(eval::EvalArgs),
}

/// The layer's hyper-parameters (channels come from the data).
#[derive(Args, Debug, Clone)]
pub struct LayerArgs {
    /// Upsampling factor (integer ≥ 2).
    #[arg(long, default_value_t = 2)]
    pub scale: usize,
    /// Offset-generation style: lp (conv then shuffle) or pl (shuffle then conv).
    #[arg(long, default_value = "lp")]
    pub style: String,
    /// Number of offset groups.
    #[arg(long, default_value_t = 4)]
    pub groups: usize,
    /// The layer has a dynamic scope conv (scope.weight).
    #[arg(long)]
    pub dyscope: bool,
}

impl LayerArgs {
    pub fn config(&self, channels: usize) -> Result<DySampleConfig> {
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

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    F32,
    F16,
    Int8,
}

/// Kernel selection and threading, shared by `run`, `bench` and `demo`.
#[derive(Args, Debug, Clone)]
pub struct ExecArgs {
    /// Numeric precision of the computation.
    #[arg(long, value_enum, default_value = "f32")]
    pub precision: Precision,
    /// Kernel backend: auto (fastest usable, or $DYSAMPLE_BACKEND), scalar, avx2, avx2-vnni, avx512, neon, neon-dotprod, neon-dotprod-fp16.
    #[arg(long, default_value = "auto")]
    pub backend: String,
    /// Worker threads, 1 ..= 256 (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
}

impl ExecArgs {
    pub fn options(&self) -> Result<ExecOptions> {
        let backend: BackendChoice = self.backend.parse().context("--backend")?;
        if let Some(n) = self.threads {
            let max = dysample::layer::MAX_THREADS;
            anyhow::ensure!(
                (1..=max).contains(&n),
                "--threads must be in 1..={max}, got {n}"
            );
        }
        // Resolve now so an unusable backend fails before any work.
        backend.resolve().context("--backend")?;
        Ok(ExecOptions {
            backend,
            threads: self.threads,
        })
    }
}

fn info(json: bool) -> Result<()> {
    let f = CpuFeatures::get();
    let rows: Vec<(Backend, std::result::Result<(), String>)> = Backend::ALL
        .into_iter()
        .map(|b| (b, b.kernels().map(|_| ()).map_err(|e| e.to_string())))
        .collect();
    let auto = BackendChoice::Auto
        .resolve()
        .map(|k| k.backend.name().to_string());
    if json {
        let v = serde_json::json!({
            "version": env!("CARGO_PKG_VERSION"),
            "arch": f.arch,
            "cpu_vendor": f.vendor,
            "cpu_features": f.names(),
            "nchw_stream": dysample::stream_nchw_output(),
            "auto_backend": auto.as_ref().ok(),
            "backends": rows.iter().map(|(b, r)| serde_json::json!({
                "name": b.name(),
                "usable": r.is_ok(),
                "reason": r.as_ref().err(),
            })).collect::<Vec<_>>(),
        });
        println!("{v}");
    } else {
        println!("dysample {}", env!("CARGO_PKG_VERSION"));
        println!("arch          {}", f.arch);
        if !f.vendor.is_empty() {
            println!("cpu vendor    {}", f.vendor);
        }
        println!("cpu features  {}", f.names().join(" "));
        println!(
            "nchw stream   {} (large NCHW outputs with non-temporal stores; {}=0/1 overrides)",
            if dysample::stream_nchw_output() {
                "on"
            } else {
                "off"
            },
            dysample::NCHW_STREAM_ENV
        );
        match &auto {
            Ok(b) => println!("auto backend  {b}"),
            Err(e) => println!("auto backend  error: {e}"),
        }
        println!("backends:");
        for (b, r) in &rows {
            match r {
                Ok(()) => println!("  {:<18} usable", b.name()),
                Err(e) => println!("  {:<18} unusable: {e}", b.name()),
            }
        }
    }
    Ok(())
}

/// Joins a message's lines: every error is one line (details with DYSAMPLE_LOG).
fn one_line(s: &str) -> String {
    s.split(['\n', '\r'])
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn main() -> ExitCode {
    // DYSAMPLE_LOG=dysample=debug prints each layer call with its duration when its span closes.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("DYSAMPLE_LOG"))
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .with_writer(std::io::stderr)
        .init();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) if !e.use_stderr() => e.exit(), // --help, --version
        Err(e) => {
            // Keep clap's message but on one line, like every other error.
            let text = e.render().to_string();
            eprintln!(
                "{}",
                text.lines().next().unwrap_or("error: invalid arguments")
            );
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Command::Run(a) => run::run(a),
        Command::Bench(a) => bench::bench(a),
        Command::Info { json } => info(json),
        Command::Demo(a) => run::demo(a),
        Command::Onnx(a) => onnx::onnx(a),
        Command::Eval(a) => eval::eval(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One readable line: the context chain joined, no backtrace.
            let msg: Vec<String> = e.chain().map(|c| c.to_string()).collect();
            eprintln!("error: {}", one_line(&msg.join(": ")));
            // A failed `eval --check` is a result, not a usage error.
            ExitCode::from(if e.is::<eval::CheckFailed>() { 1 } else { 2 })
        }
    }
}
