//! The fp32 layer against fixtures produced by an independent PyTorch implementation.

mod common;
use common::*;
use dysample::{Backend, BackendChoice, DySample, Weights};

const REL: f32 = 1e-5;

#[test]
fn every_golden_case_matches_pytorch() {
    let cases = golden_cases();
    assert!(
        cases.len() >= 48,
        "fixture matrix shrank to {}",
        cases.len()
    );
    let mut failures = Vec::new();
    let mut worst = 0.0f32;
    let backends: Vec<Backend> = Backend::ALL
        .into_iter()
        .filter(|b| b.kernels().is_ok())
        .collect();
    for g in &cases {
        let layer = DySample::load(&g.path, &g.prefix, g.cfg).unwrap();
        let odims = layer.output_dims(g.dims, g.layout).unwrap();
        let shape = dysample::Shape::from_dims(g.dims, g.layout);
        // The scalar oracle itself, then the engine on every backend this CPU has.
        let mut outs = vec![(
            "reference".to_string(),
            vec![0.0f32; odims.iter().product()],
        )];
        dysample::reference::forward(
            &g.cfg,
            layer.weights(),
            &g.input,
            shape,
            g.layout,
            &mut outs[0].1,
        );
        for &b in &backends {
            let l = layer.clone().with_backend(BackendChoice::Exact(b)).unwrap();
            let mut out = vec![f32::NAN; odims.iter().product()];
            l.forward_slice(&g.input, g.dims, g.layout, &mut out)
                .unwrap();
            outs.push((b.to_string(), out));
        }
        let scale = g
            .output
            .iter()
            .fold(f32::MIN_POSITIVE, |m, v| m.max(v.abs()));
        for (name, out) in &outs {
            let d = out
                .iter()
                .zip(&g.output)
                .map(|(a, e)| (a - e).abs())
                .fold(0.0f32, f32::max);
            worst = worst.max(d / scale);
            if let Err(e) = check_close(out, &g.output, REL) {
                failures.push(format!("{} [{name}]: {e}", g.name));
            }
        }
    }
    println!(
        "{} golden cases x (reference + {} backends): worst max|y - ref| / max|ref| = {worst:.2e}",
        cases.len(),
        backends.len()
    );
    assert!(
        failures.is_empty(),
        "{} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn matrix_covers_the_required_configs() {
    let cases = golden_cases();
    for style in [dysample::Style::Lp, dysample::Style::Pl] {
        for dyscope in [false, true] {
            for s in [2, 3, 4] {
                for g in [1, 2, 4, 8] {
                    assert!(
                        cases.iter().any(|c| c.cfg.style == style
                            && c.cfg.dyscope == dyscope
                            && c.cfg.scale == s
                            && c.cfg.groups == g),
                        "no fixture for {style} dyscope={dyscope} s={s} g={g}"
                    );
                }
            }
        }
    }
    assert!(cases.iter().any(|c| c.dims[0] == 3), "batch 3");
    assert!(cases.iter().any(|c| c.layout == dysample::Layout::Nhwc));
    assert!(cases.iter().any(|c| c.layout == dysample::Layout::Nchw));
    let hw = |c: &Golden| dysample::Shape::from_dims(c.dims, c.layout);
    assert!(
        cases.iter().any(|c| hw(c).height == 1 && hw(c).width == 1),
        "1x1 map"
    );
    assert!(
        cases.iter().any(|c| hw(c).height == 1 && hw(c).width > 1),
        "1xW map"
    );
}

#[test]
fn fixture_offsets_reach_past_the_border() {
    // The fixtures must exercise clamping: with std 0.3 weights, many sample points leave the map.
    let mut outside = 0usize;
    let mut total = 0usize;
    for g in golden_cases() {
        let w = Weights::from_safetensors(&g.path, &g.prefix, &g.cfg).unwrap();
        let shape = dysample::Shape::from_dims(g.dims, g.layout);
        let init = g.cfg.init_pos();
        for y in 0..shape.height {
            for x in 0..shape.width {
                let off = dysample::reference::pixel_offsets(&g.cfg, &w, &init, |c| {
                    g.input[shape.index(g.layout, 0, c, y, x)] as f64
                });
                let n = off.len() / 2;
                for k in 0..n {
                    let px = x as f64 + off[k];
                    let py = y as f64 + off[n + k];
                    total += 1;
                    if px < 0.0
                        || py < 0.0
                        || px > (shape.width - 1) as f64
                        || py > (shape.height - 1) as f64
                    {
                        outside += 1;
                    }
                }
            }
        }
    }
    assert!(
        outside * 5 > total,
        "only {outside}/{total} sample points fall outside the map"
    );
}

#[test]
fn a_deliberately_wrong_fixture_fails() {
    let g = golden_cases()
        .into_iter()
        .find(|c| c.cfg.dyscope && c.dims[0] > 1)
        .unwrap();
    let layer = DySample::load(&g.path, &g.prefix, g.cfg).unwrap();
    let odims = layer.output_dims(g.dims, g.layout).unwrap();
    let mut out = vec![0.0; odims.iter().product()];
    layer
        .forward_slice(&g.input, g.dims, g.layout, &mut out)
        .unwrap();
    check_close(&out, &g.output, REL).unwrap();

    // One output value off by 1e-4 of the range must be caught.
    let mut wrong = g.output.clone();
    let max = wrong.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let n = wrong.len() / 2;
    wrong[n] += 1e-4 * max;
    assert!(check_close(&out, &wrong, REL).is_err());

    // Swapping x and y offsets (a classic bug) must be caught too.
    let mut swapped = out.clone();
    let shape = dysample::Shape::from_dims(odims, g.layout);
    if shape.height == shape.width {
        for c in 0..shape.channels {
            for y in 0..shape.height {
                for x in 0..shape.width {
                    swapped[shape.index(g.layout, 0, c, y, x)] =
                        out[shape.index(g.layout, 0, c, x, y)];
                }
            }
        }
        assert!(check_close(&swapped, &g.output, REL).is_err());
    }

    // The same fixture read with the wrong layer config must not pass silently either.
    let mut other = g.cfg;
    other.dyscope = false;
    assert!(DySample::load(&g.path, &g.prefix, other).is_err());
}

#[test]
fn ndarray_views_of_any_strides_and_caller_buffers() {
    // An NHWC fixture viewed as NCHW through permuted (non-contiguous) axes must give the
    // NCHW result, both into a new array and into a caller's (also non-contiguous) buffer.
    let g = golden_cases()
        .into_iter()
        .find(|c| c.layout == dysample::Layout::Nhwc && c.dims[0] > 1)
        .unwrap();
    let layer = DySample::load(&g.path, &g.prefix, g.cfg).unwrap();
    let x = ndarray::ArrayView4::from_shape(g.dims, &g.input).unwrap();
    let nchw_view = x.permuted_axes([0, 3, 1, 2]);
    assert!(!nchw_view.is_standard_layout());
    let y = layer.forward(nchw_view, dysample::Layout::Nchw).unwrap();
    let want =
        ndarray::ArrayView4::from_shape(layer.output_dims(g.dims, g.layout).unwrap(), &g.output)
            .unwrap()
            .permuted_axes([0, 3, 1, 2]);
    let want_c: Vec<f32> = want.iter().copied().collect();
    check_close(y.as_slice().unwrap(), &want_c, REL).unwrap();

    let d = want.raw_dim();
    let mut store = ndarray::Array4::<f32>::zeros((d[0], d[2], d[3], d[1]));
    let mut out = store.view_mut().permuted_axes([0, 3, 1, 2]);
    assert!(!out.is_standard_layout());
    layer
        .forward_into(nchw_view, dysample::Layout::Nchw, out.view_mut())
        .unwrap();
    let got: Vec<f32> = out.iter().copied().collect();
    check_close(&got, &want_c, REL).unwrap();
    // A wrongly shaped destination is an error, not a panic.
    let mut small = ndarray::Array4::<f32>::zeros((1, 1, 1, 1));
    assert!(layer
        .forward_into(nchw_view, dysample::Layout::Nchw, small.view_mut())
        .is_err());
}
