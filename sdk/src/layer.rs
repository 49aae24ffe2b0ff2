//! The user-facing layer: configuration + weights + an execution engine.

use crate::config::DySampleConfig;
use crate::error::{Error, Result};
use crate::reference;
use crate::tensor::{Layout, Shape};
use crate::weights::Weights;
use ndarray::{Array4, ArrayView4, ArrayViewMut4};
use std::path::Path;

/// A ready-to-run DySample layer.
#[derive(Debug, Clone)]
pub struct DySample {
    cfg: DySampleConfig,
    weights: Weights,
}

impl DySample {
    /// Builds a layer from a config and matching weights.
    pub fn new(cfg: DySampleConfig, weights: Weights) -> Result<Self> {
        cfg.validate()?;
        // Re-check lengths: `Weights` fields are public and may have been edited.
        let weights = Weights::new(
            &cfg,
            weights.offset_weight,
            weights.offset_bias,
            weights.scope_weight,
        )?;
        Ok(Self { cfg, weights })
    }

    /// Loads the layer at `prefix` from a PyTorch state_dict saved as safetensors.
    pub fn load(path: impl AsRef<Path>, prefix: &str, cfg: DySampleConfig) -> Result<Self> {
        let weights = Weights::from_safetensors(path, prefix, &cfg)?;
        Ok(Self { cfg, weights })
    }

    /// A layer with random weights (std 0.3, like a trained model), for demos and benchmarks.
    pub fn random(cfg: DySampleConfig, seed: u64) -> Result<Self> {
        let weights = Weights::random(&cfg, 0.3, seed)?;
        Ok(Self { cfg, weights })
    }

    pub fn config(&self) -> &DySampleConfig {
        &self.cfg
    }

    pub fn weights(&self) -> &Weights {
        &self.weights
    }

    /// Checks an input's dimensions (given in `layout` order) and returns its logical shape.
    pub fn input_shape(&self, dims: [usize; 4], layout: Layout) -> Result<Shape> {
        let shape = Shape::from_dims(dims, layout);
        if shape.channels != self.cfg.channels {
            return Err(Error::shape(
                "input",
                format!(
                    "dims {dims:?} ({layout}) have {} channels, but the layer has {}",
                    shape.channels, self.cfg.channels
                ),
            ));
        }
        if shape.batch == 0 || shape.height == 0 || shape.width == 0 {
            return Err(Error::shape(
                "input",
                format!("dims {dims:?} ({layout}) must all be ≥ 1"),
            ));
        }
        let out_len = shape
            .upsampled(self.cfg.scale)
            .checked_len()
            .filter(|&n| n <= isize::MAX as usize / 4);
        if out_len.is_none() {
            return Err(Error::shape("input", format!("dims {dims:?} are too large")));
        }
        Ok(shape)
    }

    /// The output dimensions (in `layout` order) for input dimensions `dims`.
    pub fn output_dims(&self, dims: [usize; 4], layout: Layout) -> Result<[usize; 4]> {
        Ok(self
            .input_shape(dims, layout)?
            .upsampled(self.cfg.scale)
            .dims(layout))
    }

    fn check_lengths(&self, shape: Shape, in_len: usize, out_len: usize) -> Result<()> {
        if in_len != shape.len() {
            return Err(Error::shape(
                "input",
                format!("{shape} needs {} values, the slice has {in_len}", shape.len()),
            ));
        }
        let want = shape.upsampled(self.cfg.scale).len();
        if out_len != want {
            return Err(Error::shape(
                "output",
                format!(
                    "{} needs {want} values, the slice has {out_len}",
                    shape.upsampled(self.cfg.scale)
                ),
            ));
        }
        Ok(())
    }

    /// Runs the layer on a flat f32 buffer with dimensions `dims` in `layout` order,
    /// writing the upsampled result (same layout) into `out`.
    pub fn forward_slice(
        &self,
        input: &[f32],
        dims: [usize; 4],
        layout: Layout,
        out: &mut [f32],
    ) -> Result<()> {
        let shape = self.input_shape(dims, layout)?;
        self.check_lengths(shape, input.len(), out.len())?;
        let _span = tracing::trace_span!("dysample.forward_f32", %shape, %layout).entered();
        reference::forward(&self.cfg, &self.weights, input, shape, layout, out);
        Ok(())
    }

    /// Runs the layer on a flat f16 buffer (same contract as [`DySample::forward_slice`]).
    /// Arithmetic is carried out in f32; only storage is half precision.
    pub fn forward_slice_f16(
        &self,
        input: &[half::f16],
        dims: [usize; 4],
        layout: Layout,
        out: &mut [half::f16],
    ) -> Result<()> {
        let shape = self.input_shape(dims, layout)?;
        self.check_lengths(shape, input.len(), out.len())?;
        let _span = tracing::trace_span!("dysample.forward_f16", %shape, %layout).entered();
        let x: Vec<f32> = input.iter().map(|v| v.to_f32()).collect();
        let mut y = vec![0.0f32; out.len()];
        reference::forward(&self.cfg, &self.weights, &x, shape, layout, &mut y);
        for (d, s) in out.iter_mut().zip(y) {
            *d = half::f16::from_f32(s);
        }
        Ok(())
    }

    /// Runs the layer on an ndarray view (any strides) and returns a new array in the same layout.
    pub fn forward(&self, input: ArrayView4<'_, f32>, layout: Layout) -> Result<Array4<f32>> {
        let dims = dims_of(input.shape());
        let odims = self.output_dims(dims, layout)?;
        let mut out = Array4::<f32>::zeros(odims);
        self.forward_into(input, layout, out.view_mut())?;
        Ok(out)
    }

    /// Runs the layer into a caller-provided array (which must have the output's shape).
    pub fn forward_into(
        &self,
        input: ArrayView4<'_, f32>,
        layout: Layout,
        mut out: ArrayViewMut4<'_, f32>,
    ) -> Result<()> {
        let dims = dims_of(input.shape());
        let odims = self.output_dims(dims, layout)?;
        if out.shape() != odims {
            return Err(Error::shape(
                "output",
                format!("expected dims {odims:?}, got {:?}", out.shape()),
            ));
        }
        let input = input.as_standard_layout();
        let x = input.as_slice().expect("standard layout is contiguous");
        match out.as_slice_mut() {
            Some(o) => self.forward_slice(x, dims, layout, o),
            None => {
                let mut tmp = vec![0.0f32; out.len()];
                self.forward_slice(x, dims, layout, &mut tmp)?;
                for (d, s) in out.iter_mut().zip(tmp) {
                    *d = s;
                }
                Ok(())
            }
        }
    }
}

fn dims_of(shape: &[usize]) -> [usize; 4] {
    [shape[0], shape[1], shape[2], shape[3]]
}
