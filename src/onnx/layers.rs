//! ONNX operators on activations → gconv ops. Weights come from constant inputs (the
//! initializers); channel shuffles, splits, slices and channel gathers become
//! [`Op::Gather`] nodes (the permutation fold removes them later), concats [`Op::Concat`];
//! the activation operators are those of `ops::activation`'s table (their attributes named
//! as the table's parameters), `Gelu` and the arithmetic of [`super::patterns`].

use super::import::Importer;
use super::proto::NodeProto;
use super::values::{attr_f, attr_i, attr_ints, attr_s, Const, Value};
use crate::error::Result;
use crate::graph::{Conv2dSpec, NodeId, Op, Pool2dSpec};
use crate::ops::{Activation, Mul};
use crate::tensor::Tensor;

/// The ONNX operators gconv imports besides the activations of `ops::activation`'s table
/// (all of them: [`supported`]); those on constants are folded at import time.
pub const SUPPORTED: &[&str] = &[
    "Conv",
    "BatchNormalization",
    "Clip",
    "Gelu",
    "Add",
    "Mul",
    "MaxPool",
    "AveragePool",
    "GlobalAveragePool",
    "ReduceMean",
    "Flatten",
    "Gemm",
    "MatMul",
    "Reshape",
    "Transpose",
    "Split",
    "Slice",
    "Gather",
    "Concat",
    "Softmax",
    "Identity",
    "Dropout",
    "Cast",
    "Shape",
    "Constant",
];

/// Every ONNX operator gconv imports: [`SUPPORTED`] and the table's activations.
pub fn supported() -> Vec<&'static str> {
    let mut v: Vec<&str> = Activation::ROWS.iter().filter_map(|r| r.onnx).collect();
    v.extend(SUPPORTED);
    v
}

impl<'a> Importer<'a> {
    /// Converts node `i` (`n`), which reads at least one activation.
    pub(crate) fn convert(&mut self, i: usize, n: &'a NodeProto) -> Result<()> {
        match n.op_type() {
            "Conv" => self.conv(n),
            "BatchNormalization" => self.batch_norm(n),
            "Clip" => self.clip(n),
            "Gelu" => self.gelu(n),
            "Add" => self.add(n),
            "Mul" => {
                let (a, b) = (self.plain(n, 0)?, self.plain(n, 1)?);
                let name = self.layer_name(n, None);
                let id = self.push(n, &name, Op::Mul(Mul), &[a, b])?;
                self.set_node(n, id);
                Ok(())
            }
            "MaxPool" | "AveragePool" => self.pool(n),
            "GlobalAveragePool" => self.unary(n, Op::adaptive_avg_pool([1, 1])),
            "ReduceMean" => self.reduce_mean(n),
            "Flatten" => self.flatten(n),
            "Gemm" | "MatMul" => self.linear(i, n),
            "Reshape" => self.reshape(n),
            "Transpose" => self.transpose(n),
            "Split" => self.split(n),
            "Slice" => self.slice(n),
            "Gather" => self.gather(n),
            "Concat" => self.concat(n),
            "Softmax" => self.softmax(n),
            "Identity" | "Dropout" | "Cast" => self.alias(n),
            other => match Activation::from_onnx(other) {
                Some(a) => self.activation(n, a),
                None => Err(self.err(
                    n,
                    format!(
                        "unsupported operator `{other}`; gconv imports {}",
                        supported().join(", ")
                    ),
                )),
            },
        }
    }

    pub(crate) fn unary(&mut self, n: &NodeProto, op: Op) -> Result<()> {
        let x = self.plain(n, 0)?;
        let name = self.layer_name(n, None);
        let id = self.push(n, &name, op, &[x])?;
        self.set_node(n, id);
        Ok(())
    }

    fn alias(&mut self, n: &NodeProto) -> Result<()> {
        if n.op_type() == "Cast" && !matches!(attr_i(n, "to", 1), 1) {
            return Err(self.err(n, "a cast of an activation to a non-float32 type"));
        }
        if n.output.iter().skip(1).any(|s| !s.is_empty()) {
            return Err(self.err(n, "the dropout mask output is not imported"));
        }
        let a = self.act(n, 0)?;
        self.set(n, 0, Value::Act(a));
        Ok(())
    }

    /// Stores a constant as parameter `{layer}.{suffix}` with `shape`.
    fn param(&mut self, layer: &str, suffix: &str, shape: &[usize], data: Vec<f32>) -> Result<()> {
        self.w.insert(
            format!("{layer}.{suffix}"),
            Tensor::new(shape.to_vec(), data)?,
        );
        Ok(())
    }

    pub(crate) fn floats(&self, n: &NodeProto, c: &Const) -> Result<Vec<f32>> {
        c.floats().map_err(|m| self.err(n, m))
    }

    /// Symmetric `[ph, pw]` from ONNX `pads` (`[top, left, bottom, right]`) or `auto_pad`.
    fn pads(
        &self,
        n: &NodeProto,
        hw: [usize; 2],
        k: [usize; 2],
        s: [usize; 2],
        d: [usize; 2],
    ) -> Result<[usize; 2]> {
        let auto = attr_s(n, "auto_pad").unwrap_or_else(|| "NOTSET".into());
        let p: Vec<i64> = match auto.as_str() {
            "NOTSET" => attr_ints(n, "pads").unwrap_or_else(|| vec![0; 4]),
            "VALID" => vec![0; 4],
            "SAME_UPPER" | "SAME_LOWER" => {
                let mut begin = [0i64; 2];
                let mut end = [0i64; 2];
                for i in 0..2 {
                    let out = hw[i].div_ceil(s[i]) as i64;
                    let span = (d[i] * (k[i] - 1) + 1) as i64;
                    let total = ((out - 1) * s[i] as i64 + span - hw[i] as i64).max(0);
                    let small = total / 2;
                    (begin[i], end[i]) = if auto == "SAME_UPPER" {
                        (small, total - small)
                    } else {
                        (total - small, small)
                    };
                }
                vec![begin[0], begin[1], end[0], end[1]]
            }
            other => return Err(self.err(n, format!("auto_pad {other}"))),
        };
        match p[..] {
            [t, l, b, r] if t == b && l == r && t >= 0 && l >= 0 => Ok([t as usize, l as usize]),
            _ => Err(self.err(
                n,
                format!("pads {p:?}: gconv supports symmetric 2-D padding only"),
            )),
        }
    }

    fn pair(&self, n: &NodeProto, name: &str, default: usize) -> Result<[usize; 2]> {
        match attr_ints(n, name).as_deref() {
            None => Ok([default; 2]),
            Some(&[a, b]) if a > 0 && b > 0 => Ok([a as usize, b as usize]),
            Some(v) => Err(self.err(n, format!("{name} {v:?}: gconv supports 2-D ops only"))),
        }
    }

    fn conv(&mut self, n: &NodeProto) -> Result<()> {
        let x = self.plain(n, 0)?;
        let [c, h, w] = self.chw(n, x)?;
        let wt = self.konst(n, 1)?.clone();
        let [out, cg, kh, kw] = wt.dims[..] else {
            return Err(self.err(
                n,
                format!("weight {:?}: gconv supports 2-D convolutions", wt.dims),
            ));
        };
        if [out, kh, kw].contains(&0) {
            return Err(self.err(n, format!("weight {:?} has an empty dimension", wt.dims)));
        }
        let groups = usize::try_from(attr_i(n, "group", 1)).unwrap_or(0);
        if groups == 0 || cg.checked_mul(groups) != Some(c) {
            return Err(self.err(
                n,
                format!(
                    "weight {:?} with group {groups} does not fit {c} input channels",
                    wt.dims
                ),
            ));
        }
        if attr_ints(n, "kernel_shape").is_some_and(|k| k != [kh as i64, kw as i64]) {
            return Err(self.err(n, "kernel_shape differs from the weight's"));
        }
        let (stride, dilation) = (self.pair(n, "strides", 1)?, self.pair(n, "dilations", 1)?);
        let padding = self.pads(n, [h, w], [kh, kw], stride, dilation)?;
        let bias = self.opt_konst(n, 2)?.cloned();
        let spec = Conv2dSpec {
            in_channels: c,
            out_channels: out,
            kernel: [kh, kw],
            stride,
            padding,
            dilation,
            groups,
            bias: bias.is_some(),
        };
        let name = self.layer_name(n, Some(&n.input[1]));
        let data = self.floats(n, &wt)?;
        self.param(&name, "weight", &wt.dims, data)?;
        if let Some(b) = bias {
            let data = self.floats(n, &b)?;
            self.param(&name, "bias", &[out], data)?;
        }
        let id = self.push(n, &name, Op::conv2d(spec), &[x])?;
        self.set_node(n, id);
        Ok(())
    }

    fn chw(&self, n: &NodeProto, x: NodeId) -> Result<[usize; 3]> {
        match *self.b.shape(x) {
            [c, h, w] => Ok([c, h, w]),
            ref s => Err(self.err(n, format!("needs an [N, C, H, W] input, got [N] ++ {s:?}"))),
        }
    }

    fn batch_norm(&mut self, n: &NodeProto) -> Result<()> {
        if attr_i(n, "training_mode", 0) != 0 || n.output.iter().skip(1).any(|s| !s.is_empty()) {
            return Err(self.err(
                n,
                "training-mode batch norm (export the model in eval mode)",
            ));
        }
        let x = self.plain(n, 0)?;
        let [c, _, _] = self.chw(n, x)?;
        let name = self.layer_name(n, n.input.get(1).map(String::as_str));
        for (k, suffix) in [
            (1, "weight"),
            (2, "bias"),
            (3, "running_mean"),
            (4, "running_var"),
        ] {
            let t = self.konst(n, k)?;
            let data = self.floats(n, t)?;
            if data.len() != c {
                return Err(self.err(
                    n,
                    format!("{suffix} has {} values for {c} channels", data.len()),
                ));
            }
            self.param(&name, suffix, &[c], data)?;
        }
        let op = Op::batch_norm(c, attr_f(n, "epsilon", 1e-5));
        let id = self.push(n, &name, op, &[x])?;
        self.set_node(n, id);
        Ok(())
    }

    fn add(&mut self, n: &NodeProto) -> Result<()> {
        if matches!(self.value(n, 0)?, Value::Const(_))
            || matches!(self.value(n, 1)?, Value::Const(_))
        {
            return Err(self.err(
                n,
                "an Add of a constant is imported only as the bias of a MatMul",
            ));
        }
        let (a, b) = (self.plain(n, 0)?, self.plain(n, 1)?);
        let name = self.layer_name(n, None);
        let id = self.push(n, &name, Op::add(), &[a, b])?;
        self.set_node(n, id);
        Ok(())
    }

    fn pool(&mut self, n: &NodeProto) -> Result<()> {
        let x = self.plain(n, 0)?;
        let [_, h, w] = self.chw(n, x)?;
        let kernel = match attr_ints(n, "kernel_shape").as_deref() {
            Some(&[a, b]) if a > 0 && b > 0 => [a as usize, b as usize],
            k => return Err(self.err(n, format!("kernel_shape {k:?}: gconv pools 2-D windows"))),
        };
        let stride = self.pair(n, "strides", 1)?;
        if self.pair(n, "dilations", 1)? != [1, 1] {
            return Err(self.err(n, "dilated pooling"));
        }
        if n.output.iter().skip(1).any(|s| !s.is_empty()) {
            return Err(self.err(n, "the MaxPool indices output is not imported"));
        }
        let padding = self.pads(n, [h, w], kernel, stride, [1, 1])?;
        let spec = Pool2dSpec {
            kernel,
            stride,
            padding,
        };
        if attr_i(n, "ceil_mode", 0) != 0 {
            // Ceil mode differs from floor mode only when a last window would start in the
            // padding-extended input's tail.
            let ceil = |x: usize, i: usize| {
                (x + 2 * padding[i])
                    .checked_sub(kernel[i])
                    .map(|s| s.div_ceil(stride[i]) + 1)
            };
            let same = match (spec.out_hw(h, w), ceil(h, 0), ceil(w, 1)) {
                (Some(f), Some(ch), Some(cw)) => f == [ch, cw],
                _ => true, // the shape check reports a window that does not fit
            };
            if !same {
                return Err(self.err(
                    n,
                    "ceil_mode 1 changes the output size here; gconv pools in floor mode",
                ));
            }
        }
        let op = if n.op_type() == "MaxPool" {
            Op::max_pool(spec)
        } else {
            if padding != [0, 0] && attr_i(n, "count_include_pad", 0) == 0 {
                return Err(self.err(
                    n,
                    "padded average pooling without count_include_pad (gconv counts the padding, \
                     PyTorch's default)",
                ));
            }
            Op::avg_pool(spec)
        };
        self.unary(n, op)
    }

    fn reduce_mean(&mut self, n: &NodeProto) -> Result<()> {
        let axes = if self.opset >= 18 {
            self.opt_konst(n, 1)?
                .map(|c| c.known_ints().map_err(|m| self.err(n, m)))
                .transpose()?
        } else {
            attr_ints(n, "axes")
        };
        let mut axes: Vec<i64> = axes
            .unwrap_or_default()
            .iter()
            .map(|&a| if a < 0 { a + 4 } else { a })
            .collect();
        axes.sort_unstable();
        if axes != [2, 3] {
            return Err(self.err(
                n,
                format!(
                    "ReduceMean over axes {axes:?}: gconv imports the spatial mean (axes 2, 3)"
                ),
            ));
        }
        let x = self.plain(n, 0)?;
        let name = self.layer_name(n, None);
        let mut id = self.push(n, &name, Op::adaptive_avg_pool([1, 1]), &[x])?;
        if attr_i(n, "keepdims", 1) == 0 {
            let name = format!("{name}.flatten");
            id = self.push(n, &name, Op::flatten(), &[id])?;
        }
        self.set_node(n, id);
        Ok(())
    }

    fn flatten(&mut self, n: &NodeProto) -> Result<()> {
        if attr_i(n, "axis", 1) != 1 {
            return Err(self.err(n, "Flatten with an axis other than 1"));
        }
        let x = self.plain(n, 0)?;
        if self.b.shape(x).len() == 1 {
            self.set_node(n, x);
            return Ok(());
        }
        self.unary(n, Op::flatten())
    }

    /// `Gemm` (`y = α·x·op(B) + β·C`) or `MatMul` by a constant, with the bias of a following
    /// `Add` merged in, as a fully connected layer.
    fn linear(&mut self, i: usize, n: &NodeProto) -> Result<()> {
        let x = self.plain(n, 0)?;
        let f = match *self.b.shape(x) {
            [f] => f,
            ref s => {
                return Err(self.err(n, format!("needs a flat [N, F] input, got [N] ++ {s:?}")))
            }
        };
        let gemm = n.op_type() == "Gemm";
        if gemm && attr_i(n, "transA", 0) != 0 {
            return Err(self.err(n, "transA = 1"));
        }
        let trans_b = gemm && attr_i(n, "transB", 0) != 0;
        let b = self.konst(n, 1)?.clone();
        let [r, c] = b.dims[..] else {
            return Err(self.err(n, format!("weight {:?} is not a matrix", b.dims)));
        };
        let (inf, out) = if trans_b { (c, r) } else { (r, c) };
        if inf != f {
            return Err(self.err(
                n,
                format!("weight {:?} does not fit {f} input features", b.dims),
            ));
        }
        let alpha = if gemm { attr_f(n, "alpha", 1.0) } else { 1.0 };
        let bw = self.floats(n, &b)?;
        let weight: Vec<f32> = (0..out * inf)
            .map(|k| {
                let (o, j) = (k / inf, k % inf);
                alpha
                    * if trans_b {
                        bw[o * inf + j]
                    } else {
                        bw[j * out + o]
                    }
            })
            .collect();
        // The bias: Gemm's C, or the constant of the one Add reading a MatMul's output.
        let mut bias_c = if gemm {
            self.opt_konst(n, 2)?.cloned()
        } else {
            None
        };
        let beta = if gemm { attr_f(n, "beta", 1.0) } else { 1.0 };
        let mut out_of = n;
        if !gemm {
            let out = n.output.first().map_or("", String::as_str);
            if let [j] = *self.consumers_of(out) {
                let add = self.onnx_node(j);
                let other = add.input.iter().find(|s| *s != out);
                if add.op_type() == "Add" && j > i {
                    if let Some(Value::Const(c)) = other.and_then(|o| self.value_named(o)) {
                        bias_c = Some(c.clone());
                        self.skip.insert(j);
                        out_of = add;
                    }
                }
            }
        }
        let bias = match bias_c {
            None => None,
            Some(c) => {
                let v = self.floats(n, &c)?;
                Some(match v.len() {
                    1 => vec![beta * v[0]; out],
                    l if l == out => v.iter().map(|x| beta * x).collect(),
                    _ => return Err(self.err(n, format!("bias {:?} for {out} outputs", c.dims))),
                })
            }
        };
        let name = self.layer_name(n, Some(&n.input[1]));
        self.param(&name, "weight", &[out, inf], weight)?;
        if let Some(b) = &bias {
            self.param(&name, "bias", &[out], b.clone())?;
        }
        let id = self.push(n, &name, Op::linear(inf, out, bias.is_some()), &[x])?;
        self.set_node(out_of, id);
        Ok(())
    }
}
