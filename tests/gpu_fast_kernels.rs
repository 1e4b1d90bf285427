//! The fast convolution (`conv_fast`) against the CPU reference over property-generated
//! shapes: G ∈ {1, 2, 3, 4, C}, channels/group > 1, stride 2, padding, dilation, odd sizes,
//! batch 1 and 3, partial tiles, every generated entry point, uneven and empty
//! index-addressed groups, host- and GPU-packed weights; and the generated tables against
//! the generated shaders. Runs on lavapipe; skips loudly without an adapter (see `common`).
//! Siblings: `gpu_fast_linear` (GEMV/GEMM, roofline), `gpu_fast_errors` (bad arguments),
//! `gpu_conv_wgmem` (the discrete-GPU kernel).

mod common;

use gconv::cpu;
use gconv::gpu::geometry::ConvGeom;
use gconv::gpu::kernels::conv_fast::{self, ConvIo, Entry, FastConv, Weight, ENTRIES};
use gconv::gpu::kernels::{gemv, roofline};
use gconv::gpu::launch::bind_all;
use gconv::gpu::{run_dispatches, Arg, GpuContext};
use gconv::graph::{Conv2dSpec, GroupRange};
use gconv::ops::Activation;
use gconv::ops::GroupedConvTable;
use gconv::testing::{assert_close, Tolerance};
use gconv::Tensor;
use proptest::prelude::*;
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

fn with_gpu(body: impl FnOnce(&GpuContext)) {
    let _g = common::serial();
    if let Some(ctx) = common::gpu() {
        body(ctx);
    }
}

fn vals(n: usize, seed: u64) -> Vec<f32> {
    let mut r = SmallRng::seed_from_u64(seed);
    (0..n).map(|_| r.random_range(-1.0f32..1.0)).collect()
}

fn up(ctx: &GpuContext, name: &str, data: &[f32]) -> wgpu::Buffer {
    ctx.upload(name, data).expect("upload")
}

/// How the weights reach the kernel.
#[derive(Clone, Copy, Debug)]
enum WeightPath {
    HostPacked,
    GpuPacked,
}

#[derive(Clone, Debug)]
struct ConvCase {
    batch: usize,
    spec: Conv2dSpec,
    hw: [usize; 2],
    relu: bool,
    /// `None`: automatic choice; `Some(i)`: the i-th (mod count) entry that fits.
    pick: Option<usize>,
    path: WeightPath,
}

/// The entry `pick` selects among those that fit `spec`.
fn pick_entry(spec: &Conv2dSpec, pick: Option<usize>) -> Option<Entry> {
    let fit: Vec<Entry> = ENTRIES.iter().copied().filter(|e| e.fits(spec)).collect();
    pick.map(|i| fit[i % fit.len()])
}

/// Runs one planned layer on the GPU; returns the output.
#[allow(clippy::too_many_arguments)]
fn run_fast(
    ctx: &GpuContext,
    plan: &FastConv,
    x: &Tensor,
    natural: &[f32],
    bias: Option<&[f32]>,
    geom: ConvGeom,
    path: WeightPath,
    out_len: usize,
) -> Vec<f32> {
    let xb = up(ctx, "x", x.data());
    let wb = match path {
        WeightPath::HostPacked => up(ctx, "w packed", &plan.pack(natural).expect("pack")),
        WeightPath::GpuPacked => up(ctx, "w", natural),
    };
    let bb = bias.map(|b| up(ctx, "b", b));
    let ob = ctx.storage_buffer("out", (out_len * 4) as u64).unwrap();
    let layer = plan.upload(ctx, "fast").expect("upload plan");
    let io = ConvIo {
        x: Arg::whole(&xb),
        out: Arg::whole(&ob),
        weight: match path {
            WeightPath::HostPacked => Weight::Packed(Arg::whole(&wb)),
            WeightPath::GpuPacked => Weight::Natural(Arg::whole(&wb)),
        },
        bias: bb.as_ref().map(Arg::whole),
    };
    let mut scratch = |label: &str, n: usize| {
        let b = ctx.storage_buffer(label, (n * 4) as u64)?;
        Ok(Arg::prefix(&b, n))
    };
    let calls = conv_fast::forward(ctx, "fast", &layer, io, geom, &mut scratch).expect("calls");
    let d = bind_all(ctx, &calls).expect("bind");
    let convs = d.iter().filter(|d| d.label.contains("::conv_m")).count();
    assert_eq!(convs, 1, "one conv dispatch whatever the groups");
    run_dispatches(ctx, &d).expect("run");
    ctx.read_f32(&ob, 0, out_len).expect("read back")
}

fn check_conv(ctx: &GpuContext, case: &ConvCase, seed: u64) {
    let s = &case.spec;
    let [h, w] = case.hw;
    let x = Tensor::new(
        vec![case.batch, s.in_channels, h, w],
        vals(case.batch * s.in_channels * h * w, seed),
    )
    .unwrap();
    let wlen: usize = s.weight_shape().iter().product();
    let wt = Tensor::new(s.weight_shape(), vals(wlen, seed + 1)).unwrap();
    let bias = s.bias.then(|| vals(s.out_channels, seed + 2));
    let mut want = cpu::conv2d(&x, &wt, bias.as_deref(), s).expect("cpu conv");
    if case.relu {
        want = cpu::relu(&want);
    }
    let plan = FastConv::conv2d(s, case.hw, pick_entry(s, case.pick)).expect("plan");
    let geom = ConvGeom {
        batch: case.batch,
        in_hw: case.hw,
        act: if case.relu {
            Activation::Relu
        } else {
            Activation::None
        },
    };
    let got = run_fast(
        ctx,
        &plan,
        &x,
        wt.data(),
        bias.as_deref(),
        geom,
        case.path,
        want.numel(),
    );
    assert_close(
        &format!("{case:?} entry {}", plan.entry().name),
        &got,
        want.data(),
        Tolerance::F32_OP,
    );
}

fn entry_choice() -> impl Strategy<Value = Option<usize>> {
    prop_oneof![Just(None), (0usize..64).prop_map(Some)]
}

/// G from {1, 2, 3, 4, C}; channels per group > 1 except depthwise; kernel 1/3; stride
/// 1/2; padding 0..2; dilation 1/2; odd and even sizes; batch 1/3.
fn conv_strategy() -> impl Strategy<Value = ConvCase> {
    (
        (0usize..5, 2usize..=4, 1usize..=11, 1usize..=3),
        (
            prop::sample::select(vec![1usize, 3]),
            1usize..=2,
            0usize..=2,
            1usize..=2,
        ),
        (
            3usize..=13,
            3usize..=21,
            prop::sample::select(vec![1usize, 3]),
        ),
        (any::<bool>(), any::<bool>(), entry_choice(), any::<bool>()),
    )
        .prop_filter_map(
            "kernel must fit the padded input",
            |((gi, cin_g, cout_g, mult), (k, s, p, d), (h, w, batch), (bias, relu, pick, gpu))| {
                let (g, cin_g, cout_g) = match gi {
                    4 => (cin_g * 2, 1, mult), // depthwise (G = C), channel multiplier
                    _ => ([1, 2, 3, 4][gi], cin_g, cout_g),
                };
                let mut spec = Conv2dSpec::square(g * cin_g, g * cout_g, k, s, p)
                    .groups(g)
                    .bias(bias);
                spec.dilation = [d, d];
                spec.out_hw(h, w)?;
                Some(ConvCase {
                    batch,
                    spec,
                    hw: [h, w],
                    relu,
                    pick,
                    path: if gpu {
                        WeightPath::GpuPacked
                    } else {
                        WeightPath::HostPacked
                    },
                })
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn conv_fast_matches_cpu(case in conv_strategy(), seed in 0u64..1000) {
        with_gpu(|ctx| check_conv(ctx, &case, seed));
    }
}

fn case(batch: usize, spec: Conv2dSpec, hw: [usize; 2], path: WeightPath) -> ConvCase {
    ConvCase {
        batch,
        spec,
        hw,
        relu: true,
        pick: None,
        path,
    }
}

/// Every generated entry point on a layer of its geometry (generic ones on a 3×5 kernel
/// with dilation 2 and stride 2×1), with partial tiles: 12 → 24 channels in 2 groups of 12
/// filters, odd sizes, batch 1 and 3; plus named shapes.
#[test]
fn conv_fast_every_entry_and_named_shapes() {
    with_gpu(|ctx| {
        for (i, e) in ENTRIES.iter().enumerate() {
            let [kh, kw, sh, sw, dh, dw] = e.geom.unwrap_or([3, 5, 2, 1, 2, 2]);
            let mut spec = Conv2dSpec::square(12, 24, 1, 1, 0).groups(2).bias(true);
            spec.kernel = [kh, kw];
            spec.stride = [sh, sw];
            spec.dilation = [dh, dw];
            spec.padding = [kh / 2 * dh, kw / 2 * dw];
            let path = if i % 2 == 0 {
                WeightPath::HostPacked
            } else {
                WeightPath::GpuPacked
            };
            let c = ConvCase {
                pick: Some(
                    ENTRIES
                        .iter()
                        .filter(|f| f.fits(&spec))
                        .position(|f| f == e)
                        .unwrap(),
                ),
                ..case(1 + i % 2 * 2, spec, [13, 19], path)
            };
            check_conv(ctx, &c, 40 + i as u64);
        }
        let mut cases = Vec::new();
        // ResNet stem 7x7/2 p3, 3 input channels.
        cases.push(case(
            1,
            Conv2dSpec::square(3, 16, 7, 2, 3),
            [23, 29],
            WeightPath::HostPacked,
        ));
        // 256-channel layer at G = 32, 64, 256, small image (several tiles per group row).
        for g in [32, 64, 256] {
            cases.push(case(
                1,
                Conv2dSpec::square(256, 256, 3, 1, 1).groups(g),
                [6, 11],
                WeightPath::GpuPacked,
            ));
        }
        // Output exactly one pixel wide; one 8-pixel block plus one.
        cases.push(case(
            3,
            Conv2dSpec::square(4, 8, 3, 1, 0),
            [5, 3],
            WeightPath::HostPacked,
        ));
        cases.push(case(
            2,
            Conv2dSpec::square(4, 8, 1, 1, 0),
            [2, 9],
            WeightPath::GpuPacked,
        ));
        for (i, c) in cases.iter().enumerate() {
            check_conv(ctx, c, 140 + i as u64);
        }
    });
}

// ---------------------------------------------------------------------------------------
// index-addressed uneven groups (exported FLGC)

#[allow(clippy::too_many_arguments)]
fn check_table(
    ctx: &GpuContext,
    batch: usize,
    groups: &[(usize, usize)],
    k: usize,
    s: usize,
    p: usize,
    hw: [usize; 2],
    pick: Option<usize>,
    path: WeightPath,
    seed: u64,
) {
    let mut table = Vec::new();
    let (mut ci, mut co) = (0, 0);
    for &(in_len, out_len) in groups {
        table.push(GroupRange {
            in_start: ci,
            in_len,
            out_start: co,
            out_len,
        });
        ci += in_len;
        co += out_len;
    }
    // Channels in a learnt (shuffled) order; input list as long as the groups need.
    let mut rng = SmallRng::seed_from_u64(seed);
    let c_in = ci.max(1);
    let mut in_index: Vec<usize> = (0..c_in).collect();
    in_index.shuffle(&mut rng);
    in_index.truncate(ci);
    let mut out_index: Vec<usize> = (0..co).collect();
    out_index.shuffle(&mut rng);
    let spec = Conv2dSpec::square(c_in, co, k, s, p)
        .groups(table.len())
        .bias(true);
    let kk = k * k;
    let wlen: usize = groups.iter().map(|&(i, o)| i * o * kk).sum();
    let x = Tensor::new(
        vec![batch, c_in, hw[0], hw[1]],
        vals(batch * c_in * hw[0] * hw[1], seed),
    )
    .unwrap();
    let wt = vals(wlen, seed + 1);
    let b = vals(co, seed + 2);
    let want = cpu::relu(
        &cpu::grouped_conv_indexed(
            &x,
            &wt,
            Some(&b),
            &GroupedConvTable {
                spec: spec.clone(),
                table: table.clone(),
                in_index: in_index.clone(),
                out_index: out_index.clone(),
            },
        )
        .unwrap(),
    );
    let plan = FastConv::grouped_table(
        &spec,
        &table,
        &in_index,
        &out_index,
        hw,
        pick_entry(&spec, pick),
    )
    .expect("plan");
    let geom = ConvGeom {
        batch,
        in_hw: hw,
        act: Activation::Relu,
    };
    let got = run_fast(ctx, &plan, &x, &wt, Some(&b), geom, path, want.numel());
    assert_close(
        &format!(
            "table {groups:?} k{k} s{s} p{p} {hw:?} {} {path:?}",
            plan.entry().name
        ),
        &got,
        want.data(),
        Tolerance::F32_OP,
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn conv_fast_table_matches_cpu(
        groups in prop::collection::vec((0usize..=5, 0usize..=11), 1..=6),
        k in prop::sample::select(vec![1usize, 3]),
        s in 1usize..=2,
        p in 0usize..=1,
        hw in (3usize..=11, 3usize..=13),
        batch in prop::sample::select(vec![1usize, 3]),
        pick in entry_choice(),
        gpu in any::<bool>(),
        seed in 0u64..1000,
    ) {
        prop_assume!(groups.iter().any(|g| g.1 > 0));
        let path = if gpu { WeightPath::GpuPacked } else { WeightPath::HostPacked };
        with_gpu(|ctx| check_table(ctx, batch, &groups, k, s, p, [hw.0, hw.1], pick, path, seed));
    }
}

#[test]
fn conv_fast_table_regressions() {
    with_gpu(|ctx| {
        // An empty group, a group with filters but no inputs (bias only), uneven sizes.
        let groups = [(3, 5), (2, 0), (0, 3), (4, 11), (1, 1)];
        let spec = Conv2dSpec::square(10, 20, 3, 1, 1);
        let fitting = ENTRIES.iter().filter(|e| e.fits(&spec)).count();
        for pick in 0..fitting {
            check_table(
                ctx,
                1,
                &groups,
                3,
                1,
                1,
                [7, 10],
                Some(pick),
                WeightPath::GpuPacked,
                3,
            );
        }
        check_table(
            ctx,
            3,
            &[(1, 0), (5, 1), (2, 9)],
            3,
            2,
            1,
            [9, 8],
            None,
            WeightPath::HostPacked,
            4,
        );
    });
}

// ---------------------------------------------------------------------------------------
// the generated tables match the generated shaders (no GPU needed)

/// Entry points `fn NAME(` of a WGSL source whose name starts with `prefix`.
fn wgsl_entries(src: &str, prefix: &str) -> Vec<String> {
    src.lines()
        .filter_map(|l| l.strip_prefix("fn "))
        .filter(|l| l.starts_with(prefix))
        .map(|l| l.split('(').next().unwrap_or("").to_string())
        .collect()
}

#[test]
fn generated_tables_match_the_shaders() {
    let conv = wgsl_entries(conv_fast::SHADER.body, "conv_");
    let table: Vec<String> = ENTRIES.iter().map(|e| e.name.to_string()).collect();
    assert_eq!(
        conv, table,
        "conv_fast.wgsl entries vs ENTRIES (GCONV_BLESS=1 cargo test --test naga_validate)"
    );
    for e in ENTRIES {
        let t = e.tile;
        assert!(e
            .name
            .starts_with(&format!("conv_m{}s{}r{}p{}_", t.ms, t.s, t.r, t.pt)));
        assert_eq!(e.geom.is_none(), e.name.ends_with("_gen"), "{}", e.name);
    }
    let gemms = wgsl_entries(gemv::SHADER.body, "gemm_");
    let shapes: Vec<String> = gemv::SHAPES
        .iter()
        .map(|s| s.entry().expect("every shape has an entry").to_string())
        .collect();
    assert_eq!(gemms, shapes, "gemv.wgsl entries vs SHAPES");
    let roof = wgsl_entries(roofline::SHADER.body, "gemm_");
    let cands: Vec<String> = roofline::GEMM_KERNELS
        .iter()
        .map(|g| g.0.to_string())
        .collect();
    assert_eq!(roof, cands, "roofline.wgsl GEMMs vs GEMM_KERNELS");
}
