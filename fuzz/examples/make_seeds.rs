//! Writes the small generated seeds of the fuzz corpora into `fuzz/seeds/<target>/`
//! (committed; `scripts/fuzz_smoke.sh` adds the real fixtures of `tests/fixtures` and
//! `models/`). Deterministic: re-running gives the same bytes.
//!
//! `cargo +nightly run --release --manifest-path fuzz/Cargo.toml --example make_seeds`

use gconv::graph::{passes, Conv2dSpec, GraphBuilder, Op, Pool2dSpec};
use gconv::zoo::{Arch, ModelSpec};
use gconv::{Tensor, Weights};
use image::{ImageBuffer, ImageFormat, Luma, LumaA, Rgb, Rgba};
use std::collections::BTreeMap;
use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};

fn out(target: &str, name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("seeds")
        .join(target);
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

fn main() -> gconv::Result<()> {
    // ---- exported models: a small VGG-like graph of every common op, and an FLGC ResNet
    // exported by index re-ordering (grouped conv tables, adds), BN folded.
    let mut b = GraphBuilder::new("seed", [2, 6, 6]);
    let x = b.input();
    let c = b.push(
        "c",
        Op::Conv2d(Conv2dSpec::square(2, 4, 3, 1, 1).bias(true)),
        &[x],
    )?;
    let n = b.push(
        "bn",
        Op::BatchNorm {
            channels: 4,
            eps: 1e-5,
        },
        &[c],
    )?;
    let r = b.push("r", Op::Relu, &[n])?;
    let pool = Pool2dSpec {
        kernel: [2, 2],
        stride: [2, 2],
        padding: [0, 0],
    };
    let m = b.push("mp", Op::MaxPool(pool), &[r])?;
    let g = b.push(
        "g",
        Op::Gather {
            indices: vec![3, 0, 1, 2],
        },
        &[m],
    )?;
    let a = b.push("add", Op::Add, &[m, g])?;
    let p = b.push("ap", Op::AdaptiveAvgPool { output: [1, 1] }, &[a])?;
    let f = b.push("f", Op::Flatten, &[p])?;
    let d = b.push("d", Op::Dropout { p: 0.5 }, &[f])?;
    let l = b.push(
        "fc",
        Op::Linear {
            in_features: 4,
            out_features: 3,
            bias: true,
        },
        &[d],
    )?;
    let s = b.push("sm", Op::Softmax, &[l])?;
    let graph = b.finish(s);
    let w = Weights::random_for_tests(&graph, 1);
    let meta = BTreeMap::from([("norm_mean".to_string(), "0.5".to_string())]);
    gconv::io::write_exported(out("exported", "ops.safetensors"), &graph, &w, &meta)?;
    let json = serde_json::to_string(&graph).unwrap();
    std::fs::write(out("exported_graph_json", "ops.json"), json).unwrap();

    let mut spec = ModelSpec::load("resnet50-dsc-flgc")?;
    spec.input = [1, 8, 8];
    spec.num_classes = 2;
    spec.width = 0.0625;
    if let Arch::Resnet { layers, groups, .. } = &mut spec.arch {
        *layers = [1, 1, 1, 1];
        *groups = 2;
    }
    let graph = spec.build()?;
    let w = Weights::random_for_tests(&graph, 2);
    let (graph, w) = passes::export_flgc(&graph, &w)?;
    let (graph, w) = passes::fold_batch_norm(&graph, &w)?;
    gconv::io::write_exported(
        out("exported", "flgc.safetensors"),
        &graph,
        &w,
        &BTreeMap::new(),
    )?;
    let json = serde_json::to_string(&graph).unwrap();
    std::fs::write(out("exported_graph_json", "flgc.json"), json).unwrap();

    // ---- safetensors: f32 with metadata, and an empty file.
    let t = Weights::init(&spec.build()?, 3);
    let mut small = Weights::new();
    for (k, v) in t.iter().take(3) {
        small.insert(k.clone(), v.clone());
    }
    small.insert("s", Tensor::new(vec![], vec![1.5])?);
    small.insert("z", Tensor::new(vec![0, 3], vec![])?);
    let meta = BTreeMap::from([("k".to_string(), "v".to_string())]);
    gconv::io::write_safetensors(out("safetensors", "small.safetensors"), &small, &meta)?;
    gconv::io::write_safetensors(
        out("safetensors", "empty.safetensors"),
        &Weights::new(),
        &BTreeMap::new(),
    )?;

    // ---- npy: headers numpy writes, in all three versions, and a few odd shapes.
    let npy = |ver: u8, header: &str, data: &[u8]| {
        let mut v = b"\x93NUMPY".to_vec();
        v.extend_from_slice(&[ver, 0]);
        if ver == 1 {
            v.extend_from_slice(&(header.len() as u16).to_le_bytes());
        } else {
            v.extend_from_slice(&(header.len() as u32).to_le_bytes());
        }
        v.extend_from_slice(header.as_bytes());
        v.extend_from_slice(data);
        v
    };
    let h =
        |d: &str, s: &str| format!("{{'descr': '{d}', 'fortran_order': False, 'shape': {s}, }}\n");
    for (name, ver, header, data) in [
        ("f4_2x3_v1.npy", 1, h("<f4", "(2, 3)"), vec![0u8; 24]),
        ("f8_v2.npy", 2, h("<f8", "(2,)"), vec![1u8; 16]),
        (
            "f2_v3.npy",
            3,
            h("<f2", "(1, 1, 1, 2)"),
            vec![0x3c, 0, 0, 0xc0],
        ),
        ("u1_scalar.npy", 1, h("|u1", "()"), vec![7]),
        ("long.npy", 1, h("<f4", "(2L, 1L)"), vec![0u8; 8]),
        ("list.npy", 1, h("<f4", "[1, [2]]"), vec![]),
        ("empty.npy", 1, h("<f4", "(0, 5)"), vec![]),
    ] {
        std::fs::write(out("npy", name), npy(ver, &header, &data)).unwrap();
    }

    // ---- IDX: images and labels, plain and gzip'd.
    let mut img = vec![0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 2];
    img.extend((0u8..12).map(|i| i * 20));
    let labels = vec![0, 0, 8, 1, 0, 0, 0, 3, 1, 2, 3];
    for (name, bytes) in [("img.idx3", img), ("lab.idx1", labels)] {
        std::fs::write(out("idx", name), &bytes).unwrap();
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(&bytes).unwrap();
        std::fs::write(out("idx", &format!("{name}.gz")), e.finish().unwrap()).unwrap();
    }

    // ---- images: PNG in several colour types and depths, JPEG grey and RGB.
    let save = |name: &str, img: image::DynamicImage, fmt: ImageFormat| {
        let mut c = Cursor::new(Vec::new());
        img.write_to(&mut c, fmt).unwrap();
        std::fs::write(out("image", name), c.into_inner()).unwrap();
    };
    let l8 = ImageBuffer::from_fn(5, 3, |x, y| Luma([(x * 40 + y * 7) as u8]));
    let la8 = ImageBuffer::from_fn(3, 3, |x, y| LumaA([(x * 80) as u8, (y * 100) as u8]));
    let rgb8 = ImageBuffer::from_fn(4, 4, |x, y| Rgb([(x * 60) as u8, (y * 60) as u8, 9]));
    let rgba16 = ImageBuffer::from_fn(2, 3, |x, y| {
        Rgba([(x * 9000) as u16, (y * 9000) as u16, 7, 65535])
    });
    save("l8.png", l8.clone().into(), ImageFormat::Png);
    save("la8.png", la8.into(), ImageFormat::Png);
    save("rgb8.png", rgb8.clone().into(), ImageFormat::Png);
    save("rgba16.png", rgba16.into(), ImageFormat::Png);
    save("l8.jpg", l8.into(), ImageFormat::Jpeg);
    save("rgb8.jpg", rgb8.into(), ImageFormat::Jpeg);

    // ---- TOML: a tiny VGG and a tiny ResNet, and a scheme (the zoo's files are added by
    // the smoke script).
    std::fs::write(
        out("model_toml", "tiny_vgg.toml"),
        "name = \"t\"\nnum_classes = 3\ninput = [1, 8, 8]\nwidth = 0.5\n\n[arch]\nfamily = \"vgg\"\nstages = [[4], [8, 8]]\nclassifier = [8]\ndropout = 0.5\nstage_groups = [1, 2]\ngrouped = \"flgc\"\n",
    )
    .unwrap();
    std::fs::write(
        out("model_toml", "tiny_resnet.toml"),
        "name = \"r\"\nnum_classes = 2\ninput = [3, 16, 16]\n\n[arch]\nfamily = \"resnet\"\nlayers = [1, 1, 1, 1]\nblock = \"dsc\"\npointwise = \"sgc\"\ngroups = 2\nstem = \"small\"\n",
    )
    .unwrap();
    std::fs::write(
        out("scheme_toml", "g.toml"),
        "name = \"g\"\ndescription = \"d\"\nstage_groups = [1, 2, 4, 8, 16]\n",
    )
    .unwrap();
    Ok(())
}
