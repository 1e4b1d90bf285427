//! ONNX export (`gconv::onnx::onnx_bytes`): every zoo model, FLGC models with uneven groups
//! and dead filters, and imported ONNX models, exported and read back with gconv's own
//! importer: the same MACs and parameters as the compiled graph, and the same outputs on
//! the CPU within 1e-4 of max |y|. The onnxruntime side is `cli_export.rs`.

use gconv::compile::{compile, CompileOptions};
use gconv::graph::{fold_permutations, Graph, Op};
use gconv::onnx::{onnx_bytes, parse_onnx, read_onnx};
use gconv::train::selection::layer_groups;
use gconv::zoo::{ConvKind, ModelSpec, BUILTIN_MODELS};
use gconv::{cpu, Tensor, Weights};

/// Seeded input in [-1, 1).
fn input(shape: [usize; 3], batch: usize, seed: u64) -> Tensor {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut dims = vec![batch];
    dims.extend(shape);
    Tensor::from_fn(&dims, |_| {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    })
}

/// max |a − b| ≤ 1e-4 · max |b| (and the shapes agree).
fn assert_matches(what: &str, got: &Tensor, want: &Tensor) {
    assert_eq!(got.shape(), want.shape(), "{what}");
    let scale = want.data().iter().fold(0f32, |m, v| m.max(v.abs()));
    let diff = got
        .data()
        .iter()
        .zip(want.data())
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(
        diff <= 1e-4 * scale.max(1e-6),
        "{what}: max |diff| {diff} > 1e-4 · max |y| = {}",
        1e-4 * scale
    );
}

/// Exports the compiled form of (`graph`, `weights`), reads it back and checks costs and
/// outputs; returns the compiled graph and what the export wrote.
fn round_trip(what: &str, graph: &Graph, weights: &Weights) -> (Graph, gconv::onnx::OnnxExport) {
    let (cg, cw) = compile(graph, weights, &CompileOptions::default()).unwrap();
    let (bytes, rep) = onnx_bytes(&cg, &cw, &Default::default()).unwrap();
    let m = parse_onnx(&bytes, format!("{what}.onnx")).unwrap();
    let (fg, fw, _) = fold_permutations(&m.graph, &m.weights).unwrap();
    let (want, got) = (cg.cost(), fg.cost());
    assert_eq!(got.total_macs, want.total_macs, "{what}: MACs");
    assert_eq!(got.total_params, want.total_params, "{what}: params");
    let x = input(cg.input_shape(), 2, 7);
    let y = cpu::run_graph(&cg, &cw, &x).unwrap();
    assert_matches(what, &cpu::run_graph(&fg, &fw, &x).unwrap(), &y);
    assert_matches(
        &format!("{what} (unfolded)"),
        &cpu::run_graph(&m.graph, &m.weights, &x).unwrap(),
        &y,
    );
    (cg, rep)
}

/// A zoo model small enough for the CPU reference in a test.
fn small(name: &str) -> ModelSpec {
    let mut spec = ModelSpec::load(name).unwrap();
    spec.num_classes = 10;
    if name.starts_with("vgg") {
        spec.width = 1.0 / 16.0; // 224² keeps the 7×7 adaptive pool an identity
    } else {
        spec.width = 0.25;
        spec.input = [3, 32, 32];
        spec = spec.small_stem();
    }
    spec
}

#[test]
fn every_zoo_model_round_trips_with_the_same_costs_and_outputs() {
    for (name, _) in BUILTIN_MODELS {
        let spec = small(name);
        let g = spec.build().unwrap();
        let w = Weights::init(&g, 3);
        let (_, rep) = round_trip(name, &g, &w);
        eprintln!("{name}: {rep:?}");
    }
}

#[test]
fn vgg_schemes_export_as_grouped_convs() {
    let spec = small("vgg13bn")
        .with_groups(4, Some(ConvKind::Sgc))
        .unwrap();
    let g = spec.build().unwrap();
    let (cg, rep) = round_trip("vgg13bn-sgc", &g, &Weights::init(&g, 1));
    let convs = cg
        .nodes
        .iter()
        .filter(|n| matches!(n.op, Op::Conv2d(_)))
        .count();
    assert_eq!(rep.convs, convs, "one ONNX Conv per conv");
    assert_eq!((rep.uneven, rep.gathers), (0, 0));
}

/// An FLGC model from the paper's Gaussian start at a G that divides nothing: uneven
/// groups, some without input channels.
fn gaussian_flgc(g: usize, seed: u64) -> (Graph, Weights) {
    let spec = small("resnet50-dsc-flgc")
        .with_groups(g, Some(ConvKind::Flgc))
        .unwrap();
    let mut spec = spec;
    spec.width = 0.125;
    let graph = spec.build().unwrap();
    let w = Weights::init(&graph, seed); // N(0, 1) selection matrices
    (graph, w)
}

#[test]
fn flgc_gaussian_start_at_g3_exports_uneven_groups_and_dead_filters() {
    let (graph, w) = gaussian_flgc(3, 5);
    let groups = layer_groups(&graph, &w).unwrap();
    let dead: usize = groups.iter().map(|l| l.dead_filters).sum();
    let uneven = groups
        .iter()
        .filter(|l| l.in_sizes.windows(2).any(|p| p[0] != p[1]))
        .count();
    assert!(
        dead > 0 && uneven > 0,
        "the fixture needs dead filters ({dead}) and uneven groups"
    );
    let (_, rep) = round_trip("flgc-g3", &graph, &w);
    assert!(rep.uneven > 0 && rep.group_convs > rep.uneven, "{rep:?}");
    assert!(
        rep.dead_groups > 0,
        "dead groups are zero-weight convs: {rep:?}"
    );
}

#[test]
fn flgc_balanced_start_exports_as_plain_grouped_convs() {
    let (graph, mut w) = gaussian_flgc(4, 2);
    gconv::train::selection::init_selection(
        &graph,
        &mut w,
        gconv::train::selection::FlgcInit::Balanced,
        2,
    );
    let (_, rep) = round_trip("flgc-balanced", &graph, &w);
    // SGC's grouping: every FLGC layer is one grouped Conv, nothing is gathered.
    assert_eq!((rep.uneven, rep.gathers), (0, 0), "{rep:?}");
}

#[test]
fn batch_norms_kept_unfolded_export_too() {
    let spec = small("mobilenetv2-flgc");
    let g = spec.build().unwrap();
    let w = Weights::init(&g, 9);
    let opts = CompileOptions {
        fold_bn: false,
        ..Default::default()
    };
    let (cg, cw) = compile(&g, &w, &opts).unwrap();
    assert!(cg.nodes.iter().any(|n| matches!(n.op, Op::BatchNorm(_))));
    let (bytes, _) = onnx_bytes(&cg, &cw, &Default::default()).unwrap();
    let m = parse_onnx(&bytes, "bn.onnx").unwrap();
    let (fg, fw, _) = fold_permutations(&m.graph, &m.weights).unwrap();
    assert_eq!(fg.cost().total_params, cg.cost().total_params);
    let x = input(cg.input_shape(), 1, 3);
    let y = cpu::run_graph(&cg, &cw, &x).unwrap();
    assert_matches("bn", &cpu::run_graph(&fg, &fw, &x).unwrap(), &y);
}

#[test]
fn imported_onnx_models_export_again() {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/onnx");
    for name in [
        "shufflenet",
        "shufflenet_dynamo",
        "resnext",
        "mobilenet",
        "se_head",
    ] {
        let m = read_onnx(dir.join(format!("{name}.onnx"))).unwrap();
        let (g, w, _) = fold_permutations(&m.graph, &m.weights).unwrap();
        round_trip(name, &g, &w);
        // Unfolded: its channel gathers and concats are exported as ONNX ops.
        round_trip(&format!("{name} unfolded"), &m.graph, &m.weights);
    }
}

#[test]
fn a_training_form_flgc_layer_is_an_error_naming_it() {
    let (graph, w) = gaussian_flgc(3, 1);
    let e = onnx_bytes(&graph, &w, &Default::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("layer1.0.conv1") && e.contains("compile"), "{e}");
}

/// A random graph around index-addressed convs: duplicated and unused input channels,
/// empty and dead groups, permuted outputs, a residual add, a concat with permuted and
/// repeated sources, a channel gather; seeded.
fn random_table_graph(seed: u64) -> Graph {
    use gconv::graph::{Conv2dSpec, GraphBuilder, GroupRange, GroupedConvTable};
    use gconv::ops::Concat;
    use rand::rngs::SmallRng;
    use rand::seq::SliceRandom;
    use rand::{Rng, SeedableRng};
    let mut r = SmallRng::seed_from_u64(seed);
    let c = r.random_range(3..9);
    let n = r.random_range(3..10);
    let k = [1, 3][r.random_range(0..2)];
    let mut b = GraphBuilder::new("random", [c, 6, 6]);
    let x = b.input();
    let stem = b
        .push(
            "stem",
            Op::conv2d(Conv2dSpec::square(c, c, 1, 1, 0).bias(true)),
            &[x],
        )
        .unwrap();
    let act = b.push("stem.relu", Op::relu(), &[stem]).unwrap();
    // Random groups over a random list of input positions.
    let in_index: Vec<usize> = (0..r.random_range(1..2 * c))
        .map(|_| r.random_range(0..c))
        .collect();
    let mut out_index: Vec<usize> = (0..n).collect();
    out_index.shuffle(&mut r);
    let groups = r.random_range(1..5);
    let (mut table, mut at_in, mut at_out) = (Vec::new(), 0, 0);
    for gi in 0..groups {
        let in_len = if gi + 1 == groups {
            in_index.len() - at_in
        } else {
            r.random_range(0..=in_index.len() - at_in)
        };
        let out_len = if gi + 1 == groups {
            n - at_out
        } else {
            r.random_range(0..=n - at_out)
        };
        table.push(GroupRange {
            in_start: at_in,
            in_len,
            out_start: at_out,
            out_len,
        });
        at_in += in_len;
        at_out += out_len;
    }
    let spec = Conv2dSpec::square(c, n, k, 1, k / 2)
        .bias(true)
        .groups(groups);
    let t = GroupedConvTable {
        spec,
        table,
        in_index,
        out_index,
    };
    let tab = b.push("table", Op::GroupedConvTable(t), &[act]).unwrap();
    let side = b
        .push("side", Op::conv2d(Conv2dSpec::square(c, n, 1, 1, 0)), &[x])
        .unwrap();
    let sum = b.push("add", Op::add(), &[tab, side]).unwrap();
    let mut sources: Vec<[usize; 2]> = (0..n)
        .map(|ch| [0, ch])
        .chain((0..c).map(|ch| [1, ch]))
        .collect();
    sources.shuffle(&mut r);
    if r.random_bool(0.5) {
        sources.push(sources[0]);
    }
    let cat = b
        .push(
            "cat",
            Op::Concat(Concat {
                inputs: 2,
                sources: sources.clone(),
            }),
            &[sum, act],
        )
        .unwrap();
    let idx: Vec<usize> = (0..r.random_range(1..sources.len() + 2))
        .map(|_| r.random_range(0..sources.len()))
        .collect();
    let gth = b.push("gather", Op::gather(idx.clone()), &[cat]).unwrap();
    let pool = b
        .push("pool", Op::adaptive_avg_pool([1, 1]), &[gth])
        .unwrap();
    let flat = b.push("flatten", Op::flatten(), &[pool]).unwrap();
    let fc = b
        .push("fc", Op::linear(idx.len(), 4, true), &[flat])
        .unwrap();
    b.finish(fc)
}

#[test]
fn random_index_addressed_graphs_round_trip() {
    let seeds = match std::env::var("SEEDS") {
        Ok(n) => 0..n.parse().unwrap(),
        Err(_) => 0..200,
    };
    for seed in seeds {
        let g = random_table_graph(seed);
        let w = Weights::random_for_tests(&g, seed);
        round_trip(&format!("random graph {seed}"), &g, &w);
    }
}

/// Every activation of the table, after a grouped conv and before another, exports (its own
/// ONNX operator, or the arithmetic `onnx::patterns` recognises) and reads back as the same
/// activation with the same parameters and outputs. Parameters off their defaults.
#[test]
fn every_activation_exports_and_reads_back_as_itself() {
    use gconv::graph::{Conv2dSpec, GraphBuilder};
    use gconv::ops::Activation;
    for row in Activation::ROWS {
        let act = match row.default {
            Activation::None => continue,
            Activation::LeakyRelu { .. } => Activation::LeakyRelu { alpha: 0.2 },
            Activation::Elu { .. } => Activation::Elu { alpha: 0.7 },
            Activation::HardSigmoid { .. } => Activation::HARD_SIGMOID_TORCH,
            a => a,
        };
        let mut b = GraphBuilder::new(format!("act_{}", row.kind), [4, 6, 6]);
        let conv = |n| Op::Conv2d(Conv2dSpec::square(4, n, 3, 1, 1).groups(2).bias(true));
        let y = b.push("conv1", conv(6), &[b.input()]).unwrap();
        let y = b.push("act", Op::Activation(act), &[y]).unwrap();
        let spec = Conv2dSpec::square(6, 4, 1, 1, 0).groups(2);
        let y = b.push("conv2", Op::Conv2d(spec), &[y]).unwrap();
        let g = b.finish(y);
        let w = Weights::random_for_tests(&g, 3);
        let (cg, _) = round_trip(row.kind, &g, &w);
        let (bytes, _) = onnx_bytes(&cg, &w, &Default::default()).unwrap();
        let back = parse_onnx(&bytes, format!("{}.onnx", row.kind)).unwrap();
        let acts: Vec<Activation> = back
            .graph
            .nodes
            .iter()
            .filter_map(|n| match n.op {
                Op::Activation(a) => Some(a),
                _ => None,
            })
            .collect();
        assert_eq!(acts, [act], "{}: read back as {acts:?}", row.kind);
    }
}
