//! Loop structures shared by the AArch64 modules ([`neon`](super::neon),
//! [`neon_dotprod`](super::neon_dotprod), [`neon_fp16`](super::neon_fp16)).
//!
//! Each kernel family's walk over its data — register blocks and their tails for the 1×1 conv,
//! the tap loop of NHWC sampling, the pixel × channel tiles of fused NCHW sampling — is written
//! here once; an ISA module supplies only its vector operations: a [`DotI8`] step, a
//! [`ConvBlocks`] block, or the closures that sample one tap and store one transposed tile.
//!
//! The loops are `#[inline(always)]`: each is compiled inside the calling ISA's
//! `#[target_feature]` leaf, with that leaf's features, and never stands alone (so no vector
//! code runs outside a leaf whose features were detected). The leaves themselves and the safe
//! table entries around them are stamped out by [`conv_i8_leaf!`], [`sample_nhwc_entry!`] and
//! [`sample_nchw_entry!`], so each ISA file holds only its arithmetic.

use super::{Tap, TapQ11};
use core::arch::aarch64::*;
use core::marker::PhantomData;

// ---------------------------------------------------------------------------------------------
// Sample points.

/// The source offsets of a sample point's four corners: `base`, `+dx`, `+dy`, `+dx+dy`.
pub(super) trait Corners {
    fn offsets(&self) -> (u32, u32, u32);
}

impl Corners for Tap {
    #[inline(always)]
    fn offsets(&self) -> (u32, u32, u32) {
        (self.base, self.dx, self.dy)
    }
}

impl Corners for TapQ11 {
    #[inline(always)]
    fn offsets(&self) -> (u32, u32, u32) {
        (self.base, self.dx, self.dy)
    }
}

/// Panics unless every tap's four `cpg`-runs lie inside a source of `src_len` elements (the
/// bound the SIMD loops rely on).
pub(super) fn check_taps<W: Corners>(src_len: usize, taps: &[W], cpg: usize) {
    for t in taps {
        let (b, dx, dy) = t.offsets();
        let end = b as usize + dx as usize + dy as usize + cpg;
        assert!(
            end <= src_len,
            "sample tap reads {end} elements of a {src_len}-element source"
        );
    }
}

/// Asserts what an NHWC sampling leaf relies on: the taps' reads, and `out` holding
/// `taps.len()·cpg` values.
pub(super) fn check_nhwc<W: Corners>(src_len: usize, taps: &[W], cpg: usize, out_len: usize) {
    assert!(out_len >= taps.len() * cpg);
    check_taps(src_len, taps, cpg);
}

/// Asserts what a fused NCHW sampling leaf relies on; returns false when there is nothing to
/// write.
pub(super) fn check_nchw<W: Corners>(src_len: usize, taps: &[W], g: usize, cpg: usize) -> bool {
    if taps.is_empty() || cpg == 0 {
        return false;
    }
    assert!(g > 0, "sample_*_nchw with g = 0");
    check_taps(src_len, taps, cpg);
    true
}

/// The four corner pointers of a tap at channel 0.
///
/// # Safety
/// The corners must lie inside the allocation of `src` (checked by [`check_taps`]).
#[inline(always)]
unsafe fn corner_ptrs<T>(src: *const T, (base, dx, dy): (u32, u32, u32)) -> [*const T; 4] {
    // SAFETY: the caller's bound.
    unsafe {
        let p00 = src.add(base as usize);
        let p10 = p00.add(dy as usize);
        [p00, p00.add(dx as usize), p10, p10.add(dx as usize)]
    }
}

/// The loop of an NHWC sampling leaf: `body(tap, corners, out)` for every tap `n`, with its four
/// corner pointers at channel 0 and `out + n·cpg`; `body` samples the `cpg` channels.
///
/// # Safety
/// [`check_nhwc`] passed for these buffers, so `body` may read `cpg` values at each corner and
/// write `cpg` at `out`.
#[inline(always)]
pub(super) unsafe fn each_tap<T, W: Corners>(
    src: *const T,
    taps: &[W],
    cpg: usize,
    out: *mut T,
    mut body: impl FnMut(&W, [*const T; 4], *mut T),
) {
    for (n, t) in taps.iter().enumerate() {
        // SAFETY: the taps and `out` were checked by check_nhwc.
        let (p, o) = unsafe { (corner_ptrs(src, t.offsets()), out.add(n * cpg)) };
        body(t, p, o);
    }
}

/// The channel loop of one NHWC tap: `wide(c)` for each run of `W` channels from `c`, `half(c)`
/// once if `W / 2` more fit, then `rest(c)` once if fewer than `W / 2` are left (a scalar loop,
/// or a zero-padded vector).
#[inline(always)]
pub(super) fn channel_runs<const W: usize>(
    cpg: usize,
    mut wide: impl FnMut(usize),
    half: impl FnOnce(usize),
    rest: impl FnOnce(usize),
) {
    let mut c = 0;
    while c + W <= cpg {
        wide(c);
        c += W;
    }
    if c + W / 2 <= cpg {
        half(c);
        c += W / 2;
    }
    if c < cpg {
        rest(c);
    }
}

/// Gives a per-tap closure the argument types of [`each_tap`]'s `body`, so that it can be
/// built outside the leaf's `unsafe` block (its own `unsafe` blocks then say what it does).
#[inline(always)]
pub(super) fn tap_fn<T, W, F: FnMut(&W, [*const T; 4], *mut T)>(f: F) -> F {
    f
}

/// The four corner pointers of a tap at channel `c`, ready for `W`-lane loads. When such a load
/// would run past the source's `len` elements (a channel tail of a tap at the end of the image),
/// the `rem` real channels are copied into `buf` and the pointers point there instead; the other
/// lanes of `buf` hold stale but initialised values, whose results are never stored.
///
/// # Safety
/// `src..src+len` readable and `base + dx + dy + c + rem <= len`, `rem <= W`.
#[inline(always)]
unsafe fn corners<T: Copy, const W: usize>(
    src: *const T,
    len: usize,
    (base, dx, dy): (u32, u32, u32),
    c: usize,
    rem: usize,
    buf: &mut [[T; W]; 4],
) -> [*const T; 4] {
    let b = base as usize + c;
    // SAFETY: the last corner is the farthest (dx, dy are unsigned); the fast path reads
    // W ≤ len − (b + dx + dy) elements from each, the slow path `rem` (caller's bound).
    unsafe {
        let p = corner_ptrs(src.add(c), (base, dx, dy));
        if b + dx as usize + dy as usize + W <= len {
            p
        } else {
            for (bk, &pk) in buf.iter_mut().zip(&p) {
                for i in 0..rem {
                    bk[i] = *pk.add(i);
                }
            }
            [
                buf[0].as_ptr(),
                buf[1].as_ptr(),
                buf[2].as_ptr(),
                buf[3].as_ptr(),
            ]
        }
    }
}

/// The loop of a fused NCHW sampling leaf. The engine hands over one output row; tap
/// `n = X·g + q` goes to `dst[(q·cpg + c)·plane + X]`. Per group `q`, tiles of `PX` pixels ×
/// `CH` channels: `prep(tap)` builds a tap's constants (its weight vectors) once per pixel tile,
/// `pixel(corners, &prep)` samples `CH` channels of one pixel exactly as the NHWC kernel does,
/// and `store(tile, d, np, nch)` transposes the `PX` pixel vectors in registers and writes the
/// first `np` pixels of channel rows `j < nch` at `d + j·plane`. A short pixel tile repeats its
/// last tap (valid reads) and stores only its real pixels; a short channel tile computes full
/// vectors from [`corners`] and stores only its real channel rows.
///
/// # Safety
/// [`check_nchw`] passed for `src` (`len` elements) and `taps`; `dst` is writable at every
/// `(q·cpg + c)·plane + X`, `q < g`, `c < cpg`, `X < taps.len() / g`, which is all `store` may
/// be asked to write.
#[inline(always)]
pub(super) unsafe fn nchw_tiles<T, W, P, V: Copy, const PX: usize, const CH: usize>(
    src: *const T,
    len: usize,
    taps: &[W],
    g: usize,
    cpg: usize,
    dst: *mut T,
    plane: usize,
    prep: impl Fn(&W) -> P,
    pixel: impl Fn([*const T; 4], &P) -> V,
    store: impl Fn([V; PX], *mut T, usize, usize),
) where
    T: Copy + Default,
    W: Corners,
{
    let npx = taps.len() / g;
    let mut buf = [[[T::default(); CH]; 4]; PX];
    for q in 0..g {
        let mut x = 0;
        while x < npx {
            let np = (npx - x).min(PX);
            let t: [&W; PX] = core::array::from_fn(|k| &taps[(x + k.min(np - 1)) * g + q]);
            let pre = t.map(&prep);
            let mut c = 0;
            while c < cpg {
                let rem = (cpg - c).min(CH);
                // No closure here: one without the leaf's features could not inline `pixel`.
                // SAFETY (corners): the taps were checked (check_nchw) and rem ≤ cpg − c.
                let p = unsafe { corners(src, len, t[0].offsets(), c, rem, &mut buf[0]) };
                let mut v = [pixel(p, &pre[0]); PX];
                for k in 1..PX {
                    let p = unsafe { corners(src, len, t[k].offsets(), c, rem, &mut buf[k]) };
                    v[k] = pixel(p, &pre[k]);
                }
                // SAFETY: channel rows c + j < cpg and pixels x + i < npx: the caller's bound.
                store(v, unsafe { dst.add((q * cpg + c) * plane + x) }, np, rem);
                c += CH;
            }
            x += PX;
        }
    }
}

/// Gives the closures of [`nchw_tiles`] their argument types, as [`tap_fn`] does for
/// [`each_tap`].
#[inline(always)]
pub(super) fn tile_fns<T, W, P, V: Copy, const PX: usize, A, B, C>(
    prep: A,
    pixel: B,
    store: C,
) -> (A, B, C)
where
    A: Fn(&W) -> P,
    B: Fn([*const T; 4], &P) -> V,
    C: Fn([V; PX], *mut T, usize, usize),
{
    (prep, pixel, store)
}

/// Stores channel rows `j < nch` of a transposed tile at `d + j·plane`: each whole (`np == N`
/// pixels) with `st`, or its first `np` pixels through a stack copy.
///
/// # Safety
/// Those `nch × np` elements of `d` writable; `st(p, row)` writes `N` elements at `p`.
#[inline(always)]
pub(super) unsafe fn store_rows<T: Copy + Default, R: Copy, const N: usize>(
    rows: &[R],
    d: *mut T,
    plane: usize,
    np: usize,
    nch: usize,
    st: impl Fn(*mut T, R),
) {
    // SAFETY: row j < nch, pixels < np ≤ N: the caller's bound.
    unsafe {
        for (j, &row) in rows.iter().enumerate().take(nch) {
            let dj = d.add(j * plane);
            if np == N {
                st(dj, row);
            } else {
                let mut t = [T::default(); N];
                st(t.as_mut_ptr(), row);
                core::ptr::copy_nonoverlapping(t.as_ptr(), dj, np.min(N));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 1×1 convolution: register blocks of NP pixels × NG groups of 4 outputs.

/// A register-blocked conv as the shared ladder sees it.
pub(super) trait ConvBlocks {
    /// Pixels `p0..p0+NP` × outputs `o0..o0+4·NG`.
    ///
    /// # Safety
    /// Those pixels and outputs exist (`p0 + NP ≤ npix`, `o0 + 4·NG ≤ o_n`).
    unsafe fn block<const NP: usize, const NG: usize>(&self, p0: usize, o0: usize);
    /// Output `o` of pixel `p` alone: the `o_n % 4` outputs have no full vector of weights.
    ///
    /// # Safety
    /// `p < npix`, `o < o_n`.
    unsafe fn single(&self, p: usize, o: usize);
}

/// The blocking of every 1×1 conv: pixels by 4, then one at a time; per pixel block, outputs
/// in blocks of `NG` groups of 4 (as many accumulators as the ISA's registers hold), one
/// smaller block for the remaining groups, then the `o_n % 4` single outputs.
///
/// # Safety
/// `k`'s buffers hold `npix` pixels × `o_n` outputs.
#[inline(always)]
pub(super) unsafe fn conv_blocks<K: ConvBlocks, const NG: usize>(k: &K, npix: usize, o_n: usize) {
    // SAFETY: every block and single output lies inside npix × o_n.
    unsafe {
        let mut p = 0;
        while p + 4 <= npix {
            conv_row_blocks::<K, 4, NG>(k, p, o_n);
            p += 4;
        }
        while p < npix {
            conv_row_blocks::<K, 1, NG>(k, p, o_n);
            p += 1;
        }
    }
}

/// # Safety
/// As [`conv_blocks`], with `p0 + NP ≤ npix`.
#[inline(always)]
unsafe fn conv_row_blocks<K: ConvBlocks, const NP: usize, const NG: usize>(
    k: &K,
    p0: usize,
    o_n: usize,
) {
    const { assert!(matches!(NG, 1..=4)) };
    // SAFETY: o + 4·ng ≤ o_n for every block below, o < o_n for the singles.
    unsafe {
        let mut o = 0;
        while o + 4 * NG <= o_n {
            k.block::<NP, NG>(p0, o);
            o += 4 * NG;
        }
        // Fewer than NG groups are left.
        match (o_n - o) / 4 {
            3 if NG > 3 => k.block::<NP, 3>(p0, o),
            2 if NG > 2 => k.block::<NP, 2>(p0, o),
            1 => k.block::<NP, 1>(p0, o),
            _ => {}
        }
        o += (o_n - o) / 4 * 4;
        for oo in o..o_n {
            for p in p0..p0 + NP {
                k.single(p, oo);
            }
        }
    }
}

/// An ISA's int8 multiply-accumulate for [`ConvI8`]: 16 weight bytes (4 outputs × 4 input
/// channels, the [`pack_conv_i8`](super::pack_conv_i8) order) times one pixel's 4 input bytes,
/// broadcast to every output.
pub(super) trait DotI8 {
    /// The running sums of 4 outputs, possibly not yet reduced to one i32 each.
    type Acc: Copy;
    fn zero() -> Self::Acc;
    /// `acc` plus, for each output i, `Σ_j w[4i+j]·x[4i+j]`, exactly.
    ///
    /// # Safety
    /// Only inside a leaf with the ISA's features.
    unsafe fn step(acc: Self::Acc, w: int8x16_t, x: int8x16_t) -> Self::Acc;
    /// The 4 i32 sums.
    fn finish(acc: Self::Acc) -> int32x4_t;
}

/// The buffers of one `conv_i8` call (the arguments of [`super::ConvI8`] as raw pointers); `D`
/// does the arithmetic.
pub(super) struct ConvI8<D> {
    pub(super) x: *const i8,
    pub(super) ldx: usize,
    pub(super) cin: usize,
    pub(super) w: *const i8,
    pub(super) o_n: usize,
    pub(super) acc: *mut i32,
    pub(super) dot: PhantomData<D>,
}

impl<D: DotI8> ConvBlocks for ConvI8<D> {
    /// NP pixels × NG groups of 4 outputs: one `D::step` per (pixel, group) per 4 input channels.
    #[inline(always)]
    unsafe fn block<const NP: usize, const NG: usize>(&self, p0: usize, o0: usize) {
        let (ldx, cin, w, o_n) = (self.ldx, self.cin, self.w, self.o_n);
        // SAFETY: weight group g covers bytes (g*o_n + o0)*4 .. +16*NG <= cin4*o_n; x groups are
        // whole 4-byte reads inside the row; the tail goes through ktail4, never past a row's
        // `cin` bytes; the stores are outputs o0..o0+4·NG of pixels p0..p0+NP.
        unsafe {
            let x = self.x.add(p0 * ldx);
            let mut a = [[D::zero(); NG]; NP];
            // One group of 4 input channels; `$xg(row)` gives the pixel's 4 bytes.
            macro_rules! group {
                ($g:expr, $xg:expr) => {
                    let wr = w.add(($g * o_n + o0) * 4);
                    let mut wv = [vdupq_n_s8(0); NG];
                    for j in 0..NG {
                        wv[j] = vld1q_s8(wr.add(16 * j));
                    }
                    for p in 0..NP {
                        let xb = vreinterpretq_s8_u32(vdupq_n_u32($xg(x.add(p * ldx))));
                        for j in 0..NG {
                            a[p][j] = D::step(a[p][j], wv[j], xb);
                        }
                    }
                };
            }
            for g in 0..cin / 4 {
                group!(g, |row: *const i8| dup4(row.add(4 * g)));
            }
            // Tail group outside the hot loop, so the accumulators stay in registers.
            if !cin.is_multiple_of(4) {
                group!(cin / 4, |row| ktail4(row, cin));
            }
            let acc = self.acc.add(p0 * o_n + o0);
            for p in 0..NP {
                for j in 0..NG {
                    vst1q_s32(acc.add(p * o_n + 4 * j), D::finish(a[p][j]));
                }
            }
        }
    }

    #[inline(always)]
    unsafe fn single(&self, p: usize, o: usize) {
        let (cin, o_n) = (self.cin, self.o_n);
        // SAFETY: row p holds cin bytes; the packed index is < cin4(cin)·o_n; output (p, o).
        unsafe {
            let row = self.x.add(p * self.ldx);
            let mut s = 0i32;
            for k in 0..cin {
                s += *row.add(k) as i32 * *self.w.add((k / 4) * o_n * 4 + o * 4 + k % 4) as i32;
            }
            *self.acc.add(p * o_n + o) = s;
        }
    }
}

// The int8 conv builds a u32 from 4 bytes and broadcasts it as lanes of bytes in memory order,
// which holds on little-endian only (every aarch64 Linux target we ship).
const _: () = assert!(cfg!(target_endian = "little"));

/// 4 bytes at `p` (any alignment) as one u32, in memory order.
///
/// # Safety
/// `p..p+4` must be readable.
#[inline(always)]
unsafe fn dup4(p: *const i8) -> u32 {
    // SAFETY: the caller guarantees 4 readable bytes; read_unaligned has no alignment need.
    unsafe { (p as *const u32).read_unaligned() }
}

/// The last `cin % 4` (≥ 1) bytes of a row, zero-padded to 4: rows are not padded, so never read
/// past them. Built with shifts rather than a copy loop so no `memcpy` call ends up between the
/// accumulators (a call would force them to the stack).
///
/// # Safety
/// `row..row+cin` must be readable.
#[inline(always)]
unsafe fn ktail4(row: *const i8, cin: usize) -> u32 {
    let r = cin % 4;
    // SAFETY: bytes k0 .. k0 + r are the last ones of the row.
    unsafe {
        let t = row.add(cin - r);
        let mut v = *t as u8 as u32;
        if r > 1 {
            v |= (*t.add(1) as u8 as u32) << 8;
        }
        if r > 2 {
            v |= (*t.add(2) as u8 as u32) << 16;
        }
        v
    }
}

/// Defines an ISA's `conv_i8` leaf `$leaf` (the raw function behind [`conv_i8_entry!`]):
/// [`conv_blocks`] over [`ConvI8`] with `$dot`'s step and at most `$ng` groups of 4 outputs per
/// block, compiled with `$features`.
macro_rules! conv_i8_leaf {
    ($features:literal, $leaf:ident, $dot:ty, $ng:literal) => {
        /// # Safety
        /// The extents that `check_conv_i8` asserts, on a CPU with this leaf's features.
        #[target_feature(enable = $features)]
        unsafe fn $leaf(a: &$crate::kernels::tiling::ConvI8Args) {
            use $crate::kernels::arm_loops::{conv_blocks, ConvI8};
            let dot = core::marker::PhantomData;
            let k = ConvI8::<$dot> {
                x: a.x,
                ldx: a.ld,
                cin: a.cin,
                w: a.w,
                o_n: a.o_n,
                acc: a.acc,
                dot,
            };
            // SAFETY: the caller's extents are those conv_blocks walks.
            unsafe { conv_blocks::<_, $ng>(&k, a.npix, a.o_n) }
        }
    };
}

// ---------------------------------------------------------------------------------------------
// Sampling entries: the safe (NHWC) or checked (NCHW) table entry, its one `#[target_feature]`
// leaf and the shared loop, around an ISA's vector code.

/// Defines the NHWC sampling table entry `pub fn $name(src: &[$t], taps: &[$tap], cpg, out:
/// &mut [$t])`: [`check_nhwc`], then a `#[target_feature(enable = $features)]` leaf that runs
/// [`each_tap`] on `$raw` pointers with `$body` as the per-tap closure `|tap, corners, out|`
/// (`$cpg` names the channel count inside it). `$why` says why the features are present.
macro_rules! sample_nhwc_entry {
    ($(#[$attr:meta])* $name:ident($t:ty as $raw:ty, $tap:ty), $features:literal, $why:literal,
     $cpg:ident, $body:expr $(,)?) => {
        $(#[$attr])*
        pub fn $name(src: &[$t], taps: &[$tap], cpg: usize, out: &mut [$t]) {
            /// # Safety
            /// `check_nhwc` passed for these buffers, on a CPU with this leaf's features.
            #[target_feature(enable = $features)]
            unsafe fn leaf(src: *const $raw, taps: &[$tap], $cpg: usize, out: *mut $raw) {
                let body = $crate::kernels::arm_loops::tap_fn::<$raw, $tap, _>($body);
                // SAFETY: the caller's checks are each_tap's contract.
                unsafe { $crate::kernels::arm_loops::each_tap(src, taps, $cpg, out, body) }
            }
            $crate::kernels::arm_loops::check_nhwc(src.len(), taps, cpg, out.len());
            // SAFETY: the reads and writes were checked above; the leaf's features are present
            // (`$why` at the use site); the element types are the same size (f16 is a u16).
            unsafe {
                leaf(
                    src.as_ptr() as *const $raw,
                    taps,
                    cpg,
                    out.as_mut_ptr() as *mut $raw,
                )
            }
        }
    };
}

/// Defines the fused NCHW sampling table entry `pub unsafe fn $name(src, taps, g, cpg, dst,
/// plane)` (see [`SampleNchw`](super::SampleNchw)): [`check_nchw`], then a `#[target_feature]`
/// leaf that runs [`nchw_tiles`] with `PX × CH` tiles and the ISA's `prep`, `pixel` and `store`
/// closures (`$plane` names the plane stride inside them).
macro_rules! sample_nchw_entry {
    ($(#[$attr:meta])* $name:ident($t:ty as $raw:ty, $tap:ty), $features:literal, $why:literal,
     tile: [$px:literal, $ch:literal], $plane:ident, prep: $prep:expr, pixel: $pixel:expr,
     store: $store:expr $(,)?) => {
        $(#[$attr])*
        /// # Safety
        /// See [`SampleNchw`](crate::kernels::SampleNchw): `dst` must be writable at
        /// `(q·cpg + c)·plane + X` for `q < g`, `c < cpg`, `X < taps.len() / g`, and no other
        /// thread may access those elements during the call. Nothing else is written (trailing
        /// taps beyond a multiple of `g` are ignored).
        pub unsafe fn $name(
            src: &[$t],
            taps: &[$tap],
            g: usize,
            cpg: usize,
            dst: *mut $t,
            plane: usize,
        ) {
            /// # Safety
            /// `check_nchw` passed and `dst` is as the entry's contract says, on a CPU with this
            /// leaf's features.
            #[target_feature(enable = $features)]
            unsafe fn leaf(
                src: *const $raw,
                len: usize,
                taps: &[$tap],
                g: usize,
                cpg: usize,
                dst: *mut $raw,
                $plane: usize,
            ) {
                use $crate::kernels::arm_loops::{nchw_tiles, tile_fns};
                let (prep, pixel, store) = tile_fns::<$raw, $tap, _, _, $px, _, _, _>($prep, $pixel, $store);
                // SAFETY: the caller's checks and contract are nchw_tiles' contract.
                unsafe {
                    nchw_tiles::<_, _, _, _, $px, $ch>(
                        src, len, taps, g, cpg, dst, $plane, prep, pixel, store,
                    )
                }
            }
            if $crate::kernels::arm_loops::check_nchw(src.len(), taps, g, cpg) {
                // SAFETY: tap reads checked above, dst writes are the caller's contract; the
                // leaf's features are present (`$why` at the use site); the element types are
                // the same size (f16 is a u16).
                unsafe {
                    leaf(
                        src.as_ptr() as *const $raw,
                        src.len(),
                        taps,
                        g,
                        cpg,
                        dst as *mut $raw,
                        plane,
                    )
                }
            }
        }
    };
}
