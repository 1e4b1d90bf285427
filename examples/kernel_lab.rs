//! Kernel lab: times the old and the new forward kernels on the adapter in use, interleaved
//! in one process (round-robin over the cases, `--reps` rounds, medians), and prints GFLOP/s
//! (GB/s for GEMV and depthwise) with the roofline of the adapter.
//!
//! `cargo run --release --example kernel_lab -- [--reps N] [--filter GROUP] [--case NAME] [--tiles] [--wgmem] [--no-roof] [--quick]`
//!
//! `--filter` keeps the layer groups whose name contains GROUP, `--case` the kernels whose
//! name contains NAME. `--tiles` adds every register-tile shape of `conv_fast` (not only the automatic choice);
//! `--wgmem` adds the workgroup-memory kernel for discrete GPUs (slow on lavapipe: barriers);
//! `--no-roof` skips the roofline; `--quick` shrinks the shapes (CI smoke run). Timings are host wall-clock of one submit and
//! wait per run; lavapipe timings vary ±30 % between processes, so compare within a run.

use gconv::gpu::kernels::{conv, conv_fast, conv_tiled, conv_wgmem, gemv, linear};
use gconv::gpu::{roofline, run_dispatches, Dispatch, GpuContext, TensorRef};
use gconv::graph::Conv2dSpec;
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

struct Args {
    reps: usize,
    filter: Option<String>,
    case: Option<String>,
    tiles: bool,
    quick: bool,
    roof: bool,
    wgmem: bool,
}

fn args() -> Args {
    let mut a = Args {
        reps: 5,
        filter: None,
        case: None,
        tiles: false,
        quick: false,
        roof: true,
        wgmem: false,
    };
    let v: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < v.len() {
        match v[i].as_str() {
            "--reps" => {
                i += 1;
                a.reps = v.get(i).and_then(|s| s.parse().ok()).unwrap_or(5).max(1);
            }
            "--filter" => {
                i += 1;
                a.filter = v.get(i).cloned();
            }
            "--case" => {
                i += 1;
                a.case = v.get(i).cloned();
            }
            "--tiles" => a.tiles = true,
            "--quick" => a.quick = true,
            "--no-roof" => a.roof = false,
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
    let mut v = vec![
        (
            format!("dense 3x3 {c}ch {big}²"),
            Conv2dSpec::square(c, c, 3, 1, 1),
            big,
        ),
        (
            format!("1x1 {c}ch {small}²"),
            Conv2dSpec::square(c, c, 1, 1, 0),
            small,
        ),
    ];
    v.push((
        format!("3x3 {c}ch {big}² G=32"),
        Conv2dSpec::square(c, c, 3, 1, 1).groups(32),
        big,
    ));
    for (i, g) in [1, 2, 4, 8, 16, 32, 64, c].into_iter().enumerate() {
        if c % g == 0 && (i < 7 || g > 64) {
            v.push((
                format!("3x3 {c}ch {small}² G={g}"),
                Conv2dSpec::square(c, c, 3, 1, 1).groups(g),
                small,
            ));
        }
    }
    v
}

fn add_conv_cases(ctx: &GpuContext, a: &Args, cases: &mut Vec<Case>) -> gconv::Result<()> {
    for (group, spec, hw) in conv_layers(a.quick) {
        if a.filter
            .as_ref()
            .is_some_and(|f| !group.contains(f.as_str()))
        {
            continue;
        }
        let (c, n) = (spec.in_channels, spec.out_channels);
        let [oh, ow] = spec.out_hw(hw, hw).expect("fits");
        let wlen: usize = spec.weight_shape().iter().product();
        let flops = 2.0 * (n * oh * ow) as f64 * (wlen / n) as f64;
        let bytes = 4.0 * (c * hw * hw + n * oh * ow + wlen) as f64;
        let depthwise = spec.groups == c;
        let xb = ctx.upload("x", &data(c * hw * hw, 1))?;
        let ob = ctx.storage_buffer("out", (n * oh * ow * 4) as u64)?;
        let w = data(wlen, 2);
        let wb = ctx.upload("w", &w)?;
        let bias = ctx.upload("b", &data(n, 3))?;
        let mut push = |name: String, dispatches: Vec<Dispatch>| {
            cases.push(Case {
                group: group.clone(),
                name,
                dispatches,
                flops,
                bytes,
                memory_bound: depthwise,
                times: Vec::new(),
            })
        };
        // old: conv.wgsl (pk8 / co8 / co1, chosen by its tuning)
        let d = conv::prepare_conv2d(
            ctx,
            "conv",
            TensorRef::whole(&xb),
            &wb,
            Some(&bias),
            TensorRef::whole(&ob),
            1,
            &spec,
            [hw, hw],
            true,
        )?;
        let entry = d.last().map(|d| d.label.clone()).unwrap_or_default();
        let entry = entry
            .rsplit("::")
            .next()
            .unwrap_or("")
            .trim_end_matches(']');
        push(format!("old conv.wgsl {entry}"), d);
        // old: conv_tiled.wgsl (8 filters × 8 pixels)
        let packed = conv_tiled::pack_conv2d(&spec, &w)?;
        let layer = conv_tiled::upload(ctx, "tiled", &packed, Some(&data(n, 3)), n)?;
        let d = conv_tiled::prepare(
            ctx,
            "tiled",
            TensorRef::whole(&xb),
            &layer,
            TensorRef::whole(&ob),
            1,
            &spec,
            [hw, hw],
            true,
        )?;
        push("old conv_tiled".into(), d);
        // new: conv_fast, automatic entry (+ every fitting entry with --tiles)
        let mut entries = vec![None];
        if a.tiles {
            entries.extend(
                conv_fast::ENTRIES
                    .iter()
                    .filter(|e| e.fits(&spec))
                    .map(|e| Some(*e)),
            );
        }
        for e in entries {
            let plan = conv_fast::FastConv::conv2d(&spec, [hw, hw], e)?;
            let wp = ctx.upload("wp", &plan.pack(&w)?)?;
            let layer = plan.upload(ctx, "fast")?;
            let io = conv_fast::ConvIo {
                x: TensorRef::whole(&xb),
                out: TensorRef::whole(&ob),
                weight: conv_fast::Weight::Packed(&wp),
                bias: Some(&bias),
            };
            let geom = conv_fast::ConvGeom {
                batch: 1,
                in_hw: [hw, hw],
                relu: true,
            };
            let d = conv_fast::prepare(ctx, "fast", &layer, io, geom)?;
            if e.is_none() && a.tiles {
                // diagnostic: the padding pass alone
                let pad = conv_fast::prepare(ctx, "fast", &layer, io, geom)?;
                push(
                    "new pad_input only".into(),
                    pad.into_iter().take(1).collect(),
                );
            }
            let tag = if e.is_some() { "" } else { " (auto)" };
            push(format!("new {}{tag}", plan.entry().name), d);
        }
        if a.tiles {
            // the training path: natural weights, packed on the GPU every run
            let plan = conv_fast::FastConv::conv2d(&spec, [hw, hw], None)?;
            let layer = plan.upload(ctx, "fast natural")?;
            let io = conv_fast::ConvIo {
                x: TensorRef::whole(&xb),
                out: TensorRef::whole(&ob),
                weight: conv_fast::Weight::Natural(&wb),
                bias: Some(&bias),
            };
            let geom = conv_fast::ConvGeom {
                batch: 1,
                in_hw: [hw, hw],
                relu: true,
            };
            let d = conv_fast::prepare(ctx, "fast natural", &layer, io, geom)?;
            push(format!("new {} + pack_weights", plan.entry().name), d);
        }
        if a.wgmem {
            let plan = conv_wgmem::WgmemConv::conv2d(&spec)?;
            let layer = plan.upload(ctx, "wgmem")?;
            let io = conv_wgmem::WgmemIo {
                x: TensorRef::whole(&xb),
                out: TensorRef::whole(&ob),
                weight: &wb,
                bias: Some(&bias),
            };
            let geom = conv_fast::ConvGeom {
                batch: 1,
                in_hw: [hw, hw],
                relu: true,
            };
            let d = conv_wgmem::prepare(ctx, "wgmem", &layer, io, geom)?;
            push(format!("new conv_wgmem {:?}", plan.tiling()), d);
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
    for &(inf, outf) in shapes {
        let w = data(inf * outf, 4);
        let chunks = linear::upload_weight(ctx, "w", &w, outf, inf)?;
        drop(w);
        let bias = ctx.upload("b", &data(outf, 5))?;
        for batch in [1usize, 8] {
            let group = format!("linear {inf}x{outf} batch {batch}");
            if a.filter
                .as_ref()
                .is_some_and(|f| !group.contains(f.as_str()))
            {
                continue;
            }
            let xb = ctx.upload("x", &data(batch * inf, 6))?;
            let ob = ctx.storage_buffer("out", (batch * outf * 4) as u64)?;
            let flops = 2.0 * (batch * inf * outf) as f64;
            let bytes = 4.0 * (inf * outf + batch * (inf + outf)) as f64;
            if batch == 1 && a.roof {
                // the roof's streaming read, interleaved with the GEMV for a fair ratio
                let (d, read) = roofline::read_dispatch(ctx, roofline::READ_KERNELS[0])?;
                cases.push(Case {
                    group: group.clone(),
                    name: format!("roof {} (128 MiB)", roofline::READ_KERNELS[0]),
                    dispatches: d,
                    flops: 0.0,
                    bytes: read as f64,
                    memory_bound: true,
                    times: Vec::new(),
                });
            }
            let mut push = |name: String, dispatches: Vec<Dispatch>| {
                cases.push(Case {
                    group: group.clone(),
                    name,
                    dispatches,
                    flops,
                    bytes,
                    memory_bound: batch == 1,
                    times: Vec::new(),
                })
            };
            let d = linear::prepare_linear(
                ctx,
                "linear",
                TensorRef::whole(&xb),
                &chunks,
                Some(&bias),
                TensorRef::whole(&ob),
                batch,
                inf,
                outf,
                true,
            )?;
            push("old linear.wgsl".into(), d);
            let mut shapes = vec![None];
            if a.tiles {
                shapes.extend(
                    gemv::SHAPES
                        .iter()
                        .filter(|s| (s.samples == 1) == (batch == 1))
                        .map(|s| Some(*s)),
                );
            }
            for shape in shapes {
                let io = gemv::LinearIo {
                    x: TensorRef::whole(&xb),
                    out: TensorRef::whole(&ob),
                    weight_chunks: &chunks,
                    bias: Some(&bias),
                };
                let geom = gemv::LinearGeom {
                    batch,
                    in_features: inf,
                    out_features: outf,
                    relu: true,
                    shape,
                };
                let d = gemv::prepare(ctx, "gemv", io, geom)?;
                let s = shape.unwrap_or_else(|| gemv::GemvShape::for_batch(batch));
                let tag = if shape.is_some() { "" } else { " (auto)" };
                let split = if d.len() > chunks.len() {
                    " split-K"
                } else {
                    ""
                };
                push(format!("new {}{split}{tag}", s.entry().unwrap_or("?")), d);
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
    if a.roof {
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
            "  {:<34} {:>9.3} ms  {rate}  (min {:.3} ms)",
            c.name,
            med * 1e3,
            c.times[0] * 1e3
        );
    }
    Ok(())
}
