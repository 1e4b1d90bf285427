//! Kernel lab: times every forward kernel that can run a layer on the adapter in use,
//! interleaved in one process (round-robin over the cases, `--reps` rounds, medians), and
//! prints GFLOP/s (GB/s for GEMV and depthwise) with the roofline of the adapter. Each layer
//! marks the kernel `gpu::choice` picks (`<- choice`) and the one the candidate lists without
//! `conv_fast`/`conv_wgmem`/`gemv` would pick (`<- before`).
//!
//! `cargo run --release --example kernel_lab -- [--reps N] [--filter GROUP] [--case NAME] [--tiles] [--wgmem] [--no-roof] [--quick]`
//!
//! `--filter` keeps the layer groups whose name contains GROUP, `--case` the kernels whose
//! name contains NAME. `--tiles` adds every register tile of `conv_fast` and `gemv` (not only
//! the automatic choice); `--wgmem` adds the workgroup-memory kernel for discrete GPUs (slow
//! on lavapipe: barriers); `--no-roof` skips the roofline; `--quick` shrinks the shapes (CI
//! smoke run). The fully connected layers also run the discrete tier's `gemv_wide` with f32
//! and with f16 weights (its GB/s count the bytes each reads). Timings are host wall-clock of one submit and wait per run; lavapipe timings
//! vary ±30 % between processes, so compare within a run.

use gconv::gpu::choice::{self, Adapter, ConvKernel, ConvProblem};
use gconv::gpu::family::{ConvLayer, ConvOp, ConvRun, LinearRun};
use gconv::gpu::geometry::LinearShape;
use gconv::gpu::kernels::conv_fast::{self, FastConv};
use gconv::gpu::kernels::{gemv, gemv_wide, linear};
use gconv::gpu::launch::bind_all;
use gconv::gpu::{roofline, run_dispatches, Arg, Call, Dispatch, GpuContext};
use gconv::graph::Conv2dSpec;
use gconv::ops::Activation;
use std::time::Instant;

/// One timed case: dispatches and the work they do.
struct Case {
    group: String,
    name: String,
    dispatches: Vec<Dispatch>,
    flops: f64,
    bytes: f64,
    /// Report GB/s rather than GFLOP/s.
    memory_bound: bool,
    times: Vec<f64>,
}

#[derive(Default)]
struct Args {
    reps: usize,
    filter: Option<String>,
    case: Option<String>,
    tiles: bool,
    quick: bool,
    no_roof: bool,
    wgmem: bool,
}

fn args() -> Args {
    let mut a = Args {
        reps: 5,
        ..Args::default()
    };
    let v: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < v.len() {
        let next = |i: &mut usize| {
            *i += 1;
            v.get(*i).cloned()
        };
        match v[i].as_str() {
            "--reps" => {
                a.reps = next(&mut i)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(5)
                    .max(1)
            }
            "--filter" => a.filter = next(&mut i),
            "--case" => a.case = next(&mut i),
            "--tiles" => a.tiles = true,
            "--quick" => a.quick = true,
            "--no-roof" => a.no_roof = true,
            "--wgmem" => a.wgmem = true,
            other => eprintln!("kernel_lab: ignoring argument {other}"),
        }
        i += 1;
    }
    a
}

fn data(n: usize, seed: usize) -> Vec<f32> {
    (0..n)
        .map(|i| ((i * 7919 + seed * 104_729) % 2003) as f32 / 2003.0 - 0.5)
        .collect()
}

/// The conv layers: (group name, spec, input size).
fn conv_layers(quick: bool) -> Vec<(String, Conv2dSpec, usize)> {
    let (c, big, small) = if quick { (64, 28, 14) } else { (256, 56, 28) };
    let sq = |n, k, s, p| Conv2dSpec::square(c, n, k, s, p);
    let mut v = vec![
        (format!("dense 3x3 {c}ch {big}²"), sq(c, 3, 1, 1), big),
        (format!("1x1 {c}ch {small}²"), sq(c, 1, 1, 0), small),
        (
            format!("3x3 {c}ch {big}² G=32"),
            sq(c, 3, 1, 1).groups(32),
            big,
        ),
    ];
    for g in [1, 2, 4, 8, 16, 32, 64, c] {
        if c % g == 0 && (g <= 64 || g == c) {
            let spec = sq(c, 3, 1, 1).groups(g);
            v.push((format!("3x3 {c}ch {small}² G={g}"), spec, small));
        }
    }
    // Geometries without a specialised conv_fast entry (generic entries or older kernels).
    let mut dil = sq(c, 3, 1, 2);
    dil.dilation = [2, 2];
    v.push((format!("3x3 dil2 {c}ch {small}²"), dil, small));
    v.push((format!("5x5 {c}ch {small}²"), sq(c, 5, 1, 2), small));
    let dw5 = sq(c, 5, 1, 2).groups(c);
    v.push((format!("5x5 depthwise {c}ch {small}²"), dw5, small));
    v
}

/// Fresh resident buffers for a kernel's scratch requests.
fn scratch(ctx: &GpuContext) -> impl FnMut(&str, usize) -> gconv::Result<Arg> + '_ {
    |label, n| Ok(Arg::prefix(&ctx.storage_buffer(label, (n * 4) as u64)?, n))
}

fn skip(a: &Args, group: &str) -> bool {
    a.filter
        .as_ref()
        .is_some_and(|f| !group.contains(f.as_str()))
}

/// The first candidate that applies, among those that are not new here.
fn before(p: &ConvProblem, ad: &Adapter) -> Option<ConvKernel> {
    choice::conv_forward_list(ad.class)
        .iter()
        .filter(|f| !matches!(f.name(), "conv_fast" | "conv_wgmem"))
        .find(|f| f.prefers(p, ad))
        .map(|&f| ConvKernel::of(f))
}

/// The calls of `kernel` on a layer; `natural`: the weights as they are (conv_fast packs
/// them on the GPU), else prepared by the family as at load.
fn conv_calls(
    ctx: &GpuContext,
    (spec, hw): (&Conv2dSpec, usize),
    kernel: ConvKernel,
    natural: bool,
    (x, w, wb, bias, out): (&Arg, &[f32], &Arg, &Arg, &Arg),
) -> gconv::Result<(String, Vec<Call>)> {
    let b = data(spec.out_channels, 3);
    let run = |weights: bool| ConvRun {
        label: kernel.family.name(),
        spec,
        batch: 1,
        in_hw: [hw, hw],
        x: x.clone(),
        out: out.clone(),
        weight: weights.then(|| wb.clone()),
        bias: weights.then(|| bias.clone()),
        act: Activation::Relu,
    };
    let mut name = kernel.name();
    if kernel.family.name() == "conv_fast" && kernel.variant.is_none() {
        name = format!(
            "conv_fast {}",
            FastConv::conv2d(spec, [hw, hw], None)?.entry().name
        );
    }
    let sc = &mut scratch(ctx);
    let calls = if natural {
        name += " + natural weights";
        kernel.family.forward(ctx, run(true), kernel.variant, sc)?
    } else {
        let layer = ConvLayer {
            name: "lab",
            op: ConvOp::Conv2d(spec),
            in_hw: [hw, hw],
            weight: w,
            bias: Some(&b),
            precision: gconv::gpu::Precision::F32,
        };
        match kernel.family.prepare(ctx, &layer, kernel.variant)? {
            Some(p) => p.forward(ctx, run(p.reads_natural_weights()), sc)?,
            None => kernel.family.forward(ctx, run(true), kernel.variant, sc)?,
        }
    };
    Ok((name, calls))
}

fn add_conv_cases(ctx: &GpuContext, a: &Args, cases: &mut Vec<Case>) -> gconv::Result<()> {
    let ad = Adapter::of(ctx);
    for (group, spec, hw) in conv_layers(a.quick) {
        if skip(a, &group) {
            continue;
        }
        let (c, n) = (spec.in_channels, spec.out_channels);
        let [oh, ow] = spec.out_hw(hw, hw).expect("fits");
        let wlen: usize = spec.weight_shape().iter().product();
        let flops = 2.0 * (n * oh * ow) as f64 * (wlen / n) as f64;
        let bytes = 4.0 * (c * hw * hw + n * oh * ow + wlen) as f64;
        let x = Arg::whole(&ctx.upload("x", &data(c * hw * hw, 1))?);
        let out = Arg::whole(&ctx.storage_buffer("out", (n * oh * ow * 4) as u64)?);
        let w = data(wlen, 2);
        let wb = Arg::whole(&ctx.upload("w", &w)?);
        let bias = Arg::whole(&ctx.upload("b", &data(n, 3))?);
        let inference = ConvProblem::conv2d(&spec, 1, [hw, hw], true);
        let training = ConvProblem::conv2d(&spec, 1, [hw, hw], false);
        let (new, old) = (
            choice::conv_default(&inference, &ad),
            before(&inference, &ad),
        );
        let (new_t, old_t) = (choice::conv_default(&training, &ad), before(&training, &ad));
        let named = |n: &str| choice::conv_named(n).expect("a conv kernel");
        let mut kernels: Vec<(ConvKernel, bool)> = vec![
            (named("conv_fast"), false),
            (named("conv_fast"), true),
            (named("conv_tiled"), false),
            (named("conv_pk8"), false),
            (named("conv_co8"), false),
            (named("conv_co1"), false),
        ];
        if a.tiles {
            for e in conv_fast::ENTRIES.iter().filter(|e| e.fits(&spec)) {
                kernels.push((named(&format!("conv_fast[{}]", e.name)), false));
            }
        }
        if a.wgmem {
            kernels.push((named("conv_wgmem"), false));
        }
        for (k, natural) in kernels {
            let p = if natural { &training } else { &inference };
            if !choice::conv_can_run(k, p, &ad) {
                continue;
            }
            let args = (&x, w.as_slice(), &wb, &bias, &out);
            let (mut name, calls) = conv_calls(ctx, (&spec, hw), k, natural, args)?;
            let direct = k.family.name().starts_with("conv_co") || k.family.name() == "conv_pk8";
            let auto = k.variant.is_none();
            if auto && !natural && k == new {
                name += "  <- choice";
            }
            if auto && !natural && Some(k) == old {
                name += "  <- before";
            }
            if auto && (natural || direct) && k == new_t {
                name += "  <- training choice";
            }
            if auto && (natural || direct) && Some(k) == old_t {
                name += "  <- training before";
            }
            cases.push(Case {
                group: group.clone(),
                name,
                dispatches: bind_all(ctx, &calls)?,
                flops,
                bytes,
                memory_bound: spec.groups == c,
                times: Vec::new(),
            });
        }
    }
    Ok(())
}

fn add_linear_cases(ctx: &GpuContext, a: &Args, cases: &mut Vec<Case>) -> gconv::Result<()> {
    let shapes: &[(usize, usize)] = if a.quick {
        &[(2048, 512)]
    } else {
        &[(25088, 4096), (2048, 1000)]
    };
    let ad = Adapter::of(ctx);
    for &(inf, outf) in shapes {
        let w = data(inf * outf, 4);
        let chunks: Vec<Arg> = linear::upload_weight(ctx, "w", &w, [outf, inf])?
            .iter()
            .map(Arg::whole)
            .collect();
        // The discrete tier's GEMV reads them as halves too (`--precision f16`).
        let halves = gemv_wide::pack_f16("w", &w)?;
        let chunks16: Vec<Arg> = linear::upload_weight(ctx, "w16", &halves, [outf, inf / 2])?
            .iter()
            .map(Arg::whole)
            .collect();
        drop((w, halves));
        let bias = Arg::whole(&ctx.upload("b", &data(outf, 5))?);
        for batch in [1usize, 8] {
            let group = format!("linear {inf}x{outf} batch {batch}");
            if skip(a, &group) {
                continue;
            }
            let x = Arg::whole(&ctx.upload("x", &data(batch * inf, 6))?);
            let out = Arg::whole(&ctx.storage_buffer("out", (batch * outf * 4) as u64)?);
            let flops = 2.0 * (batch * inf * outf) as f64;
            let bytes = 4.0 * (inf * outf + batch * (inf + outf)) as f64;
            if batch == 1 && !a.no_roof {
                // the roof's streaming read, interleaved with the GEMV for a fair ratio
                let read = roofline::READ_KERNELS[0];
                let (d, read_bytes) = roofline::read_dispatch(ctx, read)?;
                cases.push(Case {
                    group: group.clone(),
                    name: format!("roof {read} (128 MiB)"),
                    dispatches: d,
                    flops: 0.0,
                    bytes: read_bytes as f64,
                    memory_bound: true,
                    times: Vec::new(),
                });
            }
            let s = LinearShape {
                batch,
                in_features: inf,
                out_features: outf,
            };
            let new = choice::linear_default(&s, &ad);
            let named = |n: &str| choice::linear_named(n).expect("a linear kernel");
            let mut kernels = vec![named("linear"), named("gemv")];
            if a.tiles {
                for t in gemv::SHAPES {
                    if (t.samples == 1) == (batch == 1) {
                        kernels.push(named(&format!("gemv[{}]", t.entry().unwrap_or("?"))));
                    }
                }
            }
            let wide = named("gemv_wide");
            let runs = kernels
                .into_iter()
                .map(|k| (k, false))
                .chain([(wide, false), (wide, true)]);
            for (k, half) in runs {
                let run = LinearRun {
                    label: k.family.name(),
                    shape: &s,
                    x: &x,
                    chunks: if half { &chunks16 } else { &chunks },
                    bias: Some(&bias),
                    out: &out,
                    act: Activation::Relu,
                    weight_f16: half,
                };
                let calls = k.family.forward(ctx, run, k.variant, &mut scratch(ctx))?;
                let split = if calls.len() > chunks.len() {
                    " split-K"
                } else {
                    ""
                };
                let mut name = match k.family.name() {
                    "gemv" if k.variant.is_none() => format!(
                        "gemv {}{split}",
                        gemv::GemvShape::for_batch(batch).entry().unwrap_or("?")
                    ),
                    _ => format!("{}{split}", k.name()),
                };
                if half {
                    name += " f16 weights";
                }
                if k == new && !half {
                    name += "  <- choice";
                }
                let wbytes = if half { 2.0 } else { 4.0 } * (inf * outf) as f64;
                if k.family.name() == "linear" {
                    name += "  <- before";
                }
                cases.push(Case {
                    group: group.clone(),
                    name,
                    dispatches: bind_all(ctx, &calls)?,
                    flops,
                    bytes: bytes - 4.0 * (inf * outf) as f64 + wbytes,
                    memory_bound: batch == 1,
                    times: Vec::new(),
                });
            }
        }
    }
    Ok(())
}

fn main() -> gconv::Result<()> {
    let a = args();
    let ctx = GpuContext::new()?;
    println!("adapter: {}", ctx.describe());
    println!(
        "(wall-clock per submit+wait; {} interleaved rounds; medians)",
        a.reps
    );
    if !a.no_roof {
        let roof = roofline::measure(&ctx)?;
        println!(
            "roof: streaming read {:.1} GB/s ({}); best fp32 GEMM {:.1} GFLOP/s ({})",
            roof.read_gbps, roof.read_kernel, roof.gemm_gflops, roof.gemm_kernel
        );
        for (k, v) in &roof.all {
            println!("  roof candidate {k:<18} {v:7.2}");
        }
    }
    let mut cases = Vec::new();
    add_conv_cases(&ctx, &a, &mut cases)?;
    add_linear_cases(&ctx, &a, &mut cases)?;
    if let Some(f) = &a.case {
        cases.retain(|c| c.name.contains(f.as_str()));
    }
    // warm-up: compile pipelines and touch buffers
    for c in &cases {
        run_dispatches(&ctx, &c.dispatches)?;
    }
    for _ in 0..a.reps {
        for c in cases.iter_mut() {
            let t = Instant::now();
            run_dispatches(&ctx, &c.dispatches)?;
            c.times.push(t.elapsed().as_secs_f64());
        }
    }
    let mut last_group = String::new();
    for c in cases.iter_mut() {
        c.times.sort_by(|x, y| x.total_cmp(y));
        let med = c.times[c.times.len() / 2];
        if c.group != last_group {
            println!("\n{}", c.group);
            last_group = c.group.clone();
        }
        let rate = if c.memory_bound {
            format!("{:7.2} GB/s ", c.bytes / med / 1e9)
        } else {
            format!("{:7.2} GFLOP/s", c.flops / med / 1e9)
        };
        println!(
            "  {:<48} {:>9.3} ms  {rate}  (min {:.3} ms)",
            c.name,
            med * 1e3,
            c.times[0] * 1e3
        );
    }
    Ok(())
}
