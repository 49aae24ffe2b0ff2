//! The statistics pass: ONNX Runtime (through the SDK's session builder, so DySample nodes run
//! on the SDK kernels) over the calibration set, the needed tensors as extra graph outputs,
//! one streamed histogram per tensor.

use crate::data::{self, DataSet, Preprocess};
use crate::error::{CalibError, Result};
use crate::graph::{to_bytes, with_outputs, Model};
use crate::hist::Histogram;
use dysample::onnx::session::{DySampleSession, SessionOptions};
use rayon::prelude::*;
use std::path::PathBuf;
use std::time::Instant;

/// How to run ONNX Runtime.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Intra-op threads (0 = all cores).
    pub threads: usize,
    pub ort_lib: Option<PathBuf>,
    /// Show a progress bar (on a terminal).
    pub progress: bool,
}

/// A session over `proto`, checked to have the model's named input.
pub fn session(
    model: &Model,
    proto: &dysample::onnx::graph::proto::ModelProto,
    input: &str,
    opts: &RunOptions,
) -> Result<DySampleSession> {
    let s = SessionOptions {
        threads: opts.threads,
        ort_lib: opts.ort_lib.clone(),
        ort_error_log: std::env::var_os("DYSAMPLE_LOG").is_some(),
        ..SessionOptions::default()
    }
    .build_from_bytes(&to_bytes(proto)?, &model.path)?;
    let names = s.input_names();
    if names.len() != 1 || names[0] != input {
        return Err(CalibError::msg(format!(
            "{}: has inputs [{}], no input named '{input}' (model.json's input.name)",
            model.path.display(),
            names.join(", ")
        )));
    }
    Ok(s)
}

/// Histograms of `tensors` over the calibration set.
#[derive(Clone, Debug)]
pub struct Stats {
    pub tensors: Vec<String>,
    pub hists: Vec<Histogram>,
    pub samples: usize,
    pub seconds: f64,
}

impl Stats {
    pub fn get(&self, name: &str) -> Option<&Histogram> {
        self.tensors
            .iter()
            .position(|t| t == name)
            .map(|i| &self.hists[i])
    }
}

fn progress(n: usize, on: bool, what: &str) -> indicatif::ProgressBar {
    if !on {
        return indicatif::ProgressBar::hidden();
    }
    let pb = indicatif::ProgressBar::new(n as u64);
    pb.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg} [{bar:30}] {pos}/{len} samples, {per_sec}, ETA {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    pb.set_message(what.to_string());
    pb
}

/// One pass over the data: the model with `tensors` as extra outputs, each output folded into
/// its histogram as soon as it arrives (work on the rayon pool: decoding a batch of samples in
/// parallel, then the histogram updates in parallel over tensors).
pub fn collect(
    model: &Model,
    tensors: &[String],
    data: &DataSet,
    pre: &Preprocess,
    opts: &RunOptions,
) -> Result<Stats> {
    let t0 = Instant::now();
    let proto = with_outputs(model, tensors);
    let mut sess = session(model, &proto, &pre.spec.name, opts)?;
    let mut hists = vec![Histogram::new(); tensors.len()];
    let index: std::collections::HashMap<&str, usize> = tensors
        .iter()
        .enumerate()
        .map(|(i, t)| (t.as_str(), i))
        .collect();
    let pb = progress(data.len(), opts.progress, "calibrating");
    let batch = rayon::current_num_threads().max(1);
    let mut seen = vec![false; tensors.len()];
    for chunk in data.items.chunks(batch) {
        let inputs: Vec<Result<(Vec<f32>, [usize; 4])>> =
            chunk.par_iter().map(|it| data::load(it, pre)).collect();
        for (item, x) in chunk.iter().zip(inputs) {
            let (x, dims) = x?;
            let outs = sess
                .run_f32_outputs(&x, &dims)
                .map_err(|e| CalibError::msg(format!("sample {}: {e}", item.label())))?;
            let mut work: Vec<(usize, &[f32])> = Vec::with_capacity(outs.len() + 1);
            if let Some(&i) = index.get(pre.spec.name.as_str()) {
                work.push((i, x.as_slice()));
                seen[i] = true;
            }
            for (name, (_, v)) in &outs {
                if let Some(&i) = index.get(name.as_str()) {
                    work.push((i, v.as_slice()));
                    seen[i] = true;
                }
            }
            // Find a bad value first (naming the tensor), then update in parallel.
            if let Some((i, k)) = work
                .par_iter()
                .find_map_first(|(i, v)| v.iter().position(|x| !x.is_finite()).map(|k| (*i, k)))
            {
                return Err(CalibError::msg(format!(
                    "tensor '{}' holds a non-finite value (NaN or Inf) at element {k} on sample {}",
                    tensors[i],
                    item.label()
                )));
            }
            let mut slots: Vec<Option<&mut Histogram>> = hists.iter_mut().map(Some).collect();
            let mut jobs: Vec<(&mut Histogram, &[f32])> = Vec::with_capacity(work.len());
            for (i, v) in work {
                if let Some(h) = slots[i].take() {
                    jobs.push((h, v));
                }
            }
            jobs.into_par_iter().for_each(|(h, v)| h.add(v));
            pb.inc(1);
        }
    }
    pb.finish_and_clear();
    if let Some(i) = seen.iter().position(|s| !s) {
        return Err(CalibError::msg(format!(
            "tensor '{}' is not a float tensor ONNX Runtime could return",
            tensors[i]
        )));
    }
    Ok(Stats {
        tensors: tensors.to_vec(),
        hists,
        samples: data.len(),
        seconds: t0.elapsed().as_secs_f64(),
    })
}

/// The dims of every float tensor among `names` on one input (ONNX Runtime returns only the
/// float ones; the input itself included).
pub fn float_shapes(
    model: &Model,
    names: &[String],
    x: &[f32],
    dims: &[usize],
    input_name: &str,
    opts: &RunOptions,
) -> Result<std::collections::HashMap<String, Vec<usize>>> {
    let p = crate::graph::with_outputs(model, names);
    let mut sess = session(model, &p, input_name, opts)?;
    let mut f: std::collections::HashMap<String, Vec<usize>> = sess
        .run_f32_outputs(x, dims)?
        .into_iter()
        .map(|(n, (d, _))| (n, d))
        .collect();
    f.insert(input_name.to_string(), dims.to_vec());
    Ok(f)
}

/// One run's named outputs.
pub type Named = Vec<(String, Vec<f32>)>;

/// Runs `proto` on the first `n` samples and returns the named outputs of each (small `n`:
/// the SQNR and sensitivity passes).
pub fn outputs(
    model: &Model,
    proto: &dysample::onnx::graph::proto::ModelProto,
    inputs: &[(Vec<f32>, [usize; 4])],
    input_name: &str,
    opts: &RunOptions,
) -> Result<Vec<Named>> {
    let mut sess = session(model, proto, input_name, opts)?;
    let mut all = Vec::with_capacity(inputs.len());
    for (x, dims) in inputs {
        let outs = sess.run_f32_outputs(x, dims)?;
        all.push(outs.into_iter().map(|(n, (_, v))| (n, v)).collect());
    }
    Ok(all)
}
