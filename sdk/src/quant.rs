//! The int8 scheme: parameters, calibration, and the integer-only layer definition.
//!
//! # Scheme (version 2)
//! * **Activations**: per-tensor affine int8, `x ≈ s_x · (q − z_x)`, `z_x ∈ [−128, 127]`
//!   (`z_x = 0` gives the symmetric form TensorRT needs). The output keeps `s_x` and `z_x`:
//!   bilinear sampling is a convex combination, so no requantization is needed.
//! * **Conv weights**: per-output-channel symmetric int8, `w ≈ s_w[o] · w_q`, `w_q ∈ [−127, 127]`,
//!   with `s_w[o] = max|w[o, :]| / 127` unless given. The offset bias is stored as i32 in the
//!   accumulator's scale `s_x · s_w[o]`. Accumulation is exact in i32/i64.
//! * **Offsets** are Q11 fixed point (1/2048 of a low-res pixel). The accumulator is rescaled by
//!   an integer multiplier and shift (`(v·M + 2^(sh−1)) >> sh`), and `init_pos` is added in Q11.
//! * **dyscope**: the scope accumulator is rescaled to a LUT index in steps of 1/256, clamped to
//!   [−8, 8), and looked up in a 4096-entry Q15 sigmoid table built from a deterministic `exp`
//!   (only IEEE +,−,×,÷, so it is identical on every platform).
//! * **Sampling**: positions are clamped in Q11 (`fx`, `fy` are the fractions). The four
//!   bilinear weights are Q14: the row weights `8·(2048 − fy)` and `8·fy` are exact; in each row
//!   the far tap gets its Q22 product rounded to Q14, `(fx·gy + 128) >> 8`, and the near tap the
//!   rest of the row ([`crate::kernels::weights_q14`]). So every weight is within half a step of
//!   the exact one, none is negative, and they sum to exactly 2^14. Each output is
//!   `(Σ w·q + 2^13) >> 14`: a single rounding of an exact sum, in [−128, 127].
//!   (Version 1 used Q22 products; Q14 weights fit 16 bits and split into bytes `lo + 256·hi`,
//!   so `vpmaddwd`, `vpdpbusd` and `smlal` compute the sum without 32-bit multiplies.)
//!
//! Every step after the parameters are fixed is integer-only, so every backend on every
//! architecture returns identical bytes.

use crate::config::{DySampleConfig, Style};
use crate::error::{Error, Result};
use crate::weights::Weights;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Current version of the [`QuantParams`] JSON format.
pub const QUANT_FORMAT_VERSION: u32 = 1;

/// Per-tensor affine quantization of an activation tensor.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Affine {
    pub scale: f32,
    pub zero_point: i32,
}

impl Affine {
    /// Checks that the scale is finite and positive and the zero point fits int8.
    pub fn validate(&self, what: &str) -> Result<()> {
        if !self.scale.is_finite() || self.scale <= 0.0 {
            return Err(Error::Quant(format!(
                "{what}.scale must be finite and > 0, got {}",
                self.scale
            )));
        }
        if !(-128..=127).contains(&self.zero_point) {
            return Err(Error::Quant(format!(
                "{what}.zero_point must be in [-128, 127], got {}",
                self.zero_point
            )));
        }
        Ok(())
    }

    /// `clamp(round(x / s) + z, −128, 127)` (round half away from zero); NaN maps to the zero
    /// point.
    #[inline]
    pub fn quantize(&self, x: f32) -> i8 {
        round_to_i8(x / self.scale, self.zero_point)
    }

    #[inline]
    pub fn dequantize(&self, q: i8) -> f32 {
        (q as i32 - self.zero_point) as f32 * self.scale
    }

    /// How many of `x` fall outside the representable range `[dequantize(−128), dequantize(127)]`
    /// (by more than half a step) and so saturate when quantized.
    pub fn saturated(&self, x: &[f32]) -> usize {
        let lo = self.dequantize(-128) - 0.5 * self.scale;
        let hi = self.dequantize(127) + 0.5 * self.scale;
        x.iter().filter(|&&v| v < lo || v > hi).count()
    }

    pub fn quantize_slice(&self, x: &[f32], out: &mut [i8]) {
        for (o, &v) in out.iter_mut().zip(x) {
            *o = self.quantize(v);
        }
    }

    pub fn dequantize_slice(&self, q: &[i8], out: &mut [f32]) {
        for (o, &v) in out.iter_mut().zip(q) {
            *o = self.dequantize(v);
        }
    }
}

/// `clamp(round(v) + z, −128, 127)`, round half away from zero, NaN as 0: `f32::round` is a
/// libm call per value (quantizing an input cost more than the int8 layer), so round by hand:
/// truncate, then step by the exact remainder. This auto-vectorizes and is bit-identical (see
/// the test against the `round()` formula).
#[inline(always)]
fn round_to_i8(v: f32, z: i32) -> i8 {
    // |v| ≥ 256 saturates whatever z is (|z| ≤ 128); ±300 keeps the i32 and the remainder
    // exact. NaN passes the clamp, casts to 0 and fails both comparisons.
    let v = v.clamp(-300.0, 300.0);
    let t = v as i32;
    let d = v - t as f32;
    let q = t + i32::from(d >= 0.5) - i32::from(d <= -0.5);
    (q + z).clamp(-128, 127) as i8
}

/// How activation ranges are turned into scales.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Symmetry {
    /// Full int8 range over [min, max] with a zero point.
    #[default]
    Asymmetric,
    /// Zero point 0 (what TensorRT requires).
    Symmetric,
}

/// Serializable, versioned int8 parameters of one layer (what a calibration tool writes).
///
/// Unknown keys are an error (`deny_unknown_fields`): a misspelt key would otherwise be ignored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuantParams {
    /// Always [`QUANT_FORMAT_VERSION`] when written by this crate.
    pub version: u32,
    /// The layer these parameters were made for; checked on use.
    pub layer: DySampleConfig,
    /// Input (and output) activation quantization.
    pub input: Affine,
    /// Per-output-channel scales of `offset.weight`; derived from the weights when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset_weight_scales: Option<Vec<f32>>,
    /// Per-output-channel scales of `scope.weight`; derived from the weights when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope_weight_scales: Option<Vec<f32>>,
    /// Free-form provenance (calibration method, sample count, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl QuantParams {
    /// Parameters with the given input quantization and weight scales derived from the weights.
    pub fn new(layer: DySampleConfig, input: Affine) -> Self {
        Self {
            version: QUANT_FORMAT_VERSION,
            layer,
            input,
            offset_weight_scales: None,
            scope_weight_scales: None,
            note: None,
        }
    }

    /// Min/max calibration of the input quantization from sample tensors.
    pub fn calibrate_minmax<'a>(
        layer: DySampleConfig,
        samples: impl IntoIterator<Item = &'a [f32]>,
        symmetry: Symmetry,
    ) -> Result<Self> {
        let (mut lo, mut hi, mut n) = (0.0f32, 0.0f32, 0usize);
        for s in samples {
            crate::tensor::check_finite(&format!("calibration sample {n}"), s)?;
            for &v in s {
                lo = lo.min(v);
                hi = hi.max(v);
            }
            n += 1;
        }
        if n == 0 {
            return Err(Error::Quant("calibration needs at least one sample".into()));
        }
        let input = affine_from_range(lo, hi, symmetry);
        let mut p = Self::new(layer, input);
        p.note = Some(format!(
            "minmax {symmetry:?} over {n} sample(s): range [{lo}, {hi}]"
        ));
        Ok(p)
    }

    /// Reads parameters from JSON, naming the file in errors.
    pub fn from_json_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes =
            crate::io::read_limited(path, "int8 parameter file", crate::io::MAX_JSON_BYTES)?;
        let text = std::str::from_utf8(&bytes)
            .map_err(|e| Error::Quant(format!("{}: not UTF-8 text ({e})", path.display())))?;
        Self::from_json(text).map_err(|e| Error::Quant(format!("{}: {e}", path.display())))
    }

    pub fn from_json(text: &str) -> Result<Self> {
        let p: Self =
            serde_json::from_str(text).map_err(|e| Error::Quant(format!("bad JSON: {e}")))?;
        if p.version != QUANT_FORMAT_VERSION {
            return Err(Error::Quant(format!(
                "format version {} is not supported (this build reads version {QUANT_FORMAT_VERSION})",
                p.version
            )));
        }
        // JSON has no inf: a number beyond the f32 range parses to inf, which to_json could not
        // write back and every later check would meet as garbage.
        let finite =
            |v: &Option<Vec<f32>>| v.as_ref().is_none_or(|s| s.iter().all(|x| x.is_finite()));
        if !p.input.scale.is_finite()
            || !finite(&p.offset_weight_scales)
            || !finite(&p.scope_weight_scales)
        {
            return Err(Error::Quant(
                "a scale is beyond the float32 range (|value| > 3.4e38)".into(),
            ));
        }
        Ok(p)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("QuantParams always serializes")
    }

    /// Checks the parameters against a layer.
    pub fn validate(&self, cfg: &DySampleConfig) -> Result<()> {
        if self.version != QUANT_FORMAT_VERSION {
            return Err(Error::Quant(format!(
                "format version {} is not supported",
                self.version
            )));
        }
        if self.layer != *cfg {
            return Err(Error::Quant(format!(
                "parameters were made for layer ({}) but are applied to ({cfg})",
                self.layer
            )));
        }
        self.input.validate("input")?;
        let o = cfg.conv_out_channels();
        let check = |name: &str, v: &Option<Vec<f32>>| -> Result<()> {
            if let Some(v) = v {
                if v.len() != o {
                    return Err(Error::Quant(format!(
                        "{name} has {} entries, the layer's conv has {o} output channels",
                        v.len()
                    )));
                }
                if let Some((i, s)) = v
                    .iter()
                    .enumerate()
                    .find(|(_, s)| !s.is_finite() || **s <= 0.0)
                {
                    return Err(Error::Quant(format!(
                        "{name}[{i}] must be finite and > 0, got {s}"
                    )));
                }
            }
            Ok(())
        };
        check("offset_weight_scales", &self.offset_weight_scales)?;
        check("scope_weight_scales", &self.scope_weight_scales)?;
        if !cfg.dyscope && self.scope_weight_scales.is_some() {
            return Err(Error::Quant(
                "scope_weight_scales given but the layer has no dyscope".into(),
            ));
        }
        Ok(())
    }
}

/// Affine parameters covering [lo, hi] (widened to include 0).
pub fn affine_from_range(lo: f32, hi: f32, symmetry: Symmetry) -> Affine {
    let (lo, hi) = (lo.min(0.0), hi.max(0.0));
    match symmetry {
        Symmetry::Symmetric => {
            let m = lo.abs().max(hi.abs());
            Affine {
                scale: if m > 0.0 { m / 127.0 } else { 1.0 },
                zero_point: 0,
            }
        }
        Symmetry::Asymmetric => {
            let span = hi - lo;
            if span <= 0.0 {
                return Affine {
                    scale: 1.0,
                    zero_point: 0,
                };
            }
            let scale = span / 255.0;
            let zp = (-128.0 - lo / scale).round().clamp(-128.0, 127.0) as i32;
            Affine {
                scale,
                zero_point: zp,
            }
        }
    }
}

/// Rescales a conv's i32 accumulators by per-channel real factors with integers only:
/// `r = (v · m[o] + 2^(shift−1)) >> shift`. One shift for all channels keeps the hot loop
/// vectorizable; the largest factor gets 31 significant bits, smaller ones proportionally fewer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requant {
    pub m: Vec<i64>,
    pub shift: u32,
}

impl Requant {
    /// Derives the multipliers for the `n` factors `real(o)`, reusing `m`'s storage (so a
    /// re-derivation allocates nothing); on error `self` is unchanged.
    fn set(&mut self, n: usize, real: impl Fn(usize) -> f64, what: &str) -> Result<()> {
        for o in 0..n {
            let r = real(o);
            if !(r.is_finite() && r > 0.0) {
                return Err(Error::Quant(format!(
                    "{what} channel {o}: rescale factor {r} is not finite and > 0"
                )));
            }
        }
        let max = (0..n).fold(0.0f64, |m, o| m.max(real(o)));
        // Normalise the largest factor into [2^30, 2^31) by exact doublings (deterministic everywhere).
        let (mut m, mut shift) = (max, 0i32);
        while m < (1u64 << 30) as f64 {
            m *= 2.0;
            shift += 1;
        }
        while m >= (1u64 << 31) as f64 {
            m /= 2.0;
            shift -= 1;
        }
        if !(1..=62).contains(&shift) {
            return Err(Error::Quant(format!(
                "{what}: rescale factor {max:e} is out of the supported range (check the scales)"
            )));
        }
        let scale = (1u64 << shift) as f64;
        self.m.clear();
        self.m
            .extend((0..n).map(|o| ((real(o) * scale).round() as i64).min((1i64 << 31) - 1)));
        self.shift = shift as u32;
        Ok(())
    }

    /// `round(v · m[o] / 2^shift)`, rounding half up.
    #[inline(always)]
    pub fn apply(&self, o: usize, v: i64) -> i64 {
        (v * self.m[o] + (1i64 << (self.shift - 1))) >> self.shift
    }
}

/// Offsets are clamped to ±2^24 Q11 (±8192 px) so positions never overflow i32.
const OFFSET_LIMIT: i64 = 1 << 24;
/// Biases beyond ±2^40 accumulator units saturate the offset anyway.
const BIAS_LIMIT: f64 = (1u64 << 40) as f64;
/// Sigmoid LUT: index steps of 1/256 over [−8, 8).
pub const SIGMOID_LUT_LEN: usize = 4096;
const SIGMOID_STEPS: f64 = 256.0;

/// `exp` from IEEE basic operations only, so the LUT is bit-identical everywhere.
fn det_exp(t: f64) -> f64 {
    let u = t / 1024.0;
    let mut e = 1.0
        + u * (1.0
            + u / 2.0 * (1.0 + u / 3.0 * (1.0 + u / 4.0 * (1.0 + u / 5.0 * (1.0 + u / 6.0)))));
    for _ in 0..10 {
        e *= e;
    }
    e
}

fn sigmoid_lut() -> Vec<i32> {
    (0..SIGMOID_LUT_LEN)
        .map(|i| {
            let t = (i as f64 - (SIGMOID_LUT_LEN / 2) as f64) / SIGMOID_STEPS;
            (32768.0 / (1.0 + det_exp(-t))).round() as i32
        })
        .collect()
}

fn round_i32(v: f64) -> i32 {
    v.round().clamp(i32::MIN as f64, i32::MAX as f64) as i32
}

/// The integer form of one layer: everything the int8 kernels and epilogue need.
#[derive(Clone, Debug)]
pub struct QuantizedWeights {
    pub cfg: DySampleConfig,
    pub params: QuantParams,
    /// `offset.weight` in int8, `[O][Cin]`.
    pub offset_q: Vec<i8>,
    /// `scope.weight` in int8, `[O][Cin]` (dyscope only).
    pub scope_q: Option<Vec<i8>>,
    /// `Σ_k w_q[o][k]`, to remove the input zero point from accumulators.
    pub offset_sum: Vec<i32>,
    pub scope_sum: Vec<i32>,
    /// Bias in the accumulator scale `s_x · s_w[o]`.
    pub bias_q: Vec<i64>,
    /// Accumulator → Q11 offset (factor 0.25, or 0.5 with dyscope, folded in).
    pub offset_mult: Requant,
    /// Scope accumulator → sigmoid LUT index.
    pub scope_mult: Requant,
    /// `init_pos` in Q11.
    pub init_q11: Vec<i32>,
    pub sigmoid_lut: Vec<i32>,
    /// `bias_q[o] − z_x·Σw_q[o]`: folds the zero point into the bias once.
    eff_bias: Vec<i64>,
    /// `−z_x·Σw_scope[o]`.
    eff_scope: Vec<i64>,
    /// Per-channel weight scales and the float bias: what the input-dependent terms are
    /// re-derived from ([`QuantizedWeights::set_input`]).
    offset_scales: Vec<f32>,
    scope_scales: Vec<f32>,
    offset_bias: Vec<f32>,
}

fn quantize_weights(
    w: &[f32],
    o_n: usize,
    cin: usize,
    scales: Option<&[f32]>,
) -> (Vec<i8>, Vec<f32>, Vec<i32>) {
    let mut q = vec![0i8; o_n * cin];
    let mut sc = Vec::with_capacity(o_n);
    let mut sums = Vec::with_capacity(o_n);
    let absmax = |o: usize| {
        w[o * cin..(o + 1) * cin]
            .iter()
            .fold(0.0f32, |m, v| m.max(v.abs()))
    };
    // An all-zero row gets the largest scale of the others, so its rescale factor doesn't
    // dominate the conv's shared shift (see `Requant`).
    let fallback = (0..o_n).map(absmax).fold(0.0f32, f32::max) / 127.0;
    let fallback = if fallback > 0.0 {
        fallback
    } else {
        1.0 / 127.0
    };
    for o in 0..o_n {
        let row = &w[o * cin..(o + 1) * cin];
        let s = match scales {
            Some(s) => s[o],
            None => {
                let m = absmax(o);
                if m > 0.0 {
                    m / 127.0
                } else {
                    fallback
                }
            }
        };
        let mut sum = 0i32;
        for (k, &v) in row.iter().enumerate() {
            let qv = (v / s).round().clamp(-127.0, 127.0) as i8;
            q[o * cin + k] = qv;
            sum += qv as i32;
        }
        sc.push(s);
        sums.push(sum);
    }
    (q, sc, sums)
}

impl QuantizedWeights {
    /// Quantizes a layer's weights under `params` (which must fit the layer).
    pub fn new(cfg: &DySampleConfig, w: &Weights, params: &QuantParams) -> Result<Self> {
        params.validate(cfg)?;
        let (o_n, cin) = (cfg.conv_out_channels(), cfg.conv_in_channels());
        let (offset_q, offset_scales, offset_sum) = quantize_weights(
            &w.offset_weight,
            o_n,
            cin,
            params.offset_weight_scales.as_deref(),
        );
        let (scope_q, scope_scales, scope_sum) = match &w.scope_weight {
            Some(sw) => {
                let (q, sc, sums) =
                    quantize_weights(sw, o_n, cin, params.scope_weight_scales.as_deref());
                (Some(q), sc, sums)
            }
            None => (None, Vec::new(), Vec::new()),
        };
        let init_q11 = cfg
            .init_pos()
            .iter()
            .map(|&p| round_i32(p as f64 * 2048.0))
            .collect();
        let mut qw = Self {
            cfg: *cfg,
            params: params.clone(),
            offset_q,
            scope_q,
            offset_sum,
            scope_sum,
            bias_q: Vec::with_capacity(o_n),
            offset_mult: Requant {
                m: Vec::new(),
                shift: 1,
            },
            scope_mult: Requant {
                m: Vec::new(),
                shift: 1,
            },
            init_q11,
            sigmoid_lut: sigmoid_lut(),
            eff_bias: Vec::with_capacity(o_n),
            eff_scope: Vec::new(),
            offset_scales,
            scope_scales,
            offset_bias: w.offset_bias.clone(),
        };
        qw.derive_input_terms()?;
        Ok(qw)
    }

    /// Re-quantizes for a new input (and output) quantization in place: the int8 weights stay,
    /// the terms that depend on `input` (bias, rescale multipliers, zero-point folds) are
    /// re-derived into their existing storage, so this allocates nothing. The result equals
    /// [`QuantizedWeights::new`] with `input` (and the same weight scales). The free-form
    /// `params.note` is cleared (it described the old input). On error `self` is unchanged.
    pub fn set_input(&mut self, input: Affine) -> Result<()> {
        input.validate("input")?;
        let old = self.params.input;
        self.params.input = input;
        if let Err(e) = self.derive_input_terms() {
            self.params.input = old;
            // The old input derived these terms before, so it does again.
            self.derive_input_terms()?;
            return Err(e);
        }
        self.params.note = None;
        Ok(())
    }

    /// `bias_q`, `offset_mult`, `scope_mult`, `eff_bias` and `eff_scope` for `params.input`.
    fn derive_input_terms(&mut self) -> Result<()> {
        let (o_n, cin) = (self.cfg.conv_out_channels(), self.cfg.conv_in_channels());
        let sx = self.params.input.scale as f64;
        let factor = self.cfg.offset_factor() as f64;
        let ow_scales = &self.offset_scales;
        // Multipliers first: they are the fallible step, and the rest is derived only on success.
        self.offset_mult.set(
            o_n,
            |o| factor * (sx * ow_scales[o] as f64) * 2048.0,
            "offset conv",
        )?;
        if self.scope_q.is_some() {
            let sw_scales = &self.scope_scales;
            self.scope_mult.set(
                o_n,
                |o| sx * sw_scales[o] as f64 * SIGMOID_STEPS,
                "scope conv",
            )?;
        } else {
            self.scope_mult.m.clear();
            self.scope_mult.shift = 1;
        }
        self.bias_q.clear();
        self.bias_q.extend((0..o_n).map(|o| {
            (self.offset_bias[o] as f64 / (sx * ow_scales[o] as f64))
                .round()
                .clamp(-BIAS_LIMIT, BIAS_LIMIT) as i64
        }));
        let zx = self.params.input.zero_point as i64;
        self.eff_bias.clear();
        self.eff_bias
            .extend((0..o_n).map(|o| self.bias_q[o] - zx * self.offset_sum[o] as i64));
        self.eff_scope.clear();
        self.eff_scope
            .extend(self.scope_sum.iter().map(|&s| -zx * s as i64));
        // The offset step computes (dot + bias)·m in i64; refuse scales that could overflow it
        // instead of returning wrapped offsets. |dot| ≤ cin·128·127.
        let dmax = cin as i128 * 128 * 127;
        let fits = |v: i64, m: i64| (v.unsigned_abs() as i128 + dmax) * (m as i128) < 1i128 << 62;
        for o in 0..o_n {
            if !fits(self.eff_bias[o], self.offset_mult.m[o]) {
                return Err(Error::Quant(format!(
                    "offset conv channel {o}: bias {} at accumulator scale {:e} (input.scale × \
                     offset_weight_scales[{o}]) is too large for the 64-bit requantization; \
                     the scales are implausibly small",
                    self.offset_bias[o],
                    sx * ow_scales[o] as f64
                )));
            }
            if let Some(m) = self.scope_mult.m.get(o) {
                if !fits(self.eff_scope[o], *m) {
                    return Err(Error::Quant(format!(
                        "scope conv channel {o}: the accumulator range is too large for the \
                         64-bit requantization; the scales are implausibly small"
                    )));
                }
            }
        }
        Ok(())
    }

    /// Input zero point.
    pub fn zx(&self) -> i64 {
        self.params.input.zero_point as i64
    }

    /// Q11 offset of conv output channel `o` at sub-position channel `ch` of the offset tensor,
    /// from the raw dot products `Σ w_q·x_q` of the offset (and scope) convs.
    #[inline]
    pub fn offset_q11(&self, o: usize, ch: usize, dot: i32, scope_dot: i32) -> i32 {
        let acc = dot as i64 - self.zx() * self.offset_sum[o] as i64 + self.bias_q[o];
        let r = self
            .offset_mult
            .apply(o, acc)
            .clamp(-OFFSET_LIMIT, OFFSET_LIMIT);
        let r = if self.scope_q.is_some() {
            let sacc = scope_dot as i64 - self.zx() * self.scope_sum[o] as i64;
            let half = (SIGMOID_LUT_LEN / 2) as i64;
            let idx = self.scope_mult.apply(o, sacc).clamp(-half, half - 1) + half;
            let sig = self.sigmoid_lut[idx as usize] as i64;
            (r * sig + (1 << 14)) >> 15
        } else {
            r
        };
        r as i32 + self.init_q11[ch]
    }

    /// [`QuantizedWeights::offset_q11`] for a run of `npix` conv pixels at once (the engine's hot loop).
    ///
    /// `dot`/`scope_dot` hold `npix × O` dot products; conv pixel `p` is sub-position `p % subs` of
    /// low-res pixel `p / subs`, whose `oc` offsets start at `off[(p / subs)·oc]`.
    pub fn offsets_q11(
        &self,
        dot: &[i32],
        scope_dot: Option<&[i32]>,
        npix: usize,
        subs: usize,
        off: &mut [i32],
    ) {
        #[cfg(target_arch = "x86_64")]
        {
            let cpu = crate::cpu::CpuFeatures::get();
            if cpu.avx512f && cpu.avx512bw && cpu.avx512vl && cpu.avx512dq {
                // SAFETY: these AVX-512 features were detected at run time.
                return unsafe { self.offsets_q11_avx512(dot, scope_dot, npix, subs, off) };
            }
            if cpu.avx2 {
                // SAFETY: AVX2 was detected at run time.
                return unsafe { self.offsets_q11_avx2(dot, scope_dot, npix, subs, off) };
            }
        }
        self.offsets_q11_body(dot, scope_dot, npix, subs, off)
    }

    /// The same integer code with AVX-512 (native 64-bit multiplies: `vpmullq`).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2")]
    unsafe fn offsets_q11_avx512(
        &self,
        dot: &[i32],
        scope_dot: Option<&[i32]>,
        npix: usize,
        subs: usize,
        off: &mut [i32],
    ) {
        self.offsets_q11_body(dot, scope_dot, npix, subs, off)
    }

    /// The same integer code compiled with AVX2 enabled, so LLVM vectorizes the i64 arithmetic;
    /// integer results are identical by construction.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn offsets_q11_avx2(
        &self,
        dot: &[i32],
        scope_dot: Option<&[i32]>,
        npix: usize,
        subs: usize,
        off: &mut [i32],
    ) {
        self.offsets_q11_body(dot, scope_dot, npix, subs, off)
    }

    #[inline(always)]
    fn offsets_q11_body(
        &self,
        dot: &[i32],
        scope_dot: Option<&[i32]>,
        npix: usize,
        subs: usize,
        off: &mut [i32],
    ) {
        let o_n = self.cfg.conv_out_channels();
        let oc = self.cfg.offset_channels();
        let half = (SIGMOID_LUT_LEN / 2) as i64;
        let (m, sh) = (&self.offset_mult.m[..o_n], self.offset_mult.shift);
        let eb = &self.eff_bias[..o_n];
        let rnd = 1i64 << (sh - 1);
        // A fixed-size table and a clamped index let LLVM drop the bounds check and gather.
        let lut: &[i32; SIGMOID_LUT_LEN] =
            self.sigmoid_lut[..].try_into().expect("sigmoid LUT length");
        let ssh = self.scope_mult.shift;
        let srnd = 1i64 << ssh.saturating_sub(1);
        // (scope dots, scope zero-point terms, scope multipliers) when the layer has dyscope.
        let scope = scope_dot.map(|sd| (sd, &self.eff_scope[..o_n], &self.scope_mult.m[..o_n]));
        for p in 0..npix {
            let (px, ij) = (p / subs, p % subs);
            let d = &dot[p * o_n..(p + 1) * o_n];
            let row = &mut off[px * oc..(px + 1) * oc];
            match scope {
                Some((sd, es, sm)) if subs == 1 => {
                    // lp with scope: the same operations as `offset_q11`, laid out to vectorize.
                    let sd = &sd[p * o_n..(p + 1) * o_n];
                    let init = &self.init_q11[..o_n];
                    for o in 0..o_n {
                        let r = (((d[o] as i64 + eb[o]) * m[o] + rnd) >> sh)
                            .clamp(-OFFSET_LIMIT, OFFSET_LIMIT);
                        let z = ((sd[o] as i64 + es[o]) * sm[o] + srnd) >> ssh;
                        let sig = lut[(z.clamp(-half, half - 1) + half) as usize] as i64;
                        row[o] = ((r * sig + (1 << 14)) >> 15) as i32 + init[o];
                    }
                }
                None if subs == 1 => {
                    // lp without scope: contiguous, branch-free, vectorizable.
                    for o in 0..o_n {
                        let r = ((d[o] as i64 + eb[o]) * m[o] + rnd) >> sh;
                        row[o] = r.clamp(-OFFSET_LIMIT, OFFSET_LIMIT) as i32 + self.init_q11[o];
                    }
                }
                _ => {
                    for o in 0..o_n {
                        let r = (((d[o] as i64 + eb[o]) * m[o] + rnd) >> sh)
                            .clamp(-OFFSET_LIMIT, OFFSET_LIMIT);
                        let r = match scope_dot {
                            Some(sd) => {
                                let z = self
                                    .scope_mult
                                    .apply(o, sd[p * o_n + o] as i64 + self.eff_scope[o]);
                                let sig = self.sigmoid_lut
                                    [(z.clamp(-half, half - 1) + half) as usize]
                                    as i64;
                                (r * sig + (1 << 14)) >> 15
                            }
                            None => r,
                        };
                        let ch = if subs == 1 { o } else { o * subs + ij };
                        row[ch] = r as i32 + self.init_q11[ch];
                    }
                }
            }
        }
    }

    /// Maps a conv output channel and sub-position to the offset-tensor channel.
    #[inline]
    pub fn offset_channel(&self, o: usize, ij: usize) -> usize {
        match self.cfg.style {
            Style::Lp => o,
            Style::Pl => o * self.cfg.s2() + ij,
        }
    }
}

/// Clamped Q11 sample coordinate along one axis: `(index of the near tap, Q11 weight of the far tap)`.
#[inline]
pub fn sample_coord_q11(pos: usize, off_q11: i32, len: usize) -> (usize, u16) {
    let p = (pos as i64 * 2048 + off_q11 as i64).clamp(0, (len as i64 - 1) * 2048);
    ((p >> 11) as usize, (p & 2047) as u16)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::StdRng, Rng, SeedableRng};

    /// The formula `round_to_i8` replaces, kept here as its oracle.
    fn by_round(v: f32, z: i32) -> i8 {
        let q = v.round();
        let q = if q.is_nan() { 0.0 } else { q };
        (q + z as f32).clamp(-128.0, 127.0) as i8
    }

    #[test]
    fn hand_rounding_equals_round() {
        let mut vs: Vec<f32> = (-1400..=1400).map(|k| k as f32 / 4.0).collect();
        for k in -300..300 {
            // The floats on either side of every half.
            let h = k as f32 + 0.5;
            vs.extend([
                h,
                f32::from_bits(h.to_bits() + 1),
                f32::from_bits(h.to_bits() - 1),
            ]);
        }
        vs.extend([
            0.0,
            -0.0,
            0.49999997,
            -0.49999997,
            255.5,
            256.5,
            -256.5,
            299.9,
            300.1,
            1e9,
            -1e9,
            f32::MAX,
            f32::MIN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            f32::MIN_POSITIVE,
        ]);
        let mut rng = StdRng::seed_from_u64(1);
        vs.extend((0..100_000).map(|_| rng.gen_range(-400.0f32..400.0)));
        for z in [-128, -77, -1, 0, 1, 64, 127] {
            for &v in &vs {
                assert_eq!(round_to_i8(v, z), by_round(v, z), "v {v:e} z {z}");
            }
        }
    }
}
