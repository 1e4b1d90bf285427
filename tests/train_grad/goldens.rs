//! Gradients against PyTorch goldens (`scripts/make_grad_goldens.py`).

use gconv::graph::{Conv2dSpec, Pool2dSpec};
use gconv::testing::{assert_close, Tolerance};
use gconv::train::backward as bw;
use gconv::{cpu, Tensor};

struct Goldens(Vec<u8>);

impl Goldens {
    fn load() -> Self {
        let p = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/grad_goldens.safetensors"
        );
        Goldens(std::fs::read(p).expect("run scripts/make_grad_goldens.py"))
    }
    fn t(&self, key: &str) -> Tensor {
        let st = safetensors::SafeTensors::deserialize(&self.0).unwrap();
        let v = st.tensor(key).unwrap_or_else(|e| panic!("{key}: {e}"));
        let data: Vec<f32> = match v.dtype() {
            safetensors::Dtype::F32 => v
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                .collect(),
            safetensors::Dtype::I64 => v
                .data()
                .chunks_exact(8)
                .map(|b| i64::from_le_bytes(b.try_into().unwrap()) as f32)
                .collect(),
            d => panic!("{key}: dtype {d:?}"),
        };
        Tensor::new(v.shape().to_vec(), data).unwrap()
    }
}

const GOLD: Tolerance = Tolerance::GOLDEN_OP; // atol 1e-4 + rtol 5e-4

#[test]
fn grads_match_pytorch_goldens() {
    let g = Goldens::load();
    // Grouped conv, G=2, stride 2, padding 1.
    let spec = Conv2dSpec::square(4, 6, 3, 2, 1).groups(2).bias(true);
    let (x, w, b) = (g.t("conv.x"), g.t("conv.weight"), g.t("conv.bias"));
    let y = cpu::conv2d(&x, &w, Some(b.data()), &spec).unwrap();
    assert_close("conv y", y.data(), g.t("conv.y").data(), GOLD);
    let cg = bw::conv2d_backward(&x, &w, &g.t("conv.r"), &spec).unwrap();
    assert_close("conv dx", cg.input.data(), g.t("conv.dx").data(), GOLD);
    assert_close(
        "conv dw",
        cg.weight.data(),
        g.t("conv.dweight").data(),
        GOLD,
    );
    assert_close(
        "conv db",
        cg.bias.unwrap().data(),
        g.t("conv.dbias").data(),
        GOLD,
    );

    // Batch norm, training mode, with the running-statistics update.
    let x = g.t("bn.x");
    let (gamma, beta) = (g.t("bn.weight"), g.t("bn.bias"));
    let (y, st) = bw::batch_norm_train(&x, gamma.data(), beta.data(), 1e-5).unwrap();
    assert_close("bn y", y.data(), g.t("bn.y").data(), GOLD);
    let (dx, dg, db) = bw::batch_norm_train_backward(&x, gamma.data(), &st, &g.t("bn.r")).unwrap();
    assert_close("bn dx", dx.data(), g.t("bn.dx").data(), GOLD);
    assert_close("bn dγ", &dg, g.t("bn.dweight").data(), GOLD);
    assert_close("bn dβ", &db, g.t("bn.dbias").data(), GOLD);
    let (mut rm, mut rv) = (g.t("bn.running_mean"), g.t("bn.running_var"));
    bw::update_running_stats(rm.data_mut(), rv.data_mut(), &st, 0.1);
    assert_close(
        "bn running_mean",
        rm.data(),
        g.t("bn.new_running_mean").data(),
        GOLD,
    );
    assert_close(
        "bn running_var",
        rv.data(),
        g.t("bn.new_running_var").data(),
        GOLD,
    );

    // Max pool with ties.
    // ReLU6 (hardtanh backward), with x exactly 0 and 6 among the inputs.
    let x = g.t("relu6.x");
    assert_close(
        "relu6 y",
        cpu::relu6(&x).data(),
        g.t("relu6.y").data(),
        GOLD,
    );
    let dx = bw::relu6_backward(&x, &g.t("relu6.r")).unwrap();
    assert_close("relu6 dx", dx.data(), g.t("relu6.dx").data(), GOLD);
    let x = g.t("maxpool.x");
    let p = Pool2dSpec::square(3, 2, 1);
    assert_close(
        "maxpool y",
        cpu::max_pool2d(&x, &p).unwrap().data(),
        g.t("maxpool.y").data(),
        GOLD,
    );
    let dx = bw::max_pool2d_backward(&x, &p, &g.t("maxpool.r")).unwrap();
    assert_close(
        "maxpool dx (ties)",
        dx.data(),
        g.t("maxpool.dx").data(),
        GOLD,
    );

    // Linear + cross-entropy.
    let (x, w, b) = (
        g.t("linear_ce.x"),
        g.t("linear_ce.weight"),
        g.t("linear_ce.bias"),
    );
    let labels: Vec<usize> = g
        .t("linear_ce.labels")
        .data()
        .iter()
        .map(|&v| v as usize)
        .collect();
    let logits = cpu::linear(&x, &w, Some(b.data())).unwrap();
    let (loss, dlogits, _) = bw::softmax_cross_entropy(&logits, &labels).unwrap();
    assert_close("ce loss", &[loss], g.t("linear_ce.loss").data(), GOLD);
    let (dx, dw, db) = bw::linear_backward(&x, &w, &dlogits, true).unwrap();
    assert_close("linear dx", dx.data(), g.t("linear_ce.dx").data(), GOLD);
    assert_close(
        "linear dw",
        dw.data(),
        g.t("linear_ce.dweight").data(),
        GOLD,
    );
    assert_close(
        "linear db",
        db.unwrap().data(),
        g.t("linear_ce.dbias").data(),
        GOLD,
    );

    // FLGC with the straight-through estimator (custom autograd Function in the script).
    let spec = Conv2dSpec::square(6, 8, 3, 1, 1).groups(3).bias(true);
    let (x, w, b) = (g.t("flgc.x"), g.t("flgc.weight"), g.t("flgc.bias"));
    let (s, t) = (g.t("flgc.select_in"), g.t("flgc.select_out"));
    let y = cpu::flgc_conv2d(&x, &w, Some(b.data()), &s, &t, &spec).unwrap();
    assert_close("flgc y", y.data(), g.t("flgc.y").data(), GOLD);
    let fg = bw::flgc_conv2d_backward(&x, &w, &s, &t, &g.t("flgc.r"), &spec).unwrap();
    assert_close("flgc dx", fg.input.data(), g.t("flgc.dx").data(), GOLD);
    assert_close(
        "flgc dW",
        fg.weight.data(),
        g.t("flgc.dweight").data(),
        GOLD,
    );
    assert_close(
        "flgc db",
        fg.bias.unwrap().data(),
        g.t("flgc.dbias").data(),
        GOLD,
    );
    assert_close(
        "flgc dS̄",
        fg.select_in.data(),
        g.t("flgc.dselect_in").data(),
        GOLD,
    );
    assert_close(
        "flgc dT̄",
        fg.select_out.data(),
        g.t("flgc.dselect_out").data(),
        GOLD,
    );
}
