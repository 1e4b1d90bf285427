//! SGD steps against `Sgd::step`.

use super::{random, read, run, t, up, with_gpu};
use gconv::gpu::kernels::optim::{self, SgdArgs};
use gconv::graph::{GraphBuilder, Op};
use gconv::testing::{assert_close, Tolerance};
use gconv::train::{Sgd, SgdConfig};
use gconv::Weights;

/// Two steps (lr 0.1 then 0.05, rewritten into `hyper` between them; the dispatches are
/// built once) of a linear layer's weight (decayed) and bias, against `Sgd::step`.
#[test]
fn sgd_two_steps_match_cpu() {
    with_gpu(|ctx| {
        let (fin, fout) = (37, 5);
        let mut gb = GraphBuilder::new("sgd", [1, 1, fin]);
        let f = gb
            .push("flat", Op::Flatten(gconv::ops::Flatten), &[gb.input()])
            .unwrap();
        let fc = gb
            .push(
                "fc",
                Op::Linear(gconv::ops::Linear {
                    in_features: fin,
                    out_features: fout,
                    bias: true,
                }),
                &[f],
            )
            .unwrap();
        let graph = gb.finish(fc);
        let config = SgdConfig {
            momentum: 0.9,
            weight_decay: 5e-3,
        };
        let mut weights = Weights::new();
        weights.insert("fc.weight", random(&[fout, fin], 1));
        weights.insert("fc.bias", random(&[fout], 2));
        let mut grads = Weights::new();
        grads.insert("fc.weight", random(&[fout, fin], 3));
        grads.insert("fc.bias", random(&[fout], 4));
        let w0 = weights.clone();

        let hyper = up(ctx, "hyper", &[0.0, 123.0]); // extra values are ignored
        let mut bufs = Vec::new();
        for key in ["fc.weight", "fc.bias"] {
            let n = w0.require(key).unwrap().numel();
            let p = up(ctx, key, w0.require(key).unwrap().data());
            let g = up(ctx, "grad", grads.require(key).unwrap().data());
            let v = ctx.storage_buffer("velocity", (n * 4) as u64).unwrap();
            bufs.push((key, n, p, g, v));
        }
        let mut dispatches = Vec::new();
        for (key, n, p, g, v) in &bufs {
            // Both are decayed (conv / linear weights and biases), as `trainable_params`.
            dispatches.extend(
                optim::sgd(
                    ctx,
                    key,
                    (
                        *n,
                        &SgdConfig {
                            momentum: config.momentum,
                            weight_decay: config.weight_decay,
                        },
                        true,
                    ),
                    SgdArgs {
                        grad: t(g),
                        hyper: t(&hyper),
                        param: t(p),
                        velocity: t(v),
                    },
                )
                .map(|c| vec![c])
                .unwrap(),
            );
        }
        let mut opt = Sgd::new(config);
        for lr in [0.1f32, 0.05] {
            opt.step(&graph, &mut weights, &grads, lr).unwrap();
            ctx.queue
                .write_buffer(&hyper, 0, bytemuck::cast_slice(&[lr]));
            run(ctx, &dispatches);
        }
        for (key, _, p, _, v) in &bufs {
            assert_close(
                key,
                &read(ctx, p),
                weights.require(key).unwrap().data(),
                Tolerance::F32_OP,
            );
            let m = opt.state().require(&format!("{key}.momentum")).unwrap();
            assert_close(
                &format!("{key} velocity"),
                &read(ctx, v),
                m.data(),
                Tolerance::F32_OP,
            );
        }
    });
}
