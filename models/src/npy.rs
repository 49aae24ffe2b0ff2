//! Minimal `.npy` reading and writing for float32 arrays, with errors that say what the file
//! holds (dtype, shape) rather than that it is "wrong".

use crate::error::{Error, Result};
use std::io::Read;
use std::path::Path;

/// What an `.npy` header says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NpyHeader {
    /// numpy's dtype string, e.g. `<f4`.
    pub descr: String,
    pub fortran_order: bool,
    pub shape: Vec<usize>,
    /// Byte offset of the data.
    pub data_offset: usize,
}

impl NpyHeader {
    /// The dtype in words (`float32`, `float64`, ... or numpy's string).
    pub fn dtype_name(&self) -> String {
        let d = self.descr.trim_start_matches(['<', '>', '|', '=']);
        let name = match d {
            "f2" => "float16",
            "f4" => "float32",
            "f8" => "float64",
            "u1" => "uint8",
            "i1" => "int8",
            "u2" => "uint16",
            "i2" => "int16",
            "i4" => "int32",
            "i8" => "int64",
            "b1" => "bool",
            _ => return format!("'{}'", self.descr),
        };
        if self.descr.starts_with('>') {
            format!("big-endian {name}")
        } else {
            name.to_string()
        }
    }

    /// Shape as numpy prints it: `(256, 256)`.
    pub fn shape_str(&self) -> String {
        shape_str(&self.shape)
    }
}

/// `(256, 256)`, `(3,)`.
pub fn shape_str(shape: &[usize]) -> String {
    match shape {
        [one] => format!("({one},)"),
        s => format!(
            "({})",
            s.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Parses the header of `.npy` bytes.
pub fn parse_header(bytes: &[u8]) -> std::result::Result<NpyHeader, String> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err("not a .npy file (no \\x93NUMPY magic)".into());
    }
    let major = bytes[6];
    let (len, start): (usize, usize) = match major {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(format!("unsupported .npy format version {v}")),
    };
    let end = start
        .checked_add(len)
        .filter(|&e| e <= bytes.len())
        .ok_or("truncated .npy header")?;
    let text = std::str::from_utf8(&bytes[start..end]).map_err(|_| "header is not text")?;
    let value_after = |key: &str| -> std::result::Result<&str, String> {
        let k = format!("'{key}'");
        let at = text
            .find(&k)
            .ok_or_else(|| format!("header has no {k}: {}", text.trim()))?;
        let rest = text[at + k.len()..].trim_start();
        rest.strip_prefix(':')
            .map(str::trim_start)
            .ok_or_else(|| format!("malformed header: {}", text.trim()))
    };
    let d = value_after("descr")?;
    let quote = d.chars().next().filter(|c| *c == '\'' || *c == '"');
    let descr = match quote {
        Some(q) => d[1..].split(q).next().ok_or("malformed descr")?.to_string(),
        None => return Err(format!("unsupported dtype description: {d}")),
    };
    let f = value_after("fortran_order")?;
    let fortran_order = if f.starts_with("True") {
        true
    } else if f.starts_with("False") {
        false
    } else {
        return Err("malformed fortran_order".into());
    };
    let s = value_after("shape")?;
    let inner = s
        .strip_prefix('(')
        .and_then(|r| r.split(')').next())
        .ok_or("malformed shape")?;
    let shape = inner
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| p.trim_end_matches('L').parse::<usize>())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|_| format!("malformed shape ({inner})"))?;
    Ok(NpyHeader {
        descr,
        fortran_order,
        shape,
        data_offset: end,
    })
}

/// Reads only the header of an `.npy` file.
pub fn read_header(path: &Path) -> Result<NpyHeader> {
    // A regular file (a FIFO would block the open), of any length: only the header is read.
    let (mut f, _) = dysample::io::open_regular(path, ".npy file", u64::MAX).map_err(|e| {
        Error::file(
            path,
            e.to_string()
                .trim_start_matches(&format!("{}: ", path.display())),
        )
    })?;
    let mut buf = vec![0u8; 4096];
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) => return Err(Error::file(path, e)),
        }
    }
    parse_header(&buf[..n]).map_err(|e| Error::file(path, e))
}

/// A float32 array in C order.
#[derive(Clone, Debug, PartialEq)]
pub struct ArrayF32 {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// Reads a little-endian float32 `.npy` (C or Fortran order; returned in C order).
///
/// The header is checked here first, so errors say what the file holds (dtype, shape, missing
/// data); the data itself is read by the SDK's bounded reader ([`dysample::npy::read_f32`]:
/// regular files only, size checked before allocating, Fortran order converted).
pub fn read_f32(path: &Path) -> Result<ArrayF32> {
    let h = read_header(path)?;
    if h.descr != "<f4" && h.descr != "=f4" {
        return Err(Error::file(
            path,
            format_args!(
                "dtype is {}, expected float32 (little-endian '<f4')",
                h.dtype_name()
            ),
        ));
    }
    let n = h
        .shape
        .iter()
        .try_fold(4usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| Error::file(path, format_args!("shape {} is too large", h.shape_str())))?;
    let len = std::fs::metadata(path)
        .map_err(|e| Error::file(path, e))?
        .len();
    let have = len.saturating_sub(h.data_offset as u64);
    if have != n as u64 {
        return Err(Error::file(
            path,
            format_args!(
                "shape {} needs {} bytes of data, the file has {} (truncated?)",
                h.shape_str(),
                n,
                have
            ),
        ));
    }
    let a = dysample::npy::read_f32(path).map_err(|e| Error::file(path, e))?;
    Ok(ArrayF32 {
        shape: a.dims,
        data: a.data,
    })
}

/// Writes a little-endian float32 `.npy` (format 1.0, C order).
pub fn write_f32(path: &Path, shape: &[usize], data: &[f32]) -> Result<()> {
    assert_eq!(shape.iter().product::<usize>(), data.len(), "shape vs data");
    let mut header = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': {}, }}",
        shape_str(shape)
    );
    // Pad so the data starts on a 64-byte boundary; the header ends with '\n'.
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - total % 64) % 64));
    header.push('\n');
    let mut bytes = Vec::with_capacity(10 + header.len() + data.len() * 4);
    bytes.extend_from_slice(b"\x93NUMPY\x01\x00");
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    for v in data {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    std::fs::write(path, bytes).map_err(|e| Error::file(path, format_args!("cannot write: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_header() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("a.npy");
        write_f32(&p, &[2, 3], &[1., 2., 3., 4., 5., 6.]).unwrap();
        let h = read_header(&p).unwrap();
        assert_eq!(h.shape, vec![2, 3]);
        assert_eq!(h.data_offset % 64, 0);
        let a = read_f32(&p).unwrap();
        assert_eq!(a.data, vec![1., 2., 3., 4., 5., 6.]);
    }

    #[test]
    fn reads_what_numpy_writes() {
        // np.save of np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3)):
        // Fortran data order is column by column: 0, 3, 1, 4, 2, 5.
        let mut b = b"\x93NUMPY\x01\x00".to_vec();
        let mut h = "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }".to_string();
        while !(10 + h.len() + 1).is_multiple_of(64) {
            h.push(' ');
        }
        h.push('\n');
        b.extend_from_slice(&(h.len() as u16).to_le_bytes());
        b.extend_from_slice(h.as_bytes());
        for v in [0f32, 3., 1., 4., 2., 5.] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("f.npy");
        std::fs::write(&p, &b).unwrap();
        assert_eq!(read_f32(&p).unwrap().data, vec![0., 1., 2., 3., 4., 5.]);
        // A float64 file is named as such.
        let mut b64 = b.clone();
        let at = b64.windows(3).position(|w| w == b"<f4").unwrap();
        b64[at + 2] = b'8';
        std::fs::write(&p, &b64).unwrap();
        let e = read_f32(&p).unwrap_err().to_string();
        assert!(e.contains("float64") && e.contains("f.npy"), "{e}");
        // Truncated data.
        std::fs::write(&p, &b[..b.len() - 4]).unwrap();
        let e = read_f32(&p).unwrap_err().to_string();
        assert!(e.contains("truncated"), "{e}");
        std::fs::write(&p, b"PK\x03\x04 not npy").unwrap();
        assert!(read_f32(&p).unwrap_err().to_string().contains("not a .npy"));
    }

    #[test]
    fn shape_strings() {
        assert_eq!(shape_str(&[3]), "(3,)");
        assert_eq!(shape_str(&[1, 256, 256]), "(1, 256, 256)");
        let text = "{'descr': '<f4', 'fortran_order': False, 'shape': (), }";
        let mut b = b"\x93NUMPY\x01\x00".to_vec();
        b.extend_from_slice(&(text.len() as u16).to_le_bytes());
        b.extend_from_slice(text.as_bytes());
        let h = parse_header(&b).unwrap();
        assert!(h.shape.is_empty());
    }
}
