//! `.npy` reader: any bytes give an array or an error, bounded in time and memory; what parses
//! re-encodes to the same array.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(a) = dysample::npy::parse(data) {
        let n: usize = a.dims.iter().product();
        assert_eq!(n, a.data.len());
        let b = dysample::npy::parse(&dysample::npy::encode_f32(&a.dims, &a.data))
            .expect("re-encoded array parses");
        assert_eq!(a.dims, b.dims);
        assert!(a
            .data
            .iter()
            .zip(&b.data)
            .all(|(x, y)| x.to_bits() == y.to_bits()));
    }
});
