//! The search space: which convolutions a scheme groups (the model's [`GroupSite`]s), how they
//! form units (a stage, or a single layer with `--per-layer`), which G each unit can take, and
//! for every (site, G) the one-layer graph that is timed and its MACs and parameters.
//!
//! A variant is built by giving one site a G (`layer_groups`) in the otherwise dense model; its
//! shapes must equal the dense model's (they do at width 1: G changes no channel count), so
//! every layer's cost depends on its own G alone and a scheme's cost is a sum over sites — the
//! additivity that makes the exact search of [`super::optimize`] possible.

use crate::error::{Error, Result};
use crate::graph::{Graph, GraphBuilder, Op};
use crate::zoo::{Arch, ConvKind, GroupSite, ModelSpec, Scheme};
use std::collections::BTreeMap;

/// One grouped convolution at one G.
#[derive(Clone, Debug)]
pub struct Variant {
    /// G.
    pub g: usize,
    /// MACs per sample of the layer.
    pub macs: u64,
    /// Inference parameters of the layer (its BN's γ and β included).
    pub params: u64,
    /// The layer alone (conv and the BN it folds), as it is timed.
    pub graph: Graph,
}

/// A convolution a scheme groups, with the G it can take.
#[derive(Clone, Debug)]
pub struct Site {
    /// Node name.
    pub node: String,
    /// Stage index (into [`ModelSpec::stage_names`]).
    pub stage: usize,
    /// Its variants, G ascending; G = 1 first.
    pub variants: Vec<Variant>,
}

impl Site {
    /// The variant of G `g`, if the layer takes it.
    pub fn variant(&self, g: usize) -> Option<&Variant> {
        self.variants.iter().find(|v| v.g == g)
    }
}

/// What a unit's G applies to: a stage's sites or one site.
#[derive(Clone, Debug)]
pub struct Unit {
    /// `conv-3`, `layer2`, `stage4`, or a node name with `--per-layer`.
    pub name: String,
    /// Indices into [`Space::sites`].
    pub sites: Vec<usize>,
    /// The G every site of the unit takes (G = 1 first).
    pub groups: Vec<usize>,
}

/// The search space of one model.
#[derive(Clone, Debug)]
pub struct Space {
    /// The dense model (every site at G = 1) of the kind searched.
    pub base: ModelSpec,
    /// SGC or FLGC.
    pub conv: ConvKind,
    /// Units are layers, not stages.
    pub per_layer: bool,
    /// The grouped convolutions.
    pub sites: Vec<Site>,
    /// The units, in graph order.
    pub units: Vec<Unit>,
    /// MACs per sample of everything that is not a site.
    pub fixed_macs: u64,
    /// Parameters of everything that is not a site.
    pub fixed_params: u64,
    /// G values asked for that no unit can take (SGC: they divide no unit's channels).
    pub unused_groups: Vec<usize>,
}

/// The graph of node `name` of `graph` alone: its op on an input of the node's input shape,
/// followed by the batch norm it folds (when its only consumer is one).
pub fn layer_graph(graph: &Graph, name: &str) -> Result<Graph> {
    let id = graph
        .find(name)
        .ok_or_else(|| Error::shape(name, "no such node"))?;
    let node = &graph.nodes[id];
    let in_shape = &graph.nodes[node.inputs[0]].shape;
    let input = match in_shape[..] {
        [c, h, w] => [c, h, w],
        [n] => [n, 1, 1],
        _ => return Err(Error::shape(name, "unexpected input rank")),
    };
    let mut b = GraphBuilder::new(format!("{} {name}", graph.name), input);
    let mut x = b.input();
    if in_shape.len() == 1 {
        x = b.push("flatten", Op::flatten(), &[x])?;
    }
    x = b.push(name, node.op.clone(), &[x])?;
    let consumers: Vec<_> = graph
        .nodes
        .iter()
        .filter(|n| n.inputs.contains(&id))
        .collect();
    if let [bn] = consumers[..] {
        if matches!(bn.op, Op::BatchNorm(_)) && node.op.conv_spec().is_some() {
            x = b.push(&bn.name, bn.op.clone(), &[x])?;
        }
    }
    Ok(b.finish(x))
}

/// The dense model of kind `conv`: every grouping removed, then the kind set.
pub fn dense_base(spec: &ModelSpec, conv: ConvKind) -> ModelSpec {
    let mut base = spec.clone().ungrouped();
    match &mut base.arch {
        Arch::Vgg { grouped, .. } => *grouped = conv,
        Arch::Resnet { pointwise, .. } | Arch::Mobilenetv2 { pointwise, .. } => *pointwise = conv,
    }
    base
}

impl Space {
    /// The space of `spec` (its grouping is dropped) for `conv` over the G values `groups`
    /// (1 is always added: a unit may stay dense).
    pub fn new(
        spec: &ModelSpec,
        conv: ConvKind,
        groups: &[usize],
        per_layer: bool,
    ) -> Result<Self> {
        if conv == ConvKind::Dense {
            return Err(Error::InvalidArgument(
                "search: --conv must be sgc or flgc (dense has nothing to choose)".into(),
            ));
        }
        if let Some(&g) = groups.iter().find(|&&g| g == 0 || g > 1 << 16) {
            return Err(Error::InvalidArgument(format!(
                "search: G = {g} in --g: every G must be in 1..=65536"
            )));
        }
        let mut gs: Vec<usize> = groups.iter().copied().chain([1]).collect();
        gs.sort_unstable();
        gs.dedup();
        let base = dense_base(spec, conv);
        let (dense, found) = base.build_with_sites()?;
        if found.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "search: {} has no convolution a scheme can group",
                spec.name
            )));
        }
        let cost = dense.cost();
        let mut sites = Vec::with_capacity(found.len());
        for GroupSite { node, stage } in found {
            let variants = gs
                .iter()
                .filter_map(|&g| variant(&base, &dense, &node, g).transpose())
                .collect::<Result<Vec<_>>>()?;
            sites.push(Site {
                node,
                stage,
                variants,
            });
        }
        let (mut site_macs, mut site_params) = (0u64, 0u64);
        for s in &sites {
            site_macs += s.variants[0].macs;
            site_params += s.variants[0].params;
        }
        let names = base.stage_names();
        let units: Vec<Unit> = if per_layer {
            (0..sites.len())
                .map(|i| unit(sites[i].node.clone(), vec![i], &sites, &gs))
                .collect()
        } else {
            (0..names.len())
                .filter_map(|st| {
                    let idx: Vec<usize> =
                        (0..sites.len()).filter(|&i| sites[i].stage == st).collect();
                    (!idx.is_empty()).then(|| unit(names[st].clone(), idx, &sites, &gs))
                })
                .collect()
        };
        let unused_groups: Vec<usize> = gs
            .iter()
            .copied()
            .filter(|g| *g > 1 && !units.iter().any(|u| u.groups.contains(g)))
            .collect();
        if units.iter().all(|u| u.groups.len() == 1) {
            return Err(Error::InvalidArgument(format!(
                "search: no G of {:?} can group any {} of {} ({}); SGC needs G to divide a \
                 layer's input and output channels — try powers of two, or --conv flgc",
                groups,
                if per_layer { "layer" } else { "stage" },
                spec.name,
                conv_name(conv)
            )));
        }
        Ok(Self {
            fixed_macs: cost.total_macs - site_macs,
            fixed_params: cost.total_params - site_params,
            base,
            conv,
            per_layer,
            sites,
            units,
            unused_groups,
        })
    }

    /// Adds the variants `site_groups` needs that the space lacks (a reference scheme's G
    /// outside `--g`), so its latency can be predicted; the units' choices stay as they are.
    pub fn add_variants(&mut self, site_groups: &[usize]) -> Result<()> {
        let dense = self.base.build()?;
        for (i, &g) in site_groups.iter().enumerate() {
            if self.sites[i].variant(g).is_some() {
                continue;
            }
            let v = variant(&self.base, &dense, &self.sites[i].node, g)?.ok_or_else(|| {
                Error::shape(&self.sites[i].node, format!("search: cannot take G = {g}"))
            })?;
            let s = &mut self.sites[i];
            let at = s.variants.partition_point(|x| x.g < g);
            s.variants.insert(at, v);
        }
        Ok(())
    }

    /// Number of schemes in the space (saturating).
    pub fn size(&self) -> u128 {
        self.units
            .iter()
            .fold(1u128, |n, u| n.saturating_mul(u.groups.len() as u128))
    }

    /// The scheme giving unit `i` G `groups[i]`.
    pub fn scheme(&self, name: &str, description: &str, groups: &[usize]) -> Scheme {
        let n = self.base.stage_names().len();
        let mut s = Scheme::stages(name, description, vec![1; n]);
        s.model = Some(self.base.name.clone());
        s.conv = Some(self.conv);
        for (u, &g) in self.units.iter().zip(groups) {
            if self.per_layer {
                if g > 1 {
                    s.layer_groups.insert(u.name.clone(), g);
                }
            } else {
                s.stage_groups[self.sites[u.sites[0]].stage] = g;
            }
        }
        s
    }

    /// The model with `scheme` applied (its kind forced to the one searched).
    pub fn spec_of(&self, scheme: &Scheme) -> Result<ModelSpec> {
        let mut s = scheme.clone();
        s.conv = Some(self.conv);
        self.base.clone().with_scheme(&s)
    }

    /// G of every site under `scheme` (any scheme of the model, searched or not).
    pub fn site_groups(&self, scheme: &Scheme) -> Result<Vec<usize>> {
        let graph = self.spec_of(scheme)?.build()?;
        let by_name: BTreeMap<&str, usize> = graph
            .nodes
            .iter()
            .filter_map(|n| Some((n.name.as_str(), n.op.groups()?)))
            .collect();
        Ok(self
            .sites
            .iter()
            .map(|s| by_name.get(s.node.as_str()).copied().unwrap_or(1))
            .collect())
    }

    /// G per unit of `scheme`, when it is a point of this space (every unit's sites share one
    /// G of its list); `None` otherwise.
    pub fn unit_groups(&self, scheme: &Scheme) -> Result<Option<Vec<usize>>> {
        let per_site = self.site_groups(scheme)?;
        Ok(self
            .units
            .iter()
            .map(|u| {
                let g = per_site[u.sites[0]];
                (u.sites.iter().all(|&i| per_site[i] == g) && u.groups.contains(&g)).then_some(g)
            })
            .collect())
    }

    /// Per-site G from per-unit G.
    pub fn expand(&self, unit_groups: &[usize]) -> Vec<usize> {
        let mut g = vec![1; self.sites.len()];
        for (u, &ug) in self.units.iter().zip(unit_groups) {
            for &i in &u.sites {
                g[i] = ug;
            }
        }
        g
    }

    /// MACs and parameters of the model with each site at `site_groups` (`None` when a site
    /// cannot take its G).
    pub fn cost(&self, site_groups: &[usize]) -> Option<(u64, u64)> {
        let (mut macs, mut params) = (self.fixed_macs, self.fixed_params);
        for (s, &g) in self.sites.iter().zip(site_groups) {
            let v = s.variant(g)?;
            macs += v.macs;
            params += v.params;
        }
        Some((macs, params))
    }
}

fn conv_name(c: ConvKind) -> &'static str {
    match c {
        ConvKind::Sgc => "sgc",
        ConvKind::Flgc => "flgc",
        ConvKind::Dense => "dense",
    }
}

fn unit(name: String, sites: Vec<usize>, all: &[Site], gs: &[usize]) -> Unit {
    let groups = gs
        .iter()
        .copied()
        .filter(|&g| sites.iter().all(|&i| all[i].variant(g).is_some()))
        .collect();
    Unit {
        name,
        sites,
        groups,
    }
}

/// Site `node` at G `g` in the otherwise dense `base`: `None` when the layer does not take
/// that G; an error when it changes the model's shapes (then costs are not additive).
fn variant(base: &ModelSpec, dense: &Graph, node: &str, g: usize) -> Result<Option<Variant>> {
    let mut spec = base.clone();
    if g > 1 {
        spec.layer_groups.insert(node.to_string(), g);
    }
    let graph = match spec.build() {
        Ok(graph) => graph,
        Err(_) if g > 1 => return Ok(None),
        Err(e) => return Err(e),
    };
    if graph.nodes.len() != dense.nodes.len()
        || graph
            .nodes
            .iter()
            .zip(&dense.nodes)
            .any(|(a, b)| a.shape != b.shape)
    {
        return Err(Error::InvalidArgument(format!(
            "search: G = {g} on {node} changes {}'s channel counts (width {}): the search \
             needs a model whose channels no G changes (width 1, or --conv flgc)",
            base.name, base.width
        )));
    }
    let layer = layer_graph(&graph, node)?;
    let cost = layer.cost();
    Ok(Some(Variant {
        g,
        macs: cost.total_macs,
        params: cost.total_params,
        graph: layer,
    }))
}
