//! The fused, tiled execution engine shared by every backend and precision.
//!
//! Work is split into tasks of low-res rows. For each row a task computes the offsets of its
//! pixels (conv → offsets), turns them into sample points, and samples the `s` output rows,
//! so full-size offset or grid tensors never exist. Everything runs on NHWC data: an NCHW
//! input is transposed once per image, and NCHW output rows are transposed as they are written.
//! Scratch buffers are pooled, so steady-state calls allocate nothing but the output.

use crate::config::{DySampleConfig, Style};
use crate::error::{Error, Result};
use crate::kernels::{
    pack_conv_f32, pack_conv_i8, BackendChoice, ConvIn, Kernels, SampleNchw, StreamTile, Tap,
    TapQ11,
};
use crate::points::{taps_f32, taps_q11, Geometry, PointScratch};
use crate::pool::Pool;
use crate::quant::QuantizedWeights;
use crate::tensor::{Layout, Shape};
use crate::weights::Weights;
use half::f16;
use rayon::prelude::*;
use std::sync::{Arc, Mutex};

/// f32 parameters in the layout the kernels read.
#[derive(Debug)]
pub(crate) struct FloatPlan {
    cfg: DySampleConfig,
    wt_offset: Vec<f32>,
    bias: Vec<f32>,
    wt_scope: Option<Vec<f32>>,
    init_pos: Vec<f32>,
}

impl FloatPlan {
    pub(crate) fn new(cfg: &DySampleConfig, w: &Weights) -> Self {
        let (o, cin) = (cfg.conv_out_channels(), cfg.conv_in_channels());
        Self {
            cfg: *cfg,
            wt_offset: pack_conv_f32(&w.offset_weight, o, cin),
            bias: w.offset_bias.clone(),
            wt_scope: w.scope_weight.as_ref().map(|s| pack_conv_f32(s, o, cin)),
            init_pos: cfg.init_pos(),
        }
    }
}

/// int8 parameters in the layout the kernels read.
#[derive(Clone, Debug)]
pub(crate) struct IntPlan {
    pub(crate) qw: QuantizedWeights,
    wpack_offset: Vec<i8>,
    wpack_scope: Option<Vec<i8>>,
}

impl IntPlan {
    pub(crate) fn new(qw: QuantizedWeights) -> Self {
        let (o, cin) = (qw.cfg.conv_out_channels(), qw.cfg.conv_in_channels());
        Self {
            wpack_offset: pack_conv_i8(&qw.offset_q, o, cin),
            wpack_scope: qw.scope_q.as_ref().map(|s| pack_conv_i8(s, o, cin)),
            qw,
        }
    }
}

/// Bytes of each channel plane that one NCHW tile fills: one cache line, so a tile of
/// `64 / size_of::<T>()` pixels × all channels stays in L1 between sampling and transposing.
const NCHW_TILE_BYTES: usize = 64;

/// Output size of one image from which NCHW tiles are streamed (when the backend and the
/// CPU policy allow): non-temporal stores skip reading each output line before writing it,
/// but leave the output out of the caches, which only pays once it would not stay there
/// anyway (the reference shape's output is 14–59 MB).
const STREAM_MIN_BYTES: usize = 4 << 20;

/// Environment variable that overrides [`stream_nchw_output`]: `1` streams, `0` does not.
pub const NCHW_STREAM_ENV: &str = "DYSAMPLE_NCHW_STREAM";

/// Whether large NCHW outputs are written with non-temporal stores: by default on Intel CPUs,
/// where they made NCHW f16 1.8×, int8 1.08× and f32 (AVX2 backend) 1.7× faster on a 2-vCPU
/// AMX-capable Xeon VM (paired runs, 256×120×120 ×2); not on AMD, where whole-line
/// non-temporal stores made f16 NCHW 1.08–1.25× slower on a 2-vCPU Zen 3 VM.
/// `DYSAMPLE_NCHW_STREAM` overrides it.
pub fn stream_nchw_output() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| match std::env::var(NCHW_STREAM_ENV).as_deref() {
        Ok("1") => true,
        Ok("0") => false,
        _ => crate::cpu::CpuFeatures::get().vendor == "intel",
    })
}

/// Tests set this to stream every NCHW output the layout allows, whatever its size and the CPU
/// (the streamed and the plain tiles write the same values, so other tests are unaffected).
#[cfg(test)]
static FORCE_STREAM: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether an NCHW output of `bytes` per image is streamed (see [`stream_nchw_output`]).
fn streams(bytes: usize) -> bool {
    #[cfg(test)]
    if FORCE_STREAM.load(std::sync::atomic::Ordering::Relaxed) {
        return true;
    }
    bytes >= STREAM_MIN_BYTES && stream_nchw_output()
}

/// Per-task buffers, pooled across calls.
#[derive(Clone, Default)]
pub(crate) struct Scratch {
    xf: Vec<f32>,
    deint_f: Vec<f32>,
    deint_q: Vec<i8>,
    r: Vec<f32>,
    sc: Vec<f32>,
    off: Vec<f32>,
    acc: Vec<i32>,
    acc_s: Vec<i32>,
    offq: Vec<i32>,
    taps: Vec<Tap>,
    tapsq: Vec<TapQ11>,
    points: PointScratch,
    tile_f32: Vec<f32>,
    tile_f16: Vec<f16>,
    tile_i8: Vec<i8>,
    /// The NCHW line the task's last output row left open, its pixels at the tile's start.
    open: Option<OpenLine>,
}

/// The start of a streamed NCHW line that a task has sampled but not written: pixels
/// `at .. at + n` of each of `c` planes, held in the tile until the task's next output row
/// completes the line.
#[derive(Clone, Copy, Debug)]
pub(crate) struct OpenLine {
    at: usize,
    n: usize,
    c: usize,
}

/// `v[..n]`, growing `v` first if needed (scratch buffers only ever grow).
pub(crate) fn grow<T: Default + Clone>(v: &mut Vec<T>, n: usize) -> &mut [T] {
    if v.len() < n {
        v.resize(n, T::default());
    }
    &mut v[..n]
}

/// Element types the engine moves around, with their transpose kernel.
pub(crate) trait Elem: Copy + Default + Send + Sync + 'static {
    /// # Safety
    /// Same contract as [`crate::kernels::Transpose`].
    unsafe fn transpose(
        k: &Kernels,
        src: &[Self],
        rows: usize,
        cols: usize,
        src_ld: usize,
        dst: *mut Self,
        dst_ld: usize,
    );
    /// The NCHW output tile of a scratch.
    fn tile(sc: &mut Scratch) -> &mut Vec<Self>;
    /// The backend's streamed NCHW tile writer, if it has one.
    fn stream_tile(k: &Kernels) -> Option<StreamTile<Self>>;
}

impl Elem for f32 {
    unsafe fn transpose(
        k: &Kernels,
        src: &[f32],
        rows: usize,
        cols: usize,
        src_ld: usize,
        dst: *mut f32,
        dst_ld: usize,
    ) {
        // SAFETY: forwarded contract.
        unsafe { (k.transpose_f32)(src, rows, cols, src_ld, dst, dst_ld) }
    }
    fn tile(sc: &mut Scratch) -> &mut Vec<f32> {
        &mut sc.tile_f32
    }
    fn stream_tile(k: &Kernels) -> Option<StreamTile<f32>> {
        k.stream_tile_f32
    }
}

impl Elem for f16 {
    unsafe fn transpose(
        k: &Kernels,
        src: &[f16],
        rows: usize,
        cols: usize,
        src_ld: usize,
        dst: *mut f16,
        dst_ld: usize,
    ) {
        // SAFETY: f16 and u16 have the same size and alignment; the contract is forwarded.
        unsafe {
            (k.transpose_u16)(
                bytemuck::cast_slice(src),
                rows,
                cols,
                src_ld,
                dst.cast(),
                dst_ld,
            )
        }
    }
    fn tile(sc: &mut Scratch) -> &mut Vec<f16> {
        &mut sc.tile_f16
    }
    fn stream_tile(k: &Kernels) -> Option<StreamTile<f16>> {
        // SAFETY: f16 and u16 have the same size and alignment, and the kernel only moves bits.
        k.stream_tile_u16
            .map(|f| unsafe { std::mem::transmute::<StreamTile<u16>, StreamTile<f16>>(f) })
    }
}

impl Elem for i8 {
    unsafe fn transpose(
        k: &Kernels,
        src: &[i8],
        rows: usize,
        cols: usize,
        src_ld: usize,
        dst: *mut i8,
        dst_ld: usize,
    ) {
        // SAFETY: i8 and u8 have the same size and alignment; the contract is forwarded.
        unsafe {
            (k.transpose_u8)(
                bytemuck::cast_slice(src),
                rows,
                cols,
                src_ld,
                dst.cast(),
                dst_ld,
            )
        }
    }
    fn tile(sc: &mut Scratch) -> &mut Vec<i8> {
        &mut sc.tile_i8
    }
    fn stream_tile(k: &Kernels) -> Option<StreamTile<i8>> {
        // SAFETY: i8 and u8 have the same size and alignment, and the kernel only moves bits.
        k.stream_tile_u8
            .map(|f| unsafe { std::mem::transmute::<StreamTile<u8>, StreamTile<i8>>(f) })
    }
}

/// Where a row's samples go.
pub(crate) enum Sink<'a, T> {
    /// The `s` output rows in NHWC (`s·sW·C` values).
    Rows(&'a mut [T]),
    /// Straight into the NCHW output of one image (planes of `plane` values), through the
    /// backend's fused `sample_*_nchw` kernel, or through L1 tiles; `stream`: the backend's
    /// `stream_tile_*` when the tiles are streamed (see [`stream_nchw_output`]).
    Planes {
        dst: SharedOut<T>,
        plane: usize,
        stream: Option<StreamTile<T>>,
    },
}

/// Computes the `s` output rows of one low-res row: `(scratch, image_nhwc, y, sink)`.
type RowFn<'a, T> = dyn Fn(&mut Scratch, &[T], usize, Sink<'_, T>) + Sync + 'a;

/// A raw output pointer that parallel NCHW writers share; each writes disjoint rows.
pub(crate) struct SharedOut<T>(*mut T);

impl<T> Clone for SharedOut<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for SharedOut<T> {}

impl<T> SharedOut<T> {
    // A method (not field access) so closures capture the whole Send wrapper.
    fn ptr(self) -> *mut T {
        self.0
    }
}
// SAFETY: only used to write disjoint elements from different threads (see `Engine::run`).
unsafe impl<T: Send> Send for SharedOut<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for SharedOut<T> {}

/// Kernels + threads + pooled scratch.
pub(crate) struct Engine {
    kernels: &'static Kernels,
    pool: Option<Arc<Pool>>,
    /// One thread: run tasks in the caller's thread, with no pool hand-off (and no allocation).
    sequential: bool,
    scratch: Mutex<Vec<Scratch>>,
    img_f32: Mutex<Vec<f32>>,
    img_f16: Mutex<Vec<f16>>,
    img_i8: Mutex<Vec<i8>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("backend", &self.kernels.backend)
            .field("threads", &self.threads())
            .finish()
    }
}

impl Clone for Engine {
    fn clone(&self) -> Self {
        Self::with_kernels(self.kernels, self.pool.clone(), self.sequential)
    }
}

impl Engine {
    fn with_kernels(kernels: &'static Kernels, pool: Option<Arc<Pool>>, sequential: bool) -> Self {
        Self {
            kernels,
            sequential,
            pool,
            scratch: Mutex::new(Vec::new()),
            img_f32: Mutex::new(Vec::new()),
            img_f16: Mutex::new(Vec::new()),
            img_i8: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn new(choice: BackendChoice, threads: Option<usize>) -> Result<Self> {
        let kernels = choice.resolve()?;
        let pool = match threads {
            None => None,
            Some(0) => return Err(Error::Other("threads must be ≥ 1".into())),
            Some(n) if n > crate::layer::MAX_THREADS => {
                return Err(Error::Other(format!(
                    "{n} threads are more than the limit of {}",
                    crate::layer::MAX_THREADS
                )))
            }
            // One thread runs in the caller's thread: no pool, so no idle worker thread that
            // starts (and allocates) at some unpredictable later moment.
            Some(1) => None,
            Some(n) => Some(Arc::new(Pool::new(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(n)
                    .thread_name(|i| format!("dysample-{i}"))
                    .build()
                    .map_err(|e| Error::Other(format!("cannot start {n} threads: {e}")))?,
            ))),
        };
        tracing::debug!(backend = %kernels.backend, ?threads, "engine ready");
        Ok(Self::with_kernels(kernels, pool, threads == Some(1)))
    }

    #[cfg(feature = "onnxruntime")]
    /// An engine that runs on `pool`, shared with other engines (one pool per ORT session).
    pub(crate) fn with_pool(choice: BackendChoice, pool: Arc<Pool>) -> Result<Self> {
        let kernels = choice.resolve()?;
        let sequential = pool.threads() <= 1;
        Ok(Self::with_kernels(kernels, Some(pool), sequential))
    }

    pub(crate) fn kernels(&self) -> &'static Kernels {
        self.kernels
    }

    pub(crate) fn threads(&self) -> usize {
        if self.sequential {
            return 1;
        }
        self.pool
            .as_ref()
            .map_or_else(rayon::current_num_threads, |p| p.threads())
    }

    /// `f(index, chunk)` over `chunk`-sized pieces of `data`, in parallel unless sequential.
    fn chunks<T: Send>(
        &self,
        data: &mut [T],
        chunk: usize,
        f: impl Fn(usize, &mut [T]) + Sync + Send,
    ) {
        if self.sequential {
            data.chunks_mut(chunk)
                .enumerate()
                .for_each(|(i, c)| f(i, c));
        } else {
            data.par_chunks_mut(chunk)
                .enumerate()
                .for_each(|(i, c)| f(i, c));
        }
    }

    /// `f(i)` for `i < n`, in parallel unless sequential.
    fn range(&self, n: usize, f: impl Fn(usize) + Sync + Send) {
        if self.sequential {
            (0..n).for_each(f);
        } else {
            (0..n).into_par_iter().for_each(f);
        }
    }

    /// Runs `body` on this engine's threads: inline when sequential, else inside its pool (or
    /// rayon's global one), so that the `par_*` calls in `body` use them.
    fn on_threads(&self, body: &mut (dyn FnMut() + Send)) {
        match &self.pool {
            _ if self.sequential => body(),
            Some(p) => p.run(body),
            None => body(),
        }
    }

    /// Piece length for element-wise work over `n` values of `A`: ~4 pieces per thread, and at
    /// least 64 KiB so that the hand-off stays well below the work.
    fn piece<A>(&self, n: usize) -> usize {
        n.div_ceil(self.threads() * 4)
            .max(65536 / std::mem::size_of::<A>().max(1))
    }

    /// `f(a_chunk, b_chunk)` over matching pieces of two equally long slices, on this engine's
    /// threads (element-wise conversions at a layer's edges; no allocation).
    pub(crate) fn par_zip<A: Sync, B: Send>(
        &self,
        a: &[A],
        b: &mut [B],
        f: impl Fn(&[A], &mut [B]) + Sync + Send,
    ) {
        assert_eq!(a.len(), b.len(), "par_zip: length mismatch");
        let piece = self.piece::<A>(a.len());
        self.on_threads(&mut || {
            self.chunks(b, piece, |i, bc| f(&a[i * piece..i * piece + bc.len()], bc));
        });
    }

    /// `f` over pieces of `a` and the results folded with `join`, on this engine's threads
    /// (`init` for an empty slice).
    pub(crate) fn par_fold<A: Sync, R: Send + Sync + Copy>(
        &self,
        a: &[A],
        init: R,
        f: impl Fn(&[A]) -> R + Sync + Send,
        join: impl Fn(R, R) -> R + Sync + Send,
    ) -> R {
        let piece = self.piece::<A>(a.len());
        if self.sequential || a.len() <= piece {
            return a.chunks(piece).map(&f).fold(init, &join);
        }
        let mut out = init;
        self.on_threads(&mut || {
            out = a.par_chunks(piece).map(&f).reduce(|| init, &join);
        });
        out
    }

    fn take_scratch(&self) -> Scratch {
        self.scratch
            .lock()
            .map(|mut v| v.pop())
            .ok()
            .flatten()
            .unwrap_or_default()
    }

    fn put_scratch(&self, sc: Scratch) {
        if let Ok(mut v) = self.scratch.lock() {
            v.push(sc);
        }
    }

    /// Drives `row_fn` over every low-res row of every image, in parallel.
    ///
    /// `row_fn(scratch, image_nhwc, y, out)` must fill `out` (the `s` output rows of low-res row
    /// `y`, NHWC, `s·sW·C` values).
    fn run<T: Elem>(
        &self,
        input: &[T],
        shape: Shape,
        scale: usize,
        layout: Layout,
        out: &mut [T],
        store: &Mutex<Vec<T>>,
        row_fn: &RowFn<'_, T>,
    ) {
        let k = self.kernels;
        let (c, h, w, s) = (shape.channels, shape.height, shape.width, scale);
        let (img_len, oplane) = (h * w * c, s * h * s * w);
        let row_out = s * s * w * c;
        let mut local = Vec::new();
        let mut guard = store.try_lock().ok();
        let buf: &mut Vec<T> = guard.as_deref_mut().unwrap_or(&mut local);
        let mut body = || {
            let threads = if self.sequential {
                1
            } else {
                rayon::current_num_threads()
            };
            // ~4 tasks per thread balances load without making tasks too small.
            let tile = h.div_ceil(threads * 4).max(1);
            for b in 0..shape.batch {
                let in_b = &input[b * img_len..(b + 1) * img_len];
                let out_b = &mut out[b * img_len * s * s..(b + 1) * img_len * s * s];
                let img: &[T] = match layout {
                    Layout::Nhwc => in_b,
                    Layout::Nchw => {
                        let _t = tracing::trace_span!("nchw_to_nhwc").entered();
                        // Start the image on a 64-byte boundary: the sampling kernels load whole
                        // channel runs from it, and split-line loads cost ~10% (measured, f32).
                        let size = std::mem::size_of::<T>();
                        let room = 64 / size;
                        let a = (64 - grow(buf, img_len + room).as_ptr() as usize % 64) % 64 / size;
                        let dst = &mut buf[a..a + img_len];
                        let px_chunk = (h * w).div_ceil(threads * 4).max(64);
                        // Blocks of 16 planes × 256 bytes of each: few read streams at once, a
                        // whole line of the destination per pixel from f32 up; the block one
                        // step ahead is prefetched (measured, 256×14400 on AVX2, standalone:
                        // u8 −36%, u16 −38%, f32 −27% against 32 planes × 64 pixels).
                        let bp = 256 / size;
                        self.chunks(dst, px_chunk * c, |t, d| {
                            let (p0, np) = (t * px_chunk, d.len() / c);
                            for pb in (0..np).step_by(bp) {
                                let nb = bp.min(np - pb);
                                for c0 in (0..c).step_by(16) {
                                    let cw = 16.min(c - c0);
                                    if pb + bp < np {
                                        let ahead = in_b[c0 * h * w + p0 + pb + bp..].as_ptr();
                                        for j in 0..cw {
                                            crate::kernels::prefetch_lines(
                                                ahead.wrapping_add(j * h * w),
                                                bp.min(np - pb - bp),
                                            );
                                        }
                                    }
                                    // SAFETY: `d` is exclusively ours; the writes d[p·c + c0 + j]
                                    // (pb ≤ p < pb + nb ≤ np, j < cw) stay inside it.
                                    unsafe {
                                        T::transpose(
                                            k,
                                            &in_b[c0 * h * w + p0 + pb..],
                                            cw,
                                            nb,
                                            h * w,
                                            d.as_mut_ptr().add(pb * c + c0),
                                            c,
                                        )
                                    }
                                }
                            }
                        });
                        &buf[a..a + img_len]
                    }
                };
                match layout {
                    Layout::Nhwc => {
                        self.chunks(out_b, tile * row_out, |t, chunk| {
                            let mut sc = self.take_scratch();
                            for (dy, rows) in chunk.chunks_mut(row_out).enumerate() {
                                row_fn(&mut sc, img, t * tile + dy, Sink::Rows(rows));
                            }
                            self.put_scratch(sc);
                        });
                    }
                    Layout::Nchw => {
                        let dst = SharedOut(out_b.as_mut_ptr());
                        let size = std::mem::size_of::<T>();
                        let stream = T::stream_tile(k).filter(|_| {
                            (oplane * size).is_multiple_of(64)
                                && streams(std::mem::size_of_val(out_b))
                        });
                        self.range(h.div_ceil(tile), |t| {
                            let mut sc = self.take_scratch();
                            for y in t * tile..((t + 1) * tile).min(h) {
                                // Rows y·s .. y·s+s of every plane belong to this task alone.
                                row_fn(
                                    &mut sc,
                                    img,
                                    y,
                                    Sink::Planes {
                                        dst,
                                        plane: oplane,
                                        stream,
                                    },
                                );
                            }
                            close_line(k, &mut sc, dst, oplane);
                            self.put_scratch(sc);
                        });
                    }
                }
            }
        };
        self.on_threads(&mut body);
        self.top_up_scratch();
    }

    /// Tops the scratch pool up to one per thread, copies of the last one returned: which
    /// threads take part in a call varies, so otherwise a thread that first joins in some later
    /// call would create (and grow) a scratch then, in what should be a steady state.
    fn top_up_scratch(&self) {
        let n = self.threads();
        if let Ok(mut v) = self.scratch.lock() {
            if let Some(last) = v.last().filter(|_| v.len() < n).cloned() {
                v.resize(n, last);
            }
        }
    }

    /// f32 layer on f32 data.
    pub(crate) fn forward_f32(
        &self,
        plan: &FloatPlan,
        input: &[f32],
        shape: Shape,
        layout: Layout,
        out: &mut [f32],
    ) {
        let k = self.kernels;
        let row = |sc: &mut Scratch, img: &[f32], y: usize, sink: Sink<'_, f32>| {
            let (w, c) = (shape.width, shape.channels);
            let xrow = &img[y * w * c..(y + 1) * w * c];
            float_offsets(k, plan, xrow, w, sc);
            sample_rows_f32(
                k,
                &plan.cfg,
                shape,
                y,
                sc,
                img,
                k.sample_f32,
                k.sample_f32_nchw,
                sink,
            );
        };
        self.run(
            input,
            shape,
            plan.cfg.scale,
            layout,
            out,
            &self.img_f32,
            &row,
        );
    }

    /// f32 layer on f16 storage.
    pub(crate) fn forward_f16(
        &self,
        plan: &FloatPlan,
        input: &[f16],
        shape: Shape,
        layout: Layout,
        out: &mut [f16],
    ) {
        let k = self.kernels;
        let row = |sc: &mut Scratch, img: &[f16], y: usize, sink: Sink<'_, f16>| {
            let (w, c) = (shape.width, shape.channels);
            let mut xf = std::mem::take(&mut sc.xf);
            (k.cvt_f16_f32)(&img[y * w * c..(y + 1) * w * c], grow(&mut xf, w * c));
            float_offsets(k, plan, &xf[..w * c], w, sc);
            sc.xf = xf;
            sample_rows_f32(
                k,
                &plan.cfg,
                shape,
                y,
                sc,
                img,
                k.sample_f16,
                k.sample_f16_nchw,
                sink,
            );
        };
        self.run(
            input,
            shape,
            plan.cfg.scale,
            layout,
            out,
            &self.img_f16,
            &row,
        );
    }

    /// Integer-only layer on int8 data.
    pub(crate) fn forward_i8(
        &self,
        plan: &IntPlan,
        input: &[i8],
        shape: Shape,
        layout: Layout,
        out: &mut [i8],
    ) {
        let k = self.kernels;
        let row = |sc: &mut Scratch, img: &[i8], y: usize, sink: Sink<'_, i8>| {
            let (w, c) = (shape.width, shape.channels);
            int_offsets(k, plan, &img[y * w * c..(y + 1) * w * c], w, sc);
            sample_rows_i8(k, &plan.qw, shape, y, sc, img, sink);
        };
        self.run(
            input,
            shape,
            plan.qw.cfg.scale,
            layout,
            out,
            &self.img_i8,
            &row,
        );
    }
}

/// Fills `sc.off` with the `2·g·s²` offsets (init_pos included) of each of the row's `w` pixels.
fn float_offsets(k: &Kernels, plan: &FloatPlan, xrow: &[f32], w: usize, sc: &mut Scratch) {
    let cfg = &plan.cfg;
    let (c, s2, o_n) = (cfg.channels, cfg.s2(), cfg.conv_out_channels());
    let oc = cfg.offset_channels();
    let factor = cfg.offset_factor();
    let (x, ld, npix, cin) = match cfg.style {
        Style::Lp => (xrow, c, w, c),
        Style::Pl => {
            // Sub-position ij of pixel x sees channels k·s² + ij: gather them contiguously.
            let cin = c / s2;
            let d = grow(&mut sc.deint_f, w * c);
            for px in 0..w {
                for ij in 0..s2 {
                    for kk in 0..cin {
                        d[(px * s2 + ij) * cin + kk] = xrow[px * c + kk * s2 + ij];
                    }
                }
            }
            (&sc.deint_f[..w * c], cin, w * s2, cin)
        }
    };
    let r = grow(&mut sc.r, npix * o_n);
    (k.conv_f32)(
        ConvIn::new(x, ld, npix, cin),
        &plan.wt_offset,
        Some(&plan.bias),
        o_n,
        r,
    );
    let scope = plan.wt_scope.as_ref().map(|wt| {
        let sv = grow(&mut sc.sc, npix * o_n);
        (k.conv_f32)(ConvIn::new(x, ld, npix, cin), wt, None, o_n, sv);
    });
    if scope.is_some() {
        crate::vmath::mul_sigmoid(&mut sc.r[..npix * o_n], &sc.sc[..npix * o_n]);
    }
    let off = grow(&mut sc.off, w * oc);
    let subs = npix / w;
    for p in 0..npix {
        let (px, ij) = (p / subs, p % subs);
        for o in 0..o_n {
            let ch = if cfg.style == Style::Lp {
                o
            } else {
                o * s2 + ij
            };
            off[px * oc + ch] = sc.r[p * o_n + o] * factor + plan.init_pos[ch];
        }
    }
}

/// Hands the taps of output row `i` (of low-res row `y`) to the right sampling kernel.
#[allow(clippy::too_many_arguments)]
fn emit<T: Elem, P>(
    k: &Kernels,
    tile: &mut Vec<T>,
    open: &mut Option<OpenLine>,
    img: &[T],
    taps: &[P],
    nhwc: fn(&[T], &[P], usize, &mut [T]),
    nchw: Option<SampleNchw<T, P>>,
    (g, cpg, row_len, row_at): (usize, usize, usize, usize),
    i: usize,
    sink: &mut Sink<'_, T>,
) {
    let (dst, plane, stream) = match sink {
        Sink::Rows(rows) => {
            return nhwc(img, taps, cpg, &mut rows[i * row_len..(i + 1) * row_len]);
        }
        Sink::Planes { dst, plane, stream } => (*dst, *plane, *stream),
    };
    if let Some(kernel) = nchw {
        // SAFETY: the engine gives each task exclusive output rows; `row_at` is the first
        // element of row y·s+i in plane 0, and every write stays in the image's planes.
        return unsafe { kernel(img, taps, g, cpg, dst.ptr().add(row_at), plane) };
    }
    // Tiles of one cache line per plane: sample them in NHWC (the fast kernel), then
    // transpose the L1-resident tile into the planes.
    let c = g * cpg;
    let size = std::mem::size_of::<T>();
    let (npx, pb) = (taps.len() / g, NCHW_TILE_BYTES / size);
    let t = grow(tile, pb * c);
    // Pixels up to the row's first line boundary (of every plane, when planes are whole lines
    // apart), so that the tiles' stores do not straddle lines: an output from malloc sits 16
    // bytes past one, and split stores made f32 NCHW ~15% slower than into an aligned buffer
    // (measured).
    let addr = (dst.ptr() as usize).wrapping_add(row_at * size);
    let lead = ((NCHW_TILE_BYTES - addr % NCHW_TILE_BYTES) % NCHW_TILE_BYTES / size).min(npx);
    // Writes pixels `at .. at + n` of every plane from the tile with plain stores.
    // SAFETY (each call): those pixels are this task's (the engine gives each task exclusive
    // output rows; `row_at` is the first element of this output row in plane 0), and they lie
    // inside the image's planes.
    let plain = |t: &[T], at: usize, n: usize| unsafe {
        T::transpose(k, t, n, c, c, dst.ptr().add(at), plane)
    };
    let Some(st) = stream else {
        let mut x0 = 0;
        while x0 < npx {
            let n = if x0 == 0 && lead > 0 { lead } else { pb }.min(npx - x0);
            nhwc(img, &taps[x0 * g..(x0 + n) * g], cpg, &mut t[..n * c]);
            plain(t, row_at + x0, n);
            x0 += n;
        }
        return;
    };
    // Streamed: only whole lines go out with non-temporal stores. A line this task's previous
    // output row left open (its last pixels, already in the tile) is completed first, and
    // this row's last partial line is left open in turn; lines shared with another task's
    // rows are written with plain stores.
    let (mut x0, mut held, mut line_at) = (0, 0, row_at);
    match open.take() {
        Some(o) if o.at + o.n == row_at && o.c == c => (held, line_at) = (o.n, o.at),
        Some(o) => plain(t, o.at, o.n),
        None => {}
    }
    if held == 0 && lead > 0 {
        nhwc(img, &taps[..lead * g], cpg, &mut t[..lead * c]);
        plain(t, row_at, lead);
        (x0, line_at) = (lead, row_at + lead);
    }
    while x0 < npx {
        let n = (pb - held).min(npx - x0);
        nhwc(
            img,
            &taps[x0 * g..(x0 + n) * g],
            cpg,
            &mut t[held * c..(held + n) * c],
        );
        (held, x0) = (held + n, x0 + n);
        if held == pb {
            // SAFETY: a whole line of every plane, this task's (as above: the open part came
            // from this task's previous row), starting on a line boundary (planes are whole
            // lines apart, which `stream` implies).
            unsafe { st(t, c, dst.ptr().add(line_at), plane) };
            (held, line_at) = (0, line_at + pb);
        }
    }
    if held > 0 {
        *open = Some(OpenLine {
            at: line_at,
            n: held,
            c,
        });
    }
}

/// Writes the line a task left open (see [`emit`]) with plain stores, at the end of the task.
fn close_line<T: Elem>(k: &Kernels, sc: &mut Scratch, dst: SharedOut<T>, plane: usize) {
    if let Some(o) = sc.open.take() {
        // SAFETY: pixels o.at .. o.at + o.n of the o.c planes belong to the task that left them
        // open (the caller), and the tile still holds them.
        unsafe { T::transpose(k, T::tile(sc), o.n, o.c, o.c, dst.ptr().add(o.at), plane) }
    }
}

/// Builds the sample points of the `s` output rows of low-res row `y` and samples them.
///
/// All `s` rows go to the kernel in one call: they are contiguous in both layouts, so an NCHW
/// plane gets one run of `s·sW` pixels instead of `s` short ones (fewer write streams to open).
#[allow(clippy::too_many_arguments)]
fn sample_rows_f32<T: Elem>(
    k: &Kernels,
    cfg: &DySampleConfig,
    shape: Shape,
    y: usize,
    sc: &mut Scratch,
    img: &[T],
    nhwc: fn(&[T], &[Tap], usize, &mut [T]),
    nchw: Option<SampleNchw<T, Tap>>,
    mut sink: Sink<'_, T>,
) {
    let (s, g) = (cfg.scale, cfg.groups);
    let (h, w, c) = (shape.height, shape.width, shape.channels);
    let cpg = cfg.channels_per_group();
    let mut tile = std::mem::take(T::tile(sc));
    let taps = grow(&mut sc.taps, s * s * w * g);
    taps_f32(Geometry { w, h, c, s, g }, y, &sc.off, &mut sc.points, taps);
    // Row i's taps follow row i−1's, and so do its values in either layout: one call covers
    // all s rows as a single "row" of s·sW pixels.
    emit(
        k,
        &mut tile,
        &mut sc.open,
        img,
        taps,
        nhwc,
        nchw,
        (g, cpg, s * s * w * c, y * s * s * w),
        0,
        &mut sink,
    );
    *T::tile(sc) = tile;
}

/// Fills `sc.offq` with the Q11 offsets of each of the row's `w` pixels.
fn int_offsets(k: &Kernels, plan: &IntPlan, xrow: &[i8], w: usize, sc: &mut Scratch) {
    let qw = &plan.qw;
    let cfg = &qw.cfg;
    let (c, s2, o_n) = (cfg.channels, cfg.s2(), cfg.conv_out_channels());
    let oc = cfg.offset_channels();
    let (x, ld, npix, cin) = match cfg.style {
        Style::Lp => (xrow, c, w, c),
        Style::Pl => {
            let cin = c / s2;
            let d = grow(&mut sc.deint_q, w * c);
            for px in 0..w {
                for ij in 0..s2 {
                    for kk in 0..cin {
                        d[(px * s2 + ij) * cin + kk] = xrow[px * c + kk * s2 + ij];
                    }
                }
            }
            (&sc.deint_q[..w * c], cin, w * s2, cin)
        }
    };
    let acc = grow(&mut sc.acc, npix * o_n);
    (k.conv_i8)(ConvIn::new(x, ld, npix, cin), &plan.wpack_offset, o_n, acc);
    if let Some(wp) = &plan.wpack_scope {
        let a = grow(&mut sc.acc_s, npix * o_n);
        (k.conv_i8)(ConvIn::new(x, ld, npix, cin), wp, o_n, a);
    }
    let off = grow(&mut sc.offq, w * oc);
    let scope = plan.wpack_scope.as_ref().map(|_| &sc.acc_s[..npix * o_n]);
    qw.offsets_q11(&sc.acc[..npix * o_n], scope, npix, npix / w, off);
}

fn sample_rows_i8(
    k: &Kernels,
    qw: &QuantizedWeights,
    shape: Shape,
    y: usize,
    sc: &mut Scratch,
    img: &[i8],
    mut sink: Sink<'_, i8>,
) {
    let cfg = &qw.cfg;
    let (s, g) = (cfg.scale, cfg.groups);
    let (h, w, c) = (shape.height, shape.width, shape.channels);
    let cpg = cfg.channels_per_group();
    let geo = Geometry { w, h, c, s, g };
    for i in 0..s {
        let taps = grow(&mut sc.tapsq, s * w * g);
        taps_q11(geo, y, i, &sc.offq, &mut sc.points, taps);
        emit(
            k,
            &mut sc.tile_i8,
            &mut sc.open,
            img,
            taps,
            k.sample_i8,
            k.sample_i8_nchw,
            (g, cpg, s * w * c, (y * s + i) * s * w),
            i,
            &mut sink,
        );
    }
}

#[cfg(test)]
mod tests {
    //! NCHW output against NHWC output on every usable backend: rows several NCHW tiles wide
    //! with a partial last tile, channel counts that are no vector multiple, 1 and 2 threads,
    //! and the output at every alignment inside a sentinel-filled buffer.

    use crate::{
        Affine, Backend, BackendChoice, DySample, DySampleConfig, ExecOptions, Layout, QuantParams,
        Shape, Style, Weights,
    };
    use half::f16;
    use rand::{rngs::StdRng, Rng, SeedableRng};

    /// `v` (NHWC, `shape`) in NCHW.
    fn to_nchw<T: Copy + Default>(v: &[T], shape: Shape) -> Vec<T> {
        let mut out = vec![T::default(); v.len()];
        for b in 0..shape.batch {
            for c in 0..shape.channels {
                for y in 0..shape.height {
                    for x in 0..shape.width {
                        out[shape.index(Layout::Nchw, b, c, y, x)] =
                            v[shape.index(Layout::Nhwc, b, c, y, x)];
                    }
                }
            }
        }
        out
    }

    /// Runs `f` into `buf[skew..skew + len]` of a buffer filled with `fill`; checks the rest
    /// stayed `fill` and returns the written part.
    fn guarded<T: Copy + PartialEq + std::fmt::Debug>(
        len: usize,
        skew: usize,
        fill: T,
        f: impl FnOnce(&mut [T]),
    ) -> Vec<T> {
        let mut buf = vec![fill; len + skew + 67];
        f(&mut buf[skew..skew + len]);
        assert!(
            buf[..skew]
                .iter()
                .chain(&buf[skew + len..])
                .all(|v| *v == fill),
            "wrote outside the output"
        );
        buf[skew..skew + len].to_vec()
    }

    #[test]
    fn nchw_tiles_match_nhwc_on_every_backend() {
        let shapes = [
            // (c, g, s, style, h, w): the paper's channels; cpg 40; pl; scale 3; 1-pixel rows.
            (256, 4, 2, Style::Lp, 3, 37),
            (80, 2, 2, Style::Lp, 2, 71),
            (72, 2, 3, Style::Pl, 2, 23),
            (24, 4, 2, Style::Lp, 4, 1),
            // Planes a whole number of lines (f32 up), so the tiles can be streamed: one int8
            // tile per call; channel tails of the 32/64-channel blocks (72); scale 3.
            (256, 4, 2, Style::Lp, 4, 16),
            (72, 2, 2, Style::Pl, 4, 32),
            (40, 2, 3, Style::Lp, 4, 16),
        ];
        let cases = shapes
            .iter()
            .enumerate()
            .flat_map(|e| [(e, false), (e, true)]);
        for ((i, &(c, g, s, style, h, w)), force) in cases {
            super::FORCE_STREAM.store(force, std::sync::atomic::Ordering::Relaxed);
            let cfg = DySampleConfig::new(c, s, style, g, i % 2 == 0).unwrap();
            let wts = Weights::random(&cfg, 0.3, i as u64).unwrap();
            let shape = Shape::new(1, c, h, w);
            let o = shape.upsampled(s);
            let mut rng = StdRng::seed_from_u64(99 + i as u64);
            let x: Vec<f32> = (0..shape.len()).map(|_| rng.gen_range(-2.0..2.0)).collect();
            let xh: Vec<f32> = {
                let mut v = vec![0.0; x.len()];
                for (b, ch, y, xx) in (0..1).flat_map(|b| {
                    (0..c).flat_map(move |ch| {
                        (0..h).flat_map(move |y| (0..w).map(move |xx| (b, ch, y, xx)))
                    })
                }) {
                    v[shape.index(Layout::Nhwc, b, ch, y, xx)] =
                        x[shape.index(Layout::Nchw, b, ch, y, xx)];
                }
                v
            };
            let input = Affine {
                scale: 2.0 / 127.0,
                zero_point: 3,
            };
            let params = QuantParams::new(cfg, input);
            let (mut xq, mut xqh) = (vec![0i8; x.len()], vec![0i8; x.len()]);
            input.quantize_slice(&x, &mut xq);
            input.quantize_slice(&xh, &mut xqh);
            let x16: Vec<f16> = x.iter().map(|&v| f16::from_f32(v)).collect();
            let xh16: Vec<f16> = xh.iter().map(|&v| f16::from_f32(v)).collect();
            for b in Backend::ALL.into_iter().filter(|b| b.kernels().is_ok()) {
                let k = b.kernels().unwrap();
                for threads in [1, 2] {
                    let l = DySample::new(cfg, wts.clone())
                        .unwrap()
                        .with_exec(ExecOptions {
                            backend: BackendChoice::Exact(b),
                            threads: Some(threads),
                        })
                        .unwrap();
                    let skew = (i * 7 + threads * 13) % 64;
                    let n = o.len();
                    let ctx = format!("{b} shape {i} threads {threads}");
                    // f32: identical where the engine tiles, within rounding for fused kernels.
                    let want = to_nchw(
                        &guarded(n, 0, 0.0, |out| {
                            l.forward_slice(&xh, shape.dims(Layout::Nhwc), Layout::Nhwc, out)
                                .unwrap()
                        }),
                        o,
                    );
                    let got = guarded(n, skew, -777.0, |out| {
                        l.forward_slice(&x, shape.dims(Layout::Nchw), Layout::Nchw, out)
                            .unwrap()
                    });
                    let m = want.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
                    let tol = if k.sample_f32_nchw.is_some() {
                        1e-5 * m
                    } else {
                        0.0
                    };
                    for (p, q) in got.iter().zip(&want) {
                        assert!((p - q).abs() <= tol, "{ctx} f32: {p} vs {q}");
                    }
                    // f16.
                    let want = to_nchw(
                        &guarded(n, 0, f16::ZERO, |out| {
                            l.forward_slice_f16(&xh16, shape.dims(Layout::Nhwc), Layout::Nhwc, out)
                                .unwrap()
                        }),
                        o,
                    );
                    let got = guarded(n, skew, f16::from_f32(-777.0), |out| {
                        l.forward_slice_f16(&x16, shape.dims(Layout::Nchw), Layout::Nchw, out)
                            .unwrap()
                    });
                    let tol = if k.sample_f16_nchw.is_some() {
                        1e-2
                    } else {
                        0.0
                    };
                    for (p, q) in got.iter().zip(&want) {
                        assert!(
                            (p.to_f32() - q.to_f32()).abs() <= tol,
                            "{ctx} f16: {p} vs {q}"
                        );
                    }
                    // int8: bit-exact on every path.
                    let lq = l.quantize(&params).unwrap();
                    let want = to_nchw(
                        &guarded(n, 0, 0i8, |out| {
                            lq.forward_slice(&xqh, shape.dims(Layout::Nhwc), Layout::Nhwc, out)
                                .unwrap()
                        }),
                        o,
                    );
                    let got = guarded(n, skew, 0x55i8, |out| {
                        lq.forward_slice(&xq, shape.dims(Layout::Nchw), Layout::Nchw, out)
                            .unwrap()
                    });
                    assert!(got == want, "{ctx} int8 NCHW differs from NHWC");
                }
            }
        }
    }
}
