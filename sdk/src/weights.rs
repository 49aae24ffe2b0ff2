//! Layer parameters, and loading them from PyTorch `state_dict`s saved as safetensors.

use crate::config::DySampleConfig;
use crate::error::{Error, Result};
use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;
use std::path::{Path, PathBuf};

/// The learned parameters of one layer, stored densely as f32.
#[derive(Clone, Debug, PartialEq)]
pub struct Weights {
    /// `offset.weight` as `[O][Cin]` (the trailing 1x1 is dropped).
    pub offset_weight: Vec<f32>,
    /// `offset.bias` as `[O]`.
    pub offset_bias: Vec<f32>,
    /// `scope.weight` as `[O][Cin]`, present exactly when the config has `dyscope`.
    pub scope_weight: Option<Vec<f32>>,
}

impl Weights {
    /// Wraps raw parameter vectors, checking their lengths and values against `cfg`.
    pub fn new(
        cfg: &DySampleConfig,
        offset_weight: Vec<f32>,
        offset_bias: Vec<f32>,
        scope_weight: Option<Vec<f32>>,
    ) -> Result<Self> {
        cfg.validate()?;
        let (o, cin) = (cfg.conv_out_channels(), cfg.conv_in_channels());
        let check = |name: &str, v: &[f32], want: usize| -> Result<()> {
            if v.len() != want {
                return Err(Error::shape(
                    name,
                    format!("expected {want} values ({cfg}), got {}", v.len()),
                ));
            }
            crate::tensor::check_finite(name, v)
        };
        check("offset.weight", &offset_weight, o * cin)?;
        check("offset.bias", &offset_bias, o)?;
        match (&scope_weight, cfg.dyscope) {
            (Some(s), true) => check("scope.weight", s, o * cin)?,
            (None, false) => {}
            (Some(_), false) => {
                return Err(Error::InvalidConfig(
                    "scope.weight given but dyscope is off".into(),
                ))
            }
            (None, true) => {
                return Err(Error::InvalidConfig(
                    "dyscope is on but no scope.weight was given".into(),
                ))
            }
        }
        Ok(Self {
            offset_weight,
            offset_bias,
            scope_weight,
        })
    }

    /// Random parameters drawn like a trained model's (normal, std `std`), for demos and benchmarks.
    pub fn random(cfg: &DySampleConfig, std: f32, seed: u64) -> Result<Self> {
        use rand::{Rng, SeedableRng};
        cfg.validate()?;
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut normal = |n: usize| -> Vec<f32> {
            (0..n)
                .map(|_| {
                    // Box–Muller keeps us off an extra distribution crate.
                    let u1: f32 = rng.gen_range(f32::EPSILON..1.0);
                    let u2: f32 = rng.gen();
                    std * (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
                })
                .collect()
        };
        let (o, cin) = (cfg.conv_out_channels(), cfg.conv_in_channels());
        let ow = normal(o * cin);
        let ob = normal(o);
        let sw = cfg.dyscope.then(|| normal(o * cin));
        Self::new(cfg, ow, ob, sw)
    }

    /// Loads the parameters of the layer at `prefix` (e.g. `decode_head.up1`) from a safetensors file.
    ///
    /// Every tensor's shape is checked against `cfg`, and the stored `init_pos` must equal the one
    /// implied by `cfg` (a mismatch usually means a wrong `scale` or `groups`).
    pub fn from_safetensors(
        path: impl AsRef<Path>,
        prefix: &str,
        cfg: &DySampleConfig,
    ) -> Result<Self> {
        let path = path.as_ref();
        cfg.validate()?;
        let bytes = crate::io::map_regular(path, "safetensors checkpoint")?;
        Self::from_safetensors_bytes(&bytes, path, prefix, cfg)
    }

    /// Like [`Weights::from_safetensors`] on bytes already in memory; `path` is only used in messages.
    pub fn from_safetensors_bytes(
        bytes: &[u8],
        path: &Path,
        prefix: &str,
        cfg: &DySampleConfig,
    ) -> Result<Self> {
        cfg.validate()?;
        let st = SafeTensors::deserialize(bytes).map_err(|e| Error::CorruptFile {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
        let file = StateDict {
            st: &st,
            path: path.to_path_buf(),
            prefix: normalize_prefix(prefix),
        };
        file.check_prefix()?;

        let (o, cin) = (cfg.conv_out_channels(), cfg.conv_in_channels());
        let conv_why = format!("[O, Cin, 1, 1] with O = {o}, Cin = {cin} for {cfg}");
        let offset_weight = file.tensor("offset.weight", &[o, cin, 1, 1], &conv_why)?;
        let offset_bias = file.tensor("offset.bias", &[o], &format!("O = {o} for {cfg}"))?;
        let scope_weight = if cfg.dyscope {
            Some(file.tensor("scope.weight", &[o, cin, 1, 1], &conv_why)?)
        } else {
            if file.has("scope.weight") {
                return Err(Error::InvalidConfig(format!(
                    "{}: the layer at '{}' has a scope.weight tensor, so it was trained with dyscope=True; pass --dyscope",
                    path.display(),
                    file.prefix.trim_end_matches('.')
                )));
            }
            None
        };

        let n = cfg.offset_channels();
        let init = file.tensor(
            "init_pos",
            &[1, n, 1, 1],
            &format!("[1, 2·g·s², 1, 1] = [1, {n}, 1, 1] for {cfg}"),
        )?;
        let expected = cfg.init_pos();
        for (index, (&found, &want)) in init.iter().zip(&expected).enumerate() {
            if (found - want).abs() > 1e-6 || !found.is_finite() {
                return Err(Error::InitPos {
                    path: path.to_path_buf(),
                    tensor: file.key("init_pos"),
                    scale: cfg.scale,
                    groups: cfg.groups,
                    index,
                    found,
                    expected: want,
                });
            }
        }
        Self::new(cfg, offset_weight, offset_bias, scope_weight).map_err(|e| match e {
            Error::NonFinite { what, count, index } => Error::NonFinite {
                what: format!("{}: tensor '{}'", path.display(), file.key(&what)),
                count,
                index,
            },
            other => other,
        })
    }
}

/// Prefixes of every DySample layer in a safetensors file, found by their key pattern
/// (`<prefix>offset.weight` next to `<prefix>init_pos`).
pub fn list_layers(path: impl AsRef<Path>) -> Result<Vec<String>> {
    let path = path.as_ref();
    let bytes = crate::io::map_regular(path, "safetensors checkpoint")?;
    list_layers_bytes(&bytes, path)
}

/// Like [`list_layers`] on bytes already in memory; `path` is only used in messages.
pub fn list_layers_bytes(bytes: &[u8], path: &Path) -> Result<Vec<String>> {
    let st = SafeTensors::deserialize(bytes).map_err(|e| Error::CorruptFile {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })?;
    Ok(layer_prefixes(&st))
}

fn layer_prefixes(st: &SafeTensors<'_>) -> Vec<String> {
    let names = st.names();
    let mut out: Vec<String> = names
        .iter()
        .filter_map(|k| k.strip_suffix("offset.weight"))
        .filter(|p| p.is_empty() || p.ends_with('.'))
        .filter(|p| names.iter().any(|k| **k == format!("{p}init_pos")))
        .map(|p| p.trim_end_matches('.').to_string())
        .collect();
    out.sort();
    out
}

fn normalize_prefix(prefix: &str) -> String {
    let p = prefix.trim();
    if p.is_empty() || p.ends_with('.') {
        p.to_string()
    } else {
        format!("{p}.")
    }
}

struct StateDict<'a> {
    st: &'a SafeTensors<'a>,
    path: PathBuf,
    prefix: String,
}

impl StateDict<'_> {
    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    fn has(&self, name: &str) -> bool {
        self.st.tensor(&self.key(name)).is_ok()
    }

    fn layers_hint(&self) -> String {
        let layers = layer_prefixes(self.st);
        if layers.is_empty() {
            "the file holds no DySample layer (no '<prefix>offset.weight' next to '<prefix>init_pos')"
                .to_string()
        } else {
            let shown: Vec<String> = layers
                .iter()
                .map(|l| {
                    if l.is_empty() {
                        "'' (top level)".to_string()
                    } else {
                        format!("'{l}'")
                    }
                })
                .collect();
            format!("DySample layers in this file: {}", shown.join(", "))
        }
    }

    fn check_prefix(&self) -> Result<()> {
        let any = self.st.names().iter().any(|k| k.starts_with(&self.prefix));
        if !any || !self.has("offset.weight") && !self.has("init_pos") {
            return Err(Error::UnknownPrefix {
                path: self.path.clone(),
                prefix: self.prefix.trim_end_matches('.').to_string(),
                available: self.layers_hint(),
            });
        }
        Ok(())
    }

    fn tensor(&self, name: &str, expected: &[usize], why: &str) -> Result<Vec<f32>> {
        let key = self.key(name);
        let view = self.st.tensor(&key).map_err(|_| Error::MissingTensor {
            path: self.path.clone(),
            tensor: key.clone(),
            hint: format!("; {}", self.layers_hint()),
        })?;
        let shape = view.shape().to_vec();
        // A bare [O, Cin] linear weight is accepted for convs too.
        let squeezed_ok = expected.len() == 4
            && expected[2] == 1
            && expected[3] == 1
            && shape.len() == 2
            && shape[..] == expected[..2];
        if shape != expected && !squeezed_ok {
            return Err(Error::TensorShape {
                path: self.path.clone(),
                tensor: key,
                found: shape,
                expected: expected.to_vec(),
                why: why.to_string(),
            });
        }
        to_f32(&view).ok_or_else(|| Error::TensorDtype {
            path: self.path.clone(),
            tensor: key,
            dtype: format!("{:?}", view.dtype()),
        })
    }
}

fn to_f32(view: &TensorView<'_>) -> Option<Vec<f32>> {
    let data = view.data();
    let out = match view.dtype() {
        Dtype::F32 => data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        Dtype::F16 => data
            .chunks_exact(2)
            .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        Dtype::BF16 => data
            .chunks_exact(2)
            .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        _ => return None,
    };
    Some(out)
}
