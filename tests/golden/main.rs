//! The CPU reference path (`gconv::cpu`) against PyTorch-made goldens.
//!
//! The fixture `tests/fixtures/goldens.safetensors` is made by a committed script, from the
//! repository root:
//!
//! ```text
//! python3 scripts/make_goldens.py      # torch + numpy + safetensors; deterministic seed
//! ```
//!
//! Every tensor is keyed `"<case>.<name>"`; the safetensors `__metadata__` maps each case
//! to a JSON object with its `kind` and hyper-parameters (keys starting with `_` describe
//! the run and are not cases). The expected outputs were computed by PyTorch in float64
//! from the stored float32 inputs, so [`Tolerance::GOLDEN_OP`] measures gconv's error alone.
//!
//! Cases (kind: what is covered):
//! - `conv2d` (`F.conv2d`): G ∈ {1, 2, 3, 4, C}, channels per group > 1 where G < C,
//!   depthwise with channel multiplier 2, stride 2, padding 1 and 2, dilation 2, odd H/W
//!   (7×9, 9×7, 5×7), batch 1, 2 and 3, kernels 1×1, 3×3, 3×1 and 1×3 with mixed
//!   stride/padding/dilation, with and without bias;
//! - `batch_norm` (`F.batch_norm`, training=False): random γ, β, running stats; eps 1e-5, 1e-3;
//! - `max_pool` (3×3 s2 p1 as in ResNet, 2×2 s2 on odd sizes, 3×2 windows), `avg_pool`
//!   (padding with `count_include_pad`, no padding);
//! - `adaptive_avg_pool`: 10×9→7×7, 14×14→7×7, 7×7→7×7, 3×3→7×7, 1×1→7×7, 5×8→3×5, 9×7→1×1;
//! - `linear` (with and without bias), `relu`, `add`, `softmax` (large logits, ties),
//!   `gather` (`index_select` on dim 1, repeated and dropped channels);
//! - `flgc`: Wang et al. §2 forward with S̄ (C×G), T̄ (N×G) Gaussian, G=3, C=8, N=6, 1×1 and
//!   3×3 kernels, one case with exact ties in S̄/T̄ (lowest index wins); the row softmaxes
//!   Ŝ, T̂ and the mask M = T·Sᵀ are checked too;
//! - `grouped_conv_table`: uneven contiguous groups (per-group `F.conv2d` on channel slices,
//!   `torch.cat` in output order), with an empty group and a group without filters;
//! - `graph_vgg_tiny`: conv3×3+BN+ReLU, max-pool, grouped (G=4) conv+BN+ReLU, max-pool,
//!   adaptive avg-pool 2×2, flatten, linear — built with `GraphBuilder`, run by `run_graph`;
//! - `graph_resnet_bottleneck`: torchvision v1.5 Bottleneck (stride 2, downsample), node
//!   names as in `gconv::zoo`'s ResNet builder.
//!
//! Every single-op case is run twice: by calling the `gconv::cpu` function directly and as a
//! graph node through `run_node` (which reads parameters by key, exactly as stored); its
//! inferred output shape is checked against PyTorch's too. The test walks over every case in
//! the file, fails on an unknown kind and on any tensor that no check read, so no fixture can
//! be skipped silently.

use gconv::graph::{Conv2dSpec, Pool2dSpec};
use gconv::testing::{check_close, Tolerance};
use gconv::{Tensor, Weights};
use safetensors::{Dtype, SafeTensors};
use serde_json::Value;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

mod cases;
mod graphs;
mod single_op;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/goldens.safetensors"
);

/// The fixture file, decoded.
struct Goldens {
    /// Every tensor, by full key.
    tensors: BTreeMap<String, Tensor>,
    /// Case name → its JSON metadata.
    cases: BTreeMap<String, Value>,
    /// `_`-prefixed run information.
    info: BTreeMap<String, Value>,
}

fn load() -> Goldens {
    let bytes = std::fs::read(FIXTURE).unwrap_or_else(|e| {
        panic!("{FIXTURE}: {e} (make it with python3 scripts/make_goldens.py)")
    });
    let (_, header) = SafeTensors::read_metadata(&bytes).expect("safetensors header");
    let st = SafeTensors::deserialize(&bytes).expect("safetensors file");
    let mut tensors = BTreeMap::new();
    for (key, view) in st.tensors() {
        assert_eq!(view.dtype(), Dtype::F32, "{key}: goldens are float32");
        let data = view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        tensors.insert(key, Tensor::new(view.shape().to_vec(), data).unwrap());
    }
    let (mut cases, mut info) = (BTreeMap::new(), BTreeMap::new());
    for (k, v) in header
        .metadata()
        .clone()
        .expect("__metadata__ with the cases")
    {
        let v: Value = serde_json::from_str(&v).unwrap_or_else(|e| panic!("metadata {k}: {e}"));
        if k.starts_with('_') {
            info.insert(k, v);
        } else {
            cases.insert(k, v);
        }
    }
    Goldens {
        tensors,
        cases,
        info,
    }
}

/// One case: its metadata and tensors, remembering which tensors were read.
struct Case<'a> {
    name: &'a str,
    meta: &'a Value,
    g: &'a Goldens,
    used: RefCell<BTreeSet<String>>,
}

impl<'a> Case<'a> {
    fn new(g: &'a Goldens, name: &'a str) -> Self {
        Case {
            name,
            meta: &g.cases[name],
            g,
            used: RefCell::default(),
        }
    }

    fn kind(&self) -> &str {
        self.meta["kind"].as_str().unwrap_or("<no kind>")
    }

    fn opt(&self, k: &str) -> Option<&'a Tensor> {
        let key = format!("{}.{k}", self.name);
        let t = self.g.tensors.get(&key);
        if t.is_some() {
            self.used.borrow_mut().insert(key);
        }
        t
    }

    fn t(&self, k: &str) -> &'a Tensor {
        self.opt(k)
            .unwrap_or_else(|| panic!("{}: tensor `{k}` missing from the fixture", self.name))
    }

    /// This case's tensors other than `x`, `x2`, `y`, as a [`Weights`] keyed as stored
    /// (`"<case>.weight"`, ...) or, with `strip`, with the case prefix removed.
    fn weights(&self, strip: bool) -> Weights {
        let prefix = format!("{}.", self.name);
        let mut w = Weights::new();
        for (k, t) in self.g.tensors.range(prefix.clone()..) {
            let Some(rest) = k.strip_prefix(&prefix) else {
                break;
            };
            if !["x", "x2", "y"].contains(&rest) {
                w.insert(if strip { rest } else { k.as_str() }, t.clone());
            }
        }
        w
    }

    fn val(&self, k: &str) -> &'a Value {
        let v = &self.meta[k];
        assert!(!v.is_null(), "{}: metadata `{k}` missing", self.name);
        v
    }

    fn usize(&self, k: &str) -> usize {
        self.val(k).as_u64().expect("an integer") as usize
    }

    fn pair(&self, k: &str) -> [usize; 2] {
        serde_json::from_value(self.val(k).clone()).expect("a pair of integers")
    }

    fn pair3(&self, k: &str) -> [usize; 3] {
        serde_json::from_value(self.val(k).clone()).expect("three integers")
    }

    fn bool(&self, k: &str) -> bool {
        self.val(k).as_bool().expect("a boolean")
    }

    fn conv_spec(&self) -> Conv2dSpec {
        Conv2dSpec {
            in_channels: self.usize("in_channels"),
            out_channels: self.usize("out_channels"),
            kernel: self.pair("kernel"),
            stride: self.pair("stride"),
            padding: self.pair("padding"),
            dilation: self.pair("dilation"),
            groups: self.usize("groups"),
            bias: self.bool("bias"),
        }
    }

    fn pool_spec(&self) -> Pool2dSpec {
        Pool2dSpec {
            kernel: self.pair("kernel"),
            stride: self.pair("stride"),
            padding: self.pair("padding"),
        }
    }

    fn bias(&self) -> Option<&'a [f32]> {
        self.opt("bias").map(Tensor::data)
    }

    /// Compares `actual` with the stored tensor `k` (shape and values, GOLDEN_OP).
    fn check(&self, what: &str, actual: &Tensor, k: &str) -> Result<(), String> {
        let expected = self.t(k);
        let label = format!("{}.{k} ({what})", self.name);
        if actual.shape() != expected.shape() {
            return Err(format!(
                "{label}: shape {:?}, expected {:?}",
                actual.shape(),
                expected.shape()
            ));
        }
        check_close(&label, actual.data(), expected.data(), Tolerance::GOLDEN_OP)
    }
}
