//! MobileNetV2 builder (torchvision names: `features.{i}.conv.{j}`, `classifier.1`), with
//! Wang et al.'s SGC / FLGC variants: every 1×1 conv with more filters than `grouped_above`
//! (96) grouped.

use super::scheme::{GroupSite, Grouping};
use super::{Arch, ConvKind, ModelSpec, StemKind};
use crate::error::Result;
use crate::graph::{Conv2dSpec, Graph, GraphBuilder, NodeId, Op};

/// torchvision's `_make_divisible`: `v` rounded to the nearest multiple of `d` (at least `d`),
/// never more than 10 % below `v`.
fn make_divisible(v: f32, d: usize) -> usize {
    let mut n = (((v + d as f32 / 2.0) as usize) / d * d).max(d);
    if (n as f32) < 0.9 * v {
        n += d;
    }
    n
}

/// The inverted-residual stages `(expansion t, channels c, blocks n, stride s)`.
const STAGES: [(usize, usize, usize, usize); 7] = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
];

/// The stage index of the last 1×1 conv (`head` in [`ModelSpec::stage_names`]).
const HEAD: usize = STAGES.len();

struct Ctx<'a> {
    b: GraphBuilder,
    pointwise: ConvKind,
    grouping: Grouping<'a>,
    grouped_above: usize,
    /// The stage being built (0 = `stage1`, [`HEAD`] = the last 1×1 conv).
    stage: usize,
}

impl Ctx<'_> {
    /// A bias-free conv; 1×1 convs with more than `grouped_above` filters are grouped as the
    /// model says (the layer's G, its stage's, or the model's).
    fn conv(&mut self, name: &str, x: NodeId, spec: Conv2dSpec) -> Result<NodeId> {
        let grouped = spec.kernel == [1, 1] && spec.out_channels > self.grouped_above;
        let g = if grouped {
            self.grouping.site(name, self.stage)
        } else {
            1
        };
        let op = match (grouped, self.pointwise) {
            (false, _) | (_, ConvKind::Dense) => Op::Conv2d(spec),
            (true, _) if g == 1 => Op::Conv2d(spec),
            (true, ConvKind::Sgc) => Op::Conv2d(spec.groups(g)),
            (true, ConvKind::Flgc) => Op::flgc(spec.groups(g)),
        };
        self.b.push(name, op, &[x])
    }

    fn bn(&mut self, name: &str, x: NodeId) -> Result<NodeId> {
        let c = self.b.shape(x)[0];
        self.b.push(name, Op::batch_norm(c, 1e-5), &[x])
    }

    /// Conv + BN + ReLU6, as torchvision's `Conv2dNormActivation` named `{p}.0`, `{p}.1`,
    /// `{p}.2`.
    fn conv_bn(&mut self, p: &str, x: NodeId, spec: Conv2dSpec) -> Result<NodeId> {
        let y = self.conv(&format!("{p}.0"), x, spec)?;
        let y = self.bn(&format!("{p}.1"), y)?;
        self.b.push(&format!("{p}.2"), Op::relu6(), &[y])
    }
}

pub(super) fn build(spec: &ModelSpec) -> Result<(Graph, Vec<GroupSite>)> {
    let Arch::Mobilenetv2 {
        pointwise,
        groups,
        stage_groups,
        grouped_above,
        dropout,
        stem,
    } = &spec.arch
    else {
        unreachable!("mobilenet::build called on a non-MobileNetV2 spec")
    };
    let mut cx = Ctx {
        b: GraphBuilder::new(&spec.name, spec.input),
        pointwise: *pointwise,
        grouping: Grouping::new(spec, stage_groups.as_deref(), *groups),
        grouped_above: *grouped_above,
        stage: 0,
    };
    let small = *stem == StemKind::Small;
    let w = spec.width;
    let mut c = make_divisible(32.0 * w, 8);
    let last = make_divisible(1280.0 * w.max(1.0), 8);
    let first_stride = if small { 1 } else { 2 };
    let mut x = cx.b.input();
    let c_in = spec.input[0];
    x = cx.conv_bn(
        "features.0",
        x,
        Conv2dSpec::square(c_in, c, 3, first_stride, 1),
    )?;
    let mut i = 1;
    for (si, &(t, ch, n, s)) in STAGES.iter().enumerate() {
        let out = make_divisible(ch as f32 * w, 8);
        // Small inputs (28–32 px) keep the second stage at stride 1, as CIFAR MobileNetV2s do.
        let s = if small && si == 1 { 1 } else { s };
        cx.stage = si;
        for bi in 0..n {
            let stride = if bi == 0 { s } else { 1 };
            let p = format!("features.{i}.conv");
            let hidden = c * t;
            let mut y = x;
            let mut j = 0;
            if t != 1 {
                y = cx.conv_bn(&format!("{p}.0"), y, Conv2dSpec::square(c, hidden, 1, 1, 0))?;
                j = 1;
            }
            let dw = Conv2dSpec::square(hidden, hidden, 3, stride, 1).groups(hidden);
            y = cx.conv_bn(&format!("{p}.{j}"), y, dw)?;
            // The linear projection: conv `{p}.{j+1}` and BN `{p}.{j+2}`, no activation.
            let proj = Conv2dSpec::square(hidden, out, 1, 1, 0);
            y = cx.conv(&format!("{p}.{}", j + 1), y, proj)?;
            y = cx.bn(&format!("{p}.{}", j + 2), y)?;
            if stride == 1 && c == out {
                y =
                    cx.b.push(&format!("features.{i}.add"), Op::add(), &[x, y])?;
            }
            x = y;
            c = out;
            i += 1;
        }
    }
    cx.stage = HEAD;
    x = cx.conv_bn(
        &format!("features.{i}"),
        x,
        Conv2dSpec::square(c, last, 1, 1, 0),
    )?;
    x = cx.b.push("avgpool", Op::adaptive_avg_pool([1, 1]), &[x])?;
    x = cx.b.push("flatten", Op::flatten(), &[x])?;
    x = cx.b.push("classifier.0", Op::dropout(*dropout), &[x])?;
    x = cx.b.push(
        "classifier.1",
        Op::linear(last, spec.num_classes, true),
        &[x],
    )?;
    let sites = cx.grouping.sites;
    if let Some(sg) = stage_groups {
        let empty = (0..=HEAD).find(|&s| sg[s] > 1 && !sites.iter().any(|t| t.stage == s));
        if let Some(s) = empty {
            return Err(crate::error::Error::Model {
                model: spec.name.clone(),
                msg: format!(
                    "stage_groups[{s}] = {}, but {} has no 1×1 conv of more than {grouped_above} \
                     filters to group (its G must be 1)",
                    sg[s],
                    spec.stage_names()[s]
                ),
            });
        }
    }
    Ok((cx.b.finish(x), sites))
}

#[cfg(test)]
mod tests {
    use super::make_divisible;

    #[test]
    fn make_divisible_is_torchvisions() {
        assert_eq!(make_divisible(32.0, 8), 32);
        assert_eq!(make_divisible(32.0 * 0.5, 8), 16);
        assert_eq!(make_divisible(24.0 * 0.35, 8), 8);
        assert_eq!(make_divisible(1280.0 * 1.4, 8), 1792);
        // Rounding down by more than 10 % is not allowed: 11 → 16, not 8.
        assert_eq!(make_divisible(11.0, 8), 16);
    }
}
