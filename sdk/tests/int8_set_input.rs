//! `QuantizedDySample::set_input_quant` (the in-place re-quantization the ONNX custom op's
//! per-call min/max int8 precision uses) against quantizing the layer afresh: the same integer
//! parameters and the same output bytes, for every style, with and without dyscope, over
//! random input quantizations; and a refused input leaves the layer as it was.

use dysample::{Affine, DySample, DySampleConfig, Layout, QuantParams, Style};
use rand::{Rng, SeedableRng};

/// (style, scale, groups, dyscope, channels)
const CONFIGS: &[(Style, usize, usize, bool, usize)] = &[
    (Style::Lp, 2, 4, false, 16),
    (Style::Lp, 3, 2, true, 8),
    (Style::Pl, 2, 2, false, 8),
    (Style::Pl, 2, 1, true, 12),
];

fn random_affine(r: &mut impl Rng) -> Affine {
    Affine {
        scale: 10f32.powf(r.gen_range(-3.0..0.5)),
        zero_point: r.gen_range(-128..=127),
    }
}

#[test]
fn set_input_quant_equals_quantizing_afresh() {
    let mut r = rand::rngs::StdRng::seed_from_u64(0x5e7_1a9u64);
    for (i, &(style, scale, groups, dyscope, c)) in CONFIGS.iter().enumerate() {
        let cfg = DySampleConfig::new(c, scale, style, groups, dyscope).unwrap();
        let layer = DySample::random(cfg, 300 + i as u64).unwrap();
        let dims = [1, c, 5, 7];
        let x: Vec<i8> = (0..c * 35).map(|_| r.gen()).collect();
        let mut kept = layer
            .quantize(&QuantParams::new(cfg, random_affine(&mut r)))
            .unwrap();
        for k in 0..20 {
            let a = random_affine(&mut r);
            let fresh = layer.quantize(&QuantParams::new(cfg, a)).unwrap();
            kept.set_input_quant(a).unwrap();
            let what = format!("{cfg}, step {k}, input {a:?}");
            assert_eq!(
                format!("{:?}", kept.quantized_weights()),
                format!("{:?}", fresh.quantized_weights()),
                "{what}: integer parameters differ"
            );
            let n = layer.output_len(dims, Layout::Nchw).unwrap();
            let (mut y1, mut y2) = (vec![0i8; n], vec![0i8; n]);
            kept.forward_slice(&x, dims, Layout::Nchw, &mut y1).unwrap();
            fresh
                .forward_slice(&x, dims, Layout::Nchw, &mut y2)
                .unwrap();
            assert_eq!(y1, y2, "{what}: outputs differ");
        }
    }
}

#[test]
fn a_refused_input_quant_leaves_the_layer_unchanged() {
    let cfg = DySampleConfig::new(8, 2, Style::Lp, 2, true).unwrap();
    let layer = DySample::random(cfg, 7).unwrap();
    let a = Affine {
        scale: 0.02,
        zero_point: 3,
    };
    let mut q = layer.quantize(&QuantParams::new(cfg, a)).unwrap();
    let before = format!("{:?}", q.quantized_weights());
    for bad in [
        Affine {
            scale: 0.0,
            zero_point: 0,
        },
        Affine {
            scale: 0.02,
            zero_point: 300,
        },
        // So small that the rescale factors leave the supported range.
        Affine {
            scale: 1e-30,
            zero_point: 0,
        },
    ] {
        let e = q.set_input_quant(bad).unwrap_err().to_string();
        let fresh = layer
            .quantize(&QuantParams::new(cfg, bad))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e, fresh,
            "{bad:?}: a different error than quantizing afresh"
        );
        assert_eq!(
            format!("{:?}", q.quantized_weights()),
            before,
            "{bad:?}: the layer changed"
        );
    }
}
