//! Finding ONNX Runtime, and fetching it when it is nowhere: the demo must run on a fresh
//! machine with nothing but Rust and Python installed.
//!
//! The SDK's search (`--ort-lib`, `ORT_DYLIB_PATH`, `lib/` beside the binary, the Python
//! `onnxruntime` package, system paths) goes first. If it finds nothing, the PyPI wheel is
//! downloaded with pip (`pip download --no-deps`, nothing installed into any environment) into
//! `~/.cache/dysample/onnxruntime-VERSION/` and its `libonnxruntime.so` is unpacked beside it;
//! later runs find it there. `DYSAMPLE_NO_FETCH=1` turns this off.

use dysample::onnx::runtime;
use std::path::{Path, PathBuf};
use std::process::Command;

const VERSION: &str = "1.31.1";

fn cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("dysample").join(format!("onnxruntime-{VERSION}")))
}

fn cached_lib() -> Option<PathBuf> {
    let p = cache_dir()?.join("libonnxruntime.so");
    p.is_file().then_some(p)
}

/// Loads ONNX Runtime; returns the library path to pass on (None: the SDK's search found it).
pub fn ensure(explicit: Option<&Path>) -> Result<Option<PathBuf>, String> {
    if explicit.is_some() {
        return runtime::load(explicit)
            .map(|_| None)
            .map_err(|e| e.to_string());
    }
    let first = match runtime::load(None) {
        Ok(_) => return Ok(None),
        Err(e) => e.to_string(),
    };
    if let Some(lib) = cached_lib() {
        return runtime::load(Some(&lib))
            .map(|_| Some(lib))
            .map_err(|e| e.to_string());
    }
    if std::env::var_os("DYSAMPLE_NO_FETCH").is_some() || !cfg!(target_os = "linux") {
        return Err(first);
    }
    let dir = cache_dir().ok_or(first.clone())?;
    eprintln!("ONNX Runtime not found; fetching the onnxruntime=={VERSION} wheel from PyPI with pip into {} (once)", dir.display());
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let python = std::env::var("DYSAMPLE_PYTHON").unwrap_or_else(|_| "python3".into());
    let st = Command::new(&python)
        .args([
            "-m",
            "pip",
            "download",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "--only-binary=:all:",
        ])
        .arg(format!("onnxruntime=={VERSION}"))
        .arg("-d")
        .arg(&dir)
        .status()
        .map_err(|e| format!("{first}; and cannot run {python} -m pip to fetch it: {e}"))?;
    if !st.success() {
        return Err(format!("{first}; fetching it with pip failed ({st})"));
    }
    // Unpack the library from the wheel (a zip) with Python's own zipfile.
    let script = "import glob,os,sys,zipfile\nd=sys.argv[1]\nw=sorted(glob.glob(os.path.join(d,'onnxruntime-*.whl')))[-1]\nz=zipfile.ZipFile(w)\nn=[x for x in z.namelist() if os.path.basename(x).startswith('libonnxruntime.so')]\nn.sort(key=len)\ndata=z.read(n[-1])\nt=os.path.join(d,'libonnxruntime.so.tmp')\nopen(t,'wb').write(data)\nos.replace(t,os.path.join(d,'libonnxruntime.so'))\n";
    let st = Command::new(&python)
        .args(["-c", script])
        .arg(&dir)
        .status()
        .map_err(|e| format!("unpacking the wheel: {e}"))?;
    let lib = dir.join("libonnxruntime.so");
    if !st.success() || !lib.is_file() {
        return Err(format!(
            "{first}; the downloaded wheel in {} holds no libonnxruntime.so",
            dir.display()
        ));
    }
    runtime::load(Some(&lib))
        .map(|_| Some(lib))
        .map_err(|e| e.to_string())
}
