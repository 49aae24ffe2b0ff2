//! A reusable run for a fixed input shape: the input and output tensors are allocated once and
//! bound to the session with ORT's IoBinding, so a video loop writes each frame into
//! [`PreparedRun::input_mut`] and reads [`PreparedRun::run`]'s slice without copying into new
//! `Vec`s. On the CPU provider no Rust heap allocation happens per run (ORT's own C++ arena
//! allocations for intermediate tensors are not Rust allocations and not counted; see the demo's
//! `no_alloc_network` test).
//!
//! ```no_run
//! use dysample::onnx::session::{Provider, SessionOptions};
//! let mut s = SessionOptions::new().provider(Provider::Cpu).build("model.onnx".as_ref())?;
//! let mut run = s.prepare_f32(&[1, 3, 256, 256])?;
//! for _frame in 0..10 {
//!     run.input_mut().fill(0.5); // the preprocessed frame
//!     let y = run.run(&mut s)?;
//!     # let _ = y;
//! }
//! # Ok::<(), dysample::onnx::OnnxError>(())
//! ```

use super::session::DySampleSession;
use super::{OnnxError, Result};
use ort::memory::Allocator;
use ort::session::IoBinding;
use ort::value::{Tensor, TensorElementType};
use ort::AsPointer;
use std::ffi::CString;

/// The most values an input or output of a prepared run may hold (4 GiB of f32).
pub const MAX_PREPARED_VALUES: usize = 1 << 30;

/// A run of one [`DySampleSession`] on a fixed input shape; see the [module docs](self).
#[derive(Debug)]
pub struct PreparedRun {
    in_dims: Vec<usize>,
    out_dims: Vec<usize>,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    /// f32 input bound once; output 0 bound to a preallocated tensor.
    Bound(Box<Bound>),
    /// The model's input is not f32 (an f16 model): [`DySampleSession::run_f32`] each time,
    /// which converts the input and allocates its output.
    Fallback { input: Vec<f32>, output: Vec<f32> },
}

#[derive(Debug)]
struct Bound {
    /// The `OrtSession` this binding belongs to (only compared, never dereferenced).
    session: usize,
    input_name: CString,
    input: Tensor<f32>,
    output: BoundOutput,
    /// Declared after the tensors it refers to; it also holds its own references to them.
    binding: IoBinding,
}

#[derive(Debug)]
enum BoundOutput {
    F32(Tensor<f32>),
    /// An f16 output, widened into `widened` after each run.
    F16 {
        tensor: Tensor<half::f16>,
        widened: Vec<f32>,
    },
}

fn count(what: &str, dims: &[usize]) -> Result<usize> {
    dims.iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .filter(|&n| n <= MAX_PREPARED_VALUES)
        .ok_or_else(|| OnnxError::Data {
            what: what.into(),
            detail: format!(
                "shape {dims:?} holds more than the limit of {MAX_PREPARED_VALUES} values"
            ),
        })
}

impl DySampleSession {
    /// Prepares repeated runs of this single-input model on inputs of shape `dims`: allocates
    /// the input and first output once and binds them to the session. The output's dims are the
    /// model's declared output shape when fully static, else those of one run on a zero input.
    ///
    /// Models whose input is not f32 (f16 models) get a fallback that calls
    /// [`DySampleSession::run_f32`] on each run: it works the same, but converts and allocates
    /// per run.
    pub fn prepare_f32(&mut self, dims: &[usize]) -> Result<PreparedRun> {
        let (name, in_ty) = self.single_input(Some(dims))?;
        let n_in = count(&format!("input '{name}'"), dims)?;
        if in_ty != Some(TensorElementType::Float32) {
            // run_f32 accepts f16 and refuses other types with a clear message.
            let (out_dims, output) = self.run_f32(&vec![0.0; n_in], dims)?;
            return Ok(PreparedRun {
                in_dims: dims.to_vec(),
                out_dims,
                kind: Kind::Fallback {
                    input: vec![0.0; n_in],
                    output,
                },
            });
        }

        let out = self
            .session
            .outputs()
            .first()
            .ok_or_else(|| OnnxError::Data {
                what: self.model.display().to_string(),
                detail: "has no outputs".into(),
            })?;
        let out_name = out.name().to_string();
        let out_ty = out.dtype().tensor_type();
        let declared = out.dtype().tensor_shape().and_then(|s| {
            (!s.is_empty() && s.iter().all(|&d| d >= 0))
                .then(|| s.iter().map(|&d| d as usize).collect::<Vec<_>>())
        });
        let out_dims = match declared {
            Some(d) => d,
            None => self.run_f32(&vec![0.0; n_in], dims)?.0,
        };
        let n_out = count(&format!("output '{out_name}'"), &out_dims)?;

        let alloc = Allocator::default();
        let mut input = Tensor::<f32>::new(&alloc, dims)?;
        input.extract_tensor_mut().1.fill(0.0);
        let mut binding = self.session.create_binding()?;
        binding.bind_input(name.as_str(), &input)?;
        let output = match out_ty {
            Some(TensorElementType::Float32) => {
                let mut t = Tensor::<f32>::new(&alloc, out_dims.as_slice())?;
                t.extract_tensor_mut().1.fill(0.0);
                binding.bind_output(out_name.as_str(), &mut t)?;
                BoundOutput::F32(t)
            }
            Some(TensorElementType::Float16) => {
                let mut t = Tensor::<half::f16>::new(&alloc, out_dims.as_slice())?;
                t.extract_tensor_mut().1.fill(half::f16::ZERO);
                binding.bind_output(out_name.as_str(), &mut t)?;
                BoundOutput::F16 {
                    tensor: t,
                    widened: vec![0.0; n_out],
                }
            }
            other => {
                return Err(OnnxError::Data {
                    what: format!("output '{out_name}'"),
                    detail: format!(
                        "has element type {other:?}; only float32 and float16 are supported"
                    ),
                })
            }
        };
        let input_name = CString::new(name.clone()).map_err(|_| OnnxError::Data {
            what: format!("input '{name}'"),
            detail: "name contains a NUL byte".into(),
        })?;
        tracing::debug!(model = %self.model.display(), input = ?dims, output = ?out_dims, "prepared bound run");
        Ok(PreparedRun {
            in_dims: dims.to_vec(),
            out_dims,
            kind: Kind::Bound(Box::new(Bound {
                session: self.session.ptr() as usize,
                input_name,
                input,
                output,
                binding,
            })),
        })
    }
}

impl PreparedRun {
    /// The input's dims, as prepared.
    pub fn input_dims(&self) -> &[usize] {
        &self.in_dims
    }

    /// The output's dims.
    pub fn output_dims(&self) -> &[usize] {
        &self.out_dims
    }

    /// Whether runs go through IoBinding (false: the f16-input fallback through `run_f32`).
    pub fn is_bound(&self) -> bool {
        matches!(self.kind, Kind::Bound(_))
    }

    /// The input tensor to fill before [`PreparedRun::run`] (NCHW, [`Self::input_dims`]).
    pub fn input_mut(&mut self) -> &mut [f32] {
        match &mut self.kind {
            Kind::Bound(b) => b.input.extract_tensor_mut().1,
            Kind::Fallback { input, .. } => input,
        }
    }

    /// Copies `data` into the input tensor; it must hold exactly the prepared shape's values.
    pub fn set_input(&mut self, data: &[f32]) -> Result<()> {
        let input = self.input_mut();
        if input.len() != data.len() {
            return Err(OnnxError::Data {
                what: "input data".into(),
                detail: format!(
                    "holds {} values, the prepared shape needs {}",
                    data.len(),
                    input.len()
                ),
            });
        }
        input.copy_from_slice(data);
        Ok(())
    }

    /// The output dims and the values of the last run (zeros before the first).
    pub fn output(&self) -> (&[usize], &[f32]) {
        let y: &[f32] = match &self.kind {
            Kind::Bound(b) => match &b.output {
                BoundOutput::F32(t) => t.extract_tensor().1,
                BoundOutput::F16 { widened, .. } => widened,
            },
            Kind::Fallback { output, .. } => output,
        };
        (&self.out_dims, y)
    }

    /// Runs the model on the current input and returns the first output
    /// ([`Self::output_dims`]). `session` must be the one that prepared this run.
    pub fn run(&mut self, session: &mut DySampleSession) -> Result<&[f32]> {
        let b = match &mut self.kind {
            Kind::Bound(b) => b,
            Kind::Fallback { input, output } => {
                let (dims, y) = session.run_f32(input, &self.in_dims)?;
                if dims != self.out_dims {
                    return Err(OnnxError::Data {
                        what: "output 0".into(),
                        detail: format!(
                            "changed shape from {:?} to {dims:?} between runs",
                            self.out_dims
                        ),
                    });
                }
                *output = y;
                return Ok(output);
            }
        };
        if session.session.ptr() as usize != b.session {
            return Err(OnnxError::Runtime(
                "a prepared run was given a different session than the one that prepared it".into(),
            ));
        }
        let api = ort::api();
        // SAFETY: the binding, session and input tensor are alive and owned by us; re-binding
        // the same input tensor (ORT copies it only when the session wants it on another
        // device, which makes a CPU write since the last run visible there) takes a NUL-ended
        // name. `RunWithBinding` is what `Session::run_binding` calls; `&mut` on the session
        // keeps other runs off it (ORT's Run is not thread-safe), and the bound output tensor
        // stays alive in `b.output` and in the binding. Calling it directly skips wrapping the
        // outputs in new Rust values on each run (heap allocations); we read our own tensor.
        unsafe {
            ort::Error::result_from_status((api.BindInput)(
                b.binding.ptr_mut(),
                b.input_name.as_ptr(),
                b.input.ptr(),
            ))?;
            ort::Error::result_from_status((api.RunWithBinding)(
                session.session.ptr_mut(),
                std::ptr::null(),
                b.binding.ptr(),
            ))?;
        }
        if session.profiling {
            session.collect_placement()?;
        }
        match &mut b.output {
            BoundOutput::F32(t) => Ok(t.extract_tensor().1),
            BoundOutput::F16 { tensor, widened } => {
                for (w, h) in widened.iter_mut().zip(tensor.extract_tensor().1) {
                    *w = h.to_f32();
                }
                Ok(widened)
            }
        }
    }
}
