//! int8 parameter JSON: parse, validate against layers, quantize the weights; what parses
//! round-trips through `to_json`.
#![no_main]
use dysample::{DySample, QuantParams};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(p) = QuantParams::from_json(text) else {
        return;
    };
    let again = QuantParams::from_json(&p.to_json()).expect("to_json output parses");
    assert_eq!(format!("{p:?}"), format!("{again:?}"));
    // Small layers only: the config is input and bounds the work.
    if p.layer.validate().is_ok()
        && p.layer.conv_out_channels() * p.layer.conv_in_channels() <= 4096
    {
        if let Ok(layer) = DySample::random(p.layer, 1) {
            if let Ok(q) = layer.quantize(&p) {
                let c = p.layer.channels;
                let x = vec![0i8; c * 2 * 2];
                let mut y = vec![0i8; c * 2 * 2 * p.layer.s2()];
                let _ = q.forward_slice(&x, [1, c, 2, 2], dysample::Layout::Nchw, &mut y);
            }
        }
    }
});
