//! Every gconv op → ONNX nodes. The match over [`Op`] is exhaustive on purpose: an op added
//! to gconv does not compile until it has an ONNX form here (and a channel-order rule in
//! [`super::export_order`]).

use super::export::{attr_float, attr_int, attr_ints, Emitter};
use super::export_conv::{plain_groups, table_groups};
use crate::error::{Error, Result};
use crate::graph::{NodeId, Op, Pool2dSpec};

impl Emitter<'_> {
    /// Emits gconv node `i` (all its inputs are emitted).
    pub(super) fn node(&mut self, i: NodeId) -> Result<()> {
        let g = self.g;
        let node = &g.nodes[i];
        let name = node.name.clone();
        match &node.op {
            Op::Input(_) => Err(Error::shape(&name, "a second graph input")),
            Op::Conv2d(s) => {
                let s = s.clone();
                self.conv_groups(i, &s, &plain_groups(&s))
            }
            Op::FlgcConv2d(_) => Err(Error::shape(
                &name,
                "an FLGC layer in training form; compile the graph first \
                 (gconv::compile::compile re-orders it into an uneven group convolution)",
            )),
            Op::GroupedConvTable(t) => {
                let (spec, groups) = (t.spec.clone(), table_groups(t));
                self.conv_groups(i, &spec, &groups)
            }
            Op::BatchNorm(bn) => {
                let eps = bn.eps;
                let o = self.order_of(node.inputs[0]);
                let mut ins = vec![self.value[node.inputs[0]].clone()];
                for k in ["weight", "bias", "running_mean", "running_var"] {
                    let v = self.w.require(&format!("{name}.{k}"))?.data();
                    let v: Vec<f32> = o.iter().map(|&c| v[c]).collect();
                    ins.push(self.floats(&format!("{name}.{k}"), &[v.len()], &v)?);
                }
                let attrs = vec![attr_float("epsilon", eps)];
                self.carried(i, "BatchNormalization", ins, attrs)
            }
            Op::Activation(a) => self.activation(i, *a),
            Op::MaxPool(p) => self.unary(i, "MaxPool", pool_attrs(&p.0)),
            Op::AvgPool(p) => {
                let mut attrs = pool_attrs(&p.0);
                attrs.push(attr_int("count_include_pad", 1));
                self.unary(i, "AveragePool", attrs)
            }
            Op::AdaptiveAvgPool(a) => {
                let [_, h, w] = self.g.nodes[node.inputs[0]].shape[..] else {
                    return Err(Error::shape(&name, "adaptive pool of a flat input"));
                };
                let [oh, ow] = a.output;
                if [oh, ow] == [h, w] {
                    self.value[i] = self.value[node.inputs[0]].clone();
                    Ok(())
                } else if [oh, ow] == [1, 1] {
                    self.unary(i, "GlobalAveragePool", vec![])
                } else if h % oh == 0 && w % ow == 0 {
                    let p = Pool2dSpec {
                        kernel: [h / oh, w / ow],
                        stride: [h / oh, w / ow],
                        padding: [0, 0],
                    };
                    self.unary(i, "AveragePool", pool_attrs(&p))
                } else {
                    Err(Error::shape(
                        &name,
                        format!(
                            "adaptive average pool from {h}×{w} to {oh}×{ow} has uneven bins, \
                             which no ONNX pooling op computes; export at an input size whose \
                             feature map divides by {oh}×{ow}"
                        ),
                    ))
                }
            }
            Op::Linear(l) => {
                let (inf, outf, has_bias) = (l.in_features, l.out_features, l.bias);
                let cols = self.order_of(node.inputs[0]);
                let wt = self.w.require(&format!("{name}.weight"))?.data();
                let wt: Vec<f32> = (0..outf)
                    .flat_map(|o| cols.iter().map(move |&c| wt[o * inf + c]))
                    .collect();
                let mut ins = vec![self.value[node.inputs[0]].clone()];
                ins.push(self.floats(&format!("{name}.weight"), &[outf, inf], &wt)?);
                if has_bias {
                    let b = self.w.require(&format!("{name}.bias"))?.data().to_vec();
                    ins.push(self.floats(&format!("{name}.bias"), &[outf], &b)?);
                }
                let y = self.add("Gemm", &name, ins, &name, vec![attr_int("transB", 1)]);
                self.finish_value(i, y, &(0..outf).collect::<Vec<_>>())
            }
            Op::Add(_) => self.binary(i, "Add"),
            Op::Mul(_) => self.binary(i, "Mul"),
            Op::Flatten(_) => {
                let p = node.inputs[0];
                // Flattened in the input's order when only linear layers read it (they
                // permute their columns), else in gconv's.
                let x = match self.order[i] {
                    Some(_) => self.value[p].clone(),
                    None => self.identity_input(i, 0),
                };
                let natural = self.order_of(i);
                let y = self.add("Flatten", &name, vec![x], &name, vec![attr_int("axis", 1)]);
                self.finish_value(i, y, &natural)
            }
            Op::Dropout(_) => {
                // The identity at inference.
                let p = node.inputs[0];
                let (x, natural) = (self.value[p].clone(), self.order_of(p));
                self.finish_value(i, x, &natural)
            }
            Op::Softmax(_) => {
                let x = self.identity_input(i, 0);
                let f = node.shape[0];
                let y = self.add("Softmax", &name, vec![x], &name, vec![attr_int("axis", 1)]);
                self.finish_value(i, y, &(0..f).collect::<Vec<_>>())
            }
            Op::Gather(gth) => {
                let pos = super::export_order::inverse(&self.order_of(node.inputs[0]));
                let planned = self.order_of(i);
                let idx: Vec<usize> = planned.iter().map(|&q| pos[gth.indices[q]]).collect();
                let x = self.value[node.inputs[0]].clone();
                let y = self.gather(&name, x, &idx, &name);
                self.finish_value(i, y, &planned)
            }
            Op::Concat(cat) => {
                let sources = cat.sources.clone();
                let mut ins = Vec::new();
                let mut at = Vec::new(); // (input, gconv channel) → ONNX position
                let mut offset = 0;
                for &p in &node.inputs {
                    let pos = super::export_order::inverse(&self.order_of(p));
                    at.push((offset, pos));
                    offset += self.g.nodes[p].shape[0];
                    ins.push(self.value[p].clone());
                }
                let stacked: Vec<usize> = sources
                    .iter()
                    .map(|&[k, ch]| at[k].0 + at[k].1[ch])
                    .collect();
                let bijective = offset == stacked.len() && {
                    let mut seen = vec![false; offset];
                    stacked
                        .iter()
                        .all(|&q| !std::mem::replace(&mut seen[q], true))
                };
                let cat_name = if bijective {
                    name.clone()
                } else {
                    format!("{name}.stack")
                };
                let y = self.add(
                    "Concat",
                    &cat_name,
                    ins,
                    &cat_name,
                    vec![attr_int("axis", 1)],
                );
                if bijective {
                    // ONNX position stacked[c] holds gconv channel c.
                    let natural = super::export_order::inverse(&stacked);
                    return self.finish_value(i, y, &natural);
                }
                let planned = self.order_of(i);
                let idx: Vec<usize> = planned.iter().map(|&c| stacked[c]).collect();
                let y = self.gather(&name, y, &idx, &name);
                self.finish_value(i, y, &planned)
            }
        }
    }

    /// A one-input op that keeps its input's channel order.
    fn unary(
        &mut self,
        i: NodeId,
        op_type: &str,
        attrs: Vec<super::proto::AttributeProto>,
    ) -> Result<()> {
        let x = self.value[self.g.nodes[i].inputs[0]].clone();
        self.carried(i, op_type, vec![x], attrs)
    }

    /// A two-input element-wise op (both inputs in one channel order).
    fn binary(&mut self, i: NodeId, op_type: &str) -> Result<()> {
        let ins = &self.g.nodes[i].inputs;
        let (a, b) = (ins[0], ins[1]);
        if self.order[a] != self.order[b] {
            return Err(Error::shape(
                self.name(i),
                "internal: inputs in different channel orders",
            ));
        }
        let ins = vec![self.value[a].clone(), self.value[b].clone()];
        self.carried(i, op_type, ins, vec![])
    }

    /// An op whose output is in its first input's channel order.
    pub(super) fn carried(
        &mut self,
        i: NodeId,
        op_type: &str,
        ins: Vec<String>,
        attrs: Vec<super::proto::AttributeProto>,
    ) -> Result<()> {
        let name = self.name(i);
        let natural = self.order_of(self.g.nodes[i].inputs[0]);
        let y = self.add(op_type, &name, ins, &name, attrs);
        self.finish_value(i, y, &natural)
    }
}

/// `kernel_shape`, `strides` and `pads` of a pooling window.
fn pool_attrs(p: &Pool2dSpec) -> Vec<super::proto::AttributeProto> {
    let [ph, pw] = p.padding;
    vec![
        attr_ints("kernel_shape", &p.kernel),
        attr_ints("strides", &p.stride),
        attr_ints("pads", &[ph, pw, ph, pw]),
    ]
}
