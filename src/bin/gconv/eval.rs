//! `gconv eval`: test accuracy of a training checkpoint or an exported model, run as it is
//! deployed (compiled for inference) on the chosen device.

use crate::common::DeviceArg;
use gconv::io::FashionMnist;
use gconv::train::{Normalization, TrainingData};
use gconv::{Error, LoadOptions, Result, Runtime};
use std::path::PathBuf;
use std::process::ExitCode;

/// Options of `gconv eval`.
#[derive(clap::Args)]
pub struct EvalArgs {
    /// A checkpoint written by `gconv train`, or a model written by `gconv export`.
    #[arg(long)]
    checkpoint: PathBuf,
    /// Test data: a Fashion-MNIST folder (its test split is used) or an image folder.
    #[arg(long, default_value = FashionMnist::DEFAULT_DIR)]
    data: PathBuf,
    /// Batch size.
    #[arg(long, default_value_t = 256)]
    batch: usize,
    /// Device of the (exported, BN-folded) inference model.
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    device: DeviceArg,
}

pub fn eval(a: EvalArgs) -> Result<ExitCode> {
    if a.batch == 0 {
        return Err(Error::InvalidArgument("--batch must be at least 1".into()));
    }
    let path = &a.checkpoint;
    let rt = Runtime::new(a.device.into())?;
    // An exported model carries its graph; a checkpoint its model description.
    let (mut model, norm, epoch, name) = if gconv::train::checkpoint::is_checkpoint(path)? {
        let c = gconv::train::read_checkpoint(path)?;
        let model = rt.load_graph(c.spec.build()?, c.weights, &LoadOptions::default())?;
        (model, Some(c.norm), c.epoch.to_string(), c.spec.name)
    } else {
        let (graph, weights, meta) = gconv::io::read_exported(path)?;
        let norm = Normalization::from_meta(path, &meta)?;
        let epoch = meta.get("epoch").cloned().unwrap_or_else(|| "?".into());
        let name = graph.name.clone();
        let opts = LoadOptions {
            fold_bn: false,
            ..Default::default()
        };
        (rt.load_graph(graph, weights, &opts)?, norm, epoch, name)
    };
    let norm = norm.ok_or_else(|| {
        Error::format(
            path,
            "no input normalisation (norm_mean / norm_std metadata)",
        )
    })?;
    let mut test = TrainingData::load_test(&a.data, model.graph().input_shape())?;
    test.normalize(&norm.mean, &norm.std)?;
    let (loss, correct) = gconv::train::evaluate(&mut |x| model.run(x), &test, a.batch)?;
    println!(
        "{name} (epoch {epoch}): test loss {loss:.4}, accuracy {:.2} % ({correct}/{})",
        100.0 * correct as f64 / test.n as f64,
        test.n
    );
    Ok(ExitCode::SUCCESS)
}
