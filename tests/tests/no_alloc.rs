//! Steady-state calls must not allocate: scratch memory is pooled inside the layer.

use dysample::{Affine, DySample, DySampleConfig, Layout, QuantParams, Shape, Style};
use half::f16;
use std::alloc::{GlobalAlloc, Layout as AllocLayout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator and only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: AllocLayout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: AllocLayout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: AllocLayout, n: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static A: Counting = Counting;

#[test]
fn steady_state_calls_do_not_allocate() {
    for (style, layout, threads) in [
        (Style::Lp, Layout::Nchw, 1),
        (Style::Pl, Layout::Nhwc, 1),
        (Style::Lp, Layout::Nhwc, 2),
        (Style::Pl, Layout::Nchw, 2),
    ] {
        let cfg = DySampleConfig::new(32, 2, style, 4, true).unwrap();
        let layer = DySample::random(cfg, 3)
            .unwrap()
            .with_threads(threads)
            .unwrap();
        let q = layer
            .quantize(&QuantParams::new(
                cfg,
                Affine {
                    scale: 0.02,
                    zero_point: 1,
                },
            ))
            .unwrap();
        let shape = Shape::new(2, 32, 24, 20);
        let dims = shape.dims(layout);
        let x: Vec<f32> = (0..shape.len())
            .map(|i| (i % 17) as f32 * 0.1 - 0.8)
            .collect();
        let xh: Vec<f16> = x.iter().map(|&v| f16::from_f32(v)).collect();
        let xq: Vec<i8> = x.iter().map(|&v| (v * 50.0) as i8).collect();
        let n = shape.upsampled(2).len();
        let (mut y, mut yh, mut yq) = (vec![0.0f32; n], vec![f16::ZERO; n], vec![0i8; n]);
        let mut call = || {
            layer.forward_slice(&x, dims, layout, &mut y).unwrap();
            layer.forward_slice_f16(&xh, dims, layout, &mut yh).unwrap();
            q.forward_slice(&xq, dims, layout, &mut yq).unwrap();
        };
        // Warm up: scratch pools fill, threads start. With threads, which pooled scratch meets
        // which precision first is up to the scheduler, so give every one time to.
        for _ in 0..if threads == 1 { 3 } else { 20 } {
            call();
        }
        // Read before counting starts: env::var allocates.
        let iters: usize = std::env::var("NOALLOC_ITERS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(40);
        let before = ALLOCS.load(Ordering::Relaxed);
        for _ in 0..iters {
            call();
        }
        let n_alloc = ALLOCS.load(Ordering::Relaxed) - before;
        let calls = 3 * iters;
        eprintln!("{style} {layout} threads={threads}: {n_alloc} allocations in {calls} steady-state calls");
        // Our code allocates nothing per call. With one thread nothing allocates at all; with
        // more, rayon allocates job-queue blocks now and then (well under one per call).
        if threads == 1 {
            assert_eq!(
                n_alloc, 0,
                "{style} {layout} threads=1: {n_alloc} allocations in {calls} calls"
            );
        } else {
            assert!(
                n_alloc * 4 <= calls,
                "{style} {layout} threads={threads}: {n_alloc} allocations in {calls} calls"
            );
        }
    }
}
