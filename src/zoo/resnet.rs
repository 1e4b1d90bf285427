//! ResNet-50 family builder (torchvision v1.5 names; DSC / SGC / FLGC variants of Wang et al.).

use super::scheme::{GroupSite, Grouping};
use super::{scale_channels, Arch, BlockKind, ConvKind, ModelSpec, StemKind};
use crate::error::Result;
use crate::graph::{Conv2dSpec, Graph, GraphBuilder, NodeId, Op, Pool2dSpec};

struct Ctx<'a> {
    b: GraphBuilder,
    pointwise: ConvKind,
    grouping: Grouping<'a>,
    /// The stage being built (0 = `layer1`).
    stage: usize,
}

impl Ctx<'_> {
    fn bn(&mut self, name: &str, x: NodeId) -> Result<NodeId> {
        let channels = self.b.shape(x)[0];
        self.b.push(
            name,
            Op::BatchNorm(crate::ops::BatchNorm {
                channels,
                eps: 1e-5,
            }),
            &[x],
        )
    }

    fn relu(&mut self, name: &str, x: NodeId) -> Result<NodeId> {
        self.b.push(name, Op::relu(), &[x])
    }

    /// A 1×1 conv inside a block: dense, SGC or FLGC with its G (the layer's, the stage's or
    /// the model's).
    fn pointwise(&mut self, name: &str, x: NodeId, out: usize, stride: usize) -> Result<NodeId> {
        let c = self.b.shape(x)[0];
        let conv = Conv2dSpec::square(c, out, 1, stride, 0);
        let g = self.grouping.site(name, self.stage);
        let op = match self.pointwise {
            ConvKind::Dense => Op::Conv2d(conv),
            ConvKind::Sgc => Op::Conv2d(conv.groups(g)),
            ConvKind::Flgc if g == 1 => Op::Conv2d(conv),
            ConvKind::Flgc => Op::FlgcConv2d(crate::ops::FlgcSpec(conv.groups(g))),
        };
        self.b.push(name, op, &[x])
    }

    fn conv(&mut self, name: &str, x: NodeId, spec: Conv2dSpec) -> Result<NodeId> {
        self.b.push(name, Op::Conv2d(spec), &[x])
    }
}

pub(super) fn build(spec: &ModelSpec) -> Result<(Graph, Vec<GroupSite>)> {
    let Arch::Resnet {
        layers,
        block,
        pointwise,
        groups,
        stage_groups,
        stem,
    } = &spec.arch
    else {
        unreachable!("resnet::build called on a non-ResNet spec")
    };
    let grouping = Grouping::new(spec, stage_groups.as_deref(), *groups);
    // Channel counts are rounded to a multiple of every G where G must divide them (SGC).
    let align = if *pointwise == ConvKind::Sgc {
        grouping.all().fold(1, lcm)
    } else {
        1
    };
    let ch = |c: usize| scale_channels(c, spec.width, align);
    let mut cx = Ctx {
        b: GraphBuilder::new(&spec.name, spec.input),
        pointwise: *pointwise,
        grouping,
        stage: 0,
    };
    let mut x = cx.b.input();
    let c_in = spec.input[0];
    let stem_out = ch(64);
    x = match stem {
        StemKind::Imagenet => cx.conv("conv1", x, Conv2dSpec::square(c_in, stem_out, 7, 2, 3))?,
        StemKind::Small => cx.conv("conv1", x, Conv2dSpec::square(c_in, stem_out, 3, 1, 1))?,
    };
    x = cx.bn("bn1", x)?;
    x = cx.relu("relu", x)?;
    if *stem == StemKind::Imagenet {
        x = cx.b.push(
            "maxpool",
            Op::MaxPool(crate::ops::MaxPool(Pool2dSpec::square(3, 2, 1))),
            &[x],
        )?;
    }
    for (li, (&n_blocks, planes)) in layers.iter().zip([64, 128, 256, 512]).enumerate() {
        let width = ch(planes);
        let out = ch(planes * 4);
        cx.stage = li;
        for bi in 0..n_blocks {
            let stride = if bi == 0 && li > 0 { 2 } else { 1 };
            let p = format!("layer{}.{bi}", li + 1);
            let identity = x;
            let mut y = cx.pointwise(&format!("{p}.conv1"), x, width, 1)?;
            y = cx.bn(&format!("{p}.bn1"), y)?;
            y = cx.relu(&format!("{p}.relu1"), y)?;
            match block {
                BlockKind::Bottleneck => {
                    y = cx.conv(
                        &format!("{p}.conv2"),
                        y,
                        Conv2dSpec::square(width, width, 3, stride, 1),
                    )?;
                }
                BlockKind::Dsc => {
                    y = cx.conv(
                        &format!("{p}.conv2_dw"),
                        y,
                        Conv2dSpec::square(width, width, 3, stride, 1).groups(width),
                    )?;
                    y = cx.bn(&format!("{p}.bn2_dw"), y)?;
                    y = cx.relu(&format!("{p}.relu2_dw"), y)?;
                    y = cx.pointwise(&format!("{p}.conv2_pw"), y, width, 1)?;
                }
            }
            y = cx.bn(&format!("{p}.bn2"), y)?;
            y = cx.relu(&format!("{p}.relu2"), y)?;
            y = cx.pointwise(&format!("{p}.conv3"), y, out, 1)?;
            y = cx.bn(&format!("{p}.bn3"), y)?;
            let c_here = cx.b.shape(identity)[0];
            let shortcut = if stride != 1 || c_here != out {
                let d = cx.pointwise(&format!("{p}.downsample.0"), identity, out, stride)?;
                cx.bn(&format!("{p}.downsample.1"), d)?
            } else {
                identity
            };
            y = cx.b.push(
                &format!("{p}.add"),
                Op::Add(crate::ops::Add),
                &[y, shortcut],
            )?;
            x = cx.relu(&format!("{p}.relu3"), y)?;
        }
    }
    x = cx.b.push(
        "avgpool",
        Op::AdaptiveAvgPool(crate::ops::AdaptiveAvgPool { output: [1, 1] }),
        &[x],
    )?;
    x =
        cx.b.push("flatten", Op::Flatten(crate::ops::Flatten), &[x])?;
    let f = cx.b.shape(x)[0];
    x = cx.b.push(
        "fc",
        Op::Linear(crate::ops::Linear {
            in_features: f,
            out_features: spec.num_classes,
            bias: true,
        }),
        &[x],
    )?;
    Ok((cx.b.finish(x), cx.grouping.sites))
}

/// Least common multiple (saturating: a G that large is refused by the layer anyway).
fn lcm(a: usize, b: usize) -> usize {
    fn gcd(a: usize, b: usize) -> usize {
        if b == 0 {
            a
        } else {
            gcd(b, a % b)
        }
    }
    if a == 0 || b == 0 {
        return a.max(b);
    }
    (a / gcd(a, b)).saturating_mul(b)
}
