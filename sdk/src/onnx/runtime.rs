//! Finding and loading the ONNX Runtime shared library (`ort` with `load-dynamic`).
//!
//! Search order, first hit wins:
//! 1. a path given through the API ([`load`]) or the CLI (`--ort-lib`);
//! 2. the `ORT_DYLIB_PATH` environment variable;
//! 3. `lib/` next to the executable;
//! 4. the Python `onnxruntime` / `onnxruntime-gpu` package (`<site-packages>/onnxruntime/capi/`),
//!    found with `python3` (or the interpreter in `DYSAMPLE_PYTHON`) — how Jetson users get a
//!    TensorRT-enabled build;
//! 5. the system library paths (`LD_LIBRARY_PATH`, the ld.so cache).
//!
//! A path given explicitly (1 or 2) is used alone: if it fails, that is the error, so a typo
//! never silently loads another build. The library can be loaded once per process.
//!
//! **The current directory is never searched** unless the user names a path in it (1 or 2):
//! a library's constructors run inside this process, so a directory holding a planted
//! `libonnxruntime.so` or `onnxruntime/` package must not be able to inject code.
//! - step 4 runs Python isolated (`python3 -I`: no current or script directory on `sys.path`,
//!   no `PYTHON*` variables, no user site-packages) from `/`, finds `python3` only in absolute
//!   `PATH` entries, and accepts only an absolute package directory. A `pip install --user`
//!   package is therefore not found: pass `--ort-lib` or use a virtual environment's python
//!   in `DYSAMPLE_PYTHON`;
//! - step 5 hands the bare file name to the dynamic loader, which searches `LD_LIBRARY_PATH`
//!   and the ld.so cache but not the current directory, unless `LD_LIBRARY_PATH` has an empty
//!   or relative entry (an `export LD_LIBRARY_PATH=/x:$LD_LIBRARY_PATH` with it unset ends in
//!   `:`, which means the current directory): then only its absolute entries and the standard
//!   library directories are searched, by full path.

use super::{OnnxError, Result};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

/// The oldest ONNX Runtime this build works with (`ort`'s `api-17` feature).
pub const MIN_ORT_VERSION: &str = "1.17";

/// The loaded library.
#[derive(Debug)]
pub struct Runtime {
    /// File that was loaded.
    pub path: PathBuf,
    /// Which search step found it.
    pub source: &'static str,
    /// ONNX Runtime's version string, e.g. `1.31.1`.
    pub version: String,
    env: ort::environment::Environment,
}

impl Runtime {
    pub(crate) fn env(&self) -> &ort::environment::Environment {
        &self.env
    }

    /// Execution providers compiled into the loaded library (ORT's names, e.g.
    /// `TensorrtExecutionProvider`).
    pub fn available_providers(&self) -> Result<Vec<String>> {
        available_providers()
    }
}

static RUNTIME: OnceLock<Runtime> = OnceLock::new();
static LOADING: Mutex<()> = Mutex::new(());

/// One place to look, in search order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub path: PathBuf,
    pub source: &'static str,
    /// An explicit choice (API/CLI path or `ORT_DYLIB_PATH`): no fallback past it.
    pub pinned: bool,
}

/// File names the library goes by on this OS, most specific last.
fn lib_names() -> &'static [&'static str] {
    if cfg!(target_os = "windows") {
        &["onnxruntime.dll"]
    } else if cfg!(target_os = "macos") {
        &["libonnxruntime.dylib"]
    } else {
        &["libonnxruntime.so", "libonnxruntime.so.1"]
    }
}

/// `libonnxruntime*` files in `dir` (wheels ship only `libonnxruntime.so.1.N.M`).
fn libs_in(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = lib_names()
        .iter()
        .map(|n| dir.join(n))
        .filter(|p| p.is_file())
        .collect();
    if let Ok(entries) = std::fs::read_dir(dir) {
        let mut versioned: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                    n.starts_with("libonnxruntime.so.")
                        || n.starts_with("libonnxruntime.") && n.ends_with(".dylib")
                })
            })
            .filter(|p| !out.contains(p))
            .collect();
        versioned.sort();
        out.extend(versioned);
    }
    if out.is_empty() {
        // Keep the directory in the list so the error says where we looked.
        out.push(dir.join(lib_names()[0]));
    }
    out
}

/// The directory of the Python `onnxruntime` package, without importing it (imports are slow
/// and may fail for unrelated reasons).
fn python_package_dir(python: &str) -> std::result::Result<PathBuf, String> {
    let script = "import importlib.util as u\ns = u.find_spec('onnxruntime')\nprint(list(s.submodule_search_locations)[0] if s and s.submodule_search_locations else '')";
    // A bare name is looked up in the absolute PATH entries only (an empty or `.` entry would
    // run a `python3` planted in the current directory).
    let exe = if python.contains('/') {
        PathBuf::from(python)
    } else {
        find_in_path(python, std::env::var_os("PATH").as_deref())
            .ok_or_else(|| format!("cannot run {python}: not found in the absolute PATH entries"))?
    };
    let out = std::process::Command::new(&exe)
        // -I: isolated mode, so neither the current directory nor PYTHONPATH can supply a
        // fake `onnxruntime` package.
        .args(["-I", "-c", script])
        .current_dir("/")
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {python}: {e}"))?;
    let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || dir.is_empty() {
        return Err(format!("{python} has no 'onnxruntime' package"));
    }
    let dir = PathBuf::from(dir);
    if !dir.is_absolute() {
        return Err(format!(
            "{python} reported a relative package directory {}; ignored",
            dir.display()
        ));
    }
    Ok(dir)
}

/// `name` in the absolute entries of a `PATH`-like list.
fn find_in_path(name: &str, path: Option<&std::ffi::OsStr>) -> Option<PathBuf> {
    std::env::split_paths(path?)
        .filter(|d| d.is_absolute())
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Directories of the dynamic loader's default search, for when `LD_LIBRARY_PATH` is unsafe.
const STANDARD_LIB_DIRS: &[&str] = &[
    "/usr/local/lib",
    "/usr/lib",
    "/lib",
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/usr/lib64",
    "/lib64",
];

/// Whether a `LD_LIBRARY_PATH` value would make the loader search the current directory.
fn searches_cwd(ld_library_path: &std::ffi::OsStr) -> bool {
    std::env::split_paths(ld_library_path).any(|d| !d.is_absolute())
}

/// The ordered places to look. `python` is the interpreter for step 4 (`None`: skip it).
pub fn candidates(
    explicit: Option<&Path>,
    env_path: Option<&str>,
    exe_dir: Option<&Path>,
    python: Option<&str>,
) -> (Vec<Candidate>, Vec<String>) {
    let mut notes = Vec::new();
    if let Some(p) = explicit {
        return (
            vec![Candidate {
                path: p.to_path_buf(),
                source: "path given by the caller",
                pinned: true,
            }],
            notes,
        );
    }
    if let Some(p) = env_path.filter(|p| !p.is_empty()) {
        return (
            vec![Candidate {
                path: PathBuf::from(p),
                source: "ORT_DYLIB_PATH",
                pinned: true,
            }],
            notes,
        );
    }
    let mut out = Vec::new();
    if let Some(dir) = exe_dir {
        for path in libs_in(&dir.join("lib")) {
            out.push(Candidate {
                path,
                source: "lib/ next to the executable",
                pinned: false,
            });
        }
    }
    if let Some(py) = python {
        match python_package_dir(py) {
            Ok(pkg) => {
                for path in libs_in(&pkg.join("capi")) {
                    out.push(Candidate {
                        path,
                        source: "Python onnxruntime package",
                        pinned: false,
                    });
                }
            }
            Err(e) => notes.push(format!("Python onnxruntime package: {e}")),
        }
    }
    let ld = std::env::var_os("LD_LIBRARY_PATH");
    if ld.as_deref().is_some_and(searches_cwd) {
        notes.push("LD_LIBRARY_PATH has an empty or relative entry (the current directory): searched only its absolute entries and the standard directories".into());
        let dirs = std::env::split_paths(ld.as_deref().unwrap_or_default())
            .filter(|d| d.is_absolute())
            .chain(STANDARD_LIB_DIRS.iter().map(PathBuf::from))
            .collect::<Vec<_>>();
        for d in dirs {
            for path in libs_in(&d).into_iter().filter(|p| p.is_file()) {
                out.push(Candidate {
                    path,
                    source: "system library paths",
                    pinned: false,
                });
            }
        }
    } else {
        for name in lib_names() {
            // A bare name makes dlopen search LD_LIBRARY_PATH and the ld.so cache (never the
            // current directory).
            out.push(Candidate {
                path: PathBuf::from(name),
                source: "system library paths",
                pinned: false,
            });
        }
    }
    (out, notes)
}

/// Loads ONNX Runtime (once per process) and returns it. `explicit` is step 1 of the search.
pub fn load(explicit: Option<&Path>) -> Result<&'static Runtime> {
    if let Some(rt) = RUNTIME.get() {
        if let Some(p) = explicit {
            if p != rt.path {
                tracing::warn!(
                    requested = %p.display(),
                    loaded = %rt.path.display(),
                    "ONNX Runtime is already loaded; a process can load it only once"
                );
            }
        }
        return Ok(rt);
    }
    let _guard = LOADING.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(rt) = RUNTIME.get() {
        return Ok(rt);
    }
    let env_path = std::env::var("ORT_DYLIB_PATH").ok();
    let exe_dir = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf));
    let python = std::env::var("DYSAMPLE_PYTHON").unwrap_or_else(|_| "python3".to_string());
    let (cands, mut tried) = candidates(
        explicit,
        env_path.as_deref(),
        exe_dir.as_deref(),
        Some(&python),
    );
    for c in &cands {
        // A bare file name goes to the dynamic loader as it is (its search never includes the
        // current directory); it must not be turned into `./name` because such a file exists,
        // unless the user named exactly that (`--ort-lib`/`ORT_DYLIB_PATH`).
        let is_bare = c.path.components().count() == 1 && !(c.pinned && c.path.is_file());
        if !is_bare && !c.path.exists() {
            tried.push(format!("{} ({}): no such file", c.path.display(), c.source));
            continue;
        }
        let abs = if is_bare {
            c.path.clone()
        } else {
            std::fs::canonicalize(&c.path).unwrap_or(c.path.clone())
        };
        match ort::init_from(&abs) {
            Ok(builder) => {
                let env = builder.with_name("dysample").build()?;
                let version = version_string(&abs);
                tracing::info!(path = %abs.display(), source = c.source, %version, "loaded ONNX Runtime");
                let rt = Runtime {
                    path: abs,
                    source: c.source,
                    version,
                    env,
                };
                return Ok(RUNTIME.get_or_init(|| rt));
            }
            Err(e) => tried.push(format!(
                "{} ({}): {}",
                c.path.display(),
                c.source,
                one_line(&e.to_string())
            )),
        }
        if c.pinned {
            break;
        }
    }
    Err(OnnxError::Library(format!(
        "cannot load the ONNX Runtime library (>= {MIN_ORT_VERSION}); looked in: {}. Install it with `pip install onnxruntime`, or pass --ort-lib / set ORT_DYLIB_PATH to libonnxruntime",
        tried.join("; ")
    )))
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `OrtGetApiBase()->GetVersionString()` of the library at `path` (already loaded by `ort`, so
/// this dlopen only takes another reference).
fn version_string(path: &Path) -> String {
    #[repr(C)]
    struct ApiBase {
        get_api: unsafe extern "C" fn(u32) -> *const std::ffi::c_void,
        get_version_string: unsafe extern "C" fn() -> *const std::ffi::c_char,
    }
    // SAFETY: the library loaded successfully as ONNX Runtime just before; OrtGetApiBase and
    // GetVersionString are part of its stable C ABI and return static data.
    let version = unsafe {
        libloading::Library::new(path).ok().and_then(|lib| {
            let get: libloading::Symbol<unsafe extern "C" fn() -> *const ApiBase> =
                lib.get(b"OrtGetApiBase").ok()?;
            let base = get();
            if base.is_null() {
                return None;
            }
            let s = ((*base).get_version_string)();
            (!s.is_null()).then(|| std::ffi::CStr::from_ptr(s).to_string_lossy().into_owned())
        })
    };
    version.unwrap_or_else(|| "unknown".to_string())
}

fn available_providers() -> Result<Vec<String>> {
    let mut names = Vec::new();
    for (short, _) in super::session::PROVIDERS {
        if super::session::Provider::parse(short)
            .and_then(|p| p.is_available())
            .unwrap_or(false)
        {
            names.push((*short).to_string());
        }
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_and_env_paths_are_pinned_and_first() {
        let (c, _) = candidates(
            Some(Path::new("/x/libonnxruntime.so")),
            Some("/y/lib.so"),
            None,
            None,
        );
        assert_eq!(c.len(), 1);
        assert!(c[0].pinned && c[0].path == Path::new("/x/libonnxruntime.so"));
        let (c, _) = candidates(None, Some("/y/lib.so"), None, None);
        assert_eq!((c.len(), c[0].source), (1, "ORT_DYLIB_PATH"));
    }

    #[test]
    fn search_order_without_explicit_path() {
        let dir = std::env::temp_dir().join(format!("dysample-ort-search-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("lib")).unwrap();
        std::fs::write(dir.join("lib/libonnxruntime.so.1.99.0"), b"").unwrap();
        let (c, notes) = candidates(None, Some(""), Some(&dir), Some("/nonexistent/python3"));
        let sources: Vec<&str> = c.iter().map(|c| c.source).collect();
        assert_eq!(sources.first(), Some(&"lib/ next to the executable"));
        assert!(c[0].path.ends_with("lib/libonnxruntime.so.1.99.0"));
        assert_eq!(sources.last(), Some(&"system library paths"));
        assert!(
            notes
                .iter()
                .any(|n| n.contains("cannot run /nonexistent/python3")),
            "{notes:?}"
        );
        assert!(c.iter().all(|c| !c.pinned));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
