//! Run a zoo model on the best device available and print the top-5 classes.
//!
//! ```text
//! cargo run --release --example classify -- [MODEL] [WEIGHTS.safetensors]
//! ```
//! Without weights the model is He-initialised (so the classes are meaningless, but the
//! run exercises the same path as real weights saved from PyTorch with
//! `safetensors.torch.save_file(model.state_dict(), "w.safetensors")`).

use gconv::zoo::ModelSpec;
use gconv::{io, Device, LoadOptions, Runtime, Tensor};

fn main() -> Result<(), gconv::Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let name = args
        .first()
        .map(String::as_str)
        .unwrap_or("resnet50-dsc-sgc");
    let mut spec = ModelSpec::load(name)?;
    spec.input = [3, 112, 112]; // smaller than 224² to keep the example quick on lavapipe
    let weights = match args.get(1) {
        Some(p) => Some(io::read_safetensors(p)?),
        None => None,
    };

    let rt = Runtime::new(Device::Auto)?;
    println!("device: {}", rt.describe());
    let mut model = rt.load(&spec, weights, &LoadOptions::default())?;

    let [c, h, w] = spec.input;
    let x = Tensor::from_fn(&[1, c, h, w], |i| ((i % 255) as f32 / 255.0 - 0.5) * 2.0);
    let logits = model.run(&x)?;
    let mut idx: Vec<usize> = (0..logits.shape()[1]).collect();
    idx.sort_by(|&a, &b| logits.data()[b].total_cmp(&logits.data()[a]));
    for &k in idx.iter().take(5) {
        println!("class {k:4}: logit {:.4}", logits.data()[k]);
    }
    Ok(())
}
