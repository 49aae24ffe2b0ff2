//! Layer configuration and the quantities derived from it.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Where the offset convolution runs relative to the pixel shuffle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Style {
    /// "linear + pixel shuffle": the 1x1 conv sees the low-res map and predicts
    /// all `2·g·s²` offsets per pixel.
    Lp,
    /// "pixel shuffle + linear": the map is pixel-shuffled first and the conv
    /// predicts `2·g` offsets per high-res pixel.
    Pl,
}

impl fmt::Display for Style {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Style::Lp => "lp",
            Style::Pl => "pl",
        })
    }
}

impl FromStr for Style {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "lp" => Ok(Style::Lp),
            "pl" => Ok(Style::Pl),
            other => Err(Error::InvalidConfig(format!(
                "style must be 'lp' or 'pl', got '{other}'"
            ))),
        }
    }
}

/// Most channels a layer may have. Sizes derived from the config (weights, offsets per pixel)
/// are computed with checked arithmetic; these limits keep every one far from overflow.
pub const MAX_CHANNELS: usize = 1 << 16;
/// Largest upsampling factor.
pub const MAX_SCALE: usize = 16;
/// Most values one conv weight (`O × Cin`) may hold: 2^26 (256 MiB of f32).
pub const MAX_WEIGHT_VALUES: usize = 1 << 26;

/// Full description of one DySample layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DySampleConfig {
    /// Channels of the input (and output) feature map.
    pub channels: usize,
    /// Integer upsampling factor `s` (≥ 2).
    pub scale: usize,
    pub style: Style,
    /// Number of offset groups `g`; channels are split into `g` groups that share sample points.
    pub groups: usize,
    /// Whether a second 1x1 conv ("scope") modulates the offsets.
    pub dyscope: bool,
}

impl DySampleConfig {
    /// Builds and validates a config.
    pub fn new(
        channels: usize,
        scale: usize,
        style: Style,
        groups: usize,
        dyscope: bool,
    ) -> Result<Self> {
        let cfg = Self {
            channels,
            scale,
            style,
            groups,
            dyscope,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks every constraint and reports all violations at once.
    pub fn validate(&self) -> Result<()> {
        let mut problems = Vec::new();
        let (c, s, g) = (self.channels, self.scale, self.groups);
        if c == 0 {
            problems.push("channels must be ≥ 1".to_string());
        }
        if c > MAX_CHANNELS {
            problems.push(format!("channels {c} exceed the limit of {MAX_CHANNELS}"));
        }
        if s < 2 {
            problems.push(format!("scale must be an integer ≥ 2, got {s}"));
        }
        if s > MAX_SCALE {
            problems.push(format!("scale {s} is unreasonably large (max {MAX_SCALE})"));
        }
        if g == 0 {
            problems.push("groups must be ≥ 1".to_string());
        } else if c % g != 0 {
            problems.push(format!("channels ({c}) must be divisible by groups ({g})"));
        }
        // The product below needs the bounds above to be exact.
        let bounded =
            (1..=MAX_CHANNELS).contains(&c) && (2..=MAX_SCALE).contains(&s) && (1..=c).contains(&g);
        let weight_values = if bounded {
            self.conv_out_channels() * self.conv_in_channels()
        } else {
            0
        };
        if weight_values > MAX_WEIGHT_VALUES {
            problems.push(format!(
                "the offset conv would hold {weight_values} weights, more than the limit of {MAX_WEIGHT_VALUES} (fewer groups or channels)"
            ));
        }
        // (Only for a valid scale: s² of an unchecked one overflows; found by fuzz/quant_json.)
        if self.style == Style::Pl && (2..=MAX_SCALE).contains(&s) {
            let s2 = s * s;
            if c < s2 || c % s2 != 0 {
                problems.push(format!(
                    "style 'pl' needs channels ({c}) to be a positive multiple of scale² ({s2})"
                ));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::InvalidConfig(problems.join("; ")))
        }
    }

    /// `s²`.
    pub fn s2(&self) -> usize {
        self.scale * self.scale
    }

    /// Channels per offset group.
    pub fn channels_per_group(&self) -> usize {
        self.channels / self.groups
    }

    /// Number of offset channels per low-res pixel: `2·g·s²`.
    pub fn offset_channels(&self) -> usize {
        2 * self.groups * self.s2()
    }

    /// Input channels of the offset/scope convolutions.
    pub fn conv_in_channels(&self) -> usize {
        match self.style {
            Style::Lp => self.channels,
            Style::Pl => self.channels / self.s2(),
        }
    }

    /// Output channels of the offset/scope convolutions.
    pub fn conv_out_channels(&self) -> usize {
        match self.style {
            Style::Lp => 2 * self.groups * self.s2(),
            Style::Pl => 2 * self.groups,
        }
    }

    /// Factor applied to the raw conv output before `init_pos` is added.
    pub fn offset_factor(&self) -> f32 {
        if self.dyscope {
            0.5
        } else {
            0.25
        }
    }

    /// The `init_pos` buffer exactly as the reference PyTorch module computes it (in f32).
    ///
    /// Channel `k·g·s² + q·s² + i·s + j` holds `h[j]` for `k = 0` (x) and `h[i]` for `k = 1` (y),
    /// with `h[i] = (i − (s−1)/2)/s`.
    pub fn init_pos(&self) -> Vec<f32> {
        let s = self.scale;
        let g = self.groups;
        let h: Vec<f32> = (0..s)
            .map(|i| (i as f32 - (s as f32 - 1.0) / 2.0) / s as f32)
            .collect();
        let mut out = Vec::with_capacity(self.offset_channels());
        for k in 0..2 {
            for _q in 0..g {
                for i in 0..s {
                    for j in 0..s {
                        out.push(if k == 0 { h[j] } else { h[i] });
                    }
                }
            }
        }
        out
    }
}

impl fmt::Display for DySampleConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "channels={} scale={} style={} groups={} dyscope={}",
            self.channels, self.scale, self.style, self.groups, self.dyscope
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_every_violation() {
        let err = DySampleConfig::new(6, 2, Style::Pl, 4, false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("divisible by groups"), "{err}");
        assert!(err.contains("multiple of scale²"), "{err}");
        assert!(DySampleConfig::new(8, 1, Style::Lp, 1, false).is_err());
        assert!(DySampleConfig::new(0, 2, Style::Lp, 1, false).is_err());
        assert!(DySampleConfig::new(8, 2, Style::Lp, 0, false).is_err());
    }

    #[test]
    fn huge_sizes_are_refused_not_wrapped() {
        for c in [1usize << 61, (1 << 59) * 4, MAX_CHANNELS + 1] {
            let e = DySampleConfig::new(c, 2, Style::Lp, 1, false)
                .unwrap_err()
                .to_string();
            assert!(e.contains("exceed the limit"), "{e}");
        }
        let e = DySampleConfig::new(MAX_CHANNELS, 16, Style::Lp, MAX_CHANNELS, false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("more than the limit"), "{e}");
        assert!(DySampleConfig::new(1024, 4, Style::Lp, 16, true).is_ok());
        // Style pl with a huge scale used to overflow computing scale².
        let e = DySampleConfig::new(8, 22222222222222222, Style::Pl, 2, true)
            .unwrap_err()
            .to_string();
        assert!(e.contains("unreasonably large"), "{e}");
    }

    #[test]
    fn init_pos_layout_matches_definition() {
        let cfg = DySampleConfig::new(8, 2, Style::Lp, 2, false).unwrap();
        let p = cfg.init_pos();
        assert_eq!(p.len(), 16);
        // x direction, group 0: h[j] for (i, j) = (0,0),(0,1),(1,0),(1,1)
        assert_eq!(&p[0..4], &[-0.25, 0.25, -0.25, 0.25]);
        // y direction, group 1: h[i]
        assert_eq!(&p[12..16], &[-0.25, -0.25, 0.25, 0.25]);
    }
}
