//! Steady state allocates nothing per frame: a counting global allocator around the pipeline's
//! per-frame work (capture from YUYV / Y4M / AVI, colour conversion, queue hand-over,
//! preprocessing, postprocessing, every render path, timing).
//!
//! Not counted: the network (ONNX Runtime allocates its output tensors) and the JPEG decoder
//! (`zune-jpeg` builds its per-image tables on each call); the latter is measured below to stay
//! constant per frame (no growth).

use dysample_video::avi::AviWriter;
use dysample_video::convert::yuyv_to_rgb;
use dysample_video::preprocess::{Normalize, Preprocessor, Resizer};
use dysample_video::queue::{LatestQueue, Pop};
use dysample_video::render::{
    blend_mask, colorize_mask, composite_over, draw_legend, normalize_to_u8, prob_to_u8,
    side_by_side, Blur, Colormap,
};
use dysample_video::source::{AviSource, FrameSource, Grab};
use dysample_video::stats::{Stage, Stats};
use dysample_video::y4m::{Y4mReader, Y4mWriter};
use dysample_video::Frame;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{Cursor, Seek, SeekFrom};
use std::time::Duration;

struct Counting;

thread_local! {
    // Per thread: the tests of this file run in parallel.
    static COUNT: Cell<bool> = const { Cell::new(false) };
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}

fn note() {
    // try_with: thread-local storage may already be gone while a thread exits.
    let _ = COUNT.try_with(|c| {
        if c.get() {
            let _ = ALLOCS.try_with(|n| n.set(n.get() + 1));
        }
    });
}

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        note();
        // SAFETY: same contract as ours.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        note();
        // SAFETY: same contract as ours.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static A: Counting = Counting;

fn counted<R>(f: impl FnOnce() -> R) -> (R, usize) {
    ALLOCS.with(|n| n.set(0));
    COUNT.with(|c| c.set(true));
    let r = f();
    COUNT.with(|c| c.set(false));
    (r, ALLOCS.with(|n| n.get()))
}

const W: usize = 640;
const H: usize = 480;

/// The per-frame work after capture: everything the demo does to a frame but the network.
struct Work {
    pre: Preprocessor,
    prob: Vec<f32>,
    small: Vec<u8>,
    mask: Vec<u8>,
    resizer: Resizer,
    main: Frame,
    mask_rgb: Frame,
    out: Frame,
    blur: Blur,
    back: Vec<u8>,
    cmap: Colormap,
    depth_small: Vec<u8>,
    stats: Stats,
}

impl Work {
    fn new() -> Self {
        let prob: Vec<f32> = (0..256 * 256).map(|i| (i % 256) as f32 / 255.0).collect();
        Self {
            pre: Preprocessor::new(
                256,
                256,
                Normalize {
                    mean: [0.5; 3],
                    std: [0.25; 3],
                    bgr: true,
                },
            ),
            prob,
            small: Vec::new(),
            mask: Vec::new(),
            resizer: Resizer::bilinear(),
            main: Frame::new(),
            mask_rgb: Frame::new(),
            out: Frame::new(),
            blur: Blur::new(16),
            back: Vec::new(),
            cmap: Colormap::parse("turbo").unwrap(),
            depth_small: Vec::new(),
            stats: Stats::new(),
        }
    }

    fn frame(&mut self, f: &Frame) {
        let t = self.pre.run(f).unwrap();
        assert_eq!(t.len(), 3 * 256 * 256);
        self.stats.record(Stage::Preprocess, 1000);
        // Segmentation: mask, overlay, composite over blur, mask view, side by side, legend.
        prob_to_u8(&self.prob, &mut self.small);
        self.resizer
            .resize(&self.small, 256, 256, &mut self.mask, f.width, f.height, 1)
            .unwrap();
        self.main.reshape(f.width, f.height);
        blend_mask(
            &f.data,
            &self.mask,
            [255, 64, 160],
            150,
            &mut self.main.data,
        );
        self.blur.run(f, &mut self.back).unwrap();
        composite_over(&f.data, &self.back, &self.mask, &mut self.main.data);
        self.mask_rgb.reshape(f.width, f.height);
        colorize_mask(
            &self.mask,
            [255, 64, 160],
            [0, 0, 0],
            &mut self.mask_rgb.data,
        );
        side_by_side(
            &self.main.data,
            &self.mask_rgb.data,
            f.width,
            f.height,
            &mut self.out,
        );
        draw_legend(
            &mut self.out,
            &[("background", [0, 0, 0]), ("person", [255, 64, 160])],
        );
        // Depth: normalise, resize, colormap, side by side.
        normalize_to_u8(&self.prob, &mut self.depth_small);
        self.resizer
            .resize(
                &self.depth_small,
                256,
                256,
                &mut self.mask,
                f.width,
                f.height,
                1,
            )
            .unwrap();
        self.cmap.apply(&self.mask, &mut self.mask_rgb.data);
        side_by_side(
            &f.data,
            &self.mask_rgb.data,
            f.width,
            f.height,
            &mut self.out,
        );
        self.stats.record(Stage::Render, 2000);
        self.stats.frame_done();
        let _ = self.stats.status_line(format_args!("dropped {}", 0));
    }
}

fn yuyv_frame(k: usize) -> Vec<u8> {
    let mut v = vec![0u8; W * H * 2];
    for (i, q) in v.chunks_exact_mut(4).enumerate() {
        let x = (i * 2) % W;
        q.copy_from_slice(&[
            (16 + (x + k) % 220) as u8,
            90,
            (16 + (x + 1 + k) % 220) as u8,
            170,
        ]);
    }
    v
}

#[test]
fn steady_state_allocates_nothing() {
    // Capture from a "camera" (YUYV) through the latest-wins queue.
    let frames: Vec<Vec<u8>> = (0..4).map(yuyv_frame).collect();
    let queue = LatestQueue::new(3, || Frame::with_size(W, H));
    let mut work = Work::new();
    let mut step = |k: usize| {
        let mut f = queue.take_free().expect("a free buffer");
        yuyv_to_rgb(&frames[k % 4], W, H, W * 2, &mut f).unwrap();
        queue.push_latest(f);
        let Pop::Item(f) = queue.pop(Duration::ZERO) else {
            panic!("no frame")
        };
        work.frame(&f);
        queue.recycle(f);
    };
    for k in 0..5 {
        step(k); // warm-up: buffers reach their size
    }
    let ((), n) = counted(|| (0..40).for_each(&mut step));
    assert_eq!(n, 0, "{n} allocations in 40 YUYV frames");
}

#[test]
fn file_capture_allocates_nothing() {
    // Y4M from memory (what a file or the ffmpeg pipe gives).
    let mut w = Y4mWriter::new(Vec::new(), W, H, 30).unwrap();
    for k in 0..3 {
        let mut f = Frame::with_size(W, H);
        f.data
            .iter_mut()
            .enumerate()
            .for_each(|(i, v)| *v = ((i + k * 7) % 251) as u8);
        w.write(&f).unwrap();
    }
    let bytes = w.finish().unwrap();
    let mut r = Y4mReader::new(Cursor::new(bytes), "mem.y4m").unwrap();
    let start = r.data_start;
    let (mut buf, mut f) = (Vec::new(), Frame::new());
    let mut work = Work::new();
    let mut step = |r: &mut Y4mReader<Cursor<Vec<u8>>>| {
        if !r.next_frame(&mut buf).unwrap() {
            r.get_mut().seek(SeekFrom::Start(start)).unwrap();
            assert!(r.next_frame(&mut buf).unwrap());
        }
        r.decode(&buf, &mut f).unwrap();
        work.frame(&f);
    };
    for _ in 0..4 {
        step(&mut r);
    }
    let ((), n) = counted(|| (0..20).for_each(|_| step(&mut r)));
    assert_eq!(n, 0, "{n} allocations in 20 Y4M frames");
}

#[test]
fn avi_reading_allocates_nothing_and_jpeg_decoding_does_not_grow() {
    let mut w = AviWriter::new(Cursor::new(Vec::new()), W, H, 30, 80).unwrap();
    for k in 0..3 {
        let mut f = Frame::with_size(W, H);
        f.data
            .iter_mut()
            .enumerate()
            .for_each(|(i, v)| *v = (((i / 3) % W + k * 30) % 256) as u8);
        w.write(&f).unwrap();
    }
    let bytes = w.finish().unwrap().into_inner();
    let mut src = AviSource::new(Cursor::new(bytes.clone()), "mem.avi").unwrap();
    let grab = |src: &mut AviSource<Cursor<Vec<u8>>>| {
        if src.grab().unwrap() == Grab::End {
            src.rewind().unwrap();
            assert_eq!(src.grab().unwrap(), Grab::Frame);
        }
    };
    for _ in 0..4 {
        grab(&mut src);
    }
    let ((), n) = counted(|| (0..30).for_each(|_| grab(&mut src)));
    assert_eq!(n, 0, "{n} allocations reading 30 AVI frames");

    // zune-jpeg: the same number of allocations every frame (its tables), never more.
    let mut src = AviSource::new(Cursor::new(bytes), "mem.avi").unwrap();
    let mut f = Frame::new();
    let mut per_frame = Vec::new();
    for k in 0..12 {
        grab(&mut src);
        let ((), n) = counted(|| src.decode(&mut f).unwrap());
        if k >= 3 {
            per_frame.push(n);
        }
    }
    let (lo, hi) = (
        per_frame.iter().min().unwrap(),
        per_frame.iter().max().unwrap(),
    );
    assert!(hi - lo <= 2, "JPEG decode allocations vary: {per_frame:?}");
    eprintln!("zune-jpeg allocations per 640x480 frame: {per_frame:?}");
}
