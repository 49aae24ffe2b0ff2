//! External data of ONNX models, resolved safely before ONNX Runtime sees the model.
//!
//! Large ONNX models keep tensor bytes in side files (`location`, `offset`, `length` entries).
//! Sessions are created from memory, where ONNX Runtime would resolve `location` against the
//! current directory: a downloaded model could then pull any readable file into its outputs,
//! and a legitimate `model.onnx` + `model.onnx.data` would only load from the model's folder.
//!
//! So every external reference is resolved here, against the **model file's own directory**:
//! `location` must be a relative path without `..`, and the file it names (after following
//! symlinks) must be a regular file inside that directory. Its bytes are read (bounds-checked)
//! and inlined into the model, which ONNX Runtime then loads from memory with nothing left to
//! resolve. A model in memory without a directory may not reference external data at all.

use super::{OnnxError, Result};
use onnx_protobuf::tensor_proto::DataLocation;
use onnx_protobuf::{GraphProto, ModelProto, NodeProto, TensorProto};
use protobuf::Message;
use std::path::{Component, Path, PathBuf};

fn is_external(t: &TensorProto) -> bool {
    t.data_location.value() == DataLocation::EXTERNAL as i32 || !t.external_data.is_empty()
}

/// Calls `f` on every tensor of the model: initializers, sparse initializers, tensor attributes,
/// and the same inside subgraphs, functions and training graphs.
fn for_each_tensor(
    model: &mut ModelProto,
    f: &mut dyn FnMut(&mut TensorProto) -> Result<()>,
) -> Result<()> {
    fn graph(g: &mut GraphProto, f: &mut dyn FnMut(&mut TensorProto) -> Result<()>) -> Result<()> {
        for t in &mut g.initializer {
            f(t)?;
        }
        for s in &mut g.sparse_initializer {
            if let Some(v) = s.values.as_mut() {
                f(v)?;
            }
            if let Some(i) = s.indices.as_mut() {
                f(i)?;
            }
        }
        nodes(&mut g.node, f)
    }
    fn nodes(
        ns: &mut [NodeProto],
        f: &mut dyn FnMut(&mut TensorProto) -> Result<()>,
    ) -> Result<()> {
        for n in ns {
            for a in &mut n.attribute {
                if let Some(t) = a.t.as_mut() {
                    f(t)?;
                }
                for t in &mut a.tensors {
                    f(t)?;
                }
                for s in a
                    .sparse_tensor
                    .as_mut()
                    .into_iter()
                    .chain(&mut a.sparse_tensors)
                {
                    if let Some(v) = s.values.as_mut() {
                        f(v)?;
                    }
                    if let Some(i) = s.indices.as_mut() {
                        f(i)?;
                    }
                }
                if let Some(g) = a.g.as_mut() {
                    graph(g, f)?;
                }
                for g in &mut a.graphs {
                    graph(g, f)?;
                }
            }
        }
        Ok(())
    }
    if let Some(g) = model.graph.as_mut() {
        graph(g, f)?;
    }
    for func in &mut model.functions {
        nodes(&mut func.node, f)?;
    }
    for ti in &mut model.training_info {
        for g in ti
            .initialization
            .as_mut()
            .into_iter()
            .chain(ti.algorithm.as_mut())
        {
            graph(g, f)?;
        }
    }
    Ok(())
}

/// The checked file a `location` names: relative, no `..`, inside `dir` after symlinks.
pub fn resolve_location(dir: &Path, location: &str) -> std::result::Result<PathBuf, String> {
    let rel = Path::new(location);
    if location.is_empty() {
        return Err("has an empty external-data location".into());
    }
    if location.contains('\0') {
        return Err("has a NUL byte in its external-data location".into());
    }
    for c in rel.components() {
        match c {
            Component::Normal(_) | Component::CurDir => {}
            Component::ParentDir => {
                return Err(format!(
                    "external-data location '{location}' leaves the model's directory (..)"
                ))
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(format!(
                    "external-data location '{location}' is absolute; it must be relative to the model's directory"
                ))
            }
        }
    }
    let root = std::fs::canonicalize(dir).map_err(|e| {
        format!(
            "cannot resolve the model's directory {}: {e}",
            dir.display()
        )
    })?;
    let full = std::fs::canonicalize(root.join(rel))
        .map_err(|e| format!("external-data file '{location}': {e}"))?;
    if !full.starts_with(&root) {
        return Err(format!(
            "external-data location '{location}' resolves to {}, outside the model's directory",
            full.display()
        ));
    }
    Ok(full)
}

fn inline(t: &mut TensorProto, dir: &Path, budget: &mut u64) -> std::result::Result<(), String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut location = None;
    let (mut offset, mut length) = (0u64, None);
    for e in &t.external_data {
        let num = |v: &str| {
            v.trim()
                .parse::<u64>()
                .map_err(|_| format!("external-data {} '{v}' is not a byte count", e.key))
        };
        match e.key.as_str() {
            "location" => location = Some(e.value.clone()),
            "offset" => offset = num(&e.value)?,
            "length" => length = Some(num(&e.value)?),
            "checksum" => {}
            other => return Err(format!("unknown external-data key '{other}'")),
        }
    }
    let location = location.ok_or("uses external data without a location")?;
    let path = resolve_location(dir, &location)?;
    let (mut file, size) = crate::io::open_regular(&path, "external-data file", u64::MAX)
        .map_err(|e| e.to_string())?;
    let length = length.unwrap_or(size.saturating_sub(offset));
    if offset.checked_add(length).is_none_or(|end| end > size) {
        return Err(format!(
            "external data at offset {offset} + {length} bytes runs past the end of '{location}' ({size} bytes)"
        ));
    }
    if length > *budget {
        return Err(format!(
            "external data exceeds the {} bytes a model may hold in memory",
            crate::io::MAX_MODEL_BYTES
        ));
    }
    *budget -= length;
    let mut buf =
        crate::io::try_alloc(0u8, length as usize, "external data").map_err(|e| e.to_string())?;
    file.seek(SeekFrom::Start(offset))
        .and_then(|_| file.read_exact(&mut buf))
        .map_err(|e| format!("cannot read '{location}': {e}"))?;
    t.raw_data = buf;
    t.external_data.clear();
    t.data_location = DataLocation::DEFAULT.into();
    Ok(())
}

/// Resolves the external data of a serialized model. `dir` is the model file's directory
/// (`None` for a model that only exists in memory: then external data is refused). Returns
/// the model with the data inlined, or `None` when it references none (use the bytes as they are).
pub fn inline_external_data(
    bytes: &[u8],
    dir: Option<&Path>,
    name: &Path,
) -> Result<Option<Vec<u8>>> {
    let bad = |detail: String| OnnxError::Model {
        path: name.display().to_string(),
        detail,
    };
    let mut model = ModelProto::parse_from_bytes(bytes).map_err(|e| {
        bad(format!(
            "not a valid ONNX model (truncated or not ONNX?): {e}"
        ))
    })?;
    let mut found = false;
    let mut budget = crate::io::MAX_MODEL_BYTES.saturating_sub(bytes.len() as u64);
    for_each_tensor(&mut model, &mut |t| {
        if !is_external(t) {
            return Ok(());
        }
        found = true;
        let Some(dir) = dir else {
            return Err(bad(format!(
                "tensor '{}' uses external data, which a model given as bytes cannot have (load it from its file)",
                t.name
            )));
        };
        inline(t, dir, &mut budget).map_err(|e| bad(format!("tensor '{}': {e}", t.name)))
    })?;
    if !found {
        return Ok(None);
    }
    model.write_to_bytes().map(Some).map_err(|e| {
        bad(format!(
            "cannot re-serialize the model with its external data: {e}"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_must_stay_inside_the_model_directory() {
        let base = std::env::temp_dir().join(format!("dysample-extdata-{}", std::process::id()));
        let dir = base.join("model");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(base.join("secret"), b"secret").unwrap();
        std::fs::write(dir.join("w.bin"), b"1234").unwrap();
        assert!(resolve_location(&dir, "w.bin").is_ok());
        assert!(resolve_location(&dir, "./w.bin").is_ok());
        for bad in ["../secret", "/etc/passwd", "sub/../../secret", ""] {
            assert!(resolve_location(&dir, bad).is_err(), "{bad}");
        }
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(base.join("secret"), dir.join("link")).unwrap();
            let e = resolve_location(&dir, "link").unwrap_err();
            assert!(e.contains("outside the model's directory"), "{e}");
        }
        std::fs::remove_dir_all(&base).unwrap();
    }
}
