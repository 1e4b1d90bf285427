//! GPU = CPU at scale (outside CI): generated convolution, FLGC (index-addressed uneven
//! groups), pooling and fully connected layers, each run on the GPU with every kernel of its
//! candidate list that can run it (forced through `KernelChoice`, so the discrete-tier kernels
//! run on lavapipe too) and compared with the CPU reference within `Tolerance::F32_OP`.
//!
//! ```sh
//! cargo run --release --example gpu_cpu_property -- [COUNT] [SEED]   # default 10000, 1
//! ```
//!
//! Every kernel family gets at least `COUNT` configurations (or stops after 8 × COUNT
//! generated ones, reported). The families are every class's candidate lists
//! (`gpu::choice::conv_forward_families`, `linear_forward_families`: the discrete tier's
//! included), so a kernel added to a list is tested here without a change.
//! Prints one line per family (configurations, mismatches, errors) and every failing
//! configuration; exits 1 if any.

use gconv::gpu::choice::{self, Adapter, ConvKernel, ConvProblem, KernelChoice, LinearKernel};
use gconv::gpu::geometry::LinearShape;
use gconv::gpu::{GpuContext, GpuModel};
use gconv::graph::{Conv2dSpec, Graph, GraphBuilder, GroupRange, Op};
use gconv::ops::{AvgPool, Flatten, GroupedConvTable, Linear, MaxPool, Pool2dSpec, Relu};
use gconv::testing::{compare, Tolerance};
use gconv::{cpu, Tensor, Weights};
use rand::rngs::SmallRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

/// Per family: configurations run, mismatches, errors.
type Tally = BTreeMap<String, [usize; 3]>;

fn input(shape: &[usize], rng: &mut SmallRng) -> Tensor {
    let seed: u32 = rng.random();
    Tensor::from_fn(shape, |i| {
        (((i as u32).wrapping_mul(2_654_435_761) ^ seed) % 2000) as f32 / 1000.0 - 1.0
    })
}

/// `op` at node "layer" on `[C, H, W]`, optionally followed by a ReLU (fused on the GPU).
fn graph(op: Op, chw: [usize; 3], relu: bool) -> gconv::Result<Graph> {
    let mut b = GraphBuilder::new("property", chw);
    let mut y = b.push("layer", op, &[b.input()])?;
    if relu {
        y = b.push("relu", Op::Relu(Relu), &[y])?;
    }
    Ok(b.finish(y))
}

/// A random grouped convolution (ordinary, depthwise or pointwise) and its input size.
fn conv(rng: &mut SmallRng) -> (Conv2dSpec, [usize; 2]) {
    loop {
        let (g, cg, ng) = match rng.random_range(0..4) {
            0 => (rng.random_range(1..=16), 1, 1), // depthwise
            _ => (
                *[1, 2, 3, 4, 8].choose(rng).unwrap(),
                rng.random_range(1..=5),
                rng.random_range(1..=6),
            ),
        };
        let k = *[1, 1, 3, 3, 5].choose(rng).unwrap();
        let mut s = Conv2dSpec::square(g * cg, g * ng, k, rng.random_range(1..=2), 0)
            .groups(g)
            .bias(rng.random());
        s.padding = [rng.random_range(0..=k / 2), rng.random_range(0..=k / 2)];
        s.dilation = [1 + usize::from(rng.random_bool(0.2)); 2];
        let hw = [rng.random_range(1..=13), rng.random_range(1..=13)];
        if s.out_hw(hw[0], hw[1]).is_some() {
            return (s, hw);
        }
    }
}

/// A random exported FLGC layer: uneven (possibly empty) groups behind index lists.
fn table(rng: &mut SmallRng) -> (GroupedConvTable, [usize; 2]) {
    loop {
        let groups = rng.random_range(1..=5);
        let (mut ci, mut co, mut t) = (0, 0, Vec::new());
        for _ in 0..groups {
            let (il, ol) = (rng.random_range(0..=4), rng.random_range(0..=5));
            t.push(GroupRange {
                in_start: ci,
                in_len: il,
                out_start: co,
                out_len: ol,
            });
            (ci, co) = (ci + il, co + ol);
        }
        if ci == 0 || co == 0 {
            continue;
        }
        let k = *[1, 3].choose(rng).unwrap();
        let spec = Conv2dSpec::square(ci, co, k, rng.random_range(1..=2), k / 2)
            .groups(groups)
            .bias(rng.random());
        let mut in_index: Vec<usize> = (0..ci).collect();
        let mut out_index: Vec<usize> = (0..co).collect();
        in_index.shuffle(rng);
        out_index.shuffle(rng);
        let hw = [rng.random_range(1..=11), rng.random_range(1..=11)];
        let tbl = GroupedConvTable {
            spec,
            table: t,
            in_index,
            out_index,
        };
        return (tbl, hw);
    }
}

/// Runs `g` on the GPU with `choice` and compares with `want`; records it under `family`.
#[allow(clippy::too_many_arguments)]
fn check(
    ctx: &Arc<GpuContext>,
    tally: &mut Tally,
    family: String,
    g: &Graph,
    w: &Weights,
    x: &Tensor,
    want: &Tensor,
    choice: KernelChoice,
    what: &dyn Fn() -> String,
) {
    let t = tally.entry(family.clone()).or_default();
    t[0] += 1;
    let total: usize = tally.values().map(|t| t[0]).sum();
    if total % 500 == 0 {
        // Progress (stderr), so that a long run stopped early still says how far it got.
        let bad: usize = tally.values().map(|t| t[1] + t[2]).sum();
        let per: Vec<String> = tally.iter().map(|(k, t)| format!("{k} {}", t[0])).collect();
        eprintln!("{total} runs, {bad} failing: {}", per.join(", "));
    }
    let t = tally.get_mut(&family).expect("inserted");
    let got = GpuModel::with_choice(ctx.clone(), g.clone(), w, choice).and_then(|mut m| m.run(x));
    match got {
        Ok(y) => {
            let c = compare(y.data(), want.data(), Tolerance::F32_OP);
            if c.mismatches > 0 || y.shape() != want.shape() {
                t[1] += 1;
                println!("MISMATCH {family}: {} — {c:?}", what());
            }
        }
        Err(e) => {
            t[2] += 1;
            println!("ERROR {family}: {} — {e}", what());
        }
    }
}

fn main() -> gconv::Result<()> {
    let mut args = std::env::args().skip(1);
    let count: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let seed: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1);
    let ctx = Arc::new(GpuContext::new()?);
    let adapter = Adapter::of(&ctx);
    println!(
        "{} configurations per family, seed {seed}, on {}",
        count,
        ctx.describe()
    );
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut tally = Tally::new();
    let t0 = Instant::now();
    let done = |tally: &Tally, prefix: &str, n: usize| {
        n > 0
            && tally
                .iter()
                .filter(|(k, _)| k.starts_with(prefix))
                .all(|(_, t)| t[0] >= count)
    };
    // Convolutions, then FLGC tables, through every conv candidate that can run them.
    for (prefix, is_table) in [("conv ", false), ("flgc ", true)] {
        for n in 0..8 * count {
            if done(&tally, prefix, n) {
                break;
            }
            let batch = rng.random_range(1..=3);
            let (op, spec, hw, p) = if is_table {
                let (t, hw) = table(&mut rng);
                let p = ConvProblem::table(&t, batch, hw);
                (Op::GroupedConvTable(t.clone()), t.spec, hw, p)
            } else {
                let (s, hw) = conv(&mut rng);
                (
                    Op::Conv2d(s.clone()),
                    s.clone(),
                    hw,
                    ConvProblem::conv2d(&s, batch, hw, true),
                )
            };
            let chw = [spec.in_channels, hw[0], hw[1]];
            let g = graph(op, chw, rng.random())?;
            let w = Weights::random_for_tests(&g, rng.random());
            let x = input(&[batch, chw[0], hw[0], hw[1]], &mut rng);
            let want = cpu::run_graph(&g, &w, &x)?;
            for k in choice::conv_forward_families()
                .into_iter()
                .map(ConvKernel::of)
                .filter(|&k| choice::conv_can_run(k, &p, &adapter))
            {
                let what = || format!("{spec:?} on {hw:?}, batch {batch}");
                let choice = KernelChoice::new().conv("layer", k);
                let family = format!("{prefix}{}", k.name());
                check(&ctx, &mut tally, family, &g, &w, &x, &want, choice, &what);
            }
        }
    }
    // Fully connected layers, every linear candidate that can run them.
    for n in 0..8 * count {
        if done(&tally, "linear ", n) {
            break;
        }
        let s = LinearShape {
            batch: rng.random_range(1..=5),
            in_features: rng.random_range(1..=96),
            out_features: rng.random_range(1..=40),
        };
        let lin = Linear {
            in_features: s.in_features,
            out_features: s.out_features,
            bias: rng.random(),
        };
        let mut b = GraphBuilder::new("fc", [s.in_features, 1, 1]);
        let f = b.push("flat", Op::Flatten(Flatten), &[b.input()])?;
        let y = b.push("layer", Op::Linear(lin), &[f])?;
        let g = b.finish(y);
        let w = Weights::random_for_tests(&g, rng.random());
        let x = input(&[s.batch, s.in_features, 1, 1], &mut rng);
        let want = cpu::run_graph(&g, &w, &x)?;
        for k in choice::linear_forward_families()
            .into_iter()
            .map(LinearKernel::of)
            .filter(|k| k.family.can_run(&s, &adapter, None))
        {
            let choice = KernelChoice::new().linear("layer", k);
            let family = format!("linear {}", k.name());
            check(&ctx, &mut tally, family, &g, &w, &x, &want, choice, &|| {
                format!("{s:?}")
            });
        }
    }
    // Pools (one kernel each, no candidate list).
    for n in 0..8 * count {
        if done(&tally, "pool ", n) {
            break;
        }
        let k = rng.random_range(1..=3);
        let p = Pool2dSpec {
            kernel: [k, rng.random_range(1..=3)],
            stride: [rng.random_range(1..=2), rng.random_range(1..=3)],
            padding: [rng.random_range(0..=k / 2), 0],
        };
        let (c, hw, batch) = (
            rng.random_range(1..=8),
            [rng.random_range(1..=12), rng.random_range(3..=12)],
            rng.random_range(1..=3),
        );
        if p.out_hw(hw[0], hw[1]).is_none() {
            continue;
        }
        let (op, family) = match rng.random_bool(0.5) {
            true => (Op::MaxPool(MaxPool(p)), "pool max_pool"),
            false => (Op::AvgPool(AvgPool(p)), "pool avg_pool"),
        };
        let g = graph(op, [c, hw[0], hw[1]], false)?;
        let w = Weights::new();
        let x = input(&[batch, c, hw[0], hw[1]], &mut rng);
        let want = cpu::run_graph(&g, &w, &x)?;
        let what = || format!("{p:?} on {c}×{hw:?}, batch {batch}");
        check(
            &ctx,
            &mut tally,
            family.into(),
            &g,
            &w,
            &x,
            &want,
            KernelChoice::new(),
            &what,
        );
    }
    let mut bad = 0;
    println!(
        "\n{:<32} {:>8} {:>10} {:>7}",
        "family", "configs", "mismatches", "errors"
    );
    for (family, [n, m, e]) in &tally {
        println!("{family:<32} {n:>8} {m:>10} {e:>7}");
        bad += m + e;
    }
    println!(
        "{:.0} s; {}",
        t0.elapsed().as_secs_f64(),
        if bad == 0 { "PASS" } else { "FAIL" }
    );
    if bad > 0 {
        std::process::exit(1);
    }
    Ok(())
}
