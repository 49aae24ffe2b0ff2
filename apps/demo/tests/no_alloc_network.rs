//! The network stage's steady state (`PreparedRun::run`, what the demo runs per frame) on the
//! shipped person-seg model: a counting global allocator over 20 frames after 3 warm-up frames
//! (and 20 ordinary runs). Zero Rust heap allocations, exactly, for the bilinear model (ORT's
//! own ops only) and for the custom-op model in every `--precision` (f32, f16, int8): the
//! DySample kernel reads its tensors through the C API on the stack (`onnx/kernel_io.rs`), keeps
//! its f16/int8 conversion buffers and re-quantizes its int8 layer in place (`precision.rs`),
//! hands work to its thread pool without rayon's injector queue (`pool.rs`), and keeps one
//! scratch per pool thread from the first call (`engine.rs`).
//!
//! What this counts: every Rust `alloc`/`realloc` on any thread (the caller, the SDK's DySample
//! thread pool, ort's Rust wrappers, the custom-op kernel). What it cannot see: ONNX Runtime's
//! own C++ allocations (`new`/`malloc` inside libonnxruntime: its arena for intermediate
//! tensors, per-run bookkeeping), which do not go through Rust's global allocator. So "zero" here
//! means zero Rust allocations, not zero allocations in the process.
//!
//! Needs the ONNX Runtime library (python3's onnxruntime package or ORT_DYLIB_PATH), found by
//! the SDK's loader.

mod common;
use dysample::onnx::session::{DySamplePrecision, Provider, SessionOptions};
use std::alloc::{GlobalAlloc, Layout, System};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

struct Counting;

// Process-wide (not per thread): the DySample kernels run on the SDK's pool threads.
static COUNT: AtomicBool = AtomicBool::new(false);
static ALLOCS: AtomicUsize = AtomicUsize::new(0);
static BYTES: AtomicUsize = AtomicUsize::new(0);
/// One counted region at a time (the tests of this file would otherwise count each other).
static SERIAL: Mutex<()> = Mutex::new(());

fn note(bytes: usize) {
    if COUNT.load(Ordering::Relaxed) {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(bytes, Ordering::Relaxed);
    }
}

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        note(l.size());
        // SAFETY: same contract as ours.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        note(n);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static A: Counting = Counting;

/// Runs `f` and returns its result with the (allocations, bytes) made meanwhile on any thread.
fn counted<R>(f: impl FnOnce() -> R) -> (R, usize, usize) {
    ALLOCS.store(0, Ordering::SeqCst);
    BYTES.store(0, Ordering::SeqCst);
    COUNT.store(true, Ordering::SeqCst);
    let r = f();
    COUNT.store(false, Ordering::SeqCst);
    (
        r,
        ALLOCS.load(Ordering::SeqCst),
        BYTES.load(Ordering::SeqCst),
    )
}

const DIMS: [usize; 4] = [1, 3, 256, 256];
const WARMUP: usize = 3;
const FRAMES: usize = 20;

/// A frame-like input in [0, 1] that differs from frame to frame.
fn frame(k: usize, out: &mut [f32]) {
    for (i, v) in out.iter_mut().enumerate() {
        let (x, y) = ((i % 256) as f32, ((i / 256) % 256) as f32);
        *v = (0.5 + 0.5 * ((x + 3.0 * k as f32) * 0.05).sin() * (y * 0.03).cos()).clamp(0.0, 1.0);
    }
}

/// Rust heap use per frame, (allocations, bytes), of an ordinary run and of the prepared run,
/// and the prepared run's totals over the window.
struct Use {
    plain: (f64, usize),
    prepared: (f64, usize),
    total: (usize, usize),
}

fn check(model: &str, precision: DySamplePrecision) -> Use {
    let model = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../models/person-seg")
        .join(model);
    check_file(&model, precision)
}

fn check_file(model: &Path, precision: DySamplePrecision) -> Use {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut s = SessionOptions::new()
        .provider(Provider::Cpu)
        .threads(2)
        .dysample_precision(precision)
        .build(model)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut run = s.prepare_f32(&DIMS).unwrap();
    assert!(run.is_bound(), "person-seg has an f32 input");
    assert_eq!(run.output_dims(), &[1, 1, 256, 256]);
    let n = DIMS.iter().product::<usize>();
    let mut x = vec![0.0f32; n];

    // The bound run computes what an ordinary run computes, and sees each new input.
    let mut last: Vec<f32> = Vec::new();
    for k in 0..WARMUP {
        frame(k, &mut x);
        run.input_mut().copy_from_slice(&x);
        let y = run.run(&mut s).unwrap().to_vec();
        let (d, want) = s.run_f32(&x, &DIMS).unwrap();
        assert_eq!(d, run.output_dims());
        assert_eq!(
            y, want,
            "{precision}: frame {k}: bound run differs from run_f32"
        );
        assert_ne!(
            y, last,
            "{precision}: frame {k}: output did not change with the input"
        );
        last = y;
    }

    // Ordinary runs, for comparison.
    let (_, plain_allocs, plain_bytes) = counted(|| {
        for k in 0..FRAMES {
            frame(k, &mut x);
            std::hint::black_box(s.run_f32(&x, &DIMS).unwrap());
        }
    });
    let mut sum = 0.0f64;
    let (_, allocs, bytes) = counted(|| {
        for k in 0..FRAMES {
            frame(k, run.input_mut());
            let y = run.run(&mut s).unwrap();
            sum += y[k * 997] as f64;
        }
    });
    assert!(sum.is_finite());
    assert!(
        plain_allocs > 0,
        "the counter sees the ordinary run's allocations"
    );
    let u = Use {
        plain: (plain_allocs as f64 / FRAMES as f64, plain_bytes / FRAMES),
        prepared: (allocs as f64 / FRAMES as f64, bytes / FRAMES),
        total: (allocs, bytes),
    };
    eprintln!(
        "{} {precision}: Rust heap per frame: run_f32 {:.1} allocations / {} bytes; prepared run {:.1} / {} bytes",
        model.display(),
        u.plain.0,
        u.plain.1,
        u.prepared.0,
        u.prepared.1
    );
    // The prepared run no longer copies the input and the output into new Vecs.
    assert!(
        plain_bytes >= bytes + FRAMES * (n + 256 * 256) * 4,
        "{precision}: the prepared run saves less than the input and output copies"
    );
    u
}

/// Asserts that the prepared run made no Rust allocation at all.
fn assert_none(u: &Use, what: &str) {
    assert_eq!(
        u.total,
        (0, 0),
        "{what}: the prepared run made (allocations, bytes) = {:?} on the Rust heap in {FRAMES} \
         steady-state frames ({:.2} allocations a frame)",
        u.total,
        u.prepared.0
    );
}

/// Without DySample nodes (the shipped bilinear baseline: ORT's own ops only) the prepared run
/// makes no Rust allocation at all: the SDK's binding path and ort's wrappers are clean.
#[test]
fn prepared_run_allocates_nothing_without_custom_ops() {
    assert_none(
        &check("bilinear/model.onnx", DySamplePrecision::F32),
        "bilinear",
    );
}

/// The custom-op model (3 DySample nodes, the demo's path), f32.
#[test]
fn prepared_run_custom_op_f32_allocates_nothing() {
    assert_none(
        &check("model.onnx", DySamplePrecision::F32),
        "custom op f32",
    );
}

/// f16 DySample precision on the f32 graph: the f16 conversion buffers are kept per kernel.
#[test]
fn prepared_run_custom_op_f16_allocates_nothing() {
    assert_none(
        &check("model.onnx", DySamplePrecision::F16),
        "custom op f16",
    );
}

/// int8 (per-call min/max) DySample precision: the input range differs from frame to frame, so
/// the layer is re-quantized every frame, in place; the int8 buffers are kept per kernel.
#[test]
fn prepared_run_custom_op_int8_allocates_nothing() {
    assert_none(
        &check("model.onnx", DySamplePrecision::Int8MinMax),
        "custom op int8",
    );
}

/// A calibrated int8 QDQ model (`dysample-demo --onnx`): ONNX Runtime's int8 kernels and the
/// SDK's int8 DySample nodes with fixed parameters, through the same bound run.
#[test]
fn prepared_run_calibrated_int8_qdq_allocates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let file = {
        let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        common::calibrated_person_seg(dir.path())
    };
    assert_none(
        &check_file(&file, DySamplePrecision::F32),
        "calibrated int8 QDQ",
    );
}
