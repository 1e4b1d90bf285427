//! The fast convolution backward (`gpu::kernels::conv_grad_fast`) against the CPU
//! specification (`conv2d_backward`): property-generated shapes (G ∈ {1, 2, 3, 4, C}, several
//! channels per group, stride 1–2, padding, dilation, odd sizes, batch 1–3, accumulate on
//! and off), every generated tile on a fixed layer, and the generated shader is what its
//! generator makes. Runs on lavapipe; skips loudly without an adapter (see `common`).

mod common;

use gconv::gpu::geometry::ConvShape;
use gconv::gpu::kernels::conv_grad_fast::plan::{DwTile, DxTile, EntryKind};
use gconv::gpu::kernels::conv_grad_fast::{self as fast, codegen, plan};
use gconv::gpu::launch::bind_all;
use gconv::gpu::{run_dispatches, Arg, GpuContext};
use gconv::graph::Conv2dSpec;
use gconv::testing::{assert_close, Tolerance};
use gconv::train::backward::conv2d_backward;
use gconv::Tensor;
use proptest::prelude::*;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::path::Path;

/// Weight gradients sum up to a few thousand products in another order than the CPU.
const REDUCTION: Tolerance = Tolerance {
    atol: 1e-3,
    rtol: 1e-4,
};

fn with_gpu(body: impl FnOnce(&GpuContext)) {
    let _g = common::serial();
    if let Some(ctx) = common::gpu() {
        body(ctx);
    }
}

fn random(shape: &[usize], seed: u64) -> Tensor {
    let mut r = SmallRng::seed_from_u64(seed);
    Tensor::from_fn(shape, |_| r.random_range(-1.0f32..1.0))
}

fn up(ctx: &GpuContext, data: &[f32]) -> Arg {
    Arg::whole(&ctx.upload("t", data).expect("upload"))
}

fn read(ctx: &GpuContext, a: &Arg, len: usize) -> Vec<f32> {
    let gconv::gpu::launch::ArgBuffer::Resident(b) = &a.buffer else {
        panic!("resident")
    };
    ctx.read_f32(b, 0, len).expect("read back")
}

/// Scratch buffers as resident buffers (a program would plan them).
fn scratch(ctx: &GpuContext) -> impl FnMut(&str, usize) -> gconv::Result<Arg> + '_ {
    move |label, n| Ok(Arg::whole(&ctx.storage_buffer(label, (n * 4) as u64)?))
}

#[derive(Clone, Debug)]
struct Case {
    batch: usize,
    spec: Conv2dSpec,
    hw: [usize; 2],
}

/// dx (overwrite and accumulate) and dW of `c` on the GPU against `conv2d_backward`.
fn check(ctx: &GpuContext, c: &Case, seed: u64) {
    check_tiles(ctx, c, seed, (None, None));
}

/// [`check`] with the given tiles instead of the launcher's choice.
fn check_tiles(ctx: &GpuContext, c: &Case, seed: u64, (tx, tw): (Option<DxTile>, Option<DwTile>)) {
    let s = &c.spec;
    let [h, w] = c.hw;
    let [oh, ow] = s.out_hw(h, w).expect("window fits");
    let x = random(&[c.batch, s.in_channels, h, w], seed);
    let wt = random(&s.weight_shape(), seed + 1);
    let dy = random(&[c.batch, s.out_channels, oh, ow], seed + 2);
    let want = conv2d_backward(&x, &wt, &dy, s).expect("cpu backward");
    let shape = ConvShape {
        spec: s,
        batch: c.batch,
        in_hw: c.hw,
    };
    let (xb, wb, dyb) = (up(ctx, x.data()), up(ctx, wt.data()), up(ctx, dy.data()));
    // dx starts as garbage (overwrite) or as a prior gradient (accumulate).
    let dx = up(ctx, &vec![7.0; x.numel()]);
    let prior = random(x.shape(), seed + 3);
    let dx_acc = up(ctx, prior.data());
    let dw = up(ctx, &vec![7.0; wt.numel()]);
    let mut sc = scratch(ctx);
    let mut calls =
        fast::grad_input_tiled(ctx, "dx", (&shape, false, tx), (&dyb, &wb, &dx), &mut sc)
            .expect("prepare dx");
    calls.extend(
        fast::grad_input_tiled(
            ctx,
            "dx+",
            (&shape, true, tx),
            (&dyb, &wb, &dx_acc),
            &mut sc,
        )
        .expect("prepare dx+"),
    );
    calls.extend(
        fast::grad_weight_tiled(ctx, "dw", (&shape, tw), (&xb, &dyb, &dw), &mut sc)
            .expect("prepare dw"),
    );
    run_dispatches(ctx, &bind_all(ctx, &calls).expect("bind")).expect("run");
    let what = format!("{c:?}");
    assert_close(
        &format!("dx {what}"),
        &read(ctx, &dx, x.numel()),
        want.input.data(),
        Tolerance::F32_OP,
    );
    let acc_want: Vec<f32> = prior
        .data()
        .iter()
        .zip(want.input.data())
        .map(|(a, b)| a + b)
        .collect();
    assert_close(
        &format!("dx += {what}"),
        &read(ctx, &dx_acc, x.numel()),
        &acc_want,
        Tolerance::F32_OP,
    );
    assert_close(
        &format!("dw {what}"),
        &read(ctx, &dw, wt.numel()),
        want.weight.data(),
        REDUCTION,
    );
}

#[allow(clippy::too_many_arguments)]
fn case(
    batch: usize,
    c: usize,
    n: usize,
    g: usize,
    k: usize,
    s: usize,
    p: usize,
    d: usize,
    hw: [usize; 2],
) -> Case {
    let mut spec = Conv2dSpec::square(c, n, k, s, p).groups(g);
    spec.dilation = [d, d];
    Case { batch, spec, hw }
}

/// G ∈ {1, 2, 3, 4} with 2–5 channels and filters per group, or depthwise (G = C) with
/// multiplier 1–2; kernels 1, 2, 3, 5; stride 1–2; padding 0–2; dilation 1–2; odd and even
/// sizes; batch 1–3.
fn case_strategy() -> impl Strategy<Value = Case> {
    (
        (0usize..5, 2usize..=5, 2usize..=5, 1usize..=2),
        (
            prop::sample::select(vec![1usize, 1, 2, 3, 3, 5]),
            1usize..=2,
            0usize..=2,
            prop::sample::select(vec![1usize, 1, 1, 2]),
        ),
        (3usize..=12, 3usize..=12, 1usize..=3),
    )
        .prop_filter_map(
            "window larger than the input",
            |((gi, cin_g, cout_g, mult), (k, s, p, d), (hh, ww, batch))| {
                let (g, cin_g, cout_g) = match gi {
                    4 => (cin_g + 1, 1, mult),
                    _ => (gi + 1, cin_g, cout_g),
                };
                let c = case(
                    batch,
                    g * cin_g,
                    g * cout_g,
                    g,
                    k,
                    s,
                    p.min(k - 1),
                    d,
                    [hh, ww],
                );
                c.spec.out_hw(hh, ww).map(|_| c)
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn grad_fast_matches_cpu(c in case_strategy(), seed in 0u64..1000) {
        with_gpu(|ctx| check(ctx, &c, seed));
    }
}

/// The layers the kernels are tuned for: the Fashion-MNIST ResNet-DSC's (stem, pointwise,
/// downsample, depthwise stride 1 and 2, SGC G=4), wide groups, a 1×1 image, per-axis
/// stride and padding, and a stride larger than the kernel.
#[test]
fn grad_fast_named_cases() {
    with_gpu(|ctx| {
        let mut rect = case(2, 4, 6, 2, 1, 1, 0, 1, [6, 9]);
        rect.spec.kernel = [1, 3];
        rect.spec.stride = [2, 1];
        rect.spec.padding = [0, 1];
        let cases = [
            case(3, 1, 8, 1, 3, 1, 1, 1, [28, 28]),
            case(2, 32, 16, 1, 1, 1, 0, 1, [14, 14]),
            case(2, 32, 64, 1, 1, 2, 0, 1, [14, 14]),
            case(2, 64, 128, 4, 1, 2, 0, 1, [7, 7]),
            case(2, 16, 16, 16, 3, 2, 1, 1, [14, 14]),
            case(2, 8, 8, 8, 3, 1, 1, 1, [28, 28]),
            case(3, 64, 64, 4, 1, 1, 0, 1, [4, 4]),
            case(2, 40, 24, 1, 3, 1, 1, 1, [9, 11]),
            case(1, 24, 48, 1, 3, 2, 1, 1, [9, 10]),
            case(2, 8, 4, 1, 1, 1, 0, 1, [1, 1]),
            case(1, 6, 6, 1, 1, 3, 0, 1, [7, 8]),
            case(2, 12, 18, 3, 7, 2, 3, 1, [13, 11]),
            rect,
        ];
        for (i, c) in cases.iter().enumerate() {
            check(ctx, c, 500 + i as u64);
        }
    });
}

/// Layers that run entry `kind` when its tile is forced: partial channel tiles (one channel
/// more than the tile), two groups, odd sizes, and for 1×1 layers both the padded and the
/// in-place path (a plane of 32 pixels).
fn layers_for(kind: &EntryKind) -> Vec<Case> {
    let geometric = |[kh, kw, sh, sw, dh, dw]: [usize; 6], cin_g: usize, cout_g: usize| {
        let mut spec = Conv2dSpec::square(2 * cin_g, 2 * cout_g, 1, 1, 0).groups(2);
        spec.kernel = [kh, kw];
        spec.stride = [sh, sw];
        spec.dilation = [dh, dw];
        spec.padding = [(kh - 1) * dh / 2, (kw - 1) * dw / 2];
        let mut v = vec![Case {
            batch: 2,
            spec: spec.clone(),
            hw: [9, 11],
        }];
        if kh * kw == 1 && sh * sw == 1 {
            v.push(Case {
                batch: 2,
                spec,
                hw: [4, 8],
            });
        }
        v
    };
    // Geometries with no specialised entry (runtime taps).
    let generic = |cin_g: usize, cout_g: usize| {
        let mut v = geometric([5, 5, 2, 2, 1, 1], cin_g, cout_g);
        v.extend(geometric([3, 3, 1, 1, 2, 2], cin_g, cout_g));
        v
    };
    match kind {
        EntryKind::Dx {
            geom: Some((g, _, _)),
            tile,
        } => geometric(*g, tile.mc + 1, 3),
        EntryKind::Dx { geom: None, tile } => generic(tile.mc + 1, 3),
        EntryKind::Dw {
            geom: Some([kh, kw, sw, dw]),
            tile,
        } => {
            let mut v = geometric([*kh, *kw, *sw, *sw, *dw, *dw], tile.ci + 1, tile.mo + 1);
            if kh * kw == 1 {
                // Subsampled and flattened.
                v.extend(geometric([1, 1, 2, 2, 1, 1], tile.ci + 1, tile.mo + 1));
            }
            v
        }
        EntryKind::Dw { geom: None, tile } => generic(tile.ci + 1, tile.mo + 1),
    }
}

/// Every generated entry computes the right gradients: each tile of the table forced on the
/// layers that take its entries (all phases of a strided geometry at once).
#[test]
fn every_entry_matches_cpu() {
    with_gpu(|ctx| {
        let mut done = std::collections::HashSet::new();
        for (i, e) in plan::entries().iter().enumerate() {
            let forced = match &e.kind {
                EntryKind::Dx { tile, .. } => (Some(*tile), None),
                EntryKind::Dw { tile, .. } => (None, Some(*tile)),
            };
            for c in layers_for(&e.kind) {
                if done.insert(format!("{forced:?} {c:?}")) {
                    check_tiles(ctx, &c, 900 + i as u64, forced);
                }
            }
        }
        assert!(
            done.len() > plan::entries().len() / 2,
            "{} layers",
            done.len()
        );
    });
}

/// Every entry of the table is in the shader.
#[test]
fn generated_entries_cover_the_table() {
    let names: Vec<&str> = plan::entries().iter().map(|e| e.name.as_str()).collect();
    let src = fast::SHADER.source();
    for n in &names {
        assert!(
            src.contains(&format!("fn {n}(")),
            "{n} missing from the shader"
        );
    }
    assert!(names.len() > 20, "{} entries", names.len());
}

#[test]
fn generated_shader_is_what_the_generator_makes() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders/conv_grad_fast.wgsl");
    let generated = codegen::wgsl();
    if std::env::var("GCONV_BLESS").as_deref() == Ok("1") {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap();
    assert!(
        committed == generated,
        "shaders/conv_grad_fast.wgsl differs from conv_grad_fast::codegen::wgsl(); \
         run GCONV_BLESS=1 cargo test --test gpu_conv_grad_fast generated"
    );
}

/// Wrong buffer sizes and groups that do not divide the channels are errors naming the
/// layer, not panics.
#[test]
fn bad_arguments_are_errors() {
    with_gpu(|ctx| {
        let spec = Conv2dSpec::square(4, 6, 3, 1, 1);
        let shape = ConvShape {
            spec: &spec,
            batch: 1,
            in_hw: [5, 5],
        };
        let a = up(ctx, &[0.0; 16]);
        let mut sc = scratch(ctx);
        let e =
            fast::grad_input(ctx, "layerX", (&shape, false), (&a, &a, &a), &mut sc).unwrap_err();
        assert!(e.to_string().contains("layerX"), "{e}");
        let e = fast::grad_weight(ctx, "layerY", &shape, (&a, &a, &a), &mut sc).unwrap_err();
        assert!(e.to_string().contains("layerY"), "{e}");
        let bad = Conv2dSpec::square(4, 6, 3, 1, 1).groups(4);
        let shape = ConvShape {
            spec: &bad,
            batch: 1,
            in_hw: [5, 5],
        };
        let e = fast::grad_weight(ctx, "layerZ", &shape, (&a, &a, &a), &mut sc).unwrap_err();
        assert!(e.to_string().contains("layerZ"), "{e}");
    });
}
