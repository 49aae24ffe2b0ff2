//! Loop structures shared by every instruction set.
//!
//! An ISA module supplies only register tiles — small `#[target_feature]` leaves that move one
//! `B×B` block — and these drivers walk the matrix: cache blocking, the order of the tiles, and
//! the leftover rows and columns (smaller tiles, then scalar). Bounds are asserted here once,
//! and so are those of the `conv_i8` entries ([`conv_i8_entry!`]).

/// `(n - 1) * ld + len`: the extent of `n` rows of `len` elements spaced `ld` apart.
/// Panics on overflow so a wrapped size can never slip past a bounds check.
pub(super) fn extent(n: usize, ld: usize, len: usize) -> usize {
    if n == 0 {
        return 0;
    }
    (n - 1)
        .checked_mul(ld)
        .and_then(|v| v.checked_add(len))
        .expect("kernel extent overflows usize")
}

/// Asserts what every `stream_tile_*` entry needs (see [`super::StreamTile`]): a source of
/// `pb` pixels × `c` channels, a 64-byte aligned destination and planes a whole number of
/// lines apart. Returns false when there is nothing to write.
#[cfg(target_arch = "x86_64")]
pub(super) fn check_stream_tile(
    src_len: usize,
    c: usize,
    pb: usize,
    dst: usize,
    plane_bytes: usize,
) -> bool {
    assert!(
        src_len >= pb.checked_mul(c).expect("stream_tile: tile size overflows"),
        "stream_tile: src too short"
    );
    assert!(
        dst.is_multiple_of(64) && plane_bytes.is_multiple_of(64),
        "stream_tile: destination lines not 64-byte aligned"
    );
    c > 0
}

/// Side of the cache blocks of the transposes, in elements: source and destination lines are
/// used whole while they are still in L1.
const SUPER: usize = 32;

/// The loop of a tiled transpose: `tile(src_origin, dst_origin)` moves each full `B×B` block,
/// in `SUPER`-sized cache blocks; `edge(src_origin, rows, cols, dst_origin)` gets the two
/// leftover bands (right: full row blocks × the last `cols % B` columns; bottom: the last
/// `rows % B` rows). Inlined into each ISA's `#[target_feature]` function, so the tiles inline.
///
/// # Safety
/// As [`super::Transpose`] with `src` readable for the whole matrix; `tile` and `edge` are only
/// called on origins and sizes inside it, which is what they may rely on.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn tiled<T: Copy, const B: usize>(
    src: *const T,
    rows: usize,
    cols: usize,
    src_ld: usize,
    dst: *mut T,
    dst_ld: usize,
    tile: impl Fn(*const T, *mut T),
    edge: impl Fn(*const T, usize, usize, *mut T),
) {
    let (rb, cb) = (rows / B * B, cols / B * B);
    // At least a cache line of the destination per block row, so each line is finished in one go.
    let sup = SUPER.max(B).max(64 / core::mem::size_of::<T>());
    for r1 in (0..rb).step_by(sup) {
        for c1 in (0..cb).step_by(sup) {
            for r0 in (r1..(r1 + sup).min(rb)).step_by(B) {
                for c0 in (c1..(c1 + sup).min(cb)).step_by(B) {
                    tile(
                        src.wrapping_add(r0 * src_ld + c0),
                        dst.wrapping_add(c0 * dst_ld + r0),
                    );
                }
            }
        }
    }
    if cb < cols && rb > 0 {
        edge(
            src.wrapping_add(cb),
            rb,
            cols - cb,
            dst.wrapping_add(cb * dst_ld),
        );
    }
    if rb < rows {
        edge(
            src.wrapping_add(rb * src_ld),
            rows - rb,
            cols,
            dst.wrapping_add(rb),
        );
    }
}

/// Element-by-element transpose of a `rows × cols` block (the last edge of every transpose).
///
/// # Safety
/// As [`super::Transpose`] for that block, with `src` readable.
pub(super) unsafe fn scalar_block<T: Copy>(
    src: *const T,
    rows: usize,
    cols: usize,
    src_ld: usize,
    dst: *mut T,
    dst_ld: usize,
) {
    for r in 0..rows {
        for c in 0..cols {
            // SAFETY: (r, c) is inside the block on both sides.
            unsafe { *dst.add(c * dst_ld + r) = *src.add(r * src_ld + c) };
        }
    }
}

/// One round of "interleave row i with row i + N/2" over `N` registers, spelled out:
/// `array::from_fn` here compiles to a loop through a stack array (measured: the byte transpose
/// ran at a third of its speed).
#[cfg(target_arch = "x86_64")]
macro_rules! zip_round {
    ($r:ident, $lo:ident, $hi:ident, $h:literal; $($i:literal)*) => {
        [$($lo($r[$i], $r[$i + $h]), $hi($r[$i], $r[$i + $h])),*]
    };
}

/// A whole in-lane transpose by [`zip_round`]s, so that afterwards `r[j]` holds column `j`:
/// `words8` is 8 rows of 8 words (three rounds), `bytes16` 16 rows of 16 bytes (four rounds),
/// per 128-bit lane of whatever vector `$lo`/`$hi` interleave.
#[cfg(target_arch = "x86_64")]
macro_rules! zip_transpose {
    ($r:expr, $lo:ident, $hi:ident, words8) => {{
        let r = $r;
        let r = zip_round!(r, $lo, $hi, 4; 0 1 2 3);
        let r = zip_round!(r, $lo, $hi, 4; 0 1 2 3);
        zip_round!(r, $lo, $hi, 4; 0 1 2 3)
    }};
    ($r:expr, $lo:ident, $hi:ident, bytes16) => {{
        let r = $r;
        let r = zip_round!(r, $lo, $hi, 8; 0 1 2 3 4 5 6 7);
        let r = zip_round!(r, $lo, $hi, 8; 0 1 2 3 4 5 6 7);
        let r = zip_round!(r, $lo, $hi, 8; 0 1 2 3 4 5 6 7);
        zip_round!(r, $lo, $hi, 8; 0 1 2 3 4 5 6 7)
    }};
}

/// Nested [`tiled`] calls: the first tile size covers what it can, each leftover band goes to
/// the next size, and [`scalar_block`] takes what is left.
macro_rules! tile_levels {
    ($s:expr, $r:expr, $c:expr, $sl:expr, $d:expr, $dl:expr;) => {
        $crate::kernels::tiling::scalar_block($s, $r, $c, $sl, $d, $dl)
    };
    ($s:expr, $r:expr, $c:expr, $sl:expr, $d:expr, $dl:expr; ($b:literal, $tile:ident) $(, ($bs:literal, $tiles:ident))*) => {
        $crate::kernels::tiling::tiled::<_, $b>(
            $s, $r, $c, $sl, $d, $dl,
            |s, d| $tile(s, $sl, d, $dl),
            |s, r, c, d| tile_levels!(s, r, c, $sl, d, $dl; $(($bs, $tiles)),*),
        )
    };
}

/// Defines an ISA's transpose table entries from its register tiles (largest first):
/// `transposes!("features"; name: type => [(B, tile), ...], ...)`. Each entry asserts the
/// source extent, then runs the tile loops inside one `#[target_feature]` function.
macro_rules! transposes {
    ($features:literal; $($name:ident: $t:ty => [$(($b:literal, $tile:ident)),*]),* $(,)?) => {$(
        /// # Safety
        /// See [`super::Transpose`].
        unsafe fn $name(
            src: &[$t],
            rows: usize,
            cols: usize,
            src_ld: usize,
            dst: *mut $t,
            dst_ld: usize,
        ) {
            /// # Safety
            /// As the outer function, with `src` readable for the whole matrix.
            #[target_feature(enable = $features)]
            unsafe fn run(
                src: *const $t,
                rows: usize,
                cols: usize,
                src_ld: usize,
                dst: *mut $t,
                dst_ld: usize,
            ) {
                // SAFETY: every tile and edge lies inside the rows x cols matrix (`tiled`).
                unsafe { tile_levels!(src, rows, cols, src_ld, dst, dst_ld; $(($b, $tile)),*) }
            }
            if rows == 0 || cols == 0 {
                return;
            }
            assert!(
                src.len() >= $crate::kernels::tiling::extent(rows, src_ld, cols),
                "transpose: src too short"
            );
            // SAFETY: this module's table is only handed out once its CPU features were
            // detected; src extent asserted; dst validity is the caller's contract.
            unsafe { run(src.as_ptr(), rows, cols, src_ld, dst, dst_ld) }
        }
    )*};
}

/// A checked `conv_f32` call as raw pointers, what every ISA's leaf receives: `npix` rows of
/// `cin` values `ld` apart at `x`, `cin·o_n` packed weights at `w`, `o_n` biases at `bias`
/// (null for none), `npix·o_n` outputs at `out`.
#[derive(Clone, Copy)]
pub(super) struct ConvF32Args {
    pub x: *const f32,
    pub ld: usize,
    pub npix: usize,
    pub cin: usize,
    pub w: *const f32,
    pub bias: *const f32,
    pub o_n: usize,
    pub out: *mut f32,
}

/// Asserts the extents a `conv_f32` call touches (panics naming the short slice) and returns
/// them as [`ConvF32Args`], valid while the slices stay borrowed; `None` when there is nothing
/// to do.
pub(super) fn check_conv_f32(
    src: super::ConvIn<'_, f32>,
    wt: &[f32],
    bias: Option<&[f32]>,
    o_n: usize,
    out: &mut [f32],
) -> Option<ConvF32Args> {
    if src.npix == 0 || o_n == 0 {
        return None;
    }
    check_conv_extents("conv_f32", src, src.cin, wt.len(), o_n, out.len());
    let bias = match bias {
        Some(b) => {
            assert!(b.len() >= o_n, "conv_f32: bias too short");
            b.as_ptr()
        }
        None => core::ptr::null(),
    };
    Some(ConvF32Args {
        x: src.x.as_ptr(),
        ld: src.ld,
        npix: src.npix,
        cin: src.cin,
        w: wt.as_ptr(),
        bias,
        o_n,
        out: out.as_mut_ptr(),
    })
}

/// A checked `conv_i8` call as raw pointers, what every ISA's leaf receives: `npix` rows of
/// `cin` bytes `ld` apart at `x`, `cin4(cin)·o_n` packed weights at `w`, `npix·o_n` sums at
/// `acc`.
#[derive(Clone, Copy)]
pub(super) struct ConvI8Args {
    pub x: *const i8,
    pub ld: usize,
    pub npix: usize,
    pub cin: usize,
    pub w: *const i8,
    pub o_n: usize,
    pub acc: *mut i32,
}

/// Asserts the extents a `conv_i8` call touches and returns them as [`ConvI8Args`], valid
/// while the slices stay borrowed; `None` when there is nothing to do.
pub(super) fn check_conv_i8(
    src: super::ConvIn<'_, i8>,
    wpack: &[i8],
    o_n: usize,
    acc: &mut [i32],
) -> Option<ConvI8Args> {
    if src.npix == 0 || o_n == 0 {
        return None;
    }
    check_conv_extents(
        "conv_i8",
        src,
        super::cin4(src.cin),
        wpack.len(),
        o_n,
        acc.len(),
    );
    Some(ConvI8Args {
        x: src.x.as_ptr(),
        ld: src.ld,
        npix: src.npix,
        cin: src.cin,
        w: wpack.as_ptr(),
        o_n,
        acc: acc.as_mut_ptr(),
    })
}

fn check_conv_extents<T>(
    what: &str,
    src: super::ConvIn<'_, T>,
    wrows: usize,
    wlen: usize,
    o_n: usize,
    olen: usize,
) {
    assert!(
        src.x.len() >= extent(src.npix, src.ld, src.cin),
        "{what}: x too short"
    );
    let need = wrows.checked_mul(o_n).expect("conv weights overflow");
    assert!(wlen >= need, "{what}: weights too short");
    let need = src.npix.checked_mul(o_n).expect("conv output overflows");
    assert!(olen >= need, "{what}: output too short");
}

/// Defines the safe `conv_f32` table entry `$name` around the raw leaf `$leaf(&ConvF32Args)`:
/// the extents are asserted by [`check_conv_f32`], the leaf may touch exactly those, and `$why`
/// says why the leaf's CPU features are present.
macro_rules! conv_f32_entry {
    ($vis:vis $name:ident => $leaf:ident, $why:literal) => {
        $vis fn $name(
            src: $crate::kernels::ConvIn<'_, f32>,
            wt: &[f32],
            bias: Option<&[f32]>,
            o_n: usize,
            out: &mut [f32],
        ) {
            if let Some(a) = $crate::kernels::tiling::check_conv_f32(src, wt, bias, o_n, out) {
                // SAFETY: the leaf's CPU features are present (the reason is this macro's `why`
                // argument at its use site); check_conv_f32 asserted the extents of x (npix rows
                // of cin floats, ld apart), wt (cin·o_n), bias (o_n) and out (npix·o_n), and the
                // slices stay borrowed for the call.
                unsafe { $leaf(&a) }
            }
        }
    };
}

/// Defines the safe `conv_i8` table entry `$name` around the raw leaf `$leaf(&ConvI8Args)`, as
/// [`conv_f32_entry!`] does for f32.
macro_rules! conv_i8_entry {
    ($vis:vis $name:ident => $leaf:ident, $why:literal) => {
        $vis fn $name(
            src: $crate::kernels::ConvIn<'_, i8>,
            wpack: &[i8],
            o_n: usize,
            acc: &mut [i32],
        ) {
            if let Some(a) = $crate::kernels::tiling::check_conv_i8(src, wpack, o_n, acc) {
                // SAFETY: the leaf's CPU features are present (the reason is this macro's `why`
                // argument at its use site); check_conv_i8 asserted the extents of x (npix rows
                // of cin bytes, ld apart), wpack (cin4·o_n) and acc (npix·o_n), all it touches,
                // and the slices stay borrowed for the call.
                unsafe { $leaf(&a) }
            }
        }
    };
}
