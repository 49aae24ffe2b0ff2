//! The loop structure of the x86 kernels, written once; each ISA module supplies only vector
//! operations, through the small traits here, and calls these loops from its own
//! `#[target_feature]` leaf.
//!
//! - [`conv_f32`] and [`conv_i8`]: the register-blocked 1x1 convolutions. Columns (outputs) go
//!   in blocks of one or two vectors, pixels in tiles of `MP` rows; every accumulator of a tile
//!   stays in a register across the whole `cin` loop. The ISA gives the vector ([`Lanes`]) and
//!   the multiply-add ([`F32Fma`]) or the 4-byte dot product ([`I8Dot`]).
//!
//! Everything here is `#[inline(always)]`: the loops and the trait methods' intrinsics are
//! compiled inside the calling leaf, with its target features. (A trait method on its own has
//! no target features; called from the leaf it inlines there, and so do its intrinsics.)
//!
//! The trait methods are `unsafe`: they may use their ISA's instructions, so they may only run
//! where those are present, which holds inside the ISA's leaves, their only callers.

use super::tiling::{ConvF32Args, ConvI8Args};
use core::marker::PhantomData;
use core::ptr;

/// A vector of `LANES` 32-bit elements with masked tails: what the convolutions load and store.
///
/// The loops rely on the memory each method touches: `load`/`store` exactly `LANES` elements
/// from `p`, the masked forms only the lanes `mask(n)` selects (`i < n`), never the others.
pub(super) trait Lanes: Copy {
    type Elem: Copy;
    type Mask: Copy;
    const LANES: usize;
    /// Lanes `i < n` selected, for `n ≤ LANES`.
    unsafe fn mask(n: usize) -> Self::Mask;
    unsafe fn zero() -> Self;
    unsafe fn load(p: *const Self::Elem) -> Self;
    /// The selected lanes from `p`, zero elsewhere.
    unsafe fn load_masked(p: *const Self::Elem, m: Self::Mask) -> Self;
    unsafe fn store(p: *mut Self::Elem, v: Self);
    unsafe fn store_masked(p: *mut Self::Elem, m: Self::Mask, v: Self);
}

/// `NV` vectors at `p + LANES·v`; the last one masked when `MASKED`.
///
/// # Safety
/// `L`'s features; those elements readable (of the last vector only the selected lanes when
/// `MASKED`).
#[inline(always)]
pub(super) unsafe fn load_row<L: Lanes, const NV: usize, const MASKED: bool>(
    p: *const L::Elem,
    m: L::Mask,
) -> [L; NV] {
    // SAFETY: L's features are the caller's contract.
    let mut r = [unsafe { L::zero() }; NV];
    for (v, rv) in r.iter_mut().enumerate() {
        // SAFETY: inside the range the caller guarantees; masked-out lanes are not accessed.
        *rv = unsafe {
            let q = p.add(L::LANES * v);
            if MASKED && v + 1 == NV {
                L::load_masked(q, m)
            } else {
                L::load(q)
            }
        };
    }
    r
}

/// Stores the `MP x NV` vectors `acc[p][v]` to `out + p·ld + LANES·v`; the last vector of each
/// row masked when `MASKED`.
///
/// # Safety
/// `L`'s features; those elements writable (the selected lanes of the last vector when
/// `MASKED`).
#[inline(always)]
unsafe fn store_tile<L: Lanes, const MP: usize, const NV: usize, const MASKED: bool>(
    out: *mut L::Elem,
    ld: usize,
    acc: &[[L; NV]; MP],
    m: L::Mask,
) {
    for (p, accp) in acc.iter().enumerate() {
        for (v, &a) in accp.iter().enumerate() {
            // SAFETY: inside the range the caller guarantees; masked-out lanes untouched.
            unsafe {
                let dst = out.add(p * ld + L::LANES * v);
                if MASKED && v + 1 == NV {
                    L::store_masked(dst, m, a);
                } else {
                    L::store(dst, a);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The blocked convolution driver.

/// One register-tiled convolution (a family on one ISA), as [`conv_blocks`] walks it. Pixel
/// tile `p .. p + MP` of column block `o0 .. o0 + NV·LANES` (the last vector masked when
/// `MASKED`) computes `acc = start`, `acc += Σ_k x·w`, and stores `acc`.
///
/// # Safety
/// Given only such blocks inside `npix x o_n` (the masked one selecting columns below `o_n`),
/// `start` and `tile` touch only memory inside the extents the family's entry asserted.
unsafe trait ConvTiles {
    type L: Lanes;
    /// The accumulators' start of a column block, computed once for all its pixel tiles.
    unsafe fn start<const NV: usize, const MASKED: bool>(
        &self,
        o0: usize,
        m: <Self::L as Lanes>::Mask,
    ) -> [Self::L; NV];
    unsafe fn tile<const MP: usize, const NV: usize, const MASKED: bool>(
        &self,
        p: usize,
        o0: usize,
        m: <Self::L as Lanes>::Mask,
        start: &[Self::L; NV],
    );
}

/// Column blocks of two vectors with `MP2`-pixel tiles while they fit, then one of one vector
/// with `MP1`-pixel tiles, then a masked one; within a block, pixel tiles of `MP`, then 4, 2, 1.
/// (`MP · NV` accumulators plus `NV` weight vectors must fit the register file.)
///
/// # Safety
/// `K`'s CPU features.
#[inline(always)]
unsafe fn conv_blocks<K: ConvTiles, const MP2: usize, const MP1: usize>(
    k: &K,
    npix: usize,
    o_n: usize,
) {
    let l = K::L::LANES;
    // SAFETY (all calls): the blocks are inside npix x o_n (ConvTiles' contract); K's features
    // are the caller's contract.
    unsafe {
        let full = K::L::mask(l);
        let mut o0 = 0;
        while o0 + 2 * l <= o_n {
            pixel_tiles::<K, MP2, 2, false>(k, npix, o0, full);
            o0 += 2 * l;
        }
        if o0 + l <= o_n {
            pixel_tiles::<K, MP1, 1, false>(k, npix, o0, full);
            o0 += l;
        }
        if o0 < o_n {
            pixel_tiles::<K, MP1, 1, true>(k, npix, o0, K::L::mask(o_n - o0));
        }
    }
}

/// One column block over all pixels: tiles of `MP`, then 4, 2, 1.
///
/// # Safety
/// As [`conv_blocks`], for a block inside `o_n`.
#[inline(always)]
unsafe fn pixel_tiles<K: ConvTiles, const MP: usize, const NV: usize, const MASKED: bool>(
    k: &K,
    npix: usize,
    o0: usize,
    m: <K::L as Lanes>::Mask,
) {
    // SAFETY (all calls): pixels p .. p + tile are < npix, columns as the caller's block.
    unsafe {
        let start = k.start::<NV, MASKED>(o0, m);
        let mut p = 0;
        while p + MP <= npix {
            k.tile::<MP, NV, MASKED>(p, o0, m, &start);
            p += MP;
        }
        while p + 4 <= npix {
            k.tile::<4, NV, MASKED>(p, o0, m, &start);
            p += 4;
        }
        if p + 2 <= npix {
            k.tile::<2, NV, MASKED>(p, o0, m, &start);
            p += 2;
        }
        if p < npix {
            k.tile::<1, NV, MASKED>(p, o0, m, &start);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// conv_f32: broadcast x, FMA with the packed weight rows.

/// The f32 operations of the convolution on one ISA.
pub(super) trait F32Fma: Lanes<Elem = f32> {
    unsafe fn splat(v: f32) -> Self;
    /// `a·b + c`, fused.
    unsafe fn fma(a: Self, b: Self, c: Self) -> Self;
}

/// A checked `conv_f32` call ([`ConvF32::of`]), run by an ISA's leaf ([`ConvF32::run`]).
pub(super) struct ConvF32<S> {
    x: *const f32,
    ldx: usize,
    npix: usize,
    cin: usize,
    w: *const f32,
    bias: *const f32,
    o_n: usize,
    out: *mut f32,
    isa: PhantomData<S>,
}

// SAFETY: every access is at pixel rows p < npix, columns o0 .. o0 + NV·LANES (masked inside
// o_n) and k < cin, inside the extents `ConvF32::new` asserted.
unsafe impl<S: F32Fma> ConvTiles for ConvF32<S> {
    type L = S;

    #[inline(always)]
    unsafe fn start<const NV: usize, const MASKED: bool>(&self, o0: usize, m: S::Mask) -> [S; NV] {
        if self.bias.is_null() {
            // SAFETY: S's features (caller).
            [unsafe { S::zero() }; NV]
        } else {
            // SAFETY: bias holds o_n values; this block's columns are below o_n.
            unsafe { load_row::<S, NV, MASKED>(self.bias.add(o0), m) }
        }
    }

    #[inline(always)]
    unsafe fn tile<const MP: usize, const NV: usize, const MASKED: bool>(
        &self,
        p: usize,
        o0: usize,
        m: S::Mask,
        start: &[S; NV],
    ) {
        let (ldx, o_n) = (self.ldx, self.o_n);
        // SAFETY: pixel rows p .. p + MP, columns of this block (caller), k < cin.
        unsafe {
            let (x, w) = (self.x.add(p * ldx), self.w.add(o0));
            let mut acc = [*start; MP];
            for k in 0..self.cin {
                let wv = load_row::<S, NV, MASKED>(w.add(k * o_n), m);
                for (p, accp) in acc.iter_mut().enumerate() {
                    let xb = S::splat(*x.add(p * ldx + k));
                    for (a, &wvv) in accp.iter_mut().zip(wv.iter()) {
                        *a = S::fma(xb, wvv, *a);
                    }
                }
            }
            store_tile::<S, MP, NV, MASKED>(self.out.add(p * o_n + o0), o_n, &acc, m);
        }
    }
}

impl<S: F32Fma> ConvF32<S> {
    /// The checked call `a` (from [`super::tiling::check_conv_f32`]) in `S`'s registers.
    #[inline(always)]
    pub(super) fn of(a: &ConvF32Args) -> Self {
        Self {
            x: a.x,
            ldx: a.ld,
            npix: a.npix,
            cin: a.cin,
            w: a.w,
            bias: a.bias,
            o_n: a.o_n,
            out: a.out,
            isa: PhantomData,
        }
    }

    /// `out[p·o_n + o] = bias[o] + Σ_k x[p·ldx + k] · wt[k·o_n + o]`, with column blocks of
    /// `MP2`- and `MP1`-pixel tiles as [`conv_blocks`] says.
    ///
    /// # Safety
    /// `S`'s CPU features (call from the ISA's `#[target_feature]` leaf), and the slices `new`
    /// checked still borrowed.
    #[inline(always)]
    pub(super) unsafe fn run<const MP2: usize, const MP1: usize>(&self) {
        // SAFETY: forwarded contract; `new` asserted the extents every tile touches.
        unsafe { conv_blocks::<_, MP2, MP1>(self, self.npix, self.o_n) }
    }
}

// ---------------------------------------------------------------------------------------------
// conv_i8: per group of 4 input channels, one pixel's 4 bytes broadcast against a packed
// weight vector (4 bytes per output lane), exact i32 sums. The k-tail reads only the bytes
// below cin (the last pixel's row may end the slice); the packed weights are zero past cin.

/// The exact 4-term int8 dot product of one ISA, on vectors `V` of one i32 lane per output.
/// `dot` adds `Σ_{j<4} x_j · w_j` of the lane's bytes exactly (wrapping i32), once `start`
/// accounts for what `pixel` adds to the activations (VNNI biases them to unsigned).
pub(super) trait I8Dot {
    type V: Lanes<Elem = i32>;
    /// A packed weight vector (4 bytes per output lane), as `dot` takes it.
    type W: Copy;
    /// One pixel's 4 activation bytes, broadcast, as `dot` takes them.
    type X: Copy;
    unsafe fn weights(w: Self::V) -> Self::W;
    unsafe fn pixel(x4: i32) -> Self::X;
    unsafe fn dot(acc: Self::V, x: Self::X, w: Self::W) -> Self::V;
    /// The accumulators' start of the column block at `w`: `groups` packed weight rows, `ld`
    /// bytes apart, readable as [`load_row`] reads them.
    unsafe fn start<const NV: usize, const MASKED: bool>(
        w: *const i8,
        groups: usize,
        ld: usize,
        m: <Self::V as Lanes>::Mask,
    ) -> [Self::V; NV];
}

/// Reads `n < 4` bytes into the low bytes of a zeroed i32 (never reads past `p + n`).
///
/// # Safety
/// `p .. p + n` must be readable.
#[inline(always)]
unsafe fn load_partial_i32(p: *const i8, n: usize) -> i32 {
    let mut b = [0u8; 4];
    // SAFETY: the caller guarantees n readable bytes at p; b has room for n <= 4.
    unsafe { ptr::copy_nonoverlapping(p as *const u8, b.as_mut_ptr(), n.min(4)) };
    i32::from_le_bytes(b)
}

struct ConvI8<S> {
    x: *const i8,
    ldx: usize,
    cin: usize,
    w: *const i8,
    o_n: usize,
    out: *mut i32,
    isa: PhantomData<S>,
}

// SAFETY: every access is at pixel rows p < npix (bytes below cin), packed weight groups below
// cin4/4 at columns o0 .. o0 + NV·LANES (masked inside o_n), accumulators p·o_n + o: inside
// the extents `tiling::check_conv_i8` asserted.
unsafe impl<S: I8Dot> ConvTiles for ConvI8<S> {
    type L = S::V;

    #[inline(always)]
    unsafe fn start<const NV: usize, const MASKED: bool>(
        &self,
        o0: usize,
        m: <S::V as Lanes>::Mask,
    ) -> [S::V; NV] {
        // SAFETY: the block's cin4/4 weight groups (caller).
        unsafe { S::start::<NV, MASKED>(self.w.add(4 * o0), self.cin.div_ceil(4), 4 * self.o_n, m) }
    }

    #[inline(always)]
    unsafe fn tile<const MP: usize, const NV: usize, const MASKED: bool>(
        &self,
        p: usize,
        o0: usize,
        m: <S::V as Lanes>::Mask,
        start: &[S::V; NV],
    ) {
        let (ldx, o_n) = (self.ldx, self.o_n);
        let (groups, tail) = (self.cin / 4, self.cin % 4);
        // SAFETY: pixel rows p .. p + MP, this block's columns (caller); bytes below cin.
        unsafe {
            let (x, w) = (self.x.add(p * ldx), self.w.add(4 * o0));
            let mut acc = [*start; MP];
            for g in 0..groups {
                let xd = core::array::from_fn(|p| {
                    ptr::read_unaligned(x.add(p * ldx + 4 * g) as *const i32)
                });
                dot_step::<S, MP, NV, MASKED>(&mut acc, w.add(g * 4 * o_n), m, &xd);
            }
            if tail != 0 {
                let xd =
                    core::array::from_fn(|p| load_partial_i32(x.add(p * ldx + 4 * groups), tail));
                dot_step::<S, MP, NV, MASKED>(&mut acc, w.add(groups * 4 * o_n), m, &xd);
            }
            store_tile::<S::V, MP, NV, MASKED>(self.out.add(p * o_n + o0), o_n, &acc, m);
        }
    }
}

/// One group of 4 input channels: `acc[p] += xd[p] · w` for the `NV` weight vectors at `w`.
/// (A function, not a closure: it must inline into the leaf with the leaf's features.)
///
/// # Safety
/// `S`'s features; `w .. + 4·LANES·NV` readable (the selected dwords of the last vector only
/// when `MASKED`).
#[inline(always)]
unsafe fn dot_step<S: I8Dot, const MP: usize, const NV: usize, const MASKED: bool>(
    acc: &mut [[S::V; NV]; MP],
    w: *const i8,
    m: <S::V as Lanes>::Mask,
    xd: &[i32; MP],
) {
    // SAFETY: the caller guarantees the weight row and S's features.
    unsafe {
        let wv = load_row::<S::V, NV, MASKED>(w as *const i32, m);
        let mut wp = [S::weights(wv[0]); NV];
        for (d, &v) in wp.iter_mut().zip(wv.iter()).skip(1) {
            *d = S::weights(v);
        }
        for (accp, &d) in acc.iter_mut().zip(xd.iter()) {
            let xv = S::pixel(d);
            for (a, &wvv) in accp.iter_mut().zip(wp.iter()) {
                *a = S::dot(*a, xv, wvv);
            }
        }
    }
}

/// `acc[p·o_n + o] = Σ_k x[p·ldx + k] · w[o][k]` exactly (see [`super::ConvI8`]), with column
/// blocks and pixel tiles as [`conv_blocks`] says.
///
/// # Safety
/// `S`'s CPU features; pointers valid for the extents `tiling::check_conv_i8` asserts.
#[inline(always)]
pub(super) unsafe fn conv_i8<S: I8Dot, const MP2: usize, const MP1: usize>(a: &ConvI8Args) {
    let k = ConvI8::<S> {
        x: a.x,
        ldx: a.ld,
        cin: a.cin,
        w: a.w,
        o_n: a.o_n,
        out: a.acc,
        isa: PhantomData,
    };
    // SAFETY: forwarded contract.
    unsafe { conv_blocks::<_, MP2, MP1>(&k, a.npix, a.o_n) }
}

// ---------------------------------------------------------------------------------------------
// NHWC sampling: the walk over one tap's run of channels, shared by the AVX2 and VNNI samplers.
// The ISA gives the chunk (load four corners, blend, store) as a closure defined in its
// `#[target_feature]` leaf, which it inherits.

/// The four corners of a tap, in the order 00, 01, 10, 11: `src + base`, `+ dx`, `+ dy`,
/// `+ dx + dy`.
///
/// # Safety
/// Those addresses lie inside `src`'s allocation (the samplers check the taps first).
#[inline(always)]
pub(super) unsafe fn corners<T>(src: *const T, base: u32, dx: u32, dy: u32) -> [*const T; 4] {
    // SAFETY: the caller's contract.
    unsafe {
        let p00 = src.add(base as usize);
        let p10 = p00.add(dy as usize);
        [p00, p00.add(dx as usize), p10, p10.add(dx as usize)]
    }
}

/// How many taps ahead the NHWC samplers prefetch the corner runs they will read.
pub(super) const TAP_AHEAD: usize = 8;

/// Prefetches into L1 the four corner runs of `run` elements at `ps` (a tap's corners are four
/// lines that are in L2 or L3 at best, and a tap's own loads alone leave the core waiting).
#[inline(always)]
pub(super) fn prefetch_corners<T>(ps: [*const T; 4], run: usize) {
    for p in ps {
        super::prefetch_lines(p, run);
    }
}

/// How far ahead of the store position the NHWC samplers prefetch their output for writing:
/// every output line is fresh, and without the hint each store waits for its
/// read-for-ownership (int8 reference shape: +11%).
const WRITE_AHEAD: usize = 1024;

/// Prefetch-for-write of the `bytes` (a multiple of 64) at `p + WRITE_AHEAD`.
#[inline(always)]
pub(super) fn prefetch_write(p: *const u8, bytes: usize) {
    for k in (0..bytes).step_by(64) {
        // SAFETY: prefetching never faults, whatever the address; SSE is baseline on x86_64.
        unsafe {
            core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_ET0 }>(
                p.wrapping_add(WRITE_AHEAD + k) as *const i8,
            )
        };
    }
}

/// Channels `0 .. cpg` (`cpg ≥ L`) of the output run at `o`, `L` at a time: `chunk(c)` computes
/// and stores channels `c .. c + L`. Steps of `U` chunks (unrolled, so that their independent
/// chains overlap), the output lines ahead prefetched for writing at each 64-byte boundary; then
/// single chunks; then, when channels remain, one chunk at `cpg - L` that overlaps the one
/// before (the same values rewritten, instead of a masked tail).
#[inline(always)]
pub(super) fn channel_chunks<T, const L: usize, const U: usize>(
    o: *const T,
    cpg: usize,
    mut chunk: impl FnMut(usize),
) {
    debug_assert!(cpg >= L);
    let size = core::mem::size_of::<T>();
    let mut c = 0;
    while c + U * L <= cpg {
        if (c * size).is_multiple_of(64) {
            prefetch_write(o.wrapping_add(c) as *const u8, (U * L * size).max(64));
        }
        for j in 0..U {
            chunk(c + j * L);
        }
        c += U * L;
    }
    while c + L <= cpg {
        chunk(c);
        c += L;
    }
    if c < cpg {
        chunk(cpg - L);
    }
}

/// The entry check of an int8 sampler that bounds each tap's reads itself, right before them
/// (`TapQ11::check_reads`): `false` when there is nothing to do; panics unless the output holds
/// `ntaps · cpg` bytes.
pub(super) fn check_sample_out(ntaps: usize, cpg: usize, out_len: usize) -> bool {
    if cpg == 0 || ntaps == 0 {
        return false;
    }
    let olen = ntaps.checked_mul(cpg).expect("sample_i8: output overflows");
    assert!(out_len >= olen, "sample_i8: out too short");
    true
}

/// Whether tap `n` (of `cpg < lanes` channels, far corner at `far` = base + dx + dy) may use
/// whole `lanes`-wide loads and a whole store.
///
/// Small groups (4–8 channels in small models) are common, and copying each run through a
/// stack buffer cost 30–40% of those layers. A whole vector is fine when it stays inside `src`
/// (the lanes past `cpg` are read and dropped) and inside the output run of all the taps
/// (`out_len` = taps · cpg, never the slice's length: past it the caller's data lives): the
/// extra lanes it stores belong to the following taps, written after this one.
#[inline(always)]
pub(super) fn fits(
    far: usize,
    n: usize,
    cpg: usize,
    lanes: usize,
    src_len: usize,
    out_len: usize,
) -> bool {
    far + lanes <= src_len && n * cpg + lanes <= out_len
}

/// A tap of `cpg < L` channels, by `chunk(corners, out)`, which reads `L` elements at each
/// corner and writes `L` at `out`: on `src` and the output directly when `direct` (see
/// [`fits`]), else on zeroed stack copies of the `cpg` elements, of which `cpg` are copied out.
///
/// # Safety
/// `ps[i] .. + cpg` readable and `o .. + cpg` writable; with `direct`, `L` of each.
#[inline(always)]
pub(super) unsafe fn short_tap<T: Copy + Default, const L: usize>(
    ps: [*const T; 4],
    o: *mut T,
    cpg: usize,
    direct: bool,
    chunk: impl FnOnce([*const T; 4], *mut T),
) {
    if direct {
        return chunk(ps, o);
    }
    let mut b = [[T::default(); L]; 4];
    let mut r = [T::default(); L];
    // SAFETY: cpg < L elements are copied from each corner and to o (caller); the chunk works
    // on the L-element stack copies.
    unsafe {
        for (bi, &p) in b.iter_mut().zip(ps.iter()) {
            ptr::copy_nonoverlapping(p, bi.as_mut_ptr(), cpg);
        }
        chunk(b.each_ref().map(|v| v.as_ptr()), r.as_mut_ptr());
        ptr::copy_nonoverlapping(r.as_ptr(), o, cpg);
    }
}
