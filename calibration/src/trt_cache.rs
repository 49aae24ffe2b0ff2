//! TensorRT calibration cache (implicit quantization, e.g. TensorRT 8.5 on JetPack 5):
//! a first line `TRT-<version>-EntropyCalibration2`, then one `tensor_name: <hex>` line per
//! tensor, `<hex>` the big-endian bits of the f32 scale `amax / 127`.

use crate::error::{CalibError, Result};

/// TensorRT 8.5.2 (JetPack 5.1): `NV_TENSORRT_VERSION` = major·1000 + minor·100 + patch.
pub const DEFAULT_VERSION: u32 = 8502;

/// The cache text for `(tensor, amax)` pairs.
pub fn write(version: u32, entries: &[(String, f32)]) -> Result<String> {
    let mut s = format!("TRT-{version}-EntropyCalibration2\n");
    for (name, amax) in entries {
        if name.contains(':') || name.contains('\n') {
            return Err(CalibError::msg(format!(
                "tensor '{name}': a TensorRT calibration cache cannot hold a name with ':' or a newline"
            )));
        }
        let scale = if *amax > 0.0 {
            amax / 127.0
        } else {
            1.0 / 127.0
        };
        s.push_str(&format!("{name}: {:08x}\n", scale.to_bits()));
    }
    Ok(s)
}

/// A parsed cache: version, calibrator name, `(tensor, scale)` entries.
pub type Parsed = (u32, String, Vec<(String, f32)>);

/// Parses a cache: `(version, calibrator, [(tensor, scale)])`.
pub fn parse(text: &str) -> Result<Parsed> {
    let mut lines = text.lines();
    let head = lines.next().unwrap_or("");
    let bad_head = || {
        CalibError::msg(format!(
            "calibration cache: first line '{head}' is not TRT-<version>-<Calibrator>"
        ))
    };
    let rest = head.strip_prefix("TRT-").ok_or_else(bad_head)?;
    let (ver, cal) = rest.split_once('-').ok_or_else(bad_head)?;
    let ver: u32 = ver.parse().map_err(|_| bad_head())?;
    let mut out = Vec::new();
    for (k, line) in lines.enumerate() {
        if line.is_empty() {
            continue;
        }
        let (name, hex) = line.rsplit_once(": ").ok_or_else(|| {
            CalibError::msg(format!(
                "calibration cache line {}: expected 'name: hex'",
                k + 2
            ))
        })?;
        if hex.len() != 8 {
            return Err(CalibError::msg(format!(
                "calibration cache line {}: '{hex}' is not 8 hex digits",
                k + 2
            )));
        }
        let bits = u32::from_str_radix(hex, 16).map_err(|_| {
            CalibError::msg(format!(
                "calibration cache line {}: '{hex}' is not hex",
                k + 2
            ))
        })?;
        out.push((name.to_string(), f32::from_bits(bits)));
    }
    Ok((ver, cal.to_string(), out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_and_round_trip() {
        let entries = vec![
            ("input".to_string(), 1.0f32),
            ("/conv/Conv_output_0".to_string(), 6.35),
        ];
        let text = write(8502, &entries).unwrap();
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("TRT-8502-EntropyCalibration2"));
        // 1/127 as an IEEE single is 0x3c010204 (0.007874016…): computed by hand from its bits,
        // sign 0, exponent 120 (0x78), mantissa 0x010204.
        assert_eq!(lines.next(), Some("input: 3c010204"));
        let (v, cal, back) = parse(&text).unwrap();
        assert_eq!((v, cal.as_str()), (8502, "EntropyCalibration2"));
        assert_eq!(back[1].0, "/conv/Conv_output_0");
        assert_eq!(back[1].1, 6.35f32 / 127.0);
        assert!((back[0].1 * 127.0 - 1.0).abs() < 1e-7);
        assert!(write(1, &[("a:b".into(), 1.0)])
            .unwrap_err()
            .to_string()
            .contains("a:b"));
        assert!(parse("TRT-x-Entropy\n").is_err());
    }
}
