//! Safetensors loading: layer listing and weight loading (shape, dtype, init_pos checks) on
//! arbitrary bytes, for a few layer configs and prefixes chosen by the first byte.
#![no_main]
use dysample::{DySampleConfig, Style, Weights};
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, bytes)) = data.split_first() else {
        return;
    };
    let _ = dysample::weights::list_layers_bytes(bytes, Path::new("fuzz.safetensors"));
    let cfgs = [
        (4, 2, Style::Lp, 1, false),
        (8, 2, Style::Pl, 2, true),
        (4, 3, Style::Lp, 2, true),
        (16, 4, Style::Pl, 1, false),
    ];
    let (c, s, st, g, d) = cfgs[(sel & 3) as usize];
    let cfg = DySampleConfig::new(c, s, st, g, d).unwrap();
    let prefix = ["", "up", "a.b", "up."][((sel >> 2) & 3) as usize];
    if let Ok(w) =
        Weights::from_safetensors_bytes(bytes, Path::new("fuzz.safetensors"), prefix, &cfg)
    {
        assert_eq!(w.offset_bias.len(), cfg.conv_out_channels());
        assert!(w.offset_weight.iter().all(|v| v.is_finite()));
    }
});
