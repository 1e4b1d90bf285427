//! VGG-BN builder (torchvision's `vgg*_bn` layer names and indices).

use super::scheme::{GroupSite, Grouping};
use super::{scale_channels, Arch, ConvKind, ModelSpec};
use crate::error::Result;
use crate::graph::{Conv2dSpec, Graph, GraphBuilder, Op, Pool2dSpec};

pub(super) fn build(spec: &ModelSpec) -> Result<(Graph, Vec<GroupSite>)> {
    let Arch::Vgg {
        stages,
        classifier,
        dropout,
        stage_groups,
        grouped,
    } = &spec.arch
    else {
        unreachable!("vgg::build called on a non-VGG spec")
    };
    let mut grouping = Grouping::new(spec, stage_groups.as_deref(), 1);
    let mut b = GraphBuilder::new(&spec.name, spec.input);
    let mut x = b.input();
    let mut idx = 0usize; // torchvision's index into `features`
    let mut c = spec.input[0];
    for (si, stage) in stages.iter().enumerate() {
        for &out in stage {
            let g = grouping.site(&format!("features.{idx}"), si);
            let out = scale_channels(out, spec.width, g);
            let conv = Conv2dSpec::square(c, out, 3, 1, 1).bias(true);
            let op = match (g, grouped) {
                (1, _) | (_, ConvKind::Dense) => Op::Conv2d(conv),
                (_, ConvKind::Sgc) => Op::Conv2d(conv.groups(g)),
                (_, ConvKind::Flgc) => Op::FlgcConv2d(crate::ops::FlgcSpec(conv.groups(g))),
            };
            x = b.push(&format!("features.{idx}"), op, &[x])?;
            x = b.push(
                &format!("features.{}", idx + 1),
                Op::BatchNorm(crate::ops::BatchNorm {
                    channels: out,
                    eps: 1e-5,
                }),
                &[x],
            )?;
            x = b.push(&format!("features.{}", idx + 2), Op::relu(), &[x])?;
            idx += 3;
            c = out;
        }
        x = b.push(
            &format!("features.{idx}"),
            Op::MaxPool(crate::ops::MaxPool(Pool2dSpec::square(2, 2, 0))),
            &[x],
        )?;
        idx += 1;
    }
    x = b.push(
        "avgpool",
        Op::AdaptiveAvgPool(crate::ops::AdaptiveAvgPool { output: [7, 7] }),
        &[x],
    )?;
    x = b.push("flatten", Op::Flatten(crate::ops::Flatten), &[x])?;
    let mut f = c * 49;
    let mut ci = 0usize;
    for &hidden in classifier {
        let hidden = scale_channels(hidden, spec.width, 1);
        x = b.push(
            &format!("classifier.{ci}"),
            Op::Linear(crate::ops::Linear {
                in_features: f,
                out_features: hidden,
                bias: true,
            }),
            &[x],
        )?;
        x = b.push(&format!("classifier.{}", ci + 1), Op::relu(), &[x])?;
        x = b.push(
            &format!("classifier.{}", ci + 2),
            Op::Dropout(crate::ops::Dropout { p: *dropout }),
            &[x],
        )?;
        ci += 3;
        f = hidden;
    }
    x = b.push(
        &format!("classifier.{ci}"),
        Op::Linear(crate::ops::Linear {
            in_features: f,
            out_features: spec.num_classes,
            bias: true,
        }),
        &[x],
    )?;
    Ok((b.finish(x), grouping.sites))
}
