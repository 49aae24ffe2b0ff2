//! `model.json` (models/SPEC.md): any bytes give a validated model description or an error;
//! what parses writes back to JSON that parses to the same description.
#![no_main]
use dysample_models::model::ModelJson;
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let p = Path::new("fuzz/model.json");
    if let Ok(m) = ModelJson::from_json(p, text) {
        let again = ModelJson::from_json(p, &m.to_json()).expect("written model.json parses");
        assert_eq!(m, again, "model.json round trip changed the description");
    }
});
