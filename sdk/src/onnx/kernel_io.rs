//! A custom kernel's input and output tensors through ONNX Runtime's C API, without allocating.
//!
//! `ort`'s `ComputeContext::input`/`::output` wrap each tensor in a new `Value` (a heap object
//! per call), and its shape in a `Vec`; a DySample node runs every frame, so the kernel reads
//! its tensors here instead: dims on the stack (rank ≤ [`MAX_RANK`]), data as slices borrowed
//! from ORT for the duration of the `compute` call.

use ort::operator::ComputeContext;
use ort::value::{PrimitiveTensorElementType, TensorElementType};
use ort::AsPointer;
use std::ptr::{self, NonNull};

/// The highest tensor rank read; DySample needs 4, so anything above is refused, not truncated.
pub(crate) const MAX_RANK: usize = 8;

/// A tensor's dims, on the stack.
#[derive(Clone, Copy)]
pub(crate) struct Dims {
    len: usize,
    d: [i64; MAX_RANK],
}

impl Dims {
    pub(crate) fn as_slice(&self) -> &[i64] {
        &self.d[..self.len]
    }
}

/// Why a tensor could not be read (`Display` follows "input X: ").
pub(crate) enum IoError {
    /// The C API failed.
    Ort(ort::Error),
    /// More than [`MAX_RANK`] dims.
    Rank(usize),
    /// Not the registered element type.
    Type {
        want: TensorElementType,
        got: TensorElementType,
    },
    /// Negative dims, or more elements than memory holds.
    Shape(Dims),
}

impl std::fmt::Display for IoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Ort(e) => write!(f, "{e}"),
            Self::Rank(n) => write!(f, "{n} dims, more than the {MAX_RANK} this kernel reads"),
            Self::Type { want, got } => write!(f, "element type {got}, expected {want}"),
            Self::Shape(d) => write!(f, "invalid shape {:?}", d.as_slice()),
        }
    }
}

impl From<ort::Error> for IoError {
    fn from(e: ort::Error) -> Self {
        Self::Ort(e)
    }
}

fn status(s: ort::sys::OrtStatusPtr) -> Result<(), IoError> {
    // SAFETY: `s` was just returned by an ORT API call (null = success).
    unsafe { ort::Error::result_from_status(s) }.map_err(IoError::Ort)
}

/// Element type and dims of `value`.
fn type_and_dims(value: *const ort::sys::OrtValue) -> Result<(TensorElementType, Dims), IoError> {
    let api = ort::api();
    let mut info: *mut ort::sys::OrtTensorTypeAndShapeInfo = ptr::null_mut();
    // SAFETY: `value` is a live OrtValue of this compute call; `info` is an out pointer.
    status(unsafe { (api.GetTensorTypeAndShape)(value, &mut info) })?;
    let Some(info) = NonNull::new(info) else {
        return Err(ort::Error::new("GetTensorTypeAndShape returned null").into());
    };
    // Released on every path below, once.
    struct Release(NonNull<ort::sys::OrtTensorTypeAndShapeInfo>);
    impl Drop for Release {
        fn drop(&mut self) {
            // SAFETY: created by GetTensorTypeAndShape above, released only here.
            unsafe { (ort::api().ReleaseTensorTypeAndShapeInfo)(self.0.as_ptr()) }
        }
    }
    let info = Release(info);
    let mut elem = ort::sys::ONNXTensorElementDataType::ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;
    // SAFETY: `info` is live; `elem` is an out pointer.
    status(unsafe { (api.GetTensorElementType)(info.0.as_ptr(), &mut elem) })?;
    let mut rank = 0usize;
    // SAFETY: as above.
    status(unsafe { (api.GetDimensionsCount)(info.0.as_ptr(), &mut rank) })?;
    if rank > MAX_RANK {
        return Err(IoError::Rank(rank));
    }
    let mut dims = Dims {
        len: rank,
        d: [0; MAX_RANK],
    };
    // SAFETY: `dims.d` has room for `rank` ≤ MAX_RANK values.
    status(unsafe { (api.GetDimensions)(info.0.as_ptr(), dims.d.as_mut_ptr(), rank) })?;
    Ok((elem.into(), dims))
}

/// The number of elements of `dims`, if they are all ≥ 0 and the product fits in memory.
fn element_count<T>(dims: &Dims) -> Option<usize> {
    dims.as_slice()
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(usize::try_from(d).ok()?))
        .filter(|&n| {
            n.checked_mul(size_of::<T>().max(1))
                .is_some_and(|b| b <= isize::MAX as usize)
        })
}

fn check_type<T: PrimitiveTensorElementType>(got: TensorElementType) -> Result<(), IoError> {
    let want = T::into_tensor_element_type();
    if got == want {
        Ok(())
    } else {
        Err(IoError::Type { want, got })
    }
}

/// Input `idx` of the running kernel: its dims and its data, or `None` when the (optional) input
/// is absent.
pub(crate) fn input<T: PrimitiveTensorElementType>(
    ctx: &ComputeContext,
    idx: usize,
) -> Result<Option<(Dims, &[T])>, IoError> {
    let api = ort::api();
    let mut value: *const ort::sys::OrtValue = ptr::null();
    // SAFETY: `ctx.ptr()` is the live kernel context of this compute call; `value` is an out
    // pointer. (The C API takes a const context; ort's own wrapper passes the same pointer.)
    status(unsafe { (api.KernelContext_GetInput)(ctx.ptr(), idx, &mut value) })?;
    if value.is_null() {
        return Ok(None);
    }
    let (elem, dims) = type_and_dims(value)?;
    check_type::<T>(elem)?;
    let n = element_count::<T>(&dims).ok_or(IoError::Shape(dims))?;
    if n == 0 {
        return Ok(Some((dims, &[])));
    }
    let mut data: *mut std::ffi::c_void = ptr::null_mut();
    // SAFETY: `value` is a live tensor; ORT's API takes a mutable value but only reads the
    // pointer (ort's `try_extract_tensor` makes the same call on inputs).
    status(unsafe { (api.GetTensorMutableData)(value.cast_mut(), &mut data) })?;
    if data.is_null() || !(data as usize).is_multiple_of(align_of::<T>()) {
        return Err(ort::Error::new("input data pointer is null or misaligned").into());
    }
    // SAFETY: ORT holds `n` initialized elements of type `T` (checked above) at `data`, alive and
    // unchanged for this compute call, which the returned borrow of `ctx` cannot outlive.
    let xs = unsafe { std::slice::from_raw_parts(data.cast::<T>(), n) };
    Ok(Some((dims, xs)))
}

/// Output `idx` of the running kernel with `dims`, allocated by ORT, as a mutable slice; `None`
/// when the output is not requested.
///
/// # Safety
/// At most once per output index and compute call: ORT hands out the same tensor again, so a
/// second slice would alias the first.
// The `&mut` from `&ComputeContext` is what the `# Safety` contract above is for.
#[allow(clippy::mut_from_ref)]
pub(crate) unsafe fn output<'a, T: PrimitiveTensorElementType>(
    ctx: &'a ComputeContext,
    idx: usize,
    dims: &[i64],
) -> Result<Option<&'a mut [T]>, IoError> {
    if dims.len() > MAX_RANK {
        return Err(IoError::Rank(dims.len()));
    }
    let mut d = Dims {
        len: dims.len(),
        d: [0; MAX_RANK],
    };
    d.d[..dims.len()].copy_from_slice(dims);
    let n = element_count::<T>(&d).ok_or(IoError::Shape(d))?;
    let api = ort::api();
    let mut value: *mut ort::sys::OrtValue = ptr::null_mut();
    // SAFETY: `ctx.ptr()` is the live kernel context of this compute call (ort's `output`
    // passes the same pointer as mutable); `dims` holds `dims.len()` values; `value` is an
    // out pointer.
    status(unsafe {
        (api.KernelContext_GetOutput)(
            ctx.ptr().cast_mut(),
            idx,
            dims.as_ptr(),
            dims.len(),
            &mut value,
        )
    })?;
    if value.is_null() {
        return Ok(None);
    }
    let (elem, _) = type_and_dims(value)?;
    check_type::<T>(elem)?;
    if n == 0 {
        return Ok(Some(&mut []));
    }
    let mut data: *mut std::ffi::c_void = ptr::null_mut();
    // SAFETY: `value` is the live output tensor ORT just allocated; `data` is an out pointer.
    status(unsafe { (api.GetTensorMutableData)(value, &mut data) })?;
    if data.is_null() || !(data as usize).is_multiple_of(align_of::<T>()) {
        return Err(ort::Error::new("output data pointer is null or misaligned").into());
    }
    // SAFETY: ORT allocated `n` elements of type `T` for this output (its dims and type were
    // checked above); the kernel is its only user during this compute call, which the
    // returned borrow of `ctx` cannot outlive. `T` is a plain numeric type; the kernels write
    // every element before ORT reads it (ort's `try_extract_tensor_mut` hands out the same slice).
    let ys = unsafe { std::slice::from_raw_parts_mut(data.cast::<T>(), n) };
    Ok(Some(ys))
}
