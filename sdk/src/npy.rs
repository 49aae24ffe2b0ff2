//! A small, strict `.npy` reader and writer for float32 arrays.
//!
//! The header is parsed in one linear pass with hard bounds: at most [`MAX_HEADER_BYTES`] bytes,
//! exactly the keys `descr`, `fortran_order` and `shape`, a shape of at most [`MAX_RANK`]
//! integers and no other nesting. The data size `shape × 4` is computed with checked arithmetic
//! and must equal what the file holds before anything is allocated.
//! Accepted dtypes: `<f4` and `>f4` (`float32`, either byte order); C or Fortran order.

use crate::error::{Error, Result};
use std::path::Path;

/// Longest header accepted (numpy itself writes < 200 bytes for 4-D arrays).
pub const MAX_HEADER_BYTES: usize = 64 * 1024;
/// Most dimensions accepted (numpy's own limit is 64).
pub const MAX_RANK: usize = 32;

const MAGIC: &[u8] = b"\x93NUMPY";

/// A float32 array read from a `.npy` file, in C (row-major) order.
#[derive(Clone, Debug, PartialEq)]
pub struct NpyF32 {
    pub dims: Vec<usize>,
    pub data: Vec<f32>,
}

/// What the header says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub big_endian: bool,
    pub fortran_order: bool,
    pub dims: Vec<usize>,
    /// Offset of the data in the file.
    pub data_offset: usize,
    /// Data bytes the header implies (`Π dims × 4`).
    pub data_len: usize,
}

fn bad(detail: impl std::fmt::Display) -> Error {
    Error::Other(format!("not a float32 .npy array ({detail})"))
}

/// Parses and checks the header of a file of `file_len` bytes that starts with `prefix`
/// (which must hold at least the whole header, or the whole file when it is shorter).
pub fn parse_header(prefix: &[u8], file_len: u64) -> Result<Header> {
    if prefix.len() < 10 || &prefix[..6] != MAGIC {
        return Err(bad("missing the \\x93NUMPY magic"));
    }
    let (major, minor) = (prefix[6], prefix[7]);
    let (hlen, start) = match major {
        1 => (u16::from_le_bytes([prefix[8], prefix[9]]) as usize, 10),
        2 | 3 => {
            if prefix.len() < 12 {
                return Err(bad("truncated header"));
            }
            let n = u32::from_le_bytes([prefix[8], prefix[9], prefix[10], prefix[11]]);
            (n as usize, 12)
        }
        _ => return Err(bad(format!("unsupported format version {major}.{minor}"))),
    };
    if hlen > MAX_HEADER_BYTES {
        return Err(bad(format!(
            "header of {hlen} bytes is longer than the limit of {MAX_HEADER_BYTES}"
        )));
    }
    let end = start + hlen;
    if prefix.len() < end || (end as u64) > file_len {
        return Err(bad("truncated header"));
    }
    let text =
        std::str::from_utf8(&prefix[start..end]).map_err(|_| bad("header is not valid text"))?;
    let (big_endian, fortran_order, dims) = parse_dict(text).map_err(bad)?;
    let data_len = dims
        .iter()
        .try_fold(4usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| bad(format!("shape {dims:?} is too large")))?;
    let have = file_len - end as u64;
    if have != data_len as u64 {
        return Err(bad(format!(
            "shape {dims:?} needs {data_len} data bytes, the file holds {have}"
        )));
    }
    Ok(Header {
        big_endian,
        fortran_order,
        dims,
        data_offset: end,
        data_len,
    })
}

/// The header dict: `{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2), }` with any
/// key order and whitespace. Linear in the header length; nothing nests beyond the shape tuple.
fn parse_dict(text: &str) -> std::result::Result<(bool, bool, Vec<usize>), String> {
    let mut p = Parser {
        s: text.as_bytes(),
        i: 0,
    };
    p.ws();
    p.expect(b'{')?;
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    loop {
        p.ws();
        if p.eat(b'}') {
            break;
        }
        let key = p.string()?;
        p.ws();
        p.expect(b':')?;
        p.ws();
        match key.as_str() {
            "descr" if descr.is_none() => descr = Some(p.string()?),
            "fortran_order" if fortran.is_none() => fortran = Some(p.boolean()?),
            "shape" if shape.is_none() => shape = Some(p.tuple()?),
            "descr" | "fortran_order" | "shape" => return Err(format!("key '{key}' repeated")),
            other => return Err(format!("unexpected header key '{other}'")),
        }
        p.ws();
        if !p.eat(b',') {
            p.ws();
            p.expect(b'}')?;
            break;
        }
    }
    p.ws();
    if p.i != p.s.len() {
        return Err("trailing characters after the header dict".into());
    }
    let descr = descr.ok_or("header has no 'descr'")?;
    let big_endian = match descr.as_str() {
        "<f4" | "|f4" => false,
        ">f4" => true,
        other => return Err(format!("dtype '{other}', expected float32 ('<f4')")),
    };
    Ok((
        big_endian,
        fortran.ok_or("header has no 'fortran_order'")?,
        shape.ok_or("header has no 'shape'")?,
    ))
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && matches!(self.s[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }
    fn eat(&mut self, c: u8) -> bool {
        if self.s.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn expect(&mut self, c: u8) -> std::result::Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(format!(
                "expected '{}' at header byte {}",
                c as char, self.i
            ))
        }
    }
    fn string(&mut self) -> std::result::Result<String, String> {
        let q = match self.s.get(self.i) {
            Some(&q @ (b'\'' | b'"')) => q,
            _ => return Err(format!("expected a string at header byte {}", self.i)),
        };
        self.i += 1;
        let start = self.i;
        while self.i < self.s.len() && self.s[self.i] != q {
            if self.s[self.i] == b'\\' {
                return Err("escapes are not allowed in header strings".into());
            }
            self.i += 1;
        }
        if self.i >= self.s.len() {
            return Err("unterminated string in header".into());
        }
        let out = String::from_utf8_lossy(&self.s[start..self.i]).into_owned();
        self.i += 1;
        if out.len() > 64 {
            return Err("header string longer than 64 bytes".into());
        }
        Ok(out)
    }
    fn boolean(&mut self) -> std::result::Result<bool, String> {
        for (word, v) in [(&b"True"[..], true), (&b"False"[..], false)] {
            if self.s[self.i..].starts_with(word) {
                self.i += word.len();
                return Ok(v);
            }
        }
        Err(format!("expected True or False at header byte {}", self.i))
    }
    fn tuple(&mut self) -> std::result::Result<Vec<usize>, String> {
        self.expect(b'(')?;
        let mut dims = Vec::new();
        loop {
            self.ws();
            if self.eat(b')') {
                break;
            }
            let start = self.i;
            while self.i < self.s.len() && self.s[self.i].is_ascii_digit() {
                self.i += 1;
            }
            if start == self.i {
                return Err(format!(
                    "expected a non-negative integer in 'shape' at header byte {}",
                    self.i
                ));
            }
            let digits = std::str::from_utf8(&self.s[start..self.i]).unwrap_or("");
            let d: usize = digits
                .parse()
                .map_err(|_| format!("dimension {digits} is too large"))?;
            if dims.len() == MAX_RANK {
                return Err(format!("more than {MAX_RANK} dimensions"));
            }
            dims.push(d);
            self.ws();
            if !self.eat(b',') {
                self.ws();
                self.expect(b')')?;
                break;
            }
        }
        Ok(dims)
    }
}

/// Parses a whole `.npy` file held in memory.
pub fn parse(bytes: &[u8]) -> Result<NpyF32> {
    let h = parse_header(bytes, bytes.len() as u64)?;
    let raw = &bytes[h.data_offset..h.data_offset + h.data_len];
    let mut data = crate::io::try_alloc(0.0f32, h.data_len / 4, "the .npy data")?;
    decode(raw, &h, &mut data);
    Ok(NpyF32 {
        data: to_c_order(data, &h)?,
        dims: h.dims,
    })
}

fn decode(raw: &[u8], h: &Header, out: &mut [f32]) {
    for (o, c) in out.iter_mut().zip(raw.chunks_exact(4)) {
        let b = [c[0], c[1], c[2], c[3]];
        *o = if h.big_endian {
            f32::from_be_bytes(b)
        } else {
            f32::from_le_bytes(b)
        };
    }
}

/// Reorders Fortran-order data into C order.
fn to_c_order(data: Vec<f32>, h: &Header) -> Result<Vec<f32>> {
    if !h.fortran_order || h.dims.len() < 2 || data.is_empty() {
        return Ok(data);
    }
    let dims = &h.dims;
    let mut out = crate::io::try_alloc(0.0f32, data.len(), "the .npy data")?;
    // Fortran strides: the first axis is contiguous.
    let mut fstride = vec![1usize; dims.len()];
    for k in 1..dims.len() {
        fstride[k] = fstride[k - 1] * dims[k - 1];
    }
    let mut idx = vec![0usize; dims.len()];
    for o in out.iter_mut() {
        *o = data[idx.iter().zip(&fstride).map(|(i, s)| i * s).sum::<usize>()];
        // Advance the C-order index (last axis fastest).
        for k in (0..dims.len()).rev() {
            idx[k] += 1;
            if idx[k] < dims[k] {
                break;
            }
            idx[k] = 0;
        }
    }
    Ok(out)
}

/// Reads a float32 `.npy` file: a regular file of at most [`crate::io::MAX_NPY_BYTES`], header
/// checked against the file length before the data is read.
pub fn read_f32(path: &Path) -> Result<NpyF32> {
    use std::io::Read;
    let name = |e: Error| match e {
        Error::Other(m) => Error::Other(format!("{}: {m}", path.display())),
        other => other,
    };
    let (file, len) = crate::io::open_regular(path, ".npy file", crate::io::MAX_NPY_BYTES)?;
    let mut r = std::io::BufReader::new(file);
    let mut head = vec![0u8; (len as usize).min(MAX_HEADER_BYTES + 12)];
    r.read_exact(&mut head).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let h = parse_header(&head, len).map_err(name)?;
    let mut data = crate::io::try_alloc(0.0f32, h.data_len / 4, &format!("{}", path.display()))?;
    // Read the raw bytes straight into the f32 buffer, then fix the byte order in place.
    let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut data);
    let have = head.len() - h.data_offset;
    bytes[..have].copy_from_slice(&head[h.data_offset..]);
    r.read_exact(&mut bytes[have..])
        .map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
    for v in data.iter_mut() {
        let b = v.to_ne_bytes();
        *v = if h.big_endian {
            f32::from_be_bytes(b)
        } else {
            f32::from_le_bytes(b)
        };
    }
    Ok(NpyF32 {
        data: to_c_order(data, &h).map_err(name)?,
        dims: h.dims,
    })
}

/// The bytes of a little-endian float32 C-order `.npy` file (format 1.0, header padded to 64).
pub fn encode_f32(dims: &[usize], data: &[f32]) -> Vec<u8> {
    let mut v = Vec::with_capacity(128 + data.len() * 4);
    v.extend_from_slice(&header_f32(dims));
    for x in data {
        v.extend_from_slice(&x.to_le_bytes());
    }
    v
}

fn header_f32(dims: &[usize]) -> Vec<u8> {
    let shape = match dims {
        [d] => format!("({d},)"),
        _ => format!(
            "({})",
            dims.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
    let unpadded = MAGIC.len() + 4 + dict.len() + 1;
    dict.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
    dict.push('\n');
    let mut v = Vec::with_capacity(MAGIC.len() + 4 + dict.len());
    v.extend_from_slice(MAGIC);
    v.extend_from_slice(&[1, 0]);
    v.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    v.extend_from_slice(dict.as_bytes());
    v
}

/// Writes a float32 `.npy` file atomically (see [`crate::io::write_atomic`]).
pub fn write_f32(path: &Path, dims: &[usize], data: &[f32]) -> Result<()> {
    let n = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    if n != Some(data.len()) {
        return Err(Error::shape(
            "npy output",
            format!("dims {dims:?} do not hold {} values", data.len()),
        ));
    }
    crate::io::write_atomic(path, |w| {
        w.write_all(&header_f32(dims))?;
        // In chunks: one f32 at a time through BufWriter is slow, one huge buffer doubles memory.
        let mut buf = Vec::with_capacity(64 * 1024);
        for chunk in data.chunks(16 * 1024) {
            buf.clear();
            for x in chunk {
                buf.extend_from_slice(&x.to_le_bytes());
            }
            w.write_all(&buf)?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_header_alignment() {
        let b = encode_f32(&[1, 2, 3], &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
        let h = parse_header(&b, b.len() as u64).unwrap();
        assert_eq!(h.data_offset % 64, 0);
        let a = parse(&b).unwrap();
        assert_eq!(a.dims, vec![1, 2, 3]);
        assert_eq!(a.data[5], 5.0);
        let b1 = encode_f32(&[4], &[1.0; 4]);
        assert_eq!(parse(&b1).unwrap().dims, vec![4]);
    }

    fn with_header(dict: &str, data: &[u8]) -> Vec<u8> {
        let mut v = MAGIC.to_vec();
        v.extend_from_slice(&[1, 0]);
        v.extend_from_slice(&(dict.len() as u16).to_le_bytes());
        v.extend_from_slice(dict.as_bytes());
        v.extend_from_slice(data);
        v
    }

    #[test]
    fn fortran_and_big_endian() {
        // 2x3 Fortran: column-major 0..6 -> C order [[0,2,4],[1,3,5]].
        let data: Vec<u8> = (0..6).flat_map(|i| (i as f32).to_be_bytes()).collect();
        let b = with_header(
            "{'descr': '>f4', 'fortran_order': True, 'shape': (2, 3), }\n",
            &data,
        );
        assert_eq!(parse(&b).unwrap().data, vec![0.0, 2.0, 4.0, 1.0, 3.0, 5.0]);
    }

    #[test]
    fn hostile_headers_fail_fast() {
        let nested = format!(
            "{{'descr': '<f4', 'fortran_order': False, 'shape': {}1{}, }}",
            "(".repeat(25),
            ")".repeat(25)
        );
        let t = std::time::Instant::now();
        assert!(parse(&with_header(&nested, &[])).is_err());
        assert!(t.elapsed().as_secs() < 1);
        // 320 GB declared in a tiny file: refused before allocating.
        let e = parse(&with_header(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (100000, 100000, 8), }",
            &[0; 16],
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("the file holds 16"), "{e}");
        // Overflowing shape.
        let e = parse(&with_header(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 4), }",
            &[],
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("too large"), "{e}");
        // 4 GiB header length (format 2.0).
        let mut v = MAGIC.to_vec();
        v.extend_from_slice(&[2, 0]);
        v.extend_from_slice(&u32::MAX.to_le_bytes());
        let e = parse(&v).unwrap_err().to_string();
        assert!(e.contains("longer than the limit"), "{e}");
        for dict in [
            "{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1}",
            "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (1,)}",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }",
            "{'descr': '<f4', 'fortran_order': False}",
        ] {
            assert!(parse(&with_header(dict, &[0; 4])).is_err(), "{dict}");
        }
    }
}
