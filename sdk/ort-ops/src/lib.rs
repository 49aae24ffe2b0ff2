//! `libdysample_ort_ops.so`: the `ai.dysample::DySample` custom op — f32, f16 and int8, computed
//! by the SDK kernels — for any ONNX Runtime host, through ORT's custom-op library entry point
//! [`RegisterCustomOps`]:
//!
//! ```python
//! so = onnxruntime.SessionOptions()
//! so.register_custom_ops_library("/path/to/libdysample_ort_ops.so")
//! sess = onnxruntime.InferenceSession("model.onnx", so)
//! ```
//!
//! **Which ONNX Runtime.** The host process has loaded its own ORT; every call this library
//! makes must go to *that* library's API. `RegisterCustomOps` receives the host's `OrtApiBase`,
//! takes its `OrtApi` (version 17, ORT ≥ 1.17) and installs it as the `ort` crate's global API
//! (`ort::set_api`) before any other `ort` call, so `ort` never loads a library of its own.
//! A second registration from a different ORT in the same process is refused.
//!
//! **Threads.** All DySample nodes of all sessions in the process share one pool, created at
//! the first registration: `DYSAMPLE_ORT_OPS_THREADS` workers (1 ..= 256), by default one per
//! available core (what ORT's own intra-op pool defaults to). ORT runs one node at a time per
//! session (sequential executor), so while a DySample node runs its pool stands in for ORT's;
//! with several sessions running concurrently they queue on the shared pool instead of
//! oversubscribing the cores. `DYSAMPLE_BACKEND` narrows the kernel backend as everywhere.
//! Registration also turns ORT's intra-op spin-waiting off (`session.intra_op.allow_spinning`
//! = 0) unless the host set that entry before registering: spinning ORT workers take the cores
//! the DySample pool computes on (see `dysample::onnx::session::SessionOptions::intra_op_spinning`
//! for the measurement). A host that wants spinning sets the entry to 1 first.
//!
//! **Errors.** Registration failures and kernel errors come back as `OrtStatus` with one-line
//! messages naming the node; panics are caught at the boundary (they must not unwind into the
//! host's C++ frames).
//!
//! **Lifetime.** Once registered, the library pins itself in memory (`RTLD_NODELETE`): hosts
//! may `dlclose` a custom-op library when its session options go away, while the pool's
//! threads and the domain other sessions use still live in it.

use ort::sys as ort_sys;
use std::ffi::{c_char, CStr, CString};
use std::ptr;
use std::sync::OnceLock;

/// Environment variable that sets the pool size.
pub const THREADS_ENV: &str = "DYSAMPLE_ORT_OPS_THREADS";

/// The pool size for a value of [`THREADS_ENV`] (`None`: unset).
pub fn pool_threads(env: Option<&str>) -> Result<usize, String> {
    let max = dysample::layer::MAX_THREADS;
    match env.map(str::trim) {
        None | Some("") => Ok(std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(max)),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(format!(
                "{THREADS_ENV}={v:?}: expected a thread count in 1..={max}"
            )),
        },
    }
}

/// The one operator domain of the process (f32, f16 and int8 DySample on one pool).
struct Domain(ort::operator::OperatorDomain);
// SAFETY: the domain is never changed after creation; ORT only reads it, from any thread (the
// same domain is added to every session's options, as ORT allows).
unsafe impl Send for Domain {}
// SAFETY: as above.
unsafe impl Sync for Domain {}

static DOMAIN: OnceLock<Result<Domain, String>> = OnceLock::new();

fn domain() -> Result<&'static Domain, String> {
    DOMAIN
        .get_or_init(|| {
            let threads = pool_threads(std::env::var(THREADS_ENV).ok().as_deref())?;
            dysample::onnx::op::domain(threads)
                .map(Domain)
                .map_err(|e| format!("cannot create the ai.dysample domain: {e}"))
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// Why registration failed.
enum Failure {
    /// Our own message.
    Message(String),
    /// A status ORT returned, handed back as is.
    Status(ort_sys::OrtStatusPtr),
}

impl From<String> for Failure {
    fn from(s: String) -> Self {
        Failure::Message(s)
    }
}

/// The host's API table for `ort_sys::ORT_API_VERSION` (17): null if the host is older.
///
/// # Safety
/// `base` must be the `OrtApiBase` ORT passed to `RegisterCustomOps`.
unsafe fn host_api(base: *const ort_sys::OrtApiBase) -> *const ort_sys::OrtApi {
    // SAFETY: `base` is valid (caller); GetApi returns null for an unsupported version.
    unsafe { ((*base).GetApi)(ort_sys::ORT_API_VERSION) }
}

/// # Safety
/// `base` must be the `OrtApiBase` ORT passed to `RegisterCustomOps`.
unsafe fn host_version(base: *const ort_sys::OrtApiBase) -> String {
    // SAFETY: `base` is valid (caller); the version string is a static C string.
    unsafe {
        let v = ((*base).GetVersionString)();
        if v.is_null() {
            "?".into()
        } else {
            CStr::from_ptr(v).to_string_lossy().into_owned()
        }
    }
}

/// # Safety
/// `options` and `base` must be what ORT passed to `RegisterCustomOps`.
unsafe fn register(
    options: *mut ort_sys::OrtSessionOptions,
    base: *const ort_sys::OrtApiBase,
) -> Result<(), Failure> {
    // SAFETY: forwarded from the caller.
    let api = unsafe { host_api(base) };
    if api.is_null() {
        return Err(Failure::Message(format!(
            "dysample-ort-ops needs ONNX Runtime >= 1.17 (C API version {}); this host is {}",
            ort_sys::ORT_API_VERSION,
            // SAFETY: forwarded from the caller.
            unsafe { host_version(base) }
        )));
    }
    // SAFETY: `api` points at the host's OrtApi, a table of at least version-17 size (GetApi
    // returned it for that version); `ort_sys::OrtApi` is exactly that table (feature api-17),
    // so reading one is in bounds. Copying function pointers is plain data.
    let table = unsafe { ptr::read(api) };
    let create_status = table.CreateStatus as usize;
    if !ort::set_api(table) && ort::api().CreateStatus as usize != create_status {
        return Err(Failure::Message(
            "this process already registered dysample-ort-ops with another ONNX Runtime library; one process can use it with one ONNX Runtime only".into(),
        ));
    }
    pin_library();
    let domain = domain()?;
    use ort::AsPointer;
    // SAFETY: `options` is the host's live session options; the domain lives for the rest of
    // the process (static, library pinned), as ORT requires of an added domain.
    let status = unsafe { (ort::api().AddCustomOpDomain)(options, domain.0.ptr().cast_mut()) };
    if !status.0.is_null() {
        return Err(Failure::Status(status));
    }
    // SAFETY: `options` is the host's live session options; key and value are C strings.
    unsafe { no_spinning_unless_set(options) }
}

/// Turns ORT's intra-op spin-waiting off unless the host configured it already (see the crate
/// docs, "Threads").
///
/// # Safety
/// `options` must be live session options of the ORT whose API `ort` uses.
unsafe fn no_spinning_unless_set(options: *mut ort_sys::OrtSessionOptions) -> Result<(), Failure> {
    let key = c"session.intra_op.allow_spinning";
    let api = ort::api();
    let mut has: std::ffi::c_int = 0;
    // SAFETY: forwarded from the caller; `has` is a valid out pointer.
    let st = unsafe { (api.HasSessionConfigEntry)(options, key.as_ptr(), &mut has) };
    if !st.0.is_null() {
        return Err(Failure::Status(st));
    }
    if has == 0 {
        // SAFETY: as above.
        let st = unsafe { (api.AddSessionConfigEntry)(options, key.as_ptr(), c"0".as_ptr()) };
        if !st.0.is_null() {
            return Err(Failure::Status(st));
        }
    }
    Ok(())
}

/// Keeps this library loaded for the rest of the process (see the crate docs, "Lifetime").
fn pin_library() {
    #[cfg(unix)]
    {
        static PINNED: std::sync::Once = std::sync::Once::new();
        PINNED.call_once(|| {
            // SAFETY: dladdr only reads the address (one of our own functions) and fills
            // `info`; dlopen of a library that is already loaded just takes a reference, which
            // is never released (RTLD_NODELETE makes that explicit).
            unsafe {
                let mut info: libc::Dl_info = std::mem::zeroed();
                let me = RegisterCustomOps as *const libc::c_void;
                if libc::dladdr(me, &mut info) != 0 && !info.dli_fname.is_null() {
                    let h = libc::dlopen(info.dli_fname, libc::RTLD_NOW | libc::RTLD_NODELETE);
                    if h.is_null() {
                        // Not fatal: the host may still keep the library loaded.
                        eprintln!("dysample-ort-ops: warning: could not pin the library in memory");
                    }
                }
            }
        });
    }
}

/// A one-line `OrtStatus` (ORT_FAIL) with `msg`, made through the host's API.
///
/// # Safety
/// `base` must be the `OrtApiBase` ORT passed to `RegisterCustomOps`.
unsafe fn status(base: *const ort_sys::OrtApiBase, msg: &str) -> *mut ort_sys::OrtStatus {
    let msg = CString::new(msg.replace(['\n', '\0'], " ")).unwrap_or_default();
    // SAFETY: forwarded from the caller. CreateStatus is the first entry of every API version,
    // so an older host's version-1 table serves to report that it is too old.
    unsafe {
        let mut api = host_api(base);
        if api.is_null() {
            api = ((*base).GetApi)(1);
        }
        if api.is_null() {
            return ptr::null_mut();
        }
        ((*api).CreateStatus)(ort_sys::OrtErrorCode::ORT_FAIL, msg.as_ptr()).0
    }
}

/// ONNX Runtime's custom-op library entry point: registers the `ai.dysample` domain (DySample
/// for f32, f16 and int8 X) on `options`. Returns null on success, else an error status.
///
/// # Safety
/// Called by ONNX Runtime (`SessionOptions.register_custom_ops_library`,
/// `Ort::SessionOptions::RegisterCustomOpsLibrary`, ...) with its live session options and API
/// base.
#[no_mangle]
pub unsafe extern "system" fn RegisterCustomOps(
    options: *mut ort_sys::OrtSessionOptions,
    api_base: *const ort_sys::OrtApiBase,
) -> *mut ort_sys::OrtStatus {
    if api_base.is_null() {
        // Nothing to report through; ORT never does this.
        return ptr::null_mut();
    }
    if options.is_null() {
        // SAFETY: `api_base` is ORT's (non-null, checked).
        return unsafe {
            status(
                api_base,
                "dysample-ort-ops: RegisterCustomOps got no session options",
            )
        };
    }
    // SAFETY: arguments forwarded from ORT.
    let r = std::panic::catch_unwind(|| unsafe { register(options, api_base) });
    let msg = match r {
        Ok(Ok(())) => return ptr::null_mut(),
        Ok(Err(Failure::Status(s))) => return s.0,
        Ok(Err(Failure::Message(m))) => m,
        Err(p) => format!(
            "dysample-ort-ops: internal error (panic) while registering: {}",
            p.downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_default()
        ),
    };
    // SAFETY: `api_base` is ORT's.
    unsafe { status(api_base, &msg) }
}

/// The library's version (the SDK's), as a static C string, for hosts that want to log it.
#[no_mangle]
pub extern "C" fn DySampleOrtOpsVersion() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_size_from_the_environment() {
        assert_eq!(pool_threads(Some("3")), Ok(3));
        assert!(pool_threads(None).unwrap() >= 1);
        assert!(pool_threads(Some("")).unwrap() >= 1);
        for bad in ["0", "257", "-1", "two"] {
            let e = pool_threads(Some(bad)).unwrap_err();
            assert!(e.contains(THREADS_ENV) && e.contains("1..=256"), "{e}");
        }
    }
}
