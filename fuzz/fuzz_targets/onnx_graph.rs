//! ONNX graph tools on arbitrary bytes: parse + structural validation, info, DySample node
//! validation, lower and fuse (structure; the numerical check needs ONNX Runtime). Every model
//! they write must parse and validate again.
#![no_main]
use dysample::onnx::graph::{self, fuse, lower};
use libfuzzer_sys::fuzz_target;
use protobuf::Message;
use std::path::Path;

fn reparse(m: &graph::proto::ModelProto, what: &str) {
    let bytes = m.write_to_bytes().expect("serialize");
    if let Err(e) = graph::parse_model(&bytes, Path::new(what)) {
        panic!("{what} wrote a model that does not validate: {e}");
    }
}

fuzz_target!(|data: &[u8]| {
    let p = Path::new("fuzz.onnx");
    let Ok(model) = graph::parse_model(data, p) else {
        return;
    };
    let info = graph::info(&model);
    let _ = info.to_string();
    let nodes_ok = graph::check_dysample_nodes(&model).is_ok();
    let mut lowered = model.clone();
    if lower::lower(&mut lowered).is_ok() {
        assert!(
            nodes_ok,
            "lower accepted a model with an invalid DySample node"
        );
        reparse(&lowered, "lower");
    }
    if nodes_ok {
        let mut fused = model.clone();
        let a = fuse::analyze(&fused);
        fuse::apply(&mut fused, &a.matches);
        reparse(&fused, "fuse");
    }
});
